//! IPv6 dual stack through the real `aws` CLI, each check quoting the AWS rule (Amazon
//! VPC User Guide: "IPv6 support for your VPC", "Default network ACL", "Default security
//! groups for your VPCs", "Egress-only internet gateways"). vpclab's Amazon-provided
//! blocks come from the documentation range 2001:db8::/32.

use serde_json::Value;

use crate::support::{Lab, TestDaemon, have, latest_al2023_ami, vpc_with_internet_gateway};

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A dual-stack VPC: (vpc id, its /56).
fn dual_stack_vpc(d: &TestDaemon, cidr: &str) -> (String, String) {
    let vpc = d.aws(&[
        "create-vpc",
        "--cidr-block",
        cidr,
        "--amazon-provided-ipv6-cidr-block",
    ]);
    let id = s(&vpc["Vpc"]["VpcId"]);
    let block = d.aws_text(&[
        "describe-vpcs",
        "--vpc-ids",
        &id,
        "--query",
        "Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock",
    ]);
    (id, block)
}

/// The first /64 of a /56 written as `2001:db8:xxxx:yy00::/56`.
fn first_64(block56: &str) -> String {
    block56.replace("/56", "/64")
}

#[test]
fn a_dual_stack_vpc_gets_a_documentation_56_local_route_acl_and_sg_rules() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc, block) = dual_stack_vpc(&d, "10.0.0.0/16");
    // AWS: an Amazon-provided IPv6 block is a /56; vpclab's lie in 2001:db8::/32.
    let net: ipnet::Ipv6Net = block.parse().expect("an IPv6 CIDR");
    assert_eq!(net.prefix_len(), 56, "{block}");
    let doc: ipnet::Ipv6Net = "2001:db8::/32".parse().expect("doc");
    assert!(
        doc.contains(&net),
        "{block} is not in the documentation range"
    );
    let v = d.aws(&["describe-vpcs", "--vpc-ids", &vpc]);
    let assoc = &v["Vpcs"][0]["Ipv6CidrBlockAssociationSet"][0];
    assert_eq!(assoc["Ipv6CidrBlockState"]["State"], "associated", "{v}");
    assert_eq!(assoc["Ipv6Pool"], "Amazon", "{v}");
    // Each VPC gets its own /56.
    let (other, other_block) = dual_stack_vpc(&d, "10.1.0.0/16");
    assert_ne!(block, other_block);
    let found = d.aws_text(&[
        "describe-vpcs",
        "--filters",
        &format!("Name=ipv6-cidr-block-association.ipv6-cidr-block,Values={block}"),
        "--query",
        "Vpcs[].VpcId",
    ]);
    assert_eq!(found, vpc, "the filter finds only the VPC with that block");
    assert_ne!(found, other);

    // AWS: the block gets a `local` route in the route tables of the VPC.
    let routes = d.aws(&[
        "describe-route-tables",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "--query",
        "RouteTables[0].Routes",
    ]);
    assert!(
        routes
            .as_array()
            .expect("routes")
            .iter()
            .any(|r| r["DestinationIpv6CidrBlock"] == block.as_str() && r["GatewayId"] == "local"),
        "{routes}"
    );
    // "Default network ACL": rule 101 allows all IPv6 traffic both ways, and the IPv6
    // `*` rule denies the rest.
    let entries = d.aws(&[
        "describe-network-acls",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "Name=default,Values=true",
        "--query",
        "NetworkAcls[0].Entries",
    ]);
    for egress in [true, false] {
        let v6: Vec<(i64, String)> = entries
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["Egress"] == egress && e["Ipv6CidrBlock"] == "::/0")
            .map(|e| (e["RuleNumber"].as_i64().unwrap_or(0), s(&e["RuleAction"])))
            .collect();
        assert_eq!(
            v6,
            vec![(101, "allow".to_string()), (32767, "deny".to_string())],
            "{entries}"
        );
    }
    // "Default security groups": outbound to ::/0 when the VPC has IPv6; a new group
    // of such a VPC gets it too.
    for name in ["default", "web"] {
        if name != "default" {
            d.aws(&[
                "create-security-group",
                "--group-name",
                name,
                "--description",
                name,
                "--vpc-id",
                &vpc,
            ]);
        }
        let egress = d.aws_text(&[
            "describe-security-groups",
            "--filters",
            &format!("Name=vpc-id,Values={vpc}"),
            &format!("Name=group-name,Values={name}"),
            "--query",
            "SecurityGroups[0].IpPermissionsEgress[].Ipv6Ranges[].CidrIpv6",
        ]);
        assert_eq!(egress, "::/0", "group {name}");
    }

    // The block survives a restart (persisted like every resource).
    let mut d = d;
    d.stop();
    d.launch();
    let again = d.aws_text(&[
        "describe-vpcs",
        "--vpc-ids",
        &vpc,
        "--query",
        "Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock",
    ]);
    assert_eq!(again, block);
}

