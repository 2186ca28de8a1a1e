#!/usr/bin/env bash
# Builds the broken starting world of the flow-logs-and-analyzer lab. Reading this spoils
# the lab: the fault is marked FAULT.
set -euo pipefail
VPC=$(aws ec2 create-vpc --cidr-block "$LAB_VPC_CIDR" \
  --tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=app-vpc}]' \
  --query Vpc.VpcId --output text)
SUBNET=$(aws ec2 create-subnet --vpc-id "$VPC" --cidr-block "$LAB_SUBNET_CIDR" \
  --tag-specifications 'ResourceType=subnet,Tags=[{Key=Name,Value=app-public}]' \
  --query Subnet.SubnetId --output text)
aws ec2 modify-subnet-attribute --subnet-id "$SUBNET" --map-public-ip-on-launch
IGW=$(aws ec2 create-internet-gateway \
  --tag-specifications 'ResourceType=internet-gateway,Tags=[{Key=Name,Value=app-igw}]' \
  --query InternetGateway.InternetGatewayId --output text)
aws ec2 attach-internet-gateway --internet-gateway-id "$IGW" --vpc-id "$VPC"
RT=$(aws ec2 create-route-table --vpc-id "$VPC" \
  --tag-specifications 'ResourceType=route-table,Tags=[{Key=Name,Value=app-public}]' \
  --query RouteTable.RouteTableId --output text)
aws ec2 associate-route-table --route-table-id "$RT" --subnet-id "$SUBNET" >/dev/null
aws ec2 create-route --route-table-id "$RT" --destination-cidr-block 0.0.0.0/0 \
  --gateway-id "$IGW" >/dev/null
SG=$(aws ec2 create-security-group --group-name app-ssh --description "SSH to app" \
  --vpc-id "$VPC" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$SG" \
  --protocol tcp --port 22 --cidr 0.0.0.0/0 >/dev/null
# The subnet's own network ACL: SSH in is allowed...
ACL=$(aws ec2 create-network-acl --vpc-id "$VPC" \
  --tag-specifications 'ResourceType=network-acl,Tags=[{Key=Name,Value=app-acl}]' \
  --query NetworkAcl.NetworkAclId --output text)
aws ec2 create-network-acl-entry --network-acl-id "$ACL" --ingress --rule-number 100 \
  --protocol tcp --port-range From=22,To=22 --cidr-block 0.0.0.0/0 --rule-action allow
aws ec2 create-network-acl-entry --network-acl-id "$ACL" --ingress --rule-number 110 \
  --protocol tcp --port-range From=1024,To=65535 --cidr-block 0.0.0.0/0 --rule-action allow
# FAULT: ...but outbound only web traffic may leave: the reply to SSH (to the client's
# ephemeral port) matches nothing and falls to the final deny.
aws ec2 create-network-acl-entry --network-acl-id "$ACL" --egress --rule-number 100 \
  --protocol tcp --port-range From=80,To=80 --cidr-block 0.0.0.0/0 --rule-action allow
aws ec2 create-network-acl-entry --network-acl-id "$ACL" --egress --rule-number 110 \
  --protocol tcp --port-range From=443,To=443 --cidr-block 0.0.0.0/0 --rule-action allow
ASSOC=$(aws ec2 describe-network-acls --filters "Name=association.subnet-id,Values=$SUBNET" \
  --query "NetworkAcls[0].Associations[?SubnetId=='$SUBNET'].NetworkAclAssociationId | [0]" \
  --output text)
aws ec2 replace-network-acl-association --association-id "$ASSOC" --network-acl-id "$ACL" >/dev/null
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
ID=$(aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro --subnet-id "$SUBNET" \
  --security-group-ids "$SG" \
  --tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=app}]' \
  --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$ID"
