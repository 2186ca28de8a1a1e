//! IPv6 through the fabric, on the shared fixture made dual-stack: a /56 for the VPC,
//! a /64 per subnet, `::/0` to the internet gateway from the public subnet and to an
//! egress-only internet gateway from the private one. Each test quotes the AWS rule
//! (Amazon VPC User Guide).

use std::net::Ipv6Addr;
use std::sync::Arc;

use ipnet::Ipv6Net;
use smoltcp::time::Instant;
use vpclab_netstack::fixture::{FixtureIds, public_private_vpc_builder};
use vpclab_netstack::ipv6::{NaclEntry6, Route6, SgPeer6, SgRule6, Target6, V6Spec};
use vpclab_netstack::topology::rid;
use vpclab_netstack::*;

use super::{at, delivered, dropped};

const WEB: &str = "2001:db8:1:1::10";
const WEB2: &str = "2001:db8:1:1::11";
const APP: &str = "2001:db8:1:2::20";
const OUTSIDE: &str = "2001:db8:ffff::80";

fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn n6(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

fn icmpv6_any() -> Option<IcmpMatch> {
    Some(IcmpMatch::ANY)
}

/// The fixture with IPv6: what the model compiles for a dual-stack VPC.
fn dual_stack(edit: impl FnOnce(&mut TopologyBuilder, &FixtureIds)) -> (Fabric, FixtureIds) {
    let (b, ids) = dual_stack_builder(edit);
    (Fabric::new(Arc::new(b.build().unwrap())), ids)
}

/// [`dual_stack`]'s topology, before it is built (for tests that change it later).
fn dual_stack_builder(
    edit: impl FnOnce(&mut TopologyBuilder, &FixtureIds),
) -> (TopologyBuilder, FixtureIds) {
    let (mut b, ids) = public_private_vpc_builder();
    let mut v = V6Spec::default();
    v.vpc_blocks
        .insert(ids.vpc.clone(), vec![n6("2001:db8:1::/56")]);
    v.subnets
        .insert(ids.public_subnet.clone(), n6("2001:db8:1:1::/64"));
    v.subnets
        .insert(ids.private_subnet.clone(), n6("2001:db8:1:2::/64"));
    let local = Route6 {
        destination: n6("2001:db8:1::/56"),
        target: Target6::Local,
        state: RouteState::Active,
    };
    v.routes.insert(
        ids.public_rtb.clone(),
        vec![
            local.clone(),
            Route6 {
                destination: n6("::/0"),
                target: Target6::InternetGateway(ids.igw.clone()),
                state: RouteState::Active,
            },
        ],
    );
    v.routes.insert(
        ids.private_rtb.clone(),
        vec![
            local,
            Route6 {
                destination: n6("::/0"),
                target: Target6::EgressOnlyGateway(rid("eigw-fixture")),
                state: RouteState::Active,
            },
        ],
    );
    v.egress_only.insert(rid("eigw-fixture"), ids.vpc.clone());
    // "Default network ACL": rule 101 allows all IPv6 traffic, `*` denies the rest.
    let all = |n: u16, egress: bool, action: RuleAction| NaclEntry6 {
        rule_number: n,
        egress,
        protocol: Protocol::All,
        ports: None,
        icmp: None,
        cidr: n6("::/0"),
        action,
    };
    v.acl_entries.insert(
        ids.acl.clone(),
        vec![
            all(101, false, RuleAction::Allow),
            all(101, true, RuleAction::Allow),
            all(32767, false, RuleAction::Deny),
            all(32767, true, RuleAction::Deny),
        ],
    );
    let out = SgRule6 {
        id: None,
        protocol: Protocol::All,
        ports: None,
        icmp: None,
        peer: SgPeer6::Cidr(n6("::/0")),
    };
    let tcp = |port: u16, peer: SgPeer6| SgRule6 {
        id: None,
        protocol: Protocol::Tcp,
        ports: Some(PortRange::new(port, port)),
        icmp: None,
        peer,
    };
    let ping_from_vpc = SgRule6 {
        id: None,
        protocol: Protocol::Other(58),
        ports: None,
        icmp: icmpv6_any(),
        peer: SgPeer6::Cidr(n6("2001:db8:1::/56")),
    };
    v.sg_rules.insert(
        ids.web_sg.clone(),
        (
            vec![tcp(80, SgPeer6::Cidr(n6("::/0"))), ping_from_vpc.clone()],
            vec![out.clone()],
        ),
    );
    v.sg_rules.insert(
        ids.app_sg.clone(),
        (
            vec![ping_from_vpc, tcp(8080, SgPeer6::Group(ids.web_sg.clone()))],
            vec![out],
        ),
    );
    v.eni_addrs.insert(ids.web_eni.clone(), vec![a6(WEB)]);
    v.eni_addrs.insert(ids.web2_eni.clone(), vec![a6(WEB2)]);
    v.eni_addrs.insert(ids.app_eni.clone(), vec![a6(APP)]);
    b.v6 = v;
    edit(&mut b, &ids);
    (b, ids)
}

/// An IPv6 packet: fixed header, then `l4`.
fn packet(src: &str, dst: &str, next: u8, l4: &[u8]) -> Vec<u8> {
    let mut b = vec![0x60, 0, 0, 0];
    b.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    b.push(next);
    b.push(64);
    b.extend_from_slice(&a6(src).octets());
    b.extend_from_slice(&a6(dst).octets());
    b.extend_from_slice(l4);
    b
}

/// A TCP segment with these ports and flags (checksum left zero: the fabric does not
/// rewrite IPv6 packets, and the hosts' stacks are what verify it).
fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0; 8]);
    t.push(5 << 4);
    t.push(flags);
    t.extend_from_slice(&[0x10, 0, 0, 0, 0, 0]);
    packet(src, dst, 6, &t)
}

const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const ACK: u8 = 0x10;

/// An ICMPv6 echo request (128) or reply (129).
fn echo(src: &str, dst: &str, ty: u8, id: u16) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    packet(src, dst, 58, &m)
}

fn send(f: &mut Fabric, now: Instant, from: &Port, mut bytes: Vec<u8>) -> Verdict {
    f.process(now, from, &mut bytes)
}

/// "Security groups are stateful": dual-stack instances ping6 each other across
/// subnets when the group allows ICMPv6 from the VPC's block, and the reply returns.
#[test]
fn ping6_between_subnets_passes_the_groups_and_the_reply_is_tracked() {
    let (mut f, ids) = dual_stack(|_, _| {});
    let web = Port::Eni(ids.web_eni.clone());
    let app = Port::Eni(ids.app_eni.clone());
    let v = send(&mut f, at(1), &web, echo(WEB, APP, 128, 7));
    assert_eq!(delivered(&v), app);
    let back = send(&mut f, at(1), &app, echo(APP, WEB, 129, 7));
    assert_eq!(delivered(&back), web);
}

