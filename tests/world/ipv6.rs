//! IPv6 inside instances, through the real fabric, driven by the real aws CLI and
//! OpenSSH: two dual-stack instances ping6 each other only once a security-group rule
//! admits ICMPv6 from the peer's /128; with the subnet's `::/0` routed to an egress-only
//! internet gateway an instance reaches an internet host with `curl -6`, while a
//! connection the internet starts toward it is refused at the gateway (or, when the VPC
//! also has an internet gateway, its reply is), and `vpclab connect` says so; ping6 crosses a VPC peering connection once both VPCs
//! route the other's IPv6 block to it.
//!
//! AWS rules (Amazon VPC User Guide): "Security group rules … IPv6 traffic needs its own
//! rules" (a rule for 0.0.0.0/0 does not admit IPv6); "An egress-only internet gateway
//! … allows outbound communication over IPv6 from instances in your VPC to the internet,
//! and prevents the internet from initiating an IPv6 connection with your instances".

use crate::support::{Lab, Network, TestDaemon, VPCLAB, have, stderr, stdout};

/// The network of `support::Network` made dual-stack: an Amazon-provided /56, the public
/// subnet's first /64, and `::/0` of the public route table to a new egress-only
/// gateway (IPv4 keeps its internet gateway). Returns the gateway's id.
pub(crate) fn dual_stack(d: &TestDaemon, net: &Network) -> String {
    d.aws_text(&[
        "associate-vpc-cidr-block",
        "--vpc-id",
        &net.vpc,
        "--amazon-provided-ipv6-cidr-block",
    ]);
    let block = d.aws_text(&[
        "describe-vpcs",
        "--vpc-ids",
        &net.vpc,
        "--query",
        "Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock",
    ]);
    let block: ipnet::Ipv6Net = block.parse().expect("an IPv6 block");
    let first64 = block.subnets(64).expect("a /56 has /64s").next().unwrap();
    d.aws_text(&[
        "associate-subnet-cidr-block",
        "--subnet-id",
        &net.public_subnet,
        "--ipv6-cidr-block",
        &first64.to_string(),
    ]);
    let eigw = d.aws_text(&[
        "create-egress-only-internet-gateway",
        "--vpc-id",
        &net.vpc,
        "--query",
        "EgressOnlyInternetGateway.EgressOnlyInternetGatewayId",
    ]);
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        &net.public_rt,
        "--destination-ipv6-cidr-block",
        "::/0",
        "--egress-only-internet-gateway-id",
        &eigw,
    ]);
    eigw
}

/// Launches a dual-stack instance (one IPv6 address) and waits until it runs, polling
/// every 200 ms (`aws ec2 wait` polls every 15 s, most of a test's time otherwise).
/// Returns (id, public IPv4 or "None", IPv6 address).
pub(crate) fn launch6(
    d: &TestDaemon,
    net: &Network,
    subnet: &str,
    sg: &str,
) -> (String, String, String) {
    let id = d.aws_text(&[
        "run-instances",
        "--image-id",
        &net.ami,
        "--instance-type",
        "t3.micro",
        "--key-name",
        "lab",
        "--subnet-id",
        subnet,
        "--security-group-ids",
        sg,
        "--ipv6-address-count",
        "1",
        "--query",
        "Instances[0].InstanceId",
    ]);
    for _ in 0..100 {
        let state = d.aws_text(&[
            "describe-instances",
            "--instance-ids",
            &id,
            "--query",
            "Reservations[0].Instances[0].State.Name",
        ]);
        if state == "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let public = d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        &id,
        "--query",
        "Reservations[0].Instances[0].PublicIpAddress",
    ]);
    let v6 = ipv6_of(d, &id);
    (id, public, v6)
}

fn ipv6_of(d: &TestDaemon, instance: &str) -> String {
    d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        instance,
        "--query",
        "Reservations[0].Instances[0].NetworkInterfaces[0].Ipv6Addresses[0].Ipv6Address",
    ])
}

