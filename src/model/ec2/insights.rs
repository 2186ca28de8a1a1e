//! Reachability Analyzer (Network Insights): paths, analyses, and the walk behind both
//! them and `vpclab trace`.
//!
//! A path names a source (an instance, a network interface, an internet gateway), a
//! destination (the same kinds, or an IP address), a protocol and a destination port.
//! An analysis compiles the world into the topology the fabric runs
//! ([`super::compile`]) and asks [`Fabric::explain_round_trip`] — the walk that decides
//! every real packet — for the forward path of a new connection and, when it arrives,
//! the path of its reply. Like AWS's analyzer it reads configuration only: the fabric is
//! a fresh one, so no live connection tracking or NAT mapping colours the answer, and
//! no packet is sent. The hops become AWS's `PathComponent`s (the ACL rule, security
//! group rule or route that acted, looked up in the model); a drop becomes one
//! `Explanation` whose code comes from [`explanation_code`], the one table from
//! netstack's `DropReason` to AWS's published explanation codes.
//!
//! An analysis is a snapshot: its components are stored when it runs, so describing it
//! later shows the network as it was, as on AWS.
//!
//! IPv6: `vpclab trace` walks IPv6 flows too ([`WalkQuery::ipv6`], or an IPv6 address at
//! either end), through [`Fabric::explain_round_trip6`], the same IPv6 decision the
//! fabric takes on every IPv6 packet; hops, drop reasons and explanations are the same
//! types. The Reachability Analyzer API stays IPv4, as AWS's does (`SourceIp` and
//! `DestinationIp` are dotted-quad addresses in its API reference).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vpclab_netstack::internet::{LEARNER_ADDR, LEARNER_ADDR6};
use vpclab_netstack::ipv6::Pkt6;
use vpclab_netstack::{DropReason, Fabric, Flow, FlowProto, HopAction, Port, RuleRef, Verdict};

use super::instance::InstanceState;
use super::route_table::RouteTarget;
use super::sg::Peer;
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, Timestamp, World};

/// A host on the internet that is not the learner (a documentation address), the
/// default far end of paths from or to an internet gateway.
pub const INTERNET_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);

/// The IPv6 counterpart of [`INTERNET_ADDR`]: an address of vpclab's own documentation
/// prefix on the internet (3fff::/20), outside every VPC.
pub const INTERNET_ADDR6: Ipv6Addr = Ipv6Addr::new(0x3fff, 0x198, 0x51, 0x100, 0, 0, 0, 0x77);

/// The source port of analysed packets when no filter names one: an ephemeral port, as
/// a client's connection would use.
pub const DEFAULT_SOURCE_PORT: u16 = 40001;

/// THE table from the fabric's drop reasons to AWS's explanation codes ("Reachability
/// Analyzer explanation codes", VPC documentation). `None` where no published code fits
/// (docs/fidelity.md lists them); the explanation then carries no code.
pub fn explanation_code(r: &DropReason) -> Option<&'static str> {
    use DropReason::*;
    Some(match r {
        // "Inbound or outbound traffic for a subnet must be admitted by the network ACL."
        NaclDeny { .. } => "SUBNET_ACL_RESTRICTION",
        // "This security group has no inbound or outbound rules that apply."
        SecurityGroupNoMatch { .. } => "ENI_SG_RULES_MISMATCH",
        // "The route table does not have an applicable route to the destination."
        NoRoute { .. } => "NO_ROUTE_TO_DESTINATION",
        // "This route is not in a functional state." (a blackhole route)
        Blackhole { .. } => "BAD_STATE_ROUTE",
        // "… if the source address is not paired with a public IP address."
        IgwNoPublicIp { .. } => "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS",
        // "… destination address that is not the public IP address of a network
        // interface in the VPC with an available attachment."
        IgwNoAssociation { .. } | IgwNotAttached { .. } => "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS",
        // "Internet gateways reject outbound traffic with destination addresses in the
        // private IP address range."
        InternetNoRoute { .. } => "IGW_DESTINATION_ADDRESS_NOT_IN_RFC1918_EGRESS",
        // "NAT gateways can only transmit traffic that originates from network
        // interfaces within the same VPC."
        NatInboundNotTracked { .. } => "NGW_REQUIRES_SOURCE_IN_VPC",
        // "This component only accepts traffic with specific protocols."
        NatUnsupportedProtocol { .. } => "PROTOCOL_RESTRICTION",
        SourceDestCheck { .. } => "ENI_SOURCE_DEST_CHECK_RESTRICTION",
        // "The network component can't deliver the packet to any possible destination."
        NoInterface { .. } | LinkLocalUnavailable { .. } => "NO_POSSIBLE_DESTINATION",
        // "This component is not in a functional state." (the VPC's resolver is off)
        ResolverDisabled { .. } => "BAD_STATE",
        // "The component is not associated with a VPC in your account."
        UnknownPort => "UNASSOCIATED_COMPONENT",
        // "Reachability Analyzer was unable to find a path."
        TtlExceeded { .. } | RoutingLoop => "NO_PATH",
        // "Traffic can traverse this peering connection only if the destination or
        // source address is within the CIDR block of the destination VPC."
        PeeringNotTransitive { .. } => "PCX_REQUIRES_ADDRESS_IN_VPC_CIDR",
        // The route-table codes apply to transit gateway route tables too.
        TgwNoRoute { .. } => "NO_ROUTE_TO_DESTINATION",
        TgwBlackhole { .. } => "BAD_STATE_ROUTE",
        // No published code names an attachment without a route table association.
        TgwNoAssociation { .. } => return None,
        // Nor one for a sender in a zone where the attachment has no subnet.
        TgwNoSubnetInZone { .. } => return None,
        // A fresh fabric has no NAT mappings, and analysed packets are well formed: an
        // analysis cannot meet these, and AWS publishes no code for them.
        NatPortsExhausted { .. } | Malformed(_) => return None,
        // IPv6 drops (met by `vpclab trace`; the analyzer's API is IPv4 only): the codes
        // of their IPv4 counterparts.
        NoRouteV6 { .. } => "NO_ROUTE_TO_DESTINATION",
        BlackholeV6 { .. } => "BAD_STATE_ROUTE",
        NoInterfaceV6 { .. } | InternetNoRouteV6 { .. } => "NO_POSSIBLE_DESTINATION",
        IgwNotAttachedV6 { .. } => "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS",
        SourceDestCheckV6 { .. } | DestCheckV6 { .. } => "ENI_SOURCE_DEST_CHECK_RESTRICTION",
        EgressOnlyInbound { .. } | EgressOnlyNotInitiated { .. } => return None,
        PeeringNotTransitiveV6 { .. } => "PCX_REQUIRES_ADDRESS_IN_VPC_CIDR",
    })
}

/// A port range filter (`FilterPortRange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpan {
    pub from: u16,
    pub to: u16,
}

