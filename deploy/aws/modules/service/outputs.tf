output "alb_dns_name" {
  description = "The load balancer's DNS name: point your domain's record at it."
  value       = aws_lb.this.dns_name
}

output "cluster_name" {
  description = "The ECS cluster (scripts/deploy-ecs.sh --cluster)."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "The ECS service (scripts/deploy-ecs.sh --service)."
  value       = aws_ecs_service.this.name
}

output "task_family" {
  description = "The task definition family new revisions are registered in."
  value       = aws_ecs_task_definition.this.family
}

output "log_group" {
  description = "Where the service's JSON logs go."
  value       = aws_cloudwatch_log_group.this.name
}

output "execution_role_arn" {
  description = "The task execution role (the release role may pass it)."
  value       = aws_iam_role.execution.arn
}

output "task_role_arn" {
  description = "The task role (the release role may pass it)."
  value       = aws_iam_role.task.arn
}

output "tasks_security_group_id" {
  description = "The tasks' security group: allow it from a scraper, or add metrics_security_group_ids."
  value       = aws_security_group.tasks.id
}

# Names only, from the variables: no resource behind them, so the registry
# module can be planned and applied before any of this module's resources
# (terraform apply -target=module.registry plans nothing of this module).
output "deploy_target" {
  description = "What the release role may deploy: cluster, service, task family and the two roles it may pass, by name."
  value = {
    cluster_name        = local.cluster_name
    service_name        = var.name
    family              = local.family
    execution_role_name = local.execution_role_name
    task_role_name      = local.task_role_name
  }
}

output "task_definition_arn" {
  description = "The revision Terraform registered last: scripts/deploy-ecs.sh --base-revision ships a change Terraform made to it."
  value       = aws_ecs_task_definition.this.arn
}
