#!/usr/bin/env bash
# Reference solution, step 3: an internet gateway and a route table for the public subnet.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=lab-vpc \
  --query 'Vpcs[0].VpcId' --output text)
PUBLIC=$(aws ec2 describe-subnets --filters Name=tag:Name,Values=public \
  --query 'Subnets[0].SubnetId' --output text)
IGW=$(aws ec2 create-internet-gateway --query InternetGateway.InternetGatewayId --output text)
aws ec2 attach-internet-gateway --internet-gateway-id "$IGW" --vpc-id "$VPC"
RT=$(aws ec2 create-route-table --vpc-id "$VPC" --query RouteTable.RouteTableId --output text)
aws ec2 create-route --route-table-id "$RT" --destination-cidr-block 0.0.0.0/0 \
  --gateway-id "$IGW" >/dev/null
aws ec2 associate-route-table --route-table-id "$RT" --subnet-id "$PUBLIC" >/dev/null
