//! Conformance tests of the data plane, arranged by AWS documentation topic.
//!
//! Each test is named after the rule it checks and quotes it (from
//! `aws-networking.md`, our summary of AWS's documentation). They drive the
//! fabric with real packet bytes through `Fabric::process`, with virtual
//! time, on the shared fixture "a VPC with a public and a private subnet, an
//! internet gateway and a NAT gateway" (see `vpclab_netstack::fixture`).

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use smoltcp::time::Instant;
use smoltcp::wire::{Icmpv4Packet, IpAddress, Ipv4Packet, TcpPacket, UdpPacket};
use vpclab_netstack::fixture::{FixtureIds, public_private_vpc, public_private_vpc_builder};
use vpclab_netstack::topology::rid;
use vpclab_netstack::*;

fn at(secs: i64) -> Instant {
    Instant::from_secs(secs)
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn lab() -> (Fabric, FixtureIds) {
    let (t, ids) = public_private_vpc();
    (Fabric::new(Arc::new(t)), ids)
}

fn lab_with(edit: impl FnOnce(&mut TopologyBuilder, &FixtureIds)) -> (Fabric, FixtureIds) {
    let (mut b, ids) = public_private_vpc_builder();
    edit(&mut b, &ids);
    (Fabric::new(Arc::new(b.build().unwrap())), ids)
}

fn rebuild(f: &mut Fabric, edit: impl FnOnce(&mut TopologyBuilder)) {
    let mut b = f.topology().to_builder();
    edit(&mut b);
    f.set_topology(Arc::new(b.build().unwrap()));
}

fn eni(id: &ResId) -> Port {
    Port::Eni(id.clone())
}

fn send(f: &mut Fabric, now: Instant, from: &Port, flow: Flow) -> (Verdict, Vec<u8>) {
    let mut b = flow.to_packet(b"payload");
    let v = f.process(now, from, &mut b);
    (v, b)
}

#[track_caller]
fn delivered(v: &Verdict) -> Port {
    match &v.outcome {
        Outcome::Deliver(p) => p.clone(),
        Outcome::Drop(r) => panic!("expected delivery, got drop: {r}"),
    }
}

#[track_caller]
fn dropped(v: &Verdict) -> DropReason {
    match &v.outcome {
        Outcome::Drop(r) => r.clone(),
        Outcome::Deliver(p) => panic!("expected a drop, got delivery to {p}"),
    }
}

/// IPv4 and transport checksums of a rewritten packet are still valid.
#[track_caller]
fn assert_checksums(b: &[u8]) {
    let ip = Ipv4Packet::new_checked(b).unwrap();
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    match b[9] {
        6 => assert!(
            TcpPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(&src, &dst)
        ),
        17 => assert!(
            UdpPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(&src, &dst)
        ),
        1 => assert!(
            Icmpv4Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum()
        ),
        _ => {}
    }
}

const LEARNER_PORT: u16 = 50_000;

fn deny_all_acl(id: &str, vpc: &str) -> NetworkAcl {
    NetworkAcl {
        id: id.into(),
        vpc: vpc.into(),
        entries: vec![],
    }
}

mod route_tables {
    use super::*;

    /// "Every VPC has a main route table with a `local` route per VPC block":
    /// instances of different subnets reach each other through it.
    #[test]
    fn local_route_delivers_between_subnets() {
        let (mut f, ids) = lab();
        let (v, b) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.app_ip, 8080),
        );
        assert_eq!(delivered(&v), eni(&ids.app_eni));
        // The VPC router is invisible: same addresses, same TTL.
        assert_eq!(
            parse_flow(&b).unwrap(),
            Flow::tcp_syn(ids.web_ip, 40000, ids.app_ip, 8080)
        );
        assert_eq!(b[8], 64);
    }

    /// "Longest prefix wins": a /24 to an appliance beats the /16 local route.
    #[test]
    fn longest_prefix_wins() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.route_tables
                .get_mut(&ids.public_rtb)
                .unwrap()
                .routes
                .push(Route::new(
                    net("10.0.2.0/24"),
                    RouteTarget::NetworkInterface(ids.web2_eni.clone()),
                ));
            b.network_interfaces
                .get_mut(&ids.web2_eni)
                .unwrap()
                .source_dest_check = false;
            let sg = b.security_groups.get_mut(&ids.web_sg).unwrap();
            sg.ingress
                .push(SgRule::all(SgPeer::Cidr(net("10.0.0.0/16"))));
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.app_ip, 8080),
        );
        assert_eq!(
            delivered(&v),
            eni(&ids.web2_eni),
            "the /24 appliance route wins over local /16"
        );
    }

    /// Handing a packet to an appliance in the sender's own subnet does not
    /// cross the subnet boundary: no network ACL applies to that hop.
    #[test]
    fn route_to_an_interface_in_the_same_subnet_crosses_no_nacl() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.add_network_acl(deny_all_acl("acl-closed", &ids.vpc));
            b.subnets.get_mut(&ids.public_subnet).unwrap().network_acl = "acl-closed".into();
            b.route_tables.get_mut(&ids.public_rtb).unwrap().routes[1].target =
                RouteTarget::NetworkInterface(ids.web2_eni.clone());
            b.network_interfaces
                .get_mut(&ids.web2_eni)
                .unwrap()
                .source_dest_check = false;
            let sg = b.security_groups.get_mut(&ids.web_sg).unwrap();
            sg.ingress
                .push(SgRule::all(SgPeer::Cidr(net("10.0.0.0/16"))));
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 80),
        );
        assert_eq!(delivered(&v), eni(&ids.web2_eni));
    }

    /// "A route whose target was deleted shows state `blackhole` and drops."
    #[test]
    fn blackhole_route_drops() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.nat_gateways.remove(&ids.nat);
            b.network_interfaces.remove(&ids.nat_eni);
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
        );
        assert_eq!(
            dropped(&v),
            DropReason::Blackhole {
                table: ids.private_rtb.clone(),
                route: net("0.0.0.0/0")
            }
        );
    }

    /// A route in state `blackhole` drops even when its target id still exists.
    #[test]
    fn route_in_blackhole_state_drops() {
        let (mut f, ids) = lab_with(|b, ids| {
            let rt = b.route_tables.get_mut(&ids.private_rtb).unwrap();
            rt.routes[1].state = RouteState::Blackhole;
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::udp(ids.app_ip, 40000, ids.internet_host, 53),
        );
        assert!(matches!(dropped(&v), DropReason::Blackhole { .. }));
    }

    /// No route covering the destination: the packet is dropped, naming the table.
    #[test]
    fn no_route_drops_naming_the_table() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.route_tables
                .get_mut(&ids.private_rtb)
                .unwrap()
                .routes
                .truncate(1);
        });
        let dst = Ipv4Addr::new(10, 9, 0, 5);
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, dst, 80),
        );
        let r = dropped(&v);
        assert_eq!(
            r,
            DropReason::NoRoute {
                table: ids.private_rtb.clone(),
                dst
            }
        );
        assert_eq!(
            r.to_string(),
            "no route to 10.9.0.5 in route table rtb-private"
        );
    }

    /// "A public subnet is only a subnet whose table sends 0.0.0.0/0 to an
    /// internet gateway": an instance with a public IP in a subnet without
    /// that route receives inbound traffic, but its reply has no way out.
    #[test]
    fn public_subnet_is_only_a_route_to_the_internet_gateway() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.route_tables
                .get_mut(&ids.public_rtb)
                .unwrap()
                .routes
                .truncate(1);
        });
        let syn = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 22);
        let (v, _) = send(&mut f, at(0), &Port::Internet, syn);
        assert_eq!(delivered(&v), eni(&ids.web_eni));
        let reply = Flow::tcp(ids.web_ip, 22, ids.learner, LEARNER_PORT, TcpFlags::SYN_ACK);
        let (v, _) = send(&mut f, at(0), &eni(&ids.web_eni), reply);
        assert_eq!(
            dropped(&v),
            DropReason::NoRoute {
                table: ids.public_rtb.clone(),
                dst: ids.learner
            }
        );
    }

    /// A route to an internet gateway not attached to the VPC is a blackhole.
    #[test]
    fn route_to_detached_internet_gateway_is_blackhole() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.internet_gateways.get_mut(&ids.igw).unwrap().vpc = None;
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 80),
        );
        assert!(matches!(dropped(&v), DropReason::Blackhole { .. }));
    }
}

mod internet_gateway {
    use super::*;

    /// "It performs 1:1 translation between an interface's private address
    /// and its public or Elastic IP, in both directions."
    #[test]
    fn igw_translates_public_to_private_inbound_and_back_outbound() {
        let (mut f, ids) = lab();
        let (v, b) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 22),
        );
        assert_eq!(delivered(&v), eni(&ids.web_eni));
        assert_eq!(parse_flow(&b).unwrap().dst, ids.web_ip);
        assert_checksums(&b);
        let reply = Flow::tcp(ids.web_ip, 22, ids.learner, LEARNER_PORT, TcpFlags::SYN_ACK);
        let (v, b) = send(&mut f, at(0), &eni(&ids.web_eni), reply);
        assert_eq!(delivered(&v), Port::Internet);
        let out = parse_flow(&b).unwrap();
        assert_eq!((out.src, out.dst), (ids.web_public, ids.learner));
        assert_checksums(&b);
    }

    /// "A packet from an interface without a public address is dropped there."
    #[test]
    fn igw_drops_interface_without_public_ip() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.network_interfaces
                .get_mut(&ids.web2_eni)
                .unwrap()
                .public_ip = None;
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web2_eni),
            Flow::tcp_syn(ids.web2_ip, 40000, ids.internet_host, 80),
        );
        assert_eq!(
            dropped(&v),
            DropReason::IgwNoPublicIp {
                igw: ids.igw.clone(),
                src: ids.web2_ip
            }
        );
    }

    /// "… so is inbound traffic to a public address with no association."
    #[test]
    fn igw_drops_inbound_to_unassociated_public_ip() {
        let (mut f, _ids) = lab();
        let dst = Ipv4Addr::new(198, 18, 9, 9);
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(Ipv4Addr::new(203, 0, 113, 10), 1, dst, 22),
        );
        assert_eq!(dropped(&v), DropReason::IgwNoAssociation { dst });
    }

    /// Private addresses are not reachable from the internet.
    #[test]
    fn internet_cannot_reach_private_addresses() {
        let (mut f, ids) = lab();
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.web_ip, 22),
        );
        assert_eq!(dropped(&v), DropReason::InternetNoRoute { dst: ids.web_ip });
    }

    /// Traffic between two public addresses leaves through the gateway and
    /// comes back in through it: the receiver sees the sender's public IP.
    #[test]
    fn traffic_to_a_public_ip_hairpins_through_the_internet_gateway() {
        let (mut f, ids) = lab();
        let (v, b) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.web2_public, 22),
        );
        assert_eq!(delivered(&v), eni(&ids.web2_eni));
        let seen = parse_flow(&b).unwrap();
        assert_eq!((seen.src, seen.dst), (ids.web_public, ids.web2_ip));
        assert_eq!(b[8], 62, "two gateway crossings");
    }

    /// An interface with a public address in a VPC without an attached gateway
    /// is unreachable from the internet.
    #[test]
    fn inbound_needs_an_attached_internet_gateway() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.internet_gateways.get_mut(&ids.igw).unwrap().vpc = None;
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.web_public, 22),
        );
        assert_eq!(
            dropped(&v),
            DropReason::IgwNotAttached {
                vpc: ids.vpc.clone(),
                dst: ids.web_public
            }
        );
    }

    /// The internet gateway's 1:1 translation covers the header quoted in an
    /// ICMP error, so the learner's machine sees its own packet.
    #[test]
    fn igw_translates_the_header_quoted_in_icmp_errors() {
        let (mut f, ids) = lab_with(|b, ids| {
            let sg = b.security_groups.get_mut(&ids.web_sg).unwrap();
            sg.ingress.push(SgRule {
                id: None,
                protocol: Protocol::Udp,
                ports: None,
                icmp: None,
                peer: SgPeer::Cidr(net("0.0.0.0/0")),
            });
        });
        let (v, probe) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::udp(ids.learner, 33434, ids.web_public, 33434),
        );
        assert_eq!(delivered(&v), eni(&ids.web_eni));
        let mut err = vpclab_netstack::flow::icmp_error(ids.web_ip, 3, 3, &probe);
        let v = f.process(at(0), &eni(&ids.web_eni), &mut err);
        assert_eq!(delivered(&v), Port::Internet);
        assert_checksums(&err);
        assert_eq!(parse_flow(&err).unwrap().src, ids.web_public);
        assert_eq!(&err[28 + 16..28 + 20], &ids.web_public.octets());
    }

    /// TTL is decremented at each gateway; a packet that runs out dies there.
    #[test]
    fn ttl_is_decremented_at_the_gateway_and_expires_there() {
        let (mut f, ids) = lab();
        let flow = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 22);
        let mut b = flow.to_packet_ttl(2, b"");
        let v = f.process(at(0), &Port::Internet, &mut b);
        assert_eq!(delivered(&v), eni(&ids.web_eni));
        assert_eq!(b[8], 1);
        assert_checksums(&b);
        let mut b = flow.to_packet_ttl(1, b"");
        let v = f.process(at(0), &Port::Internet, &mut b);
        assert_eq!(
            dropped(&v),
            DropReason::TtlExceeded {
                at: ids.igw.clone()
            }
        );
    }
}

