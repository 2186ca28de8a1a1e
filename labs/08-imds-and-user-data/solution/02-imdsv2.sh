#!/usr/bin/env bash
# Reference solution, step 2: a request without a token, then the token flow; the
# answers are what the instance said.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
STATUS=$(on_instance "curl -s -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/instance-id")
echo "without a token: HTTP $STATUS"
ID=$(on_instance 'TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60"); curl -s -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id')
SAVED=$(on_instance 'cat /var/tmp/instance-id')
echo "with a token: $ID; the user data saved: $SAVED"
[ "$ID" = "$SAVED" ] || { echo "the user data did not get the instance id" >&2; exit 1; }
vpclab lab answer status-without-token "$STATUS"
vpclab lab answer ttl-header X-aws-ec2-metadata-token-ttl-seconds
