//! Compiles an account's [`World`] into the immutable netstack [`Topology`] the fabric
//! enforces: every region's VPCs, subnets (with their resolved route table and network
//! ACL), route tables (targets and `blackhole` states as DescribeRouteTables shows them),
//! internet and NAT gateways, NACL entries, security-group rules and interfaces.
//!
//! This is the seam between the control plane and the data plane: the world runtime
//! subscribes to [`super::Control`], and the fabric of each account calls [`compile`] on
//! the newest committed world before its next decision and swaps the result in
//! (`Fabric::set_topology`), so a new security-group rule governs the next packet. Only what decides packets crosses: ids, addresses and rules.
//!
//! What is left out on purpose: NAT gateways that are not `available` (AWS forwards
//! nothing through a pending or deleting gateway; routes to them compile as blackholes),
//! private NAT gateways (no Elastic IP), VPC peering connections that are not `active`.

use vpclab_netstack::topology::rid;
use vpclab_netstack::{
    EniOwner, IcmpMatch, InternetGateway as TIgw, NaclEntry as TNaclEntry, NatGateway as TNat,
    NetworkAcl as TAcl, NetworkInterface as TEni, PortRange, Protocol, Route as TRoute, RouteState,
    RouteTable as TRouteTable, RouteTarget as TTarget, RuleAction, SecurityGroup as TSg, SgPeer,
    SgRule as TSgRule, Subnet as TSubnet, TgwAttachment as TTgwAttachment, TgwRoute as TTgwRoute,
    TgwRouteTable as TTgwRouteTable, Topology, TopologyBuilder, TopologyError,
    TransitGateway as TTgw, Vpc as TVpc, VpcEndpoint as TEndpoint, VpcPeering as TPeering,
};

use super::route_table::{Destination, RouteTarget};
use super::sg::{Peer, SgRule};
use crate::model::World;

/// The topology of every region of `world`.
pub fn compile(world: &World) -> Result<Topology, TopologyError> {
    builder(world).build()
}

