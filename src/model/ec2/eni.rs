//! Network interfaces: Create/Delete/Attach/DetachNetworkInterface,
//! ModifyNetworkInterfaceAttribute and their filters, plus the helpers instances use
//! (`create_interface`, `attach_interface`, `primary_eni_of_instance`). AWS rules: an
//! interface lives in one subnet and takes its next free private address unless one is
//! asked for; it carries 1–5 security groups of its VPC; the source/destination check is
//! on by default; an attached interface cannot be deleted; the primary interface (device
//! index 0) cannot be detached.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::filter::b;
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, Timestamp, World};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EniAttachment {
    pub id: String,
    pub instance_id: String,
    pub device_index: u32,
    pub status: String,
    pub delete_on_termination: bool,
    pub attach_time: Timestamp,
}

/// The public side of an interface: an Elastic IP (with allocation and association ids)
/// or an auto-assigned public address (neither id, owner `amazon`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EniAssociation {
    pub public_ip: Ipv4Addr,
    pub allocation_id: Option<String>,
    pub association_id: Option<String>,
}

/// What `private_ip` holds for an interface (and an instance) in an IPv6-only subnet,
/// which has no private IPv4 address at all (AWS: "IPv6-only subnets … instances get
/// IPv6 addresses only"). The model keeps the field a plain `Ipv4Addr` because a
/// hundred places read it for the IPv4 world; every place that shows or routes an
/// address asks [`NetworkInterface::ipv4`] / `Instance::ipv4`, which say `None` for
/// this value, so it never reaches the API, the console, the DNS or the fabric.
pub const NO_PRIVATE_IPV4: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkInterface {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    pub description: String,
    pub private_ip: Ipv4Addr,
    #[serde(default)]
    pub secondary_ips: Vec<Ipv4Addr>,
    /// IPv6 addresses from the subnet's /64 (`ipv6AddressesSet`).
    #[serde(default)]
    pub ipv6_addresses: Vec<std::net::Ipv6Addr>,
    pub mac: String,
    pub groups: Vec<String>,
    pub source_dest_check: bool,
    /// `available` or `in-use`.
    pub status: String,
    /// `interface`, `nat_gateway`, …
    pub interface_type: String,
    pub requester_managed: bool,
    pub attachment: Option<EniAttachment>,
    pub association: Option<EniAssociation>,
}

impl NetworkInterface {
    /// The primary private IPv4 address; `None` in an IPv6-only subnet.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        (self.private_ip != NO_PRIVATE_IPV4).then_some(self.private_ip)
    }

    /// The private DNS name: the IPv4-based one, or for an interface without IPv4 the
    /// resource-based name of the instance it is attached to (`None` when detached:
    /// AWS shows no name for an unattached IPv6-only interface).
    pub fn private_dns_name(&self) -> Option<String> {
        match self.ipv4() {
            Some(ip) => Some(private_dns_name(&self.region, ip)),
            None => self
                .attachment
                .as_ref()
                .map(|a| resource_dns_name(&self.region, &a.instance_id)),
        }
    }
}

