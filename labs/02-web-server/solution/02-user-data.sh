#!/usr/bin/env bash
# Reference solution, step 2: a t2.micro whose user data installs, enables and starts
# httpd, then the page fetched from this computer through `vpclab connect`.
set -euo pipefail
cat > web.sh <<SCRIPT
#!/bin/bash
dnf install -y httpd
echo "<h1>$LAB_GREETING</h1>" > /var/www/html/index.html
systemctl enable --now httpd
SCRIPT
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
SG=$(aws ec2 describe-security-groups --group-names "$LAB_SG_NAME" \
  --query 'SecurityGroups[0].GroupId' --output text)
ID=$(aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro \
  --security-group-ids "$SG" --user-data file://web.sh \
  --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$LAB_INSTANCE_NAME}]" \
  --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$ID"
IP=$(aws ec2 describe-instances --instance-ids "$ID" \
  --query 'Reservations[0].Instances[0].PublicIpAddress' --output text)
# The user data may still be installing httpd: try for up to a minute.
for _ in $(seq 60); do
  if printf 'GET / HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n' \
      | vpclab connect --timeout 3 "$IP" 80 2>/dev/null | grep -q "$LAB_GREETING"; then
    exit 0
  fi
  sleep 1
done
echo "the page never answered at $IP" >&2
exit 1
