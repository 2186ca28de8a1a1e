//! VPC peering through the real fabric, driven by the real aws CLI and OpenSSH: a
//! connection from an instance in one VPC to an instance in a peered VPC opens only with
//! an active peering, a route on both sides and a security group that admits it (a rule
//! naming the peer VPC's group counts); a third VPC behind the peer stays out of reach
//! (peering is not transitive) and `vpclab trace` says why; overlapping blocks fail.
//!
//! AWS rules (VPC Peering Guide, "VPC peering basics" and "limitations"): "the owner of
//! each VPC … must manually add a route … that points to the IP address range of the
//! other VPC"; "you can reference a security group from the peer VPC"; transitive
//! peering and edge-to-edge routing are not supported; a request between VPCs with
//! overlapping CIDR blocks has status `failed`.

use crate::support::{Lab, Network, TestDaemon, have, s, stderr, stdout};

fn route(d: &TestDaemon, rt: &str, cidr: &str, pcx: &str) {
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        rt,
        "--destination-cidr-block",
        cidr,
        "--vpc-peering-connection-id",
        pcx,
    ]);
}

fn peering_status(d: &TestDaemon, pcx: &str) -> String {
    d.aws_text(&[
        "describe-vpc-peering-connections",
        "--vpc-peering-connection-ids",
        pcx,
        "--query",
        "VpcPeeringConnections[0].Status.Code",
    ])
}

#[test]
fn ssh_crosses_a_peering_only_with_routes_on_both_sides_and_the_right_group() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let bastion_sg = net.security_group(&d, "bastion", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (_, bastion, _) = net.launch(&d, &net.public_subnet, "lab", &bastion_sg, &[]);
    let (vpc_b, _, rt_b, target_sg, target_ip) = net.second_vpc(&d, "10.1.0.0/16", "10.1.1.0/24");
    let (vpc_b, rt_b) = (vpc_b.as_str(), rt_b.as_str());
    // From the bastion: can it open port 22 on the target? (exit status of nc -z)
    let probe = || {
        let out = d.ssh(
            &key,
            "ec2-user",
            &bastion,
            &format!("nc -z -w 2 {target_ip} 22"),
        );
        out.status.success()
    };

    let created = d.aws(&[
        "create-vpc-peering-connection",
        "--vpc-id",
        &net.vpc,
        "--peer-vpc-id",
        vpc_b,
    ]);
    let pcx = s(&created["VpcPeeringConnection"]["VpcPeeringConnectionId"]);
    assert_eq!(
        s(&created["VpcPeeringConnection"]["Status"]["Code"]),
        "initiating-request",
        "{created}"
    );
    assert_eq!(peering_status(&d, &pcx), "pending-acceptance");
    // A route to a pending connection is accepted, and is a blackhole until it is active.
    route(&d, &net.public_rt, "10.1.0.0/16", &pcx);
    route(&d, rt_b, "10.0.0.0/16", &pcx);
    let state = d.aws_text(&[
        "describe-route-tables",
        "--route-table-ids",
        &net.public_rt,
        "--query",
        "RouteTables[0].Routes[?VpcPeeringConnectionId].State",
    ]);
    assert_eq!(state, "blackhole");
    assert!(!probe(), "a pending peering carries nothing");

    let accepted = d.aws(&[
        "accept-vpc-peering-connection",
        "--vpc-peering-connection-id",
        &pcx,
    ]);
    assert_eq!(
        s(&accepted["VpcPeeringConnection"]["Status"]["Code"]),
        "active"
    );
    assert_eq!(
        s(&accepted["VpcPeeringConnection"]["AccepterVpcInfo"]["CidrBlock"]),
        "10.1.0.0/16"
    );
    assert!(!probe(), "the target's group admits nothing yet");

    // A rule naming the peer VPC's group (the bastion's) admits it.
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &target_sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--source-group",
        &bastion_sg,
    ]);
    assert!(
        probe(),
        "active peering, routes both ways, group rule: open"
    );

    // Without the return route in VPC B, the SYN-ACK has no way back.
    d.aws_text(&[
        "delete-route",
        "--route-table-id",
        rt_b,
        "--destination-cidr-block",
        "10.0.0.0/16",
    ]);
    assert!(!probe(), "no route back from VPC B");
    route(&d, rt_b, "10.0.0.0/16", &pcx);
    assert!(probe(), "route restored");

    // Deleting the connection blackholes both routes.
    d.aws_text(&[
        "delete-vpc-peering-connection",
        "--vpc-peering-connection-id",
        &pcx,
    ]);
    assert_eq!(peering_status(&d, &pcx), "deleted");
    assert!(!probe(), "deleted peering");
}

