#!/usr/bin/env bash
# Builds the starting world of the nacl-vs-sg lab: a public subnet and a web server
# whose security group is already right. The subnet uses the VPC's default network ACL,
# which allows everything in and out.
set -euo pipefail
VPC=$(aws ec2 create-vpc --cidr-block "$LAB_VPC_CIDR" \
  --tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=edge-vpc}]' \
  --query Vpc.VpcId --output text)
SUBNET=$(aws ec2 create-subnet --vpc-id "$VPC" --cidr-block "$LAB_SUBNET_CIDR" \
  --tag-specifications 'ResourceType=subnet,Tags=[{Key=Name,Value=edge}]' \
  --query Subnet.SubnetId --output text)
aws ec2 modify-subnet-attribute --subnet-id "$SUBNET" --map-public-ip-on-launch
IGW=$(aws ec2 create-internet-gateway --query InternetGateway.InternetGatewayId --output text)
aws ec2 attach-internet-gateway --internet-gateway-id "$IGW" --vpc-id "$VPC"
RT=$(aws ec2 create-route-table --vpc-id "$VPC" --query RouteTable.RouteTableId --output text)
aws ec2 create-route --route-table-id "$RT" --destination-cidr-block 0.0.0.0/0 \
  --gateway-id "$IGW" >/dev/null
aws ec2 associate-route-table --route-table-id "$RT" --subnet-id "$SUBNET" >/dev/null
SG=$(aws ec2 create-security-group --group-name edge-web --description "edge web server" \
  --vpc-id "$VPC" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$SG" \
  --protocol tcp --port 22 --cidr "$(vpclab whoami)/32"
aws ec2 authorize-security-group-ingress --group-id "$SG" \
  --protocol tcp --port 80 --cidr 0.0.0.0/0
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
ID=$(aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro --subnet-id "$SUBNET" \
  --security-group-ids "$SG" \
  --tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=edge-web}]' \
  --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$ID"
