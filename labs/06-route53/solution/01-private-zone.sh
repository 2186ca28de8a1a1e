#!/usr/bin/env bash
# Reference solution, step 1: both DNS attributes on, a private zone for dns-vpc, and
# app.<zone> pointing at web's private address.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=dns-vpc \
  --query 'Vpcs[0].VpcId' --output text)
# One attribute per call; support is already on in a new VPC, set it anyway.
aws ec2 modify-vpc-attribute --vpc-id "$VPC" --enable-dns-support '{"Value":true}'
aws ec2 modify-vpc-attribute --vpc-id "$VPC" --enable-dns-hostnames '{"Value":true}'
ZONE=$(aws route53 create-hosted-zone --name "$LAB_ZONE" --caller-reference "private-$$" \
  --vpc "VPCRegion=us-east-1,VPCId=$VPC" --query HostedZone.Id --output text)
WEB=$(aws ec2 describe-instances --filters Name=tag:Name,Values=web \
  Name=instance-state-name,Values=running \
  --query 'Reservations[0].Instances[0].PrivateIpAddress' --output text)
cat > app-record.json <<JSON
{"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
  "Name": "app.$LAB_ZONE", "Type": "A", "TTL": 300,
  "ResourceRecords": [{"Value": "$WEB"}]}}]}
JSON
aws route53 change-resource-record-sets --hosted-zone-id "$ZONE" \
  --change-batch file://app-record.json >/dev/null
