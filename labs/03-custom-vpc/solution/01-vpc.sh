#!/usr/bin/env bash
# Reference solution, step 1: the VPC, named with a tag at creation.
set -euo pipefail
aws ec2 create-vpc --cidr-block "$LAB_VPC_CIDR" \
  --tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=lab-vpc}]' >/dev/null
