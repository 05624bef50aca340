# The api on ECS Fargate: one cluster per environment, a task definition
# that runs the production image the way the image is meant to run (non-root,
# read-only, no capabilities, its own health probe), and a service that
# rolls out with no loss and rolls back by itself when a deployment fails.

data "aws_region" "current" {}

# Every name follows from var.name and var.environment alone, so that the
# registry module can scope the release role to them before any of these
# resources exists (the bootstrap applies the registry first).
locals {
  cluster_name        = "${var.name}-${var.environment}"
  family              = "${var.name}-${var.environment}"
  log_group           = "/ecs/${var.name}-${var.environment}"
  execution_role_name = "${var.name}-${var.environment}-execution"
  task_role_name      = "${var.name}-${var.environment}-task"
  api_port            = 8000
  metrics_port        = 9000
  collector_name      = "aws-otel-collector"

  # The task sizes Fargate offers on Linux: memory (MiB) for each CPU value.
  # AWS: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#task_size
  # (the same table is in the ECS API reference of RegisterTaskDefinition's
  # `memory`, which tests/aws/check_constraints.py reads from botocore).
  fargate_memory = {
    "256"   = [512, 1024, 2048]
    "512"   = range(1024, 4097, 1024)
    "1024"  = range(2048, 8193, 1024)
    "2048"  = range(4096, 16385, 1024)
    "4096"  = range(8192, 30721, 1024)
    "8192"  = range(16384, 61441, 4096)
    "16384" = range(32768, 122881, 8192)
  }
}

# xray_tracing: AWS's ADOT collector beside the api. The task's containers
# share one network namespace, so the api exports to 127.0.0.1:4318
# (OTLP/HTTP, plain: it never leaves the task), and the collector signs and
# sends the spans to X-Ray with the task role (iam.tf). Its built-in
# /etc/ecs/ecs-xray.yaml receives OTLP, adds the ECS resource attributes,
# batches and exports to X-Ray; nothing else (AWS Distro for OpenTelemetry,
# "Setting up the ADOT Collector in Amazon ECS"). Not essential: a collector
# that dies costs traces, never requests (the api counts what it could not
# send, api_trace_spans_total). The api depends on its start, so that ECS
# stops the two in the reverse order (the ECS API reference,
# ContainerDependency): the collector is still there to take the spans the
# api flushes at the end of its drain.
locals {
  tracing_environment = var.xray_tracing ? [
    { name = "OTEL_EXPORTER_OTLP_ENDPOINT", value = "http://127.0.0.1:4318" },
    { name = "OTEL_SERVICE_NAME", value = var.name },
    { name = "OTEL_RESOURCE_ATTRIBUTES", value = "deployment.environment.name=${var.environment}" },
    { name = "OTEL_TRACES_SAMPLER", value = "parentbased_traceidratio" },
    { name = "OTEL_TRACES_SAMPLER_ARG", value = tostring(var.xray_sampling_ratio) },
  ] : []
  collector = {
    name      = local.collector_name
    image     = var.adot_collector_image
    essential = false
    command   = ["--config=/etc/ecs/ecs-xray.yaml"]
    # The image's own user (aoc); it writes nothing to disk.
    readonlyRootFilesystem = true
    linuxParameters        = { capabilities = { drop = ["ALL"] } }
    # The image's probe of the collector's health_check extension (13133).
    healthCheck = {
      command     = ["CMD", "/healthcheck"]
      interval    = 10
      timeout     = 5
      retries     = 3
      startPeriod = 10
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = local.collector_name
      }
    }
  }
}

