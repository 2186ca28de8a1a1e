#!/usr/bin/env bash
# Reference solution, step 2: a target group with quick health checks, an
# internet-facing ALB in two of the default VPC's subnets, and an HTTP listener.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=is-default,Values=true \
  --query 'Vpcs[0].VpcId' --output text)
# One default subnet in each of two Availability Zones.
SUBNETS=$(aws ec2 describe-subnets --filters Name=vpc-id,Values="$VPC" \
  --query 'sort_by(Subnets, &AvailabilityZone)[0:2].SubnetId' --output text)
ALB_SG=$(aws ec2 describe-security-groups --group-names "$LAB_ALB_SG" \
  --query 'SecurityGroups[0].GroupId' --output text)
TG=$(aws elbv2 create-target-group --name "$LAB_TG" --protocol HTTP --port 80 \
  --vpc-id "$VPC" --health-check-path / \
  --health-check-interval-seconds 10 --health-check-timeout-seconds 5 \
  --healthy-threshold-count 2 --unhealthy-threshold-count 2 \
  --query 'TargetGroups[0].TargetGroupArn' --output text)
# $SUBNETS is two words on purpose: --subnets takes a list.
# shellcheck disable=SC2086
LB=$(aws elbv2 create-load-balancer --name "$LAB_ALB" --subnets $SUBNETS \
  --security-groups "$ALB_SG" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
aws elbv2 create-listener --load-balancer-arn "$LB" --protocol HTTP --port 80 \
  --default-actions Type=forward,TargetGroupArn="$TG" > /dev/null
aws elbv2 wait load-balancer-available --load-balancer-arns "$LB"