#[test]
fn subnets_take_a_64_of_the_vpc_block_and_instances_get_addresses_from_it() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc, block) = dual_stack_vpc(&d, "10.0.0.0/16");
    let v64 = first_64(&block);
    let subnet = d.aws(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.0.1.0/24",
        "--ipv6-cidr-block",
        &v64,
    ]);
    let subnet_id = s(&subnet["Subnet"]["SubnetId"]);
    assert_eq!(
        subnet["Subnet"]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"],
        v64.as_str(),
        "{subnet}"
    );
    // AWS: a subnet's IPv6 block is a /64 inside the VPC's block, overlapping no other.
    let wider = block.replace("/56", "/60");
    for (v6, code) in [
        (v64.as_str(), "InvalidSubnet.Conflict"),
        ("2001:db9::/64", "InvalidSubnet.Range"),
        (wider.as_str(), "InvalidSubnet.Range"),
    ] {
        d.aws_err(
            &[
                "create-subnet",
                "--vpc-id",
                &vpc,
                "--cidr-block",
                "10.0.2.0/24",
                "--ipv6-cidr-block",
                v6,
            ],
            code,
        );
    }
    // A second subnet: associate its /64 after creation, then disassociate it.
    let net: ipnet::Ipv6Net = block.parse().expect("block");
    let second64 = net.subnets(64).expect("64s").nth(1).expect("a second /64");
    let plain = d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.0.2.0/24",
        "--query",
        "Subnet.SubnetId",
    ]);
    d.aws_err(
        &[
            "modify-subnet-attribute",
            "--subnet-id",
            &plain,
            "--assign-ipv6-address-on-creation",
        ],
        "InvalidParameterValue",
    );
    let assoc = d.aws(&[
        "associate-subnet-cidr-block",
        "--subnet-id",
        &plain,
        "--ipv6-cidr-block",
        &second64.to_string(),
    ]);
    let assoc_id = s(&assoc["Ipv6CidrBlockAssociation"]["AssociationId"]);
    let found = d.aws_text(&[
        "describe-subnets",
        "--filters",
        &format!("Name=ipv6-cidr-block-association.ipv6-cidr-block,Values={second64}"),
        "--query",
        "Subnets[].SubnetId",
    ]);
    assert_eq!(found, plain);
    d.aws(&[
        "disassociate-subnet-cidr-block",
        "--association-id",
        &assoc_id,
    ]);
    let left = d.aws_text(&[
        "describe-subnets",
        "--subnet-ids",
        &plain,
        "--query",
        "Subnets[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock",
    ]);
    assert_eq!(left, "None", "the /64 is gone");

    // AssignIpv6AddressOnCreation: an instance gets an address from the /64.
    d.aws_text(&[
        "modify-subnet-attribute",
        "--subnet-id",
        &subnet_id,
        "--assign-ipv6-address-on-creation",
    ]);
    let assign = d.aws_text(&[
        "describe-subnets",
        "--subnet-ids",
        &subnet_id,
        "--query",
        "Subnets[0].AssignIpv6AddressOnCreation",
    ]);
    assert_eq!(assign, "True");
    let ami = latest_al2023_ami(&d);
    let run = |extra: &[&str], subnet: &str| {
        let mut args = vec![
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "t3.micro",
            "--subnet-id",
            subnet,
            "--query",
            "Instances[0].InstanceId",
        ];
        args.extend_from_slice(extra);
        d.aws_text(&args)
    };
    let inst = run(&[], &subnet_id);
    let described = d.aws(&["describe-instances", "--instance-ids", &inst]);
    let i = &described["Reservations"][0]["Instances"][0];
    let v6 = s(&i["Ipv6Address"]);
    let addr: std::net::Ipv6Addr = v6.parse().expect("an IPv6 address");
    let sub64: ipnet::Ipv6Net = v64.parse().expect("64");
    assert!(sub64.contains(&addr), "{v6} is not in {v64}");
    assert_eq!(
        i["NetworkInterfaces"][0]["Ipv6Addresses"][0]["Ipv6Address"],
        v6.as_str(),
        "{described}"
    );
    // `--ipv6-address-count 1` in a subnet without IPv6 is refused.
    d.aws_err(
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--subnet-id",
            &plain,
            "--ipv6-address-count",
            "1",
        ],
        "InvalidParameterValue",
    );
    let second = run(&["--ipv6-address-count", "1"], &subnet_id);
    let v6b = d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        &second,
        "--query",
        "Reservations[0].Instances[0].Ipv6Address",
    ]);
    assert_ne!(v6b, v6, "two interfaces never share an address");

    // AWS: a VPC block cannot be disassociated while a subnet uses it.
    let vassoc = d.aws_text(&[
        "describe-vpcs",
        "--vpc-ids",
        &vpc,
        "--query",
        "Vpcs[0].Ipv6CidrBlockAssociationSet[0].AssociationId",
    ]);
    d.aws_err(
        &["disassociate-vpc-cidr-block", "--association-id", &vassoc],
        "DependencyViolation",
    );
}

