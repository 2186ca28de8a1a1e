#!/usr/bin/env bash
# Reference solution, step 1: the user and an access key, kept as a named CLI profile.
set -euo pipefail
aws iam create-user --user-name "$LAB_USER" >/dev/null
aws iam create-access-key --user-name "$LAB_USER" \
  --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text > "$LAB_USER.keys"
chmod 600 "$LAB_USER.keys"
