#!/usr/bin/env bash
# Reference solution, step 1: a log group, and a flow log of all of app-vpc's traffic.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=app-vpc --query 'Vpcs[0].VpcId' --output text)
aws logs create-log-group --log-group-name app-flow
# vpclab stores the delivery role and does not check it (there is no IAM).
aws ec2 create-flow-logs --resource-type VPC --resource-ids "$VPC" --traffic-type ALL \
  --log-group-name app-flow \
  --deliver-logs-permission-arn arn:aws:iam::000000000000:role/flow-logs >/dev/null
