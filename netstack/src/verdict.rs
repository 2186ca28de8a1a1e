//! What the fabric decided about one packet, and why.
//!
//! A [`Verdict`] lists the hops a packet took through the VPC (security
//! groups, network ACLs, route tables, gateways) and its [`Outcome`]: the port
//! it is delivered to, or a typed [`DropReason`] naming the resource and rule
//! that stopped it. Both render as learner-facing English through `Display`;
//! turning them into flow-log records, reachability-analyzer codes or lab
//! feedback is left to the callers.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::port::{Port, ResId};

/// Which way a packet crosses a network ACL or security group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Entering a subnet (NACL) or an interface (security group).
    Inbound,
    /// Leaving a subnet (NACL) or an interface (security group).
    Outbound,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        })
    }
}

/// Why a packet could not be parsed or forwarded as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than the headers it announces.
    Truncated,
    /// Not IP version 4.
    NotIpv4,
    /// The IPv4 header carries options (IHL > 5); vpclab does not forward them.
    IpOptions,
    /// A fragment (MF set or a non-zero offset); vpclab does not reassemble.
    Fragment,
    /// The IPv4 header checksum is wrong.
    BadChecksum,
    /// A length field disagrees with the bytes present.
    BadLength,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::Truncated => "truncated headers",
            Malformed::NotIpv4 => "not an IPv4 packet",
            Malformed::IpOptions => "IPv4 options are not supported",
            Malformed::Fragment => "IP fragments are not supported",
            Malformed::BadChecksum => "bad IPv4 header checksum",
            Malformed::BadLength => "inconsistent length fields",
        })
    }
}

