#!/usr/bin/env bash
# Reference solution, step 5: an instance without a public address in the private subnet.
set -euo pipefail
PRIVATE=$(aws ec2 describe-subnets --filters Name=tag:Name,Values=private \
  --query 'Subnets[0].SubnetId' --output text)
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
ID=$(aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro --subnet-id "$PRIVATE" \
  --tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=app}]' \
  --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$ID"
# A NAT gateway only carries connections started from inside.
vpclab lab answer why-no-inbound no
