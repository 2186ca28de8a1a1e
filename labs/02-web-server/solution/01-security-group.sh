#!/usr/bin/env bash
# Reference solution, step 1: HTTP from anywhere, in the default VPC.
set -euo pipefail
SG=$(aws ec2 create-security-group --group-name "$LAB_SG_NAME" \
  --description "HTTP from anywhere" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$SG" \
  --protocol tcp --port 80 --cidr 0.0.0.0/0