/// The typed reason for a drop. Every variant names the resource (and rule,
/// where there is one) that decided, so that a learner can go and fix it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A network ACL entry denied the packet; `rule: None` is the final `*` rule.
    NaclDeny {
        acl: ResId,
        subnet: ResId,
        rule: Option<u16>,
        direction: Direction,
    },
    /// No rule of any security group on the interface allows the packet, and
    /// it belongs to no tracked connection.
    SecurityGroupNoMatch { eni: ResId, direction: Direction },
    /// The route table has no route covering the destination.
    NoRoute { table: ResId, dst: Ipv4Addr },
    /// The matching route is a blackhole (its target was deleted or detached).
    Blackhole { table: ResId, route: Ipv4Net },
    /// The internet gateway cannot translate: the sender has no public address.
    IgwNoPublicIp { igw: ResId, src: Ipv4Addr },
    /// Traffic from the internet to a public address that nothing holds.
    IgwNoAssociation { dst: Ipv4Addr },
    /// The interface holding the public address is in a VPC without an
    /// attached internet gateway.
    IgwNotAttached { vpc: ResId, dst: Ipv4Addr },
    /// The internet cannot route to this (private or link-local) address.
    InternetNoRoute { dst: Ipv4Addr },
    /// A NAT gateway only forwards replies to connections started from
    /// inside; this packet started from outside (or its mapping idled out).
    NatInboundNotTracked { nat: ResId, dst: Ipv4Addr },
    /// The NAT gateway has no free port left toward this destination.
    NatPortsExhausted {
        nat: ResId,
        dst: Ipv4Addr,
        dst_port: u16,
    },
    /// The NAT gateway translates TCP, UDP and ICMP echo only.
    NatUnsupportedProtocol { nat: ResId, protocol: u8 },
    /// The interface's source/destination check refused a packet that is not
    /// from (outbound) or to (inbound) its own address.
    SourceDestCheck {
        eni: ResId,
        direction: Direction,
        addr: Ipv4Addr,
    },
    /// No network interface holds the destination address in the VPC.
    NoInterface { vpc: ResId, dst: Ipv4Addr },
    /// DNS resolution (`enableDnsSupport`) is off: the resolver does not answer.
    ResolverDisabled { vpc: ResId },
    /// A link-local service vpclab does not provide (only the resolver at
    /// 169.254.169.253 and metadata at 169.254.169.254 exist).
    LinkLocalUnavailable { dst: Ipv4Addr },
    /// The packet came from a port the topology does not know (a deleted
    /// interface, a resolver of a deleted VPC…), or went back to a port it
    /// may not address.
    UnknownPort,
    /// A VPC peering connection refused a packet whose destination (or source)
    /// is not inside the VPC on the far (near) side: AWS peering is not
    /// transitive, and there is no edge-to-edge routing through a peer's
    /// internet gateway, NAT gateway, VPN or another peering. `addr` is the
    /// address outside `vpc`.
    PeeringNotTransitive {
        peering: ResId,
        vpc: ResId,
        addr: Ipv4Addr,
        /// True when the destination is outside the peer VPC; false when the
        /// source is outside the sending VPC.
        destination: bool,
    },
    /// A route sends the packet to a transit gateway, but the attachment it
    /// entered through is associated with none of the gateway's route tables.
    TgwNoAssociation { tgw: ResId, attachment: ResId },
    /// A route sends the packet to a transit gateway whose attachment in this VPC has
    /// no subnet in the sender's Availability Zone: AWS forwards nothing from that
    /// zone to the gateway.
    TgwNoSubnetInZone {
        tgw: ResId,
        attachment: ResId,
        zone: ResId,
    },
    /// The transit gateway route table has no route covering the destination.
    TgwNoRoute {
        tgw: ResId,
        table: ResId,
        dst: Ipv4Addr,
    },
    /// The matching transit gateway route is a blackhole (created with
    /// `--blackhole`, or its attachment is gone).
    TgwBlackhole {
        tgw: ResId,
        table: ResId,
        route: Ipv4Net,
    },
    /// The TTL ran out at a gateway.
    TtlExceeded { at: ResId },
    /// The packet kept being routed between gateways (a routing loop), such
    /// as a NAT gateway whose own subnet routes 0.0.0.0/0 to a NAT gateway.
    RoutingLoop,
    /// The bytes are not a packet vpclab forwards.
    Malformed(Malformed),
    /// IPv6 (`ipv6.rs`): the egress-only internet gateway refused a packet from the
    /// internet that is not a reply to a connection the instance started.
    EgressOnlyInbound { eigw: ResId, dst: Ipv6Addr },
    /// IPv6: no route covers the destination.
    NoRouteV6 { table: ResId, dst: Ipv6Addr },
    /// IPv6: the matching route is a blackhole.
    BlackholeV6 { table: ResId, route: Ipv6Net },
    /// IPv6: no interface of the VPC has the destination address.
    NoInterfaceV6 { vpc: ResId, dst: Ipv6Addr },
    /// IPv6: no VPC holds the destination address.
    InternetNoRouteV6 { dst: Ipv6Addr },
    /// IPv6: the VPC has neither an internet gateway nor a matching egress-only one.
    IgwNotAttachedV6 { vpc: ResId, dst: Ipv6Addr },
    /// IPv6: an interface sent from an address that is not one of its own.
    SourceDestCheckV6 { eni: ResId, addr: Ipv6Addr },
    /// IPv6: a route sent the packet to an interface whose source/destination check
    /// is on, and the destination `addr` is not one of its IPv6 addresses.
    DestCheckV6 { eni: ResId, addr: Ipv6Addr },
    /// IPv6: the egress-only internet gateway refused to send out a packet of a
    /// connection the internet started (it came in through the internet gateway, and
    /// the subnet routes the reply to the egress-only gateway, which forwards only
    /// connections the instance started).
    EgressOnlyNotInitiated {
        eigw: ResId,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    },
    /// IPv6 over a VPC peering connection: the destination (or source) is not in the
    /// IPv6 blocks of the VPC on the far (near) side; see `PeeringNotTransitive`.
    PeeringNotTransitiveV6 {
        peering: ResId,
        vpc: ResId,
        addr: Ipv6Addr,
        destination: bool,
    },
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DropReason::*;
        match self {
            NaclDeny {
                acl,
                subnet,
                rule: Some(rule),
                direction,
            } => write!(
                f,
                "blocked by network ACL {acl} {direction} rule {rule} (subnet {subnet})"
            ),
            NaclDeny {
                acl,
                subnet,
                rule: None,
                direction,
            } => write!(
                f,
                "blocked by network ACL {acl} {direction} rule * (no rule allows it; subnet {subnet})"
            ),
            SecurityGroupNoMatch { eni, direction } => write!(
                f,
                "no {direction} security group rule of {eni} allows it (security groups only allow; an unmatched packet is dropped silently)"
            ),
            NoRoute { table, dst } => write!(f, "no route to {dst} in route table {table}"),
            Blackhole { table, route } => write!(
                f,
                "route {route} in route table {table} is a blackhole (its target no longer exists)"
            ),
            IgwNoPublicIp { igw, src } => write!(
                f,
                "internet gateway {igw} dropped it: {src} has no public or Elastic IP address"
            ),
            IgwNoAssociation { dst } => {
                write!(f, "no network interface holds the public address {dst}")
            }
            IgwNotAttached { vpc, dst } => write!(
                f,
                "{dst} belongs to {vpc}, which has no attached internet gateway"
            ),
            InternetNoRoute { dst } => write!(
                f,
                "the internet has no route to {dst} (private addresses are reachable only inside their VPC)"
            ),
            NatInboundNotTracked { nat, dst } => write!(
                f,
                "NAT gateway {nat} dropped traffic to {dst} that was not a reply (NAT gateways accept no inbound connections)"
            ),
            NatPortsExhausted { nat, dst, dst_port } => write!(
                f,
                "NAT gateway {nat} has no free port left toward {dst}:{dst_port}"
            ),
            NatUnsupportedProtocol { nat, protocol } => write!(
                f,
                "NAT gateway {nat} does not translate IP protocol {protocol} (only TCP, UDP and ICMP echo)"
            ),
            SourceDestCheck {
                eni,
                direction: Direction::Outbound,
                addr,
            } => write!(
                f,
                "source/destination check of {eni} dropped a packet from {addr}, which is not its address"
            ),
            SourceDestCheck {
                eni,
                direction: Direction::Inbound,
                addr,
            } => write!(
                f,
                "source/destination check of {eni} dropped a packet for {addr}, which is not its address"
            ),
            NoInterface { vpc, dst } => {
                write!(f, "no network interface has the address {dst} in {vpc}")
            }
            ResolverDisabled { vpc } => {
                write!(
                    f,
                    "DNS resolution is disabled in {vpc} (enableDnsSupport is false)"
                )
            }
            LinkLocalUnavailable { dst } => {
                write!(f, "no link-local service answers at {dst}")
            }
            UnknownPort => f.write_str("the packet came from an unknown port"),
            PeeringNotTransitive {
                peering,
                vpc,
                addr,
                destination: true,
            } => write!(
                f,
                "VPC peering connection {peering} carries only traffic for {vpc}'s own CIDR blocks, and {addr} is not in them (peering is not transitive: no route through the peer VPC to another peering, an internet gateway, a NAT gateway or a VPN)"
            ),
            PeeringNotTransitive {
                peering,
                vpc,
                addr,
                destination: false,
            } => write!(
                f,
                "VPC peering connection {peering} carries only traffic from {vpc}'s own CIDR blocks, and the source {addr} is not in them (peering is not transitive: no edge-to-edge routing)"
            ),
            TgwNoAssociation { tgw, attachment } => write!(
                f,
                "transit gateway {tgw} has no route table for attachment {attachment} (associate the attachment with a transit gateway route table)"
            ),
            TgwNoSubnetInZone {
                tgw,
                attachment,
                zone,
            } => write!(
                f,
                "transit gateway {tgw}'s attachment {attachment} has no subnet in {zone}, the sender's Availability Zone: resources in a zone without an attachment subnet cannot reach the transit gateway (add a subnet of {zone} to the attachment)"
            ),
            TgwNoRoute { tgw, table, dst } => write!(
                f,
                "no route to {dst} in transit gateway route table {table} of {tgw}"
            ),
            TgwBlackhole { tgw, table, route } => write!(
                f,
                "route {route} in transit gateway route table {table} of {tgw} is a blackhole: the transit gateway drops what it matches"
            ),
            TtlExceeded { at } => write!(f, "time to live exceeded at {at}"),
            RoutingLoop => f.write_str(
                "routing loop: the packet crossed too many gateways (a NAT gateway's own subnet must route 0.0.0.0/0 to an internet gateway)",
            ),
            Malformed(m) => write!(f, "malformed packet: {m}"),
            EgressOnlyInbound { eigw, dst } => write!(
                f,
                "egress-only internet gateway {eigw} refused a connection to {dst} initiated from the internet (it lets out IPv6 traffic the instance starts, and only the replies back in)"
            ),
            EgressOnlyNotInitiated { eigw, src, dst } => write!(
                f,
                "egress-only internet gateway {eigw} refused to send {src} -> {dst}: the connection was started from the internet (through the internet gateway), and an egress-only gateway forwards only connections the instance starts (route the reply to the internet gateway)"
            ),
            PeeringNotTransitiveV6 {
                peering,
                vpc,
                addr,
                destination: true,
            } => write!(
                f,
                "VPC peering connection {peering} carries only traffic for {vpc}'s own IPv6 CIDR blocks, and {addr} is not in them (peering is not transitive)"
            ),
            PeeringNotTransitiveV6 {
                peering,
                vpc,
                addr,
                destination: false,
            } => write!(
                f,
                "VPC peering connection {peering} carries only traffic from {vpc}'s own IPv6 CIDR blocks, and the source {addr} is not in them (peering is not transitive: no edge-to-edge routing)"
            ),
            NoRouteV6 { table, dst } => write!(f, "no route to {dst} in route table {table}"),
            BlackholeV6 { table, route } => write!(
                f,
                "route {route} in route table {table} is a blackhole (its target no longer exists or cannot carry IPv6)"
            ),
            NoInterfaceV6 { vpc, dst } => {
                write!(f, "no network interface has the IPv6 address {dst} in {vpc}")
            }
            InternetNoRouteV6 { dst } => write!(
                f,
                "the internet has no route to {dst} (no VPC holds that IPv6 address)"
            ),
            IgwNotAttachedV6 { vpc, dst } => write!(
                f,
                "{dst} belongs to {vpc}, which has no internet gateway (and no egress-only gateway that started this connection)"
            ),
            SourceDestCheckV6 { eni, addr } => write!(
                f,
                "source/destination check of {eni} dropped a packet from {addr}, which is not one of its IPv6 addresses"
            ),
            DestCheckV6 { eni, addr } => write!(
                f,
                "source/destination check of {eni} dropped a packet routed to it for {addr}, which is not one of its IPv6 addresses (disable the check on an appliance's interface)"
            ),
        }
    }
}

