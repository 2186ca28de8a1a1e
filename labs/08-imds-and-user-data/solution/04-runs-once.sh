#!/usr/bin/env bash
# Reference solution, step 4: reboot, wait for SSH, count the user data's lines.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ID=$(aws ec2 describe-instances --filters "Name=tag:Name,Values=$LAB_INSTANCE_NAME" \
  Name=instance-state-name,Values=running \
  --query 'Reservations[0].Instances[0].InstanceId' --output text)
aws ec2 reboot-instances --instance-ids "$ID"
for _ in $(seq 30); do
  if LINES=$(on_instance 'cat /var/tmp/user-data-runs | wc -l' 2>/dev/null); then
    break
  fi
  sleep 1
done
LINES=$(echo "$LINES" | tr -d ' ')
echo "user data runs recorded after the reboot: $LINES"
vpclab lab answer runs-after-reboot "$LINES"
