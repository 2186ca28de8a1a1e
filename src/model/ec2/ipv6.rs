//! IPv6 dual stack in the model: Amazon-provided /56 blocks for VPCs, /64 blocks for
//! subnets, `AssignIpv6AddressOnCreation`, IPv6 addresses of interfaces, and egress-only
//! internet gateways. AWS rules kept here (Amazon VPC User Guide, "IPv6 support for your
//! VPC", "Egress-only internet gateways"):
//!
//! - a VPC gets an Amazon-provided /56; vpclab carves it from the documentation range
//!   2001:db8::/32 (RFC 3849) so that no real prefix ever appears, one distinct /56 per
//!   VPC of the world;
//! - associating a block adds a `local` route for it to every route table of the VPC,
//!   rule 101 (allow all IPv6) to the default network ACL in each direction whose rules
//!   were not changed, an IPv6 `*` deny rule to every network ACL, and an outbound
//!   `::/0` rule to the default security group;
//! - a subnet block is a /64 inside one of the VPC's IPv6 blocks, overlapping no other
//!   subnet's block (`InvalidSubnet.Range`, `InvalidSubnet.Conflict`);
//! - an egress-only internet gateway belongs to one VPC, is a route target for IPv6
//!   destinations only, and lets only instance-initiated IPv6 traffic through.
//!
//! The route, security-group and network-ACL variants for IPv6 live beside their IPv4
//! counterparts (`Destination::Cidr6`, `Peer::Cidr6`, `NaclEntry::cidr` as `IpNet`).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use super::nacl::NaclEntry;
use super::route_table::{Destination, Route, RouteTarget};
use super::sg::{Peer, SgRule};
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World};

/// Serde for an `Ipv6Net` as its text form (`2001:db8::/56`).
pub mod cidr6_serde {
    use ipnet::Ipv6Net;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(net: &Ipv6Net, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv6Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde for an `IpNet` (either family) as its text form.
pub mod ipnet_serde {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(net: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One IPv6 block of a VPC (`ipv6CidrBlockAssociationSet`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcIpv6Cidr {
    pub association_id: String,
    #[serde(with = "cidr6_serde")]
    pub cidr: Ipv6Net,
    /// `associated` (AWS answers the associate call with `associating`).
    pub state: String,
}

/// The IPv6 block of a subnet (`ipv6CidrBlockAssociationSet`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetIpv6Cidr {
    pub association_id: String,
    #[serde(with = "cidr6_serde")]
    pub cidr: Ipv6Net,
    pub state: String,
}

/// An egress-only internet gateway (`eigw-…`), attached to its VPC for life.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EgressOnlyInternetGateway {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
}

impl Resource for EgressOnlyInternetGateway {
    const KIND: &'static str = "egress_only_internet_gateway";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for EgressOnlyInternetGateway {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "egress-only-internet-gateway-id" => vec![self.id.clone()],
            "attachment.vpc-id" => vec![self.vpc_id.clone()],
            "attachment.state" => vec!["attached".to_string()],
            _ => return None,
        })
    }
}

/// An instance's hostname options (`PrivateDnsNameOptions`), or a subnet's for the
/// instances launched in it (`PrivateDnsNameOptionsOnLaunch`). AWS (EC2 User Guide,
/// "EC2 instance hostnames and DNS names"): the resource-based name
/// `i-….REGION.compute.internal` answers A and AAAA queries only when the matching
/// option is on; the IP-based name never answers AAAA.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateDnsNameOptions {
    /// `resource-name` (true) or `ip-name` (false, the default).
    #[serde(default)]
    pub resource_name_hostname: bool,
    #[serde(default)]
    pub a_record: bool,
    #[serde(default)]
    pub aaaa_record: bool,
}

impl PrivateDnsNameOptions {
    pub fn hostname_type(&self) -> &'static str {
        if self.resource_name_hostname {
            "resource-name"
        } else {
            "ip-name"
        }
    }
}

