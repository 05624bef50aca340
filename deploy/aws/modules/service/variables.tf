variable "name" {
  description = "Name of the service, its container and its roles' prefix."
  type        = string
  default     = "api"
}

variable "environment" {
  description = "staging or production: names the cluster (<name>-<environment>) and the log group."
  type        = string
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "image" {
  description = "The image repository URL, without a tag."
  type        = string
}

variable "image_tag" {
  description = "The tag of the first task definition revision; the release workflow registers later ones."
  type        = string
  validation {
    condition     = can(regex("^(staging|production)-[0-9A-Za-z][0-9A-Za-z._-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a tag scripts/push.sh pushes: <staging|production>-<version or git sha>, e.g. production-0.1.0."
  }
}

variable "cpu" {
  description = "Task CPU units (Fargate: 256, 512, 1024, 2048, 4096, 8192, 16384)."
  type        = number
  default     = 256
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  description = "Task memory in MiB: one of the sizes Fargate offers with var.cpu (256 CPU units: 512, 1024 or 2048; see local.fargate_memory)."
  type        = number
  default     = 512
  validation {
    condition     = contains(try(local.fargate_memory[tostring(var.cpu)], []), var.memory)
    error_message = "Fargate has no task of ${var.cpu} CPU units with ${var.memory} MiB: with ${var.cpu} CPU units, memory is one of ${join(", ", try(local.fargate_memory[tostring(var.cpu)], []))} MiB."
  }
}

variable "max_connections" {
  description = "API_MAX_CONNECTIONS: about 12 KB of memory per open connection (docs/operations.md, Capacity)."
  type        = number
  default     = 2048
}

variable "min_capacity" {
  description = "Fewest tasks; the service starts with this many."
  type        = number
  default     = 2
  validation {
    condition     = var.min_capacity >= 1
    error_message = "min_capacity must be at least 1."
  }
}

variable "max_capacity" {
  description = "Most tasks the autoscaler may run."
  type        = number
  default     = 10
}

variable "cpu_target_percent" {
  description = "Autoscaling keeps average CPU near this."
  type        = number
  default     = 60
}

variable "requests_per_target" {
  description = "Autoscaling keeps the ALB's requests per task per minute near this."
  type        = number
  default     = 60000
}

variable "vpc_id" {
  description = "The VPC (most accounts have one; this module makes none)."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id, vpc-..."
  }
}

variable "public_subnet_ids" {
  description = "Subnets for the load balancer, in at least two availability zones."
  type        = list(string)
  validation {
    condition     = length(var.public_subnet_ids) >= 2 && alltrue([for id in var.public_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "public_subnet_ids must hold at least two subnet ids (subnet-...): an ALB spans two zones or more."
  }
}

variable "private_subnet_ids" {
  description = "Subnets for the tasks; they need a route to ECR and CloudWatch Logs (a NAT gateway or VPC endpoints)."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 1 && alltrue([for id in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "private_subnet_ids must hold subnet ids (subnet-...)."
  }
}

variable "assign_public_ip" {
  description = "Give tasks public IPs: only for subnets without NAT (tasks still accept traffic only from the ALB)."
  type        = bool
  default     = false
}

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener; HTTP then redirects to HTTPS. Null serves plain HTTP, and needs allow_plain_http."
  type        = string
  default     = null
}

variable "allow_plain_http" {
  description = "Serve plain HTTP on port 80 when there is no certificate (for a first look or an internal balancer; never for users)."
  type        = bool
  default     = false
}

variable "internal" {
  description = "Make the load balancer internal (reachable only inside the VPC)."
  type        = bool
  default     = false
}

variable "idle_timeout" {
  description = "The ALB's idle timeout, seconds. The service's header-read timeout is set 5 s above it, so that the ALB, not the service, closes idle connections."
  type        = number
  default     = 60
  validation {
    condition     = var.idle_timeout >= 1 && var.idle_timeout <= 4000
    error_message = "idle_timeout must be 1-4000 seconds (ALB)."
  }
}

variable "shutdown_timeout" {
  description = "API_SHUTDOWN_TIMEOUT, seconds: in-flight requests get this long after SIGTERM. The container's stopTimeout is 10 s more."
  type        = number
  default     = 5
  validation {
    condition     = var.shutdown_timeout >= 1 && var.shutdown_timeout <= 100
    error_message = "shutdown_timeout must be 1-100 s: ECS kills the container 10 s later, and stopTimeout is at most 120 s."
  }
}

variable "deregistration_delay" {
  description = "Seconds the ALB lets requests to a stopping task finish before ECS sends it SIGTERM. At least the service's 10 s request timeout."
  type        = number
  default     = 15
  validation {
    condition     = var.deregistration_delay >= 10 && var.deregistration_delay <= 3600
    error_message = "deregistration_delay must be 10-3600 s: at least API_REQUEST_TIMEOUT (10 s), so that no answer is cut."
  }
}

variable "health_check_grace_period" {
  description = "Seconds ECS ignores ALB health checks of a new task. The service is ready in milliseconds; this covers the image pull and two checks."
  type        = number
  default     = 30
}

variable "metrics_cidr_blocks" {
  description = "Networks allowed to scrape the metrics port 9000 (a Prometheus, an ADOT collector). Never reachable through the ALB."
  type        = list(string)
  default     = []
}

variable "metrics_security_group_ids" {
  description = "Security groups allowed to scrape the metrics port 9000."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the service's logs."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  }
}

variable "kms_key_arn" {
  description = "KMS key for the log group; null uses CloudWatch Logs' own encryption."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "access_logs_bucket" {
  description = "S3 bucket for the ALB's access logs; null keeps none (the service logs every request itself)."
  type        = string
  default     = null
}

variable "web_acl_arn" {
  description = "A WAFv2 web ACL to put in front of the ALB; null for none."
  type        = string
  default     = null
}

variable "fargate_spot" {
  description = <<-EOT
    Run part of the tasks on Fargate Spot: spare capacity at a discount to the
    Fargate price (AWS's Fargate pricing page has the rate), interrupted with a
    two-minute warning (SIGTERM, then stopTimeout, which the drain fits in; the
    target group's deregistration delay must stay under two minutes). Spot runs
    x86_64 Linux tasks only. null runs every task on on-demand Fargate. on_demand_base tasks always run on demand; beyond them,
    tasks are spread by weight: { on_demand_base = 2, on_demand_weight = 1,
    spot_weight = 3 } runs 2 on demand, then one in four on demand. Set it when
    the service is created: switching between null and a strategy replaces the
    ECS service (its launch type changes).
  EOT
  type = object({
    on_demand_base   = number
    on_demand_weight = number
    spot_weight      = number
  })
  default = null
  # A conditional, not ||: Terraform evaluates both sides of || (null has
  # no attributes).
  validation {
    condition = var.fargate_spot == null ? true : (
      var.fargate_spot.on_demand_base >= 0 && var.fargate_spot.on_demand_base <= 100000 &&
      var.fargate_spot.on_demand_weight >= 0 && var.fargate_spot.spot_weight >= 1 &&
      var.fargate_spot.on_demand_weight <= 1000 && var.fargate_spot.spot_weight <= 1000
    )
    error_message = "fargate_spot: on_demand_base 0-100000, on_demand_weight 0-1000, spot_weight 1-1000 (ECS capacity provider strategy)."
  }
  # AWS: a Spot task stops two minutes after its warning; the ALB must have
  # let its requests finish by then (ECS developer guide, Fargate capacity
  # providers; "How do I handle Spot termination notices", AWS re:Post).
  validation {
    condition     = var.fargate_spot == null ? true : var.deregistration_delay < 120
    error_message = "fargate_spot needs deregistration_delay under 120 s: Spot tasks stop two minutes after their warning."
  }
}

variable "xray_tracing" {
  description = "Run AWS's ADOT collector beside the api in every task: the api exports its spans to it over OTLP/HTTP on 127.0.0.1:4318, and it sends them to X-Ray; the task role gets X-Ray's write permissions. Off: no sidecar, and the api exports no traces (docs/tracing.md)."
  type        = bool
  default     = false
}

variable "xray_sampling_ratio" {
  description = "With xray_tracing: the share of new traces recorded (OTEL_TRACES_SAMPLER_ARG of parentbased_traceidratio; a caller's sampled trace is always continued). X-Ray charges per trace recorded."
  type        = number
  default     = 0.05
  validation {
    condition     = var.xray_sampling_ratio >= 0 && var.xray_sampling_ratio <= 1
    error_message = "xray_sampling_ratio must be between 0 and 1."
  }
}

variable "adot_collector_image" {
  description = "The ADOT collector image of the xray_tracing sidecar, pinned (a version tag, or better a digest: docs/tracing.md)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0"
  validation {
    condition     = can(regex("^[^:@]+(:v[0-9]+\\.[0-9]+\\.[0-9]+)?(@sha256:[0-9a-f]{64})?$", var.adot_collector_image)) && can(regex("(:v[0-9]|@sha256:)", var.adot_collector_image))
    error_message = "adot_collector_image must be pinned: a version tag (:v0.49.0) or a digest (@sha256:...), never latest."
  }
}