#[test]
fn dual_stack_instances_ping6_each_other_only_with_an_ipv6_group_rule() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    dual_stack(&d, &net);
    let key = d.key_pair("lab", "ed25519");
    // Both groups admit SSH over IPv4 only (what the learner uses to log in).
    let sg_a = net.security_group(&d, "a", &[(22, "0.0.0.0/0")]);
    let sg_b = net.security_group(&d, "b", &[(22, "0.0.0.0/0")]);
    let (_, a_public, a6) = launch6(&d, &net, &net.public_subnet, &sg_a);
    let (_, _, b6) = launch6(&d, &net, &net.public_subnet, &sg_b);
    assert!(a6.contains(':') && b6.contains(':'), "{a6} {b6}");

    // The instance's own interface carries its IPv6 address and an IPv6 default route.
    let out = d.ssh(&key, "ec2-user", &a_public, "ip -6 addr; ip -6 route");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("inet6 {a6}/128 scope global")),
        "{text}"
    );
    assert!(text.contains("default via fe80::1 dev ens5"), "{text}");

    // B's group has no IPv6 rule: the echo request is dropped, ping6 reports loss.
    let ping = |d: &TestDaemon| {
        d.ssh(
            &key,
            "ec2-user",
            &a_public,
            &format!("ping6 -c 1 -W 1 {b6}"),
        )
    };
    let out = ping(&d);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 packets transmitted, 0 received"),
        "{}",
        stdout(&out)
    );
    // Admit ICMPv6 from A's /128 only.
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg_b,
        "--ip-permissions",
        &format!("IpProtocol=icmpv6,FromPort=-1,ToPort=-1,Ipv6Ranges=[{{CidrIpv6={a6}/128}}]"),
    ]);
    let out = ping(&d);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!("PING {b6}({b6}) 56 data bytes")),
        "{text}"
    );
    assert!(
        text.contains(&format!("64 bytes from {b6}: icmp_seq=1 ttl=64")),
        "{text}"
    );
}

#[test]
fn an_egress_only_gateway_lets_curl_6_out_and_refuses_connections_from_the_internet() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let eigw = dual_stack(&d, &net);
    let key = d.key_pair("lab", "ed25519");
    let sg_b = net.security_group(&d, "b", &[(22, "0.0.0.0/0")]);
    let (_, b_public, b6) = launch6(&d, &net, &net.public_subnet, &sg_b);

    // Out through the egress-only gateway: the simulated internet's web page over IPv6.
    let out = d.ssh(
        &key,
        "ec2-user",
        &b_public,
        "curl -6 -s -m 5 -o /dev/null -w '%{http_code}' 'http://[2606:4700:4700::1111]/'",
    );
    assert_eq!(stdout(&out).trim(), "200", "{}", stderr(&out));

    // `traceroute -6` (and `traceroute6`): the egress-only gateway is a hop, so the
    // subnet's router (its /64's first address + 1, which answers the fabric's ICMPv6
    // time exceeded) comes first, then the destination (RFC 4443 §3.3).
    let b6_addr: std::net::Ipv6Addr = b6.parse().expect("an IPv6 address");
    let router = std::net::Ipv6Addr::from((u128::from(b6_addr) >> 64 << 64) + 1);
    for cmd in [
        "traceroute -6 -n 2606:4700:4700::1111",
        "traceroute6 -n 2606:4700:4700::1111",
    ] {
        let out = d.ssh(&key, "ec2-user", &b_public, cmd);
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("80 byte packets"), "{text}");
        assert!(lines[1].starts_with(&format!(" 1  {router}  ")), "{text}");
        assert!(lines[2].starts_with(" 2  2606:4700:4700::1111  "), "{text}");
    }

    // In from the internet to the same instance over IPv6, with a group rule for it:
    // the VPC has an internet gateway, so the SYN comes in through it, but the subnet
    // routes `::/0` (the reply) to the egress-only gateway, which forwards only
    // connections its instances started ("Egress-only internet gateway basics": it is
    // stateful and "prevents resources on the internet from initiating communication").
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg_b,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=22,ToPort=22,Ipv6Ranges=[{CidrIpv6=::/0}]",
    ]);
    let out = d.ssh_with(&key, "ec2-user", &b6, "true", 2);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "the reply was dropped: egress-only internet gateway {eigw} refused to send"
        )),
        "{err}"
    );

    // In from the internet: a VPC whose only way out over IPv6 is an egress-only
    // gateway (no internet gateway at all). The learner's SSH to its instance's IPv6
    // address is refused at the gateway, even with a group rule for it, and
    // `vpclab connect` names the gateway.
    let (_, c6, eigw2) = egress_only_vpc(&d, &net);
    let out = d.ssh_with(&key, "ec2-user", &c6, "true", 2);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("egress-only internet gateway {eigw2} refused")),
        "{err}"
    );
    // The first VPC's route names its own gateway.
    assert!(eigw.starts_with("eigw-") && eigw != eigw2, "{eigw}");
}

