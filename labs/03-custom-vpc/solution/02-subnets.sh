#!/usr/bin/env bash
# Reference solution, step 2: two /24 subnets, the public one assigning public addresses.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=lab-vpc \
  --query 'Vpcs[0].VpcId' --output text)
PUBLIC=$(aws ec2 create-subnet --vpc-id "$VPC" --cidr-block "$LAB_PUBLIC_CIDR" \
  --tag-specifications 'ResourceType=subnet,Tags=[{Key=Name,Value=public}]' \
  --query Subnet.SubnetId --output text)
aws ec2 create-subnet --vpc-id "$VPC" --cidr-block "$LAB_PRIVATE_CIDR" \
  --tag-specifications 'ResourceType=subnet,Tags=[{Key=Name,Value=private}]' >/dev/null
aws ec2 modify-subnet-attribute --subnet-id "$PUBLIC" --map-public-ip-on-launch
