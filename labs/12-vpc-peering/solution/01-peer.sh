#!/usr/bin/env bash
# Reference solution, step 1: request the peering from app-vpc and accept it (one
# account: the same learner accepts).
set -euo pipefail
vpc_id() {
  aws ec2 describe-vpcs --filters "Name=tag:Name,Values=$1" --query 'Vpcs[0].VpcId' --output text
}
PCX=$(aws ec2 create-vpc-peering-connection --vpc-id "$(vpc_id app-vpc)" \
  --peer-vpc-id "$(vpc_id db-vpc)" \
  --query VpcPeeringConnection.VpcPeeringConnectionId --output text)
aws ec2 accept-vpc-peering-connection --vpc-peering-connection-id "$PCX" >/dev/null