impl Resource for NetworkInterface {
    const KIND: &'static str = "network_interface";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// The private DNS name AWS gives an address: `ip-10-0-1-5.ec2.internal` in us-east-1,
/// `ip-10-0-1-5.<region>.compute.internal` elsewhere.
pub fn private_dns_name(region: &str, ip: Ipv4Addr) -> String {
    let dashed = ip.to_string().replace('.', "-");
    if region == "us-east-1" {
        format!("ip-{dashed}.ec2.internal")
    } else {
        format!("ip-{dashed}.{region}.compute.internal")
    }
}

/// The resource-based private DNS name AWS gives an instance (hostname type
/// `resource-name`, the only one in an IPv6-only subnet): `i-0abc….ec2.internal` in
/// us-east-1, `i-0abc….<region>.compute.internal` elsewhere.
pub fn resource_dns_name(region: &str, instance_id: &str) -> String {
    if region == "us-east-1" {
        format!("{instance_id}.ec2.internal")
    } else {
        format!("{instance_id}.{region}.compute.internal")
    }
}

/// The public DNS name: `ec2-198-18-0-7.compute-1.amazonaws.com` in us-east-1,
/// `ec2-….<region>.compute.amazonaws.com` elsewhere.
pub fn public_dns_name(region: &str, ip: Ipv4Addr) -> String {
    let dashed = ip.to_string().replace('.', "-");
    if region == "us-east-1" {
        format!("ec2-{dashed}.compute-1.amazonaws.com")
    } else {
        format!("ec2-{dashed}.{region}.compute.amazonaws.com")
    }
}

impl Filterable for NetworkInterface {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        let att = self.attachment.as_ref();
        let asn = self.association.as_ref();
        Some(match name {
            "network-interface-id" => vec![self.id.clone()],
            "subnet-id" => vec![self.subnet_id.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "availability-zone" => vec![self.availability_zone.clone()],
            "description" => vec![self.description.clone()],
            "status" => vec![self.status.clone()],
            "interface-type" => vec![self.interface_type.clone()],
            "mac-address" => vec![self.mac.clone()],
            "owner-id" => vec![world.account.clone()],
            "requester-managed" => vec![b(self.requester_managed)],
            "source-dest-check" => vec![b(self.source_dest_check)],
            "private-ip-address" | "addresses.private-ip-address" => self
                .ipv4()
                .into_iter()
                .chain(self.secondary_ips.iter().copied())
                .map(|i| i.to_string())
                .collect(),
            "private-dns-name" => self.private_dns_name().into_iter().collect(),
            "group-id" => self.groups.clone(),
            "group-name" => self
                .groups
                .iter()
                .filter_map(|g| world.security_groups.get(g))
                .map(|g| g.group_name.clone())
                .collect(),
            "attachment.instance-id" => att.map(|a| a.instance_id.clone()).into_iter().collect(),
            "attachment.attachment-id" => att.map(|a| a.id.clone()).into_iter().collect(),
            "attachment.device-index" => att
                .map(|a| a.device_index.to_string())
                .into_iter()
                .collect(),
            "attachment.status" => att.map(|a| a.status.clone()).into_iter().collect(),
            "attachment.delete-on-termination" => att
                .map(|a| b(a.delete_on_termination))
                .into_iter()
                .collect(),
            "association.public-ip" => asn.map(|a| a.public_ip.to_string()).into_iter().collect(),
            "association.allocation-id" => asn
                .and_then(|a| a.allocation_id.clone())
                .into_iter()
                .collect(),
            "association.association-id" => asn
                .and_then(|a| a.association_id.clone())
                .into_iter()
                .collect(),
            _ => return None,
        })
    }
}

pub fn eni_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidNetworkInterfaceID.NotFound",
        "networkInterface ID",
        id,
    )
}

/// What a new interface needs (the API's CreateNetworkInterface, or RunInstances).
#[derive(Clone, Debug, Default)]
pub struct EniSpec {
    pub subnet_id: String,
    pub private_ip: Option<Ipv4Addr>,
    /// Empty means the VPC's default group.
    pub groups: Vec<String>,
    pub description: String,
    pub interface_type: String,
    pub requester_managed: bool,
}

impl World {
    pub fn network_interface(&self, region: &str, id: &str) -> ApiResult<&NetworkInterface> {
        match self.network_interfaces.get(id) {
            Some(e) if e.region == region => Ok(e),
            _ => Err(eni_not_found(id)),
        }
    }

    /// The primary interface (device index 0) of an instance.
    pub fn primary_eni_of_instance(&self, instance_id: &str) -> Option<&NetworkInterface> {
        self.network_interfaces.iter().find(|e| {
            e.attachment
                .as_ref()
                .is_some_and(|a| a.instance_id == instance_id && a.device_index == 0)
        })
    }

    /// A deterministic, locally administered unicast MAC (02:…), as AWS's look.
    pub fn alloc_mac(&mut self) -> String {
        let bits = self.alloc_bits();
        let b = bits.to_be_bytes();
        format!(
            "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4]
        )
    }