/// A second dual-stack VPC (`second_dual_stack_vpc`) whose only way out over IPv6 is
/// an egress-only gateway (no internet gateway), with a running instance whose group
/// admits SSH from any IPv6 address. Returns (instance, its IPv6 address, gateway).
fn egress_only_vpc(d: &TestDaemon, net: &Network) -> (String, String, String) {
    let (vpc, subnet, main, _) = second_dual_stack_vpc(d);
    let eigw = d.aws_text(&[
        "create-egress-only-internet-gateway",
        "--vpc-id",
        &vpc,
        "--query",
        "EgressOnlyInternetGateway.EgressOnlyInternetGatewayId",
    ]);
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        &main,
        "--destination-ipv6-cidr-block",
        "::/0",
        "--egress-only-internet-gateway-id",
        &eigw,
    ]);
    let sg = crate::support::security_group(d, &vpc, "c", &[]);
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=22,ToPort=22,Ipv6Ranges=[{CidrIpv6=::/0}]",
    ]);
    let (id, _, v6) = launch6(d, net, &subnet, &sg);
    (id, v6, eigw)
}

/// A second dual-stack VPC (10.1.0.0/16 and an Amazon-provided /56) with one subnet (its
/// first /64) routed by the VPC's main table. Returns (vpc, subnet, main table, /56).
fn second_dual_stack_vpc(d: &TestDaemon) -> (String, String, String, ipnet::Ipv6Net) {
    let vpc = d.aws_text(&[
        "create-vpc",
        "--cidr-block",
        "10.1.0.0/16",
        "--amazon-provided-ipv6-cidr-block",
        "--query",
        "Vpc.VpcId",
    ]);
    let block = d.aws_text(&[
        "describe-vpcs",
        "--vpc-ids",
        &vpc,
        "--query",
        "Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock",
    ]);
    let block: ipnet::Ipv6Net = block.parse().expect("an IPv6 block");
    let subnet = d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.1.1.0/24",
        "--ipv6-cidr-block",
        &block.subnets(64).unwrap().next().unwrap().to_string(),
        "--availability-zone",
        "us-east-1a",
        "--query",
        "Subnet.SubnetId",
    ]);
    let main = d.aws_text(&[
        "describe-route-tables",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "Name=association.main,Values=true",
        "--query",
        "RouteTables[0].RouteTableId",
    ]);
    (vpc, subnet, main, block)
}

fn route6_to_peering(d: &TestDaemon, table: &str, block: &ipnet::Ipv6Net, pcx: &str) {
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        table,
        "--destination-ipv6-cidr-block",
        &block.to_string(),
        "--vpc-peering-connection-id",
        pcx,
    ]);
}

/// VPC Peering Guide, "Update your route tables for a VPC peering connection": "if the
/// VPCs in the VPC peering connection have associated IPv6 CIDR blocks, you can add
/// routes that enable communication with the peer VPC over IPv6". ping6 from an
/// instance in VPC A to one in peered VPC B gets no answer while only A routes B's /56
/// to the peering (the reply has no route back), and is answered once B routes A's
/// /56 too; B's group admits ICMPv6 by naming A's group (a peer group reference).
#[test]
fn ping6_crosses_a_peering_once_both_sides_route_ipv6_to_it() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    dual_stack(&d, &net);
    let block_a: ipnet::Ipv6Net = d
        .aws_text(&[
            "describe-vpcs",
            "--vpc-ids",
            &net.vpc,
            "--query",
            "Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock",
        ])
        .parse()
        .unwrap();
    let key = d.key_pair("lab", "ed25519");
    let sg_a = net.security_group(&d, "a", &[(22, "0.0.0.0/0")]);
    let (_, a_public, _) = launch6(&d, &net, &net.public_subnet, &sg_a);
    let (vpc_b, subnet_b, rt_b, block_b) = second_dual_stack_vpc(&d);
    let sg_b = crate::support::security_group(&d, &vpc_b, "b", &[]);
    let (_, _, b6) = launch6(&d, &net, &subnet_b, &sg_b);
    assert!(
        block_b.contains(&b6.parse::<std::net::Ipv6Addr>().unwrap()),
        "{b6}"
    );

    let pcx = d.aws_text(&[
        "create-vpc-peering-connection",
        "--vpc-id",
        &net.vpc,
        "--peer-vpc-id",
        &vpc_b,
        "--query",
        "VpcPeeringConnection.VpcPeeringConnectionId",
    ]);
    d.aws_text(&[
        "accept-vpc-peering-connection",
        "--vpc-peering-connection-id",
        &pcx,
        "--query",
        "VpcPeeringConnection.Status.Code",
    ]);
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg_b,
        "--ip-permissions",
        &format!("IpProtocol=icmpv6,FromPort=-1,ToPort=-1,UserIdGroupPairs=[{{GroupId={sg_a}}}]"),
    ]);
    let ping = || {
        d.ssh(
            &key,
            "ec2-user",
            &a_public,
            &format!("ping6 -c 1 -W 1 {b6}"),
        )
    };
    // A's side only: the request crosses, the reply has no route back.
    route6_to_peering(&d, &net.public_rt, &block_b, &pcx);
    let out = ping();
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 packets transmitted, 0 received"),
        "{}",
        stdout(&out)
    );
    // Both sides: answered.
    route6_to_peering(&d, &rt_b, &block_a, &pcx);
    let out = ping();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!("64 bytes from {b6}: icmp_seq=1")),
        "{text}"
    );
}

