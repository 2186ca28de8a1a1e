//! The IPv6 half of the fabric: the same stages as the IPv4 walk in `fabric.rs`, in the
//! same order, for packets whose version nibble is 6.
//!
//! [`Fabric::process`](crate::fabric::Fabric::process) hands such a packet here before
//! any IPv4 work, so the IPv4 fast path (flow cache, compiled rule buckets) pays one
//! byte comparison and nothing else. The IPv6 walk reads the topology's [`V6Spec`]
//! (the IPv6 blocks, routes, ACL rules, security-group rules and interface addresses the
//! model compiled) and keeps its own connection table for the two stateful parts:
//! security groups and the egress-only internet gateway.
//!
//! Stages and the AWS rule behind each (Amazon VPC User Guide):
//!
//! 1. Egress security groups of the sending interface (stateful).
//! 2. Source check: an interface sends only from one of its IPv6 addresses.
//! 3. Same subnet: no ACL, no route table.
//! 4. Egress network ACL of the source subnet (IPv6 rules only; the IPv6 `*` rule).
//! 5. Route table, longest prefix match on IPv6 routes: `local`, internet gateway
//!    (no translation: IPv6 addresses are public), egress-only internet gateway, VPC
//!    peering connection, network interface (an appliance: the destination subnet's
//!    inbound ACL unless it is the sender's own, then the interface's groups and its
//!    destination check). A route to a gateway not attached to this VPC, or to a
//!    peering that does not connect it, is a blackhole. The egress-only gateway is
//!    stateful and forwards only connections the instance started: a reply to a
//!    connection the internet started (which came in through the internet gateway)
//!    is dropped there, so an inbound connection fails when the subnet's route back
//!    points at the egress-only gateway ("Egress-only internet gateway basics").
//!    Over a peering connection, only traffic from the sending VPC's own IPv6 blocks
//!    to the peer VPC's own blocks crosses (no transitive peering, no edge-to-edge
//!    routing); inside the peer VPC the packet arrives as at step 7.
//! 6. From the internet: the VPC's internet gateway lets it in; an egress-only gateway
//!    lets in only replies to connections the instance started ("Egress-only internet
//!    gateways": it "prevents the internet from initiating an IPv6 connection").
//! 7. Ingress network ACL of the destination subnet, ingress security groups, delivery.
//!
//! Before step 1, the VPC's own services on their IPv6 addresses: the Route 53
//! Resolver at [`RESOLVER_V6`] (fd00:ec2::253) and the instance metadata service at
//! [`METADATA_V6`] (fd00:ec2::254), as AWS provides them to instances with IPv6
//! addresses ("Amazon DNS server", Amazon VPC User Guide; "Supporting Amazon VPC
//! services", IPv6 on AWS). Like their IPv4 link-local addresses they are not
//! filtered by security groups or network ACLs and not routed; the source check
//! still applies, and their replies go straight back to the asking interface.
//!
//! The hop limit is decremented at each gateway the packet crosses (internet and
//! egress-only gateways, out and in), as the IPv4 walk decrements the TTL; the VPC
//! router and a peering connection are invisible to it. A packet whose hop limit runs
//! out at a gateway is dropped there (`TtlExceeded`), and `Fabric::process` answers
//! it with an ICMPv6 time exceeded ([`icmpv6_error`]).
//!
//! The decision is a pure function of the topology, the packet's fields and the
//! liveness of the two connection-table entries the packet could belong to (its own
//! direction and the reverse one, [`Conntrack6::liveness`]): that is what lets
//! `Fabric::process` memoise it for established flows.
//!
//! Not here (see docs/fidelity.md): NAT64/DNS64, IPv6 routes to endpoints and
//! transit gateways.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use smoltcp::time::{Duration, Instant};

use crate::port::{Port, ResId};
use crate::topology::{IcmpMatch, PortRange, Protocol, RouteState, RuleAction, Topology};
use crate::verdict::{Direction, DropReason, Hop, HopAction, Malformed, Outcome, RuleRef};

/// ICMPv6's IP protocol number.
pub const ICMPV6: u8 = 58;

