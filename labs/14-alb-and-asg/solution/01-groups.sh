#!/usr/bin/env bash
# Reference solution, step 1: the load balancer's group is open to the world on 80;
# the web servers' group admits only the load balancer's group.
set -euo pipefail
ALB_SG=$(aws ec2 create-security-group --group-name "$LAB_ALB_SG" \
  --description "load balancer: HTTP from anywhere" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$ALB_SG" \
  --protocol tcp --port 80 --cidr 0.0.0.0/0
WEB_SG=$(aws ec2 create-security-group --group-name "$LAB_WEB_SG" \
  --description "web servers: HTTP from the load balancer" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --group-id "$WEB_SG" \
  --protocol tcp --port 80 --source-group "$ALB_SG"