#[test]
fn egress_only_gateways_routes_and_ipv6_rules() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc, igw) = vpc_with_internet_gateway(&d);
    let assoc = d.aws(&[
        "associate-vpc-cidr-block",
        "--vpc-id",
        &vpc,
        "--amazon-provided-ipv6-cidr-block",
    ]);
    assert_eq!(
        assoc["Ipv6CidrBlockAssociation"]["Ipv6CidrBlockState"]["State"], "associating",
        "{assoc}"
    );
    let eigw = d.aws(&[
        "create-egress-only-internet-gateway",
        "--vpc-id",
        &vpc,
        "--tag-specifications",
        "ResourceType=egress-only-internet-gateway,Tags=[{Key=Name,Value=out6}]",
    ]);
    let g = &eigw["EgressOnlyInternetGateway"];
    let eigw_id = s(&g["EgressOnlyInternetGatewayId"]);
    assert!(eigw_id.starts_with("eigw-"), "{eigw}");
    assert_eq!(g["Attachments"][0]["VpcId"], vpc.as_str(), "{eigw}");
    assert_eq!(g["Attachments"][0]["State"], "attached", "{eigw}");
    let named = d.aws_text(&[
        "describe-egress-only-internet-gateways",
        "--filters",
        "Name=tag:Name,Values=out6",
        "--query",
        "EgressOnlyInternetGateways[].EgressOnlyInternetGatewayId",
    ]);
    assert_eq!(named, eigw_id);

    let rt = d.aws_text(&[
        "create-route-table",
        "--vpc-id",
        &vpc,
        "--query",
        "RouteTable.RouteTableId",
    ]);
    d.aws(&[
        "create-route",
        "--route-table-id",
        &rt,
        "--destination-ipv6-cidr-block",
        "::/0",
        "--egress-only-internet-gateway-id",
        &eigw_id,
    ]);
    // An internet gateway carries IPv6 too (both directions).
    d.aws(&[
        "create-route",
        "--route-table-id",
        &rt,
        "--destination-ipv6-cidr-block",
        "2001:db8:ffff::/48",
        "--gateway-id",
        &igw,
    ]);
    // AWS: an egress-only internet gateway is for IPv6 traffic only.
    d.aws_err(
        &[
            "create-route",
            "--route-table-id",
            &rt,
            "--destination-cidr-block",
            "0.0.0.0/0",
            "--egress-only-internet-gateway-id",
            &eigw_id,
        ],
        "InvalidParameterValue",
    );
    let routes = d.aws(&["describe-route-tables", "--route-table-ids", &rt]);
    let list = routes["RouteTables"][0]["Routes"].clone();
    let eroute = list
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["DestinationIpv6CidrBlock"] == "::/0")
        .unwrap_or_else(|| panic!("no ::/0 route: {routes}"));
    assert_eq!(eroute["EgressOnlyInternetGatewayId"], eigw_id.as_str());
    assert_eq!(eroute["State"], "active");
    let filtered = d.aws_text(&[
        "describe-route-tables",
        "--filters",
        &format!("Name=route.egress-only-internet-gateway-id,Values={eigw_id}"),
        "--query",
        "RouteTables[].RouteTableId",
    ]);
    assert_eq!(filtered, rt);

    // Security-group rules with Ipv6Ranges, and the filter that finds them.
    let sg = d.aws_text(&[
        "create-security-group",
        "--group-name",
        "v6",
        "--description",
        "v6",
        "--vpc-id",
        &vpc,
        "--query",
        "GroupId",
    ]);
    d.aws(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=22,ToPort=22,Ipv6Ranges=[{CidrIpv6=2001:db8::/32,Description=doc}]",
    ]);
    let ranges = d.aws(&[
        "describe-security-groups",
        "--group-ids",
        &sg,
        "--query",
        "SecurityGroups[0].IpPermissions[0].Ipv6Ranges",
    ]);
    assert_eq!(ranges[0]["CidrIpv6"], "2001:db8::/32", "{ranges}");
    assert_eq!(ranges[0]["Description"], "doc", "{ranges}");
    let rules = d.aws_text(&[
        "describe-security-group-rules",
        "--filters",
        &format!("Name=group-id,Values={sg}"),
        "--query",
        "SecurityGroupRules[?CidrIpv6=='2001:db8::/32'].FromPort",
    ]);
    assert_eq!(rules, "22");
    d.aws_err(
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--ip-permissions",
            "IpProtocol=tcp,FromPort=22,ToPort=22,Ipv6Ranges=[{CidrIpv6=2001:db8::1/32}]",
        ],
        "InvalidParameterValue",
    );

    // Network ACL entries with an IPv6 block.
    let acl = d.aws_text(&[
        "create-network-acl",
        "--vpc-id",
        &vpc,
        "--query",
        "NetworkAcl.NetworkAclId",
    ]);
    d.aws(&[
        "create-network-acl-entry",
        "--network-acl-id",
        &acl,
        "--rule-number",
        "120",
        "--protocol",
        "tcp",
        "--port-range",
        "From=443,To=443",
        "--rule-action",
        "allow",
        "--ingress",
        "--ipv6-cidr-block",
        "::/0",
    ]);
    let entries = d.aws(&[
        "describe-network-acls",
        "--network-acl-ids",
        &acl,
        "--query",
        "NetworkAcls[0].Entries",
    ]);
    let e = entries
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["RuleNumber"] == 120)
        .unwrap_or_else(|| panic!("no rule 120: {entries}"));
    assert_eq!(e["Ipv6CidrBlock"], "::/0");
    assert!(e.get("CidrBlock").is_none(), "{e}");
    // A new ACL of an IPv6 VPC ends with both `*` rules per direction.
    let stars = entries
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["RuleNumber"] == 32767)
        .count();
    assert_eq!(stars, 4, "{entries}");
    d.aws_err(
        &[
            "create-network-acl-entry",
            "--network-acl-id",
            &acl,
            "--rule-number",
            "121",
            "--protocol",
            "-1",
            "--rule-action",
            "deny",
            "--ingress",
            "--ipv6-cidr-block",
            "::/0",
            "--cidr-block",
            "0.0.0.0/0",
        ],
        "InvalidParameterCombination",
    );

    // A VPC with an egress-only gateway cannot be deleted; the gateway can.
    d.aws_err(
        &[
            "delete-egress-only-internet-gateway",
            "--egress-only-internet-gateway-id",
            "eigw-0123456789abcdef0",
        ],
        "InvalidGatewayID.NotFound",
    );
    d.aws(&[
        "delete-egress-only-internet-gateway",
        "--egress-only-internet-gateway-id",
        &eigw_id,
    ]);
    let state = d.aws_text(&[
        "describe-route-tables",
        "--route-table-ids",
        &rt,
        "--query",
        "RouteTables[0].Routes[?DestinationIpv6CidrBlock=='::/0'].State",
    ]);
    assert_eq!(state, "blackhole");
}

