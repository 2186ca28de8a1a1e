#!/usr/bin/env bash
# Builds the starting world of the vpc-peering lab: two VPCs with one subnet and one
# instance each, nothing between them, and a db security group with no inbound rule.
set -euo pipefail
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
# vpc NAME CIDR SUBNET-CIDR INSTANCE-NAME GROUP → launches the instance; prints nothing.
vpc() {
  local name=$1 cidr=$2 subnet_cidr=$3 instance=$4 group=$5
  local vpc subnet sg
  vpc=$(aws ec2 create-vpc --cidr-block "$cidr" \
    --tag-specifications "ResourceType=vpc,Tags=[{Key=Name,Value=$name-vpc}]" \
    --query Vpc.VpcId --output text)
  subnet=$(aws ec2 create-subnet --vpc-id "$vpc" --cidr-block "$subnet_cidr" \
    --availability-zone us-east-1a \
    --tag-specifications "ResourceType=subnet,Tags=[{Key=Name,Value=$name-subnet}]" \
    --query Subnet.SubnetId --output text)
  sg=$(aws ec2 create-security-group --group-name "$group" --description "$group" \
    --vpc-id "$vpc" --query GroupId --output text)
  aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro --subnet-id "$subnet" \
    --security-group-ids "$sg" \
    --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$instance}]" \
    --query 'Instances[0].InstanceId' --output text
}
APP=$(vpc app "$LAB_APP_CIDR" "$LAB_APP_SUBNET" app app-sg)
DB=$(vpc db "$LAB_DB_CIDR" "$LAB_DB_SUBNET" db db-sg)
aws ec2 wait instance-running --instance-ids "$APP" "$DB"
