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
//!    (no translation: IPv6 addresses are public), egress-only internet gateway.
//! 6. From the internet: the VPC's internet gateway lets it in; an egress-only gateway
//!    lets in only replies to connections the instance started ("Egress-only internet
//!    gateways": it "prevents the internet from initiating an IPv6 connection").
//! 7. Ingress network ACL of the destination subnet, ingress security groups, delivery.
//!
//! Not here (see docs/fidelity.md): NAT64/DNS64, IPv6 peering routes, IPv6 flow-log
//! records, the flow cache.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use smoltcp::time::{Duration, Instant};

use crate::port::{Port, ResId};
use crate::topology::{IcmpMatch, PortRange, Protocol, RouteState, RuleAction, Topology};
use crate::verdict::{Direction, DropReason, Hop, HopAction, Malformed, Outcome, RuleRef, Verdict};

/// ICMPv6's IP protocol number.
pub const ICMPV6: u8 = 58;

/// Where an IPv6 route sends packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target6 {
    Local,
    InternetGateway(ResId),
    EgressOnlyGateway(ResId),
    /// A target IPv6 cannot use (NAT gateway, endpoint) or an explicit blackhole.
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
    fn eni_of(&self, a: Ipv6Addr) -> Option<&ResId> {
        self.eni_addrs
            .iter()
            .find(|(_, addrs)| addrs.contains(&a))
            .map(|(id, _)| id)
    }

    fn vpc_of_addr(&self, a: Ipv6Addr) -> Option<&ResId> {
        self.vpc_blocks
            .iter()
            .find(|(_, blocks)| blocks.iter().any(|b| b.contains(&a)))
            .map(|(id, _)| id)
    }
}