/// AWS (CreateSubnet): "For an IPv6 only subnet, specify an IPv6 CIDR block" — no IPv4
/// block at all, and (PrivateDnsNameOptionsOnLaunch) "For IPv6 only subnets, an instance
/// DNS name must be based on the instance ID".
#[test]
fn ipv6_native_subnets_have_only_a_64_and_refuse_ipv4_settings() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc, block) = dual_stack_vpc(&d, "10.0.0.0/16");
    let v64 = first_64(&block);
    // Bad combinations: an IPv4 block with Ipv6Native, Ipv6Native without an IPv6 block,
    // and an IPv6-only subnet in a VPC that has no IPv6 block.
    d.aws_err(
        &[
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--ipv6-native",
            "--cidr-block",
            "10.0.1.0/24",
            "--ipv6-cidr-block",
            &v64,
        ],
        "InvalidParameterCombination",
    );
    d.aws_err(
        &["create-subnet", "--vpc-id", &vpc, "--ipv6-native"],
        "MissingParameter",
    );
    let v4_only = d.aws_text(&[
        "create-vpc",
        "--cidr-block",
        "10.9.0.0/16",
        "--query",
        "Vpc.VpcId",
    ]);
    d.aws_err(
        &[
            "create-subnet",
            "--vpc-id",
            &v4_only,
            "--ipv6-native",
            "--ipv6-cidr-block",
            &v64,
        ],
        "InvalidParameterValue",
    );
    d.aws_err(
        &[
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--ipv6-native",
            "--ipv6-cidr-block",
            "2001:db9::/64",
        ],
        "InvalidSubnet.Range",
    );
    let created = d.aws(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--ipv6-native",
        "--ipv6-cidr-block",
        &v64,
    ]);
    let sub = &created["Subnet"];
    let id = s(&sub["SubnetId"]);
    assert_eq!(sub["Ipv6Native"], true, "{created}");
    assert!(sub.get("CidrBlock").is_none(), "{created}");
    assert_eq!(
        sub["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"],
        v64.as_str(),
        "{created}"
    );
    assert_eq!(
        sub["PrivateDnsNameOptionsOnLaunch"]["HostnameType"], "resource-name",
        "{created}"
    );
    // The /64 is taken: a dual-stack subnet cannot reuse it.
    d.aws_err(
        &[
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            "10.0.1.0/24",
            "--ipv6-cidr-block",
            &v64,
        ],
        "InvalidSubnet.Conflict",
    );
    // DescribeSubnets and its ipv6-native filter; a plain subnet is not IPv6-native.
    let plain = d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.0.2.0/24",
        "--query",
        "Subnet.SubnetId",
    ]);
    let described = d.aws(&["describe-subnets", "--subnet-ids", &id]);
    let row = &described["Subnets"][0];
    assert_eq!(row["Ipv6Native"], true, "{described}");
    assert!(row.get("CidrBlock").is_none(), "{described}");
    let natives = d.aws_text(&[
        "describe-subnets",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "Name=ipv6-native,Values=true",
        "--query",
        "Subnets[].SubnetId",
    ]);
    assert_eq!(natives, id);
    let not_native = d.aws_text(&[
        "describe-subnets",
        "--subnet-ids",
        &plain,
        "--query",
        "Subnets[0].Ipv6Native",
    ]);
    assert_eq!(not_native, "False");
    // No IPv4 means no public IPv4 on launch, no IP-based hostnames, and the /64 stays.
    d.aws_err(
        &[
            "modify-subnet-attribute",
            "--subnet-id",
            &id,
            "--map-public-ip-on-launch",
        ],
        "InvalidParameterValue",
    );
    d.aws_err(
        &[
            "modify-subnet-attribute",
            "--subnet-id",
            &id,
            "--private-dns-hostname-type-on-launch",
            "ip-name",
        ],
        "InvalidParameterValue",
    );
    let assoc = s(&row["Ipv6CidrBlockAssociationSet"][0]["AssociationId"]);
    d.aws_err(
        &["disassociate-subnet-cidr-block", "--association-id", &assoc],
        "InvalidParameterValue",
    );
    // An IPv6-only subnet deletes like any other.
    d.aws(&["delete-subnet", "--subnet-id", &id]);
}

