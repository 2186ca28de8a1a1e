#!/usr/bin/env bash
# Reference solution, step 3: a launch template whose user data installs httpd, and an
# Auto Scaling group of two instances registered in the target group.
set -euo pipefail
AMI=$(aws ec2 describe-images --owners amazon \
  --filters 'Name=name,Values=al2023-ami-*' \
  --query 'sort_by(Images, &CreationDate)[-1].ImageId' --output text)
WEB_SG=$(aws ec2 describe-security-groups --group-names "$LAB_WEB_SG" \
  --query 'SecurityGroups[0].GroupId' --output text)
cat > web.sh <<SCRIPT
#!/bin/bash
dnf install -y httpd
echo "<h1>$LAB_GREETING from \$(hostname -f)</h1>" > /var/www/html/index.html
systemctl enable --now httpd
SCRIPT
# A launch template's user data is base64 (the CLI does not encode it for you here).
DATA=$(base64 -w0 web.sh)
aws ec2 create-launch-template --launch-template-name "$LAB_LT" \
  --launch-template-data "{\"ImageId\":\"$AMI\",\"InstanceType\":\"t3.micro\",\"SecurityGroupIds\":[\"$WEB_SG\"],\"UserData\":\"$DATA\"}" > /dev/null
VPC=$(aws ec2 describe-vpcs --filters Name=is-default,Values=true \
  --query 'Vpcs[0].VpcId' --output text)
SUBNETS=$(aws ec2 describe-subnets --filters Name=vpc-id,Values="$VPC" \
  --query 'sort_by(Subnets, &AvailabilityZone)[0:2].SubnetId' --output text | tr '\t' ',')
TG=$(aws elbv2 describe-target-groups --names "$LAB_TG" \
  --query 'TargetGroups[0].TargetGroupArn' --output text)
aws autoscaling create-auto-scaling-group --auto-scaling-group-name "$LAB_ASG" \
  --launch-template "LaunchTemplateName=$LAB_LT" \
  --min-size 2 --max-size 4 --desired-capacity 2 \
  --vpc-zone-identifier "$SUBNETS" --target-group-arns "$TG" \
  --health-check-type ELB --health-check-grace-period 120
