"""boto3 against vpclab with --auth strict and --iam enforce: root makes a user with a
key and a role; the user assumes the role; boto3's own credential handling (session
token, expiry parsed as a datetime) carries the session; the role's policy decides.
Run by tests/api/iam.rs with VPCLAB_ENDPOINT and the root key in the environment."""

import datetime
import json
import os
import sys

try:
    import boto3
    import botocore.exceptions
except ImportError:
    sys.exit("boto3 is not installed: run `bash scripts/install-test-deps`")

URL = os.environ["VPCLAB_ENDPOINT"]


def client(service, **creds):
    return boto3.client(service, endpoint_url=URL, region_name="us-east-1", **creds)


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return e
    raise AssertionError(f"expected {code}, call succeeded")


iam = client("iam")
account = client("sts").get_caller_identity()["Account"]
iam.create_user(UserName="py")
iam.put_user_policy(
    UserName="py",
    PolicyName="assume",
    PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
    ),
)
key = iam.create_access_key(UserName="py")["AccessKey"]
trust = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}],
}
role = iam.create_role(RoleName="reader", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
# boto3 decodes IAM's URL-encoded documents into dicts.
assert role["AssumeRolePolicyDocument"] == trust, role["AssumeRolePolicyDocument"]
iam.attach_role_policy(RoleName="reader", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess")

user = dict(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
# The user's own policy allows only AssumeRole.
expect_error("UnauthorizedOperation", client("ec2", **user).describe_vpcs)
out = client("sts", **user).assume_role(RoleArn=role["Arn"], RoleSessionName="py-session", DurationSeconds=900)
creds = out["Credentials"]
assert isinstance(creds["Expiration"], datetime.datetime)
left = creds["Expiration"] - datetime.datetime.now(datetime.timezone.utc)
assert datetime.timedelta(seconds=800) < left <= datetime.timedelta(seconds=900), left
session = dict(
    aws_access_key_id=creds["AccessKeyId"],
    aws_secret_access_key=creds["SecretAccessKey"],
    aws_session_token=creds["SessionToken"],
)
me = client("sts", **session).get_caller_identity()
assert me["Arn"] == f"arn:aws:sts::{account}:assumed-role/reader/py-session", me
assert len(client("ec2", **session).describe_vpcs()["Vpcs"]) == 1
e = expect_error(
    "UnauthorizedOperation",
    client("ec2", **session).run_instances,
    ImageId="ami-0c02fb55956c7d316",
    InstanceType="t3.micro",
    MinCount=1,
    MaxCount=1,
)
assert "ec2:RunInstances" in str(e)
expect_error("AccessDenied", client("iam", **session).list_users)
print("boto3 iam ok")
