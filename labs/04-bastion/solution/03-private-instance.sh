#!/usr/bin/env bash
# Reference solution, step 3: the private instance, no public address.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=jump-vpc \
  --query 'Vpcs[0].VpcId' --output text)
PRIVATE=$(aws ec2 describe-subnets --filters Name=tag:Name,Values=private \
  --query 'Subnets[0].SubnetId' --output text)
SG=$(aws ec2 describe-security-groups \
  --filters "Name=vpc-id,Values=$VPC" Name=group-name,Values=app-sg \
  --query 'SecurityGroups[0].GroupId' --output text)
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
ID=$(aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro \
  --subnet-id "$PRIVATE" --key-name "$LAB_KEY_NAME" --security-group-ids "$SG" \
  --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$LAB_APP_NAME}]" \
  --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$ID"
