//! Black-box tests of the EC2 Query API: a daemon on loopback port 0 with a temporary
//! state directory (`support::TestDaemon`; `vpclab up` itself where a test kills it),
//! driven by the real `aws` CLI, boto3 (tests/interop/*.py) and raw HTTP for inputs no SDK would send.
//! The `aws` CLI and boto3 are required: CI installs them (scripts/install-test-deps);
//! tests that need them fail with a clear message when they are missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{Lab, ProcessDaemon, TestDaemon, require_aws, s};

/// One raw HTTP request; returns (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("write head");
    // The server may answer (413) before reading a huge body; ignore write errors then.
    let _ = stream.write_all(body);
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000";

/// A signed-looking EC2 form POST.
fn ec2_post(port: u16, form: &str) -> (u16, String) {
    http(
        port,
        "POST",
        "/",
        &[
            ("Authorization", AUTH),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ],
        form.as_bytes(),
    )
}

fn code_of(body: &str) -> String {
    body.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_string()
}

#[test]
fn aws_cli_builds_public_and_private_subnets_with_igw_nat_nacl_and_security_groups() {
    require_aws();
    let d = TestDaemon::start();

    let vpc = s(&d.aws(&[
        "create-vpc",
        "--cidr-block",
        "10.0.0.0/16",
        "--tag-specifications",
        "ResourceType=vpc,Tags=[{Key=Name,Value=lab-vpc}]",
    ])["Vpc"]["VpcId"]);
    assert!(
        vpc.starts_with("vpc-") && vpc.len() == 21,
        "AWS-shaped id: {vpc}"
    );
    d.aws(&[
        "modify-vpc-attribute",
        "--vpc-id",
        &vpc,
        "--enable-dns-hostnames",
        "{\"Value\":true}",
    ]);
    let attr = d.aws(&[
        "describe-vpc-attribute",
        "--vpc-id",
        &vpc,
        "--attribute",
        "enableDnsHostnames",
    ]);
    assert_eq!(attr["EnableDnsHostnames"]["Value"], true);

    let public = s(&d.aws(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.0.1.0/24",
        "--availability-zone",
        "us-east-1a",
    ])["Subnet"]["SubnetId"]);
    let private = d.aws(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.0.2.0/24",
        "--availability-zone",
        "us-east-1b",
        "--tag-specifications",
        "ResourceType=subnet,Tags=[{Key=Name,Value=private}]",
    ]);
    assert_eq!(
        private["Subnet"]["AvailableIpAddressCount"], 251,
        "a /24 offers 251 addresses"
    );
    let private = s(&private["Subnet"]["SubnetId"]);
    d.aws_err(
        &[
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            "10.0.1.128/25",
        ],
        "InvalidSubnet.Conflict",
    );
    d.aws_err(
        &[
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            "192.168.0.0/24",
        ],
        "InvalidSubnet.Range",
    );

    let igw = s(&d.aws(&["create-internet-gateway"])["InternetGateway"]["InternetGatewayId"]);
    d.aws(&[
        "attach-internet-gateway",
        "--internet-gateway-id",
        &igw,
        "--vpc-id",
        &vpc,
    ]);
    d.aws_err(
        &["delete-internet-gateway", "--internet-gateway-id", &igw],
        "DependencyViolation",
    );

    let public_rt =
        s(&d.aws(&["create-route-table", "--vpc-id", &vpc])["RouteTable"]["RouteTableId"]);
    d.aws(&[
        "create-route",
        "--route-table-id",
        &public_rt,
        "--destination-cidr-block",
        "0.0.0.0/0",
        "--gateway-id",
        &igw,
    ]);
    d.aws_err(
        &[
            "create-route",
            "--route-table-id",
            &public_rt,
            "--destination-cidr-block",
            "0.0.0.0/0",
            "--gateway-id",
            &igw,
        ],
        "RouteAlreadyExists",
    );
    d.aws(&[
        "associate-route-table",
        "--route-table-id",
        &public_rt,
        "--subnet-id",
        &public,
    ]);
    d.aws(&[
        "modify-subnet-attribute",
        "--subnet-id",
        &public,
        "--map-public-ip-on-launch",
    ]);

    let eip = d.aws(&["allocate-address", "--domain", "vpc"]);
    let public_ip = s(&eip["PublicIp"]);
    assert!(
        public_ip.starts_with("198.18.") || public_ip.starts_with("198.19."),
        "EIPs come from 198.18.0.0/15: {public_ip}"
    );
    let nat = d.aws(&[
        "create-nat-gateway",
        "--subnet-id",
        &public,
        "--allocation-id",
        &s(&eip["AllocationId"]),
    ]);
    assert_eq!(nat["NatGateway"]["State"], "pending");
    let nat = s(&nat["NatGateway"]["NatGatewayId"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = d.aws(&[
            "describe-nat-gateways",
            "--nat-gateway-ids",
            &nat,
            "--query",
            "NatGateways[0].State",
        ]);
        if st == "available" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "NAT gateway never became available (state {st})"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let private_rt =
        s(&d.aws(&["create-route-table", "--vpc-id", &vpc])["RouteTable"]["RouteTableId"]);
    d.aws(&[
        "create-route",
        "--route-table-id",
        &private_rt,
        "--destination-cidr-block",
        "0.0.0.0/0",
        "--nat-gateway-id",
        &nat,
    ]);
    d.aws(&[
        "associate-route-table",
        "--route-table-id",
        &private_rt,
        "--subnet-id",
        &private,
    ]);

    // NACL on the public subnet: HTTP in, ephemeral replies out.
    let acl = s(&d.aws(&["create-network-acl", "--vpc-id", &vpc])["NetworkAcl"]["NetworkAclId"]);
    d.aws(&[
        "create-network-acl-entry",
        "--network-acl-id",
        &acl,
        "--ingress",
        "--rule-number",
        "100",
        "--protocol",
        "tcp",
        "--port-range",
        "From=80,To=80",
        "--cidr-block",
        "0.0.0.0/0",
        "--rule-action",
        "allow",
    ]);
    d.aws(&[
        "create-network-acl-entry",
        "--network-acl-id",
        &acl,
        "--egress",
        "--rule-number",
        "100",
        "--protocol",
        "tcp",
        "--port-range",
        "From=1024,To=65535",
        "--cidr-block",
        "0.0.0.0/0",
        "--rule-action",
        "allow",
    ]);
    d.aws_err(
        &[
            "create-network-acl-entry",
            "--network-acl-id",
            &acl,
            "--ingress",
            "--rule-number",
            "100",
            "--protocol",
            "-1",
            "--cidr-block",
            "0.0.0.0/0",
            "--rule-action",
            "deny",
        ],
        "NetworkAclEntryAlreadyExists",
    );
    let assoc = s(&d.aws(&[
        "describe-network-acls",
        "--filters",
        &format!("Name=association.subnet-id,Values={public}"),
        "--query",
        &format!(
            "NetworkAcls[0].Associations[?SubnetId=='{public}'].NetworkAclAssociationId | [0]"
        ),
    ]));
    d.aws(&[
        "replace-network-acl-association",
        "--association-id",
        &assoc,
        "--network-acl-id",
        &acl,
    ]);

    // Security groups: the CLI's flat form and the IpPermissions form, and a group peer.
    let web = s(&d.aws(&[
        "create-security-group",
        "--group-name",
        "web",
        "--description",
        "web servers",
        "--vpc-id",
        &vpc,
    ])["GroupId"]);
    let db = s(&d.aws(&[
        "create-security-group",
        "--group-name",
        "db",
        "--description",
        "database",
        "--vpc-id",
        &vpc,
    ])["GroupId"]);
    d.aws(&[
        "authorize-security-group-ingress",
        "--group-id",
        &web,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "203.0.113.0/24",
    ]);
    d.aws_err(
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &web,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "203.0.113.0/24",
        ],
        "InvalidPermission.Duplicate",
    );
    d.aws(&[
        "authorize-security-group-ingress",
        "--group-id",
        &web,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=80,ToPort=80,IpRanges=[{CidrIp=0.0.0.0/0,Description=http}]",
    ]);
    d.aws(&[
        "authorize-security-group-ingress",
        "--group-id",
        &db,
        "--protocol",
        "tcp",
        "--port",
        "5432",
        "--source-group",
        &web,
    ]);
    d.aws_err(
        &[
            "create-security-group",
            "--group-name",
            "web",
            "--description",
            "again",
            "--vpc-id",
            &vpc,
        ],
        "InvalidGroup.Duplicate",
    );
    d.aws_err(
        &["delete-security-group", "--group-id", &web],
        "DependencyViolation",
    );

    // Read everything back with describe-*, filters and --query.
    let v = d.aws(&[
        "describe-vpcs",
        "--filters",
        "Name=tag:Name,Values=lab-*",
        "--query",
        "Vpcs[].[VpcId,CidrBlock,State,IsDefault]",
    ]);
    assert_eq!(
        v,
        serde_json::json!([[vpc, "10.0.0.0/16", "available", false]])
    );
    let subnets = d.aws(&[
        "describe-subnets",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "--query",
        "sort_by(Subnets,&CidrBlock)[].[CidrBlock,AvailabilityZone,MapPublicIpOnLaunch]",
    ]);
    assert_eq!(
        subnets,
        serde_json::json!([
            ["10.0.1.0/24", "us-east-1a", true],
            ["10.0.2.0/24", "us-east-1b", false]
        ])
    );
    let tagged = d.aws(&[
        "describe-subnets",
        "--filters",
        "Name=tag:Name,Values=private",
        "--query",
        "Subnets[].SubnetId",
    ]);
    assert_eq!(tagged, serde_json::json!([private]));
    let rt = d.aws(&[
        "describe-route-tables",
        "--filters",
        &format!("Name=association.subnet-id,Values={private}"),
    ]);
    let routes = &rt["RouteTables"][0]["Routes"];
    assert_eq!(routes[0]["GatewayId"], "local");
    assert_eq!(routes[0]["DestinationCidrBlock"], "10.0.0.0/16");
    assert_eq!(routes[1]["NatGatewayId"], nat.as_str());
    assert_eq!(routes[1]["State"], "active");
    let main = d.aws(&[
        "describe-route-tables",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "Name=association.main,Values=true",
        "--query",
        "RouteTables[].Routes[].GatewayId",
    ]);
    assert_eq!(
        main,
        serde_json::json!(["local"]),
        "the main table keeps only its local route"
    );
    let igws = d.aws(&[
        "describe-internet-gateways",
        "--filters",
        &format!("Name=attachment.vpc-id,Values={vpc}"),
        "--query",
        "InternetGateways[].Attachments[].State",
    ]);
    assert_eq!(igws, serde_json::json!(["available"]));
    let entries = d.aws(&[
        "describe-network-acls",
        "--network-acl-ids",
        &acl,
        "--query",
        "NetworkAcls[0].Entries[?Egress==`false`].[RuleNumber,Protocol,RuleAction,PortRange.From]",
    ]);
    assert_eq!(
        entries,
        serde_json::json!([[100, "6", "allow", 80], [32767, "-1", "deny", null]])
    );
    let by_subnet = d.aws(&[
        "describe-network-acls",
        "--filters",
        &format!("Name=association.subnet-id,Values={public}"),
        "--query",
        "NetworkAcls[].NetworkAclId",
    ]);
    assert_eq!(by_subnet, serde_json::json!([acl]));
    let web_rules = d.aws(&[
        "describe-security-groups",
        "--group-ids",
        &web,
        "--query",
        "SecurityGroups[0].IpPermissions[].[IpProtocol,FromPort,IpRanges[0].CidrIp]",
    ]);
    assert_eq!(
        web_rules,
        serde_json::json!([["tcp", 22, "203.0.113.0/24"], ["tcp", 80, "0.0.0.0/0"]])
    );
    let db_peer = d.aws(&[
        "describe-security-groups",
        "--filters",
        "Name=group-name,Values=db",
        &format!("Name=vpc-id,Values={vpc}"),
        "--query",
        "SecurityGroups[0].IpPermissions[0].UserIdGroupPairs[0].GroupId",
    ]);
    assert_eq!(db_peer, serde_json::json!(web));
    let rules = d.aws(&[
        "describe-security-group-rules",
        "--filters",
        &format!("Name=group-id,Values={web}"),
        "--query",
        "SecurityGroupRules[?IsEgress==`false`].FromPort",
    ]);
    assert_eq!(rules, serde_json::json!([22, 80]));
    let eips = d.aws(&[
        "describe-addresses",
        "--query",
        "Addresses[].[PublicIp,NetworkInterfaceId!=null]",
    ]);
    assert_eq!(eips, serde_json::json!([[public_ip, true]]));
    let nat_eni = d.aws(&[
        "describe-network-interfaces",
        "--filters",
        &format!("Name=subnet-id,Values={public}"),
        "--query",
        "NetworkInterfaces[].[InterfaceType,Association.PublicIp,PrivateIpAddress]",
    ]);
    assert_eq!(
        nat_eni,
        serde_json::json!([["nat_gateway", public_ip, "10.0.1.4"]]),
        "first free address after the 4 reserved"
    );

    // Revoking and dependencies.
    d.aws(&[
        "revoke-security-group-ingress",
        "--group-id",
        &web,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "203.0.113.0/24",
    ]);
    d.aws_err(
        &[
            "revoke-security-group-ingress",
            "--group-id",
            &web,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "203.0.113.0/24",
        ],
        "InvalidPermission.NotFound",
    );
    d.aws_err(&["delete-vpc", "--vpc-id", &vpc], "DependencyViolation");
    d.aws_err(
        &["delete-subnet", "--subnet-id", &public],
        "DependencyViolation",
    );
    d.aws(&["delete-nat-gateway", "--nat-gateway-id", &nat]);
    let state = d.aws(&[
        "describe-nat-gateways",
        "--nat-gateway-ids",
        &nat,
        "--query",
        "NatGateways[0].State",
    ]);
    assert!(
        state == "deleting" || state == "deleted",
        "a deleted NAT gateway stays visible: {state}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = d.aws(&[
            "describe-route-tables",
            "--route-table-ids",
            &private_rt,
            "--query",
            "RouteTables[0].Routes[1].State",
        ]);
        if st == "blackhole" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "route to a deleted NAT gateway never became blackhole"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn default_vpc_exists_on_first_use_as_aws_creates_it() {
    require_aws();
    let d = TestDaemon::start();
    let vpcs = d.aws(&["describe-vpcs", "--filters", "Name=is-default,Values=true"]);
    let vpc = &vpcs["Vpcs"][0];
    assert_eq!(vpc["CidrBlock"], "172.31.0.0/16");
    assert_eq!(vpc["IsDefault"], true);
    let id = s(&vpc["VpcId"]);
    let subnets = d.aws(&[
        "describe-subnets",
        "--filters",
        "Name=default-for-az,Values=true",
        "--query",
        "sort_by(Subnets,&CidrBlock)[].[AvailabilityZone,CidrBlock,MapPublicIpOnLaunch]",
    ]);
    let expected: Vec<serde_json::Value> = "abcdef"
        .chars()
        .enumerate()
        .map(|(i, z)| {
            serde_json::json!([
                format!("us-east-1{z}"),
                format!("172.31.{}.0/20", i * 16),
                true
            ])
        })
        .collect();
    assert_eq!(
        subnets,
        serde_json::Value::Array(expected),
        "one default /20 per zone, public"
    );
    let igw = s(&d.aws(&[
        "describe-internet-gateways",
        "--filters",
        &format!("Name=attachment.vpc-id,Values={id}"),
        "--query",
        "InternetGateways[0].InternetGatewayId",
    ]));
    let main_routes = d.aws(&[
        "describe-route-tables",
        "--filters",
        &format!("Name=vpc-id,Values={id}"),
        "Name=association.main,Values=true",
        "--query",
        "RouteTables[0].Routes[].[DestinationCidrBlock,GatewayId]",
    ]);
    assert_eq!(
        main_routes,
        serde_json::json!([["172.31.0.0/16", "local"], ["0.0.0.0/0", igw]])
    );
    let sg = d.aws(&[
        "describe-security-groups",
        "--filters",
        &format!("Name=vpc-id,Values={id}"),
        "Name=group-name,Values=default",
        "--query",
        "SecurityGroups[0]",
    ]);
    assert_eq!(sg["IpPermissions"][0]["IpProtocol"], "-1");
    assert_eq!(
        sg["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"], sg["GroupId"],
        "default SG admits its own members"
    );
    assert_eq!(
        sg["IpPermissionsEgress"][0]["IpRanges"][0]["CidrIp"],
        "0.0.0.0/0"
    );
    let acl = d.aws(&[
        "describe-network-acls",
        "--filters",
        &format!("Name=vpc-id,Values={id}"),
        "Name=default,Values=true",
        "--query",
        "NetworkAcls[0].[length(Associations), Entries[?Egress==`false`].[RuleNumber,RuleAction]]",
    ]);
    assert_eq!(
        acl,
        serde_json::json!([6, [[100, "allow"], [32767, "deny"]]])
    );
    let attrs = d.aws(&[
        "describe-account-attributes",
        "--attribute-names",
        "default-vpc",
        "--query",
        "AccountAttributes[0].AttributeValues[0].AttributeValue",
    ]);
    assert_eq!(attrs, serde_json::json!(id));
    d.aws_err(&["create-default-vpc"], "DefaultVpcAlreadyExists");
    let zones = d.aws(&[
        "describe-availability-zones",
        "--query",
        "AvailabilityZones[].ZoneName",
    ]);
    assert_eq!(zones.as_array().map(Vec::len), Some(6));
    // Regions are separate: eu-west-1 has its own default VPC and none of us-east-1's.
    let out = d.aws_in(
        "eu-west-1",
        &["describe-vpcs", "--query", "Vpcs[].[VpcId,IsDefault]"],
    );
    let eu: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(eu.as_array().map(Vec::len), Some(1));
    assert_ne!(eu[0][0], serde_json::json!(id));
}

