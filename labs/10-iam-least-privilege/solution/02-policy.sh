#!/usr/bin/env bash
# Reference solution, step 2: a customer managed policy for one bucket, attached.
set -euo pipefail
cat > read-one-bucket.json <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ListTheBucket",
      "Effect": "Allow",
      "Action": "s3:ListBucket",
      "Resource": "arn:aws:s3:::$LAB_BUCKET"
    },
    {
      "Sid": "ReadItsObjects",
      "Effect": "Allow",
      "Action": "s3:GetObject",
      "Resource": "arn:aws:s3:::$LAB_BUCKET/*"
    }
  ]
}
JSON
ARN=$(aws iam create-policy --policy-name "read-$LAB_BUCKET" \
  --policy-document file://read-one-bucket.json --query Policy.Arn --output text)
aws iam attach-user-policy --user-name "$LAB_USER" --policy-arn "$ARN"
