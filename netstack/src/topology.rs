//! The immutable network topology the fabric enforces.
//!
//! The model (in the `vpclab` crate) compiles its resources into a
//! [`TopologyBuilder`] — plain public structs keyed by resource id — and
//! [`TopologyBuilder::build`] validates the references and compiles the
//! lookup indexes the packet path needs (interfaces by address, routes by
//! prefix length, security-group rules bucketed by port). A [`Topology`] is
//! never mutated: the model builds a new one and swaps it into the fabric
//! atomically ([`crate::Fabric::set_topology`]).
//!
//! What a resource *means* at the AWS API level (ids, states, validation with
//! AWS error codes) is the model's business; this module keeps only what
//! decides packets.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;

use crate::hash::FxBuild;
use crate::port::ResId;

/// Builds a [`ResId`] from a string.
pub fn rid(s: &str) -> ResId {
    Arc::from(s)
}

/// A VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    pub id: ResId,
    /// The primary block first; the resolver answers at its base + 2.
    pub cidr_blocks: Vec<Ipv4Net>,
    /// `enableDnsSupport`: whether the Route 53 Resolver answers at all.
    pub enable_dns_support: bool,
}

impl Vpc {
    pub fn new(id: &str, cidr: Ipv4Net) -> Self {
        Vpc {
            id: rid(id),
            cidr_blocks: vec![cidr],
            enable_dns_support: true,
        }
    }

    /// The Amazon-provided DNS server address: primary block base + 2.
    pub fn resolver_addr(&self) -> Option<Ipv4Addr> {
        self.cidr_blocks
            .first()
            .map(|net| Ipv4Addr::from(u32::from(net.network()).wrapping_add(2)))
    }
}

/// A subnet, with its (already resolved) route table and network ACL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: ResId,
    pub vpc: ResId,
    pub cidr: Ipv4Net,
    pub zone: ResId,
    /// The explicitly associated table, or the VPC's main table.
    pub route_table: ResId,
    pub network_acl: ResId,
}

impl Subnet {
    pub fn new(id: &str, vpc: &str, cidr: Ipv4Net, route_table: &str, network_acl: &str) -> Self {
        Subnet {
            id: rid(id),
            vpc: rid(vpc),
            cidr,
            zone: rid("us-east-1a"),
            route_table: rid(route_table),
            network_acl: rid(network_acl),
        }
    }
}

/// Where a route sends traffic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// The VPC itself (`local`).
    Local,
    InternetGateway(ResId),
    NatGateway(ResId),
    /// A network interface (an appliance, a NAT instance); routes to an
    /// instance are compiled to its primary interface by the model.
    NetworkInterface(ResId),
    /// A VPC peering connection (`pcx-…`); only an active one carries packets.
    VpcPeering(ResId),
    /// A gateway VPC endpoint (`vpce-…`): the route the endpoint adds for its
    /// service's prefix list (one route per CIDR of the list).
    VpcEndpoint(ResId),
    /// A transit gateway (`tgw-…`): the packet goes to the gateway's
    /// attachment in this VPC, then the route table associated with it.
    TransitGateway(ResId),
    /// An explicit blackhole.
    Blackhole,
}

impl std::fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTarget::Local => f.write_str("local"),
            RouteTarget::InternetGateway(id)
            | RouteTarget::NatGateway(id)
            | RouteTarget::NetworkInterface(id)
            | RouteTarget::VpcPeering(id)
            | RouteTarget::VpcEndpoint(id)
            | RouteTarget::TransitGateway(id) => write!(f, "{id}"),
            RouteTarget::Blackhole => f.write_str("blackhole"),
        }
    }
}

/// A route's state as `DescribeRouteTables` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteState {
    Active,
    /// The target was deleted or detached: the route drops.
    Blackhole,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Net,
    pub target: RouteTarget,
    pub state: RouteState,
}