/// `PathFilter`: header values the analysed packet must have at one end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathFilter {
    pub source_address: Option<Ipv4Addr>,
    pub source_ports: Option<PortSpan>,
    pub destination_address: Option<Ipv4Addr>,
    pub destination_ports: Option<PortSpan>,
}

impl PathFilter {
    fn is_empty(&self) -> bool {
        *self == PathFilter::default()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkInsightsPath {
    pub id: String,
    pub region: String,
    pub source: String,
    pub destination: Option<String>,
    pub source_ip: Option<Ipv4Addr>,
    pub destination_ip: Option<Ipv4Addr>,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub destination_port: Option<u16>,
    pub filter_at_source: Option<PathFilter>,
    pub filter_at_destination: Option<PathFilter>,
    pub created: Timestamp,
}

impl Resource for NetworkInsightsPath {
    const KIND: &'static str = "network_insights_path";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for NetworkInsightsPath {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        let opt = |v: Option<String>| v.into_iter().collect::<Vec<_>>();
        let fs = self.filter_at_source.clone().unwrap_or_default();
        let fd = self.filter_at_destination.clone().unwrap_or_default();
        Some(match name {
            "source" => vec![self.source.clone()],
            "destination" => opt(self.destination.clone()),
            "source-ip" => opt(self.source_ip.map(|a| a.to_string())),
            "destination-ip" => opt(self.destination_ip.map(|a| a.to_string())),
            "protocol" => vec![self.protocol.clone()],
            "destination-port" => opt(self.destination_port.map(|p| p.to_string())),
            "filter-at-source.source-address" => opt(fs.source_address.map(|a| a.to_string())),
            "filter-at-source.destination-address" => {
                opt(fs.destination_address.map(|a| a.to_string()))
            }
            "filter-at-source.destination-port" => {
                opt(fs.destination_ports.map(|p| p.from.to_string()))
            }
            "filter-at-destination.source-address" => opt(fd.source_address.map(|a| a.to_string())),
            "filter-at-destination.destination-address" => {
                opt(fd.destination_address.map(|a| a.to_string()))
            }
            "filter-at-destination.destination-port" => {
                opt(fd.destination_ports.map(|p| p.from.to_string()))
            }
            _ => return None,
        })
    }
}

/// `AnalysisComponent`: a resource by id, ARN and Name tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub id: String,
    pub arn: String,
    pub name: Option<String>,
}

/// `AnalysisAclRule`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRuleInfo {
    pub cidr: String,
    pub egress: bool,
    pub ports: Option<PortSpan>,
    pub protocol: String,
    pub rule_action: String,
    /// The rule number; 32767 is the final `*` rule, as AWS numbers it.
    pub rule_number: i32,
}

/// `AnalysisSecurityGroupRule`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgRuleInfo {
    pub cidr: Option<String>,
    /// The referenced group, for a rule whose peer is a group.
    pub peer_group: Option<String>,
    /// The referenced prefix list, for a rule whose peer is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_list_id: Option<String>,
    /// `ingress` or `egress`.
    pub direction: String,
    pub security_group_id: String,
    pub ports: Option<PortSpan>,
    pub protocol: String,
}

/// `AnalysisRouteTableRoute`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    pub destination_cidr: String,
    /// `gatewayId`, `natGatewayId`, `networkInterfaceId`, `instanceId`,
    /// `vpcPeeringConnectionId`, or `gatewayId` = `local`.
    pub target_field: String,
    pub target: String,
    pub origin: String,
    /// `active` or `blackhole`.
    pub state: String,
}

/// `AnalysisPacketHeader`: the packet as a component sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub protocol: String,
    pub source_port: Option<u16>,
    pub destination_port: Option<u16>,
}

impl Header {
    fn of(p: &Probe) -> Header {
        let f = match p {
            Probe::V4(f) => f,
            Probe::V6(p) => {
                let (protocol, sp, dp) = match p.proto {
                    6 => ("tcp", Some(p.sport), Some(p.dport)),
                    17 => ("udp", Some(p.sport), Some(p.dport)),
                    vpclab_netstack::ipv6::ICMPV6 => ("icmpv6", None, None),
                    _ => ("other", None, None),
                };
                return Header {
                    source: p.src.into(),
                    destination: p.dst.into(),
                    protocol: protocol.into(),
                    source_port: sp,
                    destination_port: dp,
                };
            }
        };
        let (protocol, sp, dp) = match f.proto {
            FlowProto::Tcp { sport, dport, .. } => ("tcp", Some(sport), Some(dport)),
            FlowProto::Udp { sport, dport } => ("udp", Some(sport), Some(dport)),
            FlowProto::Icmp { .. } => ("icmp", None, None),
            FlowProto::Other(_) => ("other", None, None),
        };
        Header {
            source: f.src.into(),
            destination: f.dst.into(),
            protocol: protocol.into(),
            source_port: sp,
            destination_port: dp,
        }
    }
}

/// `PathComponent`: one step of the walk, with the rule that acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathComponent {
    pub sequence: u32,
    pub component: Component,
    /// What the component did, in the fabric's words (not an AWS field: the console
    /// and `vpclab trace` show it).
    pub action: String,
    pub acl_rule: Option<AclRuleInfo>,
    pub sg_rule: Option<SgRuleInfo>,
    pub route: Option<RouteInfo>,
    pub subnet: Option<Component>,
    pub vpc: Option<Component>,
    pub outbound_header: Option<Header>,
    pub inbound_header: Option<Header>,
}

/// `Explanation`: why the path stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub code: Option<String>,
    /// `ingress` or `egress`, where the drop has a direction.
    pub direction: Option<String>,
    pub component: Option<Component>,
    pub acl: Option<Component>,
    pub acl_rule: Option<AclRuleInfo>,
    pub security_groups: Vec<Component>,
    pub network_interface: Option<Component>,
    pub subnet: Option<Component>,
    pub vpc: Option<Component>,
    pub route_table: Option<Component>,
    pub route: Option<RouteInfo>,
    pub internet_gateway: Option<Component>,
    pub nat_gateway: Option<Component>,
    pub address: Option<IpAddr>,
    /// The fabric's sentence for the drop (vpclab's, not an AWS field).
    pub message: String,
    /// Whether the reply (return path) rather than the request was dropped.
    pub on_return_path: bool,
}

/// The outcome of an analysis, stored with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisResult {
    pub path_found: bool,
    pub forward: Vec<PathComponent>,
    pub back: Vec<PathComponent>,
    pub explanations: Vec<Explanation>,
    /// The destination port that was analysed (the path may leave it open).
    pub port: Option<u16>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkInsightsAnalysis {
    pub id: String,
    pub region: String,
    pub path_id: String,
    pub started: Timestamp,
    pub filter_in_arns: Vec<String>,
    /// `Ok` for a finished analysis, `Err(message)` for a failed one.
    pub result: Result<AnalysisResult, String>,
}

impl NetworkInsightsAnalysis {
    /// `running` in the answer to StartNetworkInsightsAnalysis, then `succeeded` or
    /// `failed`: vpclab computes the analysis while answering, so any later read finds it
    /// finished.
    pub fn status(&self) -> &'static str {
        match self.result {
            Ok(_) => "succeeded",
            Err(_) => "failed",
        }
    }
}

