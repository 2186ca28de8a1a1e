#!/usr/bin/env bash
# Builds the starting world of the bastion lab: the network of the custom-vpc lab,
# without the NAT gateway (the private instance needs no internet here).
set -euo pipefail
VPC=$(aws ec2 create-vpc --cidr-block "$LAB_VPC_CIDR" \
  --tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=jump-vpc}]' \
  --query Vpc.VpcId --output text)
PUBLIC=$(aws ec2 create-subnet --vpc-id "$VPC" --cidr-block "$LAB_PUBLIC_CIDR" \
  --tag-specifications 'ResourceType=subnet,Tags=[{Key=Name,Value=public}]' \
  --query Subnet.SubnetId --output text)
aws ec2 create-subnet --vpc-id "$VPC" --cidr-block "$LAB_PRIVATE_CIDR" \
  --tag-specifications 'ResourceType=subnet,Tags=[{Key=Name,Value=private}]' >/dev/null
aws ec2 modify-subnet-attribute --subnet-id "$PUBLIC" --map-public-ip-on-launch
IGW=$(aws ec2 create-internet-gateway --query InternetGateway.InternetGatewayId --output text)
aws ec2 attach-internet-gateway --internet-gateway-id "$IGW" --vpc-id "$VPC"
RT=$(aws ec2 create-route-table --vpc-id "$VPC" \
  --tag-specifications 'ResourceType=route-table,Tags=[{Key=Name,Value=public}]' \
  --query RouteTable.RouteTableId --output text)
aws ec2 create-route --route-table-id "$RT" --destination-cidr-block 0.0.0.0/0 \
  --gateway-id "$IGW" >/dev/null
aws ec2 associate-route-table --route-table-id "$RT" --subnet-id "$PUBLIC" >/dev/null
