#!/usr/bin/env bash
# Builds the starting world of the private-s3-endpoint lab: a private subnet with its own
# route table that routes nothing but the VPC itself, a worker instance in it, and two
# buckets anyone may read (the team's, and one elsewhere).
set -euo pipefail
VPC=$(aws ec2 create-vpc --cidr-block "$LAB_VPC_CIDR" \
  --tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=data-vpc}]' \
  --query Vpc.VpcId --output text)
SUBNET=$(aws ec2 create-subnet --vpc-id "$VPC" --cidr-block "$LAB_SUBNET_CIDR" \
  --availability-zone us-east-1a \
  --tag-specifications 'ResourceType=subnet,Tags=[{Key=Name,Value=data-private}]' \
  --query Subnet.SubnetId --output text)
RT=$(aws ec2 create-route-table --vpc-id "$VPC" \
  --tag-specifications 'ResourceType=route-table,Tags=[{Key=Name,Value=data-private}]' \
  --query RouteTable.RouteTableId --output text)
aws ec2 associate-route-table --route-table-id "$RT" --subnet-id "$SUBNET" >/dev/null
SG=$(aws ec2 create-security-group --group-name worker --description "worker: no inbound" \
  --vpc-id "$VPC" --query GroupId --output text)
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
ID=$(aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro --subnet-id "$SUBNET" \
  --security-group-ids "$SG" \
  --tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=worker}]' \
  --query 'Instances[0].InstanceId' --output text)
# Two buckets whose objects anyone may read, so the worker needs no credentials: what
# decides is the network path and the endpoint policy.
readable_bucket() {
  local bucket=$1 key=$2 text=$3
  aws s3api create-bucket --bucket "$bucket" >/dev/null
  aws s3api delete-public-access-block --bucket "$bucket"
  cat > policy-$bucket.json <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::$bucket/*"}]}
JSON
  aws s3api put-bucket-policy --bucket "$bucket" --policy "file://policy-$bucket.json"
  printf '%s\n' "$text" > "$key"
  aws s3api put-object --bucket "$bucket" --key "$key" --body "$key" >/dev/null
}
readable_bucket "$LAB_BUCKET" report.txt "$LAB_SECRET"
readable_bucket "$LAB_OTHER" notes.txt "notes kept elsewhere"
aws ec2 wait instance-running --instance-ids "$ID"
