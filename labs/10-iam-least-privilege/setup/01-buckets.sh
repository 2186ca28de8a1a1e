#!/usr/bin/env bash
# The starting world: the bucket the reporting tool reads, and one it must never see.
set -euo pipefail
aws s3api create-bucket --bucket "$LAB_BUCKET" >/dev/null
aws s3api create-bucket --bucket "$LAB_OTHER_BUCKET" >/dev/null
echo "quarterly report: all green" > report.txt
echo "name,salary" > salaries.csv
aws s3 cp report.txt "s3://$LAB_BUCKET/report.txt" >/dev/null
aws s3 cp salaries.csv "s3://$LAB_OTHER_BUCKET/salaries.csv" >/dev/null