/// The fields of an IPv6 packet the walk reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

    /// The answer to this packet: addresses and ports swapped, an echo request
    /// answered by an echo reply.
    pub fn reply(&self) -> Pkt6 {
        let icmp = match self.icmp {
            Some((128, code)) => Some((129, code)),
            other => other,
        };
        Pkt6 {
            src: self.dst,
            dst: self.src,
            proto: self.proto,
            sport: self.dport,
            dport: self.sport,
            icmp,
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
    flows: HashMap<Key6, Instant>,
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

    /// Whether `p` is a reply to a connection started the other way.
    fn is_reply(&self, now: Instant, p: &Pkt6) -> bool {
        self.flows
            .get(&Self::reverse(p))
            .is_some_and(|&t| now < t + IDLE)
    }

    fn touch(&mut self, now: Instant, p: &Pkt6) {
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
}

type Step<T> = Result<T, DropReason>;

impl Walk6<'_> {
    fn hop(&mut self, at: &ResId, action: HopAction, rule: Option<RuleRef>) {
        if let Some(h) = self.hops.as_deref_mut() {
            h.push(Hop {
                component: at.clone(),
                action,
                rule,
            });
        }
    }

    pub fn run(&mut self, ingress: &Port, p: &Pkt6) -> Outcome {
        let r = match ingress {
            Port::Eni(e) => self.sent_by_eni(e, p),
            Port::Internet => self.entering_from_internet(p),
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
        let v6 = &self.t.spec.v6;
        let own = v6.eni_addrs.get(e).is_some_and(|a| a.contains(&p.src));
        self.security_groups(e, Direction::Outbound, p)?;
        let spec = self.t.spec.network_interfaces.get(e);
        if !own && spec.is_none_or(|x| x.source_dest_check) {
            return Err(DropReason::SourceDestCheckV6 {
                eni: e.clone(),
                addr: p.src,
            });
        }
        let subnet = self
            .subnet_of_eni(e)
            .cloned()
            .ok_or(DropReason::UnknownPort)?;
        // Same subnet: straight to the interface.
        if let Some(dst) = v6.eni_of(p.dst).cloned()
            && self.subnet_of_eni(&dst) == Some(&subnet)
        {
            self.hop(&subnet, HopAction::SameSubnet, None);
            return self.deliver(&dst, p);
        }
        self.nacl(&subnet, Direction::Outbound, p)?;
        let s = self
            .t
            .spec
            .subnets
            .get(&subnet)
            .ok_or(DropReason::UnknownPort)?;
        let table = s.route_table.clone();
        let vpc = s.vpc.clone();
        let routes = v6.routes.get(&table).map(Vec::as_slice).unwrap_or(&[]);
        let Some(route) = routes
            .iter()
            .filter(|r| r.destination.contains(&p.dst))
            .max_by_key(|r| r.destination.prefix_len())
        else {
            return Err(DropReason::NoRouteV6 { table, dst: p.dst });
        };
        self.hop(
            &table,
            HopAction::Route(format!("{}", route.destination)),
            Some(RuleRef::Route6(route.destination)),
        );
        if route.state == RouteState::Blackhole || route.target == Target6::Blackhole {
            return Err(DropReason::BlackholeV6 {
                table,
                route: route.destination,
            });
        }
        match &route.target {
            Target6::Local => {
                let dst = v6.eni_of(p.dst).cloned().ok_or(DropReason::NoInterfaceV6 {
                    vpc: vpc.clone(),
                    dst: p.dst,
                })?;
                self.arrive(&dst, p)
            }
            Target6::InternetGateway(g) | Target6::EgressOnlyGateway(g) => {
                let eigw = matches!(route.target, Target6::EgressOnlyGateway(_));
                self.hop(g, HopAction::Ipv6Gateway, None);
                if eigw {
                    // Remembered so that the replies may come back in.
                    self.track = true;
                }
                self.on_internet(p)
            }
            Target6::Blackhole => Err(DropReason::BlackholeV6 {
                table,
                route: route.destination,
            }),
        }
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
            Some(g) => self.hop(&g, HopAction::Ipv6Gateway, None),
            None => {
                let eigw = v6
                    .egress_only
                    .iter()
                    .find(|(_, v)| **v == vpc)
                    .map(|(id, _)| id.clone());
                match eigw {
                    // An egress-only gateway lets in only replies.
                    Some(g) if self.ct.is_reply(self.now, p) => {
                        self.hop(&g, HopAction::Ipv6Gateway, Some(RuleRef::Tracked));
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
        let dst = v6.eni_of(p.dst).cloned().ok_or(DropReason::NoInterfaceV6 {
            vpc: vpc.clone(),
            dst: p.dst,
        })?;
        self.arrive(&dst, p)
    }

    /// Entering the destination interface's subnet from outside it.
    fn arrive(&mut self, e: &ResId, p: &Pkt6) -> Step<Port> {
        let subnet = self
            .subnet_of_eni(e)
            .cloned()
            .ok_or(DropReason::UnknownPort)?;
        self.nacl(&subnet, Direction::Inbound, p)?;
        self.deliver(e, p)
    }

    fn deliver(&mut self, e: &ResId, p: &Pkt6) -> Step<Port> {
        self.security_groups(e, Direction::Inbound, p)?;
        self.hop(e, HopAction::Deliver, None);
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
        let mut entries: Vec<&NaclEntry6> = self
            .t
            .spec
            .v6
            .acl_entries
            .get(&acl)
            .map(|v| v.iter().filter(|e| e.egress == egress).collect())
            .unwrap_or_default();
        entries.sort_by_key(|e| e.rule_number);
        // Inbound rules match the source, outbound rules the destination.
        let peer = if egress { p.dst } else { p.src };
        let hit = entries
            .into_iter()
            .find(|e| e.cidr.contains(&peer) && proto_matches(e.protocol, e.ports, e.icmp, p));
        match hit {
            Some(e) if e.action == RuleAction::Allow => {
                let n = e.rule_number;
                self.hop(&acl, HopAction::NaclAllow(dir), Some(RuleRef::NaclEntry(n)));
                Ok(())
            }
            other => {
                // The IPv6 `*` rule (32767) reports as `*`, like the IPv4 one.
                let rule = other.map(|e| e.rule_number).filter(|&n| n < 32767);
                let r = rule.map_or(RuleRef::NaclDefault, RuleRef::NaclEntry);
                self.hop(&acl, HopAction::NaclDeny(dir), Some(r));
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
                HopAction::SecurityGroupAllow(dir),
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
                let peer_ok = match &r.peer {
                    SgPeer6::Cidr(c) => c.contains(&peer),
                    SgPeer6::Group(member_of) => spec.network_interfaces.values().any(|x| {
                        x.security_groups.contains(member_of)
                            && spec
                                .v6
                                .eni_addrs
                                .get(&x.id)
                                .is_some_and(|a| a.contains(&peer))
                    }),
                };
                if peer_ok && proto_matches(r.protocol, r.ports, r.icmp, p) {
                    // The group and rule that admitted it, as the IPv4 walk names them.
                    let rule = RuleRef::SecurityGroupRule {
                        group: g.clone(),
                        rule_id: r.id.clone(),
                        index,
                    };
                    self.hop(g, HopAction::SecurityGroupAllow(dir), Some(rule));
                    self.track = true;
                    return Ok(());
                }
            }
        }
        self.hop(e, HopAction::SecurityGroupDeny(dir), None);
        Err(DropReason::SecurityGroupNoMatch {
            eni: e.clone(),
            direction: dir,
        })
    }
}

/// The IPv6 path of [`Fabric::process`](crate::fabric::Fabric::process) and
/// `explain`: decide, and (when `ct` is mutable and the packet is delivered) remember
/// the connection. Hop limits are left to the hosts (the VPC router is invisible).
pub(crate) fn decide6(
    t: &Topology,
    ct: &Conntrack6,
    now: Instant,
    ingress: &Port,
    p: &Pkt6,
    hops: Option<&mut Vec<Hop>>,
) -> (Outcome, bool) {
    let mut w = Walk6 {
        t,
        ct,
        now,
        hops,
        track: false,
    };
    let o = w.run(ingress, p);
    (o, w.track)
}

/// Applies what a delivered packet changes: its connection is (re)tracked.
pub(crate) fn commit6(ct: &mut Conntrack6, now: Instant, p: &Pkt6, track: bool) {
    if track || ct.tracked(now, p) {
        ct.touch(now, p);
    }
}

/// Runs [`decide6`] on raw bytes for `process`.
pub(crate) fn process6(
    t: &Topology,
    ct: &mut Conntrack6,
    now: Instant,
    ingress: &Port,
    packet: &[u8],
    record: bool,
) -> Verdict {
    let p = match parse6(packet) {
        Ok(p) => p,
        Err(m) => {
            return Verdict {
                hops: Vec::new(),
                outcome: Outcome::Drop(DropReason::Malformed(m)),
            };
        }
    };
    let mut hops = Vec::new();
    let (outcome, track) = decide6(t, ct, now, ingress, &p, record.then_some(&mut hops));
    if matches!(outcome, Outcome::Deliver(_)) {
        commit6(ct, now, &p, track);
    }
    Verdict { hops, outcome }
}