/// The plain topology description (exposed for tests and tools that want to inspect it).
pub fn builder(world: &World) -> TopologyBuilder {
    let mut b = TopologyBuilder::new();
    for v in world.vpcs.iter() {
        b.add_vpc(TVpc {
            id: rid(&v.id),
            cidr_blocks: v.cidrs.iter().map(|c| c.cidr).collect(),
            enable_dns_support: v.enable_dns_support,
        });
    }
    for s in world.subnets.iter() {
        let (Some(rt), Some(acl)) = (
            world.route_table_for_subnet(&s.id),
            world.nacl_for_subnet(&s.id),
        ) else {
            // Every subnet has both by construction; a damaged store must not stop the
            // rest of the world from compiling.
            tracing::warn!(subnet = %s.id, "subnet without route table or network ACL left out of the topology");
            continue;
        };
        b.add_subnet(TSubnet {
            id: rid(&s.id),
            vpc: rid(&s.vpc_id),
            cidr: s.cidr,
            zone: rid(&s.availability_zone),
            route_table: rid(&rt.id),
            network_acl: rid(&acl.id),
        });
    }
    for rt in world.route_tables.iter() {
        let routes = rt
            .routes
            .iter()
            .flat_map(|r| {
                let active = world.route_state(rt, r) == "active";
                let target = match &r.target {
                    RouteTarget::Local => TTarget::Local,
                    RouteTarget::Gateway(g) => TTarget::InternetGateway(rid(g)),
                    RouteTarget::NatGateway(n) => TTarget::NatGateway(rid(n)),
                    RouteTarget::NetworkInterface(e) => TTarget::NetworkInterface(rid(e)),
                    // AWS resolves a route to an instance to its primary interface.
                    RouteTarget::Instance(i) => match world.primary_eni_of_instance(i) {
                        Some(e) => TTarget::NetworkInterface(rid(&e.id)),
                        None => TTarget::Blackhole,
                    },
                    RouteTarget::VpcPeering(p) => TTarget::VpcPeering(rid(p)),
                    RouteTarget::VpcEndpoint(e) => TTarget::VpcEndpoint(rid(e)),
                    // IPv6-only target: its routes are IPv6 routes, skipped below.
                    RouteTarget::EgressOnlyGateway(_) => TTarget::Blackhole,
                    RouteTarget::TransitGateway(t) => TTarget::TransitGateway(rid(t)),
                };
                // A NAT gateway that is not (yet, or any more) available forwards nothing.
                let nat_ready = match &r.target {
                    RouteTarget::NatGateway(n) => world
                        .nat_gateways
                        .get(n)
                        .is_some_and(|n| n.state == "available"),
                    _ => true,
                };
                let state = if active && nat_ready {
                    RouteState::Active
                } else {
                    RouteState::Blackhole
                };
                // A route to a prefix list is one route per CIDR of the list (a list
                // that no longer exists matches nothing).
                let cidrs = match &r.destination {
                    Destination::Cidr(c) => vec![*c],
                    Destination::PrefixList(p) => {
                        world.prefix_list_cidrs(&rt.region, p).unwrap_or_default()
                    }
                    // IPv6 routes go to the IPv6 side (`ipv6::v6_spec`).
                    Destination::Cidr6(_) => Vec::new(),
                };
                cidrs.into_iter().map(move |destination| TRoute {
                    destination,
                    target: target.clone(),
                    state,
                })
            })
            .collect();
        b.add_route_table(TRouteTable {
            id: rid(&rt.id),
            vpc: rid(&rt.vpc_id),
            routes,
        });
    }
    // Only active connections between two existing VPCs carry packets.
    for p in world.vpc_peering_connections.iter().filter(|p| {
        p.is_active()
            && world.vpcs.contains(&p.requester.vpc_id)
            && world.vpcs.contains(&p.accepter.vpc_id)
    }) {
        b.add_peering(TPeering {
            id: rid(&p.id),
            requester_vpc: rid(&p.requester.vpc_id),
            accepter_vpc: rid(&p.accepter.vpc_id),
        });
    }
    for e in world
        .vpc_endpoints
        .iter()
        .filter(|e| world.vpcs.contains(&e.vpc_id))
    {
        b.add_vpc_endpoint(TEndpoint {
            id: rid(&e.id),
            vpc: rid(&e.vpc_id),
        });
    }
    // Transit gateways with their available attachments and every table's effective
    // routes (`tgw::World::tgw_routes`); a route to an attachment that is not
    // available is a blackhole there already.
    for t in world
        .transit_gateways
        .iter()
        .filter(|t| t.state == "available")
    {
        let attachments: Vec<TTgwAttachment> = world
            .transit_gateway_attachments
            .iter()
            .filter(|a| {
                a.transit_gateway_id == t.id
                    && a.is_available()
                    && world.vpcs.contains(&a.vpc_id)
                    && a.subnet_ids.iter().all(|s| world.subnets.contains(s))
            })
            .map(|a| TTgwAttachment {
                id: rid(&a.id),
                vpc: rid(&a.vpc_id),
                subnets: a.subnet_ids.iter().map(|s| rid(s)).collect(),
                route_table: a
                    .association
                    .as_deref()
                    .filter(|r| {
                        world
                            .transit_gateway_route_tables
                            .get(r)
                            .is_some_and(|r| r.state == "available")
                    })
                    .map(rid),
            })
            .collect();
        let route_tables = world
            .transit_gateway_route_tables
            .iter()
            .filter(|r| r.transit_gateway_id == t.id && r.state == "available")
            .map(|r| TTgwRouteTable {
                id: rid(&r.id),
                routes: world
                    .tgw_routes(r)
                    .into_iter()
                    .map(|v| TTgwRoute {
                        destination: v.cidr,
                        attachment: v
                            .attachment
                            .filter(|_| v.state == "active")
                            .map(|a| rid(&a)),
                        propagated: v.kind == "propagated",
                    })
                    .collect(),
            })
            .collect();
        b.add_transit_gateway(TTgw {
            id: rid(&t.id),
            attachments,
            route_tables,
        });
    }
    for g in world.internet_gateways.iter() {
        b.add_internet_gateway(TIgw {
            id: rid(&g.id),
            vpc: g.attached_vpc.as_deref().map(rid),
        });
    }
    for n in world.nat_gateways.iter().filter(|n| n.state == "available") {
        let Some(a) = n.addresses.first() else {
            continue;
        };
        let Some(public_ip) = a.public_ip else {
            continue;
        };
        if !world.network_interfaces.contains(&a.network_interface_id) {
            continue;
        }
        b.add_nat_gateway(TNat {
            id: rid(&n.id),
            subnet: rid(&n.subnet_id),
            eni: rid(&a.network_interface_id),
            private_ip: a.private_ip,
            public_ip,
        });
    }
    for acl in world.network_acls.iter() {
        let entries = acl
            .entries
            .iter()
            .filter_map(|e| {
                let protocol = if e.protocol == "-1" {
                    Protocol::All
                } else {
                    Protocol::from_number(e.protocol.parse::<i16>().ok()?)
                };
                Some(TNaclEntry {
                    rule_number: u16::try_from(e.rule_number).ok()?,
                    egress: e.egress,
                    protocol,
                    ports: match protocol {
                        Protocol::Tcp | Protocol::Udp => {
                            e.port_range.map(|(f, t)| PortRange::new(f, t))
                        }
                        _ => None,
                    },
                    icmp: match protocol {
                        Protocol::Icmp => e.icmp.map(|(t, c)| icmp_match(t, c)),
                        _ => None,
                    },
                    // IPv6 rules go to the IPv6 side (`ipv6::v6_spec`).
                    cidr: match e.cidr {
                        ipnet::IpNet::V4(c) => c,
                        ipnet::IpNet::V6(_) => return None,
                    },
                    action: if e.rule_action == "allow" {
                        RuleAction::Allow
                    } else {
                        RuleAction::Deny
                    },
                })
            })
            .collect();
        b.add_network_acl(TAcl {
            id: rid(&acl.id),
            vpc: rid(&acl.vpc_id),
            entries,
        });
    }
    for g in world.security_groups.iter() {
        let dir = |egress: bool| {
            g.rules
                .iter()
                .filter(|r| r.egress == egress)
                .flat_map(|r| sg_rule(world, &g.region, r))
                .collect()
        };
        b.add_security_group(TSg {
            id: rid(&g.id),
            vpc: rid(&g.vpc_id),
            ingress: dir(false),
            egress: dir(true),
        });
    }
    for e in world.network_interfaces.iter() {
        let owner = if e.interface_type == "nat_gateway" {
            world
                .nat_gateways
                .iter()
                .find(|n| n.addresses.iter().any(|a| a.network_interface_id == e.id))
                .map(|n| EniOwner::NatGateway(rid(&n.id)))
                .unwrap_or(EniOwner::Other)
        } else if e.interface_type == "network_load_balancer" && e.groups.is_empty() {
            // A network load balancer without security groups: nothing filters its
            // nodes' traffic (the targets' groups decide).
            EniOwner::Unfiltered
        } else {
            match &e.attachment {
                Some(a) => EniOwner::Instance(rid(&a.instance_id)),
                None => EniOwner::Other,
            }
        };
        b.add_network_interface(TEni {
            id: rid(&e.id),
            subnet: rid(&e.subnet_id),
            private_ip: e.ipv4().unwrap_or(TEni::NO_IPV4),
            secondary_ips: e.secondary_ips.clone(),
            public_ip: e.association.as_ref().map(|a| a.public_ip),
            security_groups: e.groups.iter().map(|g| rid(g)).collect(),
            source_dest_check: e.source_dest_check,
            owner,
        });
    }
    b.v6 = super::ipv6::v6_spec(world);
    b
}