#[test]
fn bad_input_gets_aws_error_codes_never_a_500() {
    let d = TestDaemon::start();
    let p = d.api_port();
    let cases: &[(&str, &str)] = &[
        ("Action=Frobnicate&Version=2016-11-15", "InvalidAction"),
        ("Version=2016-11-15", "MissingAction"),
        ("Action=CreateVpc&Version=2016-11-15", "MissingParameter"),
        ("Action=CreateVpc&CidrBlock=banana", "InvalidParameterValue"),
        (
            "Action=CreateVpc&CidrBlock=10.0.0.1%2F16",
            "InvalidParameterValue",
        ),
        (
            "Action=CreateVpc&CidrBlock=10.0.0.0%2F8",
            "InvalidVpc.Range",
        ),
        (
            "Action=CreateVpc&CidrBlock=10.0.0.0%2F29",
            "InvalidVpc.Range",
        ),
        (
            "Action=CreateVpc&CidrBlock=10.0.0.0%2F16&DryRun=maybe",
            "InvalidParameterValue",
        ),
        (
            "Action=DescribeVpcs&VpcId.1=vpc-0000000000000dead",
            "InvalidVpcID.NotFound",
        ),
        (
            "Action=DescribeVpcs&Filter.1.Name=colour&Filter.1.Value.1=red",
            "InvalidParameterValue",
        ),
        (
            "Action=DescribeVpcs&MaxResults=100000",
            "InvalidParameterValue",
        ),
        (
            "Action=DescribeVpcs&MaxResults=ten",
            "InvalidParameterValue",
        ),
        ("Action=DeleteVpc&VpcId=vpc-nope", "InvalidVpcID.NotFound"),
        (
            "Action=CreateSubnet&VpcId=vpc-nope&CidrBlock=10.0.0.0%2F24",
            "InvalidVpcID.NotFound",
        ),
        (
            "Action=DescribeSubnets&SubnetId.1=subnet-nope",
            "InvalidSubnetID.NotFound",
        ),
        (
            "Action=DeleteRouteTable&RouteTableId=rtb-nope",
            "InvalidRouteTableID.NotFound",
        ),
        (
            "Action=DeleteInternetGateway&InternetGatewayId=igw-nope",
            "InvalidInternetGatewayID.NotFound",
        ),
        (
            "Action=DeleteNetworkAcl&NetworkAclId=acl-nope",
            "InvalidNetworkAclID.NotFound",
        ),
        (
            "Action=DeleteSecurityGroup&GroupId=sg-nope",
            "InvalidGroup.NotFound",
        ),
        (
            "Action=ReleaseAddress&AllocationId=eipalloc-nope",
            "InvalidAllocationID.NotFound",
        ),
        (
            "Action=DeleteNatGateway&NatGatewayId=nat-nope",
            "NatGatewayNotFound",
        ),
        (
            "Action=DeleteNetworkInterface&NetworkInterfaceId=eni-nope",
            "InvalidNetworkInterfaceID.NotFound",
        ),
        (
            "Action=CreateTags&ResourceId.1=vpc-nope&Tag.1.Key=a&Tag.1.Value=b",
            "InvalidVpcID.NotFound",
        ),
        ("Action=CreateSecurityGroup&GroupName=x", "MissingParameter"),
        (
            "Action=CreateNetworkAclEntry&NetworkAclId=acl-nope",
            "InvalidNetworkAclID.NotFound",
        ),
        (
            "Action=AuthorizeSecurityGroupIngress&GroupId=sg-nope&IpProtocol=tcp&FromPort=22&ToPort=22&CidrIp=0.0.0.0%2F0",
            "InvalidGroup.NotFound",
        ),
        (
            "Action=DescribeRegions&RegionName.1=mars-1",
            "InvalidParameterValue",
        ),
        ("%%%&&&==&Action", "MissingAction"),
    ];
    for (form, code) in cases {
        let (status, body) = ec2_post(p, form);
        assert_eq!(code_of(&body), *code, "{form} -> {status} {body}");
        assert!((400..500).contains(&status), "{form}: status {status}");
        assert!(
            body.contains("<Response><Errors><Error>") && body.contains("<RequestID>"),
            "EC2 error shape: {body}"
        );
    }
    // Unsigned requests are refused as AWS refuses them.
    let (status, body) = http(p, "POST", "/", &[], b"Action=DescribeVpcs");
    assert_eq!((status, code_of(&body)), (401, "AuthFailure".to_string()));
    let (status, body) = http(
        p,
        "POST",
        "/",
        &[("Authorization", "Bearer nonsense")],
        b"Action=DescribeVpcs",
    );
    assert_eq!((status, code_of(&body)), (401, "AuthFailure".to_string()));
    // An unknown region in the credential scope.
    let (status, body) = http(
        p,
        "POST",
        "/",
        &[("Authorization", &AUTH.replace("us-east-1", "mars-1"))],
        b"Action=DescribeVpcs",
    );
    assert_eq!((status, code_of(&body)), (401, "AuthFailure".to_string()));
    // Oversized bodies.
    let big = vec![b'a'; 2 << 20];
    let (status, body) = ec2_post(p, std::str::from_utf8(&big).expect("ascii"));
    assert_eq!(
        (status, code_of(&body)),
        (413, "RequestEntityTooLarge".to_string())
    );
    // GET with a query string works like POST.
    let (status, body) = http(
        p,
        "GET",
        "/?Action=DescribeRegions&Version=2016-11-15",
        &[("Authorization", AUTH)],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(
        "<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>"
    ));
    // Garbage of every kind: never a 5xx, always an XML answer, and the daemon lives on.
    let mut seed = 0x1234_5678_u64;
    for i in 0..300 {
        let mut bytes = Vec::new();
        let len = 1 + (i * 7) % 200;
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let alphabet =
                b"Action=CreateVpcDescribeSubnetsFilter.1.Name&Value%2F%ZZ\xff\x00.N=1-/";
            bytes.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let (status, body) = http(p, "POST", "/", &[("Authorization", AUTH)], &bytes);
        assert!(
            (200..500).contains(&status),
            "garbage {bytes:?} -> {status} {body}"
        );
        assert!(body.starts_with("<?xml"), "garbage {bytes:?} -> {body}");
    }
    let (status, _) = ec2_post(p, "Action=DescribeVpcs");
    assert_eq!(status, 200, "the daemon survived the garbage");
}