/// Issue 16: `traceroute` in a real instance sees the hops the fabric knows. RFC 792:
/// "If the gateway processing a datagram finds the time to live field is zero it
/// must discard the datagram. The gateway may also notify the source host via the
/// time exceeded message" (type 11, code 0), whose data is "the internet header plus
/// the first 64 bits of the original datagram's data". RFC 1122 §3.2.2: "An ICMP
/// error message MUST NOT be sent as the result of receiving an ICMP error message".
mod time_exceeded {
    use super::*;

    /// The fabric's answer to the last packet: its port, source, type and code, and
    /// the header it quotes.
    #[track_caller]
    fn answer(f: &mut Fabric) -> (Port, Vec<u8>) {
        let (port, b) = f.take_reply().expect("an ICMP time exceeded");
        assert_checksums(&b);
        assert_eq!(b[9], 1, "ICMP");
        assert_eq!((b[20], b[21]), (11, 0), "time exceeded in transit");
        (port, b)
    }

    fn src(b: &[u8]) -> Ipv4Addr {
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    fn dst(b: &[u8]) -> Ipv4Addr {
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// Through the internet gateway, the first hop is the subnet's router (base + 1),
    /// which answers the sender at its own port, quoting the probe as it was sent
    /// (so the sender's kernel finds the socket that sent it); the internet gateway
    /// itself answers nothing.
    #[test]
    fn ttl_expiring_at_the_internet_gateway_is_answered_by_the_subnet_router() {
        let (mut f, ids) = lab();
        let flow = Flow::udp(ids.web_ip, 40000, ids.internet_host, 33434);
        let mut probe = flow.to_packet_ttl(1, b"traceroute");
        let sent = probe.clone();
        let v = f.process(at(0), &eni(&ids.web_eni), &mut probe);
        assert_eq!(
            dropped(&v),
            DropReason::TtlExceeded {
                at: ids.igw.clone()
            }
        );
        let (port, b) = answer(&mut f);
        assert_eq!(port, eni(&ids.web_eni));
        assert_eq!(src(&b), Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(dst(&b), ids.web_ip);
        assert_eq!(&b[28..56], &sent[..28], "the original header and 8 bytes");
        assert!(f.take_reply().is_none(), "taken once");
        // One more hop of TTL and the probe reaches the internet: no answer from the
        // fabric.
        let mut probe = flow.to_packet_ttl(2, b"traceroute");
        let v = f.process(at(0), &eni(&ids.web_eni), &mut probe);
        assert_eq!(delivered(&v), Port::Internet);
        assert!(f.take_reply().is_none());
    }

    /// Behind a NAT gateway: the subnet router, then the NAT gateway by its private
    /// address, then the internet.
    #[test]
    fn behind_a_nat_gateway_the_second_hop_is_the_nat_gateways_private_address() {
        let (mut f, ids) = lab();
        let flow = Flow::ping(ids.app_ip, ids.internet_host, 9);
        let mut answered = Vec::new();
        for ttl in 1..=2 {
            let mut probe = flow.to_packet_ttl(ttl, b"");
            let v = f.process(at(0), &eni(&ids.app_eni), &mut probe);
            assert!(matches!(dropped(&v), DropReason::TtlExceeded { .. }));
            let (port, b) = answer(&mut f);
            assert_eq!(port, eni(&ids.app_eni));
            assert_eq!(dst(&b), ids.app_ip, "to the sender's own address");
            assert_eq!(
                Ipv4Addr::new(b[40], b[41], b[42], b[43]),
                ids.app_ip,
                "the quote carries the untranslated source"
            );
            answered.push(src(&b));
        }
        assert_eq!(answered, [Ipv4Addr::new(10, 0, 2, 1), ids.nat_ip]);
        let mut probe = flow.to_packet_ttl(3, b"");
        let v = f.process(at(0), &eni(&ids.app_eni), &mut probe);
        assert_eq!(delivered(&v), Port::Internet);
        assert!(f.take_reply().is_none());
    }

    /// From the internet, the probe dies at the internet gateway and "the internet"
    /// (its router address) answers toward the sender.
    #[test]
    fn from_the_internet_the_internet_router_answers() {
        let (mut f, ids) = lab();
        let flow = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 22);
        let mut probe = flow.to_packet_ttl(1, b"");
        let v = f.process(at(0), &Port::Internet, &mut probe);
        assert!(matches!(dropped(&v), DropReason::TtlExceeded { .. }));
        let (port, b) = answer(&mut f);
        assert_eq!(port, Port::Internet);
        assert_eq!(src(&b), internet::INTERNET_ROUTER_ADDR);
        assert_eq!(dst(&b), ids.learner);
    }

    /// Never an error about an error; other drops get no answer; and at most 1,000 a
    /// second (RFC 1812 §4.3.2.8: a router limits the rate of its ICMP errors).
    #[test]
    fn no_answer_to_an_icmp_error_to_other_drops_or_beyond_the_rate_limit() {
        let (mut f, ids) = lab();
        // web's port unreachable about a datagram from the internet host, TTL 1.
        let probe = Flow::udp(ids.internet_host, 33434, ids.web_ip, 40000).to_packet(b"x");
        let mut err = flow::icmp_error(ids.web_ip, 3, 3, &probe);
        err[8] = 1;
        let c = {
            err[10..12].fill(0);
            let mut sum = 0u32;
            for w in err[..20].chunks(2) {
                sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            !(sum as u16)
        };
        err[10..12].copy_from_slice(&c.to_be_bytes());
        let v = f.process(at(0), &eni(&ids.web_eni), &mut err);
        assert!(matches!(dropped(&v), DropReason::TtlExceeded { .. }));
        assert!(f.take_reply().is_none(), "no error about an error");
        // A drop for another reason: the internet cannot reach a private address.
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.app_ip, 22),
        );
        assert!(!matches!(v.outcome, Outcome::Deliver(_)));
        assert!(f.take_reply().is_none());
        let flow = Flow::udp(ids.web_ip, 40000, ids.internet_host, 33434);
        let mut answers = 0;
        for _ in 0..1200 {
            let mut p = flow.to_packet_ttl(1, b"");
            f.process(at(5), &eni(&ids.web_eni), &mut p);
            answers += usize::from(f.take_reply().is_some());
        }
        assert_eq!(answers, 1000);
        let mut p = flow.to_packet_ttl(1, b"");
        f.process(at(6), &eni(&ids.web_eni), &mut p);
        assert!(f.take_reply().is_some(), "the next second has new tokens");
    }
}

mod nat_gateway {
    use super::*;

    fn nat_port(b: &[u8]) -> u16 {
        match parse_flow(b).unwrap().proto {
            FlowProto::Tcp { sport, .. } | FlowProto::Udp { sport, .. } => sport,
            FlowProto::Icmp { ident, .. } => ident,
            FlowProto::Other(_) => 0,
        }
    }

    /// "Translates many private sources to its own address and ports
    /// (1024–65535)"; the internet sees the NAT gateway's Elastic IP.
    #[test]
    fn nat_gateway_translates_private_source_to_its_elastic_ip() {
        let (mut f, ids) = lab();
        let (v, b) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
        );
        assert_eq!(delivered(&v), Port::Internet);
        let out = parse_flow(&b).unwrap();
        assert_eq!(out.src, ids.nat_public);
        assert!((1024..=65535).contains(&nat_port(&b)));
        assert_checksums(&b);
        assert_eq!(b[8], 62, "NAT gateway and internet gateway are two hops");
    }

