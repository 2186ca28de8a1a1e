#!/usr/bin/env bash
# Reference solution, step 1: the bucket, its two pages, website hosting on.
set -euo pipefail
aws s3 mb "s3://$LAB_BUCKET"
cat > index.html <<HTML
<!doctype html>
<html><head><title>$LAB_BUCKET</title></head>
<body><h1>$LAB_GREETING</h1></body></html>
HTML
cat > error.html <<HTML
<!doctype html>
<html><head><title>Not found</title></head>
<body><h1>$LAB_LOST</h1></body></html>
HTML
aws s3 cp index.html "s3://$LAB_BUCKET/index.html" --content-type text/html
aws s3 cp error.html "s3://$LAB_BUCKET/error.html" --content-type text/html
aws s3 website "s3://$LAB_BUCKET/" --index-document index.html --error-document error.html