pub fn eigw_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidGatewayID.NotFound",
        format!("The eigw ID '{id}' does not exist"),
    )
}

/// The documentation prefix every Amazon-provided block is carved from (RFC 3849).
const DOC_PREFIX: u128 = 0x2001_0db8 << 96;
/// AWS quota "IPv6 CIDR blocks per VPC".
const IPV6_BLOCKS_PER_VPC: usize = 5;

/// Parses an IPv6 CIDR parameter (`InvalidParameterValue` naming the parameter).
pub fn parse_cidr6(param: &str, value: &str) -> ApiResult<Ipv6Net> {
    let bad = || {
        ApiError::invalid_value(format!(
            "Value ({value}) for parameter {param} is invalid. This is not a valid IPv6 CIDR block."
        ))
    };
    let net: Ipv6Net = value.trim().parse().map_err(|_| bad())?;
    if net.trunc() != net {
        return Err(bad());
    }
    Ok(net)
}

fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The network ACL rule that allows (or the final rule that denies) all IPv6 traffic.
pub(crate) fn all_ipv6(rule_number: i32, egress: bool, action: &str) -> NaclEntry {
    NaclEntry {
        rule_number,
        egress,
        protocol: "-1".into(),
        rule_action: action.into(),
        cidr: Ipv6Net::default().into(),
        port_range: None,
        icmp: None,
    }
}

impl World {
    /// Whether the VPC has an IPv6 block.
    pub fn vpc_has_ipv6(&self, vpc_id: &str) -> bool {
        self.vpcs
            .get(vpc_id)
            .is_some_and(|v| !v.ipv6_cidrs.is_empty())
    }

    /// The next free /56 of the documentation range. The search starts at a point
    /// derived from the account so that two accounts of one daemon rarely share a block.
    fn next_vpc_ipv6_block(&self) -> Ipv6Net {
        let used: BTreeSet<Ipv6Net> = self
            .vpcs
            .iter()
            .flat_map(|v| v.ipv6_cidrs.iter().map(|c| c.cidr))
            .collect();
        let start = self.account.parse::<u64>().unwrap_or(0) % 4096 * 16;
        let blocks: u64 = 1 << 24; // /56s in a /32
        (0..blocks)
            .map(|i| (start + i) % blocks)
            .map(|i| {
                let addr = DOC_PREFIX | (u128::from(i) << 72);
                Ipv6Net::new(Ipv6Addr::from(addr), 56).unwrap_or_default()
            })
            .find(|n| !used.contains(n))
            .unwrap_or_default()
    }

    /// AssociateVpcCidrBlock with `AmazonProvidedIpv6CidrBlock` (and CreateVpc with it).
    /// Returns the association id and the block.
    pub fn associate_vpc_ipv6_block(
        &mut self,
        env: &Env,
        vpc_id: &str,
    ) -> ApiResult<(String, Ipv6Net)> {
        let vpc = self.vpc(&env.region, vpc_id)?;
        if vpc.ipv6_cidrs.len() >= IPV6_BLOCKS_PER_VPC {
            return Err(ApiError::new(
                "CidrLimitExceeded",
                format!(
                    "This network '{vpc_id}' has met its maximum number of allowed IPv6 CIDRs: {IPV6_BLOCKS_PER_VPC}"
                ),
            ));
        }
        let first = vpc.ipv6_cidrs.is_empty();
        let cidr = self.next_vpc_ipv6_block();
        let assoc = self.alloc_id("vpc-cidr-assoc");
        if let Some(v) = self.vpcs.get_mut(vpc_id) {
            v.ipv6_cidrs.push(VpcIpv6Cidr {
                association_id: assoc.clone(),
                cidr,
                state: "associated".into(),
            });
        }
        for rid in self.route_tables.ids_where(|r| r.vpc_id == vpc_id) {
            if let Some(rt) = self.route_tables.get_mut(&rid) {
                rt.routes.push(Route {
                    destination: Destination::Cidr6(cidr),
                    target: RouteTarget::Local,
                    origin: "CreateRouteTable".into(),
                });
            }
        }
        if first {
            self.add_ipv6_defaults(vpc_id);
        }
        Ok((assoc, cidr))
    }

