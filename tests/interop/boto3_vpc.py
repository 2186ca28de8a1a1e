"""boto3 against vpclab: builds a VPC with a public subnet, an internet gateway, a route
table, a security group and a network ACL rule, and checks the fields boto3 parses are
the ones AWS returns. Run by tests/api_blackbox.rs with VPCLAB_ENDPOINT set."""

import os
import sys

try:
    import boto3
    import botocore.exceptions
except ImportError:
    sys.exit("boto3 is not installed: run `bash scripts/install-test-deps`")

ec2 = boto3.client("ec2", endpoint_url=os.environ["VPCLAB_ENDPOINT"], region_name="us-east-1")


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}"
        return
    raise AssertionError(f"expected {code}, call succeeded")


vpc = ec2.create_vpc(
    CidrBlock="10.20.0.0/16",
    TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "boto"}]}],
)["Vpc"]
vpc_id = vpc["VpcId"]
assert vpc["CidrBlock"] == "10.20.0.0/16"
assert vpc["CidrBlockAssociationSet"][0]["CidrBlockState"]["State"] == "associated"
assert {"Key": "Name", "Value": "boto"} in vpc["Tags"]

subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.1.0/24", AvailabilityZone="us-east-1c")["Subnet"]
assert subnet["AvailableIpAddressCount"] == 251
assert subnet["AvailabilityZone"] == "us-east-1c"
assert subnet["SubnetArn"].endswith(subnet["SubnetId"])

igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
assoc = ec2.associate_route_table(RouteTableId=rt, SubnetId=subnet["SubnetId"])["AssociationId"]
assert assoc.startswith("rtbassoc-")
tables = ec2.describe_route_tables(Filters=[{"Name": "route.gateway-id", "Values": [igw]}])["RouteTables"]
assert [t["RouteTableId"] for t in tables] == [rt]
assert tables[0]["Associations"][0]["SubnetId"] == subnet["SubnetId"]

sg = ec2.create_security_group(GroupName="boto-web", Description="web", VpcId=vpc_id)["GroupId"]
ec2.authorize_security_group_ingress(
    GroupId=sg,
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
)
expect_error(
    "InvalidPermission.Duplicate",
    ec2.authorize_security_group_ingress,
    GroupId=sg,
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
)
perms = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
assert perms[0]["FromPort"] == 443 and perms[0]["IpRanges"][0]["CidrIp"] == "0.0.0.0/0"

acl = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default", "Values": ["true"]}])[
    "NetworkAcls"
][0]
ec2.create_network_acl_entry(
    NetworkAclId=acl["NetworkAclId"], RuleNumber=50, Protocol="6", RuleAction="deny", Egress=False,
    CidrBlock="203.0.113.0/24", PortRange={"From": 22, "To": 22},
)
entries = ec2.describe_network_acls(NetworkAclIds=[acl["NetworkAclId"]])["NetworkAcls"][0]["Entries"]
ingress = [(e["RuleNumber"], e["RuleAction"]) for e in entries if not e["Egress"]]
assert ingress == [(50, "deny"), (100, "allow"), (32767, "deny")], ingress

expect_error("InvalidSubnet.Conflict", ec2.create_subnet, VpcId=vpc_id, CidrBlock="10.20.1.0/25")
expect_error("InvalidVpcID.NotFound", ec2.describe_vpcs, VpcIds=["vpc-00000000000000000"])
try:
    ec2.create_vpc(CidrBlock="10.30.0.0/16", DryRun=True)
    raise AssertionError("DryRun succeeded")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "DryRunOperation"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412

paginator = ec2.get_paginator("describe_vpcs")
ids = [v["VpcId"] for page in paginator.paginate(PaginationConfig={"PageSize": 5}) for v in page["Vpcs"]]
assert vpc_id in ids and len(ids) == len(set(ids))

ec2.create_tags(Resources=[vpc_id, sg], Tags=[{"Key": "team", "Value": "net"}])
tags = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["team"]}])["Tags"]
assert sorted(t["ResourceType"] for t in tags) == ["security-group", "vpc"], tags

print("boto3 interop ok")