    /// Checks a list of security groups for an interface in `vpc_id` (1–5, same VPC).
    pub fn check_groups(&self, env: &Env, vpc_id: &str, groups: &[String]) -> ApiResult<()> {
        if groups.len() > 5 {
            return Err(ApiError::new(
                "SecurityGroupsPerInterfaceLimitExceeded",
                "You have exceeded the maximum number of security groups per interface (5).",
            ));
        }
        for g in groups {
            let sg = self.security_group(&env.region, g)?;
            if sg.vpc_id != vpc_id {
                return Err(ApiError::invalid_value(format!(
                    "The security group '{g}' does not belong to the VPC '{vpc_id}'"
                )));
            }
        }
        Ok(())
    }

    /// Creates an interface (validated). Used by CreateNetworkInterface, NAT gateways and
    /// RunInstances.
    pub fn create_interface(&mut self, env: &Env, spec: EniSpec) -> ApiResult<String> {
        let subnet = self.subnet(&env.region, &spec.subnet_id)?.clone();
        let mut groups = spec.groups.clone();
        if groups.is_empty()
            && spec.interface_type == "interface"
            && let Some(g) = self.default_sg(&subnet.vpc_id)
        {
            groups.push(g.id.clone());
        }
        self.check_groups(env, &subnet.vpc_id, &groups)?;
        let ip = match spec.private_ip {
            Some(ip) => {
                self.check_private_ip(&subnet.id, ip)?;
                ip
            }
            // An IPv6-only subnet has no IPv4 to give; an instance's (or a learner's)
            // interface gets an IPv6 address below instead. The AWS-managed interfaces
            // vpclab creates (NAT gateways, interface endpoints, load balancer nodes,
            // task and transit gateway attachments) all need an IPv4 address here:
            // AWS requires an IPv4 (or dual-stack) subnet for a NAT gateway, and
            // vpclab keeps the others to IPv4 subnets too (docs/fidelity.md).
            None if subnet.ipv6_native
                && spec.interface_type == "interface"
                && !spec.requester_managed =>
            {
                NO_PRIVATE_IPV4
            }
            None if subnet.ipv6_native => {
                return Err(super::subnet::ipv6_native_no_ipv4(&subnet.id));
            }
            None => self.next_private_ip(&subnet.id)?,
        };
        // AWS: an interface in an IPv6-only subnet always has an IPv6 address (it is the
        // only address it can have), whatever the subnet's AssignIpv6AddressOnCreation.
        let ipv6_addresses = if subnet.ipv6_native {
            self.next_ipv6_addresses(&subnet.id, 1)?
        } else {
            Vec::new()
        };
        let id = self.alloc_id("eni");
        let mac = self.alloc_mac();
        self.network_interfaces.insert(NetworkInterface {
            id: id.clone(),
            region: env.region.clone(),
            vpc_id: subnet.vpc_id.clone(),
            subnet_id: subnet.id.clone(),
            availability_zone: subnet.availability_zone.clone(),
            description: spec.description,
            private_ip: ip,
            secondary_ips: Vec::new(),
            ipv6_addresses,
            mac,
            groups,
            source_dest_check: true,
            status: "available".into(),
            interface_type: spec.interface_type,
            requester_managed: spec.requester_managed,
            attachment: None,
            association: None,
        });
        Ok(id)
    }

