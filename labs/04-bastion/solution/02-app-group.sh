#!/usr/bin/env bash
# Reference solution, step 2: app-sg takes SSH from members of bastion-sg only.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=jump-vpc \
  --query 'Vpcs[0].VpcId' --output text)
BASTION_SG=$(aws ec2 describe-security-groups \
  --filters "Name=vpc-id,Values=$VPC" Name=group-name,Values=bastion-sg \
  --query 'SecurityGroups[0].GroupId' --output text)
SG=$(aws ec2 create-security-group --group-name app-sg --vpc-id "$VPC" \
  --description "SSH from the bastion group" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$SG" \
  --protocol tcp --port 22 --source-group "$BASTION_SG"