impl Route {
    pub fn new(destination: Ipv4Net, target: RouteTarget) -> Self {
        Route {
            destination,
            target,
            state: RouteState::Active,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    pub id: ResId,
    pub vpc: ResId,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternetGateway {
    pub id: ResId,
    /// The VPC it is attached to; an IGW attaches to at most one.
    pub vpc: Option<ResId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatGateway {
    pub id: ResId,
    pub subnet: ResId,
    /// The gateway's own network interface (owner `NatGateway`).
    pub eni: ResId,
    pub private_ip: Ipv4Addr,
    /// Its Elastic IP; the internet gateway maps `private_ip` to it.
    pub public_ip: Ipv4Addr,
}

/// An active VPC peering connection between two VPCs of this topology.
///
/// Only active connections belong in a topology: a pending, rejected or deleted one
/// carries nothing, and routes naming it compile as blackholes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcPeering {
    pub id: ResId,
    pub requester_vpc: ResId,
    pub accepter_vpc: ResId,
}

/// A gateway VPC endpoint of a VPC: routes naming it hand packets to
/// `Port::Endpoint(id)`, and what comes back through that port enters `vpc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcEndpoint {
    pub id: ResId,
    pub vpc: ResId,
}

/// A transit gateway: its available VPC attachments and its route tables.
///
/// The model hands over each route table's effective routes: static routes and
/// the routes propagated from attachments, a static route winning over a
/// propagated one for the same prefix (AWS's route evaluation order), and
/// routes to attachments that are gone already turned into blackholes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitGateway {
    pub id: ResId,
    pub attachments: Vec<TgwAttachment>,
    pub route_tables: Vec<TgwRouteTable>,
}

/// A transit gateway VPC attachment: one interface per subnet (one subnet per
/// Availability Zone), associated with at most one of the gateway's route tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TgwAttachment {
    pub id: ResId,
    pub vpc: ResId,
    /// The attachment's subnets, where its interfaces are.
    pub subnets: Vec<ResId>,
    /// The associated route table (`tgw-rtb-…`): the table that routes what
    /// this attachment hands to the gateway.
    pub route_table: Option<ResId>,
}

/// A transit gateway route table with its effective routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TgwRouteTable {
    pub id: ResId,
    pub routes: Vec<TgwRoute>,
}

/// One transit gateway route: to an attachment, or a blackhole (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TgwRoute {
    pub destination: Ipv4Net,
    pub attachment: Option<ResId>,
    /// Propagated from an attachment's VPC blocks (else static).
    pub propagated: bool,
}

/// An IP protocol as NACL and security-group rules name it (`-1`, `6`, `17`, `1`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `-1`: every protocol, every port.
    All,
    Tcp,
    Udp,
    Icmp,
    /// Another IP protocol number (e.g. 47 for GRE).
    Other(u8),
}

impl Protocol {
    /// From AWS's numeric form: -1 is all.
    pub fn from_number(n: i16) -> Self {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            1 => Protocol::Icmp,
            n if (0..=255).contains(&n) => Protocol::Other(n as u8),
            _ => Protocol::All,
        }
    }

    /// The IP protocol number, or `None` for all.
    pub fn number(self) -> Option<u8> {
        match self {
            Protocol::All => None,
            Protocol::Tcp => Some(6),
            Protocol::Udp => Some(17),
            Protocol::Icmp => Some(1),
            Protocol::Other(n) => Some(n),
        }
    }
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl PortRange {
    pub const ALL: PortRange = PortRange { from: 0, to: 65535 };

    pub fn single(port: u16) -> Self {
        PortRange {
            from: port,
            to: port,
        }
    }

    pub fn new(from: u16, to: u16) -> Self {
        PortRange { from, to }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.from <= port && port <= self.to
    }
}

/// ICMP type and code of a rule; `None` means any (AWS's `-1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct IcmpMatch {
    pub ty: Option<u8>,
    pub code: Option<u8>,
}

impl IcmpMatch {
    pub const ANY: IcmpMatch = IcmpMatch {
        ty: None,
        code: None,
    };

