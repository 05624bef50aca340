# The api on ECS Fargate: one cluster per environment, a task definition
# that runs the production image the way the image is meant to run (non-root,
# read-only, no capabilities, its own health probe), and a service that
# rolls out with no loss and rolls back by itself when a deployment fails.

data "aws_region" "current" {}

locals {
  cluster_name = "${var.name}-${var.environment}"
  family       = "${var.name}-${var.environment}"
  log_group    = "/ecs/${var.name}-${var.environment}"
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

  container_definitions = jsonencode([{
    name      = var.name
    image     = "${var.image}:${var.image_tag}"
    essential = true
    # The image's nonroot user, by number; no shell, no writes, no privileges.
    user                   = "65532:65532"
    readonlyRootFilesystem = true
    linuxParameters        = { capabilities = { drop = ["ALL"] } }
    portMappings = [
      { name = "http", containerPort = 8000, protocol = "tcp" },
      { name = "metrics", containerPort = 9000, protocol = "tcp" },
    ]
    environment = [
      { name = "API_LOG_FORMAT", value = "json" },
      # Above the ALB's idle timeout: the balancer closes idle connections first.
      { name = "API_HEADER_READ_TIMEOUT", value = "${var.idle_timeout + 5}s" },
      { name = "API_SHUTDOWN_TIMEOUT", value = "${var.shutdown_timeout}s" },
      { name = "API_MAX_CONNECTIONS", value = tostring(var.max_connections) },
    ]
    # ECS wants "CMD" first; the image has no shell, the binary probes itself.
    healthCheck = {
      command     = ["CMD", "/usr/local/bin/api", "healthcheck"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 5
    }
    # SIGTERM to SIGKILL: room for the drain.
    stopTimeout = var.shutdown_timeout + 10
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = var.name
      }
    }
  }])
}

resource "aws_ecs_service" "this" {
  name             = var.name
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.this.arn
  desired_count    = var.min_capacity
  launch_type      = "FARGATE"
  platform_version = "LATEST"

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
    container_port   = 8000
  }

  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true

  # The release workflow registers new revisions (scripts/deploy-ecs.sh)
  # and the autoscaler sets the count: Terraform must not undo either.
  lifecycle {
    ignore_changes = [task_definition, desired_count]
  }

  depends_on = [aws_lb_listener.http, aws_lb_listener.https]
}
