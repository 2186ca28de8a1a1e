#!/usr/bin/env bash
# Reference solution, step 2: read-only for the owner, nothing for anyone else.
set -euo pipefail
chmod 400 "$LAB_KEY_NAME.pem"
vpclab lab answer mode-quiz 400