/// AWS (EC2 User Guide, "IPv6-only subnets" and "EC2 instance hostnames"): an instance in
/// an IPv6-only subnet must be Nitro-based, gets IPv6 addresses and no private IPv4
/// address, and its DNS name is based on its instance ID (`i-….ec2.internal`). Nothing
/// that needs a private IPv4 there (an Elastic IP, a NAT gateway, a requested private
/// address) is accepted.
#[test]
fn an_instance_in_an_ipv6_only_subnet_has_an_ipv6_address_and_no_private_ipv4() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc, block) = dual_stack_vpc(&d, "10.0.0.0/16");
    let subnet = d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--ipv6-native",
        "--ipv6-cidr-block",
        &first_64(&block),
        "--query",
        "Subnet.SubnetId",
    ]);
    let ami = latest_al2023_ami(&d);
    let run = |extra: &[&str]| -> Vec<String> {
        ["run-instances", "--image-id", &ami, "--subnet-id", &subnet]
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    // t2 is Xen, not Nitro; a private IPv4 cannot be asked for.
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    d.aws_err(
        &refs(&run(&["--instance-type", "t2.micro"])),
        "InvalidParameterValue",
    );
    d.aws_err(
        &refs(&run(&[
            "--instance-type",
            "t3.micro",
            "--private-ip-address",
            "10.0.0.10",
        ])),
        "InvalidParameterValue",
    );
    let launched = d.aws(&refs(&run(&["--instance-type", "t3.micro"])));
    let inst = &launched["Instances"][0];
    let id = s(&inst["InstanceId"]);
    assert!(inst.get("PrivateIpAddress").is_none(), "{launched}");
    let described = d.aws(&["describe-instances", "--instance-ids", &id]);
    let row = &described["Reservations"][0]["Instances"][0];
    assert!(row.get("PrivateIpAddress").is_none(), "{described}");
    assert_eq!(
        row["PrivateDnsName"],
        format!("{id}.ec2.internal"),
        "{described}"
    );
    let nic = &row["NetworkInterfaces"][0];
    assert!(nic.get("PrivateIpAddress").is_none(), "{described}");
    assert_eq!(
        nic["PrivateIpAddresses"].as_array().map(Vec::len),
        Some(0),
        "{described}"
    );
    let v6 = s(&nic["Ipv6Addresses"][0]["Ipv6Address"]);
    let net: ipnet::Ipv6Net = first_64(&block).parse().expect("a /64");
    assert!(
        net.contains(&v6.parse::<std::net::Ipv6Addr>().expect("an IPv6 address")),
        "{described}"
    );
    assert_eq!(row["Ipv6Address"], v6.as_str(), "{described}");
    // The interface says the same; the private-ip-address filter finds nothing.
    let eni = s(&nic["NetworkInterfaceId"]);
    let enis = d.aws(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        &eni,
    ]);
    let e = &enis["NetworkInterfaces"][0];
    assert!(e.get("PrivateIpAddress").is_none(), "{enis}");
    assert_eq!(e["PrivateDnsName"], format!("{id}.ec2.internal"), "{enis}");
    assert_eq!(e["Ipv6Addresses"][0]["Ipv6Address"], v6.as_str(), "{enis}");
    // A learner's own interface there gets an IPv6 address too.
    let own = d.aws(&["create-network-interface", "--subnet-id", &subnet]);
    assert!(
        own["NetworkInterface"].get("PrivateIpAddress").is_none(),
        "{own}"
    );
    assert_eq!(
        own["NetworkInterface"]["Ipv6Addresses"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{own}"
    );
    // An Elastic IP maps to a private IPv4 address; a NAT gateway needs one.
    let alloc = d.aws_text(&[
        "allocate-address",
        "--domain",
        "vpc",
        "--query",
        "AllocationId",
    ]);
    d.aws_err(
        &[
            "associate-address",
            "--allocation-id",
            &alloc,
            "--network-interface-id",
            &eni,
        ],
        "InvalidParameterValue",
    );
    d.aws_err(
        &[
            "create-nat-gateway",
            "--subnet-id",
            &subnet,
            "--allocation-id",
            &alloc,
        ],
        "InvalidParameterValue",
    );
}