#[test]
fn dry_run_answers_dry_run_operation_412_and_changes_nothing() {
    let d = TestDaemon::start();
    let (status, body) = ec2_post(
        d.api_port(),
        "Action=CreateVpc&CidrBlock=10.9.0.0%2F16&DryRun=true",
    );
    assert_eq!(
        (status, code_of(&body)),
        (412, "DryRunOperation".to_string())
    );
    let (status, body) = ec2_post(
        d.api_port(),
        "Action=CreateVpc&CidrBlock=10.0.0.0%2F8&DryRun=true",
    );
    assert_eq!(
        (status, code_of(&body)),
        (400, "InvalidVpc.Range".to_string()),
        "a dry run still validates"
    );
    let (_, body) = ec2_post(
        d.api_port(),
        "Action=DescribeVpcs&Filter.1.Name=cidr&Filter.1.Value.1=10.9.0.0%2F16",
    );
    assert!(
        !body.contains("<vpcId>"),
        "the dry run created nothing: {body}"
    );
    let (status, body) = ec2_post(d.api_port(), "Action=DescribeVpcs&DryRun=true");
    assert_eq!(
        (status, code_of(&body)),
        (412, "DryRunOperation".to_string())
    );
}

#[test]
fn max_results_and_next_token_visit_every_vpc_once() {
    let d = TestDaemon::start();
    for i in 0..11 {
        let (status, body) = ec2_post(
            d.api_port(),
            &format!("Action=CreateVpc&CidrBlock=10.{i}.0.0%2F16"),
        );
        assert_eq!(status, 200, "{body}");
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let form = if token.is_empty() {
            "Action=DescribeVpcs&MaxResults=5".to_string()
        } else {
            format!("Action=DescribeVpcs&MaxResults=5&NextToken={token}")
        };
        let (status, body) = ec2_post(d.api_port(), &form);
        assert_eq!(status, 200, "{body}");
        pages += 1;
        seen.extend(
            body.split("<vpcId>")
                .skip(1)
                .map(|r| r.split('<').next().unwrap_or("").to_string()),
        );
        match body.split("<nextToken>").nth(1) {
            Some(r) => token = r.split('<').next().unwrap_or("").to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3, "12 VPCs (11 + default) in pages of 5");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (12, 12));
}