/// "Security groups … allow only": TCP 22 to the app instance has no IPv6 rule.
#[test]
fn a_port_without_an_ipv6_rule_is_refused_by_the_group() {
    let (mut f, ids) = dual_stack(|_, _| {});
    let web = Port::Eni(ids.web_eni.clone());
    let v = send(&mut f, at(1), &web, tcp(WEB, 40000, APP, 22, SYN));
    assert_eq!(
        dropped(&v),
        DropReason::SecurityGroupNoMatch {
            eni: ids.app_eni.clone(),
            direction: Direction::Inbound,
        }
    );
    // A rule naming the web group admits the web instance's IPv6 address.
    let ok = send(&mut f, at(1), &web, tcp(WEB, 40001, APP, 8080, SYN));
    assert_eq!(delivered(&ok), Port::Eni(ids.app_eni.clone()));
}

/// "Network ACLs … rules are evaluated in order, starting with the lowest numbered
/// rule": a deny rule 90 for IPv6 TCP 80 wins over the allow rule 101.
#[test]
fn an_ipv6_acl_rule_denies_before_rule_101() {
    let (mut f, ids) = dual_stack(|b, ids| {
        b.v6.acl_entries
            .get_mut(&ids.acl)
            .unwrap()
            .push(NaclEntry6 {
                rule_number: 90,
                egress: false,
                protocol: Protocol::Tcp,
                ports: Some(PortRange::new(80, 80)),
                icmp: None,
                cidr: n6("::/0"),
                action: RuleAction::Deny,
            });
    });
    let v = send(
        &mut f,
        at(1),
        &Port::Internet,
        tcp(OUTSIDE, 50000, WEB, 80, SYN),
    );
    assert_eq!(
        dropped(&v),
        DropReason::NaclDeny {
            acl: ids.acl.clone(),
            subnet: ids.public_subnet.clone(),
            rule: Some(90),
            direction: Direction::Inbound,
        }
    );
    // Without an IPv6 rule at all, the IPv6 `*` rule denies.
    let (mut g, ids) = dual_stack(|b, ids| {
        b.v6.acl_entries
            .get_mut(&ids.acl)
            .unwrap()
            .retain(|e| e.rule_number != 101);
    });
    let v = send(
        &mut g,
        at(1),
        &Port::Internet,
        tcp(OUTSIDE, 50000, WEB, 80, SYN),
    );
    assert!(
        matches!(dropped(&v), DropReason::NaclDeny { rule: None, .. }),
        "{v}"
    );
    let _ = ids;
}

/// "An internet gateway … for IPv6 … no network address translation": the public
/// instance is reachable at its own IPv6 address from the internet, and reaches out.
#[test]
fn the_internet_gateway_carries_ipv6_both_ways_without_translation() {
    let (mut f, ids) = dual_stack(|_, _| {});
    let web = Port::Eni(ids.web_eni.clone());
    let mut syn = tcp(OUTSIDE, 50000, WEB, 80, SYN);
    let mut copy = syn.clone();
    let v = f.process(at(1), &Port::Internet, &mut syn);
    assert_eq!(delivered(&v), web);
    // The gateway is a hop (the hop limit loses one), and nothing else changes.
    copy[7] -= 1;
    assert_eq!(syn, copy, "IPv6 packets cross the gateway untranslated");
    let out = send(&mut f, at(1), &web, tcp(WEB, 41000, OUTSIDE, 443, SYN));
    assert_eq!(delivered(&out), Port::Internet);
}

/// "Egress-only internet gateways … allow outbound communication over IPv6 from
/// instances in your VPC to the internet, and prevent the internet from initiating an
/// IPv6 connection with your instances."
#[test]
fn the_egress_only_gateway_lets_replies_in_and_refuses_inbound_connections() {
    // Without an internet gateway, the egress-only gateway is the VPC's only way out.
    let (mut f, ids) = dual_stack(|b, ids| {
        b.internet_gateways.get_mut(&ids.igw).unwrap().vpc = None;
    });
    let app = Port::Eni(ids.app_eni.clone());
    let out = send(&mut f, at(1), &app, tcp(APP, 42000, OUTSIDE, 443, SYN));
    assert_eq!(delivered(&out), Port::Internet);
    let reply = send(
        &mut f,
        at(1),
        &Port::Internet,
        tcp(OUTSIDE, 443, APP, 42000, SYN_ACK),
    );
    assert_eq!(delivered(&reply), app);
    let inbound = send(
        &mut f,
        at(2),
        &Port::Internet,
        tcp(OUTSIDE, 50000, APP, 8080, SYN),
    );
    let reason = dropped(&inbound);
    assert_eq!(
        reason,
        DropReason::EgressOnlyInbound {
            eigw: rid("eigw-fixture"),
            dst: a6(APP),
        }
    );
    assert!(reason.to_string().contains("eigw-fixture"), "{reason}");
    // The same decision with its hops, for `explain`.
    let p = vpclab_netstack::ipv6::parse6(&tcp(OUTSIDE, 50001, APP, 8080, SYN)).unwrap();
    let explained = f.explain6(at(2), &Port::Internet, &p);
    assert_eq!(explained.drop_reason(), Some(&reason));
}

/// `explain_round_trip6`, what `vpclab trace -6` shows: "an egress-only internet gateway
/// … allows outbound communication over IPv6 … and prevents the internet from initiating
/// an IPv6 connection". The walk out passes the gateway and its reply comes back in as a
/// tracked connection; a connection from the internet is refused at the gateway; and
/// nothing of either walk stays in the fabric.
#[test]
fn the_ipv6_round_trip_sees_the_connection_its_forward_packet_would_track() {
    let (f, ids) = dual_stack(|b, ids| {
        b.internet_gateways.get_mut(&ids.igw).unwrap().vpc = None;
    });
    let app = Port::Eni(ids.app_eni.clone());
    let out = vpclab_netstack::ipv6::Pkt6::probe(a6(APP), a6(OUTSIDE), 6, 42000, 443);
    let (forward, back) = f.explain_round_trip6(at(1), &app, &out);
    assert_eq!(delivered(&forward), Port::Internet);
    assert!(
        forward
            .hops
            .iter()
            .any(|h| &*h.component == "eigw-fixture" && h.action == HopAction::Ipv6Gateway),
        "{:?}",
        forward.hops
    );
    let back = back.expect("a delivered packet has a reply");
    assert_eq!(delivered(&back), app);
    assert!(
        back.hops.iter().any(|h| h.rule == Some(RuleRef::Tracked)),
        "{:?}",
        back.hops
    );
    // The same reply on its own, with no forward packet before it, is refused: the
    // round trip left no connection behind.
    let lone = f.explain6(at(1), &Port::Internet, &out.reply());
    assert_eq!(
        lone.drop_reason(),
        Some(&DropReason::EgressOnlyInbound {
            eigw: rid("eigw-fixture"),
            dst: a6(APP),
        })
    );
    let (inbound, none) = f.explain_round_trip6(
        at(1),
        &Port::Internet,
        &vpclab_netstack::ipv6::Pkt6::probe(a6(OUTSIDE), a6(APP), 6, 50000, 22),
    );
    assert!(none.is_none());
    assert!(matches!(
        inbound.drop_reason(),
        Some(DropReason::EgressOnlyInbound { .. })
    ));
}