fn icmp_match(ty: i32, code: i32) -> IcmpMatch {
    IcmpMatch {
        ty: u8::try_from(ty).ok(),
        code: u8::try_from(code).ok(),
    }
}

/// The fabric rules of one security-group rule: one, or one per CIDR of the prefix list
/// it names (none for an empty or vanished list), each carrying the rule's `sgr-` id so
/// that `explain` and flow logs name the rule the learner wrote.
fn sg_rule(world: &World, region: &str, r: &SgRule) -> Vec<TSgRule> {
    let Some(one) = sg_rule_base(r) else {
        return Vec::new();
    };
    match &r.peer {
        Peer::PrefixList(p) => world
            .prefix_list_cidrs(region, p)
            .unwrap_or_default()
            .into_iter()
            .map(|c| TSgRule {
                peer: SgPeer::Cidr(c),
                ..one.clone()
            })
            .collect(),
        // IPv6 rules go to the IPv6 side (`ipv6::v6_spec`).
        Peer::Cidr6(_) => Vec::new(),
        _ => vec![one],
    }
}

/// The rule's protocol, ports and peer (a prefix list's peer is filled in by `sg_rule`).
fn sg_rule_base(r: &SgRule) -> Option<TSgRule> {
    let protocol = match r.protocol.as_str() {
        "-1" => Protocol::All,
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        n => Protocol::from_number(n.parse::<i16>().ok()?),
    };
    let ports = match (protocol, r.from_port, r.to_port) {
        (Protocol::Tcp | Protocol::Udp, Some(f), Some(t)) => Some(PortRange::new(
            u16::try_from(f).ok()?,
            u16::try_from(t).ok()?,
        )),
        _ => None,
    };
    let icmp = match (protocol, r.from_port, r.to_port) {
        (Protocol::Icmp, Some(t), Some(c)) => Some(icmp_match(t, c)),
        _ => None,
    };
    let peer = match &r.peer {
        Peer::Cidr(c) => SgPeer::Cidr(*c),
        Peer::Group(g) => SgPeer::Group(rid(g)),
        // Replaced per CIDR by `sg_rule`.
        Peer::PrefixList(_) | Peer::Cidr6(_) => SgPeer::Cidr(ipnet::Ipv4Net::default()),
    };
    Some(TSgRule {
        id: Some(rid(&r.id)),
        protocol,
        ports,
        icmp,
        peer,
    })
}

