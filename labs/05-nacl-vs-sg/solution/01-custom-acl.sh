#!/usr/bin/env bash
# Reference solution, step 1: a custom ACL with inbound entries only, associated with
# the subnet; SSH then fails on the way back.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=edge-vpc \
  --query 'Vpcs[0].VpcId' --output text)
SUBNET=$(aws ec2 describe-subnets --filters Name=tag:Name,Values=edge \
  --query 'Subnets[0].SubnetId' --output text)
ACL=$(aws ec2 create-network-acl --vpc-id "$VPC" \
  --tag-specifications 'ResourceType=network-acl,Tags=[{Key=Name,Value=edge-acl}]' \
  --query NetworkAcl.NetworkAclId --output text)
aws ec2 create-network-acl-entry --network-acl-id "$ACL" --ingress --rule-number 100 \
  --protocol tcp --port-range From=22,To=22 --cidr-block "$(vpclab whoami)/32" \
  --rule-action allow
aws ec2 create-network-acl-entry --network-acl-id "$ACL" --ingress --rule-number 110 \
  --protocol tcp --port-range From=80,To=80 --cidr-block 0.0.0.0/0 --rule-action allow
# The subnet's current association (with the default ACL) is replaced, not added to.
ASSOC=$(aws ec2 describe-network-acls --filters "Name=association.subnet-id,Values=$SUBNET" \
  --query "NetworkAcls[0].Associations[?SubnetId=='$SUBNET'].NetworkAclAssociationId" \
  --output text)
aws ec2 replace-network-acl-association --association-id "$ASSOC" \
  --network-acl-id "$ACL" >/dev/null
IP=$(aws ec2 describe-instances --filters Name=tag:Name,Values=edge-web \
  Name=instance-state-name,Values=running \
  --query 'Reservations[0].Instances[0].PublicIpAddress' --output text)
# SSH now times out; vpclab names the entry that dropped the reply.
if WHY=$(vpclab connect --timeout 2 "$IP" 22 </dev/null 2>&1); then
  echo "SSH unexpectedly got through" >&2
  exit 1
fi
echo "$WHY"
case "$WHY" in
  *outbound*) vpclab lab answer which-direction outbound ;;
  *) vpclab lab answer which-direction inbound ;;
esac