    /// What the first IPv6 block brings (AWS "Default network ACL", "Default security
    /// groups"): rule 101 allow-all-IPv6 in each direction of the default ACL whose rules
    /// are still the defaults, the IPv6 `*` rule on every ACL, the `::/0` outbound rule on
    /// the default security group.
    fn add_ipv6_defaults(&mut self, vpc_id: &str) {
        for aid in self.network_acls.ids_where(|a| a.vpc_id == vpc_id) {
            if let Some(acl) = self.network_acls.get_mut(&aid) {
                acl.ipv6 = true;
                if acl.is_default {
                    for egress in [false, true] {
                        let dir: Vec<&NaclEntry> =
                            acl.entries.iter().filter(|e| e.egress == egress).collect();
                        let untouched = dir.len() == 1
                            && dir[0].rule_number == 100
                            && dir[0].rule_action == "allow"
                            && dir[0].protocol == "-1"
                            && dir[0].cidr == ipnet::IpNet::V4(Default::default());
                        if untouched {
                            acl.entries.push(all_ipv6(101, egress, "allow"));
                        }
                    }
                    acl.entries.sort_by_key(|e| (e.egress, e.rule_number));
                }
            }
        }
        let rule_id = self.alloc_id("sgr");
        if let Some(gid) = self.default_sg(vpc_id).map(|g| g.id.clone())
            && let Some(g) = self.security_groups.get_mut(&gid)
        {
            let rule = all_ipv6_outbound(rule_id);
            if !g.rules.iter().any(|r| r.same_as(&rule)) {
                g.rules.push(rule);
            }
        }
    }

    /// DisassociateVpcCidrBlock for an IPv6 association, if `assoc` is one; refused while
    /// a subnet of the VPC has a block inside it. Returns `(vpc_id, cidr)`.
    pub fn disassociate_vpc_ipv6_block(
        &mut self,
        env: &Env,
        assoc: &str,
    ) -> Option<ApiResult<(String, Ipv6Net)>> {
        let vpc = self
            .vpcs
            .in_region(&env.region)
            .find(|v| v.ipv6_cidrs.iter().any(|c| c.association_id == assoc))?;
        let vpc_id = vpc.id.clone();
        let cidr = vpc
            .ipv6_cidrs
            .iter()
            .find(|c| c.association_id == assoc)
            .map(|c| c.cidr)?;
        if self
            .subnets
            .iter()
            .any(|s| s.vpc_id == vpc_id && s.ipv6_cidrs.iter().any(|c| cidr.contains(&c.cidr)))
        {
            return Some(Err(ApiError::dependency(format!(
                "The vpc CIDR block {cidr} cannot be disassociated: subnets use it. Disassociate their IPv6 CIDR blocks first."
            ))));
        }
        if let Some(v) = self.vpcs.get_mut(&vpc_id) {
            v.ipv6_cidrs.retain(|c| c.association_id != assoc);
        }
        for rid in self.route_tables.ids_where(|r| r.vpc_id == vpc_id) {
            if let Some(rt) = self.route_tables.get_mut(&rid) {
                rt.routes.retain(|r| {
                    !(r.destination == Destination::Cidr6(cidr) && r.target == RouteTarget::Local)
                });
            }
        }
        Some(Ok((vpc_id, cidr)))
    }

