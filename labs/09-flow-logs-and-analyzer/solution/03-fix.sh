#!/usr/bin/env bash
# Reference solution, step 3: an outbound entry for the ephemeral ports the reply goes
# to, then the same path analysed again.
set -euo pipefail
ACL=$(aws ec2 describe-network-acls --filters Name=tag:Name,Values=app-acl \
  --query 'NetworkAcls[0].NetworkAclId' --output text)
aws ec2 create-network-acl-entry --network-acl-id "$ACL" --egress --rule-number 120 \
  --protocol tcp --port-range From=1024,To=65535 --cidr-block 0.0.0.0/0 --rule-action allow
PATH_ID=$(aws ec2 describe-network-insights-paths \
  --query 'NetworkInsightsPaths[0].NetworkInsightsPathId' --output text)
aws ec2 start-network-insights-analysis --network-insights-path-id "$PATH_ID" >/dev/null
