# Who may talk to whom: the internet reaches the ALB on 443 (and 80, which
# redirects); only the ALB reaches the tasks' API port; the metrics port is
# open to the scrapers named in the variables and to the ALB's health check
# (/livez, alb.tf), never to anywhere: no listener forwards to it, so the
# internet cannot reach /metrics through the ALB.
#
# EC2 accepts only a-z A-Z 0-9 space and ._-:/()#,@[]+=&;{}!$* in group and
# rule descriptions (no apostrophes), and no & in rules that reference a
# group: tests/aws/check_constraints.py reads those sets from EC2's API model.

resource "aws_security_group" "alb" {
  name        = "${var.name}-${var.environment}-alb"
  description = "api load balancer: HTTPS (and HTTP, redirected) from anywhere"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb" {
  for_each = {
    for rule in setproduct(local.https ? [443, 80] : [80], ["0.0.0.0/0", "::/0"]) :
    "${rule[0]}-${rule[1]}" => { port = rule[0], cidr = rule[1] }
  }
  security_group_id = aws_security_group.alb.id
  description       = each.value.port == 443 ? "HTTPS from anywhere" : (local.https ? "HTTP from anywhere, redirected to HTTPS" : "Plain HTTP from anywhere (allow_plain_http)")
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = strcontains(each.value.cidr, ":") ? null : each.value.cidr
  cidr_ipv6         = strcontains(each.value.cidr, ":") ? each.value.cidr : null
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the API port of the tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.api_port
  to_port                      = local.api_port
  referenced_security_group_id = aws_security_group.tasks.id
}

# The target group's health check asks /livez on the metrics port (alb.tf):
# AWS requires the ALB's security groups to allow the health check port as
# well as the traffic port, both ways.
resource "aws_vpc_security_group_egress_rule" "alb_to_tasks_health" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the metrics port of the tasks: health checks of /livez"
  ip_protocol                  = "tcp"
  from_port                    = local.metrics_port
  to_port                      = local.metrics_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-${var.environment}-tasks"
  description = "api tasks: the API port from the ALB, metrics from the scrapers"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "api_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "API from the load balancer only"
  ip_protocol                  = "tcp"
  from_port                    = local.api_port
  to_port                      = local.api_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "metrics_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Health checks of /livez from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.metrics_port
  to_port                      = local.metrics_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "metrics_from_cidr" {
  for_each          = toset(var.metrics_cidr_blocks)
  security_group_id = aws_security_group.tasks.id
  description       = "Prometheus metrics from the network of a scraper"
  ip_protocol       = "tcp"
  from_port         = local.metrics_port
  to_port           = local.metrics_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "metrics_from_group" {
  for_each                     = toset(var.metrics_security_group_ids)
  security_group_id            = aws_security_group.tasks.id
  description                  = "Prometheus metrics from the security group of a scraper"
  ip_protocol                  = "tcp"
  from_port                    = local.metrics_port
  to_port                      = local.metrics_port
  referenced_security_group_id = each.value
}

# Pulling the image and shipping logs: ECR, S3 (image layers) and
# CloudWatch Logs, all over HTTPS.
resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to ECR, S3 and CloudWatch Logs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}