    /// Replies to a connection started inside come back translated.
    #[test]
    fn nat_gateway_reply_is_translated_back() {
        let (mut f, ids) = lab();
        let (_, b) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
        );
        let port = nat_port(&b);
        let reply = Flow::tcp(
            ids.internet_host,
            443,
            ids.nat_public,
            port,
            TcpFlags::SYN_ACK,
        );
        let (v, b) = send(&mut f, at(1), &Port::Internet, reply);
        assert_eq!(delivered(&v), eni(&ids.app_eni));
        assert_eq!(
            parse_flow(&b).unwrap(),
            Flow::tcp(ids.internet_host, 443, ids.app_ip, 40000, TcpFlags::SYN_ACK)
        );
        assert_checksums(&b);
    }

    /// "Only connections started from inside; nothing from the internet can
    /// start one inward."
    #[test]
    fn nat_gateway_drops_inbound_initiated() {
        let (mut f, ids) = lab();
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.nat_public, 22),
        );
        assert_eq!(
            dropped(&v),
            DropReason::NatInboundNotTracked {
                nat: ids.nat.clone(),
                dst: ids.nat_ip
            }
        );
    }

    /// "Idle timeout 350 s."
    #[test]
    fn nat_gateway_mapping_idles_out_after_350_seconds() {
        let (mut f, ids) = lab();
        let syn = Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443);
        let (_, b) = send(&mut f, at(0), &eni(&ids.app_eni), syn);
        let port = nat_port(&b);
        let synack = Flow::tcp(
            ids.internet_host,
            443,
            ids.nat_public,
            port,
            TcpFlags::SYN_ACK,
        );
        assert!(
            send(&mut f, at(1), &Port::Internet, synack)
                .0
                .is_delivered()
        );
        let data = Flow::tcp(ids.internet_host, 443, ids.nat_public, port, TcpFlags::ACK);
        let (v, _) = send(&mut f, at(350), &Port::Internet, data);
        assert!(v.is_delivered(), "349 s idle: still mapped");
        // 350 s of silence end the mapping (the instance's own connection
        // tracking would still let the packet in: the NAT gateway is the limit).
        let (v, _) = send(&mut f, at(700), &Port::Internet, data);
        assert_eq!(
            dropped(&v),
            DropReason::NatInboundNotTracked {
                nat: ids.nat.clone(),
                dst: ids.nat_ip
            }
        );
        f.expire(at(700));
        assert_eq!(f.stats().nat_mappings, 0);
    }

    /// Ports come from a seeded allocator: the same seed gives the same ports.
    #[test]
    fn nat_gateway_ports_are_deterministic_per_seed() {
        let ports = |seed: u64| {
            let (t, ids) = public_private_vpc();
            let mut f = Fabric::with_config(
                Arc::new(t),
                FabricConfig {
                    seed,
                    ..Default::default()
                },
            );
            (0..8)
                .map(|i| {
                    let (_, b) = send(
                        &mut f,
                        at(0),
                        &eni(&ids.app_eni),
                        Flow::tcp_syn(ids.app_ip, 40000 + i, ids.internet_host, 443),
                    );
                    nat_port(&b)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(ports(7), ports(7));
        assert_ne!(ports(7), ports(8));
    }

    /// Ports are per destination (AWS: 55,000 connections to each unique
    /// destination); when they run out the gateway drops, saying so.
    #[test]
    fn nat_gateway_ports_exhausted_per_destination() {
        let (t, ids) = public_private_vpc();
        let cfg = FabricConfig {
            nat_ports: PortRange::new(2000, 2002),
            ..Default::default()
        };
        let mut f = Fabric::with_config(Arc::new(t), cfg);
        for i in 0..3 {
            let (v, _) = send(
                &mut f,
                at(0),
                &eni(&ids.app_eni),
                Flow::tcp_syn(ids.app_ip, 40000 + i, ids.internet_host, 443),
            );
            assert!(v.is_delivered());
        }
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40009, ids.internet_host, 443),
        );
        assert_eq!(
            dropped(&v),
            DropReason::NatPortsExhausted {
                nat: ids.nat.clone(),
                dst: ids.internet_host,
                dst_port: 443
            }
        );
        let other = Ipv4Addr::new(192, 0, 2, 81);
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40009, other, 443),
        );
        assert!(v.is_delivered(), "another destination has its own ports");
    }

    /// CloudWatch's `AWS/NATGateway` metrics (VPC user guide, "NAT gateway metrics and
    /// dimensions"): `BytesOutToDestination`/`PacketsOutToDestination` count what the
    /// gateway sent to the destination, `BytesInFromDestination` what came back,
    /// `ConnectionEstablishedCount` new connections, `ActiveConnectionCount` the TCP
    /// connections through it now, `ErrorPortAllocation` the times no source port was
    /// free. Counted on the memoised path as on the first packet.
    #[test]
    fn nat_gateway_counts_what_it_forwards_for_cloudwatch() {
        let (t, ids) = public_private_vpc();
        let cfg = FabricConfig {
            nat_ports: PortRange::new(2000, 2000),
            ..Default::default()
        };
        let mut f = Fabric::with_config(Arc::new(t), cfg);
        let (v, b) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
        );
        assert!(v.is_delivered());
        let mut out_bytes = b.len() as u64;
        let port = nat_port(&b);
        let (v, back) = send(
            &mut f,
            at(1),
            &Port::Internet,
            Flow::tcp(
                ids.internet_host,
                443,
                ids.nat_public,
                port,
                TcpFlags::SYN_ACK,
            ),
        );
        assert!(v.is_delivered());
        // Three more packets out: the later ones replay the memoised decision.
        for i in 0..3 {
            let (v, b) = send(
                &mut f,
                at(2 + i),
                &eni(&ids.app_eni),
                Flow::tcp(ids.app_ip, 40000, ids.internet_host, 443, TcpFlags::ACK),
            );
            assert!(v.is_delivered());
            out_bytes += b.len() as u64;
        }
        // The only port is taken: a second connection to the same destination fails.
        let (v, _) = send(
            &mut f,
            at(6),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40001, ids.internet_host, 443),
        );
        assert!(!v.is_delivered());
        let counters = f.nat_counters();
        let (id, c) = &counters[0];
        assert_eq!(id, &ids.nat);
        assert_eq!(c.packets_out_to_destination, 4);
        assert_eq!(c.bytes_out_to_destination, out_bytes);
        assert_eq!(c.packets_in_from_destination, 1);
        assert_eq!(c.bytes_in_from_destination, back.len() as u64);
        assert_eq!(c.connections_established, 1);
        assert_eq!(c.active_tcp, 1);
        assert_eq!(c.error_port_allocation, 1);
    }

    /// "… for TCP, UDP and ICMP echo": the echo identifier is translated.
    #[test]
    fn nat_gateway_translates_icmp_echo() {
        let (mut f, ids) = lab();
        let (v, b) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::ping(ids.app_ip, ids.internet_host, 77),
        );
        assert_eq!(delivered(&v), Port::Internet);
        assert_checksums(&b);
        let ident = nat_port(&b);
        let reply = Flow {
            src: ids.internet_host,
            dst: ids.nat_public,
            proto: FlowProto::Icmp {
                ty: 0,
                code: 0,
                ident,
            },
        };
        let (v, b) = send(&mut f, at(1), &Port::Internet, reply);
        assert_eq!(delivered(&v), eni(&ids.app_eni));
        assert_eq!(
            parse_flow(&b).unwrap().proto,
            FlowProto::Icmp {
                ty: 0,
                code: 0,
                ident: 77
            }
        );
        assert_checksums(&b);
    }

    /// ICMP errors about a translated flow carry its header inside; the NAT
    /// gateway translates the quoted header too, so the instance recognises it.
    #[test]
    fn nat_gateway_translates_icmp_errors_carrying_inner_header() {
        let (mut f, ids) = lab_with(|b, ids| {
            // Security groups do not treat ICMP errors as part of a tracked
            // flow: AWS asks for an explicit rule (path MTU discovery).
            b.security_groups
                .get_mut(&ids.app_sg)
                .unwrap()
                .ingress
                .push(SgRule {
                    id: None,
                    protocol: Protocol::Icmp,
                    ports: None,
                    icmp: Some(IcmpMatch {
                        ty: Some(3),
                        code: None,
                    }),
                    peer: SgPeer::Cidr(net("0.0.0.0/0")),
                });
        });
        let (_, out) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::udp(ids.app_ip, 40000, ids.internet_host, 53),
        );
        let err = vpclab_netstack::flow::icmp_error(ids.internet_host, 3, 3, &out);
        let mut b = err.clone();
        let v = f.process(at(1), &Port::Internet, &mut b);
        assert_eq!(delivered(&v), eni(&ids.app_eni));
        assert_checksums(&b);
        assert_eq!(parse_flow(&b).unwrap().dst, ids.app_ip);
        // The quoted header is the instance's own packet again.
        let quoted = &b[28..];
        assert_eq!(&quoted[12..16], &ids.app_ip.octets());
        assert_eq!(u16::from_be_bytes([quoted[20], quoted[21]]), 40000);
        assert!(Ipv4Packet::new_unchecked(&quoted[..20]).verify_checksum());
    }

    /// An ICMP error the instance sends about a reply it received (here "port
    /// unreachable" for a late UDP answer) is translated through the quoted
    /// header, so the remote server recognises its own packet.
    #[test]
    fn nat_gateway_translates_outbound_icmp_errors_through_the_quoted_header() {
        let (mut f, ids) = lab();
        let (_, out) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::udp(ids.app_ip, 40000, ids.internet_host, 53),
        );
        let port = nat_port(&out);
        let (v, answer) = send(
            &mut f,
            at(1),
            &Port::Internet,
            Flow::udp(ids.internet_host, 53, ids.nat_public, port),
        );
        assert_eq!(delivered(&v), eni(&ids.app_eni));
        let mut err = vpclab_netstack::flow::icmp_error(ids.app_ip, 3, 3, &answer);
        let v = f.process(at(1), &eni(&ids.app_eni), &mut err);
        assert_eq!(delivered(&v), Port::Internet);
        assert_checksums(&err);
        assert_eq!(parse_flow(&err).unwrap().src, ids.nat_public);
        let quoted = &err[28..];
        assert_eq!(
            &quoted[16..20],
            &ids.nat_public.octets(),
            "quoted destination is the gateway's"
        );
        assert_eq!(
            u16::from_be_bytes([quoted[22], quoted[23]]),
            port,
            "quoted port is the gateway's"
        );
        // An error about something the gateway never translated goes nowhere.
        let stray = Flow::udp(ids.internet_host, 53, ids.app_ip, 41000).to_packet(b"");
        let mut err = vpclab_netstack::flow::icmp_error(ids.app_ip, 3, 3, &stray);
        assert!(
            !f.process(at(1), &eni(&ids.app_eni), &mut err)
                .is_delivered()
        );
    }

    /// "Traffic from a private subnet to the NAT gateway crosses NACLs of
    /// both subnets": the NAT subnet's inbound ACL applies.
    #[test]
    fn traffic_to_nat_gateway_crosses_the_nat_subnet_inbound_nacl() {
        let (mut f, ids) = lab_with(|b, ids| {
            let mut acl = NetworkAcl::default_allow("acl-public", &ids.vpc);
            acl.entries.push(NaclEntry::all(
                50,
                false,
                net("10.0.2.0/24"),
                RuleAction::Deny,
            ));
            b.add_network_acl(acl);
            b.subnets.get_mut(&ids.public_subnet).unwrap().network_acl = "acl-public".into();
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
        );
        assert_eq!(
            dropped(&v),
            DropReason::NaclDeny {
                acl: "acl-public".into(),
                subnet: ids.public_subnet.clone(),
                rule: Some(50),
                direction: Direction::Inbound
            }
        );
    }

    /// … and the private subnet's outbound ACL too.
    #[test]
    fn traffic_to_nat_gateway_crosses_the_private_subnet_outbound_nacl() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.add_network_acl(deny_all_acl("acl-private", &ids.vpc));
            b.subnets.get_mut(&ids.private_subnet).unwrap().network_acl = "acl-private".into();
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
        );
        assert!(matches!(
            dropped(&v),
            DropReason::NaclDeny {
                rule: None,
                direction: Direction::Outbound,
                ..
            }
        ));
    }

    /// "The NAT gateway's own subnet route table must send 0.0.0.0/0 to the
    /// internet gateway."
    #[test]
    fn nat_gateway_subnet_needs_a_route_to_the_internet_gateway() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.route_tables
                .get_mut(&ids.public_rtb)
                .unwrap()
                .routes
                .truncate(1);
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
        );
        assert_eq!(
            dropped(&v),
            DropReason::NoRoute {
                table: ids.public_rtb.clone(),
                dst: ids.internet_host
            }
        );
    }

    /// The classic mistake of a NAT gateway placed in a private subnet: its
    /// own subnet sends 0.0.0.0/0 back to a NAT gateway, never reaching the
    /// internet gateway.
    #[test]
    fn nat_gateway_in_a_private_subnet_is_a_routing_loop() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.subnets.get_mut(&ids.public_subnet).unwrap().route_table = ids.private_rtb.clone();
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
        );
        let r = dropped(&v);
        assert_eq!(r, DropReason::RoutingLoop);
        assert!(
            r.to_string()
                .contains("must route 0.0.0.0/0 to an internet gateway")
        );
    }

    /// Only TCP, UDP and ICMP echo are translated.
    #[test]
    fn nat_gateway_does_not_translate_other_protocols() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.security_groups.get_mut(&ids.app_sg).unwrap().egress =
                vec![SgRule::all(SgPeer::Cidr(net("0.0.0.0/0")))];
        });
        let gre = Flow {
            src: ids.app_ip,
            dst: ids.internet_host,
            proto: FlowProto::Other(47),
        };
        let (v, _) = send(&mut f, at(0), &eni(&ids.app_eni), gre);
        assert_eq!(
            dropped(&v),
            DropReason::NatUnsupportedProtocol {
                nat: ids.nat.clone(),
                protocol: 47
            }
        );
    }
}

mod network_acls {
    use super::*;

    fn with_public_acl(entries: Vec<NaclEntry>) -> (Fabric, FixtureIds) {
        lab_with(|b, ids| {
            b.add_network_acl(NetworkAcl {
                id: "acl-custom".into(),
                vpc: ids.vpc.clone(),
                entries,
            });
            b.subnets.get_mut(&ids.public_subnet).unwrap().network_acl = "acl-custom".into();
        })
    }

    fn any() -> Ipv4Net {
        net("0.0.0.0/0")
    }

    /// "Numbered rules 1–32766, evaluated in ascending order, first match decides."
    #[test]
    fn nacl_rules_evaluated_in_ascending_order_first_match_wins() {
        let (mut f, ids) = with_public_acl(vec![
            NaclEntry::all(200, false, any(), RuleAction::Allow),
            NaclEntry::tcp(100, false, PortRange::single(22), any(), RuleAction::Deny),
        ]);
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.web_public, 22),
        );
        let r = dropped(&v);
        assert_eq!(
            r.to_string(),
            "blocked by network ACL acl-custom inbound rule 100 (subnet subnet-public)"
        );
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.web_public, 80),
        );
        assert!(v.is_delivered(), "rule 200 allows port 80");
        // A lower number allowing 22 now wins.
        rebuild(&mut f, |b| {
            b.network_acls
                .get_mut("acl-custom")
                .unwrap()
                .entries
                .push(NaclEntry::tcp(
                    10,
                    false,
                    PortRange::single(22),
                    any(),
                    RuleAction::Allow,
                ));
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.web_public, 22),
        );
        assert!(v.is_delivered());
    }

    /// "A new custom NACL denies everything until rules are added" (the `*` rule).
    #[test]
    fn new_custom_nacl_denies_everything_with_the_star_rule() {
        let (mut f, ids) = with_public_acl(vec![]);
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.web_public, 22),
        );
        let r = dropped(&v);
        assert_eq!(
            r,
            DropReason::NaclDeny {
                acl: "acl-custom".into(),
                subnet: ids.public_subnet.clone(),
                rule: None,
                direction: Direction::Inbound
            }
        );
        assert!(r.to_string().contains("rule *"));
    }

    /// "The default NACL of a VPC allows all in both directions (rule 100)."
    #[test]
    fn default_nacl_allows_all_by_rule_100() {
        let (mut f, ids) = lab();
        f.set_record_hops(true);
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.web_public, 22),
        );
        assert!(v.is_delivered());
        assert!(
            v.hops
                .iter()
                .any(|h| h.component == ids.acl && h.rule == Some(RuleRef::NaclEntry(100)))
        );
    }

    /// "Traffic between two instances of the same subnet does not cross a NACL."
    #[test]
    fn same_subnet_traffic_skips_nacl() {
        let (mut f, ids) = with_public_acl(vec![]);
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.web2_ip, 22),
        );
        assert_eq!(delivered(&v), eni(&ids.web2_eni));
    }

    /// "Stateless means replies need their own rule: the classic trap is
    /// allowing inbound 80 and forgetting outbound 1024–65535."
    #[test]
    fn nacl_reply_to_ephemeral_port_needs_outbound_rule() {
        let (mut f, ids) = with_public_acl(vec![
            NaclEntry::tcp(100, false, PortRange::single(80), any(), RuleAction::Allow),
            NaclEntry::tcp(100, true, PortRange::single(80), any(), RuleAction::Allow),
        ]);
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 80),
        );
        assert!(v.is_delivered());
        let reply = Flow::tcp(ids.web_ip, 80, ids.learner, LEARNER_PORT, TcpFlags::SYN_ACK);
        let (v, _) = send(&mut f, at(0), &eni(&ids.web_eni), reply);
        assert_eq!(
            dropped(&v),
            DropReason::NaclDeny {
                acl: "acl-custom".into(),
                subnet: ids.public_subnet.clone(),
                rule: None,
                direction: Direction::Outbound
            }
        );
        rebuild(&mut f, |b| {
            b.network_acls
                .get_mut("acl-custom")
                .unwrap()
                .entries
                .push(NaclEntry::tcp(
                    110,
                    true,
                    PortRange::new(1024, 65535),
                    any(),
                    RuleAction::Allow,
                ));
        });
        let (v, _) = send(&mut f, at(0), &eni(&ids.web_eni), reply);
        assert!(v.is_delivered());
    }

    /// "Rules name … ICMP type/code, CIDR": an ICMP rule matches by type.
    #[test]
    fn nacl_matches_icmp_type_and_cidr() {
        let echo = NaclEntry {
            rule_number: 100,
            egress: false,
            protocol: Protocol::Icmp,
            ports: None,
            icmp: Some(IcmpMatch {
                ty: Some(8),
                code: None,
            }),
            cidr: net("203.0.113.0/24"),
            action: RuleAction::Allow,
        };
        let (mut f, ids) = with_public_acl(vec![echo]);
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::ping(ids.learner, ids.web_public, 1),
        );
        assert!(v.is_delivered());
        let other = Ipv4Addr::new(192, 0, 2, 7);
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::ping(other, ids.web_public, 1),
        );
        assert!(
            matches!(dropped(&v), DropReason::NaclDeny { rule: None, .. }),
            "CIDR does not match"
        );
        let ts = Flow {
            src: ids.learner,
            dst: ids.web_public,
            proto: FlowProto::Icmp {
                ty: 13,
                code: 0,
                ident: 0,
            },
        };
        let (v, _) = send(&mut f, at(0), &Port::Internet, ts);
        assert!(!v.is_delivered(), "type 13 is not type 8");
    }

    /// An outbound rule matches the destination CIDR and destination port.
    #[test]
    fn nacl_outbound_rule_matches_destination() {
        let (mut f, ids) = with_public_acl(vec![
            NaclEntry::all(100, false, any(), RuleAction::Allow),
            NaclEntry::tcp(
                100,
                true,
                PortRange::single(443),
                net("192.0.2.0/24"),
                RuleAction::Allow,
            ),
        ]);
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 443),
        );
        assert!(v.is_delivered());
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 80),
        );
        assert!(!v.is_delivered());
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, Ipv4Addr::new(8, 8, 8, 8), 443),
        );
        assert!(!v.is_delivered());
    }

    /// "A subnet has exactly one NACL; associating a new one replaces the old."
    #[test]
    fn associating_a_new_nacl_replaces_the_old() {
        let (mut f, ids) = lab();
        let flow = Flow::tcp_syn(ids.learner, 1, ids.web_public, 22);
        assert!(send(&mut f, at(0), &Port::Internet, flow).0.is_delivered());
        rebuild(&mut f, |b| {
            b.add_network_acl(deny_all_acl("acl-new", "vpc-fixture"));
            b.subnets.get_mut("subnet-public").unwrap().network_acl = "acl-new".into();
        });
        assert!(!send(&mut f, at(0), &Port::Internet, flow).0.is_delivered());
    }
}

