"""boto3 against vpclab: key pairs, images, an instance's lifecycle with boto3's own
waiters, and the fields boto3 parses (timestamps as datetimes, ints, booleans). Run by
tests/instances_api.rs with VPCLAB_ENDPOINT set and a short boot delay."""

import base64
import datetime
import os
import sys

try:
    import boto3
    import botocore.exceptions
except ImportError:
    sys.exit("boto3 is not installed: run `bash scripts/install-test-deps`")

ec2 = boto3.client("ec2", endpoint_url=os.environ["VPCLAB_ENDPOINT"], region_name="us-east-1")
fast = {"Delay": 1, "MaxAttempts": 30}


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}"
        return
    raise AssertionError(f"expected {code}, call succeeded")


# Key pairs: the material boto3 hands back is the whole PEM, the id and type are there.
kp = ec2.create_key_pair(KeyName="boto", KeyType="ed25519")
assert kp["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----"), kp
assert kp["KeyPairId"].startswith("key-")
assert kp["KeyFingerprint"].endswith("="), kp["KeyFingerprint"]
info = ec2.describe_key_pairs(KeyNames=["boto"], IncludePublicKey=True)["KeyPairs"][0]
assert isinstance(info["CreateTime"], datetime.datetime), info
assert info["PublicKey"].startswith("ssh-ed25519 "), info
expect_error("InvalidKeyPair.Duplicate", ec2.create_key_pair, KeyName="boto")

# Images: the newest Ubuntu 24.04 by name.
images = ec2.describe_images(
    Owners=["amazon"],
    Filters=[{"Name": "name", "Values": ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]}],
)["Images"]
ami = max(images, key=lambda i: i["CreationDate"])["ImageId"]

user_data = "#!/bin/bash\necho hello from user data\n"
res = ec2.run_instances(
    ImageId=ami,
    InstanceType="t3.micro",
    KeyName="boto",
    MinCount=1,
    MaxCount=1,
    UserData=user_data,  # boto3 base64-encodes it
    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "boto-web"}]}],
)
inst = res["Instances"][0]
iid = inst["InstanceId"]
assert inst["State"] == {"Code": 0, "Name": "pending"}, inst["State"]
assert isinstance(inst["LaunchTime"], datetime.datetime)
assert inst["AmiLaunchIndex"] == 0
assert inst["NetworkInterfaces"][0]["Attachment"]["DeviceIndex"] == 0
assert inst["SecurityGroups"][0]["GroupName"] == "default"
assert inst["MetadataOptions"]["HttpTokens"] == "optional", "Ubuntu images do not require IMDSv2"

ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=fast)
ec2.get_waiter("instance_status_ok").wait(InstanceIds=[iid], WaiterConfig=fast)

desc = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["boto-web"]}])
got = desc["Reservations"][0]["Instances"][0]
assert got["InstanceId"] == iid and got["State"]["Name"] == "running"
assert got["RootDeviceName"] == "/dev/sda1", got["RootDeviceName"]
assert got["SourceDestCheck"] is True
ud = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
assert base64.b64decode(ud).decode() == user_data

out = ec2.get_console_output(InstanceId=iid)
assert "Ubuntu 24.04" in out["Output"], out  # boto3 decodes the base64

ec2.stop_instances(InstanceIds=[iid])
ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=fast)
ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "t3.small"})
ec2.start_instances(InstanceIds=[iid])
ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=fast)
again = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
assert again["InstanceType"] == "t3.small"
assert again["PrivateIpAddress"] == got["PrivateIpAddress"]

ec2.terminate_instances(InstanceIds=[iid])
ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig=fast)
expect_error("IncorrectInstanceState", ec2.start_instances, InstanceIds=[iid])
print("boto3 instances ok")
