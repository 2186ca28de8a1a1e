#!/usr/bin/env bash
# Reference solution, step 2: lift Block Public Access, then allow public reads of the
# objects (and nothing else) with a bucket policy.
set -euo pipefail
aws s3api delete-public-access-block --bucket "$LAB_BUCKET"
cat > public-read.json <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "PublicReadGetObject",
      "Effect": "Allow",
      "Principal": "*",
      "Action": "s3:GetObject",
      "Resource": "arn:aws:s3:::$LAB_BUCKET/*"
    }
  ]
}
JSON
aws s3api put-bucket-policy --bucket "$LAB_BUCKET" --policy file://public-read.json
