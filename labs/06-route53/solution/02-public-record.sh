#!/usr/bin/env bash
# Reference solution, step 2: a public zone and www.<domain> at web's public address.
set -euo pipefail
ZONE=$(aws route53 create-hosted-zone --name "$LAB_DOMAIN" --caller-reference "public-$$" \
  --query HostedZone.Id --output text)
WEB=$(aws ec2 describe-instances --filters Name=tag:Name,Values=web \
  Name=instance-state-name,Values=running \
  --query 'Reservations[0].Instances[0].PublicIpAddress' --output text)
cat > www-record.json <<JSON
{"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
  "Name": "www.$LAB_DOMAIN", "Type": "A", "TTL": 60,
  "ResourceRecords": [{"Value": "$WEB"}]}}]}
JSON
aws route53 change-resource-record-sets --hosted-zone-id "$ZONE" \
  --change-batch file://www-record.json >/dev/null