    pub fn matches(&self, ty: u8, code: u8) -> bool {
        self.ty.is_none_or(|t| t == ty) && self.code.is_none_or(|c| c == code)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleAction {
    Allow,
    Deny,
}

/// One network ACL entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaclEntry {
    /// 1–32766; evaluated in ascending order, first match decides.
    pub rule_number: u16,
    pub egress: bool,
    pub protocol: Protocol,
    /// Destination ports, for TCP and UDP; `None` is all ports.
    pub ports: Option<PortRange>,
    /// Type and code, for ICMP; `None` is all.
    pub icmp: Option<IcmpMatch>,
    /// Source CIDR (inbound) or destination CIDR (outbound).
    pub cidr: Ipv4Net,
    pub action: RuleAction,
}

impl NaclEntry {
    /// Rule `n`: all traffic from/to `cidr`, allow or deny.
    pub fn all(rule_number: u16, egress: bool, cidr: Ipv4Net, action: RuleAction) -> Self {
        NaclEntry {
            rule_number,
            egress,
            protocol: Protocol::All,
            ports: None,
            icmp: None,
            cidr,
            action,
        }
    }

    /// Rule `n`: TCP to ports `ports` from/to `cidr`.
    pub fn tcp(
        rule_number: u16,
        egress: bool,
        ports: PortRange,
        cidr: Ipv4Net,
        action: RuleAction,
    ) -> Self {
        NaclEntry {
            rule_number,
            egress,
            protocol: Protocol::Tcp,
            ports: Some(ports),
            icmp: None,
            cidr,
            action,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAcl {
    pub id: ResId,
    pub vpc: ResId,
    pub entries: Vec<NaclEntry>,
}

impl NetworkAcl {
    /// The default network ACL of a VPC: rule 100 allows all, both ways.
    pub fn default_allow(id: &str, vpc: &str) -> Self {
        let any: Ipv4Net = Ipv4Net::default();
        NetworkAcl {
            id: rid(id),
            vpc: rid(vpc),
            entries: vec![
                NaclEntry::all(100, false, any, RuleAction::Allow),
                NaclEntry::all(100, true, any, RuleAction::Allow),
            ],
        }
    }
}

/// Who a security-group rule's peer is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SgPeer {
    Cidr(Ipv4Net),
    /// Interfaces carrying this group, by their private addresses.
    Group(ResId),
}

/// One security-group rule (allow only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRule {
    /// `sgr-…`, when the model has one.
    pub id: Option<ResId>,
    pub protocol: Protocol,
    /// Destination ports for TCP and UDP; `None` is all.
    pub ports: Option<PortRange>,
    /// For ICMP; `None` is all types and codes.
    pub icmp: Option<IcmpMatch>,
    /// Source (ingress) or destination (egress).
    pub peer: SgPeer,
}

impl SgRule {
    pub fn tcp(port: u16, peer: SgPeer) -> Self {
        SgRule {
            id: None,
            protocol: Protocol::Tcp,
            ports: Some(PortRange::single(port)),
            icmp: None,
            peer,
        }
    }

    pub fn all(peer: SgPeer) -> Self {
        SgRule {
            id: None,
            protocol: Protocol::All,
            ports: None,
            icmp: None,
            peer,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: ResId,
    pub vpc: ResId,
    pub ingress: Vec<SgRule>,
    pub egress: Vec<SgRule>,
}

impl SecurityGroup {
    /// A new group: no inbound rule, all outbound.
    pub fn new(id: &str, vpc: &str) -> Self {
        SecurityGroup {
            id: rid(id),
            vpc: rid(vpc),
            ingress: Vec::new(),
            egress: vec![SgRule::all(SgPeer::Cidr(Ipv4Net::default()))],
        }
    }
}

/// What a network interface belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EniOwner {
    Instance(ResId),
    /// A NAT gateway's interface: no security groups apply to it.
    NatGateway(ResId),
    /// An AWS-managed interface that takes no security groups and that no group
    /// filters (a network load balancer node created without groups).
    Unfiltered,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: ResId,
    pub subnet: ResId,
    /// The primary private IPv4 address, or [`NetworkInterface::NO_IPV4`] for an
    /// interface in an IPv6-only subnet (reached by its IPv6 addresses only).
    pub private_ip: Ipv4Addr,
    /// Secondary private addresses: delivered to this interface like the
    /// primary one, and accepted as its own by the source/destination check.
    pub secondary_ips: Vec<Ipv4Addr>,
    /// Auto-assigned public IP or Elastic IP.
    pub public_ip: Option<Ipv4Addr>,
    pub security_groups: Vec<ResId>,
    pub source_dest_check: bool,
    pub owner: EniOwner,
}

impl NetworkInterface {
    /// `private_ip` of an interface without IPv4 (IPv6-only subnet): the IPv4 side
    /// indexes no address for it, so no IPv4 packet is delivered to it.
    pub const NO_IPV4: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