/// "The most specific route that matches the traffic determines how to route it."
#[test]
fn ipv6_routes_take_the_longest_prefix() {
    let (mut f, ids) = dual_stack(|b, ids| {
        b.v6.routes.get_mut(&ids.public_rtb).unwrap().push(Route6 {
            destination: n6("2001:db8:ffff::/48"),
            target: Target6::Blackhole,
            state: RouteState::Blackhole,
        });
    });
    let web = Port::Eni(ids.web_eni.clone());
    let v = send(&mut f, at(1), &web, tcp(WEB, 41000, OUTSIDE, 443, SYN));
    assert_eq!(
        dropped(&v),
        DropReason::BlackholeV6 {
            table: ids.public_rtb.clone(),
            route: n6("2001:db8:ffff::/48"),
        }
    );
    let other = send(
        &mut f,
        at(1),
        &web,
        tcp(WEB, 41001, "2001:db8:eeee::1", 443, SYN),
    );
    assert_eq!(delivered(&other), Port::Internet);
    // Same subnet: no route table, no ACL.
    let peer = send(&mut f, at(1), &web, echo(WEB, WEB2, 128, 9));
    assert_eq!(delivered(&peer), Port::Eni(ids.web2_eni.clone()));
}

/// Source check: an interface sends only from its own IPv6 addresses.
#[test]
fn a_spoofed_ipv6_source_is_dropped() {
    let (mut f, ids) = dual_stack(|_, _| {});
    let web = Port::Eni(ids.web_eni.clone());
    let v = send(&mut f, at(1), &web, echo(APP, WEB2, 128, 1));
    assert!(
        matches!(dropped(&v), DropReason::SourceDestCheckV6 { .. }),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------
// Host stacks speaking IPv6 through the fabric: what an instance's own stack does.
// ---------------------------------------------------------------------------------

mod hosts {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use vpclab_netstack::host::{Host, HostConfig, Net};

    use super::*;

    /// The dual-stack fixture with the web and app instances' stacks attached.
    fn world() -> (Net, Host, Host, Host) {
        let (f, ids) = dual_stack(|_, _| {});
        let net = Net::new(f);
        let stack = |eni: &ResId, v4: &str, v6: &str, subnet: &str| {
            let cfg = HostConfig::vpc(Port::Eni(eni.clone()), v4.parse().unwrap())
                .with_vpc_ipv6(&[a6(v6)], n6(subnet));
            net.add_host(cfg).unwrap()
        };
        let web = stack(&ids.web_eni, "10.0.1.10/24", WEB, "2001:db8:1:1::/64");
        let app = stack(&ids.app_eni, "10.0.2.20/24", APP, "2001:db8:1:2::/64");
        let any = net.add_host(HostConfig::catch_all()).unwrap();
        (net, web, app, any)
    }

    fn v6(s: &str, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(a6(s)), port)
    }

    /// A dual-stack instance's stack holds its IPv6 address beside its IPv4 one, and
    /// ping6 between two instances crosses the groups both ways (the app group allows
    /// ICMPv6 from the VPC's /56).
    #[tokio::test(start_paused = true)]
    async fn dual_stack_hosts_ping6_each_other_through_the_fabric() {
        let (_net, web, app, _any) = world();
        assert_eq!(web.addrs6(), vec![n6("2001:db8:1:1::10/64")]);
        let (_, hop_limit) = web
            .ping_ttl(a6(APP), Duration::from_secs(2))
            .await
            .expect("echo reply over IPv6");
        assert_eq!(hop_limit, Some(64), "the router is invisible inside a VPC");
        app.ping(a6(WEB), Duration::from_secs(2)).await.unwrap();
    }

    /// TCP over IPv6: the web instance reaches the app's port 8080 (allowed from the
    /// web group's members), and both ends see each other's IPv6 address.
    #[tokio::test(start_paused = true)]
    async fn tcp_over_ipv6_carries_bytes_and_shows_ipv6_peers() {
        let (_net, web, app, _any) = world();
        let listener = app.listen(8080).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, peer) = listener.accept().await.unwrap();
            s.write_all(b"hello over v6").await.unwrap();
            s.shutdown().await.unwrap();
            peer
        });
        let mut c = web.connect(v6(APP, 8080)).await.unwrap();
        assert_eq!(c.local_addr().ip(), IpAddr::V6(a6(WEB)));
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "hello over v6");
        assert_eq!(server.await.unwrap().ip(), IpAddr::V6(a6(WEB)));
    }

    /// A port with no IPv6 rule in the group: the SYN is dropped, the connect times
    /// out (as on AWS), where a UDP datagram allowed by the group gets its answer.
    #[tokio::test(start_paused = true)]
    async fn a_filtered_ipv6_port_times_out_and_udp_over_ipv6_is_answered() {
        let (_net, web, _app, _any) = world();
        let e = web
            .connect_timeout(v6(APP, 22), Duration::from_secs(3))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        // UDP over IPv6: the web instance asks a DNS server on the internet through the
        // internet gateway; the answer comes back as a tracked reply.
        let (net, web) = (_net, web);
        let dns = net
            .add_host(
                HostConfig::internet("203.0.113.53".parse().unwrap())
                    .with_ipv6("3fff::53".parse().unwrap()),
            )
            .unwrap();
        let server = dns.bind_udp(53).unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = server.recv_from_any(&mut buf).await {
                let _ = server.send_to(&buf[..n], from).await;
            }
        });
        let client = web.bind_udp(0).unwrap();
        client.send_to(b"query", v6("3fff::53", 53)).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) =
            tokio::time::timeout(Duration::from_secs(2), client.recv_from_any(&mut buf))
                .await
                .expect("an answer over IPv6")
                .unwrap();
        assert_eq!(&buf[..n], b"query");
        assert_eq!(from, v6("3fff::53", 53));
    }

    /// "Egress-only internet gateways": the private instance reaches an internet host
    /// over IPv6 (the catch-all host answers every global address), and a connection
    /// the internet starts toward it is dropped at the gateway.
    #[tokio::test(start_paused = true)]
    async fn through_the_egress_only_gateway_out_works_and_in_is_refused() {
        let (net, _web, app, any) = world();
        let site = "2606:4700:4700::1111";
        let listener = any.listen(80).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let mut c = app
            .connect(v6(site, 80))
            .await
            .expect("out through the EIGW");
        let mut got = [0u8; 8];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1");
        app.ping(a6(site), Duration::from_secs(2)).await.unwrap();

        let _srv = app.listen(22).unwrap();
        let outsider = net
            .add_host(
                HostConfig::internet("203.0.113.99".parse().unwrap())
                    .with_ipv6("3fff::99".parse().unwrap()),
            )
            .unwrap();
        let e = outsider
            .connect_timeout(v6(APP, 22), Duration::from_secs(3))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    }
}

// ---------------------------------------------------------------------------------
// IPv6 over VPC peering (VPC Peering Guide) and the asymmetric path through an
// egress-only gateway (Amazon VPC User Guide, "Egress-only internet gateway basics").
// ---------------------------------------------------------------------------------

const B_HOST: &str = "2001:db8:2:1::10";
const C_HOST: &str = "2001:db8:3:1::10";

