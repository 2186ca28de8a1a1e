#!/usr/bin/env bash
# Reference solution, step 3: db's group admits SSH from members of app's group, a
# group of the peer VPC.
set -euo pipefail
group() {
  aws ec2 describe-security-groups --filters "Name=group-name,Values=$1" \
    --query 'SecurityGroups[0].GroupId' --output text
}
aws ec2 authorize-security-group-ingress --group-id "$(group db-sg)" \
  --protocol tcp --port 22 --source-group "$(group app-sg)" >/dev/null
# Peering is not transitive: traffic may cross one connection only, between the two
# VPCs' own blocks (VPC Peering Guide, "unsupported configurations").
vpclab lab answer transitive-quiz "no"
