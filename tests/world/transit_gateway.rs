//! A transit gateway through the real fabric, driven by the real aws CLI and OpenSSH:
//! two VPCs attached to one gateway reach each other only once each VPC's route table
//! sends the other's block to the gateway; the default route table carries the
//! propagated VPC blocks; a blackhole route in the gateway's table drops, and `vpclab
//! trace` names the gateway route table and route.
//!
//! AWS rules (Transit Gateway guide, "How transit gateways work" and "Transit gateway
//! route tables"): "you must add a route to the route tables of the VPCs" pointing at
//! the transit gateway; an attachment is associated with the default route table and
//! propagates its VPC's CIDR blocks to it unless those defaults are disabled; "a
//! blackhole route … drops traffic that matches the route".

use crate::support::{Lab, Network, TestDaemon, have, s, stderr, stdout};

/// Polls `query` of a describe call until it shows `available`.
fn wait_available(d: &TestDaemon, args: &[&str]) {
    for _ in 0..60 {
        if d.aws_text(args) == "available" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("never available: {args:?}");
}

/// A second VPC with one subnet in us-east-1a (its main table routes it) and an
/// instance whose group admits SSH from VPC A. Returns (vpc, subnet, main table, ip).
fn vpc_b(d: &TestDaemon, net: &Network) -> (String, String, String, String) {
    let (vpc, sub, rt, sg, ip) = net.second_vpc(d, "10.1.0.0/16", "10.1.1.0/24");
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "10.0.0.0/16",
    ]);
    (vpc, sub, rt, ip)
}

fn attach(d: &TestDaemon, tgw: &str, vpc: &str, subnet: &str) -> String {
    let id = d.aws_text(&[
        "create-transit-gateway-vpc-attachment",
        "--transit-gateway-id",
        tgw,
        "--vpc-id",
        vpc,
        "--subnet-ids",
        subnet,
        "--query",
        "TransitGatewayVpcAttachment.TransitGatewayAttachmentId",
    ]);
    wait_available(
        d,
        &[
            "describe-transit-gateway-vpc-attachments",
            "--transit-gateway-attachment-ids",
            &id,
            "--query",
            "TransitGatewayVpcAttachments[0].State",
        ],
    );
    id
}

fn route(d: &TestDaemon, rt: &str, cidr: &str, tgw: &str) {
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        rt,
        "--destination-cidr-block",
        cidr,
        "--transit-gateway-id",
        tgw,
    ]);
}

#[test]
fn ssh_crosses_a_transit_gateway_only_with_routes_on_both_sides_and_a_blackhole_drops() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let bastion_sg = net.security_group(&d, "bastion", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (bastion_id, bastion, _) = net.launch(&d, &net.public_subnet, "lab", &bastion_sg, &[]);
    let (vpc_b, sub_b, rt_b, target_ip) = vpc_b(&d, &net);
    let probe = || {
        d.ssh(
            &key,
            "ec2-user",
            &bastion,
            &format!("nc -z -w 2 {target_ip} 22"),
        )
        .status
        .success()
    };

    let created = d.aws(&["create-transit-gateway", "--description", "hub"]);
    let tgw = s(&created["TransitGateway"]["TransitGatewayId"]);
    assert_eq!(
        s(&created["TransitGateway"]["State"]),
        "pending",
        "{created}"
    );
    let default_rt = s(&created["TransitGateway"]["Options"]["AssociationDefaultRouteTableId"]);
    assert!(default_rt.starts_with("tgw-rtb-"), "{created}");
    wait_available(
        &d,
        &[
            "describe-transit-gateways",
            "--transit-gateway-ids",
            &tgw,
            "--query",
            "TransitGateways[0].State",
        ],
    );
    let att_a = attach(&d, &tgw, &net.vpc, &net.public_subnet);
    let att_b = attach(&d, &tgw, &vpc_b, &sub_b);

    // The default route table holds both VPCs' blocks, propagated.
    let routes = d.aws(&[
        "search-transit-gateway-routes",
        "--transit-gateway-route-table-id",
        &default_rt,
        "--filters",
        "Name=type,Values=propagated",
    ]);
    let found: Vec<(String, String)> = routes["Routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            (
                s(&r["DestinationCidrBlock"]),
                s(&r["TransitGatewayAttachments"][0]["TransitGatewayAttachmentId"]),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("10.0.0.0/16".to_string(), att_a.clone()),
            ("10.1.0.0/16".to_string(), att_b.clone())
        ],
        "{routes}"
    );
    assert!(!probe(), "no VPC route points at the gateway yet");

    route(&d, &net.public_rt, "10.1.0.0/16", &tgw);
    assert!(!probe(), "no route back from VPC B");
    route(&d, &rt_b, "10.0.0.0/16", &tgw);
    assert!(probe(), "routes on both sides: open");

    // A more specific blackhole route in the gateway's table drops VPC B's subnet.
    let bh = d.aws(&[
        "create-transit-gateway-route",
        "--transit-gateway-route-table-id",
        &default_rt,
        "--destination-cidr-block",
        "10.1.1.0/24",
        "--blackhole",
    ]);
    assert_eq!(s(&bh["Route"]["State"]), "blackhole", "{bh}");
    assert_eq!(s(&bh["Route"]["Type"]), "static", "{bh}");
    assert!(!probe(), "the blackhole route drops");
    let out = d.vpclab(&["trace", &bastion_id, &format!("{target_ip}:22")], b"");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}{}", stderr(&out));
    assert!(text.contains(&default_rt), "names the table: {text}");
    assert!(text.contains("10.1.1.0/24"), "names the route: {text}");
    assert!(text.contains("blackhole"), "{text}");

    d.aws_text(&[
        "delete-transit-gateway-route",
        "--transit-gateway-route-table-id",
        &default_rt,
        "--destination-cidr-block",
        "10.1.1.0/24",
    ]);
    assert!(probe(), "blackhole removed");

    // Without an association, the gateway has no table for VPC A's traffic.
    d.aws_text(&[
        "disassociate-transit-gateway-route-table",
        "--transit-gateway-route-table-id",
        &default_rt,
        "--transit-gateway-attachment-id",
        &att_a,
    ]);
    assert!(!probe(), "no association");
    let out = d.vpclab(&["trace", &bastion_id, &format!("{target_ip}:22")], b"");
    let text = stdout(&out);
    assert!(text.contains(&att_a), "names the attachment: {text}");
}