impl Resource for NetworkInsightsAnalysis {
    const KIND: &'static str = "network_insights_analysis";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for NetworkInsightsAnalysis {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "path-found" => match &self.result {
                Ok(r) => vec![r.path_found.to_string()],
                Err(_) => vec![],
            },
            "status" => vec![self.status().to_string()],
            _ => return None,
        })
    }
}

pub fn path_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidNetworkInsightsPathId.NotFound",
        "network insights path",
        id,
    )
}

pub fn analysis_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidNetworkInsightsAnalysisId.NotFound",
        "network insights analysis",
        id,
    )
}

/// The parameters of CreateNetworkInsightsPath.
#[derive(Clone, Debug, Default)]
pub struct CreatePath {
    pub source: Option<String>,
    pub destination: Option<String>,
    pub source_ip: Option<String>,
    pub destination_ip: Option<String>,
    pub protocol: Option<String>,
    pub destination_port: Option<i64>,
    pub filter_at_source: PathFilter,
    pub filter_at_destination: PathFilter,
    pub tag_specs: Vec<TagSpec>,
}

/// The protocol of a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "icmp" => Some(Proto::Icmp),
            _ => None,
        }
    }
}

/// What a walk asks: ends (ids, `internet`, `me`, or an address), protocol and ports.
#[derive(Clone, Debug)]
pub struct WalkQuery {
    pub source: String,
    /// `None` when the destination is only an address (`destination_ip`).
    pub destination: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub destination_ip: Option<IpAddr>,
    pub proto: Proto,
    pub source_port: u16,
    pub destination_port: u16,
    /// Walk IPv6: instances and interfaces stand for their first IPv6 address,
    /// `internet` and `me` for their IPv6 addresses. An IPv6 address at either end
    /// (in `source`, `destination` or the `_ip` fields) asks for IPv6 too.
    pub ipv6: bool,
}

impl WalkQuery {
    /// Whether this walk is an IPv6 one; an error when its ends mix the families.
    fn family6(&self) -> ApiResult<bool> {
        let lit = |s: Option<&str>| s.and_then(|s| s.parse::<IpAddr>().ok());
        let addrs = [
            lit(Some(&self.source)),
            lit(self.destination.as_deref()),
            self.source_ip,
            self.destination_ip,
        ];
        let v6 = addrs.iter().flatten().any(IpAddr::is_ipv6);
        let v4 = addrs.iter().flatten().any(IpAddr::is_ipv4);
        if v4 && (v6 || self.ipv6) {
            return Err(ApiError::invalid_value(
                "the ends of a walk are either both IPv4 or both IPv6: an IPv4 address cannot reach an IPv6 one (vpclab has no NAT64)".to_string(),
            ));
        }
        Ok(v6 || self.ipv6)
    }
}

/// The packet a walk sends: an IPv4 flow or an IPv6 packet.
#[derive(Clone, Debug)]
pub enum Probe {
    V4(Flow),
    V6(Pkt6),
}

/// One end of a walk, resolved against the world.
#[derive(Clone, Debug)]
pub struct End {
    pub addr: IpAddr,
    /// Where the packet enters the fabric (sources only).
    pub port: Port,
    /// Inside a VPC (an interface) rather than on the internet.
    pub inside: bool,
    /// The resource, for the first (or last) path component.
    pub component: Option<Component>,
    /// How a person would name it: `instance i-… (10.0.1.10)`.
    pub label: String,
}

/// The fabric's answer to one walk.
#[derive(Clone, Debug)]
pub struct Walked {
    pub source: End,
    pub destination: End,
    pub flow: Probe,
    pub forward: Verdict,
    pub back: Option<Verdict>,
    /// A remark about the ends (a destination instance that is stopped).
    pub note: Option<String>,
}

/// When a packet found no route to a gateway service's address (S3, DynamoDB), the
/// route that is missing: the endpoint route to the service's prefix list.
fn service_route_hint(region: &str, table: &str, dst: std::net::Ipv4Addr) -> Option<String> {
    let list = super::prefix_list::managed_prefix_lists(region)
        .into_iter()
        .find(|p| p.cidrs.iter().any(|c| c.contains(&dst)))?;
    Some(format!(
        "{dst} is {} (prefix list {}); route table {table} has no route to it: a gateway VPC endpoint for that service associated with {table} adds one (destination {}), as would a route to a NAT or internet gateway",
        list.name, list.id, list.id
    ))
}

impl Walked {
    /// Forward delivered and the reply delivered.
    pub fn reachable(&self) -> bool {
        self.forward.is_delivered() && self.back.as_ref().is_some_and(Verdict::is_delivered)
    }

    /// Whether the walk was an IPv6 one.
    pub fn is_v6(&self) -> bool {
        matches!(self.flow, Probe::V6(_))
    }
}

fn arn_type(id: &str) -> &'static str {
    match id.split_once('-').map(|(p, _)| p).unwrap_or("") {
        "i" => "instance",
        "eni" => "network-interface",
        "igw" => "internet-gateway",
        "sg" => "security-group",
        "acl" => "network-acl",
        "rtb" => "route-table",
        "subnet" => "subnet",
        "vpc" => "vpc",
        "nat" => "natgateway",
        "pcx" => "vpc-peering-connection",
        "nip" => "network-insights-path",
        "nia" => "network-insights-analysis",
        _ => "resource",
    }
}

impl World {
    /// The ARN of an EC2 resource by its id.
    pub fn ec2_arn(&self, region: &str, id: &str) -> String {
        format!(
            "arn:aws:ec2:{region}:{}:{}/{id}",
            self.account,
            arn_type(id)
        )
    }

    /// An `AnalysisComponent` for a resource id.
    pub fn component(&self, region: &str, id: &str) -> Component {
        Component {
            id: id.to_string(),
            arn: self.ec2_arn(region, id),
            name: self.tags_of(id).and_then(|t| t.get("Name").cloned()),
        }
    }

    /// The address an interface has in the walk's family: its primary private IPv4
    /// address, or its first IPv6 address.
    fn eni_addr(e: &super::eni::NetworkInterface, v6: bool, what: &str) -> ApiResult<IpAddr> {
        if !v6 {
            return e.ipv4().map(IpAddr::V4).ok_or_else(|| {
                ApiError::invalid_value(format!(
                    "{what} has no IPv4 address (it is in an IPv6-only subnet): trace over IPv6 (-6)"
                ))
            });
        }
        e.ipv6_addresses.first().map(|a| IpAddr::V6(*a)).ok_or_else(|| {
            ApiError::invalid_value(format!(
                "{what} has no IPv6 address: assign one (aws ec2 assign-ipv6-addresses) or trace over IPv4"
            ))
        })
    }

