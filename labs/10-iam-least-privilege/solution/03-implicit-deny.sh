#!/usr/bin/env bash
# Reference solution, step 3: no statement denies the write; none allows it.
set -euo pipefail
vpclab lab answer deny-kind implicit