/// The metadata service's IPv6 endpoint as an instance option. "HttpProtocolIpv6:
/// Enables or disables the IPv6 endpoint for the instance metadata service. Default:
/// disabled" (EC2 API Reference, `InstanceMetadataOptionsRequest`); ModifyInstanceMetadataOptions
/// changes it on a running or stopped instance, and "If no parameter is specified, the
/// existing state is maintained".
#[test]
fn http_protocol_ipv6_is_set_at_launch_shown_filtered_and_modified() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc, block) = dual_stack_vpc(&d, "10.0.0.0/16");
    let subnet = d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.0.1.0/24",
        "--ipv6-cidr-block",
        &first_64(&block),
        "--query",
        "Subnet.SubnetId",
    ]);
    let ami = latest_al2023_ami(&d);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run-instances",
            "--image-id",
            &ami,
            "--subnet-id",
            &subnet,
            "--ipv6-address-count",
            "1",
            "--query",
            "Instances[0].InstanceId",
        ];
        args.extend_from_slice(extra);
        d.aws_text(&args)
    };
    let plain = run(&[]);
    let v6 = run(&["--metadata-options", "HttpProtocolIpv6=enabled"]);
    let opts = |id: &str| {
        d.aws(&["describe-instances", "--instance-ids", id])["Reservations"][0]["Instances"][0]
            ["MetadataOptions"]
            .clone()
    };
    assert_eq!(opts(&plain)["HttpProtocolIpv6"], "disabled");
    let o = opts(&v6);
    assert_eq!(o["HttpProtocolIpv6"], "enabled", "{o}");
    assert_eq!(o["HttpEndpoint"], "enabled", "{o}");
    let filtered = d.aws_text(&[
        "describe-instances",
        "--filters",
        "Name=metadata-options.http-protocol-ipv6,Values=enabled",
        "--query",
        "Reservations[].Instances[].InstanceId",
    ]);
    assert_eq!(filtered, v6);
    d.aws_err(
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--subnet-id",
            &subnet,
            "--metadata-options",
            "HttpProtocolIpv6=on",
        ],
        "InvalidParameterValue",
    );

    // Modify: only the options named change; the response shows them.
    let r = d.aws(&[
        "modify-instance-metadata-options",
        "--instance-id",
        &plain,
        "--http-protocol-ipv6",
        "enabled",
        "--http-put-response-hop-limit",
        "3",
    ]);
    assert_eq!(r["InstanceId"], plain.as_str(), "{r}");
    let m = &r["InstanceMetadataOptions"];
    assert_eq!(m["HttpProtocolIpv6"], "enabled", "{r}");
    assert_eq!(m["HttpPutResponseHopLimit"], 3, "{r}");
    assert_eq!(
        m["HttpTokens"], "required",
        "AL2023 keeps requiring IMDSv2: {r}"
    );
    let o = opts(&plain);
    assert_eq!(o["HttpProtocolIpv6"], "enabled", "{o}");
    assert_eq!(o["HttpPutResponseHopLimit"], 3, "{o}");
    let r = d.aws(&[
        "modify-instance-metadata-options",
        "--instance-id",
        &plain,
        "--http-tokens",
        "optional",
    ]);
    assert_eq!(
        r["InstanceMetadataOptions"]["HttpTokens"], "optional",
        "{r}"
    );
    assert_eq!(r["InstanceMetadataOptions"]["HttpProtocolIpv6"], "enabled");

    // Bad values, an unknown instance, a terminated one.
    for (flag, value) in [
        ("--http-protocol-ipv6", "yes"),
        ("--http-endpoint", "off"),
        ("--http-tokens", "sometimes"),
        ("--http-put-response-hop-limit", "65"),
    ] {
        d.aws_err(
            &[
                "modify-instance-metadata-options",
                "--instance-id",
                &plain,
                flag,
                value,
            ],
            "InvalidParameterValue",
        );
    }
    d.aws_err(
        &[
            "modify-instance-metadata-options",
            "--instance-id",
            "i-0123456789abcdef0",
            "--http-protocol-ipv6",
            "enabled",
        ],
        "InvalidInstanceID.NotFound",
    );
    d.aws(&["terminate-instances", "--instance-ids", &v6]);
    d.aws_err(
        &[
            "modify-instance-metadata-options",
            "--instance-id",
            &v6,
            "--http-protocol-ipv6",
            "disabled",
        ],
        "IncorrectInstanceState",
    );
}
