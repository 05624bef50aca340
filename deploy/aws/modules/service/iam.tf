# Two roles, as ECS separates them: the execution role lets the ECS agent
# pull the image and write the logs; the task role is what the api itself
# may do in AWS, which is nothing (it calls no AWS API).

data "aws_partition" "current" {}

# ecs-tasks.amazonaws.com, or its name in the region's partition.
data "aws_service_principal" "ecs_tasks" {
  service_name = "ecs-tasks"
}

data "aws_iam_policy_document" "ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [data.aws_service_principal.ecs_tasks.name]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = local.execution_role_name
  description        = "ECS pulls the api image and writes its logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role" "task" {
  name               = local.task_role_name
  description        = "The api's own AWS permissions: none"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
}