/// What the fabric does with a packet in the end.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Hand the (possibly rewritten) packet to this port.
    Deliver(Port),
    /// Drop it, for this reason.
    Drop(DropReason),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Deliver(port) => write!(f, "delivered to {port}"),
            Outcome::Drop(reason) => write!(f, "dropped: {reason}"),
        }
    }
}

/// Which rule (or table entry) a hop matched.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RuleRef {
    /// A numbered network ACL entry.
    NaclEntry(u16),
    /// The final `*` entry of a network ACL.
    NaclDefault,
    /// A security group rule: the group, the rule's id when it has one, and
    /// its position among the group's rules of that direction.
    SecurityGroupRule {
        group: ResId,
        rule_id: Option<ResId>,
        index: usize,
    },
    /// A connection already tracked (the reply rule of stateful groups).
    Tracked,
    /// A route, by its destination.
    Route(Ipv4Net),
    /// An IPv6 route, by its destination.
    Route6(Ipv6Net),
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleRef::NaclEntry(n) => write!(f, "rule {n}"),
            RuleRef::NaclDefault => f.write_str("rule *"),
            RuleRef::SecurityGroupRule {
                group,
                rule_id: Some(id),
                ..
            } => {
                write!(f, "{id} of {group}")
            }
            RuleRef::SecurityGroupRule {
                group,
                rule_id: None,
                index,
            } => {
                write!(f, "rule #{} of {group}", index + 1)
            }
            RuleRef::Tracked => f.write_str("tracked connection"),
            RuleRef::Route(net) => write!(f, "route {net}"),
            RuleRef::Route6(net) => write!(f, "route {net}"),
        }
    }
}

