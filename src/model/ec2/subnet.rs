//! Subnets: CreateSubnet, DeleteSubnet, ModifySubnetAttribute, DescribeSubnets' filters,
//! and private address allocation. AWS rules: a subnet block is /16–/28, lies inside one
//! of its VPC's blocks (`InvalidSubnet.Range`) and overlaps no other subnet of the VPC
//! (`InvalidSubnet.Conflict`); five addresses are reserved (network, router .1, DNS .2,
//! future .3, broadcast); a new subnet is associated with the VPC's default network ACL
//! and (implicitly) its main route table.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::nacl::NaclAssociation;
use super::vpc::overlaps;
use crate::model::filter::b;
use crate::model::region;
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World, parse_cidr};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    #[serde(with = "crate::model::cidr_serde")]
    pub cidr: Ipv4Net,
    pub availability_zone: String,
    pub availability_zone_id: String,
    pub state: String,
    pub map_public_ip_on_launch: bool,
    pub default_for_az: bool,
    /// The subnet's IPv6 /64, if any (see `ipv6.rs`).
    #[serde(default)]
    pub ipv6_cidrs: Vec<super::ipv6::SubnetIpv6Cidr>,
    #[serde(default)]
    pub assign_ipv6_address_on_creation: bool,
    /// `PrivateDnsNameOptionsOnLaunch`.
    #[serde(default)]
    pub dns_name_options: super::ipv6::PrivateDnsNameOptions,
    /// An IPv6-only subnet (`CreateSubnet --ipv6-native`): it has no IPv4 block. `cidr`
    /// then holds `IPV6_NATIVE_NO_IPV4` (0.0.0.0/32, inside no VPC block, overlapping no
    /// subnet): `ipv4_cidr` says `None` for it, the API and console never show it, no
    /// interface has an IPv4 address in it (the fabric's IPv4 side delivers nothing
    /// there), and address allocation refuses it. (A full
    /// `Option<Ipv4Net>` would touch ~95 reads of `cidr` that only IPv4 subnets reach.)
    #[serde(default)]
    pub ipv6_native: bool,
}

/// The stand-in IPv4 block of an IPv6-only subnet (never rendered, never allocated from).
pub const IPV6_NATIVE_NO_IPV4: Ipv4Net = match Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 32) {
    Ok(n) => n,
    Err(_) => panic!("a /32 is a valid prefix"),
};

impl Resource for Subnet {
    const KIND: &'static str = "subnet";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Subnet {
    /// AWS's subnet ARN.
    pub fn arn(&self, account: &str) -> String {
        format!("arn:aws:ec2:{}:{}:subnet/{}", self.region, account, self.id)
    }

    /// The IPv4 block; `None` for an IPv6-only subnet.
    pub fn ipv4_cidr(&self) -> Option<Ipv4Net> {
        (!self.ipv6_native).then_some(self.cidr)
    }

    /// The IPv4 block as shown to people: `-` for an IPv6-only subnet (which has none).
    pub fn ipv4_cidr_text(&self) -> String {
        if self.ipv6_native {
            "-".to_string()
        } else {
            self.cidr.to_string()
        }
    }

    /// Addresses AWS never hands out: network, .1 router, .2 DNS, .3 reserved, broadcast.
    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        let base = u32::from(self.cidr.network());
        let off = u32::from(ip).wrapping_sub(base);
        off <= 3 || ip == self.cidr.broadcast()
    }

    /// Addresses a subnet offers in all (a /24 offers 251, a /28 offers 11).
    pub fn usable_addresses(&self) -> u32 {
        let size = 1u64 << (32 - u32::from(self.cidr.prefix_len()));
        size.saturating_sub(5) as u32
    }
}

impl Filterable for Subnet {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "subnet-id" => vec![self.id.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "cidr" | "cidr-block" | "cidrBlock" | "cidr-block-association.cidr-block" => {
                if self.ipv6_native {
                    Vec::new()
                } else {
                    vec![self.cidr.to_string()]
                }
            }
            "availability-zone" | "availabilityZone" => vec![self.availability_zone.clone()],
            "availability-zone-id" | "availabilityZoneId" => {
                vec![self.availability_zone_id.clone()]
            }
            "state" => vec![self.state.clone()],
            "default-for-az" | "defaultForAz" => vec![b(self.default_for_az)],
            "map-public-ip-on-launch" => vec![b(self.map_public_ip_on_launch)],
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
            "assign-ipv6-address-on-creation" => vec![b(self.assign_ipv6_address_on_creation)],
            "ipv6-native" => vec![b(self.ipv6_native)],
            "available-ip-address-count" => vec![world.available_ip_count(self).to_string()],
            "subnet-arn" => vec![self.arn(&world.account)],
            "owner-id" => vec![world.account.clone()],
            _ => return None,
        })
    }
}

