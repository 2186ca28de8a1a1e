"""boto3 against vpclab in `--auth strict`: EC2 and Route 53 calls verify, a presigned
URL made by botocore works until it expires, and the issue-10 refusals arrive as AWS's
error codes (a tag value XML cannot carry, a NextToken vpclab did not hand out), after
which listing still works. Run by tests/api_blackbox.rs with VPCLAB_ENDPOINT and the
strict key in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""

import os
import sys
import urllib.error
import urllib.request

try:
    import boto3
    import botocore.exceptions
except ImportError:
    sys.exit("boto3 is not installed: run `bash scripts/install-test-deps`")

endpoint = os.environ["VPCLAB_ENDPOINT"]
ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
r53 = boto3.client("route53", endpoint_url=endpoint, region_name="us-east-1")


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return
    raise AssertionError(f"expected {code}, call succeeded")


vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]

# A tag value XML cannot carry is refused; the account's listings keep parsing.
expect_error(
    "InvalidParameterValue",
    ec2.create_tags,
    Resources=[vpc_id],
    Tags=[{"Key": "bad", "Value": "x\ufffey"}],
)
ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "good", "Value": "tab\tand\nnewline"}])
vpcs = ec2.describe_vpcs()["Vpcs"]
assert {"Key": "good", "Value": "tab\tand\nnewline"} in vpcs[0]["Tags"], vpcs
assert ec2.describe_tags()["Tags"], "describe-tags parses"

# A NextToken vpclab did not hand out is AWS's InvalidParameterValue, not an empty page.
expect_error("InvalidParameterValue", ec2.describe_vpcs, MaxResults=5, NextToken="garbage")
for i in range(6):
    ec2.create_vpc(CidrBlock=f"10.{100 + i}.0.0/16")
seen = [v["VpcId"] for page in ec2.get_paginator("describe_vpcs").paginate(PaginationConfig={"PageSize": 5}) for v in page["Vpcs"]]
assert len(seen) == len(set(seen)) == 7, seen

# Route 53 signs as `route53`; its calls verify too, and its markers are checked.
zone = r53.create_hosted_zone(Name="strict.example", CallerReference="strict-1")["HostedZone"]
assert any(z["Id"] == zone["Id"] for z in r53.list_hosted_zones()["HostedZones"])
expect_error("InvalidInput", r53.list_hosted_zones, Marker="garbage!")

# A presigned URL from botocore: verified, for the method it was made for.
url = ec2.generate_presigned_url("describe_vpcs", Params={}, ExpiresIn=60)
assert "X-Amz-Signature=" in url, url
with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST")) as resp:
    body = resp.read().decode()
assert "<DescribeVpcsResponse" in body, body
tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
try:
    urllib.request.urlopen(urllib.request.Request(tampered, data=b"", method="POST"))
    raise AssertionError("a tampered presigned URL was accepted")
except urllib.error.HTTPError as e:
    assert e.code == 403 and b"SignatureDoesNotMatch" in e.read()

print("boto3 strict ok")