#[test]
fn sigkill_during_a_stream_of_mutations_loses_no_acknowledged_change() {
    let mut d = ProcessDaemon::start();
    let port = d.api_port();
    let writer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for i in 0..10_000 {
            let name = format!("sg-stream-{i}");
            let form =
                format!("Action=CreateSecurityGroup&GroupName=stream{i}&GroupDescription={name}");
            let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                break;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {AUTH}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
                form.len()
            );
            if stream.write_all(req.as_bytes()).is_err() {
                break;
            }
            let mut buf = String::new();
            let _ = stream.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                acked.push(format!("stream{i}"));
            } else {
                break;
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(1500));
    d.kill9();
    let acked = writer.join().expect("writer thread");
    assert!(
        acked.len() > 5,
        "the stream made progress before the kill ({})",
        acked.len()
    );
    d.launch();
    // Every page of the groups (a fast daemon acknowledges well over one page of 1,000
    // in the time before the kill).
    let mut names = std::collections::BTreeSet::new();
    let mut token = String::new();
    loop {
        let form = if token.is_empty() {
            "Action=DescribeSecurityGroups&MaxResults=1000".to_string()
        } else {
            format!("Action=DescribeSecurityGroups&MaxResults=1000&NextToken={token}")
        };
        let (status, body) = ec2_post(d.api_port(), &form);
        assert_eq!(status, 200, "{body}");
        names.extend(
            body.split("<groupName>")
                .skip(1)
                .map(|r| r.split('<').next().unwrap_or("").to_string()),
        );
        match body.split("<nextToken>").nth(1) {
            Some(r) => token = r.split('<').next().unwrap_or("").to_string(),
            None => break,
        }
    }
    for name in &acked {
        assert!(
            names.contains(name),
            "acknowledged {name} lost after SIGKILL ({} groups listed)",
            names.len()
        );
    }
}