resource "aws_ecs_cluster" "this" {
  name = local.cluster_name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_ecs_task_definition" "this" {
  family                   = local.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode(concat([{
    name      = var.name
    image     = "${var.image}:${var.image_tag}"
    essential = true
    # The image's nonroot user, by number; no shell, no writes, no privileges.
    user                   = "65532:65532"
    readonlyRootFilesystem = true
    linuxParameters        = { capabilities = { drop = ["ALL"] } }
    portMappings = [
      { name = "http", containerPort = local.api_port, protocol = "tcp" },
      { name = "metrics", containerPort = local.metrics_port, protocol = "tcp" },
    ]
    environment = concat([
      # The ports the container maps, said once more: `api healthcheck`
      # (the health check below) reads them to find the server.
      { name = "PORT", value = tostring(local.api_port) },
      { name = "API_METRICS_PORT", value = tostring(local.metrics_port) },
      { name = "API_LOG_FORMAT", value = "json" },
      # Above the ALB's idle timeout: the balancer closes idle connections first.
      { name = "API_HEADER_READ_TIMEOUT", value = "${var.idle_timeout + 5}s" },
      { name = "API_SHUTDOWN_TIMEOUT", value = "${var.shutdown_timeout}s" },
      { name = "API_MAX_CONNECTIONS", value = tostring(var.max_connections) },
    ], local.tracing_environment)
    # Liveness: ECS replaces a task whose container fails this. ECS wants
    # "CMD" first; the image has no shell, the binary probes itself (on the
    # metrics port, outside the connection limit). ECS replaces a task that
    # fails the ALB's check too, so that one is liveness as well (/livez on
    # the metrics port, alb.tf); a busy task gets fewer new requests by the
    # target group's least_outstanding_requests, not by failing a check.
    healthCheck = {
      command     = ["CMD", "/usr/local/bin/api", "healthcheck"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 5
    }
    # SIGTERM to SIGKILL: room for the drain.
    stopTimeout = var.shutdown_timeout + 10
    dependsOn   = var.xray_tracing ? [{ containerName = local.collector_name, condition = "START" }] : null
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = var.name
      }
    }
  }], [for collector in [local.collector] : collector if var.xray_tracing]))

  # The first tasks start only once the execution role may pull the image
  # and write logs, and the collector send to X-Ray: IAM attaches the
  # policies after the roles exist.
  depends_on = [aws_iam_role_policy_attachment.execution, aws_iam_role_policy.xray]
}

# Fargate Spot, when asked for: the cluster offers both capacity providers
# and the service spreads its tasks over them (fargate_spot).
resource "aws_ecs_cluster_capacity_providers" "this" {
  count              = var.fargate_spot == null ? 0 : 1
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]
}

resource "aws_ecs_service" "this" {
  name            = var.name
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.this.arn
  desired_count   = var.min_capacity
  # On-demand Fargate, or a capacity provider strategy with Spot: ECS takes
  # one or the other, never both.
  launch_type      = var.fargate_spot == null ? "FARGATE" : null
  platform_version = "LATEST"

  dynamic "capacity_provider_strategy" {
    for_each = var.fargate_spot == null ? {} : {
      FARGATE      = { base = var.fargate_spot.on_demand_base, weight = var.fargate_spot.on_demand_weight }
      FARGATE_SPOT = { base = 0, weight = var.fargate_spot.spot_weight }
    }
    content {
      capacity_provider = capacity_provider_strategy.key
      base              = capacity_provider_strategy.value.base
      weight            = capacity_provider_strategy.value.weight
    }
  }

  # A new task must be healthy before an old one stops; a deployment whose
  # tasks keep failing is rolled back to the last one that worked.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = var.health_check_grace_period
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = var.name
    container_port   = local.api_port
  }

  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true

  # The release workflow registers new revisions (scripts/deploy-ecs.sh)
  # and the autoscaler sets the count: Terraform must not undo either.
  lifecycle {
    ignore_changes = [task_definition, desired_count]
  }

  # New tasks register with the target group only when the ALB can reach
  # them: listeners, and both halves of the ALB-to-task rules (traffic on
  # the API port, health checks on the metrics port).
  depends_on = [
    aws_lb_listener.http,
    aws_lb_listener.https,
    aws_vpc_security_group_egress_rule.alb_to_tasks,
    aws_vpc_security_group_ingress_rule.api_from_alb,
    aws_vpc_security_group_egress_rule.alb_to_tasks_health,
    aws_vpc_security_group_ingress_rule.metrics_from_alb,
    aws_ecs_cluster_capacity_providers.this,
  ]
}