mod security_groups {
    use super::*;

    /// "Stateful: a reply to an allowed flow passes whatever the rules say."
    #[test]
    fn security_group_reply_passes_without_rule() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.security_groups
                .get_mut(&ids.web_sg)
                .unwrap()
                .egress
                .clear();
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 22),
        );
        assert!(v.is_delivered());
        let reply = Flow::tcp(ids.web_ip, 22, ids.learner, LEARNER_PORT, TcpFlags::SYN_ACK);
        let (v, _) = send(&mut f, at(0), &eni(&ids.web_eni), reply);
        assert!(
            v.is_delivered(),
            "the reply passes with no outbound rule at all"
        );
        // A new outbound connection is still refused.
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40001, ids.learner, 22),
        );
        assert_eq!(
            dropped(&v),
            DropReason::SecurityGroupNoMatch {
                eni: ids.web_eni.clone(),
                direction: Direction::Outbound
            }
        );
    }

    /// The same holds in the other direction: replies to outbound connections
    /// come in without an inbound rule.
    #[test]
    fn security_group_inbound_reply_to_outbound_connection_passes() {
        let (mut f, ids) = lab();
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 443),
        );
        assert!(v.is_delivered());
        let reply = Flow::tcp(
            ids.internet_host,
            443,
            ids.web_public,
            40000,
            TcpFlags::SYN_ACK,
        );
        let (v, _) = send(&mut f, at(0), &Port::Internet, reply);
        assert_eq!(delivered(&v), eni(&ids.web_eni));
    }

    /// "A dropped packet is silent": unmatched inbound traffic is dropped,
    /// naming the interface and direction.
    #[test]
    fn security_group_unmatched_inbound_is_dropped() {
        let (mut f, ids) = lab();
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.web_public, 3389),
        );
        let r = dropped(&v);
        assert_eq!(
            r,
            DropReason::SecurityGroupNoMatch {
                eni: ids.web_eni.clone(),
                direction: Direction::Inbound
            }
        );
        assert!(
            r.to_string()
                .starts_with("no inbound security group rule of eni-web allows it")
        );
    }

    /// "Removing a rule does not cut a flow already tracked (until it idles out)."
    #[test]
    fn security_group_rule_removal_does_not_cut_tracked_flow() {
        let (mut f, ids) = lab();
        let syn = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 22);
        assert!(send(&mut f, at(0), &Port::Internet, syn).0.is_delivered());
        let reply = Flow::tcp(ids.web_ip, 22, ids.learner, LEARNER_PORT, TcpFlags::SYN_ACK);
        assert!(
            send(&mut f, at(0), &eni(&ids.web_eni), reply)
                .0
                .is_delivered()
        );
        rebuild(&mut f, |b| {
            b.security_groups
                .get_mut("sg-web")
                .unwrap()
                .ingress
                .retain(|r| r.ports != Some(PortRange::single(22)));
        });
        let ack = Flow::tcp(ids.learner, LEARNER_PORT, ids.web_public, 22, TcpFlags::ACK);
        assert!(
            send(&mut f, at(60), &Port::Internet, ack).0.is_delivered(),
            "tracked flow survives"
        );
        let fresh = Flow::tcp_syn(ids.learner, LEARNER_PORT + 1, ids.web_public, 22);
        assert!(
            !send(&mut f, at(60), &Port::Internet, fresh)
                .0
                .is_delivered(),
            "new flows obey the new rules"
        );
    }

    /// "Changes apply immediately to running instances."
    #[test]
    fn security_group_rule_added_applies_to_the_next_packet() {
        let (mut f, ids) = lab();
        let rdp = Flow::tcp_syn(ids.learner, 1, ids.web_public, 3389);
        assert!(!send(&mut f, at(0), &Port::Internet, rdp).0.is_delivered());
        rebuild(&mut f, |b| {
            b.security_groups
                .get_mut("sg-web")
                .unwrap()
                .ingress
                .push(SgRule::tcp(3389, SgPeer::Cidr(net("203.0.113.10/32"))));
        });
        assert!(send(&mut f, at(0), &Port::Internet, rdp).0.is_delivered());
    }

    /// UDP: 30 s idle for a single request/response (AWS `UdpTimeout`).
    #[test]
    fn security_group_udp_tracking_idles_out_after_30_seconds() {
        let (mut f, ids) = lab();
        let q = Flow::udp(ids.web_ip, 40000, ids.internet_host, 53);
        assert!(send(&mut f, at(0), &eni(&ids.web_eni), q).0.is_delivered());
        let answer = Flow::udp(ids.internet_host, 53, ids.web_public, 40000);
        assert!(
            send(&mut f, at(29), &Port::Internet, answer)
                .0
                .is_delivered()
        );
        assert!(
            !send(&mut f, at(60), &Port::Internet, answer)
                .0
                .is_delivered(),
            "idle 31 s"
        );
    }

    /// UDP streams (several exchanges) get 180 s (AWS `UdpStreamTimeout`).
    #[test]
    fn security_group_udp_stream_gets_180_seconds() {
        let (mut f, ids) = lab();
        let q = Flow::udp(ids.web_ip, 40000, ids.internet_host, 53);
        let answer = Flow::udp(ids.internet_host, 53, ids.web_public, 40000);
        for t in 0..3 {
            assert!(send(&mut f, at(t), &eni(&ids.web_eni), q).0.is_delivered());
            assert!(
                send(&mut f, at(t), &Port::Internet, answer)
                    .0
                    .is_delivered()
            );
        }
        assert!(
            send(&mut f, at(2 + 170), &Port::Internet, answer)
                .0
                .is_delivered()
        );
        assert!(
            !send(&mut f, at(172 + 181), &Port::Internet, answer)
                .0
                .is_delivered()
        );
    }

    /// TCP: established flows live 5 days idle; after a RST, 10 s.
    #[test]
    fn security_group_tcp_established_lasts_and_rst_ends_tracking() {
        let (mut f, ids) = lab();
        let syn = Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 443);
        let synack = Flow::tcp(
            ids.internet_host,
            443,
            ids.web_public,
            40000,
            TcpFlags::SYN_ACK,
        );
        assert!(
            send(&mut f, at(0), &eni(&ids.web_eni), syn)
                .0
                .is_delivered()
        );
        assert!(
            send(&mut f, at(1), &Port::Internet, synack)
                .0
                .is_delivered()
        );
        let data = Flow::tcp(ids.internet_host, 443, ids.web_public, 40000, TcpFlags::ACK);
        assert!(
            send(&mut f, at(1 + 86_400), &Port::Internet, data)
                .0
                .is_delivered(),
            "a day idle"
        );
        let rst = Flow::tcp(ids.web_ip, 40000, ids.internet_host, 443, TcpFlags::RST);
        assert!(
            send(&mut f, at(86_402), &eni(&ids.web_eni), rst)
                .0
                .is_delivered()
        );
        assert!(
            !send(&mut f, at(86_402 + 11), &Port::Internet, data)
                .0
                .is_delivered()
        );
    }

    /// TCP handshake never answered: tracking ends after 120 s.
    #[test]
    fn security_group_unanswered_syn_idles_out() {
        let (mut f, ids) = lab();
        let syn = Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 443);
        assert!(
            send(&mut f, at(0), &eni(&ids.web_eni), syn)
                .0
                .is_delivered()
        );
        let late = Flow::tcp(
            ids.internet_host,
            443,
            ids.web_public,
            40000,
            TcpFlags::SYN_ACK,
        );
        assert!(
            !send(&mut f, at(121), &Port::Internet, late)
                .0
                .is_delivered()
        );
    }

    /// "All rules of all groups on the interface are OR-ed."
    #[test]
    fn security_group_rules_of_all_groups_are_ored() {
        let (mut f, ids) = lab_with(|b, ids| {
            let mut extra = SecurityGroup::new("sg-extra", &ids.vpc);
            extra
                .ingress
                .push(SgRule::tcp(5432, SgPeer::Cidr(net("203.0.113.0/24"))));
            b.add_security_group(extra);
            b.network_interfaces
                .get_mut(&ids.web_eni)
                .unwrap()
                .security_groups
                .push("sg-extra".into());
        });
        f.set_record_hops(true);
        let (v, _) = send(
            &mut f,
            at(0),
            &Port::Internet,
            Flow::tcp_syn(ids.learner, 1, ids.web_public, 5432),
        );
        assert!(v.is_delivered());
        assert!(v.hops.iter().any(|h| &*h.component == "sg-extra"));
        assert!(
            send(
                &mut f,
                at(0),
                &Port::Internet,
                Flow::tcp_syn(ids.learner, 1, ids.web_public, 22)
            )
            .0
            .is_delivered()
        );
    }

    /// "Sources … are CIDRs or other security groups (meaning: interfaces
    /// that carry that group, by their private addresses)."
    #[test]
    fn security_group_source_can_be_another_group() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.add_security_group(SecurityGroup::new("sg-other", &ids.vpc));
            b.add_network_interface(NetworkInterface::new(
                "eni-other",
                &ids.public_subnet,
                Ipv4Addr::new(10, 0, 1, 50),
                &["sg-other"],
            ));
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.app_ip, 8080),
        );
        assert!(v.is_delivered(), "sg-web members may reach 8080");
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&"eni-other".into()),
            Flow::tcp_syn(Ipv4Addr::new(10, 0, 1, 50), 40000, ids.app_ip, 8080),
        );
        assert_eq!(
            dropped(&v),
            DropReason::SecurityGroupNoMatch {
                eni: ids.app_eni.clone(),
                direction: Direction::Inbound
            }
        );
    }

    /// A group source matches private addresses only: traffic arriving from a
    /// member's public address (through the internet gateway) does not match.
    #[test]
    fn security_group_source_group_does_not_match_public_addresses() {
        let (mut f, ids) = lab_with(|b, ids| {
            let sg = b.security_groups.get_mut(&ids.web_sg).unwrap();
            sg.ingress = vec![SgRule::tcp(22, SgPeer::Group(ids.web_sg.clone()))];
        });
        assert!(
            send(
                &mut f,
                at(0),
                &eni(&ids.web_eni),
                Flow::tcp_syn(ids.web_ip, 40000, ids.web2_ip, 22)
            )
            .0
            .is_delivered()
        );
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40001, ids.web2_public, 22),
        );
        assert!(matches!(
            dropped(&v),
            DropReason::SecurityGroupNoMatch {
                direction: Direction::Inbound,
                ..
            }
        ));
    }

    /// "The default security group allows inbound from its own members."
    #[test]
    fn default_security_group_allows_its_members() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.add_network_interface(NetworkInterface::new(
                "eni-app2",
                &ids.private_subnet,
                Ipv4Addr::new(10, 0, 2, 21),
                &[&ids.app_sg],
            ));
        });
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::udp(ids.app_ip, 40000, Ipv4Addr::new(10, 0, 2, 21), 9999),
        );
        assert_eq!(delivered(&v), Port::Eni("eni-app2".into()));
    }

    /// "A new group allows no inbound and all outbound."
    #[test]
    fn new_security_group_allows_no_inbound_and_all_outbound() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.add_security_group(SecurityGroup::new("sg-new", &ids.vpc));
            b.network_interfaces
                .get_mut(&ids.web_eni)
                .unwrap()
                .security_groups = vec!["sg-new".into()];
        });
        assert!(
            !send(
                &mut f,
                at(0),
                &Port::Internet,
                Flow::tcp_syn(ids.learner, 1, ids.web_public, 22)
            )
            .0
            .is_delivered()
        );
        assert!(
            send(
                &mut f,
                at(0),
                &eni(&ids.web_eni),
                Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 80)
            )
            .0
            .is_delivered()
        );
    }

    /// An egress rule restricts outbound traffic to what it names.
    #[test]
    fn security_group_egress_rules_restrict_outbound() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.security_groups.get_mut(&ids.web_sg).unwrap().egress =
                vec![SgRule::tcp(443, SgPeer::Cidr(net("0.0.0.0/0")))];
        });
        assert!(
            send(
                &mut f,
                at(0),
                &eni(&ids.web_eni),
                Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 443)
            )
            .0
            .is_delivered()
        );
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(ids.web_ip, 40000, ids.internet_host, 80),
        );
        assert_eq!(
            dropped(&v),
            DropReason::SecurityGroupNoMatch {
                eni: ids.web_eni.clone(),
                direction: Direction::Outbound
            }
        );
    }

    /// ICMP rules match type and code; a ping reply is tracked.
    #[test]
    fn security_group_icmp_echo_is_tracked() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.security_groups
                .get_mut(&ids.web_sg)
                .unwrap()
                .egress
                .clear();
        });
        assert!(
            send(
                &mut f,
                at(0),
                &Port::Internet,
                Flow::ping(ids.learner, ids.web_public, 9)
            )
            .0
            .is_delivered()
        );
        let pong = Flow {
            src: ids.web_ip,
            dst: ids.learner,
            proto: FlowProto::Icmp {
                ty: 0,
                code: 0,
                ident: 9,
            },
        };
        assert!(
            send(&mut f, at(1), &eni(&ids.web_eni), pong)
                .0
                .is_delivered()
        );
        assert!(
            send(&mut f, at(40), &eni(&ids.web_eni), pong)
                .0
                .drop_reason()
                .is_some(),
            "ICMP idles out after 30 s"
        );
    }
}

