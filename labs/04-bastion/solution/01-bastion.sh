#!/usr/bin/env bash
# Reference solution, step 1: key pair, bastion-sg (SSH from my address), the bastion.
set -euo pipefail
aws ec2 create-key-pair --key-name "$LAB_KEY_NAME" \
  --query KeyMaterial --output text > "$LAB_KEY_NAME.pem"
chmod 400 "$LAB_KEY_NAME.pem"
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=jump-vpc \
  --query 'Vpcs[0].VpcId' --output text)
PUBLIC=$(aws ec2 describe-subnets --filters Name=tag:Name,Values=public \
  --query 'Subnets[0].SubnetId' --output text)
SG=$(aws ec2 create-security-group --group-name bastion-sg --vpc-id "$VPC" \
  --description "SSH from my address only" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$SG" \
  --protocol tcp --port 22 --cidr "$(vpclab whoami)/32"
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
ID=$(aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro \
  --subnet-id "$PUBLIC" --key-name "$LAB_KEY_NAME" --security-group-ids "$SG" \
  --tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=bastion}]' \
  --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$ID"
IP=$(aws ec2 describe-instances --instance-ids "$ID" \
  --query 'Reservations[0].Instances[0].PublicIpAddress' --output text)
ssh -F /dev/null -i "$LAB_KEY_NAME.pem" -o BatchMode=yes \
  -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=known_hosts \
  -o ProxyCommand='vpclab connect %h %p' "ec2-user@$IP" hostname