/// The resource kinds the topology is compiled from: a commit that touches none of them
/// (tags, key pairs, Route 53) leaves the fabric's topology as it is.
pub const FABRIC_KINDS: &[&str] = &[
    "vpc",
    "subnet",
    "route_table",
    "internet_gateway",
    "address",
    "nat_gateway",
    "network_acl",
    "security_group",
    "network_interface",
    "instance",
    "vpc_peering_connection",
    "vpc_endpoint",
    "egress_only_internet_gateway",
    // Customer-managed prefix lists that routes and security-group rules name.
    "prefix_list",
    // Which interfaces the fabric counts flow records for.
    "flow_log",
    "transit_gateway",
    "transit_gateway_attachment",
    "transit_gateway_route_table",
];

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use smoltcp::time::Instant;
    use vpclab_netstack::{Fabric, Flow, Port};

    use super::*;
    use crate::model::ec2::eni::EniSpec;
    use crate::model::ec2::sg::PermissionInput;
    use crate::model::{Env, Timestamp};

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_700_000_000_000))
    }

    /// A VPC with a public subnet, an IGW route, a web group and an interface with an EIP.
    fn public_web_world() -> (World, String, String, Ipv4Addr) {
        let e = env();
        let mut w = World::new("000000000000");
        w.ensure_region(&e).unwrap();
        let vpc = w.create_vpc(&e, "10.0.0.0/16", None, &[]).unwrap();
        let subnet = w
            .create_subnet(&e, &vpc, "10.0.1.0/24", Some("us-east-1a"), None, &[])
            .unwrap();
        let igw = w.create_internet_gateway(&e, &[]).unwrap();
        w.attach_internet_gateway(&e, &igw, &vpc).unwrap();
        let rt = w.create_route_table(&e, &vpc, &[]).unwrap();
        w.create_route(&e, &rt, "0.0.0.0/0", RouteTarget::Gateway(igw))
            .unwrap();
        w.associate_route_table(&e, &rt, &subnet).unwrap();
        let sg = w
            .create_security_group(&e, "web", "web", Some(&vpc), &[])
            .unwrap();
        let eni = w
            .create_network_interface(
                &e,
                EniSpec {
                    subnet_id: subnet,
                    groups: vec![sg.clone()],
                    ..Default::default()
                },
                &[],
            )
            .unwrap();
        w.attach_interface(&e, &eni, "i-0123456789abcdef0", 0, true)
            .unwrap();
        let (alloc, ip) = w.allocate_address(&e, &[]).unwrap();
        w.associate_address(
            &e,
            &crate::model::ec2::address::AssociateAddressInput {
                allocation_id: Some(alloc),
                network_interface_id: Some(eni.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        (w, sg, eni, ip)
    }

    fn ssh_from_learners() -> PermissionInput {
        PermissionInput {
            protocol: Some("tcp".into()),
            from_port: Some("22".into()),
            to_port: Some("22".into()),
            cidrs: vec![("203.0.113.0/24".into(), None)],
            ..Default::default()
        }
    }

    #[test]
    fn default_vpc_world_compiles() {
        let mut w = World::new("000000000000");
        w.ensure_region(&env()).unwrap();
        let t = compile(&w).unwrap();
        assert_eq!(t.spec().subnets.len(), 6);
        assert_eq!(t.spec().vpcs.len(), 1);
    }

    #[test]
    fn a_new_security_group_rule_governs_the_next_packet() {
        let (mut w, sg, eni, public_ip) = public_web_world();
        let learner = Ipv4Addr::new(203, 0, 113, 10);
        let flow = Flow::tcp_syn(learner, 40000, public_ip, 22);
        let now = Instant::from_millis(0);

        let fabric = Fabric::new(Arc::new(compile(&w).unwrap()));
        let before = fabric.explain(now, &Port::Internet, &flow);
        assert!(!before.is_delivered(), "no inbound rule yet: {before:?}");

        w.authorize_security_group(&env(), &sg, false, &[ssh_from_learners()], &[])
            .unwrap();
        let mut fabric = fabric;
        fabric.set_topology(Arc::new(compile(&w).unwrap()));
        let after = fabric.explain(now, &Port::Internet, &flow);
        assert!(
            after.is_delivered(),
            "SSH from the learner is allowed now: {after:?}"
        );
        assert_eq!(
            after.outcome,
            vpclab_netstack::Outcome::Deliver(Port::Eni(rid(&eni)))
        );

        w.revoke_security_group(&env(), &sg, false, &[ssh_from_learners()], &[])
            .unwrap();
        fabric.set_topology(Arc::new(compile(&w).unwrap()));
        assert!(
            !fabric.explain(now, &Port::Internet, &flow).is_delivered(),
            "revoked again"
        );
    }

    fn ssh_from_list(pl: &str) -> PermissionInput {
        PermissionInput {
            protocol: Some("tcp".into()),
            from_port: Some("22".into()),
            to_port: Some("22".into()),
            prefix_lists: vec![(pl.to_string(), None)],
            ..Default::default()
        }
    }

    /// AWS (VPC User Guide, "Customer-managed prefix lists"): a rule that references a
    /// prefix list admits its CIDRs, and a change to the list applies to every rule
    /// that references it.
    #[test]
    fn a_prefix_list_rule_admits_what_the_list_holds_now() {
        use crate::model::ec2::prefix_list::PrefixListChange;
        let (mut w, sg, _, public_ip) = public_web_world();
        let e = env();
        let pl = w
            .create_prefix_list(
                &e,
                "learners",
                5,
                "IPv4",
                &[("203.0.113.0/24".into(), None)],
                &[],
            )
            .unwrap();
        w.authorize_security_group(&e, &sg, false, &[ssh_from_list(&pl)], &[])
            .unwrap();
        let now = Instant::from_millis(0);
        let learner = Flow::tcp_syn(Ipv4Addr::new(203, 0, 113, 10), 40000, public_ip, 22);
        let other = Flow::tcp_syn(Ipv4Addr::new(192, 0, 2, 7), 40000, public_ip, 22);
        let admits = |w: &World, f: &Flow| {
            Fabric::new(Arc::new(compile(w).unwrap()))
                .explain(now, &Port::Internet, f)
                .is_delivered()
        };
        assert!(admits(&w, &learner));
        assert!(!admits(&w, &other));

        // Version 2: the learners' block goes, 192.0.2.0/24 comes.
        w.modify_prefix_list(
            &e,
            &pl,
            &PrefixListChange {
                current_version: Some(1),
                add: vec![("192.0.2.0/24".into(), None)],
                remove: vec!["203.0.113.0/24".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!admits(&w, &learner), "removed from the list");
        assert!(admits(&w, &other), "added to the list");

        // Restoring version 1 makes version 3 with the old entries.
        w.restore_prefix_list_version(&e, &pl, 1, 2).unwrap();
        assert_eq!(w.prefix_lists.get(&pl).unwrap().version(), 3);
        assert!(admits(&w, &learner));
        assert!(!admits(&w, &other));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The seam between the model and the fabric: a rule naming a list of random
        /// CIDRs admits a random source exactly when some entry holds it (the fabric's
        /// own reference model only sees the CIDR rules this expansion makes).
        #[test]
        fn prefix_list_rules_admit_exactly_the_lists_cidrs(
            entries in proptest::collection::btree_set((0u8..=255, 24u8..=32), 0..6),
            source in 0u8..=255,
        ) {
            let (mut w, sg, _, public_ip) = public_web_world();
            let e = env();
            let nets: Vec<ipnet::Ipv4Net> = entries
                .iter()
                .map(|(host, len)| ipnet::Ipv4Net::new(Ipv4Addr::new(203, 0, 113, *host), *len).unwrap().trunc())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let list: Vec<(String, Option<String>)> =
                nets.iter().map(|n| (n.to_string(), None)).collect();
            let pl = w.create_prefix_list(&e, "random", 10, "IPv4", &list, &[]).unwrap();
            w.authorize_security_group(&e, &sg, false, &[ssh_from_list(&pl)], &[]).unwrap();
            let from = Ipv4Addr::new(203, 0, 113, source);
            let flow = Flow::tcp_syn(from, 40000, public_ip, 22);
            let delivered = Fabric::new(Arc::new(compile(&w).unwrap()))
                .explain(Instant::from_millis(0), &Port::Internet, &flow)
                .is_delivered();
            proptest::prop_assert_eq!(delivered, nets.iter().any(|n| n.contains(&from)));
        }
    }

    #[test]
    fn routes_to_a_pending_nat_gateway_forward_nothing_until_it_is_available() {
        let e = env();
        let mut w = World::new("000000000000");
        w.ensure_region(&e).unwrap();
        let vpc = w.default_vpc("us-east-1").unwrap().id.clone();
        let subnet = w
            .subnets
            .iter()
            .find(|s| s.vpc_id == vpc)
            .unwrap()
            .id
            .clone();
        let (alloc, _) = w.allocate_address(&e, &[]).unwrap();
        let nat = w
            .create_nat_gateway(&e, &subnet, Some(&alloc), None, None, &[])
            .unwrap();
        let rt = w.create_route_table(&e, &vpc, &[]).unwrap();
        w.create_route(&e, &rt, "0.0.0.0/0", RouteTarget::NatGateway(nat.clone()))
            .unwrap();
        let state =
            |w: &World| compile(w).unwrap().spec().route_tables[rt.as_str()].routes[1].state;
        assert_eq!(state(&w), RouteState::Blackhole);
        assert!(compile(&w).unwrap().nat_gateway(&nat).is_none());
        w.advance(e.now.plus_ms(crate::model::ec2::nat::NAT_PENDING_MS));
        assert_eq!(state(&w), RouteState::Active);
        assert!(compile(&w).unwrap().nat_gateway(&nat).is_some());
    }
}