    /// CreateNetworkInterface.
    pub fn create_network_interface(
        &mut self,
        env: &Env,
        mut spec: EniSpec,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["network-interface"])?;
        spec.interface_type = "interface".into();
        let id = self.create_interface(env, spec)?;
        self.apply_tag_specs(env, &id, "network-interface", specs)?;
        Ok(id)
    }

    /// DeleteNetworkInterface.
    pub fn delete_network_interface(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let eni = self.network_interface(&env.region, id)?;
        if eni.attachment.is_some() || eni.requester_managed {
            return Err(ApiError::new(
                "InvalidNetworkInterface.InUse",
                format!("The network interface '{id}' is currently in use."),
            ));
        }
        if let Some(a) = eni
            .association
            .as_ref()
            .and_then(|a| a.allocation_id.clone())
            && let Some(addr) = self.addresses.get_mut(&a)
        {
            addr.association = None;
        }
        self.network_interfaces.remove(id);
        self.drop_tags(id);
        Ok(())
    }

    /// Attaches an interface to an instance (no instance check here: AttachNetworkInterface
    /// validates the instance first; RunInstances attaches its own). Returns the
    /// attachment id.
    pub fn attach_interface(
        &mut self,
        env: &Env,
        id: &str,
        instance_id: &str,
        device_index: u32,
        delete_on_termination: bool,
    ) -> ApiResult<String> {
        let eni = self.network_interface(&env.region, id)?;
        if eni.attachment.is_some() {
            return Err(ApiError::new(
                "InvalidNetworkInterface.InUse",
                format!("Interface: [{id}] in use."),
            ));
        }
        if self.network_interfaces.iter().any(|e| {
            e.attachment
                .as_ref()
                .is_some_and(|a| a.instance_id == instance_id && a.device_index == device_index)
        }) {
            return Err(ApiError::invalid_value(format!(
                "Instance '{instance_id}' already has an interface attached at device index '{device_index}'."
            )));
        }
        let att = self.alloc_id("eni-attach");
        if let Some(e) = self.network_interfaces.get_mut(id) {
            e.status = "in-use".into();
            e.attachment = Some(EniAttachment {
                id: att.clone(),
                instance_id: instance_id.to_string(),
                device_index,
                status: "attached".into(),
                delete_on_termination,
                attach_time: env.now,
            });
        }
        Ok(att)
    }

    /// DetachNetworkInterface.
    pub fn detach_network_interface(&mut self, env: &Env, attachment_id: &str) -> ApiResult<()> {
        let Some(eni) = self
            .network_interfaces
            .in_region(&env.region)
            .find(|e| e.attachment.as_ref().is_some_and(|a| a.id == attachment_id))
        else {
            return Err(ApiError::new(
                "InvalidAttachmentID.NotFound",
                format!("The attachment ID '{attachment_id}' does not exist"),
            ));
        };
        if eni.attachment.as_ref().is_some_and(|a| a.device_index == 0) {
            return Err(ApiError::new(
                "OperationNotPermitted",
                "The network interface at device index 0 cannot be detached.",
            ));
        }
        let id = eni.id.clone();
        if let Some(e) = self.network_interfaces.get_mut(&id) {
            e.attachment = None;
            e.status = "available".into();
        }
        Ok(())
    }

    /// ModifyNetworkInterfaceAttribute: one of source/dest check, groups, description.
    pub fn modify_network_interface_attribute(
        &mut self,
        env: &Env,
        id: &str,
        source_dest_check: Option<bool>,
        groups: Option<Vec<String>>,
        description: Option<String>,
    ) -> ApiResult<()> {
        let eni = self.network_interface(&env.region, id)?.clone();
        if let Some(g) = &groups {
            if g.is_empty() {
                return Err(ApiError::missing("SecurityGroupId"));
            }
            self.check_groups(env, &eni.vpc_id, g)?;
        }
        let e = self
            .network_interfaces
            .get_mut(id)
            .ok_or_else(|| eni_not_found(id))?;
        if let Some(v) = source_dest_check {
            e.source_dest_check = v;
        }
        if let Some(g) = groups {
            e.groups = g;
        }
        if let Some(d) = description {
            e.description = d;
        }
        Ok(())
    }
}

/// Secondary private IPv4 addresses (AssignPrivateIpAddresses,
/// UnassignPrivateIpAddresses, RunInstances' `SecondaryPrivateIpAddressCount`). AWS
/// rules (EC2 User Guide, "Multiple IP addresses"): secondary addresses come from the
/// interface's subnet; an instance type caps the IPv4 addresses per interface
/// (`Ipv4AddressesPerInterface`, the primary included); an address in use elsewhere
/// moves only with `AllowReassignment`; the primary address cannot be unassigned.
impl World {
    /// The most IPv4 addresses the interface may hold: its instance type's limit when
    /// attached, else the largest limit of the catalog.
    fn ipv4_limit(&self, eni: &NetworkInterface) -> usize {
        let typed = eni
            .attachment
            .as_ref()
            .and_then(|a| self.instances.get(&a.instance_id))
            .and_then(|i| crate::catalog::instance_type(&i.instance_type))
            .map(|t| t.ipv4_per_interface as usize);
        typed.unwrap_or(50)
    }

