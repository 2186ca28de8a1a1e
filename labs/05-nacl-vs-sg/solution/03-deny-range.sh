#!/usr/bin/env bash
# Reference solution, step 3: an inbound deny for the range, before the allow entries.
set -euo pipefail
ACL=$(aws ec2 describe-network-acls --filters Name=tag:Name,Values=edge-acl \
  --query 'NetworkAcls[0].NetworkAclId' --output text)
aws ec2 create-network-acl-entry --network-acl-id "$ACL" --ingress \
  --rule-number "$LAB_DENY_RULE" --protocol -1 --cidr-block 198.51.100.0/24 --rule-action deny
# Security groups have allow rules only.
vpclab lab answer sg-cannot-deny no
