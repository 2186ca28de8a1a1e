#!/usr/bin/env bash
# Reference solution, step 2: replace the endpoint's full-access policy with one that
# lets requests through to the team's bucket only.
set -euo pipefail
VPCE=$(aws ec2 describe-vpc-endpoints \
  --filters Name=service-name,Values=com.amazonaws.us-east-1.s3 \
  --query 'VpcEndpoints[0].VpcEndpointId' --output text)
cat > endpoint-policy.json <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "OnlyOurBucket",
      "Effect": "Allow",
      "Principal": "*",
      "Action": ["s3:GetObject", "s3:ListBucket"],
      "Resource": ["arn:aws:s3:::$LAB_BUCKET", "arn:aws:s3:::$LAB_BUCKET/*"]
    }
  ]
}
JSON
aws ec2 modify-vpc-endpoint --vpc-endpoint-id "$VPCE" \
  --policy-document file://endpoint-policy.json >/dev/null