/// What a request that needs a private IPv4 address in an IPv6-only subnet gets (a
/// requested private address, secondary addresses, a NAT gateway, an interface endpoint,
/// a load balancer node). AWS documents no dedicated code; the subnet has no IPv4 range,
/// so the parameter is invalid for it.
pub fn ipv6_native_no_ipv4(subnet_id: &str) -> ApiError {
    ApiError::invalid_value(format!(
        "The subnet {subnet_id} is IPv6-only: it has no IPv4 CIDR block, so no private IPv4 address can be assigned in it."
    ))
}

pub fn subnet_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidSubnetID.NotFound", "subnet ID", id)
}

impl World {
    pub fn subnet(&self, region: &str, id: &str) -> ApiResult<&Subnet> {
        match self.subnets.get(id) {
            Some(s) if s.region == region => Ok(s),
            _ => Err(subnet_not_found(id)),
        }
    }

    /// Private addresses in use in a subnet (every interface's addresses).
    pub fn used_ips(&self, subnet_id: &str) -> BTreeSet<Ipv4Addr> {
        self.network_interfaces
            .iter()
            .filter(|e| e.subnet_id == subnet_id)
            .flat_map(|e| e.ipv4().into_iter().chain(e.secondary_ips.iter().copied()))
            .collect()
    }

    pub fn available_ip_count(&self, subnet: &Subnet) -> u32 {
        subnet
            .usable_addresses()
            .saturating_sub(self.used_ips(&subnet.id).len() as u32)
    }

    /// The next free private address of a subnet (lowest first, after the reserved ones),
    /// or `InsufficientFreeAddressesInSubnet`.
    pub fn next_private_ip(&self, subnet_id: &str) -> ApiResult<Ipv4Addr> {
        let subnet = self
            .subnets
            .get(subnet_id)
            .ok_or_else(|| subnet_not_found(subnet_id))?;
        if subnet.ipv6_native {
            return Err(ipv6_native_no_ipv4(subnet_id));
        }
        let used = self.used_ips(subnet_id);
        let base = u32::from(subnet.cidr.network());
        let last = u32::from(subnet.cidr.broadcast());
        (base + 4..last)
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
            .ok_or_else(|| {
                ApiError::new(
                    "InsufficientFreeAddressesInSubnet",
                    format!("There are not enough free addresses in subnet '{subnet_id}' to satisfy the requested number of instances."),
                )
            })
    }

    /// Checks a requested private address: inside the subnet, not reserved, not in use.
    pub fn check_private_ip(&self, subnet_id: &str, ip: Ipv4Addr) -> ApiResult<()> {
        let subnet = self
            .subnets
            .get(subnet_id)
            .ok_or_else(|| subnet_not_found(subnet_id))?;
        if subnet.ipv6_native {
            return Err(ipv6_native_no_ipv4(subnet_id));
        }
        if !subnet.cidr.contains(&ip) {
            return Err(ApiError::invalid_value(format!(
                "Address {ip} does not fall within the subnet's address range"
            )));
        }
        if subnet.is_reserved(ip) {
            return Err(ApiError::invalid_value(format!(
                "Address {ip} is in subnet's reserved address range"
            )));
        }
        if self.used_ips(subnet_id).contains(&ip) {
            return Err(ApiError::new(
                "InvalidIPAddress.InUse",
                format!("Address {ip} is in use."),
            ));
        }
        Ok(())
    }