/// VPC Flow Logs record IPv6 flows with IPv6 addresses ("Flow log records": `srcaddr`
/// and `dstaddr` are IPv4 or IPv6 addresses, `type` is `IPv4` or `IPv6`): the
/// learner's SSH to a dual-stack instance's IPv6 address, refused by a group that
/// admits port 22 over IPv4 only, is an ingress REJECT record from the learner's IPv6
/// address to the instance's, in a custom format that shows `type`.
#[test]
fn a_refused_ipv6_connection_is_an_ipv6_reject_record_in_the_flow_log() {
    if !have("aws") {
        return;
    }
    let d =
        TestDaemon::start_with(|c| c.flow_log_window = Some(std::time::Duration::from_millis(400)));
    let net = Network::build(&d);
    dual_stack(&d, &net);
    d.key_pair("lab", "ed25519");
    let sg = net.security_group(&d, "v4-ssh", &[(22, "0.0.0.0/0")]);
    let (_, _, v6) = launch6(&d, &net, &net.public_subnet, &sg);
    d.aws_cli_json(&[
        "logs",
        "--region",
        "us-east-1",
        "create-log-group",
        "--log-group-name",
        "vpc-flow6",
    ]);
    d.aws(&[
        "create-flow-logs",
        "--resource-type",
        "VPC",
        "--resource-ids",
        &net.vpc,
        "--traffic-type",
        "ALL",
        "--log-group-name",
        "vpc-flow6",
        "--deliver-logs-permission-arn",
        "arn:aws:iam::000000000000:role/flow-logs",
        "--log-format",
        "${type} ${srcaddr} ${dstaddr} ${dstport} ${protocol} ${flow-direction} ${action}",
    ]);
    let out = d.vpclab(&["connect", "--timeout", "1", &v6, "22"], b"");
    assert!(!out.status.success(), "{}", stderr(&out));
    let events = crate::flow_logs::wait_for_events(
        &d,
        "vpc-flow6",
        "[type=IPv6, src, dst, port=22, proto=6, direction=ingress, action=REJECT]",
    );
    assert!(!events.is_empty(), "no IPv6 REJECT record");
    let msg = events[0]["message"].as_str().expect("message");
    let fields: Vec<&str> = msg.split(' ').collect();
    assert_eq!(fields.len(), 7, "{msg}");
    assert!(fields[1].contains(':'), "an IPv6 source: {msg}");
    assert_eq!(fields[2], v6, "the instance's IPv6 address: {msg}");
}

