//! Elastic IP addresses: Allocate/Release/Associate/DisassociateAddress and their
//! filters, and the public address pool. Public addresses come from 198.18.0.0/15
//! (reserved for benchmarking, so routing it to a TUN never hijacks a real address),
//! lowest free first. AWS rules: at most 5 Elastic IPs per region (the default quota); an
//! associated address cannot be released; associating needs the VPC to have an internet
//! gateway (`Gateway.NotAttached`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::eni::EniAssociation;
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World};

/// Elastic IPs per region, AWS's default quota.
pub const EIP_LIMIT: usize = 5;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddressAssociation {
    pub association_id: String,
    pub network_interface_id: String,
    pub private_ip: Ipv4Addr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Address {
    /// The allocation id (`eipalloc-…`).
    pub id: String,
    pub region: String,
    pub public_ip: Ipv4Addr,
    pub association: Option<AddressAssociation>,
}

impl Resource for Address {
    const KIND: &'static str = "address";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for Address {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        let a = self.association.as_ref();
        Some(match name {
            "allocation-id" => vec![self.id.clone()],
            "public-ip" => vec![self.public_ip.to_string()],
            "domain" => vec!["vpc".into()],
            "association-id" => a.map(|x| x.association_id.clone()).into_iter().collect(),
            "network-interface-id" => a
                .map(|x| x.network_interface_id.clone())
                .into_iter()
                .collect(),
            "private-ip-address" => a.map(|x| x.private_ip.to_string()).into_iter().collect(),
            "instance-id" => a
                .and_then(|x| world.instance_of_eni(&x.network_interface_id))
                .into_iter()
                .collect(),
            "network-interface-owner-id" => a.map(|_| world.account.clone()).into_iter().collect(),
            "network-border-group" => vec![self.region.clone()],
            _ => return None,
        })
    }
}

/// AssociateAddress' parameters.
#[derive(Clone, Debug, Default)]
pub struct AssociateAddressInput {
    pub allocation_id: Option<String>,
    pub public_ip: Option<String>,
    pub instance_id: Option<String>,
    pub network_interface_id: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
    pub allow_reassociation: bool,
}

pub fn allocation_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidAllocationID.NotFound",
        format!("The allocation ID '{id}' does not exist"),
    )
}

impl World {
    /// The instance an interface is attached to.
    pub fn instance_of_eni(&self, eni_id: &str) -> Option<String> {
        self.network_interfaces
            .get(eni_id)
            .and_then(|e| e.attachment.as_ref())
            .map(|a| a.instance_id.clone())
    }

    /// The lowest free public address of 198.18.0.0/15 (skipping .0 and .255 of each /24
    /// so no address looks like a network or broadcast address to a learner).
    pub fn alloc_public_ip(&self) -> ApiResult<Ipv4Addr> {
        let used: BTreeSet<Ipv4Addr> = self
            .addresses
            .iter()
            .map(|a| a.public_ip)
            .chain(
                self.network_interfaces
                    .iter()
                    .filter_map(|e| e.association.as_ref().map(|a| a.public_ip)),
            )
            .collect();
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
        (base + 1..base + (1 << 17))
            .map(Ipv4Addr::from)
            .filter(|ip| !matches!(ip.octets()[3], 0 | 255))
            .find(|ip| !used.contains(ip))
            .ok_or_else(|| {
                ApiError::new(
                    "AddressLimitExceeded",
                    "The public address pool is exhausted.",
                )
            })
    }

    pub fn address(&self, region: &str, id: &str) -> ApiResult<&Address> {
        match self.addresses.get(id) {
            Some(a) if a.region == region => Ok(a),
            _ => Err(allocation_not_found(id)),
        }
    }

    /// Finds an address by allocation id or (EC2-Classic style) public IP.
    pub fn find_address(
        &self,
        region: &str,
        allocation_id: Option<&str>,
        public_ip: Option<&str>,
    ) -> ApiResult<&Address> {
        if let Some(id) = allocation_id {
            return self.address(region, id);
        }
        let Some(ip) = public_ip else {
            return Err(ApiError::missing("AllocationId"));
        };
        self.addresses
            .in_region(region)
            .find(|a| a.public_ip.to_string() == ip)
            .ok_or_else(|| {
                ApiError::new(
                    "InvalidAddress.NotFound",
                    format!("Address '{ip}' not found."),
                )
            })
    }

    /// AllocateAddress. Returns (allocation id, public ip).
    pub fn allocate_address(
        &mut self,
        env: &Env,
        specs: &[TagSpec],
    ) -> ApiResult<(String, Ipv4Addr)> {
        World::check_tag_specs(specs, &["elastic-ip"])?;
        if self.addresses.in_region(&env.region).count() >= EIP_LIMIT {
            return Err(ApiError::new(
                "AddressLimitExceeded",
                "The maximum number of addresses has been reached.",
            ));
        }
        let ip = self.alloc_public_ip()?;
        let id = self.alloc_id("eipalloc");
        self.addresses.insert(Address {
            id: id.clone(),
            region: env.region.clone(),
            public_ip: ip,
            association: None,
        });
        self.apply_tag_specs(env, &id, "elastic-ip", specs)?;
        Ok((id, ip))
    }

