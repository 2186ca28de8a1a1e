#!/usr/bin/env bash
# Reference solution, step 1: the two groups, an ip target group, the ALB and its
# listener, in two default subnets.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=is-default,Values=true \
  --query 'Vpcs[0].VpcId' --output text)
SUBNETS=$(aws ec2 describe-subnets --filters Name=vpc-id,Values="$VPC" \
  --query 'sort_by(Subnets, &AvailabilityZone)[0:2].SubnetId' --output text)
ALB_SG=$(aws ec2 create-security-group --group-name "$LAB_ALB_SG" \
  --description "load balancer" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$ALB_SG" \
  --protocol tcp --port 80 --cidr 0.0.0.0/0
TASK_SG=$(aws ec2 create-security-group --group-name "$LAB_TASK_SG" \
  --description "tasks: HTTP from the load balancer" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$TASK_SG" \
  --protocol tcp --port 80 --source-group "$ALB_SG"
TG=$(aws elbv2 create-target-group --name "$LAB_TG" --protocol HTTP --port 80 \
  --target-type ip --vpc-id "$VPC" \
  --health-check-interval-seconds 10 --health-check-timeout-seconds 5 \
  --healthy-threshold-count 2 --unhealthy-threshold-count 2 \
  --query 'TargetGroups[0].TargetGroupArn' --output text)
# shellcheck disable=SC2086
LB=$(aws elbv2 create-load-balancer --name "$LAB_ALB" --subnets $SUBNETS \
  --security-groups "$ALB_SG" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
aws elbv2 create-listener --load-balancer-arn "$LB" --protocol HTTP --port 80 \
  --default-actions Type=forward,TargetGroupArn="$TG" > /dev/null
aws elbv2 wait load-balancer-available --load-balancer-arns "$LB"