/// `vpclab trace -6` walks the fabric's IPv6 decision path hop by hop, with the same
/// reasons as IPv4: a security group without an IPv6 rule, a network ACL rule that
/// denies ICMPv6, a route table without `::/0`, and (in a VPC whose only way out is an
/// egress-only gateway) the gateway refusing a connection from the internet.
/// AWS rules (Amazon VPC User Guide): security groups and network ACLs need IPv6 rules
/// for IPv6 traffic; "an egress-only internet gateway … prevents the internet from
/// initiating an IPv6 connection with your instances".
#[test]
fn vpclab_trace_walks_ipv6_flows_with_the_rule_that_decided() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    dual_stack(&d, &net);
    // The private subnet gets the VPC's second /64 (its route table has no ::/0).
    let block: ipnet::Ipv6Net = d
        .aws_text(&[
            "describe-vpcs",
            "--vpc-ids",
            &net.vpc,
            "--query",
            "Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock",
        ])
        .parse()
        .expect("an IPv6 block");
    let second64 = block.subnets(64).expect("/64s").nth(1).unwrap();
    d.aws_text(&[
        "associate-subnet-cidr-block",
        "--subnet-id",
        &net.private_subnet,
        "--ipv6-cidr-block",
        &second64.to_string(),
    ]);
    d.key_pair("lab", "ed25519");
    let sg_a = net.security_group(&d, "a", &[]);
    let sg_b = net.security_group(&d, "b", &[]);
    let (a, _, a6) = launch6(&d, &net, &net.public_subnet, &sg_a);
    let (b, _, b6) = launch6(&d, &net, &net.private_subnet, &sg_b);
    let trace = |args: &[&str]| {
        let mut all = vec!["trace"];
        all.extend_from_slice(args);
        let out = d.vpclab(&all, b"");
        (out.status.code(), stdout(&out), stderr(&out))
    };

    // B's group has no IPv6 rule: the echo request dies at B's interface.
    let (code, text, err) = trace(&[&a, &b, "--proto", "icmp", "-6"]);
    assert_eq!(code, Some(3), "{text}{err}");
    assert!(
        text.starts_with(&format!(
            "trace ping6 from instance {a} ({a6}) to instance {b} ({b6})"
        )),
        "{text}"
    );
    assert!(
        text.contains("dropped: no inbound security group rule of eni-"),
        "{text}"
    );
    assert!(
        text.contains("a rule for an IPv4 CIDR never matches IPv6"),
        "{text}"
    );
    assert!(text.contains("result: NOT reachable"), "{text}");

    // Admit ICMPv6 from A's /128: reachable, and the hop names the group and its rule.
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg_b,
        "--ip-permissions",
        &format!("IpProtocol=icmpv6,FromPort=-1,ToPort=-1,Ipv6Ranges=[{{CidrIpv6={a6}/128}}]"),
    ]);
    let (code, text, err) = trace(&[&a, &b6, "--proto", "icmp"]);
    assert_eq!(code, Some(0), "{text}{err}");
    // (The CLI's `icmpv6` is stored as protocol number 58, as AWS describes it.)
    assert!(
        text.contains(&format!(
            "{sg_b}: security group allowed inbound\n      ingress rule: protocol 58 from {a6}/128"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("route {block} -> local (active)")),
        "{text}"
    );
    assert!(text.contains("result: reachable"), "{text}");

    // A network ACL rule that denies ICMPv6 into the private subnet.
    let acl = d.aws_text(&[
        "describe-network-acls",
        "--filters",
        &format!("Name=vpc-id,Values={}", net.vpc),
        "Name=default,Values=true",
        "--query",
        "NetworkAcls[0].NetworkAclId",
    ]);
    d.aws_text(&[
        "create-network-acl-entry",
        "--network-acl-id",
        &acl,
        "--ingress",
        "--rule-number",
        "90",
        "--protocol",
        "58",
        "--icmp-type-code",
        "Type=-1,Code=-1",
        "--ipv6-cidr-block",
        "::/0",
        "--rule-action",
        "deny",
    ]);
    let (code, text, err) = trace(&[&a, &b, "--proto", "icmp", "-6"]);
    assert_eq!(code, Some(3), "{text}{err}");
    assert!(
        text.contains(&format!(
            "dropped: blocked by network ACL {acl} inbound rule 90 (subnet {})",
            net.private_subnet
        )),
        "{text}"
    );
    assert!(text.contains("[SUBNET_ACL_RESTRICTION]"), "{text}");

    // B's route table has no ::/0: no way to the internet over IPv6.
    let (code, text, _) = trace(&[&b, "internet:443", "-6"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains(&format!(
            "dropped: no route to 3fff:198:51:100::77 in route table {} [NO_ROUTE_TO_DESTINATION]",
            net.private_rt
        )),
        "{text}"
    );
    assert!(
        text.contains("::/0 to an internet gateway or an egress-only internet gateway"),
        "{text}"
    );
    // Mixing the families is refused with a sentence, not a walk.
    let out = d.vpclab(&["trace", &a, "10.0.1.5:22", "-6"], b"");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("either both IPv4 or both IPv6"),
        "{}",
        stderr(&out)
    );

    // A VPC whose only IPv6 way out is an egress-only gateway: a connection from your
    // computer to its instance is refused at the gateway.
    let (c, c6, eigw2) = egress_only_vpc(&d, &net);
    let (code, text, err) = trace(&["me", &format!("{c}:22"), "-6"]);
    assert_eq!(code, Some(3), "{text}{err}");
    assert!(
        text.starts_with(&format!(
            "trace tcp port 22 from your computer (3fff:203:0:113::10) to instance {c} ({c6})"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "dropped: egress-only internet gateway {eigw2} refused a connection to {c6} initiated from the internet"
        )),
        "{text}"
    );
    // The other way the same gateway lets the connection out and its reply back in.
    let (code, text, err) = trace(&[&c, "[2606:4700:4700::1111]:443"]);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(
        text.contains(&format!("{eigw2}: ")) && text.contains("result: reachable"),
        "{text}"
    );
}