    /// AssociateSubnetCidrBlock: the subnet's one /64, inside a block of its VPC.
    /// Returns the association id.
    pub fn associate_subnet_ipv6_block(
        &mut self,
        env: &Env,
        subnet_id: &str,
        block: &str,
    ) -> ApiResult<String> {
        let subnet = self.subnet(&env.region, subnet_id)?.clone();
        let cidr = parse_cidr6("ipv6CidrBlock", block)?;
        let vpc = self.vpc(&env.region, &subnet.vpc_id)?;
        if cidr.prefix_len() != 64 || !vpc.ipv6_cidrs.iter().any(|c| c.cidr.contains(&cidr)) {
            return Err(ApiError::new(
                "InvalidSubnet.Range",
                format!(
                    "The IPv6 CIDR '{cidr}' is invalid: a subnet's IPv6 block is a /64 inside an IPv6 block of its VPC."
                ),
            ));
        }
        if !subnet.ipv6_cidrs.is_empty() {
            return Err(ApiError::invalid_value(format!(
                "The subnet {subnet_id} already has an IPv6 CIDR block associated."
            )));
        }
        if self.subnets.iter().any(|s| {
            s.vpc_id == subnet.vpc_id && s.ipv6_cidrs.iter().any(|c| overlaps6(&c.cidr, &cidr))
        }) {
            return Err(ApiError::new(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{cidr}' conflicts with another subnet"),
            ));
        }
        let assoc = self.alloc_id("subnet-cidr-assoc");
        if let Some(s) = self.subnets.get_mut(subnet_id) {
            s.ipv6_cidrs.push(SubnetIpv6Cidr {
                association_id: assoc.clone(),
                cidr,
                state: "associated".into(),
            });
        }
        Ok(assoc)
    }

    /// DisassociateSubnetCidrBlock: refused while an interface of the subnet has an IPv6
    /// address. Returns `(subnet_id, cidr)`.
    pub fn disassociate_subnet_ipv6_block(
        &mut self,
        env: &Env,
        assoc: &str,
    ) -> ApiResult<(String, Ipv6Net)> {
        let Some(s) = self
            .subnets
            .in_region(&env.region)
            .find(|s| s.ipv6_cidrs.iter().any(|c| c.association_id == assoc))
        else {
            return Err(ApiError::new(
                "InvalidSubnetCidrBlockAssociationID.NotFound",
                format!("The subnet CIDR block with association ID '{assoc}' does not exist"),
            ));
        };
        let subnet_id = s.id.clone();
        let cidr = s.ipv6_cidrs[0].cidr;
        if s.ipv6_native {
            return Err(ApiError::invalid_value(format!(
                "The subnet {subnet_id} is IPv6-only: its IPv6 CIDR block {cidr} is its only block and cannot be disassociated."
            )));
        }
        if self
            .network_interfaces
            .iter()
            .any(|e| e.subnet_id == subnet_id && !e.ipv6_addresses.is_empty())
        {
            return Err(ApiError::dependency(format!(
                "The subnet CIDR block {cidr} cannot be disassociated: network interfaces in subnet {subnet_id} use IPv6 addresses from it."
            )));
        }
        if let Some(s) = self.subnets.get_mut(&subnet_id) {
            s.ipv6_cidrs.retain(|c| c.association_id != assoc);
            s.assign_ipv6_address_on_creation = false;
        }
        Ok((subnet_id, cidr))
    }

    /// ModifySubnetAttribute `AssignIpv6AddressOnCreation`: needs an IPv6 block.
    pub fn set_assign_ipv6_on_creation(
        &mut self,
        env: &Env,
        id: &str,
        value: bool,
    ) -> ApiResult<()> {
        let s = self.subnet(&env.region, id)?;
        if value && s.ipv6_cidrs.is_empty() {
            return Err(ApiError::invalid_value(format!(
                "Subnet {id} has no IPv6 CIDR block: cannot assign IPv6 addresses on creation."
            )));
        }
        if let Some(s) = self.subnets.get_mut(id) {
            s.assign_ipv6_address_on_creation = value;
        }
        Ok(())
    }

