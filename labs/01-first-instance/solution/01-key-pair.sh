#!/usr/bin/env bash
# Reference solution, step 1: create the key pair and keep its private key.
set -euo pipefail
# EC2 returns the private key only in this answer: keep just that field, as text.
aws ec2 create-key-pair --key-name "$LAB_KEY_NAME" \
  --query KeyMaterial --output text > "$LAB_KEY_NAME.pem"