    /// CreateSubnet. Without a zone, AWS picks one; we pick deterministically (the zone
    /// with the fewest subnets of this VPC, first in order).
    pub fn create_subnet(
        &mut self,
        env: &Env,
        vpc_id: &str,
        cidr_block: &str,
        az: Option<&str>,
        az_id: Option<&str>,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["subnet"])?;
        let vpc = self.vpc(&env.region, vpc_id)?.clone();
        let cidr = parse_cidr("cidrBlock", cidr_block)?;
        if !(16..=28).contains(&cidr.prefix_len()) || !vpc.contains_net(&cidr) {
            return Err(ApiError::new(
                "InvalidSubnet.Range",
                format!("The CIDR '{cidr}' is invalid."),
            ));
        }
        if self
            .subnets
            .iter()
            .any(|s| s.vpc_id == vpc_id && overlaps(&s.cidr, &cidr))
        {
            return Err(ApiError::new(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{cidr}' conflicts with another subnet"),
            ));
        }
        self.insert_subnet(env, vpc_id, cidr, false, az, az_id, specs)
    }

    /// CreateSubnet with `Ipv6Native`: an IPv6-only subnet whose only block is the given
    /// /64 of the VPC's IPv6 block. AWS: instance DNS names in an IPv6-only subnet must be
    /// resource-based, so the subnet's launch option is `resource-name`.
    pub fn create_ipv6_native_subnet(
        &mut self,
        env: &Env,
        vpc_id: &str,
        ipv6_block: &str,
        az: Option<&str>,
        az_id: Option<&str>,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["subnet"])?;
        let vpc = self.vpc(&env.region, vpc_id)?;
        if vpc.ipv6_cidrs.is_empty() {
            return Err(ApiError::invalid_value(format!(
                "The VPC {vpc_id} has no IPv6 CIDR block; an IPv6-only subnet needs one."
            )));
        }
        // Validate the /64 before anything is created (the association re-checks it).
        let block = super::ipv6::parse_cidr6("ipv6CidrBlock", ipv6_block)?;
        if block.prefix_len() != 64 || !vpc.ipv6_cidrs.iter().any(|c| c.cidr.contains(&block)) {
            return Err(ApiError::new(
                "InvalidSubnet.Range",
                format!(
                    "The IPv6 CIDR '{block}' is invalid: a subnet's IPv6 block is a /64 inside an IPv6 block of its VPC."
                ),
            ));
        }
        if self.subnets.iter().any(|s| {
            s.vpc_id == vpc_id
                && s.ipv6_cidrs
                    .iter()
                    .any(|c| c.cidr.contains(&block.network()) || block.contains(&c.cidr.network()))
        }) {
            return Err(ApiError::new(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{block}' conflicts with another subnet"),
            ));
        }
        let id = self.insert_subnet(env, vpc_id, IPV6_NATIVE_NO_IPV4, true, az, az_id, specs)?;
        self.associate_subnet_ipv6_block(env, &id, ipv6_block)?;
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_subnet(
        &mut self,
        env: &Env,
        vpc_id: &str,
        cidr: Ipv4Net,
        ipv6_native: bool,
        az: Option<&str>,
        az_id: Option<&str>,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        let info = region::region(&env.region).ok_or_else(ApiError::internal)?;
        let zones = info.zones();
        let zone = match (az, az_id) {
            (Some(name), _) => info.zone(name).ok_or_else(|| {
                ApiError::invalid_value(format!(
                    "Value ({name}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
                    zones.iter().map(|z| z.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?,
            (None, Some(id)) => info
                .zone_by_id(id)
                .ok_or_else(|| ApiError::bad_param("availabilityZoneId", id))?,
            (None, None) => zones
                .iter()
                .min_by_key(|z| self.subnets.iter().filter(|s| s.vpc_id == vpc_id && s.availability_zone == z.name).count())
                .cloned()
                .ok_or_else(ApiError::internal)?,
        };
        let id = self.alloc_id("subnet");
        self.subnets.insert(Subnet {
            id: id.clone(),
            region: env.region.clone(),
            vpc_id: vpc_id.to_string(),
            cidr,
            availability_zone: zone.name,
            availability_zone_id: zone.zone_id,
            state: "available".into(),
            map_public_ip_on_launch: false,
            default_for_az: false,
            ipv6_cidrs: Vec::new(),
            assign_ipv6_address_on_creation: false,
            dns_name_options: super::ipv6::PrivateDnsNameOptions {
                resource_name_hostname: ipv6_native,
                ..Default::default()
            },
            ipv6_native,
        });
        // Every subnet is associated with exactly one network ACL: the default one at first.
        if let Some(acl_id) = self.default_nacl(vpc_id).map(|a| a.id.clone()) {
            let assoc = self.alloc_id("aclassoc");
            if let Some(acl) = self.network_acls.get_mut(&acl_id) {
                acl.associations.push(NaclAssociation {
                    id: assoc,
                    subnet_id: id.clone(),
                });
            }
        }
        self.apply_tag_specs(env, &id, "subnet", specs)?;
        Ok(id)
    }

    /// DeleteSubnet: refused while network interfaces (instances, NAT gateways) use it.
    pub fn delete_subnet(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        self.subnet(&env.region, id)?;
        if self.network_interfaces.iter().any(|e| e.subnet_id == id)
            || self
                .nat_gateways
                .iter()
                .any(|n| n.subnet_id == id && n.state != "deleted")
        {
            return Err(ApiError::dependency(format!(
                "The subnet '{id}' has dependencies and cannot be deleted."
            )));
        }
        for rid in self.route_tables.ids_where(|r| {
            r.associations
                .iter()
                .any(|a| a.subnet_id.as_deref() == Some(id))
        }) {
            if let Some(rt) = self.route_tables.get_mut(&rid) {
                rt.associations
                    .retain(|a| a.subnet_id.as_deref() != Some(id));
            }
        }
        for aid in self
            .network_acls
            .ids_where(|a| a.associations.iter().any(|x| x.subnet_id == id))
        {
            if let Some(acl) = self.network_acls.get_mut(&aid) {
                acl.associations.retain(|x| x.subnet_id != id);
            }
        }
        self.subnets.remove(id);
        self.drop_tags(id);
        Ok(())
    }

    /// ModifySubnetAttribute `MapPublicIpOnLaunch`.
    pub fn set_map_public_ip_on_launch(
        &mut self,
        env: &Env,
        id: &str,
        value: bool,
    ) -> ApiResult<()> {
        if value && self.subnet(&env.region, id)?.ipv6_native {
            return Err(ApiError::invalid_value(format!(
                "The subnet {id} is IPv6-only: it has no IPv4 addresses, so MapPublicIpOnLaunch cannot be enabled."
            )));
        }
        self.subnet(&env.region, id)?;
        if let Some(s) = self.subnets.get_mut(id) {
            s.map_public_ip_on_launch = value;
        }
        Ok(())
    }
}