/// An IPv6-only subnet end to end. AWS (EC2 User Guide, "IPv6-only subnets"; Amazon VPC
/// User Guide, "Egress-only internet gateways"): its instances have IPv6 addresses and
/// no IPv4 address at all, their DNS name is based on the instance ID, and a subnet whose
/// `::/0` goes to an egress-only gateway reaches the internet over IPv6 while the
/// internet cannot start a connection to it. The learner reaches the instance through a
/// dual-stack bastion (`ssh -J`), whose IPv6 address its security group must admit.
#[test]
fn an_ipv6_only_instance_is_reached_through_a_bastion_and_goes_out_through_the_egress_only_gateway()
{
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let eigw = dual_stack(&d, &net);
    let (v6only, second64) = ipv6_only_subnet(&d, &net, &eigw);
    let key = d.key_pair("lab", "ed25519");
    let bastion_sg = net.security_group(&d, "bastion", &[(22, "0.0.0.0/0")]);
    let (bastion, bastion_public, bastion6) = launch6(&d, &net, &net.public_subnet, &bastion_sg);
    // The app's group admits SSH from the bastion's IPv6 address only.
    let app_sg = net.security_group(&d, "app", &[]);
    let rule =
        format!("IpProtocol=tcp,FromPort=22,ToPort=22,Ipv6Ranges=[{{CidrIpv6={bastion6}/128}}]");
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &app_sg,
        "--ip-permissions",
        &rule,
    ]);
    let (app, app_public, app6) = launch6(&d, &net, &v6only, &app_sg);
    assert_eq!(app_public, "None");
    assert!(second64.contains(&app6.parse::<std::net::Ipv6Addr>().expect("IPv6")));
    let query = |q: &str| {
        d.aws_text(&[
            "describe-instances",
            "--instance-ids",
            &app,
            "--query",
            &format!("Reservations[0].Instances[0].{q}"),
        ])
    };
    assert_eq!(query("PrivateIpAddress"), "None");
    assert_eq!(query("PrivateDnsName"), format!("{app}.ec2.internal"));

    // `ssh -J` through the bastion to the IPv6 address.
    let config = jump_config6(&d, &key, &bastion_public);
    let jump = |command: &str| jump6(&d, &config, &app6, command);
    let out = jump("hostname; ip addr show ens5");
    let text = stdout(&out);
    assert!(out.status.success(), "ssh -J: {}{text}", stderr(&out));
    // The hostname is the resource name; the interface holds IPv6 only.
    assert!(text.starts_with(&format!("{app}.ec2.internal\n")), "{text}");
    let ens5 = text.split_once("ens5:").map(|(_, r)| r).unwrap_or_default();
    assert!(ens5.contains(&format!("inet6 {app6}/128")), "{text}");
    assert!(!ens5.contains("inet "), "no IPv4 address on ens5: {text}");

    // Out to the simulated internet over IPv6 through the egress-only gateway.
    let out = jump(
        "curl -6 -s -m 5 -o /dev/null -w '%{http_code}' 'http://[2606:4700:4700::1111]/'; echo; ping6 -c 1 -W 2 2606:4700:4700::1111",
    );
    let text = stdout(&out);
    assert!(text.starts_with("200\n"), "{text}{}", stderr(&out));
    assert!(text.contains("1 packets transmitted, 1 received"), "{text}");

    // Names resolve through the resolver's IPv6 address, the only one the instance can
    // reach, which its `/etc/resolv.conf` names; `curl -6` by name then goes out too.
    let out = jump(
        "cat /etc/resolv.conf; dig +short example.com AAAA; curl -6 -s -m 5 -o /dev/null -w 'by name %{http_code}' http://example.com/",
    );
    let text = stdout(&out);
    assert!(text.contains("nameserver fd00:ec2::253\n"), "{text}");
    assert!(!text.contains("nameserver 10."), "{text}");
    assert!(
        text.contains("3fff:198:51:100::129\n"),
        "{text}{}",
        stderr(&out)
    );
    assert!(text.ends_with("by name 200"), "{text}");

    // Straight from your computer, even with a rule for every IPv6 address: the internet
    // cannot start a connection through an egress-only gateway, and `vpclab connect`
    // says which gateway refused.
    let anyone = "IpProtocol=tcp,FromPort=22,ToPort=22,Ipv6Ranges=[{CidrIpv6=::/0}]";
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &app_sg,
        "--ip-permissions",
        anyone,
    ]);
    let out = d.ssh_with(&key, "ec2-user", &app6, "true", 2);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("egress-only internet gateway {eigw}")),
        "{}",
        stderr(&out)
    );
    d.aws_text(&[
        "revoke-security-group-ingress",
        "--group-id",
        &app_sg,
        "--ip-permissions",
        anyone,
    ]);

    // Revoke the bastion's rule: the jump's second hop times out, and `vpclab trace -6`
    // says why.
    d.aws_text(&[
        "revoke-security-group-ingress",
        "--group-id",
        &app_sg,
        "--ip-permissions",
        &rule,
    ]);
    let out = jump("true");
    assert_eq!(out.status.code(), Some(255), "{}", stdout(&out));
    assert!(stderr(&out).contains("open failed"), "{}", stderr(&out));
    let out = d.vpclab(&["trace", &bastion, &format!("{app}:22"), "-6"], b"");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}{}", stderr(&out));
    assert!(
        text.starts_with(&format!(
            "trace tcp port 22 from instance {bastion} ({bastion6}) to instance {app} ({app6})"
        )),
        "{text}"
    );
    assert!(
        text.contains("dropped: no inbound security group rule of eni-"),
        "{text}"
    );
}