/// The dual-stack fixture (VPC A, 2001:db8:1::/56) plus VPCs B (2001:db8:2::/56) and
/// C (2001:db8:3::/56), each with one subnet and one dual-stack host whose group
/// admits ICMPv6 from `ping_from`. Peerings pcx-ab and pcx-bc are active; the IPv6
/// routes to them are up to each test.
fn peered6(ping_from: SgPeer6, edit: impl FnOnce(&mut TopologyBuilder)) -> (Fabric, FixtureIds) {
    dual_stack(|t, ids| {
        for (tag, v4, s4, v6, s6) in [
            (
                "b",
                "10.1.0.0/16",
                "10.1.1.0/24",
                "2001:db8:2::/56",
                "2001:db8:2:1::/64",
            ),
            (
                "c",
                "10.2.0.0/16",
                "10.2.1.0/24",
                "2001:db8:3::/56",
                "2001:db8:3:1::/64",
            ),
        ] {
            let vpc = format!("vpc-{tag}");
            let v = vpc.as_str();
            t.add_vpc(Vpc::new(v, v4.parse().unwrap()));
            t.add_network_acl(NetworkAcl::default_allow(&format!("acl-{tag}"), v));
            t.add_route_table(RouteTable {
                id: format!("rtb-{tag}").as_str().into(),
                vpc: v.into(),
                routes: vec![Route::new(v4.parse().unwrap(), RouteTarget::Local)],
            });
            t.add_subnet(Subnet::new(
                &format!("subnet-{tag}"),
                v,
                s4.parse().unwrap(),
                &format!("rtb-{tag}"),
                &format!("acl-{tag}"),
            ));
            t.add_security_group(SecurityGroup::new(&format!("sg-{tag}"), v));
            let host4: std::net::Ipv4Addr = s4
                .parse::<ipnet::Ipv4Net>()
                .unwrap()
                .hosts()
                .nth(9)
                .unwrap();
            t.add_network_interface(NetworkInterface::new(
                &format!("eni-{tag}"),
                &format!("subnet-{tag}"),
                host4,
                &[&format!("sg-{tag}")],
            ));
            t.v6.vpc_blocks.insert(rid(v), vec![n6(v6)]);
            t.v6.subnets.insert(rid(&format!("subnet-{tag}")), n6(s6));
            t.v6.routes.insert(
                rid(&format!("rtb-{tag}")),
                vec![Route6 {
                    destination: n6(v6),
                    target: Target6::Local,
                    state: RouteState::Active,
                }],
            );
            let all = |egress: bool, n: u16, action| NaclEntry6 {
                rule_number: n,
                egress,
                protocol: Protocol::All,
                ports: None,
                icmp: None,
                cidr: n6("::/0"),
                action,
            };
            t.v6.acl_entries.insert(
                rid(&format!("acl-{tag}")),
                vec![
                    all(false, 101, RuleAction::Allow),
                    all(true, 101, RuleAction::Allow),
                    all(false, 32767, RuleAction::Deny),
                    all(true, 32767, RuleAction::Deny),
                ],
            );
            t.v6.sg_rules.insert(
                rid(&format!("sg-{tag}")),
                (
                    vec![SgRule6 {
                        id: None,
                        protocol: Protocol::Other(58),
                        ports: None,
                        icmp: icmpv6_any(),
                        peer: ping_from.clone(),
                    }],
                    vec![SgRule6 {
                        id: None,
                        protocol: Protocol::All,
                        ports: None,
                        icmp: None,
                        peer: SgPeer6::Cidr(n6("::/0")),
                    }],
                ),
            );
            let host = s6.parse::<Ipv6Net>().unwrap().network().segments();
            let mut h = host;
            h[7] = 0x10;
            t.v6.eni_addrs
                .insert(rid(&format!("eni-{tag}")), vec![Ipv6Addr::from(h)]);
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
        edit(t);
    })
}

fn route6(t: &mut TopologyBuilder, table: &str, dest: &str, target: Target6) {
    t.v6.routes.entry(rid(table)).or_default().push(Route6 {
        destination: n6(dest),
        target,
        state: RouteState::Active,
    });
}

fn pcx6(id: &str) -> Target6 {
    Target6::Peering(rid(id))
}

/// "If the VPCs in the VPC peering connection have associated IPv6 CIDR blocks, you
/// can add routes that enable communication with the peer VPC over IPv6": with IPv6
/// routes to the peering on both sides, ping6 crosses and its reply comes back.
#[test]
fn ipv6_crosses_a_peering_with_routes_on_both_sides() {
    let (mut f, ids) = peered6(SgPeer6::Cidr(n6("2001:db8:1::/56")), |t| {
        route6(t, "rtb-public", "2001:db8:2::/56", pcx6("pcx-ab"));
        route6(t, "rtb-b", "2001:db8:1::/56", pcx6("pcx-ab"));
    });
    let web = Port::Eni(ids.web_eni.clone());
    let b = Port::Eni(rid("eni-b"));
    let v = send(&mut f, at(1), &web, echo(WEB, B_HOST, 128, 5));
    assert_eq!(delivered(&v), b);
    let p = vpclab_netstack::ipv6::parse6(&echo(WEB, B_HOST, 128, 6)).unwrap();
    let explained = f.explain6(at(1), &web, &p);
    assert!(
        explained
            .hops
            .iter()
            .any(|h| h.component.as_ref() == "pcx-ab"
                && matches!(h.action, HopAction::PeeringCross { .. })),
        "{explained}"
    );
    let back = send(&mut f, at(1), &b, echo(B_HOST, WEB, 129, 5));
    assert_eq!(delivered(&back), web);
}

/// "The owner of each VPC … must manually add a route": without the IPv6 route back in
/// VPC B, the request arrives and the reply has no route.
#[test]
fn an_ipv6_peering_route_on_one_side_only_loses_the_reply() {
    let (mut f, ids) = peered6(SgPeer6::Cidr(n6("2001:db8:1::/56")), |t| {
        route6(t, "rtb-public", "2001:db8:2::/56", pcx6("pcx-ab"));
    });
    let web = Port::Eni(ids.web_eni.clone());
    let b = Port::Eni(rid("eni-b"));
    assert_eq!(
        delivered(&send(&mut f, at(1), &web, echo(WEB, B_HOST, 128, 5))),
        b
    );
    let back = send(&mut f, at(1), &b, echo(B_HOST, WEB, 129, 5));
    assert_eq!(
        dropped(&back),
        DropReason::NoRouteV6 {
            table: rid("rtb-b"),
            dst: a6(WEB),
        }
    );
}

/// "VPC peering does not support transitive peering relationships": A reaches C's IPv6
/// block only through B, so pcx-ab refuses it, whatever the routes say.
#[test]
fn ipv6_over_peering_is_not_transitive() {
    let (mut f, ids) = peered6(SgPeer6::Cidr(n6("::/0")), |t| {
        route6(t, "rtb-public", "2001:db8:3::/56", pcx6("pcx-ab"));
        route6(t, "rtb-b", "2001:db8:3::/56", pcx6("pcx-bc"));
    });
    let web = Port::Eni(ids.web_eni.clone());
    let v = send(&mut f, at(1), &web, echo(WEB, C_HOST, 128, 5));
    let reason = dropped(&v);
    assert_eq!(
        reason,
        DropReason::PeeringNotTransitiveV6 {
            peering: rid("pcx-ab"),
            vpc: rid("vpc-b"),
            addr: a6(C_HOST),
            destination: true,
        }
    );
    assert!(reason.to_string().contains("not transitive"), "{reason}");
    // A route to a peering that does not connect this VPC is a blackhole.
    let (mut g, ids) = peered6(SgPeer6::Cidr(n6("::/0")), |t| {
        route6(t, "rtb-public", "2001:db8:3::/56", pcx6("pcx-bc"));
    });
    let v = send(
        &mut g,
        at(1),
        &Port::Eni(ids.web_eni.clone()),
        echo(WEB, C_HOST, 128, 5),
    );
    assert!(matches!(dropped(&v), DropReason::BlackholeV6 { .. }), "{v}");
}

/// "You can reference a security group of the peer VPC as a source or destination for
/// ingress or egress rules": a rule naming the peer's group admits its members' IPv6
/// addresses, and no other.
#[test]
fn a_rule_naming_the_peer_group_admits_its_members_over_ipv6() {
    let (mut f, ids) = peered6(SgPeer6::Group(rid("sg-web")), |t| {
        route6(t, "rtb-public", "2001:db8:2::/56", pcx6("pcx-ab"));
        route6(t, "rtb-private", "2001:db8:2::/56", pcx6("pcx-ab"));
        route6(t, "rtb-b", "2001:db8:1::/56", pcx6("pcx-ab"));
    });
    let web = Port::Eni(ids.web_eni.clone());
    let app = Port::Eni(ids.app_eni.clone());
    let v = send(&mut f, at(1), &web, echo(WEB, B_HOST, 128, 5));
    assert_eq!(delivered(&v), Port::Eni(rid("eni-b")));
    let refused = send(&mut f, at(1), &app, echo(APP, B_HOST, 128, 5));
    assert_eq!(
        dropped(&refused),
        DropReason::SecurityGroupNoMatch {
            eni: rid("eni-b"),
            direction: Direction::Inbound,
        }
    );
}

/// "An egress-only internet gateway is stateful: it forwards traffic from the
/// instances in the subnet to the internet …, and then sends the response back", and
/// it prevents "resources on the internet from initiating communication". A VPC with
/// both gateways: a connection from the internet to the private instance comes in
/// through the internet gateway, but the private subnet routes `::/0` to the
/// egress-only gateway, which refuses to send the reply out, so the connection fails.
/// The same instance's own connections out through that gateway still work.
#[test]
fn a_reply_routed_to_the_egress_only_gateway_is_dropped_there() {
    let (mut f, ids) = dual_stack(|b, ids| {
        b.v6.sg_rules.get_mut(&ids.app_sg).unwrap().0.push(SgRule6 {
            id: None,
            protocol: Protocol::Tcp,
            ports: Some(PortRange::new(8080, 8080)),
            icmp: None,
            peer: SgPeer6::Cidr(n6("::/0")),
        });
    });
    let app = Port::Eni(ids.app_eni.clone());
    // `explain_round_trip6` shows it before anything is sent: the SYN arrives, its
    // reply is dropped at the egress-only gateway.
    let p = vpclab_netstack::ipv6::parse6(&tcp(OUTSIDE, 50000, APP, 8080, SYN)).unwrap();
    let (fwd, back) = f.explain_round_trip6(at(1), &Port::Internet, &p);
    assert_eq!(delivered(&fwd), app);
    let back = back.expect("a reply path");
    assert!(
        matches!(dropped(&back), DropReason::EgressOnlyNotInitiated { .. }),
        "{back}"
    );
    // The SYN enters through the internet gateway and reaches the instance.
    let syn = send(
        &mut f,
        at(1),
        &Port::Internet,
        tcp(OUTSIDE, 50000, APP, 8080, SYN),
    );
    assert_eq!(delivered(&syn), app);
    // Its SYN-ACK follows the subnet's route to the egress-only gateway: dropped.
    let reply = send(&mut f, at(1), &app, tcp(APP, 8080, OUTSIDE, 50000, SYN_ACK));
    let reason = dropped(&reply);
    assert_eq!(
        reason,
        DropReason::EgressOnlyNotInitiated {
            eigw: rid("eigw-fixture"),
            src: a6(APP),
            dst: a6(OUTSIDE),
        }
    );
    assert!(reason.to_string().contains("eigw-fixture"), "{reason}");
    // The instance's own connection out through the same gateway, and its reply in.
    let out = send(&mut f, at(2), &app, tcp(APP, 42000, OUTSIDE, 443, SYN));
    assert_eq!(delivered(&out), Port::Internet);
    let back = send(
        &mut f,
        at(2),
        &Port::Internet,
        tcp(OUTSIDE, 443, APP, 42000, SYN_ACK),
    );
    assert_eq!(delivered(&back), app);
    let more = send(&mut f, at(2), &app, tcp(APP, 42000, OUTSIDE, 443, 0x10));
    assert_eq!(delivered(&more), Port::Internet);
    // The public subnet routes `::/0` to the internet gateway: the same inbound
    // connection to the web instance gets its reply out.
    let web = Port::Eni(ids.web_eni.clone());
    assert_eq!(
        delivered(&send(
            &mut f,
            at(3),
            &Port::Internet,
            tcp(OUTSIDE, 50001, WEB, 80, SYN)
        )),
        web
    );
    assert_eq!(
        delivered(&send(
            &mut f,
            at(3),
            &web,
            tcp(WEB, 80, OUTSIDE, 50001, SYN_ACK)
        )),
        Port::Internet
    );
}

/// A route to an internet gateway that is not attached to the VPC is a blackhole for
/// IPv6 as for IPv4.
#[test]
fn an_ipv6_route_to_a_detached_internet_gateway_is_a_blackhole() {
    let (mut f, ids) = dual_stack(|b, ids| {
        b.internet_gateways.get_mut(&ids.igw).unwrap().vpc = None;
    });
    let web = Port::Eni(ids.web_eni.clone());
    let v = send(&mut f, at(1), &web, tcp(WEB, 41000, OUTSIDE, 443, SYN));
    assert_eq!(
        dropped(&v),
        DropReason::BlackholeV6 {
            table: ids.public_rtb.clone(),
            route: n6("::/0"),
        }
    );
}

/// Regression (found by the IPv6 reference-model property in tests/fabric_model.rs): an
/// IPv6 packet from an interface the topology does not know (a deleted one) is refused
/// as coming from an unknown port, as an IPv4 one is, not as a security-group drop.
#[test]
fn an_ipv6_packet_from_an_unknown_interface_comes_from_an_unknown_port() {
    let (mut f, _) = dual_stack(|_, _| {});
    let v = send(
        &mut f,
        at(1),
        &Port::Eni(rid("eni-gone")),
        echo(WEB, APP, 128, 1),
    );
    assert_eq!(dropped(&v), DropReason::UnknownPort);
}

/// VPC Flow Logs record IPv6 flows with IPv6 `srcaddr`/`dstaddr`: an interface's ICMPv6
/// echo out and its reply in are ACCEPT records with the IPv6 addresses, and a packet
/// its group refuses is an ingress REJECT on the receiving interface.
#[test]
fn flow_logs_record_ipv6_flows_with_their_ipv6_addresses() {
    use std::net::IpAddr;
    let (mut f, ids) = dual_stack(|_, _| {});
    f.set_flow_logged([ids.web_eni.clone(), ids.app_eni.clone()]);
    let web = Port::Eni(ids.web_eni.clone());
    let app = Port::Eni(ids.app_eni.clone());
    assert_eq!(
        delivered(&send(&mut f, at(1), &web, echo(WEB, APP, 128, 7))),
        app
    );
    assert_eq!(
        delivered(&send(&mut f, at(1), &app, echo(APP, WEB, 129, 7))),
        web
    );
    // TCP 22 to the app instance has no IPv6 rule: refused by its group.
    assert!(!send(&mut f, at(1), &web, tcp(WEB, 40000, APP, 22, SYN)).is_delivered());
    let d = f.drain_flow_records();
    let find = |eni: &ResId, egress: bool, src: &str, proto: u8| {
        d.records
            .iter()
            .find(|r| {
                &r.eni == eni
                    && r.key.egress == egress
                    && r.key.src == IpAddr::V6(a6(src))
                    && r.key.proto == proto
            })
            .unwrap_or_else(|| panic!("no record for {eni} {egress} {src}: {:?}", d.records))
    };
    let out = find(&ids.web_eni, true, WEB, 58);
    assert!(out.key.accept && out.key.is_ipv6());
    assert_eq!(out.key.dst, IpAddr::V6(a6(APP)));
    assert_eq!(out.counters.packets, 1);
    assert!(find(&ids.app_eni, false, WEB, 58).key.accept);
    assert!(find(&ids.app_eni, true, APP, 58).key.accept);
    assert!(find(&ids.web_eni, false, APP, 58).key.accept);
    let refused = find(&ids.app_eni, false, WEB, 6);
    assert!(!refused.key.accept, "{refused:?}");
    assert_eq!(refused.key.dport, 22);
    // The sender's own record of that SYN: it left the interface (ACCEPT egress).
    assert!(find(&ids.web_eni, true, WEB, 6).key.accept);
}

/// Established IPv6 flows replay a memoised decision (the flow cache); a rule change
/// must still reach them as AWS documents. "Security groups are stateful … If you
/// remove a security group rule, … existing tracked connections are not
/// interrupted" (Amazon VPC User Guide, "Security group connection tracking"), while
/// network ACLs "are stateless", so a new deny rule stops the next packet.
#[test]
fn a_rule_change_reaches_an_established_ipv6_flow_as_aws_documents() {
    let (b, ids) = dual_stack_builder(|_, _| {});
    let mut f = Fabric::new(Arc::new(b.clone().build().unwrap()));
    let web = Port::Eni(ids.web_eni.clone());
    let app = Port::Eni(ids.app_eni.clone());
    assert_eq!(
        delivered(&send(&mut f, at(1), &web, tcp(WEB, 40000, APP, 8080, SYN))),
        app
    );
    assert_eq!(
        delivered(&send(
            &mut f,
            at(1),
            &app,
            tcp(APP, 8080, WEB, 40000, SYN_ACK)
        )),
        web
    );
    for _ in 0..3 {
        let v = send(&mut f, at(1), &web, tcp(WEB, 40000, APP, 8080, ACK));
        assert_eq!(delivered(&v), app);
    }
    // The app group's IPv6 rules are all removed: the tracked connection goes on, a
    // new one is refused.
    let mut no_rules = b.clone();
    no_rules.v6.sg_rules.get_mut(&ids.app_sg).unwrap().0.clear();
    f.set_topology(Arc::new(no_rules.clone().build().unwrap()));
    for _ in 0..2 {
        let v = send(&mut f, at(2), &web, tcp(WEB, 40000, APP, 8080, ACK));
        assert_eq!(delivered(&v), app, "a tracked connection outlives its rule");
    }
    let v = send(&mut f, at(2), &web, tcp(WEB, 40001, APP, 8080, SYN));
    assert_eq!(
        dropped(&v),
        DropReason::SecurityGroupNoMatch {
            eni: ids.app_eni.clone(),
            direction: Direction::Inbound,
        }
    );
    // A network ACL deny rule (number 50, before 101) for inbound TCP: the very next
    // packet of the established flow is dropped.
    let mut denied = no_rules;
    denied
        .v6
        .acl_entries
        .get_mut(&ids.acl)
        .unwrap()
        .push(NaclEntry6 {
            rule_number: 50,
            egress: false,
            protocol: Protocol::Tcp,
            ports: None,
            icmp: None,
            cidr: n6("::/0"),
            action: RuleAction::Deny,
        });
    f.set_topology(Arc::new(denied.build().unwrap()));
    let v = send(&mut f, at(3), &web, tcp(WEB, 40000, APP, 8080, ACK));
    assert_eq!(
        dropped(&v),
        DropReason::NaclDeny {
            acl: ids.acl.clone(),
            subnet: ids.private_subnet.clone(),
            rule: Some(50),
            direction: Direction::Inbound,
        }
    );
    // Without the deny rule (and still without group rules), the tracked connection
    // passes again, replayed from the cache after its first packet; once it idles out
    // (350 s) the next packet is a new flow that no rule admits.
    let mut none = dual_stack_builder(|_, _| {}).0;
    none.v6.sg_rules.get_mut(&ids.app_sg).unwrap().0.clear();
    f.set_topology(Arc::new(none.build().unwrap()));
    for _ in 0..3 {
        let v = send(&mut f, at(3), &web, tcp(WEB, 40000, APP, 8080, ACK));
        assert_eq!(delivered(&v), app);
    }
    let v = send(&mut f, at(400), &web, tcp(WEB, 40000, APP, 8080, ACK));
    assert!(
        matches!(dropped(&v), DropReason::SecurityGroupNoMatch { .. }),
        "{v}"
    );
}

/// Flow logs count every packet of an established IPv6 flow, replayed decisions
/// included: "The flow log record … packets: The number of packets transferred
/// during the flow" (Amazon VPC User Guide, "Flow log records").
#[test]
fn flow_logs_count_every_packet_of_an_established_ipv6_flow() {
    use std::net::IpAddr;
    let (mut f, ids) = dual_stack(|_, _| {});
    f.set_flow_logged([ids.web_eni.clone(), ids.app_eni.clone()]);
    let web = Port::Eni(ids.web_eni.clone());
    let app = Port::Eni(ids.app_eni.clone());
    let syn = tcp(WEB, 40000, APP, 8080, SYN);
    let ack = tcp(WEB, 40000, APP, 8080, ACK);
    assert!(send(&mut f, at(1), &web, syn.clone()).is_delivered());
    assert!(send(&mut f, at(1), &app, tcp(APP, 8080, WEB, 40000, SYN_ACK)).is_delivered());
    for _ in 0..5 {
        assert!(send(&mut f, at(1), &web, ack.clone()).is_delivered());
    }
    let bytes = (syn.len() + 5 * ack.len()) as u64;
    let d = f.drain_flow_records();
    let find = |eni: &ResId, egress: bool| {
        d.records
            .iter()
            .find(|r| &r.eni == eni && r.key.egress == egress && r.key.src == IpAddr::V6(a6(WEB)))
            .unwrap_or_else(|| panic!("no record for {eni} {egress}: {:?}", d.records))
    };
    for (eni, egress) in [(&ids.web_eni, true), (&ids.app_eni, false)] {
        let r = find(eni, egress);
        assert!(r.key.accept);
        assert_eq!((r.counters.packets, r.counters.bytes), (6, bytes), "{r:?}");
        assert_eq!(r.counters.tcp_flags, SYN | ACK);
    }
    // Replays after a drain start a new record.
    assert!(send(&mut f, at(2), &web, ack.clone()).is_delivered());
    let d = f.drain_flow_records();
    let r = d
        .records
        .iter()
        .find(|r| r.eni == ids.web_eni && r.key.egress)
        .expect("the next interval's record");
    assert_eq!(r.counters.packets, 1);
}

mod time_exceeded6 {
    use super::*;
    use smoltcp::wire::{Icmpv6Packet, IpAddress, Ipv6Packet};

    /// The fabric's answer to the last packet: its port, checked as an ICMPv6 time
    /// exceeded (type 3, code 0) with a valid checksum.
    #[track_caller]
    fn answer(f: &mut Fabric) -> (Port, Vec<u8>) {
        let (port, b) = f.take_reply().expect("an ICMPv6 time exceeded");
        let ip = Ipv6Packet::new_checked(&b[..]).expect("a whole IPv6 packet");
        assert_eq!(u8::from(ip.next_header()), 58, "ICMPv6");
        let icmp = Icmpv6Packet::new_checked(ip.payload()).expect("an ICMPv6 message");
        assert!(
            icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()),
            "ICMPv6 checksum"
        );
        assert_eq!((b[40], b[41]), (3, 0), "hop limit exceeded in transit");
        let _ = IpAddress::Ipv6(ip.src_addr());
        (port, b)
    }

    fn src(b: &[u8]) -> Ipv6Addr {
        Ipv6Addr::from(<[u8; 16]>::try_from(&b[8..24]).unwrap())
    }

    fn dst(b: &[u8]) -> Ipv6Addr {
        Ipv6Addr::from(<[u8; 16]>::try_from(&b[24..40]).unwrap())
    }

    fn hop_limit(mut b: Vec<u8>, h: u8) -> Vec<u8> {
        b[7] = h;
        b
    }

    /// RFC 4443 §3.3: "If a router receives a packet with a Hop Limit of zero, or if a
    /// router decrements a packet's Hop Limit to zero, it MUST discard the packet and
    /// originate an ICMPv6 Time Exceeded message with Code 0 to the source of the
    /// packet." The internet gateway is that router for a probe from the public
    /// subnet: the subnet's router (its /64 + 1) answers at the sender's port, quoting
    /// the probe; one more hop and the probe reaches the internet.
    #[test]
    fn a_hop_limit_running_out_at_the_internet_gateway_is_answered() {
        let (mut f, ids) = dual_stack(|_, _| {});
        let web = Port::Eni(ids.web_eni.clone());
        let probe = hop_limit(echo(WEB, OUTSIDE, 128, 9), 1);
        let v = send(&mut f, at(0), &web, probe.clone());
        assert_eq!(
            dropped(&v),
            DropReason::TtlExceeded {
                at: ids.igw.clone()
            }
        );
        let (port, b) = answer(&mut f);
        assert_eq!(port, web);
        assert_eq!(src(&b), a6("2001:db8:1:1::1"));
        assert_eq!(dst(&b), a6(WEB));
        assert_eq!(&b[48..], &probe[..], "the whole probe is quoted");
        assert!(f.take_reply().is_none(), "taken once");
        let mut two = hop_limit(echo(WEB, OUTSIDE, 128, 9), 2);
        let v = f.process(at(0), &web, &mut two);
        assert_eq!(delivered(&v), Port::Internet);
        assert_eq!(two[7], 1, "the gateway took one hop");
        assert!(f.take_reply().is_none());
        // The flow is now established (and memoised): a probe of it with too small a
        // hop limit still dies at the gateway.
        assert!(send(&mut f, at(0), &web, echo(WEB, OUTSIDE, 128, 9)).is_delivered());
        let v = send(
            &mut f,
            at(0),
            &web,
            hop_limit(echo(WEB, OUTSIDE, 128, 9), 1),
        );
        assert!(matches!(dropped(&v), DropReason::TtlExceeded { .. }), "{v}");
        assert_eq!(answer(&mut f).0, web);
    }

    /// From the internet, the probe dies at the internet gateway and the internet's
    /// router answers it, toward the internet.
    #[test]
    fn from_the_internet_the_internet_router_answers() {
        let (mut f, ids) = dual_stack(|_, _| {});
        let v = send(
            &mut f,
            at(0),
            &Port::Internet,
            hop_limit(tcp(OUTSIDE, 50000, WEB, 80, SYN), 1),
        );
        assert_eq!(
            dropped(&v),
            DropReason::TtlExceeded {
                at: ids.igw.clone()
            }
        );
        let (port, b) = answer(&mut f);
        assert_eq!(port, Port::Internet);
        assert_eq!(src(&b), internet::INTERNET_ROUTER_ADDR6);
        assert_eq!(dst(&b), a6(OUTSIDE));
    }

    /// RFC 4443 §2.4 (e): no ICMPv6 error answers an ICMPv6 error message; §2.4 (f):
    /// errors are rate-limited (the fabric's one limit for IPv4 and IPv6, 1,000 a
    /// second); between subnets no router hop is counted, so nothing runs out.
    #[test]
    fn errors_are_not_answered_and_answers_are_rate_limited() {
        let (mut f, ids) = dual_stack(|_, _| {});
        let web = Port::Eni(ids.web_eni.clone());
        let mut err = packet(WEB, OUTSIDE, 58, &[1, 4, 0, 0, 0, 0, 0, 0]);
        err[7] = 1;
        let v = send(&mut f, at(0), &web, err);
        assert!(matches!(dropped(&v), DropReason::TtlExceeded { .. }), "{v}");
        assert!(f.take_reply().is_none(), "no error about an error");
        let v = send(&mut f, at(0), &web, hop_limit(echo(WEB, APP, 128, 3), 1));
        assert_eq!(delivered(&v), Port::Eni(ids.app_eni.clone()));
        let mut answered = 0;
        for i in 0..1100u16 {
            let v = send(
                &mut f,
                at(5),
                &web,
                hop_limit(echo(WEB, OUTSIDE, 128, i), 1),
            );
            assert!(!v.is_delivered());
            answered += usize::from(f.take_reply().is_some());
        }
        assert_eq!(answered, 1000);
        let _ = send(
            &mut f,
            at(6),
            &web,
            hop_limit(echo(WEB, OUTSIDE, 128, 1), 1),
        );
        assert!(f.take_reply().is_some(), "a new second, new answers");
    }
}

