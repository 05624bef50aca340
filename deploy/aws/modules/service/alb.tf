# The Application Load Balancer in front of the tasks: HTTPS with a modern
# TLS policy, HTTP redirected to it, targets probed on /livez of the
# metrics port, requests to the target with the fewest outstanding.

locals {
  https = var.certificate_arn != null
}

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_76:The web ACL is the account's own (web_acl_arn); its rule sets are chosen where it is managed.
  name                       = "${var.name}-${var.environment}"
  load_balancer_type         = "application"
  internal                   = var.internal
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  idle_timeout               = var.idle_timeout
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  dynamic "access_logs" {
    for_each = var.access_logs_bucket == null ? [] : [var.access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = "${var.name}-${var.environment}"
      enabled = true
    }
  }

  lifecycle {
    precondition {
      condition     = local.https || var.allow_plain_http
      error_message = "Give a certificate_arn for HTTPS, or set allow_plain_http = true to serve plain HTTP knowingly."
    }
  }
}

resource "aws_wafv2_web_acl_association" "this" {
  count        = var.web_acl_arn == null ? 0 : 1
  resource_arn = aws_lb.this.arn
  web_acl_arn  = var.web_acl_arn
}

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; the tasks speak HTTP/1.1 only, in private subnets that only the ALB's security group reaches.
  name                 = "${var.name}-${var.environment}"
  port                 = local.api_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = var.deregistration_delay
  # A task at --max-connections gets new requests last: on ECS this, not
  # the health check, is what keeps traffic off a saturated task.
  load_balancing_algorithm_type = "least_outstanding_requests"

  # Liveness, not readiness. ECS replaces a task that fails its target
  # group's check as it does one that fails its container health check, so
  # this check must not fail while the process is merely busy: /healthcheck
  # on the API port waits behind --max-connections with every client, and a
  # saturated task would be replaced 2 x 10 s in, its load moving to the
  # rest (tests/e2e/probes.py measures both). /livez on the metrics port
  # answers outside that limit. The port is a number, not "traffic-port":
  # AWS accepts either, and the ALB's security group must then reach it
  # too (network.tf: alb_to_tasks_health, metrics_from_alb). Traffic stays
  # on the API port (`port` above); the listeners forward nothing to 9000.
  health_check {
    path                = "/livez"
    port                = tostring(local.metrics_port)
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 10
    timeout             = 3
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "https" {
  count             = local.https ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
}

# With a certificate: a permanent redirect to HTTPS. Without one (only with
# allow_plain_http): the service itself, over plain HTTP.
resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2:Port 80 only redirects to HTTPS; it serves plain HTTP only when allow_plain_http is set on purpose.
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = local.https ? "redirect" : "forward"
    target_group_arn = local.https ? null : aws_lb_target_group.this.arn

    dynamic "redirect" {
      for_each = local.https ? [1] : []
      content {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }
}