mod source_dest_check {
    use super::*;

    /// "A source/destination check that drops packets not addressed to it"
    /// — nor sent from it.
    #[test]
    fn source_dest_check_drops_spoofed_source() {
        let (mut f, ids) = lab();
        let spoofed = Ipv4Addr::new(10, 0, 1, 99);
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.web_eni),
            Flow::tcp_syn(spoofed, 40000, ids.web2_ip, 22),
        );
        assert_eq!(
            dropped(&v),
            DropReason::SourceDestCheck {
                eni: ids.web_eni.clone(),
                direction: Direction::Outbound,
                addr: spoofed
            }
        );
    }

    /// An appliance with the check enabled drops transit traffic routed to it;
    /// disabling it ("must be disabled for a NAT instance") lets it through.
    #[test]
    fn source_dest_check_must_be_disabled_for_an_appliance() {
        let edit = |sdc: bool| {
            move |b: &mut TopologyBuilder, ids: &FixtureIds| {
                let rt = b.route_tables.get_mut(&ids.private_rtb).unwrap();
                rt.routes[1].target = RouteTarget::NetworkInterface(ids.web_eni.clone());
                b.network_interfaces
                    .get_mut(&ids.web_eni)
                    .unwrap()
                    .source_dest_check = sdc;
                b.security_groups
                    .get_mut(&ids.web_sg)
                    .unwrap()
                    .ingress
                    .push(SgRule::all(SgPeer::Cidr(net("10.0.0.0/16"))));
            }
        };
        let (mut f, ids) = lab_with(edit(true));
        let flow = Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 80);
        let (v, _) = send(&mut f, at(0), &eni(&ids.app_eni), flow);
        assert_eq!(
            dropped(&v),
            DropReason::SourceDestCheck {
                eni: ids.web_eni.clone(),
                direction: Direction::Inbound,
                addr: ids.internet_host
            }
        );
        let (mut f, ids) = lab_with(edit(false));
        let (v, _) = send(&mut f, at(0), &eni(&ids.app_eni), flow);
        assert_eq!(delivered(&v), eni(&ids.web_eni));
        // Forwarding it on without masquerading: the internet gateway has no
        // public address for the private source (a NAT instance must SNAT).
        let (v, _) = send(&mut f, at(0), &eni(&ids.web_eni), flow);
        assert_eq!(
            dropped(&v),
            DropReason::IgwNoPublicIp {
                igw: ids.igw.clone(),
                src: ids.app_ip
            }
        );
    }
}

mod exemptions {
    use super::*;

    fn locked_down() -> (Fabric, FixtureIds) {
        lab_with(|b, ids| {
            b.add_network_acl(deny_all_acl("acl-closed", &ids.vpc));
            b.subnets.get_mut(&ids.private_subnet).unwrap().network_acl = "acl-closed".into();
            let sg = b.security_groups.get_mut(&ids.app_sg).unwrap();
            sg.ingress.clear();
            sg.egress.clear();
        })
    }

    /// "Traffic to and from the Amazon DNS resolver … is not filtered by NACLs
    /// or security groups" — at VPC base + 2 and at 169.254.169.253.
    #[test]
    fn resolver_traffic_is_exempt_from_nacls_and_security_groups() {
        let (mut f, ids) = locked_down();
        for dst in [ids.resolver, Ipv4Addr::new(169, 254, 169, 253)] {
            let (v, _) = send(
                &mut f,
                at(0),
                &eni(&ids.app_eni),
                Flow::udp(ids.app_ip, 40000, dst, 53),
            );
            assert_eq!(delivered(&v), Port::Resolver(ids.vpc.clone()));
        }
        let answer = Flow::udp(ids.resolver, 53, ids.app_ip, 40000);
        let (v, _) = send(&mut f, at(0), &Port::Resolver(ids.vpc.clone()), answer);
        assert_eq!(
            delivered(&v),
            eni(&ids.app_eni),
            "replies go straight to the interface"
        );
    }

    /// "… instance metadata (169.254.169.254) … is not filtered."
    #[test]
    fn metadata_traffic_is_exempt_from_nacls_and_security_groups() {
        let (mut f, ids) = locked_down();
        let imds = Ipv4Addr::new(169, 254, 169, 254);
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::tcp_syn(ids.app_ip, 40000, imds, 80),
        );
        assert_eq!(delivered(&v), Port::Metadata(ids.app_eni.clone()));
        let reply = Flow::tcp(imds, 80, ids.app_ip, 40000, TcpFlags::SYN_ACK);
        let (v, _) = send(&mut f, at(0), &Port::Metadata(ids.app_eni.clone()), reply);
        assert_eq!(delivered(&v), eni(&ids.app_eni));
        // The metadata service of one interface cannot address another.
        let stray = Flow::tcp(imds, 80, ids.web_ip, 40000, TcpFlags::SYN_ACK);
        assert!(
            !send(&mut f, at(0), &Port::Metadata(ids.app_eni.clone()), stray)
                .0
                .is_delivered()
        );
    }

    /// "`enableDnsSupport` … the resolver answers at all."
    #[test]
    fn resolver_is_unreachable_when_dns_support_is_disabled() {
        let (mut f, ids) =
            lab_with(|b, ids| b.vpcs.get_mut(&ids.vpc).unwrap().enable_dns_support = false);
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::udp(ids.app_ip, 40000, ids.resolver, 53),
        );
        assert_eq!(
            dropped(&v),
            DropReason::ResolverDisabled {
                vpc: ids.vpc.clone()
            }
        );
    }

    /// Other link-local addresses have no service behind them.
    #[test]
    fn other_link_local_addresses_are_not_served() {
        let (mut f, ids) = lab();
        let dst = Ipv4Addr::new(169, 254, 169, 123);
        let (v, _) = send(
            &mut f,
            at(0),
            &eni(&ids.app_eni),
            Flow::udp(ids.app_ip, 40000, dst, 123),
        );
        assert_eq!(dropped(&v), DropReason::LinkLocalUnavailable { dst });
    }
}

mod malformed {
    use super::*;

    fn verdict(bytes: &[u8]) -> DropReason {
        let (mut f, ids) = lab();
        let mut b = bytes.to_vec();
        dropped(&f.process(at(0), &eni(&ids.web_eni), &mut b))
    }

    fn good() -> Vec<u8> {
        Flow::tcp_syn(
            Ipv4Addr::new(10, 0, 1, 10),
            40000,
            Ipv4Addr::new(10, 0, 1, 11),
            22,
        )
        .to_packet(b"")
    }

    fn refill_ip_checksum(b: &mut [u8]) {
        let mut p = Ipv4Packet::new_unchecked(b);
        p.fill_checksum();
    }

    /// Truncated headers are dropped as malformed, never a panic.
    #[test]
    fn truncated_packets_are_malformed() {
        let g = good();
        assert_eq!(
            verdict(&g[..10]),
            DropReason::Malformed(Malformed::Truncated)
        );
        assert_eq!(
            verdict(&g[..30]),
            DropReason::Malformed(Malformed::Truncated),
            "total length beyond the bytes"
        );
        let mut short = g.clone();
        short[2..4].copy_from_slice(&30u16.to_be_bytes());
        refill_ip_checksum(&mut short);
        assert_eq!(
            verdict(&short),
            DropReason::Malformed(Malformed::Truncated),
            "TCP header cut"
        );
        assert_eq!(verdict(&[]), DropReason::Malformed(Malformed::Truncated));
    }

    /// IPv4 options are not forwarded.
    #[test]
    fn ip_options_are_malformed() {
        let mut b = good();
        b.splice(20..20, [1, 1, 1, 0]);
        b[0] = 0x46;
        let len = b.len() as u16;
        b[2..4].copy_from_slice(&len.to_be_bytes());
        refill_ip_checksum(&mut b);
        assert_eq!(verdict(&b), DropReason::Malformed(Malformed::IpOptions));
    }

    /// Fragments are not reassembled.
    #[test]
    fn fragments_are_malformed() {
        let mut b = good();
        b[6] = 0x20; // more fragments
        refill_ip_checksum(&mut b);
        assert_eq!(verdict(&b), DropReason::Malformed(Malformed::Fragment));
        let mut b = good();
        b[7] = 0x10; // offset
        refill_ip_checksum(&mut b);
        assert_eq!(verdict(&b), DropReason::Malformed(Malformed::Fragment));
    }

    #[test]
    fn bad_header_checksum_and_versions_are_malformed() {
        let mut b = good();
        b[10] ^= 0xff;
        assert_eq!(verdict(&b), DropReason::Malformed(Malformed::BadChecksum));
        let mut b = good();
        b[0] = 0x55;
        assert_eq!(verdict(&b), DropReason::Malformed(Malformed::NotIpv4));
        // Version 6 goes to the IPv6 path, where an IPv4 body is no IPv6 packet.
        let mut b = good();
        b[0] = 0x65;
        assert!(matches!(verdict(&b), DropReason::Malformed(_)));
    }

    #[test]
    fn bad_udp_length_is_malformed() {
        let mut b = Flow::udp(
            Ipv4Addr::new(10, 0, 1, 10),
            1,
            Ipv4Addr::new(10, 0, 1, 11),
            2,
        )
        .to_packet(b"abc");
        b[24..26].copy_from_slice(&500u16.to_be_bytes());
        assert_eq!(verdict(&b), DropReason::Malformed(Malformed::BadLength));
    }

    /// An ICMP error too short to quote a header is malformed.
    #[test]
    fn icmp_error_without_quoted_header_is_malformed() {
        let f = Flow {
            src: Ipv4Addr::new(10, 0, 1, 10),
            dst: Ipv4Addr::new(10, 0, 1, 11),
            proto: FlowProto::Icmp {
                ty: 3,
                code: 1,
                ident: 0,
            },
        };
        assert_eq!(
            verdict(&f.to_packet(b"short")),
            DropReason::Malformed(Malformed::Truncated)
        );
    }

    /// A packet from a port the topology does not know is dropped.
    #[test]
    fn unknown_port_drops() {
        let (mut f, _) = lab();
        let mut b = good();
        let v = f.process(at(0), &Port::Eni("eni-gone".into()), &mut b);
        assert_eq!(dropped(&v), DropReason::UnknownPort);
        let v = f.process(at(0), &Port::Resolver("vpc-gone".into()), &mut b);
        assert_eq!(dropped(&v), DropReason::UnknownPort);
    }
}

mod explain {
    use super::*;

    /// One decision path: `explain` answers what `process` does, and changes nothing.
    #[test]
    fn explain_agrees_with_process_and_changes_no_state() {
        let (mut f, ids) = lab();
        let flows = [
            (
                Port::Internet,
                Flow::tcp_syn(ids.learner, 1, ids.web_public, 22),
            ),
            (
                Port::Internet,
                Flow::tcp_syn(ids.learner, 1, ids.web_public, 3389),
            ),
            (
                eni(&ids.app_eni),
                Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
            ),
            (
                eni(&ids.web_eni),
                Flow::tcp_syn(ids.web_ip, 40000, ids.app_ip, 8080),
            ),
        ];
        for (port, flow) in flows {
            let before = f.stats();
            let e = f.explain(at(0), &port, &flow);
            assert_eq!(f.stats(), before, "explain changes nothing");
            let (v, _) = send(&mut f, at(0), &port, flow);
            assert_eq!(e.outcome, v.outcome, "{flow}");
            assert!(!e.hops.is_empty());
        }
    }