/// An ssh configuration for `ssh -J bastion` to instances' IPv6 addresses (2001:db8::/32):
/// the bastion is reached at its public IPv4 address through `vpclab connect`.
pub(crate) fn jump_config6(
    d: &TestDaemon,
    key: &std::path::Path,
    bastion_public: &str,
) -> std::path::PathBuf {
    let config = d.path("jump6.config");
    std::fs::write(
        &config,
        format!(
            "Host bastion\n  HostName {bastion_public}\n  User ec2-user\n  IdentityFile {key}\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {kh}\n  ProxyCommand {VPCLAB} connect --timeout 10 %h %p\nHost 2001:db8:*\n  IdentityFile {key}\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {kh}\n",
            key = key.display(),
            kh = d.path("known_hosts").display(),
        ),
    )
    .expect("write ssh config");
    config
}

/// Runs `command` as ec2-user on `target6` through the bastion of `config`.
pub(crate) fn jump6(
    d: &TestDaemon,
    config: &std::path::Path,
    target6: &str,
    command: &str,
) -> std::process::Output {
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-F")
        .arg(config)
        .args(["-J", "bastion", &format!("ec2-user@{target6}"), command])
        .stdin(std::process::Stdio::null());
    d.env(&mut cmd);
    cmd.output().expect("run ssh")
}

/// An IPv6-only subnet in `net`'s VPC (made dual-stack by [`dual_stack`]) on the VPC's
/// second /64, associated with the private route table, which sends `::/0` to the
/// egress-only gateway `eigw` (and has no IPv4 way out at all). Returns (subnet, /64).
pub(crate) fn ipv6_only_subnet(
    d: &TestDaemon,
    net: &Network,
    eigw: &str,
) -> (String, ipnet::Ipv6Net) {
    // The IPv6-only subnet takes the VPC's second /64; the private route table (no IPv4
    // way out at all) sends `::/0` to the egress-only gateway.
    let block: ipnet::Ipv6Net = d
        .aws_text(&[
            "describe-vpcs",
            "--vpc-ids",
            &net.vpc,
            "--query",
            "Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock",
        ])
        .parse()
        .expect("an IPv6 block");
    let second64 = block.subnets(64).expect("/64s").nth(1).unwrap();
    let v6only = d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        &net.vpc,
        "--ipv6-native",
        "--ipv6-cidr-block",
        &second64.to_string(),
        "--availability-zone",
        "us-east-1a",
        "--query",
        "Subnet.SubnetId",
    ]);
    d.aws_text(&[
        "associate-route-table",
        "--route-table-id",
        &net.private_rt,
        "--subnet-id",
        &v6only,
    ]);
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        &net.private_rt,
        "--destination-ipv6-cidr-block",
        "::/0",
        "--egress-only-internet-gateway-id",
        eigw,
    ]);
    (v6only, second64)
}