#[test]
fn a_transitive_path_is_refused_and_trace_says_why() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "web", &[(22, "10.0.0.0/8")]);
    d.key_pair("lab", "ed25519");
    let (instance, _, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let (vpc_b, _, rt_b, _, _) = net.second_vpc(&d, "10.1.0.0/16", "10.1.1.0/24");
    let (vpc_c, _, rt_c, sg_c, ip_c) = net.second_vpc(&d, "10.2.0.0/16", "10.2.1.0/24");
    let (vpc_b, rt_b, vpc_c, rt_c) = (vpc_b.as_str(), rt_b.as_str(), vpc_c.as_str(), rt_c.as_str());
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg_c,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "10.0.0.0/8",
    ]);
    let peer = |a: &str, b: &str| {
        let pcx = d.aws_text(&[
            "create-vpc-peering-connection",
            "--vpc-id",
            a,
            "--peer-vpc-id",
            b,
            "--query",
            "VpcPeeringConnection.VpcPeeringConnectionId",
        ]);
        d.aws_text(&[
            "accept-vpc-peering-connection",
            "--vpc-peering-connection-id",
            &pcx,
        ]);
        pcx
    };
    let ab = peer(&net.vpc, vpc_b);
    let bc = peer(vpc_b, vpc_c);
    // Every table routes every other VPC, as a learner trying A → B → C would.
    route(&d, &net.public_rt, "10.1.0.0/16", &ab);
    route(&d, &net.public_rt, "10.2.0.0/16", &ab);
    route(&d, rt_b, "10.0.0.0/16", &ab);
    route(&d, rt_b, "10.2.0.0/16", &bc);
    route(&d, rt_c, "10.1.0.0/16", &bc);
    route(&d, rt_c, "10.0.0.0/16", &bc);

    let out = d.vpclab(&["trace", &instance, &format!("{ip_c}:22")], b"");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}{}", stderr(&out));
    assert!(
        text.contains("[PCX_REQUIRES_ADDRESS_IN_VPC_CIDR]"),
        "{text}"
    );
    assert!(text.contains(&ab), "names the peering: {text}");
    assert!(text.contains("not transitive"), "{text}");
}

#[test]
fn overlapping_blocks_fail_and_other_accounts_are_refused() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let a = d.aws_text(&[
        "create-vpc",
        "--cidr-block",
        "10.0.0.0/16",
        "--query",
        "Vpc.VpcId",
    ]);
    let b = d.aws_text(&[
        "create-vpc",
        "--cidr-block",
        "10.0.128.0/17",
        "--query",
        "Vpc.VpcId",
    ]);
    let pcx = d.aws_text(&[
        "create-vpc-peering-connection",
        "--vpc-id",
        &a,
        "--peer-vpc-id",
        &b,
        "--query",
        "VpcPeeringConnection.VpcPeeringConnectionId",
    ]);
    let v = d.aws(&[
        "describe-vpc-peering-connections",
        "--filters",
        "Name=status-code,Values=failed",
    ]);
    let row = &v["VpcPeeringConnections"][0];
    assert_eq!(s(&row["VpcPeeringConnectionId"]), pcx, "{v}");
    assert!(
        s(&row["Status"]["Message"]).contains("overlapping CIDR range"),
        "{v}"
    );
    d.aws_err(
        &[
            "accept-vpc-peering-connection",
            "--vpc-peering-connection-id",
            &pcx,
        ],
        "InvalidStateTransition",
    );
    let rt = d.aws_text(&[
        "describe-route-tables",
        "--filters",
        &format!("Name=vpc-id,Values={a}"),
        "--query",
        "RouteTables[0].RouteTableId",
    ]);
    d.aws_err(
        &[
            "create-route",
            "--route-table-id",
            &rt,
            "--destination-cidr-block",
            "10.9.0.0/16",
            "--vpc-peering-connection-id",
            &pcx,
        ],
        "InvalidVpcPeeringConnectionID.NotFound",
    );
    d.aws_err(
        &[
            "create-vpc-peering-connection",
            "--vpc-id",
            &a,
            "--peer-vpc-id",
            &b,
            "--peer-owner-id",
            "111122223333",
        ],
        "Unsupported",
    );
}
