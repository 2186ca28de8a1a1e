#!/usr/bin/env bash
# Reference solution, step 3: the subnet's route table gets its default route.
set -euo pipefail
SUBNET=$(aws ec2 describe-subnets --filters Name=tag:Name,Values=shop-public \
  --query 'Subnets[0].SubnetId' --output text)
RT=$(aws ec2 describe-route-tables --filters "Name=association.subnet-id,Values=$SUBNET" \
  --query 'RouteTables[0].RouteTableId' --output text)
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=shop-vpc --query 'Vpcs[0].VpcId' --output text)
IGW=$(aws ec2 describe-internet-gateways --filters "Name=attachment.vpc-id,Values=$VPC" \
  --query 'InternetGateways[0].InternetGatewayId' --output text)
aws ec2 create-route --route-table-id "$RT" --destination-cidr-block 0.0.0.0/0 \
  --gateway-id "$IGW" >/dev/null