#[test]
fn boto3_sees_the_fields_aws_returns() {
    require_aws();
    let d = TestDaemon::start();
    let out = d.boto3("boto3_vpc.py");
    assert!(
        out.status.success(),
        "boto3 interop failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("boto3 interop ok"));
}

#[test]
fn strict_auth_verifies_signatures_and_keeps_accounts_apart() {
    require_aws();
    let d = TestDaemon::start_strict(
        "[[key]]\naccess_key = \"AKIAALICE0000000000\"\nsecret_key = \"alice-secret\"\naccount = \"111111111111\"\n\n\
         [[key]]\naccess_key = \"AKIABOB00000000000\"\nsecret_key = \"bob-secret\"\naccount = \"222222222222\"\n",
    );
    let alice = ("AKIAALICE0000000000", "alice-secret");
    let bob = ("AKIABOB00000000000", "bob-secret");
    let json = |o: Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("json")
    };
    let vpc = json(d.aws_as(
        "us-east-1",
        alice,
        &[
            "create-vpc",
            "--cidr-block",
            "10.1.0.0/16",
            "--query",
            "Vpc.[VpcId,OwnerId]",
        ],
    ));
    assert_eq!(
        vpc[1], "111111111111",
        "the key's account owns what it creates"
    );
    let bob_sees = json(d.aws_as(
        "us-east-1",
        bob,
        &["describe-vpcs", "--query", "Vpcs[].[VpcId,OwnerId]"],
    ));
    assert_eq!(
        bob_sees.as_array().map(Vec::len),
        Some(1),
        "bob sees only his own default VPC: {bob_sees}"
    );
    assert_eq!(bob_sees[0][1], "222222222222");
    let out = d.aws_as(
        "us-east-1",
        bob,
        &["describe-vpcs", "--vpc-ids", vpc[0].as_str().expect("id")],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("InvalidVpcID.NotFound"),
        "accounts are separate worlds"
    );
    let wrong = d.aws_as(
        "us-east-1",
        ("AKIAALICE0000000000", "not-alices-secret"),
        &["describe-vpcs"],
    );
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("(SignatureDoesNotMatch)"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let unknown = d.aws_as(
        "us-east-1",
        ("AKIANOBODY000000000", "x"),
        &["describe-vpcs"],
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("(AuthFailure)"));
    // A hand-made request with a key id the daemon does not know is refused.
    let (status, body) = ec2_post(d.api_port(), "Action=DescribeVpcs");
    assert_eq!(
        (status, code_of(&body)),
        (401, "AuthFailure".to_string()),
        "{body}"
    );
}

/// Issue 10, end to end with the real clients in `--auth strict`: the aws CLI and boto3
/// keep working (EC2 and Route 53, presigned URLs), a tag value XML cannot carry is
/// refused with InvalidParameterValue after which listing still works, and a garbage
/// NextToken is an error rather than an empty page.
#[test]
fn issue10_strict_clients_work_and_bad_input_is_refused_without_breaking_listings() {
    require_aws();
    let d = TestDaemon::start_strict(
        "[[key]]\naccess_key = \"AKIAALICE0000000000\"\nsecret_key = \"alice-secret\"\naccount = \"111111111111\"\n",
    );
    let alice = ("AKIAALICE0000000000", "alice-secret");
    let vpcs = d.aws_as(
        "us-east-1",
        alice,
        &["describe-vpcs", "--query", "Vpcs[0].VpcId"],
    );
    assert!(
        vpcs.status.success(),
        "{}",
        String::from_utf8_lossy(&vpcs.stderr)
    );
    let vpc: String = serde_json::from_slice(&vpcs.stdout).expect("json");
    let bad = d.aws_as(
        "us-east-1",
        alice,
        &[
            "create-tags",
            "--resources",
            &vpc,
            "--tags",
            "Key=bad,Value=x\u{fffe}y",
        ],
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("(InvalidParameterValue)"), "{err}");
    for listing in ["describe-vpcs", "describe-tags"] {
        let out = d.aws_as("us-east-1", alice, &[listing]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let path: std::path::PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "interop",
        "boto3_strict.py",
    ]
    .iter()
    .collect();
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&path);
    d.env(&mut cmd);
    let out = cmd
        .env("VPCLAB_ENDPOINT", d.url())
        .env("AWS_ACCESS_KEY_ID", alice.0)
        .env("AWS_SECRET_ACCESS_KEY", alice.1)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "boto3 strict interop failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("boto3 strict ok"));
}
