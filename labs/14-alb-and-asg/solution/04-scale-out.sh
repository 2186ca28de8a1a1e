#!/usr/bin/env bash
# Reference solution, step 4: a simple scaling policy, run by hand (a CloudWatch alarm
# whose action is the policy's ARN would run it the same way).
set -euo pipefail
aws autoscaling put-scaling-policy --auto-scaling-group-name "$LAB_ASG" \
  --policy-name scale-out --adjustment-type ChangeInCapacity --scaling-adjustment 1 \
  --cooldown 60 > /dev/null
aws autoscaling execute-policy --auto-scaling-group-name "$LAB_ASG" --policy-name scale-out
