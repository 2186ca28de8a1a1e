#!/usr/bin/env bash
# Reference solution, step 4: a t2.micro in the default VPC, then wait for it.
set -euo pipefail
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
SG=$(aws ec2 describe-security-groups --group-names "$LAB_SG_NAME" \
  --query 'SecurityGroups[0].GroupId' --output text)
ID=$(aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro \
  --key-name "$LAB_KEY_NAME" --security-group-ids "$SG" \
  --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$LAB_INSTANCE_NAME}]" \
  --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$ID"
