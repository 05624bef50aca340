# Scale on CPU and on requests per task, whichever asks for more tasks;
# scale in slowly.

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity

  lifecycle {
    precondition {
      condition     = var.max_capacity >= var.min_capacity
      error_message = "max_capacity must be at least min_capacity."
    }
  }
}

locals {
  # Each policy keeps one measure near its target; the autoscaler runs as
  # many tasks as the most demanding one asks for.
  scaling_targets = {
    cpu = {
      metric = "ECSServiceAverageCPUUtilization"
      target = var.cpu_target_percent
      label  = null
    }
    requests = {
      metric = "ALBRequestCountPerTarget"
      target = var.requests_per_target
      label  = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}"
    }
  }
}

resource "aws_appautoscaling_policy" "this" {
  for_each           = local.scaling_targets
  name               = "${var.name}-${var.environment}-${each.key}"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = each.value.target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = each.value.metric
      resource_label         = each.value.label
    }
  }
}