/// "Route tables … Routing for a middlebox appliance": a route whose target is a
/// network interface sends the packet to that interface, whose "source/destination
/// checking" must be disabled for it to accept traffic addressed elsewhere (EC2 User
/// Guide, "Change the source or destination checking"). The app subnet routes the
/// public subnet's /64 to the web2 interface: the appliance's subnet ACL and groups
/// apply, then its check; a route to the NAT gateway's interface carries no IPv6.
#[test]
fn an_ipv6_route_to_an_interface_delivers_to_the_appliance() {
    let to_appliance = |b: &mut TopologyBuilder, ids: &FixtureIds, eni: &ResId| {
        route6(
            b,
            &ids.private_rtb,
            "2001:db8:1:1::/64",
            Target6::Interface(eni.clone()),
        );
    };
    let (mut f, ids) = dual_stack(|b, ids| to_appliance(b, ids, &ids.web2_eni));
    let app = Port::Eni(ids.app_eni.clone());
    let v = send(&mut f, at(1), &app, echo(APP, WEB, 128, 5));
    assert_eq!(
        dropped(&v),
        DropReason::DestCheckV6 {
            eni: ids.web2_eni.clone(),
            addr: a6(WEB),
        }
    );
    assert!(v.to_string().contains("source/destination check"), "{v}");
    let (mut f, ids) = dual_stack(|b, ids| {
        to_appliance(b, ids, &ids.web2_eni);
        b.network_interfaces
            .get_mut(&ids.web2_eni)
            .unwrap()
            .source_dest_check = false;
    });
    let v = send(&mut f, at(1), &app, echo(APP, WEB, 128, 5));
    assert_eq!(delivered(&v), Port::Eni(ids.web2_eni.clone()), "{v}");
    // The appliance's groups decide: web's group admits ICMPv6 from the VPC only.
    let v = send(&mut f, at(1), &app, tcp(APP, 40000, WEB, 22, SYN));
    assert_eq!(
        dropped(&v),
        DropReason::SecurityGroupNoMatch {
            eni: ids.web2_eni.clone(),
            direction: Direction::Inbound,
        }
    );
    let (mut f, _) = dual_stack(|b, ids| to_appliance(b, ids, &ids.nat_eni));
    let v = send(&mut f, at(1), &app, echo(APP, WEB, 128, 5));
    assert!(matches!(dropped(&v), DropReason::BlackholeV6 { .. }), "{v}");
}