    pub fn new(id: &str, subnet: &str, private_ip: Ipv4Addr, groups: &[&str]) -> Self {
        NetworkInterface {
            id: rid(id),
            subnet: rid(subnet),
            private_ip,
            secondary_ips: Vec::new(),
            public_ip: None,
            security_groups: groups.iter().map(|g| rid(g)).collect(),
            source_dest_check: true,
            owner: EniOwner::Other,
        }
    }
}

/// The world outside the VPCs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternetConfig {
    /// Where public and Elastic IPs live (198.18.0.0/15).
    pub public_ranges: Vec<Ipv4Net>,
    /// The learner's own address as the VPC sees it (203.0.113.0/24).
    pub learner: Option<Ipv4Addr>,
}

impl Default for InternetConfig {
    fn default() -> Self {
        InternetConfig {
            public_ranges: vec![Ipv4Net::new(Ipv4Addr::new(198, 18, 0, 0), 15).expect("valid")],
            learner: Some(Ipv4Addr::new(203, 0, 113, 10)),
        }
    }
}

/// The plain description of a topology, keyed by resource id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyBuilder {
    pub vpcs: BTreeMap<ResId, Vpc>,
    pub subnets: BTreeMap<ResId, Subnet>,
    pub route_tables: BTreeMap<ResId, RouteTable>,
    pub internet_gateways: BTreeMap<ResId, InternetGateway>,
    pub nat_gateways: BTreeMap<ResId, NatGateway>,
    pub network_acls: BTreeMap<ResId, NetworkAcl>,
    pub security_groups: BTreeMap<ResId, SecurityGroup>,
    pub network_interfaces: BTreeMap<ResId, NetworkInterface>,
    pub peerings: BTreeMap<ResId, VpcPeering>,
    pub endpoints: BTreeMap<ResId, VpcEndpoint>,
    pub transit_gateways: BTreeMap<ResId, TransitGateway>,
    pub internet: InternetConfig,
    /// The IPv6 side (blocks, routes, rules, addresses); see `ipv6.rs`.
    pub v6: crate::ipv6::V6Spec,
}

/// A topology that refers to something it does not contain, or holds a
/// duplicate the packet path cannot resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("{what} {id} refers to unknown {kind} {target}")]
    Dangling {
        what: &'static str,
        id: ResId,
        kind: &'static str,
        target: ResId,
    },
    #[error("{what} is keyed as {key} but has id {id}")]
    KeyMismatch {
        what: &'static str,
        key: ResId,
        id: ResId,
    },
    #[error("address {addr} is held by both {a} and {b}")]
    DuplicateAddress { addr: Ipv4Addr, a: ResId, b: ResId },
    #[error("{what} {id} has no CIDR block")]
    NoCidr { what: &'static str, id: ResId },
    #[error("network ACL {acl} has rule number {rule} outside 1-32766")]
    BadRuleNumber { acl: ResId, rule: u16 },
}

impl TopologyBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_vpc(&mut self, v: Vpc) -> &mut Self {
        self.vpcs.insert(v.id.clone(), v);
        self
    }
    pub fn add_subnet(&mut self, s: Subnet) -> &mut Self {
        self.subnets.insert(s.id.clone(), s);
        self
    }
    pub fn add_route_table(&mut self, t: RouteTable) -> &mut Self {
        self.route_tables.insert(t.id.clone(), t);
        self
    }
    pub fn add_internet_gateway(&mut self, g: InternetGateway) -> &mut Self {
        self.internet_gateways.insert(g.id.clone(), g);
        self
    }
    pub fn add_nat_gateway(&mut self, n: NatGateway) -> &mut Self {
        self.nat_gateways.insert(n.id.clone(), n);
        self
    }
    pub fn add_network_acl(&mut self, a: NetworkAcl) -> &mut Self {
        self.network_acls.insert(a.id.clone(), a);
        self
    }
    pub fn add_security_group(&mut self, g: SecurityGroup) -> &mut Self {
        self.security_groups.insert(g.id.clone(), g);
        self
    }
    pub fn add_network_interface(&mut self, e: NetworkInterface) -> &mut Self {
        self.network_interfaces.insert(e.id.clone(), e);
        self
    }
    pub fn add_peering(&mut self, p: VpcPeering) -> &mut Self {
        self.peerings.insert(p.id.clone(), p);
        self
    }
    pub fn add_vpc_endpoint(&mut self, e: VpcEndpoint) -> &mut Self {
        self.endpoints.insert(e.id.clone(), e);
        self
    }
    pub fn add_transit_gateway(&mut self, t: TransitGateway) -> &mut Self {
        self.transit_gateways.insert(t.id.clone(), t);
        self
    }