    /// The return path shows the classic stateless trap: the request gets
    /// in, the reply is dropped by the network ACL, and nothing changes.
    #[test]
    fn round_trip_explains_a_reply_blocked_by_the_network_acl() {
        let (f, ids) = lab_with(|b, ids| {
            let entries = vec![
                NaclEntry::tcp(
                    100,
                    false,
                    PortRange::single(80),
                    net("0.0.0.0/0"),
                    RuleAction::Allow,
                ),
                NaclEntry::tcp(
                    100,
                    true,
                    PortRange::single(80),
                    net("0.0.0.0/0"),
                    RuleAction::Allow,
                ),
            ];
            b.add_network_acl(NetworkAcl {
                id: "acl-web".into(),
                vpc: ids.vpc.clone(),
                entries,
            });
            b.subnets.get_mut(&ids.public_subnet).unwrap().network_acl = "acl-web".into();
        });
        let flow = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 80);
        let (forward, back) = f.explain_round_trip(at(0), &Port::Internet, &flow);
        assert_eq!(forward.outcome, Outcome::Deliver(eni(&ids.web_eni)));
        let back = back.expect("the forward path was delivered");
        assert!(
            matches!(
                back.drop_reason(),
                Some(DropReason::NaclDeny {
                    direction: Direction::Outbound,
                    rule: None,
                    ..
                })
            ),
            "{back}"
        );
        assert_eq!(
            f.stats().tracked_connections,
            0,
            "explaining changed nothing"
        );
    }

    /// Through a NAT gateway, the return path finds the mapping the forward
    /// packet would create and reaches the instance.
    #[test]
    fn round_trip_through_the_nat_gateway_returns_to_the_instance() {
        let (f, ids) = lab();
        let flow = Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443);
        let (forward, back) = f.explain_round_trip(at(0), &eni(&ids.app_eni), &flow);
        assert_eq!(forward.outcome, Outcome::Deliver(Port::Internet));
        let back = back.unwrap();
        assert_eq!(back.outcome, Outcome::Deliver(eni(&ids.app_eni)));
        assert!(back.hops.iter().any(|h| h.component == ids.nat));
        assert_eq!(f.stats().nat_mappings, 0);
    }

    /// The verdict reads as an explanation: every hop names its component.
    #[test]
    fn verdict_lists_hops_naming_components_and_rules() {
        let (f, ids) = lab();
        let v = f.explain(
            at(0),
            &eni(&ids.app_eni),
            &Flow::tcp_syn(ids.app_ip, 40000, ids.internet_host, 443),
        );
        let text = v.to_string();
        for part in [
            "sg-app",
            "acl-default",
            "rtb-private",
            "nat-fixture",
            "rtb-public",
            "igw-fixture",
            "delivered to internet",
        ] {
            assert!(text.contains(part), "{part} missing from:\n{text}");
        }
        assert!(
            text.contains("translated 10.0.1.100 to 198.18.0.100"),
            "{text}"
        );
    }
}

mod topology_validation {
    use super::*;

    /// A snapshot that refers to something it does not contain is refused
    /// when it is built, not discovered packet by packet.
    #[test]
    fn dangling_references_are_rejected() {
        let (mut b, _) = public_private_vpc_builder();
        b.subnets.get_mut("subnet-public").unwrap().route_table = "rtb-gone".into();
        assert!(matches!(
            b.build(),
            Err(TopologyError::Dangling {
                kind: "route table",
                ..
            })
        ));
        let (mut b, _) = public_private_vpc_builder();
        b.network_interfaces
            .get_mut("eni-web")
            .unwrap()
            .security_groups
            .push("sg-gone".into());
        assert!(matches!(
            b.build(),
            Err(TopologyError::Dangling {
                kind: "security group",
                ..
            })
        ));
    }

    /// "Numbered rules 1–32766."
    #[test]
    fn nacl_rule_numbers_outside_1_to_32766_are_rejected() {
        let (mut b, _) = public_private_vpc_builder();
        b.network_acls
            .get_mut("acl-default")
            .unwrap()
            .entries
            .push(NaclEntry::all(
                32767,
                false,
                net("0.0.0.0/0"),
                RuleAction::Deny,
            ));
        assert_eq!(
            b.build().unwrap_err(),
            TopologyError::BadRuleNumber {
                acl: "acl-default".into(),
                rule: 32767
            }
        );
    }

    /// Two interfaces cannot hold one address.
    #[test]
    fn duplicate_addresses_are_rejected() {
        let (mut b, ids) = public_private_vpc_builder();
        b.add_network_interface(NetworkInterface::new(
            "eni-dup",
            &ids.public_subnet,
            ids.web_ip,
            &[],
        ));
        assert!(matches!(
            b.build(),
            Err(TopologyError::DuplicateAddress { .. })
        ));
    }

    /// AWS (EC2 User Guide, "IPv6-only subnets"): an interface there has no IPv4
    /// address. Any number of such interfaces share a VPC (their `NO_IPV4` is no
    /// address, so no duplicate), and the IPv4 side finds none of them by address.
    #[test]
    fn interfaces_without_ipv4_are_not_indexed_on_the_ipv4_side() {
        let (mut b, ids) = public_private_vpc_builder();
        for id in ["eni-v6only-a", "eni-v6only-b"] {
            b.add_network_interface(NetworkInterface::new(
                id,
                &ids.private_subnet,
                NetworkInterface::NO_IPV4,
                &[&ids.app_sg],
            ));
        }
        let t = b.build().expect("two IPv4-less interfaces in one VPC");
        assert!(
            t.eni_by_private_ip(&ids.vpc, NetworkInterface::NO_IPV4)
                .is_none()
        );
        assert!(t.network_interface("eni-v6only-b").is_some());
    }

    /// Lookups learners' tools need: by private address within a VPC, by public address.
    #[test]
    fn topology_finds_interfaces_by_address() {
        let (t, ids) = public_private_vpc();
        assert_eq!(
            t.eni_by_private_ip(&ids.vpc, ids.app_ip).unwrap().id,
            ids.app_eni
        );
        assert_eq!(t.eni_by_public_ip(ids.nat_public).unwrap().id, ids.nat_eni);
        assert!(t.is_public_range(ids.web_public));
        assert!(!t.is_public_range(ids.learner));
    }
}

mod default_vpc {
    use super::*;
    use vpclab_netstack::fixture::default_vpc;

    /// "The default VPC: … an IGW, a main route table with 0.0.0.0/0 → igw,
    /// the default security group and NACL": an instance reaches the internet,
    /// but the default group lets nothing in from outside its members.
    #[test]
    fn default_vpc_reaches_out_but_default_group_admits_only_members() {
        let (t, ids) = default_vpc();
        let mut f = Fabric::new(Arc::new(t));
        let port = Port::Eni(ids.eni.clone());
        let out = Flow::tcp_syn(ids.ip, 40000, Ipv4Addr::new(192, 0, 2, 80), 443);
        assert_eq!(
            delivered(&send(&mut f, at(0), &port, out).0),
            Port::Internet
        );
        let ssh = Flow::tcp_syn(ids.learner, 1, ids.public_ip, 22);
        let (v, _) = send(&mut f, at(0), &Port::Internet, ssh);
        assert_eq!(
            dropped(&v),
            DropReason::SecurityGroupNoMatch {
                eni: ids.eni.clone(),
                direction: Direction::Inbound
            }
        );
    }
}

/// VPC Flow Logs: records per interface and direction, from the same verdicts.
mod flow_logs {
    use super::*;
    use vpclab_netstack::flowlog::FlowRecord;

    fn rec(recs: &[FlowRecord], egress: bool, dport: u16) -> &FlowRecord {
        recs.iter()
            .find(|r| r.key.egress == egress && r.key.dport == dport)
            .unwrap_or_else(|| panic!("no {egress} record to port {dport}: {recs:?}"))
    }

    /// "The stateless NACL trap shows as ACCEPT inbound and REJECT outbound for the
    /// same flow" (observability.md): inbound 80 allowed, no outbound ephemeral rule.
    #[test]
    fn nacl_ephemeral_port_trap_is_accept_in_and_reject_out() {
        let (mut f, ids) = lab_with(|b, ids| {
            b.add_network_acl(NetworkAcl {
                id: "acl-custom".into(),
                vpc: ids.vpc.clone(),
                entries: vec![
                    NaclEntry::tcp(
                        100,
                        false,
                        PortRange::single(80),
                        net("0.0.0.0/0"),
                        RuleAction::Allow,
                    ),
                    NaclEntry::tcp(
                        100,
                        true,
                        PortRange::single(80),
                        net("0.0.0.0/0"),
                        RuleAction::Allow,
                    ),
                ],
            });
            b.subnets.get_mut(&ids.public_subnet).unwrap().network_acl = "acl-custom".into();
        });
        f.set_flow_logged([ids.web_eni.clone()]);
        let syn = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 80);
        assert!(send(&mut f, at(0), &Port::Internet, syn).0.is_delivered());
        let reply = Flow::tcp(ids.web_ip, 80, ids.learner, LEARNER_PORT, TcpFlags::SYN_ACK);
        for _ in 0..2 {
            assert!(
                !send(&mut f, at(0), &eni(&ids.web_eni), reply)
                    .0
                    .is_delivered()
            );
        }
        let d = f.drain_flow_records();
        assert_eq!(d.records.len(), 2, "{:?}", d.records);
        let inbound = rec(&d.records, false, 80);
        assert!(inbound.key.accept);
        assert_eq!(inbound.eni, ids.web_eni);
        assert_eq!(
            inbound.key.dst,
            std::net::IpAddr::V4(ids.web_ip),
            "the private address"
        );
        assert_eq!(inbound.counters.packets, 1);
        let outbound = rec(&d.records, true, LEARNER_PORT);
        assert!(!outbound.key.accept);
        assert_eq!(outbound.counters.packets, 2);
        assert_eq!(outbound.counters.tcp_flags, 0x12);
        assert!(
            f.drain_flow_records().records.is_empty(),
            "a drain empties the window"
        );
    }

    /// "A security-group drop shows as REJECT inbound only"; traffic to the VPC
    /// resolver is not logged; an interface without a flow log records nothing.
    #[test]
    fn security_group_drop_is_reject_inbound_and_unlogged_interfaces_cost_nothing() {
        let (mut f, ids) = lab();
        f.set_flow_logged([ids.web_eni.clone()]);
        // sg-web admits 22 and 80 only.
        let syn = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 3306);
        assert!(!send(&mut f, at(0), &Port::Internet, syn).0.is_delivered());
        let dns = Flow::udp(ids.web_ip, 40000, ids.resolver, 53);
        send(&mut f, at(0), &eni(&ids.web_eni), dns);
        // Nor is the resolver's answer on its way back to the interface.
        let answer = Flow::udp(ids.resolver, 53, ids.web_ip, 40000);
        let resolver = Port::Resolver(ids.vpc.clone());
        assert!(send(&mut f, at(0), &resolver, answer).0.is_delivered());
        // eni-web2 has no flow log.
        let other = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web2_public, 3306);
        send(&mut f, at(0), &Port::Internet, other);
        let d = f.drain_flow_records();
        assert_eq!(d.records.len(), 1, "{:?}", d.records);
        let r = rec(&d.records, false, 3306);
        assert!(!r.key.accept);
        assert_eq!(r.eni, ids.web_eni);
        // Logging survives a topology swap.
        rebuild(&mut f, |_| {});
        send(&mut f, at(1), &Port::Internet, syn);
        assert_eq!(f.drain_flow_records().records.len(), 1);
    }

    /// Every packet of an established flow is in the records exactly once, whether its
    /// decision was walked or replayed from the flow cache (where replays are counted),
    /// across drains, topology swaps and changes of the logged interfaces; the ingress
    /// record names the translated (private) destination, as AWS records the
    /// interface's own address.
    #[test]
    fn replayed_packets_are_counted_once_across_drains_swaps_and_changes() {
        let (mut f, ids) = lab();
        f.set_flow_logged([ids.web_eni.clone()]);
        let syn = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 80);
        assert!(send(&mut f, at(0), &Port::Internet, syn).0.is_delivered());
        let ack = Flow::tcp(ids.learner, LEARNER_PORT, ids.web_public, 80, TcpFlags::ACK);
        let acks = |f: &mut Fabric, k: usize| {
            let mut len = 0;
            for _ in 0..k {
                let (v, bytes) = send(f, at(1), &Port::Internet, ack);
                assert!(v.is_delivered());
                len = bytes.len() as u64;
            }
            len
        };
        let len = acks(&mut f, 5);
        let d = f.drain_flow_records();
        assert_eq!(d.records.len(), 1, "{:?}", d.records);
        let r = rec(&d.records, false, 80);
        assert!(r.key.accept);
        assert_eq!(r.key.dst, std::net::IpAddr::V4(ids.web_ip));
        assert_eq!(r.counters.packets, 6);
        assert_eq!(
            r.counters.tcp_flags, 0x12,
            "SYN from the walk, ACK from replays"
        );
        // Counted before a swap (the cache is cleared) and after it.
        acks(&mut f, 3);
        rebuild(&mut f, |_| {});
        acks(&mut f, 2);
        let d = f.drain_flow_records();
        let r = rec(&d.records, false, 80);
        assert_eq!(r.counters.packets, 5);
        assert_eq!(r.counters.bytes, 5 * len);
        assert_eq!(r.counters.tcp_flags, 0x10);
        // Another interface gains a flow log: what was counted stays.
        acks(&mut f, 3);
        f.set_flow_logged([ids.web_eni.clone(), ids.web2_eni.clone()]);
        acks(&mut f, 4);
        assert_eq!(
            rec(&f.drain_flow_records().records, false, 80)
                .counters
                .packets,
            7
        );
        // Logging off: replays count nothing, and what was counted before is kept.
        acks(&mut f, 2);
        f.set_flow_logged([]);
        acks(&mut f, 3);
        assert_eq!(
            rec(&f.drain_flow_records().records, false, 80)
                .counters
                .packets,
            2
        );
        assert!(f.drain_flow_records().records.is_empty());
    }
}

/// CloudWatch's `AWS/EC2` NetworkIn/NetworkOut: "the number of bytes received/sent by
/// the instance on all network interfaces" — counted from the same verdicts.
mod interface_counters {
    use super::*;

    fn of(f: &Fabric, id: &str) -> vpclab_netstack::InterfaceCounters {
        f.interface_counters()
            .into_iter()
            .find(|(eni, _)| &**eni == id)
            .map(|(_, c)| c)
            .unwrap_or_default()
    }

