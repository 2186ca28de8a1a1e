#!/usr/bin/env bash
# Reference solution, step 4: an Elastic IP associated with the instance, which keeps
# it across another stop and start.
set -euo pipefail
ID=$(aws ec2 describe-instances --filters "Name=tag:Name,Values=$LAB_INSTANCE_NAME" \
  Name=instance-state-name,Values=running \
  --query 'Reservations[0].Instances[0].InstanceId' --output text)
ALLOC=$(aws ec2 allocate-address --domain vpc --query AllocationId --output text)
EIP=$(aws ec2 describe-addresses --allocation-ids "$ALLOC" \
  --query 'Addresses[0].PublicIp' --output text)
aws ec2 associate-address --instance-id "$ID" --allocation-id "$ALLOC" >/dev/null
aws ec2 stop-instances --instance-ids "$ID" >/dev/null
aws ec2 wait instance-stopped --instance-ids "$ID"
aws ec2 start-instances --instance-ids "$ID" >/dev/null
aws ec2 wait instance-running --instance-ids "$ID"
AFTER=$(aws ec2 describe-instances --instance-ids "$ID" \
  --query 'Reservations[0].Instances[0].PublicIpAddress' --output text)
echo "Elastic IP $EIP, public address after the restart: $AFTER"
if [ "$EIP" = "$AFTER" ]; then
  vpclab lab answer eip-survives no
else
  vpclab lab answer eip-survives yes
fi
# The page, at the Elastic IP, from this computer (httpd was enabled, so it is back).
for _ in $(seq 60); do
  if printf 'GET / HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n' \
      | vpclab connect --timeout 3 "$EIP" 80 2>/dev/null | grep -q "$LAB_GREETING"; then
    exit 0
  fi
  sleep 1
done
echo "the page never answered at $EIP" >&2
exit 1
