//! VPCs: CreateVpc, DeleteVpc, DescribeVpcs' filters, Modify/DescribeVpcAttribute,
//! Associate/DisassociateVpcCidrBlock, CreateDefaultVpc, and the default VPC every region
//! of a new account has (AWS "Default VPCs": 172.31.0.0/16, one /20 default subnet per
//! availability zone, an attached internet gateway, a main route table with 0.0.0.0/0 →
//! igw, the default security group and network ACL, DNS hostnames enabled).

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::nacl::NetworkAcl;
use super::route_table::{Destination, Route, RouteTable, RouteTarget};
use super::sg::SecurityGroup;
use crate::model::filter::b;
use crate::model::region;
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World, parse_cidr};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcCidr {
    pub association_id: String,
    #[serde(with = "crate::model::cidr_serde")]
    pub cidr: Ipv4Net,
    /// `associated`, or `disassociated` briefly on AWS (we drop the row instead).
    pub state: String,
}

/// `Eq` matters beyond correctness: `Arc<Vpc>` then compares by pointer first, so
/// diffing two versions of the VPC table (`Table::changes_since`, each commit's resolver
/// reconcile) skips the field-by-field comparison of every row the versions share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    pub id: String,
    pub region: String,
    /// The primary block first, then secondary blocks.
    pub cidrs: Vec<VpcCidr>,
    pub state: String,
    pub is_default: bool,
    pub instance_tenancy: String,
    pub dhcp_options_id: String,
    pub enable_dns_support: bool,
    pub enable_dns_hostnames: bool,
    #[serde(default)]
    pub enable_network_address_usage_metrics: bool,
    /// Amazon-provided IPv6 blocks (see `ipv6.rs`).
    #[serde(default)]
    pub ipv6_cidrs: Vec<super::ipv6::VpcIpv6Cidr>,
}

impl Vpc {
    /// The primary IPv4 block (the one given to CreateVpc).
    pub fn cidr(&self) -> Ipv4Net {
        self.cidrs.first().map(|c| c.cidr).unwrap_or_default()
    }

    /// Whether `net` lies inside one of the VPC's blocks.
    pub fn contains_net(&self, net: &Ipv4Net) -> bool {
        self.cidrs.iter().any(|c| c.cidr.contains(net))
    }
}

impl Resource for Vpc {
    const KIND: &'static str = "vpc";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for Vpc {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "vpc-id" => vec![self.id.clone()],
            "cidr" | "cidr-block" => vec![self.cidr().to_string()],
            "cidr-block-association.cidr-block" => {
                self.cidrs.iter().map(|c| c.cidr.to_string()).collect()
            }
            "cidr-block-association.association-id" => self
                .cidrs
                .iter()
                .map(|c| c.association_id.clone())
                .collect(),
            "cidr-block-association.state" => self.cidrs.iter().map(|c| c.state.clone()).collect(),
            "ipv6-cidr-block-association.ipv6-cidr-block" => {
                self.ipv6_cidrs.iter().map(|c| c.cidr.to_string()).collect()
            }
            "ipv6-cidr-block-association.association-id" => self
                .ipv6_cidrs
                .iter()
                .map(|c| c.association_id.clone())
                .collect(),
            "ipv6-cidr-block-association.state" => {
                self.ipv6_cidrs.iter().map(|c| c.state.clone()).collect()
            }
            "ipv6-cidr-block-association.ipv6-pool" => self
                .ipv6_cidrs
                .iter()
                .map(|_| "Amazon".to_string())
                .collect(),
            "state" => vec![self.state.clone()],
            "is-default" | "isDefault" => vec![b(self.is_default)],
            "dhcp-options-id" => vec![self.dhcp_options_id.clone()],
            "owner-id" => vec![world.account.clone()],
            _ => return None,
        })
    }
}

/// `InvalidVpcID.NotFound` for `id`.
pub fn vpc_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidVpcID.NotFound", "vpc ID", id)
}

/// The default VPC's block and its default subnets' prefix length (AWS "Default VPCs").
const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";
const DEFAULT_SUBNET_PREFIX: u8 = 20;

/// Which VPC attribute ModifyVpcAttribute / DescribeVpcAttribute addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VpcAttribute {
    EnableDnsSupport,
    EnableDnsHostnames,
    EnableNetworkAddressUsageMetrics,
}

impl VpcAttribute {
    pub fn parse(s: &str) -> Option<VpcAttribute> {
        match s {
            "enableDnsSupport" => Some(VpcAttribute::EnableDnsSupport),
            "enableDnsHostnames" => Some(VpcAttribute::EnableDnsHostnames),
            "enableNetworkAddressUsageMetrics" => {
                Some(VpcAttribute::EnableNetworkAddressUsageMetrics)
            }
            _ => None,
        }
    }
}

