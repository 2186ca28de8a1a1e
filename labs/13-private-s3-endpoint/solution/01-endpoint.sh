#!/usr/bin/env bash
# Reference solution, step 1: a gateway endpoint for S3 on the private subnet's route
# table. It adds the route "pl-… (com.amazonaws.us-east-1.s3) → vpce-…".
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=data-vpc \
  --query 'Vpcs[0].VpcId' --output text)
RT=$(aws ec2 describe-route-tables --filters Name=tag:Name,Values=data-private \
  --query 'RouteTables[0].RouteTableId' --output text)
aws ec2 create-vpc-endpoint --vpc-id "$VPC" --vpc-endpoint-type Gateway \
  --service-name com.amazonaws.us-east-1.s3 --route-table-ids "$RT" \
  --tag-specifications 'ResourceType=vpc-endpoint,Tags=[{Key=Name,Value=data-s3}]' >/dev/null