    #[test]
    fn delivered_packets_count_in_sent_packets_count_out_and_survive_swaps() {
        let (mut f, ids) = lab();
        let syn = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 80);
        let (v, bytes) = send(&mut f, at(0), &Port::Internet, syn);
        assert!(v.is_delivered());
        let c = of(&f, &ids.web_eni);
        assert_eq!((c.packets_in, c.bytes_in), (1, bytes.len() as u64));
        assert_eq!(c.packets_out, 0);
        // The reply goes out; a second one takes the flow cache and still counts.
        let reply = Flow::tcp(ids.web_ip, 80, ids.learner, LEARNER_PORT, TcpFlags::SYN_ACK);
        for _ in 0..2 {
            assert!(
                send(&mut f, at(0), &eni(&ids.web_eni), reply)
                    .0
                    .is_delivered()
            );
        }
        assert_eq!(of(&f, &ids.web_eni).packets_out, 2);
        // A packet the security group drops is not received (sg-web admits 22 and 80).
        let refused = Flow::tcp_syn(ids.learner, LEARNER_PORT, ids.web_public, 3306);
        assert!(
            !send(&mut f, at(0), &Port::Internet, refused)
                .0
                .is_delivered()
        );
        assert_eq!(of(&f, &ids.web_eni).packets_in, 1);
        assert_eq!(of(&f, &ids.web2_eni).packets_in, 0);
        rebuild(&mut f, |_| {});
        assert_eq!(
            of(&f, &ids.web_eni).packets_out,
            2,
            "kept across topology swaps"
        );
    }
}

// ---------------------------------------------------------------------------
// VPC peering (VPC Peering Guide: "VPC peering basics", "VPC peering limitations")
// ---------------------------------------------------------------------------

/// The fixture VPC (A, 10.0.0.0/16) plus VPC B (10.1.0.0/16) and VPC C
/// (10.2.0.0/16), each with one subnet and one host whose group allows SSH
/// from `ssh_from`; peerings pcx-ab and pcx-bc are active. Routes are up to
/// each test.
struct Peered {
    f: Fabric,
    ids: FixtureIds,
    b_host: Ipv4Addr,
    c_host: Ipv4Addr,
}

fn peered(ssh_from: SgPeer, edit: impl FnOnce(&mut TopologyBuilder)) -> Peered {
    let (mut t, ids) = public_private_vpc_builder();
    for (v, cidr, subnet) in [
        ("vpc-b", "10.1.0.0/16", "10.1.1.0/24"),
        ("vpc-c", "10.2.0.0/16", "10.2.1.0/24"),
    ] {
        let tag = &v[4..];
        t.add_vpc(Vpc::new(v, net(cidr)));
        t.add_network_acl(NetworkAcl::default_allow(&format!("acl-{tag}"), v));
        t.add_route_table(RouteTable {
            id: format!("rtb-{tag}").as_str().into(),
            vpc: v.into(),
            routes: vec![Route::new(net(cidr), RouteTarget::Local)],
        });
        t.add_subnet(Subnet::new(
            &format!("subnet-{tag}"),
            v,
            net(subnet),
            &format!("rtb-{tag}"),
            &format!("acl-{tag}"),
        ));
        let mut sg = SecurityGroup::new(&format!("sg-{tag}"), v);
        sg.ingress = vec![SgRule::tcp(22, ssh_from.clone())];
        t.add_security_group(sg);
        let host: Ipv4Addr = net(subnet).hosts().nth(9).unwrap();
        t.add_network_interface(NetworkInterface::new(
            &format!("eni-{tag}"),
            &format!("subnet-{tag}"),
            host,
            &[&format!("sg-{tag}")],
        ));
    }
    t.add_peering(VpcPeering {
        id: "pcx-ab".into(),
        requester_vpc: ids.vpc.clone(),
        accepter_vpc: "vpc-b".into(),
    });
    t.add_peering(VpcPeering {
        id: "pcx-bc".into(),
        requester_vpc: "vpc-b".into(),
        accepter_vpc: "vpc-c".into(),
    });
    edit(&mut t);
    Peered {
        f: Fabric::new(Arc::new(t.build().unwrap())),
        ids,
        b_host: Ipv4Addr::new(10, 1, 1, 10),
        c_host: Ipv4Addr::new(10, 2, 1, 10),
    }
}

fn add_route(t: &mut TopologyBuilder, table: &str, dest: &str, target: RouteTarget) {
    t.route_tables
        .get_mut(table)
        .unwrap()
        .routes
        .push(Route::new(net(dest), target));
}

fn pcx(id: &str) -> RouteTarget {
    RouteTarget::VpcPeering(id.into())
}

/// "The owner of each VPC in the VPC peering connection must manually add a route to
/// one or more of their VPC route tables that points to the IP address range of the
/// other VPC": with routes on both sides a connection and its reply cross.
#[test]
fn peering_carries_traffic_with_routes_on_both_sides() {
    let all = SgPeer::Cidr(net("10.0.0.0/16"));
    let p = peered(all, |t| {
        add_route(t, "rtb-public", "10.1.0.0/16", pcx("pcx-ab"));
        add_route(t, "rtb-b", "10.0.0.0/16", pcx("pcx-ab"));
    });
    let flow = Flow::tcp_syn(p.ids.web_ip, 40000, p.b_host, 22);
    let (fwd, back) = p.f.explain_round_trip(at(0), &eni(&p.ids.web_eni), &flow);
    assert_eq!(delivered(&fwd), Port::Eni("eni-b".into()));
    assert!(
        fwd.hops.iter().any(|h| h.component.as_ref() == "pcx-ab"
            && matches!(h.action, HopAction::PeeringCross { .. })),
        "{fwd}"
    );
    assert_eq!(delivered(&back.expect("a reply path")), eni(&p.ids.web_eni));
}

/// A route on one side only: the request arrives, the reply has no route back.
#[test]
fn peering_without_the_return_route_drops_the_reply() {
    let p = peered(SgPeer::Cidr(net("10.0.0.0/16")), |t| {
        add_route(t, "rtb-public", "10.1.0.0/16", pcx("pcx-ab"));
    });
    let flow = Flow::tcp_syn(p.ids.web_ip, 40000, p.b_host, 22);
    let (fwd, back) = p.f.explain_round_trip(at(0), &eni(&p.ids.web_eni), &flow);
    delivered(&fwd);
    assert_eq!(
        dropped(&back.unwrap()),
        DropReason::NoRoute {
            table: "rtb-b".into(),
            dst: p.ids.web_ip
        }
    );
}

/// "You can reference a security group from the peer VPC as a source or destination
/// for inbound or outbound rules in your security group" (same Region).
#[test]
fn peering_security_group_rules_may_name_the_peer_vpcs_group() {
    let p = peered(SgPeer::Group(rid("sg-web")), |t| {
        add_route(t, "rtb-public", "10.1.0.0/16", pcx("pcx-ab"));
        add_route(t, "rtb-private", "10.1.0.0/16", pcx("pcx-ab"));
        add_route(t, "rtb-b", "10.0.0.0/16", pcx("pcx-ab"));
    });
    let web = Flow::tcp_syn(p.ids.web_ip, 40000, p.b_host, 22);
    delivered(&p.f.explain(at(0), &eni(&p.ids.web_eni), &web));
    // The app host is in VPC A too, but not in sg-web.
    let app = Flow::tcp_syn(p.ids.app_ip, 40000, p.b_host, 22);
    assert_eq!(
        dropped(&p.f.explain(at(0), &eni(&p.ids.app_eni), &app)),
        DropReason::SecurityGroupNoMatch {
            eni: "eni-b".into(),
            direction: Direction::Inbound
        }
    );
}

/// "Transitive peering is not supported": A–B and B–C do not join A and C, even
/// with a route in every table.
#[test]
fn peering_is_not_transitive() {
    let p = peered(SgPeer::Cidr(net("10.0.0.0/8")), |t| {
        add_route(t, "rtb-public", "10.1.0.0/16", pcx("pcx-ab"));
        add_route(t, "rtb-public", "10.2.0.0/16", pcx("pcx-ab"));
        add_route(t, "rtb-b", "10.0.0.0/16", pcx("pcx-ab"));
        add_route(t, "rtb-b", "10.2.0.0/16", pcx("pcx-bc"));
        add_route(t, "rtb-c", "10.0.0.0/16", pcx("pcx-bc"));
    });
    let flow = Flow::tcp_syn(p.ids.web_ip, 40000, p.c_host, 22);
    let v = p.f.explain(at(0), &eni(&p.ids.web_eni), &flow);
    assert_eq!(
        dropped(&v),
        DropReason::PeeringNotTransitive {
            peering: "pcx-ab".into(),
            vpc: "vpc-b".into(),
            addr: p.c_host,
            destination: true,
        }
    );
    assert!(v.to_string().contains("not transitive"), "{v}");
}

/// "Edge to edge routing through a gateway": a peer's internet gateway is not yours.
#[test]
fn peering_does_not_reach_the_internet_through_the_peer() {
    let p = peered(SgPeer::Cidr(net("10.0.0.0/8")), |t| {
        add_route(t, "rtb-b", "0.0.0.0/0", pcx("pcx-ab"));
    });
    let flow = Flow::tcp_syn(p.b_host, 40000, p.ids.internet_host, 80);
    let v = p.f.explain(at(0), &Port::Eni("eni-b".into()), &flow);
    assert!(
        matches!(
            dropped(&v),
            DropReason::PeeringNotTransitive { ref peering, destination: true, .. } if peering.as_ref() == "pcx-ab"
        ),
        "{v}"
    );
}

/// A route to a connection that is no longer active is a blackhole.
#[test]
fn peering_route_to_an_inactive_connection_is_a_blackhole() {
    let mut p = peered(SgPeer::Cidr(net("10.0.0.0/16")), |t| {
        add_route(t, "rtb-public", "10.1.0.0/16", pcx("pcx-ab"));
    });
    rebuild(&mut p.f, |t| {
        t.peerings.remove("pcx-ab");
    });
    let flow = Flow::tcp_syn(p.ids.web_ip, 40000, p.b_host, 22);
    let (v, _) = send(&mut p.f, at(0), &eni(&p.ids.web_eni), flow);
    assert_eq!(
        dropped(&v),
        DropReason::Blackhole {
            table: p.ids.public_rtb.clone(),
            route: net("10.1.0.0/16")
        }
    );
}

// ---------------------------------------------------------------------------
// Gateway VPC endpoints (Amazon VPC User Guide: "Gateway endpoints")
// ---------------------------------------------------------------------------

/// S3's address in the world's plan (its prefix list's one CIDR).
const S3: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

fn vpce(id: &str) -> RouteTarget {
    RouteTarget::VpcEndpoint(id.into())
}

/// The fixture with gateway endpoint `vpce-s3` in its VPC; `edit` sets the routes.
fn with_endpoint(edit: impl FnOnce(&mut TopologyBuilder, &FixtureIds)) -> (Fabric, FixtureIds) {
    lab_with(|t, ids| {
        t.add_vpc_endpoint(VpcEndpoint {
            id: "vpce-s3".into(),
            vpc: ids.vpc.clone(),
        });
        edit(t, ids)
    })
}

/// "Gateway endpoints provide reliable connectivity to Amazon S3 and DynamoDB without
/// requiring an internet gateway or a NAT device": a private subnet whose only route
/// out is the endpoint's reaches the service, and the reply comes back to the instance.
#[test]
fn gateway_endpoint_carries_a_private_subnet_to_the_service_and_back() {
    let (f, ids) = with_endpoint(|t, _| {
        let rtb = t.route_tables.get_mut("rtb-private").unwrap();
        rtb.routes.retain(|r| r.target == RouteTarget::Local);
        rtb.routes
            .push(Route::new(net("198.51.100.2/32"), vpce("vpce-s3")));
    });
    let flow = Flow::tcp_syn(ids.app_ip, 40000, S3, 443);
    let (fwd, back) = f.explain_round_trip(at(0), &eni(&ids.app_eni), &flow);
    assert_eq!(delivered(&fwd), Port::Endpoint("vpce-s3".into()), "{fwd}");
    let back = back.expect("a reply path");
    assert_eq!(delivered(&back), eni(&ids.app_eni), "{back}");
    assert!(
        back.hops
            .iter()
            .any(|h| matches!(h.action, HopAction::EndpointReturn { .. })),
        "{back}"
    );
}

/// Without the endpoint's route a private subnet with no NAT has no way to the service.
#[test]
fn without_the_endpoint_route_the_private_subnet_has_no_route() {
    let (f, ids) = with_endpoint(|t, _| {
        let rtb = t.route_tables.get_mut("rtb-private").unwrap();
        rtb.routes.retain(|r| r.target == RouteTarget::Local);
    });
    let flow = Flow::tcp_syn(ids.app_ip, 40000, S3, 443);
    assert_eq!(
        dropped(&f.explain(at(0), &eni(&ids.app_eni), &flow)),
        DropReason::NoRoute {
            table: "rtb-private".into(),
            dst: S3
        }
    );
}

/// "If you have an existing route … for all internet traffic (0.0.0.0/0) that points to
/// an internet gateway, the endpoint route takes precedence for all traffic destined for
/// the service": the packet goes to the endpoint untranslated, not through the gateway.
#[test]
fn the_endpoint_route_wins_over_the_default_route_to_the_internet_gateway() {
    let (f, ids) = with_endpoint(|t, _| {
        add_route(t, "rtb-public", "198.51.100.2/32", vpce("vpce-s3"));
    });
    let flow = Flow::tcp_syn(ids.web_ip, 40000, S3, 443);
    let fwd = f.explain(at(0), &eni(&ids.web_eni), &flow);
    assert_eq!(delivered(&fwd), Port::Endpoint("vpce-s3".into()));
    assert!(
        !fwd.hops
            .iter()
            .any(|h| matches!(h.action, HopAction::IgwTranslate { .. })),
        "the source stays private: {fwd}"
    );
}

