#!/usr/bin/env bash
# Reference solution, step 3: SSH from the learner's address only, HTTP from anywhere.
set -euo pipefail
MYIP=$(vpclab whoami)
# No --vpc-id: the group is created in the default VPC.
SG=$(aws ec2 create-security-group --group-name "$LAB_SG_NAME" \
  --description "SSH from my address, HTTP from anywhere" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$SG" \
  --protocol tcp --port 22 --cidr "$MYIP/32"
aws ec2 authorize-security-group-ingress --group-id "$SG" \
  --protocol tcp --port 80 --cidr 0.0.0.0/0
