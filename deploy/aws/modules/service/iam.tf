# Two roles, as ECS separates them: the execution role lets the ECS agent
# pull the image and write the logs; the task role is what the api itself
# may do in AWS, which is nothing (it calls no AWS API).

data "aws_iam_policy_document" "ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-${var.environment}-execution"
  description        = "ECS pulls the api image and writes its logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-${var.environment}-task"
  description        = "The api's own AWS permissions: none"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
}