/// What a component did with the packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HopAction {
    /// A security group (or connection tracking) let the packet through.
    SecurityGroupAllow(Direction),
    /// No security group rule matched.
    SecurityGroupDeny(Direction),
    /// The source/destination check passed.
    SourceDestCheckPass(Direction),
    /// A network ACL allowed the packet.
    NaclAllow(Direction),
    /// A network ACL denied the packet.
    NaclDeny(Direction),
    /// Both ends are in one subnet: no network ACL applies.
    SameSubnet,
    /// A route matched; the string names the target.
    Route(String),
    /// The internet gateway translated an address 1:1 (`from` → `to`).
    IgwTranslate { from: Ipv4Addr, to: Ipv4Addr },
    /// The NAT gateway translated the source (outbound) or destination (reply).
    NatTranslate {
        from: (Ipv4Addr, u16),
        to: (Ipv4Addr, u16),
    },
    /// The packet crossed a VPC peering connection into this VPC.
    PeeringCross { to: ResId },
    /// A transit gateway route table sent the packet to an attachment; it
    /// leaves the gateway into `vpc` at the attachment's interface in `subnet`.
    TgwForward {
        tgw: ResId,
        attachment: ResId,
        vpc: ResId,
        subnet: ResId,
    },
    /// The service's reply came back through a gateway VPC endpoint into this VPC.
    EndpointReturn { to: ResId },
    /// Traffic to the resolver or metadata service: exempt from NACLs and SGs.
    Exempt,
    /// An IPv6 packet crossed an internet or egress-only gateway (no translation).
    Ipv6Gateway,
    /// The packet was handed to a port.
    Deliver,
    /// The packet was dropped here.
    Drop,
}