    /// Validates references and compiles the packet-path indexes.
    pub fn build(self) -> Result<Topology, TopologyError> {
        crate::compiled::compile(self)
    }
}

/// An immutable, validated topology snapshot with its lookup indexes.
#[derive(Clone, Debug)]
pub struct Topology {
    pub(crate) spec: TopologyBuilder,
    pub(crate) c: crate::compiled::Compiled,
}

impl Default for Topology {
    fn default() -> Self {
        TopologyBuilder::default()
            .build()
            .expect("an empty topology is valid")
    }
}

impl Topology {
    /// An empty world: no VPC, only the internet.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The plain description this snapshot was built from, to derive the next one.
    pub fn to_builder(&self) -> TopologyBuilder {
        self.spec.clone()
    }

    /// Read-only access to the plain description.
    pub fn spec(&self) -> &TopologyBuilder {
        &self.spec
    }

    pub fn vpc(&self, id: &str) -> Option<&Vpc> {
        self.spec.vpcs.get(id)
    }
    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.spec.subnets.get(id)
    }
    pub fn network_interface(&self, id: &str) -> Option<&NetworkInterface> {
        self.spec.network_interfaces.get(id)
    }
    pub fn security_group(&self, id: &str) -> Option<&SecurityGroup> {
        self.spec.security_groups.get(id)
    }
    pub fn nat_gateway(&self, id: &str) -> Option<&NatGateway> {
        self.spec.nat_gateways.get(id)
    }

    /// The interface holding `ip` as its private address in `vpc`.
    pub fn eni_by_private_ip(&self, vpc: &str, ip: Ipv4Addr) -> Option<&NetworkInterface> {
        let v = *self.c.vpc_ix.get(vpc)?;
        let e = *self.c.eni_by_ip.get(&(v, u32::from(ip)))?;
        Some(&self.c.enis[e as usize].spec)
    }

    /// The interface holding the public address `ip`.
    pub fn eni_by_public_ip(&self, ip: Ipv4Addr) -> Option<&NetworkInterface> {
        let e = *self.c.eni_by_public.get(&u32::from(ip))?;
        Some(&self.c.enis[e as usize].spec)
    }

    /// Whether `ip` lies in the public range (198.18.0.0/15 by default).
    pub fn is_public_range(&self, ip: Ipv4Addr) -> bool {
        self.spec
            .internet
            .public_ranges
            .iter()
            .any(|n| n.contains(&ip))
    }
}

// Keep `HashMap` + `FxBuild` visible to the compiled module through one path.
pub(crate) type FxMap<K, V> = HashMap<K, V, FxBuild>;