    fn source_end(&self, region: &str, q: &WalkQuery, v6: bool, now: Timestamp) -> ApiResult<End> {
        let s = q.source.as_str();
        let outside = |addr: IpAddr, component: Option<Component>, label: String| End {
            addr,
            port: Port::Internet,
            inside: false,
            component,
            label,
        };
        let internet: IpAddr = if v6 {
            INTERNET_ADDR6.into()
        } else {
            INTERNET_ADDR.into()
        };
        if s == "me" || s == "learner" {
            let a: IpAddr = if v6 {
                LEARNER_ADDR6.into()
            } else {
                LEARNER_ADDR.into()
            };
            return Ok(outside(a, None, format!("your computer ({a})")));
        }
        if s == "internet" {
            let a = q.source_ip.unwrap_or(internet);
            return Ok(outside(a, None, format!("the internet ({a})")));
        }
        if s.starts_with("igw-") {
            let g = self
                .internet_gateways
                .get(s)
                .filter(|g| g.region == region)
                .ok_or_else(|| crate::model::tags::not_found_any(s))?;
            let a = q.source_ip.unwrap_or(internet);
            return Ok(outside(
                a,
                Some(self.component(region, &g.id)),
                format!("the internet through {s} ({a})"),
            ));
        }
        let eni_id = if s.starts_with("i-") {
            let i = self.instance(region, s)?;
            let (state, _) = i.settled(now);
            if state != InstanceState::Running {
                return Err(ApiError::new(
                    "IncorrectInstanceState",
                    format!(
                        "instance {s} is {}: only a running instance sends packets",
                        state.name()
                    ),
                ));
            }
            i.primary_eni.clone().ok_or_else(|| {
                ApiError::invalid_value(format!("instance {s} has no network interface"))
            })?
        } else if s.starts_with("eni-") {
            s.to_string()
        } else if let Ok(addr) = s.parse::<IpAddr>() {
            // An address inside the world: the interface that holds it.
            let e = self
                .network_interfaces
                .in_region(region)
                .find(|e| match addr {
                    IpAddr::V4(a) => e.ipv4() == Some(a) || e.secondary_ips.contains(&a),
                    IpAddr::V6(a) => e.ipv6_addresses.contains(&a),
                })
                .ok_or_else(|| {
                    ApiError::invalid_value(format!(
                        "no network interface in {region} has the address {addr}"
                    ))
                })?;
            e.id.clone()
        } else {
            return Err(ApiError::invalid_value(format!(
                "the source {s:?} is not an instance, network interface, internet gateway, address, `internet` or `me`"
            )));
        };
        let e = self.network_interface(region, &eni_id)?;
        let own = match s.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => Self::eni_addr(e, v6, s)?,
        };
        let addr = q.source_ip.unwrap_or(own);
        let (component, label) = match e.attachment.as_ref() {
            Some(a) if s.starts_with("i-") => (
                self.component(region, &a.instance_id),
                format!("instance {} ({addr})", a.instance_id),
            ),
            _ => (
                self.component(region, &e.id),
                format!("interface {} ({addr})", e.id),
            ),
        };
        Ok(End {
            addr,
            port: Port::Eni(Arc::from(e.id.as_str())),
            inside: true,
            component: Some(component),
            label,
        })
    }

    fn destination_end(
        &self,
        region: &str,
        q: &WalkQuery,
        inside: bool,
        v6: bool,
        now: Timestamp,
    ) -> ApiResult<(End, Option<String>)> {
        let addr_end = |addr: IpAddr, component: Option<Component>, label: String| End {
            addr,
            port: Port::Internet,
            inside: false,
            component,
            label,
        };
        let internet: IpAddr = if v6 {
            INTERNET_ADDR6.into()
        } else {
            INTERNET_ADDR.into()
        };
        let Some(d) = q.destination.as_deref() else {
            let a = q
                .destination_ip
                .ok_or_else(|| ApiError::missing("Destination or DestinationIp"))?;
            return Ok((addr_end(a, None, a.to_string()), None));
        };
        if d == "internet" {
            let a = q.destination_ip.unwrap_or(internet);
            return Ok((addr_end(a, None, format!("the internet ({a})")), None));
        }
        if d == "me" || d == "learner" {
            let a: IpAddr = if v6 {
                LEARNER_ADDR6.into()
            } else {
                LEARNER_ADDR.into()
            };
            return Ok((addr_end(a, None, format!("your computer ({a})")), None));
        }
        if let Ok(a) = d.parse::<IpAddr>() {
            return Ok((addr_end(a, None, a.to_string()), None));
        }
        if d.starts_with("igw-") {
            if !self.internet_gateways.contains(d) {
                return Err(crate::model::tags::not_found_any(d));
            }
            let a = q.destination_ip.unwrap_or(internet);
            return Ok((
                addr_end(
                    a,
                    Some(self.component(region, d)),
                    format!("the internet through {d} ({a})"),
                ),
                None,
            ));
        }
        let (eni_id, component, note, what) = if d.starts_with("i-") {
            let i = self.instance(region, d)?;
            let (state, _) = i.settled(now);
            let note = (state != InstanceState::Running).then(|| {
                format!(
                    "instance {d} is {}: even where the network lets packets through, nothing answers",
                    state.name()
                )
            });
            let eni = i.primary_eni.clone().ok_or_else(|| {
                ApiError::invalid_value(format!("instance {d} has no network interface"))
            })?;
            (
                eni,
                self.component(region, d),
                note,
                format!("instance {d}"),
            )
        } else if d.starts_with("eni-") {
            (
                d.to_string(),
                self.component(region, d),
                None,
                format!("interface {d}"),
            )
        } else {
            return Err(ApiError::invalid_value(format!(
                "the destination {d:?} is not an instance, network interface, internet gateway, address, `internet` or `me`"
            )));
        };
        let e = self.network_interface(region, &eni_id)?;
        let addr = if let Some(a) = q.destination_ip {
            a
        } else if inside || v6 {
            // IPv6 addresses are public: the same address from inside and outside.
            Self::eni_addr(e, v6, &what)?
        } else {
            e.association
                .as_ref()
                .map(|a| IpAddr::V4(a.public_ip))
                .ok_or_else(|| {
                    ApiError::invalid_value(format!(
                        "{what} has no public IP address, so nothing outside its VPC can reach it"
                    ))
                })?
        };
        Ok((
            End {
                addr,
                port: Port::Eni(Arc::from(e.id.as_str())),
                inside: true,
                component: Some(component),
                label: format!("{what} ({addr})"),
            },
            note,
        ))
    }

    /// Walks one new connection (and its reply) from `q.source` to `q.destination` on a
    /// fabric compiled from this world: the decision path of every real packet.
    pub fn walk(&self, region: &str, q: &WalkQuery, now: Timestamp) -> ApiResult<Walked> {
        let v6 = q.family6()?;
        let source = self.source_end(region, q, v6, now)?;
        let (destination, note) = self.destination_end(region, q, source.inside, v6, now)?;
        let topology = super::compile::compile(self).map_err(|e| {
            ApiError::new(
                "InternalError",
                format!("the network does not compile: {e}"),
            )
            .with_status(500)
        })?;
        let fabric = Fabric::new(Arc::new(topology));
        let at = smoltcp::time::Instant::from_millis(now.0);
        let (flow, (forward, back)) = match (source.addr, destination.addr) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let flow = match q.proto {
                    Proto::Tcp => Flow::tcp_syn(src, q.source_port, dst, q.destination_port),
                    Proto::Udp => Flow::udp(src, q.source_port, dst, q.destination_port),
                    Proto::Icmp => Flow::ping(src, dst, 7),
                };
                let r = fabric.explain_round_trip(at, &source.port, &flow);
                (Probe::V4(flow), r)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let (proto, sport) = match q.proto {
                    Proto::Tcp => (6, q.source_port),
                    Proto::Udp => (17, q.source_port),
                    // An echo request with identifier 7, like the IPv4 walk's ping.
                    Proto::Icmp => (vpclab_netstack::ipv6::ICMPV6, 7),
                };
                let p = Pkt6::probe(src, dst, proto, sport, q.destination_port);
                let r = fabric.explain_round_trip6(at, &source.port, &p);
                (Probe::V6(p), r)
            }
            (a, b) => {
                return Err(ApiError::invalid_value(format!(
                    "{a} and {b} are of different IP versions: a packet cannot go from one to the other"
                )));
            }
        };
        let note = match (&forward.outcome, note) {
            (vpclab_netstack::Outcome::Drop(DropReason::NoRoute { table, dst }), None) => {
                service_route_hint(region, table, *dst)
            }
            (_, note) => note,
        };
        Ok(Walked {
            source,
            destination,
            flow,
            forward,
            back,
            note,
        })
    }

    fn acl_rule_info(
        &self,
        acl: &str,
        egress: bool,
        rule: Option<u16>,
        v6: bool,
    ) -> Option<AclRuleInfo> {
        let Some(n) = rule else {
            // The final `*` rule of the packet's family: everything, denied.
            return Some(AclRuleInfo {
                cidr: if v6 { "::/0" } else { "0.0.0.0/0" }.into(),
                egress,
                ports: None,
                protocol: "-1".into(),
                rule_action: "deny".into(),
                rule_number: 32767,
            });
        };
        let a = self.network_acls.get(acl)?;
        let e = a
            .entries
            .iter()
            .find(|e| e.egress == egress && e.rule_number == i32::from(n))?;
        Some(AclRuleInfo {
            cidr: e.cidr.to_string(),
            egress,
            ports: e.port_range.map(|(from, to)| PortSpan { from, to }),
            protocol: e.protocol.clone(),
            rule_action: e.rule_action.clone(),
            rule_number: e.rule_number,
        })
    }

    fn sg_rule_info(
        &self,
        group: &str,
        rule_id: Option<&str>,
        index: usize,
        egress: bool,
    ) -> Option<SgRuleInfo> {
        let g = self.security_groups.get(group)?;
        let r = match rule_id {
            Some(id) => g.rules.iter().find(|r| r.id == id)?,
            None => g.rules.iter().filter(|r| r.egress == egress).nth(index)?,
        };
        let (cidr, peer_group, prefix_list_id) = match &r.peer {
            Peer::Cidr(c) => (Some(c.to_string()), None, None),
            Peer::Cidr6(c) => (Some(c.to_string()), None, None),
            Peer::Group(id) => (None, Some(id.clone()), None),
            Peer::PrefixList(id) => (None, None, Some(id.clone())),
        };
        let ports = match (r.protocol.as_str(), r.from_port, r.to_port) {
            ("tcp" | "udp", Some(f), Some(t)) => Some(PortSpan {
                from: u16::try_from(f).unwrap_or(0),
                to: u16::try_from(t).unwrap_or(u16::MAX),
            }),
            _ => None,
        };
        Some(SgRuleInfo {
            cidr,
            peer_group,
            prefix_list_id,
            direction: if r.egress { "egress" } else { "ingress" }.into(),
            security_group_id: g.id.clone(),
            ports,
            protocol: r.protocol.clone(),
        })
    }

    fn route_info(&self, table: &str, dest: ipnet::IpNet) -> Option<RouteInfo> {
        let t = self.route_tables.get(table)?;
        // The fabric names the CIDR that matched; a prefix-list route (a gateway
        // endpoint's) matched through one of its list's CIDRs.
        let r = t
            .routes
            .iter()
            .find(|r| match (&r.destination, dest) {
                (super::route_table::Destination::Cidr(c), ipnet::IpNet::V4(d)) => *c == d,
                (super::route_table::Destination::Cidr6(c), ipnet::IpNet::V6(d)) => *c == d,
                _ => false,
            })
            .or_else(|| {
                let ipnet::IpNet::V4(dest) = dest else {
                    return None;
                };
                t.routes.iter().find(|r| match &r.destination {
                    super::route_table::Destination::PrefixList(p) => self
                        .prefix_list_cidrs(&t.region, p)
                        .is_some_and(|c| c.contains(&dest)),
                    super::route_table::Destination::Cidr(_)
                    | super::route_table::Destination::Cidr6(_) => false,
                })
            })?;
        let field = match &r.target {
            RouteTarget::Local | RouteTarget::Gateway(_) => "gatewayId",
            RouteTarget::NatGateway(_) => "natGatewayId",
            RouteTarget::NetworkInterface(_) => "networkInterfaceId",
            RouteTarget::Instance(_) => "instanceId",
            RouteTarget::VpcPeering(_) => "vpcPeeringConnectionId",
            RouteTarget::VpcEndpoint(_) => "gatewayId",
            RouteTarget::EgressOnlyGateway(_) => "egressOnlyInternetGatewayId",
            RouteTarget::TransitGateway(_) => "transitGatewayId",
        };
        let state = self.route_state(t, r);
        Some(RouteInfo {
            destination_cidr: r.destination.to_string(),
            target_field: field.into(),
            target: r.target.id().to_string(),
            origin: r.origin.clone(),
            state: state.into(),
        })
    }

    /// The subnet an ACL hop concerns: the ACL's association on the path's interface
    /// side is not in the hop, so take the association that matches one of the ends.
    fn subnet_of_eni(&self, eni: &str) -> Option<String> {
        self.network_interfaces
            .get(eni)
            .map(|e| e.subnet_id.clone())
    }

    /// The walk's hops as AWS path components, numbered from 1, with the source (and the
    /// destination on a delivered path) at the ends. `v6`: the walk was an IPv6 one (the
    /// `*` rule of a network ACL is then the `::/0` one).
    pub fn path_components(
        &self,
        region: &str,
        v: &Verdict,
        from: Option<&Component>,
        sent: Option<Header>,
        v6: bool,
    ) -> Vec<PathComponent> {
        let mut out = Vec::new();
        let mut push = |c: PathComponent| {
            let mut c = c;
            c.sequence = out.len() as u32 + 1;
            out.push(c);
        };
        let blank = |component: Component, action: String| PathComponent {
            sequence: 0,
            component,
            action,
            acl_rule: None,
            sg_rule: None,
            route: None,
            subnet: None,
            vpc: None,
            outbound_header: None,
            inbound_header: None,
        };
        if let Some(src) = from {
            let mut c = blank(src.clone(), "sends the packet".into());
            c.outbound_header = sent;
            push(c);
        }
        for h in &v.hops {
            let id = h.component.to_string();
            let mut c = blank(self.component(region, &id), h.action.to_string());
            match (&h.action, &h.rule) {
                (HopAction::NaclAllow(d) | HopAction::NaclDeny(d), rule) => {
                    let egress = *d == vpclab_netstack::Direction::Outbound;
                    let n = match rule {
                        Some(RuleRef::NaclEntry(n)) => Some(*n),
                        _ => None,
                    };
                    c.acl_rule = self.acl_rule_info(&id, egress, n, v6);
                }
                (
                    _,
                    Some(RuleRef::SecurityGroupRule {
                        group,
                        rule_id,
                        index,
                    }),
                ) => {
                    let egress = matches!(
                        h.action,
                        HopAction::SecurityGroupAllow(vpclab_netstack::Direction::Outbound)
                    );
                    c.component = self.component(region, group);
                    c.sg_rule = self.sg_rule_info(group, rule_id.as_deref(), *index, egress);
                }
                (_, Some(RuleRef::Route(net))) => {
                    c.route = self.route_info(&id, (*net).into());
                }
                (_, Some(RuleRef::Route6(net))) => {
                    c.route = self.route_info(&id, (*net).into());
                }
                _ => {}
            }
            if id.starts_with("eni-")
                && let Some(s) = self.subnet_of_eni(&id)
            {
                c.subnet = Some(self.component(region, &s));
            }
            push(c);
        }
        out
    }

    /// The explanation of a drop: its code from [`explanation_code`] and the resources
    /// the reason names.
    /// `v6`: the walk was an IPv6 one.
    pub fn explanation(
        &self,
        region: &str,
        r: &DropReason,
        on_return_path: bool,
        v6: bool,
    ) -> Explanation {
        let mut x = Explanation {
            code: explanation_code(r).map(str::to_string),
            direction: None,
            component: None,
            acl: None,
            acl_rule: None,
            security_groups: Vec::new(),
            network_interface: None,
            subnet: None,
            vpc: None,
            route_table: None,
            route: None,
            internet_gateway: None,
            nat_gateway: None,
            address: None,
            message: r.to_string(),
            on_return_path,
        };
        let dir = |d: &vpclab_netstack::Direction| {
            Some(
                match d {
                    vpclab_netstack::Direction::Inbound => "ingress",
                    vpclab_netstack::Direction::Outbound => "egress",
                }
                .to_string(),
            )
        };
        use DropReason::*;
        match r {
            NaclDeny {
                acl,
                subnet,
                rule,
                direction,
            } => {
                let egress = *direction == vpclab_netstack::Direction::Outbound;
                x.direction = dir(direction);
                x.component = Some(self.component(region, acl));
                x.acl = Some(self.component(region, acl));
                x.acl_rule = self.acl_rule_info(acl, egress, *rule, v6);
                x.subnet = Some(self.component(region, subnet));
            }
            SecurityGroupNoMatch { eni, direction } => {
                x.direction = dir(direction);
                x.component = Some(self.component(region, eni));
                x.network_interface = Some(self.component(region, eni));
                if let Some(e) = self.network_interfaces.get(eni) {
                    x.security_groups =
                        e.groups.iter().map(|g| self.component(region, g)).collect();
                    x.subnet = Some(self.component(region, &e.subnet_id));
                    x.vpc = Some(self.component(region, &e.vpc_id));
                }
            }
            NoRoute { table, dst } => {
                x.component = Some(self.component(region, table));
                x.route_table = Some(self.component(region, table));
                x.address = Some((*dst).into());
            }
            Blackhole { table, route } => {
                x.component = Some(self.component(region, table));
                x.route_table = Some(self.component(region, table));
                x.route = self.route_info(table, (*route).into());
            }
            IgwNoPublicIp { igw, src } => {
                x.direction = Some("egress".into());
                x.component = Some(self.component(region, igw));
                x.internet_gateway = Some(self.component(region, igw));
                x.address = Some((*src).into());
            }
            IgwNoAssociation { dst } | InternetNoRoute { dst } | LinkLocalUnavailable { dst } => {
                x.address = Some((*dst).into());
            }
            IgwNotAttached { vpc, dst } | NoInterface { vpc, dst } => {
                x.component = Some(self.component(region, vpc));
                x.vpc = Some(self.component(region, vpc));
                x.address = Some((*dst).into());
            }
            NatInboundNotTracked { nat, dst } => {
                x.component = Some(self.component(region, nat));
                x.nat_gateway = Some(self.component(region, nat));
                x.address = Some((*dst).into());
            }
            NatPortsExhausted { nat, dst, .. } => {
                x.component = Some(self.component(region, nat));
                x.nat_gateway = Some(self.component(region, nat));
                x.address = Some((*dst).into());
            }
            NatUnsupportedProtocol { nat, .. } => {
                x.component = Some(self.component(region, nat));
                x.nat_gateway = Some(self.component(region, nat));
            }
            SourceDestCheck {
                eni,
                direction,
                addr,
            } => {
                x.direction = dir(direction);
                x.component = Some(self.component(region, eni));
                x.network_interface = Some(self.component(region, eni));
                x.address = Some((*addr).into());
            }
            ResolverDisabled { vpc } => {
                x.component = Some(self.component(region, vpc));
                x.vpc = Some(self.component(region, vpc));
            }
            TtlExceeded { at } => x.component = Some(self.component(region, at)),
            PeeringNotTransitive {
                peering, vpc, addr, ..
            } => {
                x.component = Some(self.component(region, peering));
                x.vpc = Some(self.component(region, vpc));
                x.address = Some((*addr).into());
            }
            TgwNoAssociation { attachment, .. } | TgwNoSubnetInZone { attachment, .. } => {
                x.component = Some(self.component(region, attachment));
            }
            TgwNoRoute { table, dst, .. } => {
                x.component = Some(self.component(region, table));
                x.route_table = Some(self.component(region, table));
                x.address = Some((*dst).into());
            }
            TgwBlackhole { table, .. } => {
                x.component = Some(self.component(region, table));
                x.route_table = Some(self.component(region, table));
            }
            UnknownPort | RoutingLoop | Malformed(_) => {}
            EgressOnlyInbound { eigw, dst } => {
                x.direction = Some("ingress".into());
                x.component = Some(self.component(region, eigw));
                x.address = Some((*dst).into());
            }
            NoRouteV6 { table, dst } => {
                x.component = Some(self.component(region, table));
                x.route_table = Some(self.component(region, table));
                x.address = Some((*dst).into());
            }
            BlackholeV6 { table, route } => {
                x.component = Some(self.component(region, table));
                x.route_table = Some(self.component(region, table));
                x.route = self.route_info(table, (*route).into());
            }
            NoInterfaceV6 { vpc, dst } | IgwNotAttachedV6 { vpc, dst } => {
                x.component = Some(self.component(region, vpc));
                x.vpc = Some(self.component(region, vpc));
                x.address = Some((*dst).into());
            }
            InternetNoRouteV6 { dst } => x.address = Some((*dst).into()),
            SourceDestCheckV6 { eni, addr } => {
                x.direction = Some("egress".into());
                x.component = Some(self.component(region, eni));
                x.network_interface = Some(self.component(region, eni));
                x.address = Some((*addr).into());
            }
            DestCheckV6 { eni, addr } => {
                x.direction = Some("ingress".into());
                x.component = Some(self.component(region, eni));
                x.network_interface = Some(self.component(region, eni));
                x.address = Some((*addr).into());
            }
            EgressOnlyNotInitiated { eigw, dst, .. } => {
                x.direction = Some("egress".into());
                x.component = Some(self.component(region, eigw));
                x.address = Some((*dst).into());
            }
            PeeringNotTransitiveV6 {
                peering, vpc, addr, ..
            } => {
                x.component = Some(self.component(region, peering));
                x.vpc = Some(self.component(region, vpc));
                x.address = Some((*addr).into());
            }
        }
        x
    }

    /// Runs a walk and turns it into a stored analysis result.
    pub fn analyse(
        &self,
        region: &str,
        q: &WalkQuery,
        now: Timestamp,
    ) -> ApiResult<AnalysisResult> {
        let w = self.walk(region, q, now)?;
        Ok(self.result_of(region, &w, q))
    }

    fn result_of(&self, region: &str, w: &Walked, q: &WalkQuery) -> AnalysisResult {
        let v6 = w.is_v6();
        let mut forward = self.path_components(
            region,
            &w.forward,
            w.source.component.as_ref(),
            Some(Header::of(&w.flow)),
            v6,
        );
        if w.forward.is_delivered()
            && let (Some(last), Some(dst)) = (forward.last_mut(), w.destination.component.as_ref())
        {
            last.inbound_header = Some(Header::of(&w.flow));
            if last.component.id != dst.id && dst.id.starts_with("i-") {
                // The interface delivered to belongs to the destination instance.
                let mut c = last.clone();
                c.sequence += 1;
                c.component = dst.clone();
                c.action = "receives the packet".into();
                c.subnet = None;
                forward.push(c);
            }
        }
        let back = match &w.back {
            Some(b) => self.path_components(region, b, None, None, v6),
            None => Vec::new(),
        };
        let mut explanations = Vec::new();
        if let Some(r) = w.forward.drop_reason() {
            explanations.push(self.explanation(region, r, false, v6));
        } else if let Some(r) = w.back.as_ref().and_then(Verdict::drop_reason) {
            explanations.push(self.explanation(region, r, true, v6));
        }
        AnalysisResult {
            path_found: w.reachable(),
            forward,
            back,
            explanations,
            port: (q.proto != Proto::Icmp).then_some(q.destination_port),
        }
    }

    pub fn create_network_insights_path(
        &mut self,
        env: &Env,
        p: &CreatePath,
    ) -> ApiResult<NetworkInsightsPath> {
        let source = p
            .source
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing("Source"))?;
        let protocol = p
            .protocol
            .clone()
            .ok_or_else(|| ApiError::missing("Protocol"))?;
        if protocol != "tcp" && protocol != "udp" {
            return Err(ApiError::bad_param("Protocol", &protocol));
        }
        let ip = |name: &str, v: &Option<String>| -> ApiResult<Option<Ipv4Addr>> {
            v.as_deref()
                .map(|s| s.parse().map_err(|_| ApiError::bad_param(name, s)))
                .transpose()
        };
        let source_ip = ip("SourceIp", &p.source_ip)?;
        let destination_ip = ip("DestinationIp", &p.destination_ip)?;
        let destination_port = match p.destination_port {
            None => None,
            Some(n) => Some(
                u16::try_from(n)
                    .map_err(|_| ApiError::bad_param("DestinationPort", &n.to_string()))?,
            ),
        };
        if p.destination.is_none() && destination_ip.is_none() {
            return Err(ApiError::missing("Destination or DestinationIp"));
        }
        // AWS: with FilterAtSource you can't also give SourceIp or DestinationPort; with
        // FilterAtDestination, not DestinationIp.
        if !p.filter_at_source.is_empty() && (source_ip.is_some() || destination_port.is_some()) {
            return Err(ApiError::combination(
                "FilterAtSource cannot be combined with SourceIp or DestinationPort.",
            ));
        }
        if !p.filter_at_destination.is_empty() && destination_ip.is_some() {
            return Err(ApiError::combination(
                "FilterAtDestination cannot be combined with DestinationIp.",
            ));
        }
        for f in [&p.filter_at_source, &p.filter_at_destination] {
            for (name, r) in [
                ("SourcePortRange", f.source_ports),
                ("DestinationPortRange", f.destination_ports),
            ] {
                if let Some(r) = r
                    && r.from > r.to
                {
                    return Err(ApiError::bad_param(name, &format!("{}-{}", r.from, r.to)));
                }
            }
        }
        // The ends must exist (and be of a kind the analyzer supports).
        for (name, id) in [
            ("Source", Some(&source)),
            ("Destination", p.destination.as_ref()),
        ] {
            let Some(id) = id else { continue };
            let kind = id.split_once('-').map(|(k, _)| k).unwrap_or("");
            if !["i", "eni", "igw"].contains(&kind) {
                return Err(ApiError::invalid_value(format!(
                    "{name} {id} is not a supported resource: vpclab analyses instances, network interfaces and internet gateways (see docs/fidelity.md)"
                )));
            }
            if !self.resource_exists(id) {
                return Err(crate::model::tags::not_found_any(id));
            }
        }
        let id = self.alloc_id("nip");
        let path = NetworkInsightsPath {
            id: id.clone(),
            region: env.region.clone(),
            source,
            destination: p.destination.clone(),
            source_ip,
            destination_ip,
            protocol,
            destination_port,
            filter_at_source: (!p.filter_at_source.is_empty()).then(|| p.filter_at_source.clone()),
            filter_at_destination: (!p.filter_at_destination.is_empty())
                .then(|| p.filter_at_destination.clone()),
            created: env.now,
        };
        self.network_insights_paths.insert(path.clone());
        self.apply_tag_specs(env, &id, "network-insights-path", &p.tag_specs)?;
        Ok(path)
    }

    /// DeleteNetworkInsightsPath. The path's analyses go with it (vpclab's choice; AWS
    /// documents no rule for them).
    pub fn delete_network_insights_path(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        match self.network_insights_paths.get(id) {
            Some(p) if p.region == env.region => {}
            _ => return Err(path_not_found(id)),
        }
        let analyses: Vec<String> = self
            .network_insights_analyses
            .in_region(&env.region)
            .filter(|a| a.path_id == id)
            .map(|a| a.id.clone())
            .collect();
        for a in analyses {
            self.network_insights_analyses.remove(&a);
            self.drop_tags(&a);
        }
        self.network_insights_paths.remove(id);
        self.drop_tags(id);
        Ok(())
    }

    pub fn delete_network_insights_analysis(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        match self.network_insights_analyses.get(id) {
            Some(a) if a.region == env.region => {}
            _ => return Err(analysis_not_found(id)),
        }
        self.network_insights_analyses.remove(id);
        self.drop_tags(id);
        Ok(())
    }

    /// The walks a path stands for: the packet header from the path and its filters.
    /// Without a destination port, the candidates are the ports the destination's
    /// security groups open for the protocol, then 22, 80 and 443: the first that is
    /// reachable is reported (AWS searches every port; vpclab tries these).
    fn path_queries(&self, p: &NetworkInsightsPath) -> Vec<WalkQuery> {
        let fs = p.filter_at_source.clone().unwrap_or_default();
        let fd = p.filter_at_destination.clone().unwrap_or_default();
        let proto = if p.protocol == "udp" {
            Proto::Udp
        } else {
            Proto::Tcp
        };
        let source_port = fs
            .source_ports
            .or(fd.source_ports)
            .map_or(DEFAULT_SOURCE_PORT, |r| r.from);
        let source_ip = p.source_ip.or(fs.source_address).or(fd.source_address);
        let destination_ip = p
            .destination_ip
            .or(fs.destination_address)
            .or(fd.destination_address);
        let mut ports: Vec<u16> = Vec::new();
        if let Some(port) = p
            .destination_port
            .or(fs.destination_ports.map(|r| r.from))
            .or(fd.destination_ports.map(|r| r.from))
        {
            ports.push(port);
        } else {
            let dst_eni = p.destination.as_deref().and_then(|d| {
                if d.starts_with("i-") {
                    self.instances.get(d).and_then(|i| i.primary_eni.clone())
                } else {
                    Some(d.to_string())
                }
            });
            if let Some(e) = dst_eni.and_then(|e| self.network_interfaces.get(&e)) {
                for g in e.groups.iter().filter_map(|g| self.security_groups.get(g)) {
                    for r in g
                        .rules
                        .iter()
                        .filter(|r| !r.egress && r.protocol == p.protocol)
                    {
                        if let Some(f) = r.from_port.and_then(|f| u16::try_from(f).ok()) {
                            ports.push(f);
                        }
                    }
                }
            }
            ports.extend([22, 80, 443]);
            let mut seen = std::collections::BTreeSet::new();
            ports.retain(|p| seen.insert(*p));
            ports.truncate(16);
        }
        ports
            .into_iter()
            .map(|port| WalkQuery {
                source: p.source.clone(),
                destination: p.destination.clone(),
                source_ip: source_ip.map(IpAddr::V4),
                destination_ip: destination_ip.map(IpAddr::V4),
                proto,
                source_port,
                destination_port: port,
                ipv6: false,
            })
            .collect()
    }

    /// StartNetworkInsightsAnalysis: runs the analysis now and stores it. A path whose
    /// ends cannot be resolved (a stopped source instance, a destination without a public
    /// address from outside) gives a `failed` analysis with the reason, as AWS reports a
    /// failed analysis rather than failing the call.
    pub fn start_network_insights_analysis(
        &mut self,
        env: &Env,
        path_id: &str,
        filter_in_arns: &[String],
        tag_specs: &[TagSpec],
    ) -> ApiResult<NetworkInsightsAnalysis> {
        let path = match self.network_insights_paths.get(path_id) {
            Some(p) if p.region == env.region => p.clone(),
            _ => return Err(path_not_found(path_id)),
        };
        let mut result: Option<Result<AnalysisResult, String>> = None;
        for q in self.path_queries(&path) {
            match self.analyse(&env.region, &q, env.now) {
                Ok(r) => {
                    let found = r.path_found;
                    if result.is_none() || found {
                        result = Some(Ok(r));
                    }
                    if found {
                        break;
                    }
                }
                Err(e) => {
                    result = Some(Err(e.message));
                    break;
                }
            }
        }
        // FilterInArns: the path must cross each named component.
        if let Some(Ok(r)) = &mut result
            && r.path_found
        {
            for arn in filter_in_arns {
                let crossed = r
                    .forward
                    .iter()
                    .chain(&r.back)
                    .any(|c| &c.component.arn == arn || &c.component.id == arn);
                if !crossed {
                    r.path_found = false;
                    r.explanations.push(Explanation {
                        code: Some("COMPONENT_FILTER_RESTRICTION".into()),
                        direction: None,
                        component: None,
                        acl: None,
                        acl_rule: None,
                        security_groups: Vec::new(),
                        network_interface: None,
                        subnet: None,
                        vpc: None,
                        route_table: None,
                        route: None,
                        internet_gateway: None,
                        nat_gateway: None,
                        address: None,
                        message: format!("the path does not cross {arn}"),
                        on_return_path: false,
                    });
                }
            }
        }
        let id = self.alloc_id("nia");
        let a = NetworkInsightsAnalysis {
            id: id.clone(),
            region: env.region.clone(),
            path_id: path_id.to_string(),
            started: env.now,
            filter_in_arns: filter_in_arns.to_vec(),
            result: result.unwrap_or_else(|| Err("no packet to analyse".into())),
        };
        self.network_insights_analyses.insert(a.clone());
        self.apply_tag_specs(env, &id, "network-insights-analysis", tag_specs)?;
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_reason_with_a_published_code_maps_to_one() {
        let id: vpclab_netstack::ResId = Arc::from("x-1");
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let cases = [
            (
                DropReason::NaclDeny {
                    acl: id.clone(),
                    subnet: id.clone(),
                    rule: Some(100),
                    direction: vpclab_netstack::Direction::Inbound,
                },
                Some("SUBNET_ACL_RESTRICTION"),
            ),
            (
                DropReason::SecurityGroupNoMatch {
                    eni: id.clone(),
                    direction: vpclab_netstack::Direction::Inbound,
                },
                Some("ENI_SG_RULES_MISMATCH"),
            ),
            (
                DropReason::NoRoute {
                    table: id.clone(),
                    dst: a,
                },
                Some("NO_ROUTE_TO_DESTINATION"),
            ),
            (
                DropReason::Blackhole {
                    table: id.clone(),
                    route: "0.0.0.0/0".parse().unwrap(),
                },
                Some("BAD_STATE_ROUTE"),
            ),
            (
                DropReason::IgwNoPublicIp {
                    igw: id.clone(),
                    src: a,
                },
                Some("IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS"),
            ),
            (
                DropReason::NatPortsExhausted {
                    nat: id.clone(),
                    dst: a,
                    dst_port: 1,
                },
                None,
            ),
        ];
        for (r, code) in cases {
            assert_eq!(explanation_code(&r), code, "{r}");
        }
    }
}