impl fmt::Display for HopAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HopAction::SecurityGroupAllow(d) => write!(f, "security group allowed {d}"),
            HopAction::SecurityGroupDeny(d) => write!(f, "no security group rule allows {d}"),
            HopAction::SourceDestCheckPass(d) => {
                write!(f, "source/destination check passed ({d})")
            }
            HopAction::NaclAllow(d) => write!(f, "network ACL allowed {d}"),
            HopAction::NaclDeny(d) => write!(f, "network ACL denied {d}"),
            HopAction::SameSubnet => f.write_str("same subnet: no network ACL applies"),
            HopAction::Route(target) => write!(f, "routed to {target}"),
            HopAction::IgwTranslate { from, to } => write!(f, "translated {from} to {to}"),
            HopAction::NatTranslate { from, to } => {
                write!(f, "translated {}:{} to {}:{}", from.0, from.1, to.0, to.1)
            }
            HopAction::PeeringCross { to } => write!(f, "crossed the peering into {to}"),
            HopAction::TgwForward {
                tgw,
                attachment,
                vpc,
                subnet,
            } => write!(
                f,
                "transit gateway {tgw} sent it to attachment {attachment}: enters {vpc} in {subnet}"
            ),
            HopAction::EndpointReturn { to } => {
                write!(
                    f,
                    "came back from the service through the endpoint into {to}"
                )
            }
            HopAction::Exempt => f.write_str(
                "resolver/metadata traffic: exempt from network ACLs and security groups",
            ),
            HopAction::Ipv6Gateway => {
                f.write_str("crossed the gateway (IPv6: no address translation)")
            }
            HopAction::Deliver => f.write_str("delivered"),
            HopAction::Drop => f.write_str("dropped"),
        }
    }
}

/// One step of a packet's walk.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hop {
    /// The resource that acted: `sg-…`, `acl-…`, `rtb-…`, `igw-…`, `nat-…`, `eni-…`.
    pub component: ResId,
    /// What it did.
    pub action: HopAction,
    /// The rule or route that decided, where there is one.
    pub rule: Option<RuleRef>,
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.component, self.action)?;
        if let Some(rule) = &self.rule {
            write!(f, " by {rule}")?;
        }
        Ok(())
    }
}

/// The fabric's decision about one packet: the hops it took, and its fate.
///
/// [`crate::Fabric::process`] fills `hops` only when hop recording is on
/// ([`crate::Fabric::set_record_hops`]); [`crate::Fabric::explain`] always does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub hops: Vec<Hop>,
    pub outcome: Outcome,
}

impl Verdict {
    /// True when the packet is delivered.
    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, Outcome::Deliver(_))
    }

    /// The drop reason, when the packet is dropped.
    pub fn drop_reason(&self) -> Option<&DropReason> {
        match &self.outcome {
            Outcome::Drop(r) => Some(r),
            Outcome::Deliver(_) => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, hop) in self.hops.iter().enumerate() {
            writeln!(f, "{:>2}. {hop}", i + 1)?;
        }
        write!(f, "{}", self.outcome)
    }
}