/// A UDP datagram (checksum left zero, as for `tcp`).
fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&12u16.to_be_bytes());
    u.extend_from_slice(&[0, 0, 1, 2, 3, 4]);
    packet(src, dst, 17, &u)
}

const RESOLVER6: &str = "fd00:ec2::253";
const METADATA6: &str = "fd00:ec2::254";

/// "The Route 53 Resolver is located at 169.254.169.253 (IPv4), fd00:ec2::253 (IPv6),
/// and at the primary private IPv4 CIDR range provisioned to your VPC plus two"
/// (Amazon VPC User Guide, "Amazon DNS server"); "Resources within a VPC use a link
/// local address for DNS queries … not visible on the network": a query from a
/// dual-stack instance reaches the resolver although no group rule or route admits
/// fd00:ec2::253, its reply comes straight back, and neither is flow-logged.
#[test]
fn the_resolver_answers_at_fd00_ec2_253_past_groups_acls_and_routes() {
    let (mut f, ids) = dual_stack(|b, ids| {
        // No IPv6 rule anywhere: the groups and the ACL refuse every other packet.
        b.v6.sg_rules.clear();
        b.v6.acl_entries.get_mut(&ids.acl).unwrap().clear();
        b.v6.routes.get_mut(&ids.private_rtb).unwrap().clear();
    });
    f.set_flow_logged([ids.app_eni.clone()]);
    let app = Port::Eni(ids.app_eni.clone());
    let q = send(&mut f, at(1), &app, udp(APP, 40000, RESOLVER6, 53));
    assert_eq!(delivered(&q), Port::Resolver(ids.vpc.clone()));
    let r = send(
        &mut f,
        at(1),
        &Port::Resolver(ids.vpc.clone()),
        udp(RESOLVER6, 53, APP, 40000),
    );
    assert_eq!(delivered(&r), app);
    let tcp_q = send(&mut f, at(1), &app, tcp(APP, 40001, RESOLVER6, 53, SYN));
    assert_eq!(delivered(&tcp_q), Port::Resolver(ids.vpc.clone()));
    // The same interface's traffic to anyone else is still refused by its group.
    assert!(!send(&mut f, at(1), &app, echo(APP, WEB, 128, 1)).is_delivered());
    let d = f.drain_flow_records();
    assert!(
        d.records
            .iter()
            .all(|r| r.key.sport != 53 && r.key.dport != 53),
        "resolver traffic was logged: {:?}",
        d.records
    );
}

