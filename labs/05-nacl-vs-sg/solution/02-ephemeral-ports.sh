#!/usr/bin/env bash
# Reference solution, step 2: replies leave to the clients' ephemeral ports.
set -euo pipefail
ACL=$(aws ec2 describe-network-acls --filters Name=tag:Name,Values=edge-acl \
  --query 'NetworkAcls[0].NetworkAclId' --output text)
aws ec2 create-network-acl-entry --network-acl-id "$ACL" --egress --rule-number 100 \
  --protocol tcp --port-range From=1024,To=65535 --cidr-block 0.0.0.0/0 --rule-action allow