/// The Route 53 Resolver's IPv6 address in every VPC (AWS: fd00:ec2::253).
pub const RESOLVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x253);
/// The instance metadata service's IPv6 address (AWS: fd00:ec2::254).
pub const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Where an IPv6 route sends packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target6 {
    Local,
    InternetGateway(ResId),
    EgressOnlyGateway(ResId),
    /// A VPC peering connection: IPv6 crosses it like IPv4 when both VPCs have IPv6
    /// blocks and both sides route to it (VPC Peering Guide, "Update your route tables
    /// for a VPC peering connection").
    Peering(ResId),
    /// A network interface in this VPC (an appliance, a firewall instance): the packet
    /// is delivered to it, whatever its destination, as an IPv4 route to an interface
    /// does ("Route tables", routing to a middlebox appliance).
    Interface(ResId),
    /// A target IPv6 cannot use (NAT gateway, endpoint, transit gateway) or an
    /// explicit blackhole.
    Blackhole,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route6 {
    pub destination: Ipv6Net,
    pub target: Target6,
    pub state: RouteState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaclEntry6 {
    pub rule_number: u16,
    pub egress: bool,
    pub protocol: Protocol,
    pub ports: Option<PortRange>,
    pub icmp: Option<IcmpMatch>,
    pub cidr: Ipv6Net,
    pub action: RuleAction,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SgPeer6 {
    Cidr(Ipv6Net),
    /// Members of a security group: their IPv6 addresses.
    Group(ResId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRule6 {
    pub id: Option<ResId>,
    pub protocol: Protocol,
    pub ports: Option<PortRange>,
    pub icmp: Option<IcmpMatch>,
    pub peer: SgPeer6,
}

/// The IPv6 side of a topology, keyed by the ids of the IPv4 side's resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct V6Spec {
    /// VPC → its IPv6 blocks.
    pub vpc_blocks: BTreeMap<ResId, Vec<Ipv6Net>>,
    /// Subnet → its /64.
    pub subnets: BTreeMap<ResId, Ipv6Net>,
    /// Route table → its IPv6 routes.
    pub routes: BTreeMap<ResId, Vec<Route6>>,
    /// Network ACL → its IPv6 rules (both directions).
    pub acl_entries: BTreeMap<ResId, Vec<NaclEntry6>>,
    /// Security group → (ingress, egress) IPv6 rules.
    pub sg_rules: BTreeMap<ResId, (Vec<SgRule6>, Vec<SgRule6>)>,
    /// Network interface → its IPv6 addresses.
    pub eni_addrs: BTreeMap<ResId, Vec<Ipv6Addr>>,
    /// Egress-only internet gateway → its VPC.
    pub egress_only: BTreeMap<ResId, ResId>,
}

impl V6Spec {
    fn vpc_of_addr(&self, a: Ipv6Addr) -> Option<&ResId> {
        self.vpc_blocks
            .iter()
            .find(|(_, blocks)| blocks.iter().any(|b| b.contains(&a)))
            .map(|(id, _)| id)
    }
}

/// The fields of an IPv6 packet the walk reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pkt6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// ICMPv6 (type, code).
    pub icmp: Option<(u8, u8)>,
}

impl Pkt6 {
    /// A new connection's first packet as `explain` describes one: TCP or UDP from
    /// `sport` to `dport`, or (for `proto` 58) an ICMPv6 echo request with identifier
    /// `sport`.
    pub fn probe(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, sport: u16, dport: u16) -> Pkt6 {
        let (sport, dport, icmp) = if proto == ICMPV6 {
            (sport, sport, Some((128, 0)))
        } else {
            (sport, dport, None)
        };
        Pkt6 {
            src,
            dst,
            proto,
            sport,
            dport,
            icmp,
        }
    }

    /// The answer to this packet, as its destination would send it: addresses and
    /// ports swapped, an echo request (128) answered by an echo reply (129).
    pub fn reply(&self) -> Pkt6 {
        Pkt6 {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            icmp: self
                .icmp
                .map(|(t, c)| if t == 128 { (129, 0) } else { (t, c) }),
            ..*self
        }
    }
}

/// Parses the fixed IPv6 header and the first bytes of TCP/UDP/ICMPv6. Extension
/// headers (fragments included) are refused, as the IPv4 walk refuses options.
pub fn parse6(b: &[u8]) -> Result<Pkt6, Malformed> {
    if b.len() < 40 {
        return Err(Malformed::Truncated);
    }
    let payload_len = usize::from(u16::from_be_bytes([b[4], b[5]]));
    if 40 + payload_len != b.len() {
        return Err(Malformed::BadLength);
    }
    let proto = b[6];
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[8..24]);
    let src = Ipv6Addr::from(a);
    a.copy_from_slice(&b[24..40]);
    let dst = Ipv6Addr::from(a);
    let l4 = &b[40..];
    let (sport, dport, icmp) = match proto {
        6 | 17 => {
            if l4.len() < 4 {
                return Err(Malformed::Truncated);
            }
            (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                None,
            )
        }
        ICMPV6 => {
            if l4.len() < 4 {
                return Err(Malformed::Truncated);
            }
            // Echo request/reply carry an identifier: it keys the connection both ways.
            let id = if matches!(l4[0], 128 | 129) && l4.len() >= 6 {
                u16::from_be_bytes([l4[4], l4[5]])
            } else {
                0
            };
            (id, id, Some((l4[0], l4[1])))
        }
        0 | 43 | 44 | 60 => return Err(Malformed::Fragment),
        _ => (0, 0, None),
    };
    Ok(Pkt6 {
        src,
        dst,
        proto,
        sport,
        dport,
        icmp,
    })
}

/// A tracked IPv6 connection, as its initiator sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key6 {
    a: Ipv6Addr,
    b: Ipv6Addr,
    proto: u8,
    pa: u16,
    pb: u16,
}

/// Connection tracking for IPv6: what security groups and the egress-only gateway
/// remember. Idle entries expire after `idle`.
#[derive(Clone, Debug, Default)]
pub struct Conntrack6 {
    flows: HashMap<Key6, Instant, crate::hash::FxBuild>,
}

/// How long an idle tracked IPv6 connection is remembered (AWS's TCP established
/// timeout is 5 days; vpclab keeps one, shorter, value for every protocol).
const IDLE: Duration = Duration::from_secs(350);

impl Conntrack6 {
    fn key(p: &Pkt6) -> Key6 {
        Key6 {
            a: p.src,
            b: p.dst,
            proto: p.proto,
            pa: p.sport,
            pb: p.dport,
        }
    }

    fn reverse(p: &Pkt6) -> Key6 {
        Key6 {
            a: p.dst,
            b: p.src,
            proto: p.proto,
            pa: p.dport,
            pb: p.sport,
        }
    }

    /// Whether `p` belongs to a tracked connection (either direction).
    fn tracked(&self, now: Instant, p: &Pkt6) -> bool {
        [Self::key(p), Self::reverse(p)]
            .iter()
            .any(|k| self.flows.get(k).is_some_and(|&t| now < t + IDLE))
    }

    /// Which of the two entries `p` could belong to are alive: bit 0 its own
    /// direction, bit 1 the reverse one. The walk reads nothing else of the table
    /// (`tracked` is "any bit", `is_reply` is bit 1), so two packets with the same
    /// fields, topology and liveness get the same decision.
    pub(crate) fn liveness(&self, now: Instant, p: &Pkt6) -> u8 {
        let live = |k: &Key6| self.flows.get(k).is_some_and(|&t| now < t + IDLE);
        u8::from(live(&Self::key(p))) | u8::from(live(&Self::reverse(p))) << 1
    }

    /// Whether `p` is a reply to a connection started the other way.
    fn is_reply(&self, now: Instant, p: &Pkt6) -> bool {
        self.flows
            .get(&Self::reverse(p))
            .is_some_and(|&t| now < t + IDLE)
    }

    pub(crate) fn touch(&mut self, now: Instant, p: &Pkt6) {
        let rev = Self::reverse(p);
        if self.flows.contains_key(&rev) {
            self.flows.insert(rev, now);
        } else {
            self.flows.insert(Self::key(p), now);
        }
    }

    pub fn expire(&mut self, now: Instant) {
        self.flows.retain(|_, &mut t| now < t + IDLE);
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// Whether `a` is inside `net`: one mask and compare on 128-bit integers.
#[inline]
fn in_prefix(net: &Ipv6Net, a: Ipv6Addr) -> bool {
    let len = u32::from(net.prefix_len());
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    (u128::from(a) ^ u128::from(net.network())) & mask == 0
}

fn proto_matches(
    protocol: Protocol,
    ports: Option<PortRange>,
    icmp: Option<IcmpMatch>,
    p: &Pkt6,
) -> bool {
    match protocol.number() {
        None => true,
        Some(n) if n != p.proto => false,
        Some(6 | 17) => ports.is_none_or(|r| r.from <= p.dport && p.dport <= r.to),
        Some(ICMPV6) => match (icmp, p.icmp) {
            (None, _) => true,
            (Some(m), Some((t, c))) => m.matches(t, c),
            (Some(_), None) => false,
        },
        Some(_) => true,
    }
}

/// One IPv6 decision: the walk reads the topology and the connection table, and
/// returns what to do; `process6` applies the effect (tracking) on delivery.
pub(crate) struct Walk6<'a> {
    pub t: &'a Topology,
    pub ct: &'a Conntrack6,
    pub now: Instant,
    pub hops: Option<&'a mut Vec<Hop>>,
    /// Set when the packet passed a stateful stage and should be tracked.
    pub track: bool,
    /// The packet's hop limit, decremented at each gateway it crosses.
    pub hop_limit: u8,
    /// Gateways crossed so far (what the hop limit lost).
    pub gateways: u8,
}

/// Longest chain of gateways an IPv6 packet may cross before it is called a loop (the
/// IPv4 walk's limit).
const MAX_GATEWAYS: u8 = 8;

type Step<T> = Result<T, DropReason>;

impl Walk6<'_> {
    /// Records a hop when hops are wanted (`explain6`, `record_hops`); the action is
    /// built only then, so an unrecorded walk formats and clones nothing for it.
    fn hop(&mut self, at: &ResId, action: impl FnOnce() -> HopAction, rule: Option<RuleRef>) {
        if let Some(h) = self.hops.as_deref_mut() {
            h.push(Hop {
                component: at.clone(),
                action: action(),
                rule,
            });
        }
    }

    /// A gateway forwards the packet: one hop less, and the packet dies here when its
    /// hop limit runs out (RFC 8200 §3: a node that forwards a packet whose hop limit
    /// would reach zero discards it and sends an ICMPv6 time exceeded).
    fn gateway_hop(&mut self, at: &ResId) -> Step<()> {
        self.gateways += 1;
        if self.gateways > MAX_GATEWAYS {
            return Err(DropReason::RoutingLoop);
        }
        if self.hop_limit <= 1 {
            self.hop(at, || HopAction::Drop, None);
            return Err(DropReason::TtlExceeded { at: at.clone() });
        }
        self.hop_limit -= 1;
        Ok(())
    }

    pub fn run(&mut self, ingress: &Port, p: &Pkt6) -> Outcome {
        let r = match ingress {
            Port::Eni(e) => self.sent_by_eni(e, p),
            Port::Internet => self.entering_from_internet(p),
            Port::Resolver(vpc) => self.service_reply(vpc, None, p),
            Port::Metadata(e) => match self.t.spec.network_interfaces.get(e) {
                Some(x) => match self.t.spec.subnets.get(&x.subnet) {
                    Some(s) => {
                        let vpc = s.vpc.clone();
                        self.service_reply(&vpc, Some(e), p)
                    }
                    None => Err(DropReason::UnknownPort),
                },
                None => Err(DropReason::UnknownPort),
            },
            _ => Err(DropReason::UnknownPort),
        };
        match r {
            Ok(port) => Outcome::Deliver(port),
            Err(d) => Outcome::Drop(d),
        }
    }

    fn subnet_of_eni(&self, e: &ResId) -> Option<&ResId> {
        self.t.spec.network_interfaces.get(e).map(|x| &x.subnet)
    }

    fn sent_by_eni(&mut self, e: &ResId, p: &Pkt6) -> Step<Port> {
        // A port the topology does not know (a deleted interface) sends nothing, as on
        // the IPv4 path; before this check its packet met the (empty) groups of no
        // interface and was reported as a security-group drop.
        if !self.t.spec.network_interfaces.contains_key(e) {
            return Err(DropReason::UnknownPort);
        }
        let v6 = &self.t.spec.v6;
        let own = v6.eni_addrs.get(e).is_some_and(|a| a.contains(&p.src));
        let spec = self.t.spec.network_interfaces.get(e);
        let sdc = spec.is_none_or(|x| x.source_dest_check);
        if p.dst == RESOLVER_V6 || p.dst == METADATA_V6 {
            return self.sent_to_service(e, own || !sdc, p);
        }
        self.security_groups(e, Direction::Outbound, p)?;
        if !own && sdc {
            return Err(DropReason::SourceDestCheckV6 {
                eni: e.clone(),
                addr: p.src,
            });
        }
        let subnet = self
            .subnet_of_eni(e)
            .cloned()
            .ok_or(DropReason::UnknownPort)?;
        let s = self
            .t
            .spec
            .subnets
            .get(&subnet)
            .ok_or(DropReason::UnknownPort)?;
        let table = s.route_table.clone();
        let vpc = s.vpc.clone();
        // Same subnet (the destination is in this subnet's /64): the router is not
        // involved, so no network ACL and no route table.
        if v6.subnets.get(&subnet).is_some_and(|n| n.contains(&p.dst)) {
            self.hop(&subnet, || HopAction::SameSubnet, None);
            let dst =
                self.eni_in_subnet(&subnet, p.dst)
                    .ok_or_else(|| DropReason::NoInterfaceV6 {
                        vpc: vpc.clone(),
                        dst: p.dst,
                    })?;
            return self.deliver(&dst, p);
        }
        let routes = v6.routes.get(&table).map(Vec::as_slice).unwrap_or(&[]);
        let route = routes
            .iter()
            .filter(|r| r.destination.contains(&p.dst))
            .max_by_key(|r| r.destination.prefix_len());
        // A route to an interface of the sender's own subnet keeps the packet inside
        // the subnet: no ACL, as on the IPv4 path.
        let stays_inside = route.is_some_and(|r| match &r.target {
            Target6::Interface(x) => self.subnet_of_eni(x) == Some(&subnet),
            _ => false,
        });
        if !stays_inside {
            self.nacl(&subnet, Direction::Outbound, p)?;
        }
        let Some(route) = route else {
            return Err(DropReason::NoRouteV6 { table, dst: p.dst });
        };
        self.hop(
            &table,
            || HopAction::Route(format!("{}", route.destination)),
            Some(RuleRef::Route6(route.destination)),
        );
        let blackhole = || DropReason::BlackholeV6 {
            table: table.clone(),
            route: route.destination,
        };
        if route.state == RouteState::Blackhole {
            return Err(blackhole());
        }
        match &route.target {
            Target6::Local => self.arrive(&vpc, p),
            Target6::InternetGateway(g) => {
                // AWS: a route to an internet gateway that is not attached to this VPC
                // is a blackhole.
                let attached = self
                    .t
                    .spec
                    .internet_gateways
                    .get(g)
                    .is_some_and(|x| x.vpc.as_ref() == Some(&vpc));
                if !attached {
                    return Err(blackhole());
                }
                self.gateway_hop(g)?;
                self.hop(g, || HopAction::Ipv6Gateway, None);
                self.on_internet(p)
            }
            Target6::EgressOnlyGateway(g) => {
                if v6.egress_only.get(g) != Some(&vpc) {
                    return Err(blackhole());
                }
                // "An egress-only internet gateway is stateful: it forwards traffic
                // from the instances in the subnet to the internet […] and then sends
                // the response back": it forwards the connections the instance started.
                // A reply to a connection the internet started (through the internet
                // gateway) is not one of them.
                if self.ct.is_reply(self.now, p) {
                    self.hop(g, || HopAction::Drop, Some(RuleRef::Tracked));
                    return Err(DropReason::EgressOnlyNotInitiated {
                        eigw: g.clone(),
                        src: p.src,
                        dst: p.dst,
                    });
                }
                self.gateway_hop(g)?;
                self.hop(g, || HopAction::Ipv6Gateway, None);
                // Remembered so that the replies may come back in.
                self.track = true;
                self.on_internet(p)
            }
            Target6::Peering(x) => {
                // AWS: a route to a peering that does not connect this VPC is a
                // blackhole.
                let Some(pcx) = self.t.spec.peerings.get(x) else {
                    return Err(blackhole());
                };
                let peer = if pcx.requester_vpc == vpc {
                    pcx.accepter_vpc.clone()
                } else if pcx.accepter_vpc == vpc {
                    pcx.requester_vpc.clone()
                } else {
                    return Err(blackhole());
                };
                self.peering_cross(x, &vpc, &peer, p)
            }
            Target6::Interface(x) => {
                // AWS: the interface must be in this VPC; a NAT gateway's interface
                // does not forward IPv6 (NAT64 is not emulated), so it is a blackhole.
                let spec = &self.t.spec;
                let Some(target) = spec.network_interfaces.get(x) else {
                    return Err(blackhole());
                };
                let in_vpc = spec.subnets.get(&target.subnet).map(|s| &s.vpc) == Some(&vpc);
                if !in_vpc || matches!(target.owner, crate::topology::EniOwner::NatGateway(_)) {
                    return Err(blackhole());
                }
                if target.subnet != subnet {
                    self.nacl(&target.subnet, Direction::Inbound, p)?;
                }
                self.deliver_routed(x, p)
            }
            Target6::Blackhole => Err(blackhole()),
        }
    }

    /// Delivery to an interface a route named: its groups, then its destination check
    /// (an interface accepts a packet addressed to another address only when its
    /// source/destination check is off, as an appliance's is).
    fn deliver_routed(&mut self, e: &ResId, p: &Pkt6) -> Step<Port> {
        self.security_groups(e, Direction::Inbound, p)?;
        let spec = &self.t.spec;
        let own = spec.v6.eni_addrs.get(e).is_some_and(|a| a.contains(&p.dst));
        if !own
            && spec
                .network_interfaces
                .get(e)
                .is_none_or(|x| x.source_dest_check)
        {
            self.hop(e, || HopAction::Drop, None);
            return Err(DropReason::DestCheckV6 {
                eni: e.clone(),
                addr: p.dst,
            });
        }
        self.hop(e, || HopAction::Deliver, None);
        Ok(Port::Eni(e.clone()))
    }

    /// A packet from interface `e` to the resolver or the metadata service on their
    /// IPv6 addresses: exempt from groups and ACLs (as at 169.254.169.253/254), but
    /// only from one of the interface's own addresses (`sends_own`), and the resolver
    /// only where the VPC has `enableDnsSupport`.
    fn sent_to_service(&mut self, e: &ResId, sends_own: bool, p: &Pkt6) -> Step<Port> {
        if !sends_own {
            return Err(DropReason::SourceDestCheckV6 {
                eni: e.clone(),
                addr: p.src,
            });
        }
        let spec = &self.t.spec;
        let vpc = spec
            .network_interfaces
            .get(e)
            .and_then(|x| spec.subnets.get(&x.subnet))
            .map(|s| s.vpc.clone())
            .ok_or(DropReason::UnknownPort)?;
        let port = if p.dst == RESOLVER_V6 {
            if !spec.vpcs.get(&vpc).is_some_and(|v| v.enable_dns_support) {
                return Err(DropReason::ResolverDisabled { vpc });
            }
            Port::Resolver(vpc)
        } else {
            Port::Metadata(e.clone())
        };
        self.hop(e, || HopAction::Exempt, None);
        Ok(port)
    }

    /// A reply of the resolver of `vpc` (or of the metadata service of interface
    /// `only`) goes straight back to the interface that holds its destination in that
    /// VPC: no ACL, no group, as on the IPv4 path.
    fn service_reply(&mut self, vpc: &ResId, only: Option<&ResId>, p: &Pkt6) -> Step<Port> {
        let spec = &self.t.spec;
        let e = spec
            .v6
            .eni_addrs
            .iter()
            .find(|(id, addrs)| {
                addrs.contains(&p.dst)
                    && spec
                        .network_interfaces
                        .get(*id)
                        .and_then(|x| spec.subnets.get(&x.subnet))
                        .is_some_and(|s| &s.vpc == vpc)
            })
            .map(|(id, _)| id.clone())
            .ok_or_else(|| DropReason::NoInterfaceV6 {
                vpc: vpc.clone(),
                dst: p.dst,
            })?;
        if only.is_some_and(|m| *m != e) {
            return Err(DropReason::UnknownPort);
        }
        self.hop(&e, || HopAction::Exempt, None);
        Ok(Port::Eni(e))
    }

    /// A packet crosses peering `x` from VPC `from` into VPC `to`. As for IPv4, AWS
    /// carries only traffic between the two VPCs' own blocks: the destination must be
    /// in one of `to`'s IPv6 blocks and the source in one of `from`'s.
    fn peering_cross(&mut self, x: &ResId, from: &ResId, to: &ResId, p: &Pkt6) -> Step<Port> {
        let v6 = &self.t.spec.v6;
        let owns = |vpc: &ResId, a: &Ipv6Addr| {
            v6.vpc_blocks
                .get(vpc)
                .is_some_and(|b| b.iter().any(|n| n.contains(a)))
        };
        let (vpc, addr, destination) = if !owns(to, &p.dst) {
            (to, p.dst, true)
        } else if !owns(from, &p.src) {
            (from, p.src, false)
        } else {
            self.hop(x, || HopAction::PeeringCross { to: to.clone() }, None);
            return self.arrive(to, p);
        };
        self.hop(x, || HopAction::Drop, None);
        Err(DropReason::PeeringNotTransitiveV6 {
            peering: x.clone(),
            vpc: vpc.clone(),
            addr,
            destination,
        })
    }

    /// The interface of `subnet` that holds `a`.
    fn eni_in_subnet(&self, subnet: &ResId, a: Ipv6Addr) -> Option<ResId> {
        let spec = &self.t.spec;
        spec.v6
            .eni_addrs
            .iter()
            .find(|(id, addrs)| {
                addrs.contains(&a)
                    && spec
                        .network_interfaces
                        .get(*id)
                        .is_some_and(|x| &x.subnet == subnet)
            })
            .map(|(id, _)| id.clone())
    }

    /// Leaving the VPC: another VPC's address comes back in through that VPC's
    /// gateways; anything else is the simulated internet.
    fn on_internet(&mut self, p: &Pkt6) -> Step<Port> {
        if self.t.spec.v6.vpc_of_addr(p.dst).is_some() {
            return self.entering_from_internet(p);
        }
        Ok(Port::Internet)
    }

    fn entering_from_internet(&mut self, p: &Pkt6) -> Step<Port> {
        let v6 = &self.t.spec.v6;
        let Some(vpc) = v6.vpc_of_addr(p.dst).cloned() else {
            return Err(DropReason::InternetNoRouteV6 { dst: p.dst });
        };
        let igw = self
            .t
            .spec
            .internet_gateways
            .values()
            .find(|g| g.vpc.as_ref() == Some(&vpc))
            .map(|g| g.id.clone());
        match igw {
            Some(g) => {
                self.gateway_hop(&g)?;
                self.hop(&g, || HopAction::Ipv6Gateway, None);
            }
            None => {
                let eigw = v6
                    .egress_only
                    .iter()
                    .find(|(_, v)| **v == vpc)
                    .map(|(id, _)| id.clone());
                match eigw {
                    // An egress-only gateway lets in only replies.
                    Some(g) if self.ct.is_reply(self.now, p) => {
                        self.gateway_hop(&g)?;
                        self.hop(&g, || HopAction::Ipv6Gateway, Some(RuleRef::Tracked));
                    }
                    Some(g) => {
                        return Err(DropReason::EgressOnlyInbound {
                            eigw: g,
                            dst: p.dst,
                        });
                    }
                    None => {
                        return Err(DropReason::IgwNotAttachedV6 { vpc, dst: p.dst });
                    }
                }
            }
        }
        self.arrive(&vpc, p)
    }

    /// Entering VPC `vpc` from outside the destination's subnet (its router, a
    /// gateway or a peering): the subnet whose /64 holds the destination, its
    /// inbound network ACL, then the interface that has the address.
    fn arrive(&mut self, vpc: &ResId, p: &Pkt6) -> Step<Port> {
        let spec = &self.t.spec;
        let no_interface = || DropReason::NoInterfaceV6 {
            vpc: vpc.clone(),
            dst: p.dst,
        };
        let subnet = spec
            .v6
            .subnets
            .iter()
            .find(|(id, n)| {
                n.contains(&p.dst) && spec.subnets.get(*id).is_some_and(|s| &s.vpc == vpc)
            })
            .map(|(id, _)| id.clone())
            .ok_or_else(no_interface)?;
        self.nacl(&subnet, Direction::Inbound, p)?;
        let e = self
            .eni_in_subnet(&subnet, p.dst)
            .ok_or_else(no_interface)?;
        self.deliver(&e, p)
    }

    fn deliver(&mut self, e: &ResId, p: &Pkt6) -> Step<Port> {
        self.security_groups(e, Direction::Inbound, p)?;
        self.hop(e, || HopAction::Deliver, None);
        Ok(Port::Eni(e.clone()))
    }

    fn nacl(&mut self, subnet: &ResId, dir: Direction, p: &Pkt6) -> Step<()> {
        let Some(acl) = self
            .t
            .spec
            .subnets
            .get(subnet)
            .map(|s| s.network_acl.clone())
        else {
            return Ok(());
        };
        let egress = dir == Direction::Outbound;
        // Inbound rules match the source, outbound rules the destination. The first
        // matching rule in number order decides: the matching rule with the lowest
        // number (numbers are unique per direction), found without sorting.
        let peer = if egress { p.dst } else { p.src };
        let hit = self
            .t
            .spec
            .v6
            .acl_entries
            .get(&acl)
            .into_iter()
            .flatten()
            .filter(|e| {
                e.egress == egress
                    && proto_matches(e.protocol, e.ports, e.icmp, p)
                    && in_prefix(&e.cidr, peer)
            })
            .min_by_key(|e| e.rule_number);
        match hit {
            Some(e) if e.action == RuleAction::Allow => {
                let n = e.rule_number;
                self.hop(
                    &acl,
                    || HopAction::NaclAllow(dir),
                    Some(RuleRef::NaclEntry(n)),
                );
                Ok(())
            }
            other => {
                // The IPv6 `*` rule (32767) reports as `*`, like the IPv4 one.
                let rule = other.map(|e| e.rule_number).filter(|&n| n < 32767);
                let r = rule.map_or(RuleRef::NaclDefault, RuleRef::NaclEntry);
                self.hop(&acl, || HopAction::NaclDeny(dir), Some(r));
                Err(DropReason::NaclDeny {
                    acl,
                    subnet: subnet.clone(),
                    rule,
                    direction: dir,
                })
            }
        }
    }

    fn security_groups(&mut self, e: &ResId, dir: Direction, p: &Pkt6) -> Step<()> {
        if self.ct.tracked(self.now, p) {
            self.hop(
                e,
                || HopAction::SecurityGroupAllow(dir),
                Some(RuleRef::Tracked),
            );
            return Ok(());
        }
        let spec = &self.t.spec;
        let groups = spec
            .network_interfaces
            .get(e)
            .map(|x| x.security_groups.as_slice())
            .unwrap_or(&[]);
        let peer = if dir == Direction::Outbound {
            p.dst
        } else {
            p.src
        };
        for g in groups {
            let Some((ingress, egress)) = spec.v6.sg_rules.get(g) else {
                continue;
            };
            let rules = if dir == Direction::Outbound {
                egress
            } else {
                ingress
            };
            for (index, r) in rules.iter().enumerate() {
                // The protocol and port test first: a few integer comparisons that
                // reject most rules before the prefix test (or the scan of a group's
                // members) runs.
                if !proto_matches(r.protocol, r.ports, r.icmp, p) {
                    continue;
                }
                let peer_ok = match &r.peer {
                    SgPeer6::Cidr(c) => in_prefix(c, peer),
                    SgPeer6::Group(member_of) => spec.network_interfaces.values().any(|x| {
                        x.security_groups.contains(member_of)
                            && spec
                                .v6
                                .eni_addrs
                                .get(&x.id)
                                .is_some_and(|a| a.contains(&peer))
                    }),
                };
                if peer_ok {
                    if self.hops.is_some() {
                        // The group and rule that admitted it, as the IPv4 walk names them.
                        let rule = RuleRef::SecurityGroupRule {
                            group: g.clone(),
                            rule_id: r.id.clone(),
                            index,
                        };
                        self.hop(g, || HopAction::SecurityGroupAllow(dir), Some(rule));
                    }
                    self.track = true;
                    return Ok(());
                }
            }
        }
        self.hop(e, || HopAction::SecurityGroupDeny(dir), None);
        Err(DropReason::SecurityGroupNoMatch {
            eni: e.clone(),
            direction: dir,
        })
    }
}

/// What [`decide6`] found: the outcome, whether the connection is to be tracked
/// when the packet is delivered, and how many gateways it crossed (what its hop limit
/// loses).
pub(crate) struct Decision6 {
    pub outcome: Outcome,
    pub track: bool,
    pub gateways: u8,
}

/// The IPv6 decision of [`Fabric::process`](crate::fabric::Fabric::process) and
/// `explain`, for a packet with hop limit `hop_limit`; it changes nothing (the caller
/// applies [`commit6`] on delivery).
pub(crate) fn decide6(
    t: &Topology,
    ct: &Conntrack6,
    now: Instant,
    ingress: &Port,
    p: &Pkt6,
    hop_limit: u8,
    hops: Option<&mut Vec<Hop>>,
) -> Decision6 {
    let mut w = Walk6 {
        t,
        ct,
        now,
        hops,
        track: false,
        hop_limit,
        gateways: 0,
    };
    let outcome = w.run(ingress, p);
    Decision6 {
        outcome,
        track: w.track,
        gateways: w.gateways,
    }
}

/// Applies what a delivered packet changes: its connection is (re)tracked.
pub(crate) fn commit6(ct: &mut Conntrack6, now: Instant, p: &Pkt6, track: bool) {
    if track || ct.tracked(now, p) {
        ct.touch(now, p);
    }
}

/// The hop limit `explain6` assumes for a described packet (Linux's default).
pub(crate) const EXPLAIN_HOP_LIMIT: u8 = 64;

/// An ICMPv6 error of type `ty` and code `code` from `router` about `original` (an
/// IPv6 packet), addressed to the original's source. RFC 4443 §2.4 (c): the error
/// carries as much of the invoking packet as fits without the error exceeding the
/// minimum IPv6 MTU (1280 bytes); §2.3: the checksum covers the pseudo-header.
pub fn icmpv6_error(router: Ipv6Addr, ty: u8, code: u8, original: &[u8]) -> Vec<u8> {
    const MIN_MTU: usize = 1280;
    let quoted = &original[..original.len().min(MIN_MTU - 48)];
    let mut dst = [0u8; 16];
    if original.len() >= 24 {
        dst.copy_from_slice(&original[8..24]);
    }
    let len = 8 + quoted.len();
    let mut b = Vec::with_capacity(40 + len);
    b.extend_from_slice(&[0x60, 0, 0, 0]);
    b.extend_from_slice(&(len as u16).to_be_bytes());
    b.push(ICMPV6);
    b.push(64);
    b.extend_from_slice(&router.octets());
    b.extend_from_slice(&dst);
    // Type, code, checksum, then four unused bytes (zero for time exceeded).
    b.extend_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(quoted);
    let mut pseudo = 0u32;
    for c in b[8..40].chunks_exact(2) {
        pseudo += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    pseudo += len as u32 + u32::from(ICMPV6);
    let c = crate::flow::checksum(&b[40..], pseudo);
    b[42..44].copy_from_slice(&c.to_be_bytes());
    b
}