    /// ModifySubnetAttribute's resource-based name options
    /// (`PrivateDnsHostnameTypeOnLaunch`, `EnableResourceNameDnsARecordOnLaunch`,
    /// `EnableResourceNameDnsAAAARecordOnLaunch`): what instances launched in the subnet
    /// from now on get as their `PrivateDnsNameOptions`.
    pub fn set_subnet_dns_name_options(
        &mut self,
        env: &Env,
        id: &str,
        edit: impl FnOnce(&mut PrivateDnsNameOptions),
    ) -> ApiResult<()> {
        let mut options = self.subnet(&env.region, id)?.dns_name_options.clone();
        edit(&mut options);
        if !options.resource_name_hostname && self.subnet(&env.region, id)?.ipv6_native {
            return Err(ApiError::invalid_value(format!(
                "The subnet {id} is IPv6-only: instance hostnames in it must be resource-name based."
            )));
        }
        if let Some(s) = self.subnets.get_mut(id) {
            s.dns_name_options = options;
        }
        Ok(())
    }

    /// IPv6 addresses in use in a subnet.
    fn used_ipv6(&self, subnet_id: &str) -> BTreeSet<Ipv6Addr> {
        self.network_interfaces
            .iter()
            .filter(|e| e.subnet_id == subnet_id)
            .flat_map(|e| e.ipv6_addresses.iter().copied())
            .collect()
    }

    /// `count` free IPv6 addresses of a subnet's /64, lowest first after the four AWS
    /// reserves at the start of the block (`InvalidParameterValue` when the subnet has no
    /// IPv6 block).
    pub fn next_ipv6_addresses(&self, subnet_id: &str, count: usize) -> ApiResult<Vec<Ipv6Addr>> {
        let s = self
            .subnets
            .get(subnet_id)
            .ok_or_else(|| super::subnet::subnet_not_found(subnet_id))?;
        let Some(block) = s.ipv6_cidrs.first() else {
            return Err(ApiError::invalid_value(format!(
                "The subnet {subnet_id} has no IPv6 CIDR block: cannot assign IPv6 addresses."
            )));
        };
        let used = self.used_ipv6(subnet_id);
        let base = u128::from(block.cidr.network());
        Ok((4u128..)
            .map(|i| Ipv6Addr::from(base + i))
            .filter(|a| !used.contains(a))
            .take(count)
            .collect())
    }

    /// CreateEgressOnlyInternetGateway.
    pub fn create_egress_only_igw(
        &mut self,
        env: &Env,
        vpc_id: &str,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["egress-only-internet-gateway"])?;
        self.vpc(&env.region, vpc_id)?;
        let id = self.alloc_id("eigw");
        self.egress_only_internet_gateways
            .insert(EgressOnlyInternetGateway {
                id: id.clone(),
                region: env.region.clone(),
                vpc_id: vpc_id.to_string(),
            });
        self.apply_tag_specs(env, &id, "egress-only-internet-gateway", specs)?;
        Ok(id)
    }

    pub fn egress_only_igw(&self, region: &str, id: &str) -> ApiResult<&EgressOnlyInternetGateway> {
        match self.egress_only_internet_gateways.get(id) {
            Some(g) if g.region == region => Ok(g),
            _ => Err(eigw_not_found(id)),
        }
    }

    /// DeleteEgressOnlyInternetGateway: routes to it stay and show `blackhole`, as for a
    /// deleted NAT gateway.
    pub fn delete_egress_only_igw(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        self.egress_only_igw(&env.region, id)?;
        self.egress_only_internet_gateways.remove(id);
        self.drop_tags(id);
        Ok(())
    }
}

/// The outbound rule to `::/0` AWS gives the default group (and new groups) of a VPC
/// with IPv6.
pub(crate) fn all_ipv6_outbound(id: String) -> SgRule {
    SgRule {
        id,
        egress: true,
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        peer: Peer::Cidr6(Ipv6Net::default()),
        description: None,
    }
}

