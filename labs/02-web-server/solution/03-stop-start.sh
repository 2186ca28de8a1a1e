#!/usr/bin/env bash
# Reference solution, step 3: stop and start, and compare the public addresses.
set -euo pipefail
ID=$(aws ec2 describe-instances --filters "Name=tag:Name,Values=$LAB_INSTANCE_NAME" \
  Name=instance-state-name,Values=running \
  --query 'Reservations[0].Instances[0].InstanceId' --output text)
ip() {
  aws ec2 describe-instances --instance-ids "$ID" \
    --query 'Reservations[0].Instances[0].PublicIpAddress' --output text
}
BEFORE=$(ip)
aws ec2 stop-instances --instance-ids "$ID" >/dev/null
aws ec2 wait instance-stopped --instance-ids "$ID"
aws ec2 start-instances --instance-ids "$ID" >/dev/null
aws ec2 wait instance-running --instance-ids "$ID"
AFTER=$(ip)
echo "public address before: $BEFORE, after: $AFTER"
if [ "$BEFORE" = "$AFTER" ]; then
  vpclab lab answer address-kept yes
else
  vpclab lab answer address-kept no
fi