impl World {
    /// Whether `region` already has its default VPC (and bookkeeping).
    pub fn region_ready(&self, region: &str) -> bool {
        self.meta().is_some_and(|m| m.regions.contains(region))
    }

    /// On an account's first use of a region, creates what AWS gives every new account
    /// there: the default DHCP options and the default VPC with all its parts.
    pub fn ensure_region(&mut self, env: &Env) -> ApiResult<()> {
        if self.region_ready(&env.region) {
            return Ok(());
        }
        if region::region(&env.region).is_none() {
            return Err(ApiError::auth(format!(
                "Credential should be scoped to a valid region, not '{}'.",
                env.region
            )));
        }
        self.ensure_meta();
        let dopt = self.alloc_id("dopt");
        if let Some(meta) = self.meta.get_mut("world") {
            meta.regions.insert(env.region.clone());
            meta.dhcp_options.insert(env.region.clone(), dopt.clone());
        }
        self.dhcp_options
            .insert(super::dhcp::DhcpOptions::default_for(&dopt, &env.region));
        self.create_default_vpc_parts(env)?;
        Ok(())
    }

    fn dhcp_options_id(&self, region: &str) -> String {
        self.meta()
            .and_then(|m| m.dhcp_options.get(region).cloned())
            .unwrap_or_else(|| super::dhcp::NO_OPTIONS.to_string())
    }

    /// The default VPC of the request's region, if it exists.
    pub fn default_vpc(&self, region: &str) -> Option<&Vpc> {
        self.vpcs.in_region(region).find(|v| v.is_default)
    }

    /// CreateDefaultVpc: only when the region has none (`DefaultVpcAlreadyExists`).
    pub fn create_default_vpc(&mut self, env: &Env) -> ApiResult<String> {
        if let Some(v) = self.default_vpc(&env.region) {
            return Err(ApiError::new(
                "DefaultVpcAlreadyExists",
                format!(
                    "A Default VPC already exists for this account in this region ({}).",
                    v.id
                ),
            ));
        }
        self.create_default_vpc_parts(env)
    }

    fn create_default_vpc_parts(&mut self, env: &Env) -> ApiResult<String> {
        let cidr: Ipv4Net = DEFAULT_VPC_CIDR.parse().map_err(|_| ApiError::internal())?;
        let vpc_id = self.insert_vpc(env, cidr, true)?;
        let igw = self.create_internet_gateway(env, &[])?;
        self.attach_internet_gateway(env, &igw, &vpc_id)?;
        let main = self
            .main_route_table(&vpc_id)
            .map(|r| r.id.clone())
            .ok_or_else(ApiError::internal)?;
        if let Some(rt) = self.route_tables.get_mut(&main) {
            rt.routes.push(Route {
                destination: Destination::Cidr(Ipv4Net::default()),
                target: RouteTarget::Gateway(igw),
                origin: "CreateRoute".into(),
            });
        }
        let zones = region::zones(&env.region);
        let blocks = cidr
            .subnets(DEFAULT_SUBNET_PREFIX)
            .map_err(|_| ApiError::internal())?;
        for (zone, block) in zones.iter().zip(blocks) {
            let id = self.create_subnet(
                env,
                &vpc_id,
                &block.to_string(),
                Some(&zone.name),
                None,
                &[],
            )?;
            if let Some(s) = self.subnets.get_mut(&id) {
                s.default_for_az = true;
                s.map_public_ip_on_launch = true;
            }
        }
        Ok(vpc_id)
    }