/// The IPv6 side of the fabric's topology (`vpclab_netstack::ipv6::V6Spec`): blocks,
/// /64s, IPv6 routes, IPv6 network ACL rules (with the IPv6 `*` rule last), IPv6
/// security-group rules (a group reference admits the members' IPv6 addresses) and
/// interface addresses. Called by `compile::builder`.
pub fn v6_spec(world: &World) -> vpclab_netstack::ipv6::V6Spec {
    use vpclab_netstack::ipv6::{NaclEntry6, Route6, SgPeer6, SgRule6, Target6, V6Spec};
    use vpclab_netstack::topology::rid;
    use vpclab_netstack::{IcmpMatch, PortRange, Protocol, RouteState, RuleAction};

    let mut v = V6Spec::default();
    for vpc in world.vpcs.iter().filter(|x| !x.ipv6_cidrs.is_empty()) {
        v.vpc_blocks.insert(
            rid(&vpc.id),
            vpc.ipv6_cidrs.iter().map(|c| c.cidr).collect(),
        );
    }
    for s in world.subnets.iter() {
        if let Some(c) = s.ipv6_cidrs.first() {
            v.subnets.insert(rid(&s.id), c.cidr);
        }
    }
    for rt in world.route_tables.iter() {
        let routes: Vec<Route6> = rt
            .routes
            .iter()
            .filter_map(|r| {
                let Destination::Cidr6(dest) = r.destination else {
                    return None;
                };
                let target = match &r.target {
                    RouteTarget::Local => Target6::Local,
                    RouteTarget::Gateway(g) => Target6::InternetGateway(rid(g)),
                    RouteTarget::EgressOnlyGateway(g) => Target6::EgressOnlyGateway(rid(g)),
                    RouteTarget::VpcPeering(x) => Target6::Peering(rid(x)),
                    RouteTarget::NetworkInterface(e) => Target6::Interface(rid(e)),
                    RouteTarget::Instance(i) => match world.primary_eni_of_instance(i) {
                        Some(e) => Target6::Interface(rid(&e.id)),
                        None => Target6::Blackhole,
                    },
                    // Endpoints and transit gateways do not carry IPv6 in vpclab yet.
                    _ => Target6::Blackhole,
                };
                let state = if world.route_state(rt, r) == "active" {
                    RouteState::Active
                } else {
                    RouteState::Blackhole
                };
                Some(Route6 {
                    destination: dest,
                    target,
                    state,
                })
            })
            .collect();
        if !routes.is_empty() {
            v.routes.insert(rid(&rt.id), routes);
        }
    }
    let icmp = |t: i32, c: i32| IcmpMatch {
        ty: u8::try_from(t).ok(),
        code: u8::try_from(c).ok(),
    };
    let protocol = |p: &str| match p {
        "-1" => Some(Protocol::All),
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "icmp" => Some(Protocol::Icmp),
        n => n.parse::<i16>().ok().map(Protocol::from_number),
    };
    for acl in world.network_acls.iter() {
        let entries: Vec<NaclEntry6> = acl
            .effective_entries()
            .iter()
            .filter_map(|e| {
                let ipnet::IpNet::V6(cidr) = e.cidr else {
                    return None;
                };
                let proto = protocol(&e.protocol)?;
                Some(NaclEntry6 {
                    // The `*` rule sorts last.
                    rule_number: u16::try_from(e.rule_number).ok()?,
                    egress: e.egress,
                    protocol: proto,
                    ports: e.port_range.map(|(f, t)| PortRange::new(f, t)),
                    icmp: e.icmp.map(|(t, c)| icmp(t, c)),
                    cidr,
                    action: if e.rule_action == "allow" {
                        RuleAction::Allow
                    } else {
                        RuleAction::Deny
                    },
                })
            })
            .collect();
        v.acl_entries.insert(rid(&acl.id), entries);
    }
    for g in world.security_groups.iter() {
        let dir = |egress: bool| -> Vec<SgRule6> {
            g.rules
                .iter()
                .filter(|r| r.egress == egress)
                .filter_map(|r| {
                    let peer = match &r.peer {
                        Peer::Cidr6(c) => SgPeer6::Cidr(*c),
                        Peer::Group(id) => SgPeer6::Group(rid(id)),
                        Peer::Cidr(_) | Peer::PrefixList(_) => return None,
                    };
                    let proto = protocol(&r.protocol)?;
                    let ports = match (proto, r.from_port, r.to_port) {
                        (Protocol::Tcp | Protocol::Udp, Some(f), Some(t)) => Some(PortRange::new(
                            u16::try_from(f).ok()?,
                            u16::try_from(t).ok()?,
                        )),
                        _ => None,
                    };
                    let icmp = match (proto, r.from_port, r.to_port) {
                        (Protocol::Other(58), Some(t), Some(c)) => Some(icmp(t, c)),
                        _ => None,
                    };
                    Some(SgRule6 {
                        id: Some(rid(&r.id)),
                        protocol: proto,
                        ports,
                        icmp,
                        peer,
                    })
                })
                .collect()
        };
        v.sg_rules.insert(rid(&g.id), (dir(false), dir(true)));
    }
    for e in world.network_interfaces.iter() {
        if !e.ipv6_addresses.is_empty() {
            v.eni_addrs.insert(rid(&e.id), e.ipv6_addresses.clone());
        }
    }
    for g in world.egress_only_internet_gateways.iter() {
        v.egress_only.insert(rid(&g.id), rid(&g.vpc_id));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_blocks_are_distinct_documentation_56s() {
        let mut w = World::new(crate::model::DEFAULT_ACCOUNT);
        let env = Env::new("us-east-1", crate::model::Timestamp(1_700_000_000_000));
        w.ensure_region(&env).expect("region");
        let a = w.create_vpc(&env, "10.0.0.0/16", None, &[]).expect("vpc");
        let b = w.create_vpc(&env, "10.1.0.0/16", None, &[]).expect("vpc");
        let (_, na) = w.associate_vpc_ipv6_block(&env, &a).expect("a");
        let (_, nb) = w.associate_vpc_ipv6_block(&env, &b).expect("b");
        let doc: Ipv6Net = "2001:db8::/32".parse().expect("doc");
        assert_eq!(na.prefix_len(), 56);
        assert!(doc.contains(&na) && doc.contains(&nb));
        assert_ne!(na, nb);
    }

    /// An IPv6 route to a network interface compiles to that interface (an appliance
    /// receives the traffic), no longer to a blackhole.
    #[test]
    fn an_ipv6_route_to_an_interface_compiles_to_the_interface() {
        use crate::model::ec2::eni::EniSpec;
        use vpclab_netstack::ipv6::Target6;
        let mut w = World::new(crate::model::DEFAULT_ACCOUNT);
        let env = Env::new("us-east-1", crate::model::Timestamp(1_700_000_000_000));
        w.ensure_region(&env).expect("region");
        let vpc = w.create_vpc(&env, "10.0.0.0/16", None, &[]).expect("vpc");
        let (_, block) = w.associate_vpc_ipv6_block(&env, &vpc).expect("block");
        let subnet = w
            .create_subnet(&env, &vpc, "10.0.1.0/24", None, None, &[])
            .expect("subnet");
        let eni = w
            .create_network_interface(
                &env,
                EniSpec {
                    subnet_id: subnet,
                    ..Default::default()
                },
                &[],
            )
            .expect("interface");
        let rt = w.create_route_table(&env, &vpc, &[]).expect("table");
        w.create_route(
            &env,
            &rt,
            "::/0",
            RouteTarget::NetworkInterface(eni.clone()),
        )
        .expect("route");
        let spec = v6_spec(&w);
        let routes = &spec.routes[&vpclab_netstack::topology::rid(&rt)];
        let default = routes
            .iter()
            .find(|r| r.destination.prefix_len() == 0)
            .expect("the ::/0 route");
        assert_eq!(
            default.target,
            Target6::Interface(vpclab_netstack::topology::rid(&eni))
        );
        assert!(routes.iter().any(|r| r.destination == block));
    }
}
