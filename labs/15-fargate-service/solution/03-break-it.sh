#!/usr/bin/env bash
# Reference solution, step 3: take away the rule that admits the load balancer, then
# read the reason the targets give.
set -euo pipefail
ALB_SG=$(aws ec2 describe-security-groups --group-names "$LAB_ALB_SG" \
  --query 'SecurityGroups[0].GroupId' --output text)
TASK_SG=$(aws ec2 describe-security-groups --group-names "$LAB_TASK_SG" \
  --query 'SecurityGroups[0].GroupId' --output text)
aws ec2 revoke-security-group-ingress --group-id "$TASK_SG" \
  --protocol tcp --port 80 --source-group "$ALB_SG" > /dev/null
vpclab lab answer why Target.Timeout
