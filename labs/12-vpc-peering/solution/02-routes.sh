#!/usr/bin/env bash
# Reference solution, step 2: each VPC's main route table (the one its subnet uses)
# routes the other VPC's block over the peering.
set -euo pipefail
PCX=$(aws ec2 describe-vpc-peering-connections --filters Name=status-code,Values=active \
  --query 'VpcPeeringConnections[0].VpcPeeringConnectionId' --output text)
main_table() {
  local vpc
  vpc=$(aws ec2 describe-vpcs --filters "Name=tag:Name,Values=$1" --query 'Vpcs[0].VpcId' --output text)
  aws ec2 describe-route-tables --filters "Name=vpc-id,Values=$vpc" Name=association.main,Values=true \
    --query 'RouteTables[0].RouteTableId' --output text
}
aws ec2 create-route --route-table-id "$(main_table app-vpc)" \
  --destination-cidr-block "$LAB_DB_CIDR" --vpc-peering-connection-id "$PCX" >/dev/null
aws ec2 create-route --route-table-id "$(main_table db-vpc)" \
  --destination-cidr-block "$LAB_APP_CIDR" --vpc-peering-connection-id "$PCX" >/dev/null
