//! The lookup indexes compiled from a [`TopologyBuilder`] for the packet path.
//!
//! Resources are renumbered into dense vectors; ids stay only for reporting.
//! Routes are sorted longest prefix first, NACL entries by rule number, and
//! security-group rules bucketed by (protocol, port) so that a new flow is
//! checked against the few rules that can match rather than all of them.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::port::ResId;
use crate::topology::{
    EniOwner, FxMap, IcmpMatch, NetworkInterface, Protocol, RouteState, RouteTarget, RuleAction,
    SgPeer, SgRule, TopologyBuilder, TopologyError,
};

/// A prefix as (network, mask) integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Net {
    pub net: u32,
    pub mask: u32,
}

impl Net {
    pub fn from(n: Ipv4Net) -> Self {
        let mask = u32::from(n.netmask());
        Net {
            net: u32::from(n.network()) & mask,
            mask,
        }
    }
    #[inline]
    pub fn contains(self, a: u32) -> bool {
        a & self.mask == self.net
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CVpc {
    pub id: ResId,
    pub dns: bool,
    pub resolver: Option<u32>,
    pub subnets: Vec<u32>,
    pub igw: Option<u32>,
    /// The VPC's IPv4 blocks: what may cross a peering into (or out of) it.
    pub blocks: Vec<Net>,
}

impl CVpc {
    #[inline]
    pub fn owns(&self, a: u32) -> bool {
        self.blocks.iter().any(|n| n.contains(a))
    }
}

/// An active peering connection between VPCs `a` (requester) and `b` (accepter).
#[derive(Clone, Debug)]
pub(crate) struct CPeering {
    pub id: ResId,
    pub a: u32,
    pub b: u32,
}

impl CPeering {
    /// The VPC on the other side from `v`, if `v` is one end.
    #[inline]
    pub fn other(&self, v: u32) -> Option<u32> {
        if v == self.a {
            Some(self.b)
        } else if v == self.b {
            Some(self.a)
        } else {
            None
        }
    }
}

/// A transit gateway: attachments and route tables by dense index.
#[derive(Clone, Debug)]
pub(crate) struct CTgw {
    pub id: ResId,
    pub attachments: Vec<CTgwAttachment>,
    pub tables: Vec<CTgwTable>,
}

#[derive(Clone, Debug)]
pub(crate) struct CTgwAttachment {
    pub id: ResId,
    pub vpc: u32,
    /// The attachment's subnets (indexes into `Compiled::subnets`).
    pub subnets: Vec<u32>,
    /// The associated route table (index into `CTgw::tables`).
    pub table: Option<u32>,
}

#[derive(Clone, Debug)]
pub(crate) struct CTgwRoute {
    pub dest: Ipv4Net,
    pub net: Net,
    /// Index into `CTgw::attachments`; `None` is a blackhole.
    pub target: Option<u32>,
}

#[derive(Clone, Debug)]
pub(crate) struct CTgwTable {
    pub id: ResId,
    /// Longest prefix first.
    pub routes: Vec<CTgwRoute>,
}

impl CTgwTable {
    #[inline]
    pub fn lookup(&self, dst: u32) -> Option<&CTgwRoute> {
        self.routes.iter().find(|r| r.net.contains(dst))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CSubnet {
    pub id: ResId,
    /// The Availability Zone (a transit gateway keeps traffic in its zone).
    pub zone: ResId,
    pub vpc: u32,
    pub cidr: Net,
    pub table: u32,
    pub acl: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CTarget {
    Local,
    Igw(u32),
    Nat(u32),
    Eni(u32),
    Peering(u32),
    /// A gateway VPC endpoint (index into `Compiled::endpoints`).
    Endpoint(u32),
    /// A transit gateway (index into `Compiled::tgws`).
    Tgw(u32),
    /// Explicit blackhole, a blackhole state, or a target that no longer exists.
    Blackhole,
}

#[derive(Clone, Debug)]
pub(crate) struct CRoute {
    pub dest: Ipv4Net,
    pub net: Net,
    pub target: CTarget,
    pub target_name: ResId,
}

#[derive(Clone, Debug)]
pub(crate) struct CTable {
    pub id: ResId,
    /// Longest prefix first, so the first match is the longest match.
    pub routes: Vec<CRoute>,
}

impl CTable {
    #[inline]
    pub fn lookup(&self, dst: u32) -> Option<&CRoute> {
        self.routes.iter().find(|r| r.net.contains(dst))
    }
}

/// A compiled match on protocol, ports and ICMP type/code.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Match {
    /// `None` is every protocol.
    pub proto: Option<u8>,
    pub lo: u16,
    pub hi: u16,
    pub icmp: IcmpMatch,
}

impl Match {
    fn new(
        protocol: Protocol,
        ports: Option<crate::topology::PortRange>,
        icmp: Option<IcmpMatch>,
    ) -> Self {
        let (lo, hi) = ports.map_or((0, 65535), |p| (p.from, p.to));
        Match {
            proto: protocol.number(),
            lo,
            hi,
            icmp: icmp.unwrap_or(IcmpMatch::ANY),
        }
    }

    /// AWS semantics: "all" matches every packet; TCP/UDP match the destination
    /// port; ICMP matches type and code; any other protocol matches by number.
    #[inline]
    pub fn matches(&self, proto: u8, dport: u16, icmp: Option<(u8, u8)>) -> bool {
        match self.proto {
            None => true,
            Some(p) if p != proto => false,
            Some(6) | Some(17) => self.lo <= dport && dport <= self.hi,
            Some(1) => icmp.is_some_and(|(t, c)| self.icmp.matches(t, c)),
            Some(_) => true,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CNacl {
    pub number: u16,
    pub m: Match,
    pub cidr: Net,
    pub allow: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct CAcl {
    pub id: ResId,
    pub inbound: Vec<CNacl>,
    pub outbound: Vec<CNacl>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum CPeer {
    Cidr(Net),
    /// Index into `Compiled::members`; `None` when the group does not exist
    /// (such a rule matches nothing).
    Group(Option<u32>),
}

/// One security-group rule inside an interface's merged policy.
#[derive(Clone, Debug)]
pub(crate) struct CSgRule {
    pub m: Match,
    pub peer: CPeer,
    /// `group position on the interface << 20 | rule index in the group`:
    /// the lowest order is the rule reported as "the" match.
    pub order: u32,
}

pub(crate) const ORDER_SHIFT: u32 = 20;

/// All rules of all groups of an interface, for one direction, arranged for
/// lookup: AWS ORs every rule of every group, so one merged set answers with
/// one hash lookup instead of one per group.
#[derive(Clone, Debug, Default)]
pub(crate) struct CRuleSet {
    /// Single-port TCP/UDP rules by (protocol, port), each list in order.
    pub by_port: FxMap<(u8, u16), Vec<CSgRule>>,
    /// TCP and UDP port ranges, sorted by their first port (a scan stops at
    /// the first range starting above the packet's port).
    pub tcp_ranges: Vec<CSgRule>,
    pub udp_ranges: Vec<CSgRule>,
    /// Everything else (all protocols, ICMP, other protocols), in order.
    pub other: Vec<CSgRule>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct CPolicy {
    pub ingress: CRuleSet,
    pub egress: CRuleSet,
}

#[derive(Clone, Debug)]
pub(crate) struct CSg {
    pub id: ResId,
    pub ingress_ids: Vec<Option<ResId>>,
    pub egress_ids: Vec<Option<ResId>>,
}

#[derive(Clone, Debug)]
pub(crate) struct CEni {
    pub id: ResId,
    pub spec: NetworkInterface,
    pub subnet: u32,
    pub vpc: u32,
    pub sgs: Vec<u32>,
    /// Index into `Compiled::policies`.
    pub policy: u32,
    /// Set for a NAT gateway's own interface.
    pub nat: Option<u32>,
    /// No security groups apply (a NAT gateway's or an unfiltered interface).
    pub sg_free: bool,
    pub private: u32,
    /// Secondary private addresses (usually none).
    pub secondary: Vec<u32>,
    pub public: Option<u32>,
    pub sdc: bool,
}

impl CEni {
    /// Whether `a` is one of the interface's private addresses.
    #[inline]
    pub fn owns(&self, a: u32) -> bool {
        a == self.private || self.secondary.contains(&a)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CIgw {
    pub id: ResId,
}

#[derive(Clone, Debug)]
pub(crate) struct CNat {
    pub id: ResId,
    pub subnet: u32,
    pub private: u32,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Compiled {
    pub vpcs: Vec<CVpc>,
    pub vpc_ix: FxMap<ResId, u32>,
    pub subnets: Vec<CSubnet>,
    pub tables: Vec<CTable>,
    pub acls: Vec<CAcl>,
    pub sgs: Vec<CSg>,
    pub policies: Vec<CPolicy>,
    /// Private addresses of the interfaces carrying each group, sorted (a
    /// binary search costs less than hashing, and nothing for an empty group).
    pub members: Vec<Vec<u32>>,
    pub enis: Vec<CEni>,
    pub eni_ix: FxMap<ResId, u32>,
    pub igws: Vec<CIgw>,
    pub nats: Vec<CNat>,
    pub peerings: Vec<CPeering>,
    /// Gateway VPC endpoints: id and the index of their VPC.
    pub endpoints: Vec<(ResId, u32)>,
    pub endpoint_ix: FxMap<ResId, u32>,
    pub tgws: Vec<CTgw>,
    pub eni_by_ip: FxMap<(u32, u32), u32>,
    pub eni_by_public: FxMap<u32, u32>,
    pub public_ranges: Vec<Net>,
}

fn index_of<T>(ids: impl Iterator<Item = T>) -> FxMap<T, u32>
where
    T: std::hash::Hash + Eq,
{
    ids.enumerate().map(|(i, id)| (id, i as u32)).collect()
}

fn dangling(what: &'static str, id: &ResId, kind: &'static str, target: &ResId) -> TopologyError {
    TopologyError::Dangling {
        what,
        id: id.clone(),
        kind,
        target: target.clone(),
    }
}

fn check_keys<T>(
    what: &'static str,
    map: &std::collections::BTreeMap<ResId, T>,
    id: impl Fn(&T) -> &ResId,
) -> Result<(), TopologyError> {
    for (k, v) in map {
        if k != id(v) {
            return Err(TopologyError::KeyMismatch {
                what,
                key: k.clone(),
                id: id(v).clone(),
            });
        }
    }
    Ok(())
}

fn add_rules(set: &mut CRuleSet, gpos: u32, rules: &[SgRule], sg_ix: &FxMap<ResId, u32>) {
    for (i, r) in rules.iter().enumerate() {
        let m = Match::new(r.protocol, r.ports, r.icmp);
        let peer = match &r.peer {
            SgPeer::Cidr(n) => CPeer::Cidr(Net::from(*n)),
            SgPeer::Group(g) => CPeer::Group(sg_ix.get(g).copied()),
        };
        let rule = CSgRule {
            m,
            peer,
            order: gpos << ORDER_SHIFT | i as u32,
        };
        match m.proto {
            Some(p @ (6 | 17)) if m.lo == m.hi => {
                set.by_port.entry((p, m.lo)).or_default().push(rule)
            }
            Some(6) => set.tcp_ranges.push(rule),
            Some(17) => set.udp_ranges.push(rule),
            _ => set.other.push(rule),
        }
    }
}

fn compile_policy(spec: &TopologyBuilder, groups: &[ResId], sg_ix: &FxMap<ResId, u32>) -> CPolicy {
    let mut pol = CPolicy::default();
    for (gpos, g) in groups.iter().enumerate() {
        if let Some(sg) = spec.security_groups.get(g) {
            add_rules(&mut pol.ingress, gpos as u32, &sg.ingress, sg_ix);
            add_rules(&mut pol.egress, gpos as u32, &sg.egress, sg_ix);
        }
    }
    for set in [&mut pol.ingress, &mut pol.egress] {
        set.tcp_ranges.sort_by_key(|r| (r.m.lo, r.order));
        set.udp_ranges.sort_by_key(|r| (r.m.lo, r.order));
        set.other.sort_by_key(|r| r.order);
    }
    pol
}

pub(crate) fn compile(spec: TopologyBuilder) -> Result<crate::topology::Topology, TopologyError> {
    check_keys("VPC", &spec.vpcs, |v| &v.id)?;
    check_keys("subnet", &spec.subnets, |v| &v.id)?;
    check_keys("route table", &spec.route_tables, |v| &v.id)?;
    check_keys("internet gateway", &spec.internet_gateways, |v| &v.id)?;
    check_keys("NAT gateway", &spec.nat_gateways, |v| &v.id)?;
    check_keys("network ACL", &spec.network_acls, |v| &v.id)?;
    check_keys("security group", &spec.security_groups, |v| &v.id)?;
    check_keys("network interface", &spec.network_interfaces, |v| &v.id)?;
    check_keys("VPC peering", &spec.peerings, |v| &v.id)?;
    check_keys("VPC endpoint", &spec.endpoints, |v| &v.id)?;
    check_keys("transit gateway", &spec.transit_gateways, |v| &v.id)?;

    let vpc_ix = index_of(spec.vpcs.keys().cloned());
    let subnet_ix = index_of(spec.subnets.keys().cloned());
    let table_ix = index_of(spec.route_tables.keys().cloned());
    let acl_ix = index_of(spec.network_acls.keys().cloned());
    let sg_ix = index_of(spec.security_groups.keys().cloned());
    let eni_ix = index_of(spec.network_interfaces.keys().cloned());
    let igw_ix = index_of(spec.internet_gateways.keys().cloned());
    let nat_ix = index_of(spec.nat_gateways.keys().cloned());
    let pcx_ix = index_of(spec.peerings.keys().cloned());
    let vpce_ix = index_of(spec.endpoints.keys().cloned());
    let tgw_ix = index_of(spec.transit_gateways.keys().cloned());

    let mut c = Compiled {
        vpc_ix: vpc_ix.clone(),
        eni_ix: eni_ix.clone(),
        endpoint_ix: vpce_ix.clone(),
        public_ranges: spec
            .internet
            .public_ranges
            .iter()
            .map(|n| Net::from(*n))
            .collect(),
        ..Default::default()
    };

    for v in spec.vpcs.values() {
        if v.cidr_blocks.is_empty() {
            return Err(TopologyError::NoCidr {
                what: "VPC",
                id: v.id.clone(),
            });
        }
        c.vpcs.push(CVpc {
            id: v.id.clone(),
            dns: v.enable_dns_support,
            resolver: v.resolver_addr().map(u32::from),
            subnets: Vec::new(),
            igw: None,
            blocks: v.cidr_blocks.iter().map(|n| Net::from(*n)).collect(),
        });
    }
    for g in spec.internet_gateways.values() {
        let i = c.igws.len() as u32;
        if let Some(v) = &g.vpc {
            let vi = *vpc_ix
                .get(v)
                .ok_or_else(|| dangling("internet gateway", &g.id, "VPC", v))?;
            c.vpcs[vi as usize].igw = Some(i);
        }
        c.igws.push(CIgw { id: g.id.clone() });
    }
    for p in spec.peerings.values() {
        let a = *vpc_ix
            .get(&p.requester_vpc)
            .ok_or_else(|| dangling("VPC peering", &p.id, "VPC", &p.requester_vpc))?;
        let b = *vpc_ix
            .get(&p.accepter_vpc)
            .ok_or_else(|| dangling("VPC peering", &p.id, "VPC", &p.accepter_vpc))?;
        c.peerings.push(CPeering {
            id: p.id.clone(),
            a,
            b,
        });
    }
    for e in spec.endpoints.values() {
        let v = *vpc_ix
            .get(&e.vpc)
            .ok_or_else(|| dangling("VPC endpoint", &e.id, "VPC", &e.vpc))?;
        c.endpoints.push((e.id.clone(), v));
    }
    for s in spec.subnets.values() {
        let vi = *vpc_ix
            .get(&s.vpc)
            .ok_or_else(|| dangling("subnet", &s.id, "VPC", &s.vpc))?;
        let table = *table_ix
            .get(&s.route_table)
            .ok_or_else(|| dangling("subnet", &s.id, "route table", &s.route_table))?;
        let acl = *acl_ix
            .get(&s.network_acl)
            .ok_or_else(|| dangling("subnet", &s.id, "network ACL", &s.network_acl))?;
        c.vpcs[vi as usize].subnets.push(c.subnets.len() as u32);
        c.subnets.push(CSubnet {
            id: s.id.clone(),
            zone: s.zone.clone(),
            vpc: vi,
            cidr: Net::from(s.cidr),
            table,
            acl,
        });
    }
    for t in spec.route_tables.values() {
        let mut routes: Vec<CRoute> = t
            .routes
            .iter()
            .map(|r| {
                let resolved = match &r.target {
                    RouteTarget::Local => Some(CTarget::Local),
                    RouteTarget::InternetGateway(id) => igw_ix.get(id).map(|&i| CTarget::Igw(i)),
                    RouteTarget::NatGateway(id) => nat_ix.get(id).map(|&i| CTarget::Nat(i)),
                    RouteTarget::NetworkInterface(id) => eni_ix.get(id).map(|&i| CTarget::Eni(i)),
                    RouteTarget::VpcPeering(id) => pcx_ix.get(id).map(|&i| CTarget::Peering(i)),
                    RouteTarget::VpcEndpoint(id) => vpce_ix.get(id).map(|&i| CTarget::Endpoint(i)),
                    RouteTarget::TransitGateway(id) => tgw_ix.get(id).map(|&i| CTarget::Tgw(i)),
                    RouteTarget::Blackhole => None,
                };
                // AWS: a route whose target was deleted stays, in state
                // `blackhole`, and drops what it matches.
                let target = match (r.state, resolved) {
                    (RouteState::Active, Some(t)) => t,
                    _ => CTarget::Blackhole,
                };
                CRoute {
                    dest: r.destination.trunc(),
                    net: Net::from(r.destination),
                    target,
                    target_name: crate::topology::rid(&r.target.to_string()),
                }
            })
            .collect();
        // Longest prefix first; a stable sort keeps the table's order among equals.
        routes.sort_by_key(|r| std::cmp::Reverse(r.dest.prefix_len()));
        c.tables.push(CTable {
            id: t.id.clone(),
            routes,
        });
    }
    for t in spec.transit_gateways.values() {
        c.tgws.push(compile_tgw(t, &vpc_ix, &subnet_ix)?);
    }
    for a in spec.network_acls.values() {
        let mut inbound = Vec::new();
        let mut outbound = Vec::new();
        for e in &a.entries {
            if !(1..=32766).contains(&e.rule_number) {
                return Err(TopologyError::BadRuleNumber {
                    acl: a.id.clone(),
                    rule: e.rule_number,
                });
            }
            let ce = CNacl {
                number: e.rule_number,
                m: Match::new(e.protocol, e.ports, e.icmp),
                cidr: Net::from(e.cidr),
                allow: e.action == RuleAction::Allow,
            };
            if e.egress {
                outbound.push(ce)
            } else {
                inbound.push(ce)
            }
        }
        inbound.sort_by_key(|e| e.number);
        outbound.sort_by_key(|e| e.number);
        c.acls.push(CAcl {
            id: a.id.clone(),
            inbound,
            outbound,
        });
    }
    for g in spec.security_groups.values() {
        c.sgs.push(CSg {
            id: g.id.clone(),
            ingress_ids: g.ingress.iter().map(|r| r.id.clone()).collect(),
            egress_ids: g.egress.iter().map(|r| r.id.clone()).collect(),
        });
        c.members.push(Vec::new());
    }
    for n in spec.nat_gateways.values() {
        let subnet = *subnet_ix
            .get(&n.subnet)
            .ok_or_else(|| dangling("NAT gateway", &n.id, "subnet", &n.subnet))?;
        if !eni_ix.contains_key(&n.eni) {
            return Err(dangling("NAT gateway", &n.id, "network interface", &n.eni));
        }
        c.nats.push(CNat {
            id: n.id.clone(),
            subnet,
            private: u32::from(n.private_ip),
        });
    }
    let mut policy_ix: FxMap<Vec<u32>, u32> = FxMap::default();
    for e in spec.network_interfaces.values() {
        let si = *subnet_ix
            .get(&e.subnet)
            .ok_or_else(|| dangling("network interface", &e.id, "subnet", &e.subnet))?;
        let vpc = c.subnets[si as usize].vpc;
        let mut sgs = Vec::with_capacity(e.security_groups.len());
        for g in &e.security_groups {
            let gi = *sg_ix
                .get(g)
                .ok_or_else(|| dangling("network interface", &e.id, "security group", g))?;
            sgs.push(gi);
        }
        let idx = c.enis.len() as u32;
        // Interfaces with the same groups (in the same order) share a policy.
        let policy = match policy_ix.get(&sgs) {
            Some(&p) => p,
            None => {
                let p = c.policies.len() as u32;
                c.policies
                    .push(compile_policy(&spec, &e.security_groups, &sg_ix));
                policy_ix.insert(sgs.clone(), p);
                p
            }
        };
        // The NAT gateway's interface: found through the gateway that names it.
        let nat = spec
            .nat_gateways
            .values()
            .position(|n| n.eni == e.id)
            .map(|i| i as u32)
            .or_else(|| match &e.owner {
                EniOwner::NatGateway(id) => nat_ix.get(id).copied(),
                _ => None,
            });
        let mut public = e.public_ip.map(u32::from);
        if let Some(n) = nat {
            // The IGW maps the NAT gateway's private address to its Elastic IP.
            let ng = spec
                .nat_gateways
                .values()
                .nth(n as usize)
                .expect("index from position");
            public = Some(u32::from(ng.public_ip));
        }
        let private = u32::from(e.private_ip);
        let secondary: Vec<u32> = e.secondary_ips.iter().map(|a| u32::from(*a)).collect();
        // An interface in an IPv6-only subnet has no IPv4 address
        // (`NetworkInterface::NO_IPV4`): nothing is delivered to it, and no
        // group rule matches it, on the IPv4 side.
        let v4: Vec<u32> = (!e.private_ip.is_unspecified())
            .then_some(private)
            .into_iter()
            .chain(secondary.iter().copied())
            .collect();
        // AWS: a rule naming a group matches every private address of the
        // interfaces carrying it, secondary ones included.
        for &gi in &sgs {
            c.members[gi as usize].extend(v4.iter().copied());
        }
        for &a in &v4 {
            if let Some(prev) = c.eni_by_ip.insert((vpc, a), idx) {
                return Err(TopologyError::DuplicateAddress {
                    addr: Ipv4Addr::from(a),
                    a: c.enis[prev as usize].id.clone(),
                    b: e.id.clone(),
                });
            }
        }
        if let Some(p) = public
            && let Some(prev) = c.eni_by_public.insert(p, idx)
        {
            return Err(TopologyError::DuplicateAddress {
                addr: Ipv4Addr::from(p),
                a: c.enis[prev as usize].id.clone(),
                b: e.id.clone(),
            });
        }
        c.enis.push(CEni {
            id: e.id.clone(),
            spec: e.clone(),
            subnet: si,
            vpc,
            sgs,
            policy,
            nat,
            sg_free: nat.is_some() || e.owner == EniOwner::Unfiltered,
            private,
            secondary,
            public,
            sdc: e.source_dest_check && nat.is_none(),
        });
    }
    for m in &mut c.members {
        m.sort_unstable();
        m.dedup();
    }
    Ok(crate::topology::Topology { spec, c })
}

/// One transit gateway: attachments resolved to VPC and subnet indexes, route
/// tables sorted longest prefix first (routes naming an attachment the gateway
/// does not have become blackholes).
fn compile_tgw(
    t: &crate::topology::TransitGateway,
    vpc_ix: &FxMap<ResId, u32>,
    subnet_ix: &FxMap<ResId, u32>,
) -> Result<CTgw, TopologyError> {
    let table_ix = index_of(t.route_tables.iter().map(|r| r.id.clone()));
    let attach_ix = index_of(t.attachments.iter().map(|a| a.id.clone()));
    let mut attachments = Vec::with_capacity(t.attachments.len());
    for a in &t.attachments {
        let vpc = *vpc_ix
            .get(&a.vpc)
            .ok_or_else(|| dangling("transit gateway attachment", &a.id, "VPC", &a.vpc))?;
        let mut subnets = Vec::with_capacity(a.subnets.len());
        for s in &a.subnets {
            subnets.push(
                *subnet_ix
                    .get(s)
                    .ok_or_else(|| dangling("transit gateway attachment", &a.id, "subnet", s))?,
            );
        }
        let table =
            match &a.route_table {
                Some(r) => Some(*table_ix.get(r).ok_or_else(|| {
                    dangling("transit gateway attachment", &a.id, "route table", r)
                })?),
                None => None,
            };
        attachments.push(CTgwAttachment {
            id: a.id.clone(),
            vpc,
            subnets,
            table,
        });
    }
    let tables = t
        .route_tables
        .iter()
        .map(|rt| {
            let mut routes: Vec<CTgwRoute> = rt
                .routes
                .iter()
                .map(|r| CTgwRoute {
                    dest: r.destination.trunc(),
                    net: Net::from(r.destination),
                    target: r
                        .attachment
                        .as_ref()
                        .and_then(|a| attach_ix.get(a).copied()),
                })
                .collect();
            routes.sort_by_key(|r| std::cmp::Reverse(r.dest.prefix_len()));
            CTgwTable {
                id: rt.id.clone(),
                routes,
            }
        })
        .collect();
    Ok(CTgw {
        id: t.id.clone(),
        attachments,
        tables,
    })
}
