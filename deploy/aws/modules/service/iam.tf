# Two roles, as ECS separates them: the execution role lets the ECS agent
# pull the image and write the logs; the task role is what the api itself
# may do in AWS, which is nothing (it calls no AWS API), and, with
# xray_tracing, what its collector sidecar needs to send spans to X-Ray.

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
  description        = var.xray_tracing ? "The api's own AWS permissions: none; its ADOT collector's: X-Ray writes" : "The api's own AWS permissions: none"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
}

# What the ADOT collector's X-Ray exporter calls: segments, and its own
# telemetry records. X-Ray's sampling calls (GetSampling*) are left out:
# the api samples itself (OTEL_TRACES_SAMPLER). These actions name no
# resource (the Service Authorization Reference lists none for them),
# hence "*".
data "aws_iam_policy_document" "xray" {
  statement {
    sid       = "SendSpansToXRay"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "xray" {
  count  = var.xray_tracing ? 1 : 0
  name   = "xray-write"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.xray.json
}