/// "enableDnsSupport … If disabled, the Amazon provided DNS service in the VPC that
/// resolves public DNS hostnames to IP addresses is not enabled": the IPv6 address of
/// the resolver answers no more than its IPv4 ones; and a packet sent from an address
/// that is not the interface's own is refused by the source check, as elsewhere.
#[test]
fn the_ipv6_resolver_is_off_without_dns_support_and_checks_the_source() {
    let (mut f, ids) = dual_stack(|b, ids| {
        b.vpcs.get_mut(&ids.vpc).unwrap().enable_dns_support = false;
    });
    let app = Port::Eni(ids.app_eni.clone());
    let v = send(&mut f, at(1), &app, udp(APP, 40000, RESOLVER6, 53));
    assert_eq!(
        dropped(&v),
        DropReason::ResolverDisabled {
            vpc: ids.vpc.clone()
        }
    );
    let (mut f, ids) = dual_stack(|_, _| {});
    let app = Port::Eni(ids.app_eni.clone());
    let spoofed = send(&mut f, at(1), &app, udp(WEB, 40000, RESOLVER6, 53));
    assert!(
        matches!(dropped(&spoofed), DropReason::SourceDestCheckV6 { .. }),
        "{spoofed}"
    );
}

/// "For Nitro-based instances with IPv6 addresses, AWS provides [the instance metadata
/// service] at the fd00:ec2::254 IPv6 endpoint" (IPv6 on AWS, "Supporting Amazon VPC
/// services"): each interface reaches its own metadata port, and the service's reply
/// can reach only that interface.
#[test]
fn metadata_at_fd00_ec2_254_is_the_senders_own() {
    let (mut f, ids) = dual_stack(|b, _| b.v6.sg_rules.clear());
    let web = Port::Eni(ids.web_eni.clone());
    let v = send(&mut f, at(1), &web, tcp(WEB, 40000, METADATA6, 80, SYN));
    assert_eq!(delivered(&v), Port::Metadata(ids.web_eni.clone()));
    let md = Port::Metadata(ids.web_eni.clone());
    let back = send(&mut f, at(1), &md, tcp(METADATA6, 80, WEB, 40000, SYN_ACK));
    assert_eq!(delivered(&back), web);
    let elsewhere = send(&mut f, at(1), &md, tcp(METADATA6, 80, APP, 40000, SYN_ACK));
    assert_eq!(dropped(&elsewhere), DropReason::UnknownPort);
}