    /// ReleaseAddress.
    pub fn release_address(
        &mut self,
        env: &Env,
        allocation_id: Option<&str>,
        public_ip: Option<&str>,
    ) -> ApiResult<()> {
        let a = self.find_address(&env.region, allocation_id, public_ip)?;
        if a.association.is_some() {
            return Err(ApiError::new(
                "InvalidIPAddress.InUse",
                format!("Address {} is in use.", a.public_ip),
            ));
        }
        let id = a.id.clone();
        self.addresses.remove(&id);
        self.drop_tags(&id);
        Ok(())
    }

    /// AssociateAddress to an interface (given directly, or as an instance's primary
    /// interface). Returns the association id.
    pub fn associate_address(
        &mut self,
        env: &Env,
        input: &AssociateAddressInput,
    ) -> ApiResult<String> {
        let allocation_id = input.allocation_id.as_deref();
        let public_ip = input.public_ip.as_deref();
        let instance_id = input.instance_id.as_deref();
        let eni_id = input.network_interface_id.as_deref();
        let private_ip = input.private_ip;
        let allow_reassociation = input.allow_reassociation;
        let addr = self
            .find_address(&env.region, allocation_id, public_ip)?
            .clone();
        let eni = match (eni_id, instance_id) {
            (Some(e), _) => self.network_interface(&env.region, e)?.clone(),
            (None, Some(i)) => self.primary_eni_of_instance(i).cloned().ok_or_else(|| {
                ApiError::not_found("InvalidInstanceID.NotFound", "instance ID", i)
            })?,
            (None, None) => return Err(ApiError::missing("InstanceId")),
        };
        // An Elastic IP maps to a private IPv4 address, which an interface in an
        // IPv6-only subnet does not have.
        if eni.ipv4().is_none() {
            return Err(super::subnet::ipv6_native_no_ipv4(&eni.subnet_id));
        }
        if let Some(ip) = private_ip
            && ip != eni.private_ip
            && !eni.secondary_ips.contains(&ip)
        {
            return Err(ApiError::invalid_value(format!(
                "The private IP address {ip} is not assigned to the network interface {}",
                eni.id
            )));
        }
        if self.igw_of_vpc(&eni.vpc_id).is_none() {
            return Err(ApiError::new(
                "Gateway.NotAttached",
                format!(
                    "Network {} is not attached to any internet gateway",
                    eni.vpc_id
                ),
            ));
        }
        if let Some(old) = &addr.association {
            if !allow_reassociation && old.network_interface_id != eni.id {
                return Err(ApiError::new(
                    "Resource.AlreadyAssociated",
                    format!(
                        "resource {} is already associated with associate-id {}",
                        addr.id, old.association_id
                    ),
                ));
            }
            self.clear_address_association(&addr.id);
        }
        // An interface holds one public address: an Elastic IP replaces an auto-assigned
        // address or another Elastic IP.
        if let Some(prev) = eni
            .association
            .as_ref()
            .and_then(|a| a.allocation_id.clone())
            && prev != addr.id
            && let Some(p) = self.addresses.get_mut(&prev)
        {
            p.association = None;
        }
        let assoc = self.alloc_id("eipassoc");
        let pip = private_ip.unwrap_or(eni.private_ip);
        if let Some(a) = self.addresses.get_mut(&addr.id) {
            a.association = Some(AddressAssociation {
                association_id: assoc.clone(),
                network_interface_id: eni.id.clone(),
                private_ip: pip,
            });
        }
        if let Some(e) = self.network_interfaces.get_mut(&eni.id) {
            e.association = Some(EniAssociation {
                public_ip: addr.public_ip,
                allocation_id: Some(addr.id.clone()),
                association_id: Some(assoc.clone()),
            });
        }
        Ok(assoc)
    }

    fn clear_address_association(&mut self, allocation_id: &str) {
        let Some(old) = self
            .addresses
            .get(allocation_id)
            .and_then(|a| a.association.clone())
        else {
            return;
        };
        if let Some(a) = self.addresses.get_mut(allocation_id) {
            a.association = None;
        }
        if let Some(e) = self.network_interfaces.get_mut(&old.network_interface_id)
            && e.association
                .as_ref()
                .and_then(|x| x.allocation_id.as_deref())
                == Some(allocation_id)
        {
            e.association = None;
        }
    }

    /// DisassociateAddress by association id (or public IP).
    pub fn disassociate_address(
        &mut self,
        env: &Env,
        association_id: Option<&str>,
        public_ip: Option<&str>,
    ) -> ApiResult<()> {
        let addr = match association_id {
            Some(assoc) => self
                .addresses
                .in_region(&env.region)
                .find(|a| {
                    a.association
                        .as_ref()
                        .is_some_and(|x| x.association_id == assoc)
                })
                .ok_or_else(|| {
                    ApiError::new(
                        "InvalidAssociationID.NotFound",
                        format!("The association ID '{assoc}' does not exist"),
                    )
                })?,
            None => self.find_address(&env.region, None, public_ip)?,
        };
        let id = addr.id.clone();
        if let Some(eni) = addr
            .association
            .as_ref()
            .and_then(|a| self.network_interfaces.get(&a.network_interface_id))
            && eni.interface_type == "nat_gateway"
        {
            return Err(ApiError::new(
                "InvalidIPAddress.InUse",
                format!(
                    "The address {} is in use by a NAT gateway and cannot be disassociated.",
                    addr.public_ip
                ),
            ));
        }
        self.clear_address_association(&id);
        Ok(())
    }
}