    /// AssignPrivateIpAddresses: `count` new addresses (the subnet's next free ones) or
    /// the explicit `ips`. Returns the addresses assigned.
    pub fn assign_private_ip_addresses(
        &mut self,
        env: &Env,
        eni_id: &str,
        count: Option<i64>,
        ips: &[Ipv4Addr],
        allow_reassignment: bool,
    ) -> ApiResult<Vec<Ipv4Addr>> {
        let eni = self.network_interface(&env.region, eni_id)?.clone();
        let want = match (count, ips.is_empty()) {
            (Some(_), false) => {
                return Err(ApiError::combination(
                    "Specify either SecondaryPrivateIpAddressCount or PrivateIpAddresses, not both.",
                ));
            }
            (None, true) => {
                return Err(ApiError::missing(
                    "SecondaryPrivateIpAddressCount or PrivateIpAddress",
                ));
            }
            (Some(n), true) if n < 1 => {
                return Err(ApiError::bad_param(
                    "SecondaryPrivateIpAddressCount",
                    &n.to_string(),
                ));
            }
            (Some(n), true) => n as usize,
            (None, false) => ips.len(),
        };
        let limit = self.ipv4_limit(&eni);
        if 1 + eni.secondary_ips.len() + want > limit {
            return Err(ApiError::new(
                "PrivateIpAddressLimitExceeded",
                format!(
                    "Number of private addresses will exceed limit: an interface of this instance type holds at most {limit} IPv4 addresses."
                ),
            ));
        }
        let mut assigned = Vec::new();
        if ips.is_empty() {
            for _ in 0..want {
                let ip = self.next_private_ip(&eni.subnet_id)?;
                self.add_secondary(eni_id, ip);
                assigned.push(ip);
            }
            return Ok(assigned);
        }
        for &ip in ips {
            let holder = self
                .network_interfaces
                .iter()
                .find(|e| {
                    e.subnet_id == eni.subnet_id
                        && (e.private_ip == ip || e.secondary_ips.contains(&ip))
                })
                .map(|e| (e.id.clone(), e.private_ip == ip));
            match holder {
                Some((h, _)) if h == eni_id => {
                    return Err(ApiError::new(
                        "InvalidParameterValue",
                        format!("Address {ip} is already assigned to {eni_id}."),
                    ));
                }
                // A primary address never moves; a secondary one only when allowed.
                Some((h, primary)) if primary || !allow_reassignment => {
                    return Err(ApiError::new(
                        "InvalidIPAddress.InUse",
                        format!("Address {ip} is in use by {h}."),
                    ));
                }
                Some((h, _)) => {
                    if let Some(other) = self.network_interfaces.get_mut(&h) {
                        other.secondary_ips.retain(|x| *x != ip);
                    }
                }
                None => self.check_private_ip(&eni.subnet_id, ip)?,
            }
            self.add_secondary(eni_id, ip);
            assigned.push(ip);
        }
        Ok(assigned)
    }

    fn add_secondary(&mut self, eni_id: &str, ip: Ipv4Addr) {
        if let Some(e) = self.network_interfaces.get_mut(eni_id) {
            e.secondary_ips.push(ip);
        }
    }

    /// UnassignPrivateIpAddresses: only secondary addresses of this interface.
    pub fn unassign_private_ip_addresses(
        &mut self,
        env: &Env,
        eni_id: &str,
        ips: &[Ipv4Addr],
    ) -> ApiResult<()> {
        let eni = self.network_interface(&env.region, eni_id)?.clone();
        if ips.is_empty() {
            return Err(ApiError::missing("PrivateIpAddress"));
        }
        for ip in ips {
            if *ip == eni.private_ip {
                return Err(ApiError::invalid_value(format!(
                    "Address {ip} is the primary private address of {eni_id} and cannot be unassigned."
                )));
            }
            if !eni.secondary_ips.contains(ip) {
                return Err(ApiError::invalid_value(format!(
                    "Some of the specified addresses are not assigned to interface {eni_id}"
                )));
            }
        }
        if let Some(e) = self.network_interfaces.get_mut(eni_id) {
            e.secondary_ips.retain(|x| !ips.contains(x));
        }
        Ok(())
    }
}
