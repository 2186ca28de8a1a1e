#!/usr/bin/env bash
# Reference solution, step 1: key pair, SSH group, and an instance whose user data
# reads its own instance id with an IMDSv2 token.
set -euo pipefail
aws ec2 create-key-pair --key-name "$LAB_KEY_NAME" \
  --query KeyMaterial --output text > "$LAB_KEY_NAME.pem"
chmod 400 "$LAB_KEY_NAME.pem"
SG=$(aws ec2 create-security-group --group-name "$LAB_SG_NAME" \
  --description "SSH from my address" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$SG" \
  --protocol tcp --port 22 --cidr "$(vpclab whoami)/32"
cat > boot.sh <<'SCRIPT'
#!/bin/bash
TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
curl -s -H "X-aws-ec2-metadata-token: $TOKEN" \
  http://169.254.169.254/latest/meta-data/instance-id > /var/tmp/instance-id
echo "user data ran" >> /var/tmp/user-data-runs
SCRIPT
AMI=$(aws ec2 describe-images --owners amazon --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images,&CreationDate)[-1].ImageId' --output text)
ID=$(aws ec2 run-instances --image-id "$AMI" --instance-type t2.micro \
  --key-name "$LAB_KEY_NAME" --security-group-ids "$SG" --user-data file://boot.sh \
  --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$LAB_INSTANCE_NAME}]" \
  --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$ID"