/// An endpoint serves only its own VPC: a route to another VPC's endpoint drops.
#[test]
fn a_route_to_another_vpcs_endpoint_is_a_blackhole() {
    let (f, ids) = lab_with(|t, _| {
        t.add_vpc(Vpc::new("vpc-other", net("10.9.0.0/16")));
        t.add_vpc_endpoint(VpcEndpoint {
            id: "vpce-other".into(),
            vpc: "vpc-other".into(),
        });
        add_route(t, "rtb-private", "198.51.100.2/32", vpce("vpce-other"));
    });
    let flow = Flow::tcp_syn(ids.app_ip, 40000, S3, 443);
    assert_eq!(
        dropped(&f.explain(at(0), &eni(&ids.app_eni), &flow)),
        DropReason::Blackhole {
            table: "rtb-private".into(),
            route: net("198.51.100.2/32")
        }
    );
}

/// IPv6 dual stack: the same stages for IPv6 packets (`ipv6.rs`).
#[path = "conformance/ipv6.rs"]
mod ipv6;

/// [`peered`] plus transit gateway `tgw-1` attached to VPC A's `a_subnet`, B's and C's
/// only subnets, every attachment associated with `tgw-rtb-1`, whose routes are each
/// VPC's block to its attachment plus `extra`.
fn with_tgw(t: &mut TopologyBuilder, ids: &FixtureIds, a_subnet: &ResId, extra: Vec<TgwRoute>) {
    let attach = |id: &str, vpc: ResId, subnet: ResId| TgwAttachment {
        id: id.into(),
        vpc,
        subnets: vec![subnet],
        route_table: Some("tgw-rtb-1".into()),
    };
    let mut routes = vec![
        tgw_route("10.0.0.0/16", Some("tgw-attach-a")),
        tgw_route("10.1.0.0/16", Some("tgw-attach-b")),
        tgw_route("10.2.0.0/16", Some("tgw-attach-c")),
    ];
    routes.extend(extra);
    t.add_transit_gateway(TransitGateway {
        id: "tgw-1".into(),
        attachments: vec![
            attach("tgw-attach-a", ids.vpc.clone(), a_subnet.clone()),
            attach("tgw-attach-b", "vpc-b".into(), "subnet-b".into()),
            attach("tgw-attach-c", "vpc-c".into(), "subnet-c".into()),
        ],
        route_tables: vec![TgwRouteTable {
            id: "tgw-rtb-1".into(),
            routes,
        }],
    });
    let tgw = || RouteTarget::TransitGateway("tgw-1".into());
    add_route(t, "rtb-public", "10.1.0.0/16", tgw());
    add_route(t, "rtb-public", "10.2.0.0/16", tgw());
    add_route(t, "rtb-private", "10.2.0.0/16", tgw());
    add_route(t, "rtb-b", "10.0.0.0/16", tgw());
    add_route(t, "rtb-c", "10.0.0.0/16", tgw());
}

fn tgw_route(cidr: &str, attachment: Option<&str>) -> TgwRoute {
    TgwRoute {
        destination: net(cidr),
        attachment: attachment.map(rid),
        propagated: false,
    }
}

/// Transit Gateway guide, "How transit gateways work": the gateway routes between the
/// VPCs attached to it by the route table associated with the sending attachment, and,
/// unlike peering, A reaches C through it; the reply needs the same routes back.
#[test]
fn transit_gateway_routes_between_attached_vpcs_and_back() {
    let p = peered(SgPeer::Cidr(net("10.0.0.0/16")), |t| {
        let (_, ids) = public_private_vpc_builder();
        with_tgw(t, &ids, &ids.public_subnet, vec![]);
    });
    let flow = Flow::tcp_syn(p.ids.web_ip, 40000, p.c_host, 22);
    let (fwd, back) = p.f.explain_round_trip(at(0), &eni(&p.ids.web_eni), &flow);
    assert_eq!(delivered(&fwd), Port::Eni("eni-c".into()), "{fwd}");
    assert!(
        fwd.hops.iter().any(|h| h.component.as_ref() == "tgw-rtb-1"
            && h.rule == Some(RuleRef::Route(net("10.2.0.0/16")))),
        "the hop names the table and route: {fwd}"
    );
    assert_eq!(delivered(&back.expect("a reply path")), eni(&p.ids.web_eni));
}

/// "A blackhole route drops traffic that matches the route"; the drop names the
/// transit gateway route table and the route, a more specific route winning.
#[test]
fn transit_gateway_blackhole_route_drops_with_table_and_route() {
    let p = peered(SgPeer::Cidr(net("10.0.0.0/16")), |t| {
        let (_, ids) = public_private_vpc_builder();
        with_tgw(
            t,
            &ids,
            &ids.public_subnet,
            vec![tgw_route("10.2.1.0/24", None)],
        );
    });
    let flow = Flow::tcp_syn(p.ids.web_ip, 40000, p.c_host, 22);
    let (v, _) = send(&mut { p.f }, at(0), &eni(&p.ids.web_eni), flow);
    assert_eq!(
        dropped(&v),
        DropReason::TgwBlackhole {
            tgw: "tgw-1".into(),
            table: "tgw-rtb-1".into(),
            route: net("10.2.1.0/24"),
        }
    );
    assert!(v.to_string().contains("blackhole"), "{v}");
}

/// An attachment associated with no route table: the gateway cannot route what it
/// sends, and the drop names the attachment.
#[test]
fn transit_gateway_attachment_without_association_drops() {
    let p = peered(SgPeer::Cidr(net("10.0.0.0/16")), |t| {
        let (_, ids) = public_private_vpc_builder();
        with_tgw(t, &ids, &ids.public_subnet, vec![]);
        t.transit_gateways.get_mut("tgw-1").unwrap().attachments[0].route_table = None;
    });
    let flow = Flow::tcp_syn(p.ids.web_ip, 40000, p.b_host, 22);
    assert_eq!(
        dropped(&p.f.explain(at(0), &eni(&p.ids.web_eni), &flow)),
        DropReason::TgwNoAssociation {
            tgw: "tgw-1".into(),
            attachment: "tgw-attach-a".into(),
        }
    );
}

/// "Network ACLs for transit gateways": for traffic from the instances to the transit
/// gateway, the transit gateway subnet's "inbound rules use the source IP address";
/// for traffic from the gateway to the instances its "outbound rules use the
/// destination IP address".
#[test]
fn transit_gateway_subnet_acls_apply_inbound_then_outbound() {
    // VPC A's attachment is in the private subnet, whose ACL denies everything.
    let p = peered(SgPeer::Cidr(net("10.0.0.0/16")), |t| {
        let (_, ids) = public_private_vpc_builder();
        with_tgw(t, &ids, &ids.private_subnet, vec![]);
        t.add_network_acl(deny_all_acl("acl-deny", &ids.vpc));
        t.subnets.get_mut(&ids.private_subnet).unwrap().network_acl = "acl-deny".into();
    });
    let flow = Flow::tcp_syn(p.ids.web_ip, 40000, p.b_host, 22);
    let (fwd, back) = p.f.explain_round_trip(at(0), &eni(&p.ids.web_eni), &flow);
    assert_eq!(
        dropped(&fwd),
        DropReason::NaclDeny {
            acl: "acl-deny".into(),
            subnet: p.ids.private_subnet.clone(),
            rule: None,
            direction: Direction::Inbound,
        },
        "{fwd}"
    );
    assert!(back.is_none());
    // From VPC B toward the web host, the packet leaves the gateway in the private
    // subnet: its outbound rules decide.
    let flow = Flow::tcp_syn(p.b_host, 40000, p.ids.web_ip, 22);
    assert_eq!(
        dropped(&p.f.explain(at(0), &eni(&"eni-b".into()), &flow)),
        DropReason::NaclDeny {
            acl: "acl-deny".into(),
            subnet: p.ids.private_subnet.clone(),
            rule: None,
            direction: Direction::Outbound,
        }
    );
}

/// Transit Gateway guide, "Amazon VPC attachments", Limits: "any resources in
/// Availability Zones where there is no transit gateway attachment cannot reach the
/// transit gateway. If there is a route to the transit gateway in a subnet route
/// table, traffic is forwarded to the transit gateway only when the transit gateway
/// has an attachment in a subnet in the same Availability Zone." VPC A's attachment
/// has a subnet in us-east-1a only: the app instance in us-east-1b cannot reach the
/// gateway, the web instance in us-east-1a can.
#[test]
fn transit_gateway_is_unreachable_from_a_zone_without_an_attachment_subnet() {
    let p = peered(SgPeer::Cidr(net("10.0.0.0/16")), |t| {
        let (_, ids) = public_private_vpc_builder();
        with_tgw(t, &ids, &ids.public_subnet, vec![]);
        t.subnets.get_mut(&ids.private_subnet).unwrap().zone = "us-east-1b".into();
    });
    let flow = Flow::tcp_syn(p.ids.app_ip, 40000, p.c_host, 22);
    let v = p.f.explain(at(0), &eni(&p.ids.app_eni), &flow);
    assert_eq!(
        dropped(&v),
        DropReason::TgwNoSubnetInZone {
            tgw: "tgw-1".into(),
            attachment: "tgw-attach-a".into(),
            zone: "us-east-1b".into(),
        }
    );
    assert!(v.to_string().contains("us-east-1b"), "{v}");
    let flow = Flow::tcp_syn(p.ids.web_ip, 40000, p.c_host, 22);
    assert_eq!(
        delivered(&p.f.explain(at(0), &eni(&p.ids.web_eni), &flow)),
        Port::Eni("eni-c".into())
    );
}

/// Transit Gateway guide, "How transit gateways work", Availability Zones: the
/// gateway keeps traffic in the zone it entered, so with an attachment subnet in each
/// zone, traffic from us-east-1b enters through the us-east-1b subnet (whose inbound
/// ACL rules apply) and traffic from us-east-1a through the us-east-1a one; it
/// crosses zones only to reach an attachment with no subnet in that zone (VPC C's
/// attachment, in us-east-1b only, still receives traffic from us-east-1a, and its
/// reply enters in us-east-1b and leaves in VPC A's subnet there).
#[test]
fn transit_gateway_traffic_enters_through_the_attachment_subnet_in_its_zone() {
    let p = peered(SgPeer::Cidr(net("10.0.0.0/16")), |t| {
        let (_, ids) = public_private_vpc_builder();
        with_tgw(t, &ids, &ids.public_subnet, vec![]);
        t.subnets.get_mut(&ids.private_subnet).unwrap().zone = "us-east-1b".into();
        t.subnets.get_mut("subnet-c").unwrap().zone = "us-east-1b".into();
        // VPC A's attachment also has a us-east-1b subnet, which refuses everything.
        t.add_network_acl(deny_all_acl("acl-deny", &ids.vpc));
        let mut tgw_b = Subnet::new(
            "subnet-tgw-b",
            &ids.vpc,
            net("10.0.9.0/24"),
            "rtb-private",
            "acl-deny",
        );
        tgw_b.zone = "us-east-1b".into();
        t.add_subnet(tgw_b);
        let a = &mut t.transit_gateways.get_mut("tgw-1").unwrap().attachments[0];
        a.subnets.push("subnet-tgw-b".into());
    });
    let from_b = Flow::tcp_syn(p.ids.app_ip, 40000, p.c_host, 22);
    assert_eq!(
        dropped(&p.f.explain(at(0), &eni(&p.ids.app_eni), &from_b)),
        DropReason::NaclDeny {
            acl: "acl-deny".into(),
            subnet: "subnet-tgw-b".into(),
            rule: None,
            direction: Direction::Inbound,
        },
        "from us-east-1b the packet enters through the us-east-1b subnet"
    );
    let from_a = Flow::tcp_syn(p.ids.web_ip, 40000, p.c_host, 22);
    let (fwd, back) = p.f.explain_round_trip(at(0), &eni(&p.ids.web_eni), &from_a);
    assert_eq!(delivered(&fwd), Port::Eni("eni-c".into()), "{fwd}");
    // The reply comes from us-east-1b and leaves the gateway in VPC A's us-east-1b
    // subnet, whose outbound rules refuse it.
    assert_eq!(
        dropped(&back.expect("a reply")),
        DropReason::NaclDeny {
            acl: "acl-deny".into(),
            subnet: "subnet-tgw-b".into(),
            rule: None,
            direction: Direction::Outbound,
        }
    );
}

/// EC2 User Guide, "Multiple IP addresses": a secondary private address belongs to its
/// interface: packets to it are delivered there, and the interface may send from it
/// (the source/destination check accepts it).
#[test]
fn secondary_private_addresses_reach_and_leave_their_interface() {
    let secondary = Ipv4Addr::new(10, 0, 2, 200);
    let (mut f, ids) = lab_with(|t, ids| {
        t.network_interfaces
            .get_mut(&ids.app_eni)
            .unwrap()
            .secondary_ips
            .push(secondary);
    });
    let to = Flow::tcp_syn(ids.web_ip, 40000, secondary, 8080);
    let (v, _) = send(&mut f, at(0), &eni(&ids.web_eni), to);
    assert_eq!(delivered(&v), eni(&ids.app_eni), "{v}");
    let from = Flow::tcp(secondary, 8080, ids.web_ip, 40000, TcpFlags::SYN_ACK);
    let (v, _) = send(&mut f, at(0), &eni(&ids.app_eni), from);
    assert_eq!(delivered(&v), eni(&ids.web_eni), "{v}");
}
