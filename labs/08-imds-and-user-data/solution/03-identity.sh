#!/usr/bin/env bash
# Reference solution, step 3: the identity document, saved on the instance, and its
# architecture.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
on_instance 'TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60"); curl -s -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/dynamic/instance-identity/document > identity.json'
ARCH=$(on_instance 'grep architecture identity.json' | sed 's/.*: *"\([^"]*\)".*/\1/')
echo "architecture: $ARCH"
vpclab lab answer identity-architecture "$ARCH"
