#!/usr/bin/env bash
# Reference solution, step 4: a NAT gateway in the public subnet, the private subnet's
# default route through it.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=lab-vpc \
  --query 'Vpcs[0].VpcId' --output text)
PUBLIC=$(aws ec2 describe-subnets --filters Name=tag:Name,Values=public \
  --query 'Subnets[0].SubnetId' --output text)
PRIVATE=$(aws ec2 describe-subnets --filters Name=tag:Name,Values=private \
  --query 'Subnets[0].SubnetId' --output text)
EIP=$(aws ec2 allocate-address --domain vpc --query AllocationId --output text)
NAT=$(aws ec2 create-nat-gateway --subnet-id "$PUBLIC" --allocation-id "$EIP" \
  --query NatGateway.NatGatewayId --output text)
aws ec2 wait nat-gateway-available --nat-gateway-ids "$NAT"
RT=$(aws ec2 create-route-table --vpc-id "$VPC" --query RouteTable.RouteTableId --output text)
aws ec2 create-route --route-table-id "$RT" --destination-cidr-block 0.0.0.0/0 \
  --nat-gateway-id "$NAT" >/dev/null
aws ec2 associate-route-table --route-table-id "$RT" --subnet-id "$PRIVATE" >/dev/null
