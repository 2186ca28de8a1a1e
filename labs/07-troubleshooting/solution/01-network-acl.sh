#!/usr/bin/env bash
# Reference solution, step 1: delete the entry that denies SSH.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=shop-vpc --query 'Vpcs[0].VpcId' --output text)
ACL=$(aws ec2 describe-network-acls --filters "Name=vpc-id,Values=$VPC" \
  --query 'NetworkAcls[0].NetworkAclId' --output text)
aws ec2 delete-network-acl-entry --network-acl-id "$ACL" --ingress --rule-number "$LAB_DENY_RULE"