/// The VPC's services over IPv6, from inside a dual-stack instance whose group has no
/// IPv6 rule at all. "The Route 53 Resolver is located at 169.254.169.253 (IPv4),
/// fd00:ec2::253 (IPv6), and at the primary private IPV4 CIDR range provisioned to your
/// VPC plus two" (Amazon VPC User Guide, "Amazon DNS server"): `dig @fd00:ec2::253`
/// answers with the same view as the IPv4 resolver, including AAAA records for the
/// simulated internet's well-known names, and `curl -6` by name reaches that address.
/// "For Nitro-based instances with IPv6 addresses, AWS provides [the instance metadata
/// service] at the fd00:ec2::254 IPv6 endpoint" (IPv6 on AWS, "Supporting Amazon VPC
/// services"), but "By default, the IPv6 endpoint is disabled" (EC2 User Guide): nothing
/// answers there until `modify-instance-metadata-options --http-protocol-ipv6 enabled`,
/// and then the IMDSv2 rules of the IPv4 endpoint apply (a token is required).
#[test]
fn the_resolver_and_metadata_answer_over_ipv6_and_public_names_have_aaaa() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    dual_stack(&d, &net);
    let key = d.key_pair("lab", "ed25519");
    let sg = net.security_group(&d, "svc", &[(22, "0.0.0.0/0")]);
    let (id, public, _) = launch6(&d, &net, &net.public_subnet, &sg);

    // The resolver at fd00:ec2::253: AAAA for a well-known site, NODATA for an
    // IPv4-only one, and the A record of the same name as from the IPv4 resolver.
    let out = d.ssh(
        &key,
        "ec2-user",
        &public,
        "dig +short @fd00:ec2::253 example.com AAAA; echo ---; \
         dig +short @fd00:ec2::253 example.com; echo ---; \
         dig +short example.com; echo ---; \
         dig @fd00:ec2::253 github.com AAAA",
    );
    let text = stdout(&out);
    let parts: Vec<&str> = text.split("---").map(str::trim).collect();
    assert_eq!(parts[0], "3fff:198:51:100::129", "{text}{}", stderr(&out));
    assert_eq!(parts[1], "198.51.100.129", "{text}");
    assert_eq!(parts[1], parts[2], "{text}");
    assert!(
        parts[3].contains("status: NOERROR") && parts[3].contains("ANSWER: 0"),
        "{text}"
    );
    assert!(parts[3].contains("SERVER: fd00:ec2::253#53"), "{text}");

    // `curl -6` by name: the AAAA record, then the site over IPv6 through the route
    // to the egress-only gateway.
    let out = d.ssh(
        &key,
        "ec2-user",
        &public,
        "curl -6 -s -m 5 http://example.com/",
    );
    let page = stdout(&out);
    assert!(
        page.contains("This is example.com (3fff:198:51:100::129)"),
        "{page}{}",
        stderr(&out)
    );

    // IMDS over IPv6: disabled by default, so the connection is never answered.
    let shown = d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        &id,
        "--query",
        "Reservations[0].Instances[0].MetadataOptions.HttpProtocolIpv6",
    ]);
    assert_eq!(shown, "disabled");
    let imds6 = "curl -6 -s --connect-timeout 2 -m 3 -o /dev/null -w '%{http_code}' \
                 http://[fd00:ec2::254]/latest/meta-data/instance-id; echo \" rc=$?\"";
    let out = d.ssh(&key, "ec2-user", &public, imds6);
    assert!(stdout(&out).contains("rc=28"), "{}", stdout(&out));

    let changed = d.aws_text(&[
        "modify-instance-metadata-options",
        "--instance-id",
        &id,
        "--http-protocol-ipv6",
        "enabled",
        "--query",
        "InstanceMetadataOptions.HttpProtocolIpv6",
    ]);
    assert_eq!(changed, "enabled");
    let shown = d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        &id,
        "--query",
        "Reservations[0].Instances[0].MetadataOptions.HttpProtocolIpv6",
    ]);
    assert_eq!(shown, "enabled");
    // The image requires IMDSv2 (HttpTokens required): a request without a token is
    // refused with 401 over IPv6 as over IPv4; with a token it is answered.
    let script = "curl -6 -s -m 3 -o /dev/null -w '%{http_code}' http://[fd00:ec2::254]/latest/meta-data/instance-id; echo; \
                  T=$(curl -6 -s -m 3 -X PUT http://[fd00:ec2::254]/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); \
                  curl -6 -s -m 3 -H \"X-aws-ec2-metadata-token: $T\" http://[fd00:ec2::254]/latest/meta-data/instance-id";
    let mut text = String::new();
    // The runtime attaches the service again right after the commit; allow it a moment.
    for _ in 0..20 {
        let out = d.ssh(&key, "ec2-user", &public, script);
        text = stdout(&out);
        if text.contains(&id) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("401"), "{text}");
    assert_eq!(lines.next(), Some(id.as_str()), "{text}");
}