    /// CreateVpc.
    pub fn create_vpc(
        &mut self,
        env: &Env,
        cidr_block: &str,
        tenancy: Option<&str>,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["vpc"])?;
        let cidr = parse_cidr("cidrBlock", cidr_block)?;
        check_vpc_block(&cidr)?;
        if let Some(t) = tenancy
            && !matches!(t, "default" | "dedicated")
        {
            return Err(ApiError::bad_param("instanceTenancy", t));
        }
        let id = self.insert_vpc(env, cidr, false)?;
        if let Some(t) = tenancy
            && let Some(v) = self.vpcs.get_mut(&id)
        {
            v.instance_tenancy = t.to_string();
        }
        self.apply_tag_specs(env, &id, "vpc", specs)?;
        Ok(id)
    }

    /// Creates a VPC with what AWS creates alongside every VPC: the main route table (a
    /// `local` route), the default network ACL (rule 100 allow all, both directions) and
    /// the default security group (inbound from itself, outbound to anywhere).
    fn insert_vpc(&mut self, env: &Env, cidr: Ipv4Net, is_default: bool) -> ApiResult<String> {
        let id = self.alloc_id("vpc");
        let assoc = self.alloc_id("vpc-cidr-assoc");
        let dhcp = self.dhcp_options_id(&env.region);
        self.vpcs.insert(Vpc {
            id: id.clone(),
            region: env.region.clone(),
            cidrs: vec![VpcCidr {
                association_id: assoc,
                cidr,
                state: "associated".into(),
            }],
            state: "available".into(),
            is_default,
            instance_tenancy: "default".into(),
            dhcp_options_id: dhcp,
            enable_dns_support: true,
            enable_dns_hostnames: is_default,
            enable_network_address_usage_metrics: false,
            ipv6_cidrs: Vec::new(),
        });
        let rtb = RouteTable::new_for_vpc(self, env, &id, cidr, true);
        self.route_tables.insert(rtb);
        let acl = NetworkAcl::new_for_vpc(self, env, &id, true);
        self.network_acls.insert(acl);
        let sg = SecurityGroup::new_default(self, env, &id);
        self.security_groups.insert(sg);
        Ok(id)
    }

    pub fn vpc(&self, region: &str, id: &str) -> ApiResult<&Vpc> {
        match self.vpcs.get(id) {
            Some(v) if v.region == region => Ok(v),
            _ => Err(vpc_not_found(id)),
        }
    }

    /// DeleteVpc: refused with `DependencyViolation` while anything but the VPC's own
    /// main route table, default network ACL and default security group remains (AWS:
    /// "You must detach or delete all gateways and resources that are associated with the
    /// VPC before you can delete it").
    pub fn delete_vpc(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        self.vpc(&env.region, id)?;
        let dep = |what: &str| {
            ApiError::dependency(format!(
                "The vpc '{id}' has dependencies and cannot be deleted. ({what})"
            ))
        };
        if self.subnets.iter().any(|s| s.vpc_id == id) {
            return Err(dep("subnets"));
        }
        if self
            .internet_gateways
            .iter()
            .any(|g| g.attached_vpc.as_deref() == Some(id))
        {
            return Err(dep("internet gateway attached"));
        }
        if self
            .route_tables
            .iter()
            .any(|r| r.vpc_id == id && !r.is_main())
        {
            return Err(dep("route tables"));
        }
        if self
            .network_acls
            .iter()
            .any(|a| a.vpc_id == id && !a.is_default)
        {
            return Err(dep("network ACLs"));
        }
        if self
            .security_groups
            .iter()
            .any(|g| g.vpc_id == id && g.group_name != "default")
        {
            return Err(dep("security groups"));
        }
        if self.network_interfaces.iter().any(|e| e.vpc_id == id) {
            return Err(dep("network interfaces"));
        }
        if self.vpc_endpoints.iter().any(|e| e.vpc_id == id) {
            return Err(dep("VPC endpoints"));
        }
        if self
            .egress_only_internet_gateways
            .iter()
            .any(|g| g.vpc_id == id)
        {
            return Err(dep("egress-only internet gateways"));
        }
        if self
            .nat_gateways
            .iter()
            .any(|n| n.vpc_id == id && n.state != "deleted")
        {
            return Err(dep("NAT gateways"));
        }
        for rid in self.route_tables.ids_where(|r| r.vpc_id == id) {
            self.route_tables.remove(&rid);
            self.drop_tags(&rid);
        }
        for aid in self.network_acls.ids_where(|a| a.vpc_id == id) {
            self.network_acls.remove(&aid);
            self.drop_tags(&aid);
        }
        for gid in self.security_groups.ids_where(|g| g.vpc_id == id) {
            self.security_groups.remove(&gid);
            self.drop_tags(&gid);
        }
        for nid in self.nat_gateways.ids_where(|n| n.vpc_id == id) {
            self.nat_gateways.remove(&nid);
            self.drop_tags(&nid);
        }
        self.vpcs.remove(id);
        self.drop_tags(id);
        Ok(())
    }

    /// ModifyVpcAttribute (one attribute per call, as AWS requires).
    pub fn modify_vpc_attribute(
        &mut self,
        env: &Env,
        id: &str,
        attr: VpcAttribute,
        value: bool,
    ) -> ApiResult<()> {
        let vpc = self.vpc(&env.region, id)?;
        // AWS: DNS hostnames need DNS support.
        if attr == VpcAttribute::EnableDnsHostnames && value && !vpc.enable_dns_support {
            return Err(ApiError::invalid_value(
                "Cannot enable DNS hostnames when DNS support is disabled.",
            ));
        }
        if attr == VpcAttribute::EnableDnsSupport && !value && vpc.enable_dns_hostnames {
            return Err(ApiError::invalid_value(
                "Cannot disable DNS support while DNS hostnames are enabled.",
            ));
        }
        let vpc = self.vpcs.get_mut(id).ok_or_else(|| vpc_not_found(id))?;
        match attr {
            VpcAttribute::EnableDnsSupport => vpc.enable_dns_support = value,
            VpcAttribute::EnableDnsHostnames => vpc.enable_dns_hostnames = value,
            VpcAttribute::EnableNetworkAddressUsageMetrics => {
                vpc.enable_network_address_usage_metrics = value
            }
        }
        Ok(())
    }

    /// AssociateVpcCidrBlock: a secondary IPv4 block (/16–/28, no overlap with the VPC's
    /// blocks, at most 5 blocks in all — AWS's default quota). Returns the association id.
    pub fn associate_vpc_cidr_block(
        &mut self,
        env: &Env,
        id: &str,
        cidr_block: &str,
    ) -> ApiResult<String> {
        let vpc = self.vpc(&env.region, id)?;
        let cidr = parse_cidr("cidrBlock", cidr_block)?;
        check_vpc_block(&cidr)?;
        if vpc.cidrs.iter().any(|c| overlaps(&c.cidr, &cidr)) {
            return Err(ApiError::new(
                "InvalidVpc.Range",
                format!("The CIDR '{cidr}' conflicts with another subnet"),
            ));
        }
        if vpc.cidrs.len() >= 5 {
            return Err(ApiError::new(
                "CidrLimitExceeded",
                format!("This network '{id}' has met its maximum number of allowed CIDRs: 5"),
            ));
        }
        let assoc = self.alloc_id("vpc-cidr-assoc");
        let vpc = self.vpcs.get_mut(id).ok_or_else(|| vpc_not_found(id))?;
        vpc.cidrs.push(VpcCidr {
            association_id: assoc.clone(),
            cidr,
            state: "associated".into(),
        });
        // Every VPC block gets a `local` route in every route table of the VPC.
        for rid in self.route_tables.ids_where(|r| r.vpc_id == id) {
            if let Some(rt) = self.route_tables.get_mut(&rid) {
                rt.routes.push(Route {
                    destination: Destination::Cidr(cidr),
                    target: RouteTarget::Local,
                    origin: "CreateRouteTable".into(),
                });
            }
        }
        Ok(assoc)
    }

    /// DisassociateVpcCidrBlock: never the primary block; not while a subnet uses it.
    /// Returns `(vpc_id, cidr)`.
    pub fn disassociate_vpc_cidr_block(
        &mut self,
        env: &Env,
        assoc: &str,
    ) -> ApiResult<(String, Ipv4Net)> {
        let Some(vpc) = self
            .vpcs
            .in_region(&env.region)
            .find(|v| v.cidrs.iter().any(|c| c.association_id == assoc))
        else {
            return Err(ApiError::new(
                "InvalidVpcCidrBlockAssociationID.NotFound",
                format!("The vpc CIDR block association ID '{assoc}' does not exist"),
            ));
        };
        let vpc_id = vpc.id.clone();
        let Some(pos) = vpc.cidrs.iter().position(|c| c.association_id == assoc) else {
            return Err(ApiError::internal());
        };
        let cidr = vpc.cidrs[pos].cidr;
        if pos == 0 {
            return Err(ApiError::new(
                "OperationNotPermitted",
                format!(
                    "The vpc CIDR block with association ID {assoc} may not be disassociated. It is the primary IPv4 CIDR block of the VPC"
                ),
            ));
        }
        if self
            .subnets
            .iter()
            .any(|s| s.vpc_id == vpc_id && cidr.contains(&s.cidr))
        {
            return Err(ApiError::dependency(format!(
                "The vpc CIDR block {cidr} cannot be disassociated: it contains subnets."
            )));
        }
        if let Some(v) = self.vpcs.get_mut(&vpc_id) {
            v.cidrs.remove(pos);
        }
        for rid in self.route_tables.ids_where(|r| r.vpc_id == vpc_id) {
            if let Some(rt) = self.route_tables.get_mut(&rid) {
                rt.routes.retain(|r| {
                    !(r.destination.cidr() == Some(cidr) && r.target == RouteTarget::Local)
                });
            }
        }
        Ok((vpc_id, cidr))
    }
}

/// AWS: a VPC block is between /16 and /28 (`InvalidVpc.Range`).
fn check_vpc_block(cidr: &Ipv4Net) -> ApiResult<()> {
    if !(16..=28).contains(&cidr.prefix_len()) {
        return Err(ApiError::new(
            "InvalidVpc.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    Ok(())
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
