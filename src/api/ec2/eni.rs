//! Network interface actions: Create/Delete/DescribeNetworkInterfaces,
//! Attach/DetachNetworkInterface, ModifyNetworkInterfaceAttribute, Assign/
//! UnassignPrivateIpAddresses.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::eni::{
    EniSpec, NetworkInterface, eni_not_found, private_dns_name, public_dns_name,
};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateNetworkInterface", create_network_interface),
    ("DeleteNetworkInterface", delete_network_interface),
    ("DescribeNetworkInterfaces", describe_network_interfaces),
    ("AttachNetworkInterface", attach_network_interface),
    ("DetachNetworkInterface", detach_network_interface),
    (
        "ModifyNetworkInterfaceAttribute",
        modify_network_interface_attribute,
    ),
    ("AssignPrivateIpAddresses", assign_private_ip_addresses),
    ("UnassignPrivateIpAddresses", unassign_private_ip_addresses),
];

/// `PrivateIpAddress.N` as addresses.
fn ip_list(c: &Call, key: &str) -> ApiResult<Vec<std::net::Ipv4Addr>> {
    c.params
        .list(key)
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|_| ApiError::bad_param("privateIpAddress", s))
        })
        .collect()
}

fn assign_private_ip_addresses(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkInterfaceId")?.to_string();
    if c.params.get("Ipv4PrefixCount").is_some() || c.params.get("Ipv4Prefix.1").is_some() {
        return Err(ApiError::new(
            "Unsupported",
            "IPv4 prefix delegation is not emulated (docs/fidelity.md).",
        ));
    }
    let count = c.params.int("SecondaryPrivateIpAddressCount")?;
    let ips = ip_list(c, "PrivateIpAddress")?;
    let allow = c.params.bool("AllowReassignment")?.unwrap_or(false);
    let assigned =
        c.mutate(|w, env| w.assign_private_ip_addresses(env, &id, count, &ips, allow))?;
    let mut x = Xml::new();
    x.leaf("networkInterfaceId", &id)
        .set("assignedPrivateIpAddressesSet", &assigned, |x, ip| {
            x.leaf("privateIpAddress", ip);
        });
    Ok(x)
}

fn unassign_private_ip_addresses(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkInterfaceId")?.to_string();
    let ips = ip_list(c, "PrivateIpAddress")?;
    c.mutate(|w, env| w.unassign_private_ip_addresses(env, &id, &ips))?;
    Ok(return_true())
}

/// The `association` element of an interface (public address), if any.
pub fn render_eni_association(x: &mut Xml, w: &World, e: &NetworkInterface) {
    if let Some(a) = &e.association {
        x.node("association", |x| {
            x.leaf("publicIp", a.public_ip)
                .leaf("publicDnsName", public_dns_name(&e.region, a.public_ip))
                .leaf(
                    "ipOwnerId",
                    if a.allocation_id.is_some() {
                        w.account.as_str()
                    } else {
                        "amazon"
                    },
                )
                .opt("allocationId", a.allocation_id.as_deref())
                .opt("associationId", a.association_id.as_deref());
        });
    }
}

/// The children of a DescribeNetworkInterfaces `<item>`.
pub fn render_eni(x: &mut Xml, w: &World, e: &NetworkInterface) {
    x.leaf("networkInterfaceId", &e.id)
        .leaf("subnetId", &e.subnet_id)
        .leaf("vpcId", &e.vpc_id)
        .leaf("availabilityZone", &e.availability_zone)
        .leaf("description", &e.description)
        .leaf("ownerId", &w.account)
        .leaf("requesterManaged", tf(e.requester_managed))
        .leaf("status", &e.status)
        .leaf("macAddress", &e.mac)
        // An interface in an IPv6-only subnet has no private IPv4 address, and its DNS
        // name is the resource-based name of its instance (none while detached).
        .opt("privateIpAddress", e.ipv4())
        .opt("privateDnsName", e.private_dns_name())
        .leaf("sourceDestCheck", tf(e.source_dest_check))
        .set("groupSet", &e.groups, |x, g| {
            x.leaf("groupId", g).opt(
                "groupName",
                w.security_groups.get(g).map(|s| s.group_name.as_str()),
            );
        });
    if let Some(a) = &e.attachment {
        x.node("attachment", |x| {
            x.leaf("attachmentId", &a.id)
                .leaf("instanceId", &a.instance_id)
                .leaf("instanceOwnerId", &w.account)
                .leaf("deviceIndex", a.device_index)
                .leaf("networkCardIndex", 0)
                .leaf("status", &a.status)
                .leaf("attachTime", a.attach_time.iso())
                .leaf("deleteOnTermination", tf(a.delete_on_termination));
        });
    }
    render_eni_association(x, w, e);
    x.set(
        "privateIpAddressesSet",
        e.ipv4()
            .into_iter()
            .chain(e.secondary_ips.iter().copied())
            .enumerate(),
        |x, (i, ip)| {
            x.leaf("privateIpAddress", ip)
                .leaf("privateDnsName", private_dns_name(&e.region, ip))
                .leaf("primary", tf(i == 0));
            if i == 0 {
                render_eni_association(x, w, e);
            }
        },
    )
    .set(
        "ipv6AddressesSet",
        e.ipv6_addresses.iter().enumerate(),
        |x, (i, a)| {
            x.leaf("ipv6Address", a).leaf("isPrimaryIpv6", tf(i == 0));
        },
    )
    .leaf("interfaceType", &e.interface_type);
    tag_set(x, w, &e.id);
}

fn create_network_interface(c: &mut Call) -> ApiResult<Xml> {
    let subnet = c.params.required("SubnetId")?.to_string();
    let ip = match c.params.get("PrivateIpAddress") {
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::bad_param("privateIpAddress", s))?,
        ),
        None => None,
    };
    if c.params.get("Ipv6AddressCount").is_some() {
        return Err(ApiError::new(
            "Unsupported",
            "IPv6 addresses on CreateNetworkInterface are not supported by vpclab.",
        ));
    }
    let secondary_count = c.params.int("SecondaryPrivateIpAddressCount")?;
    // `PrivateIpAddresses.N`: the one marked primary (else the first) is the primary
    // address, the others are secondary addresses.
    let mut listed: Vec<(std::net::Ipv4Addr, bool)> = Vec::new();
    for p in c.params.structs("PrivateIpAddresses") {
        let Some(v) = p.get("PrivateIpAddress") else {
            continue;
        };
        let a = v
            .parse()
            .map_err(|_| ApiError::bad_param("privateIpAddress", v))?;
        listed.push((a, p.bool("Primary")?.unwrap_or(false)));
    }
    let primary_pos = listed.iter().position(|(_, p)| *p);
    let ip = match (ip, primary_pos) {
        (Some(_), Some(_)) => {
            return Err(ApiError::combination(
                "Specify the primary address once: PrivateIpAddress or a primary PrivateIpAddresses entry.",
            ));
        }
        (Some(a), None) => Some(a),
        (None, Some(i)) => Some(listed.remove(i).0),
        (None, None) if !listed.is_empty() => Some(listed.remove(0).0),
        (None, None) => None,
    };
    let secondaries: Vec<std::net::Ipv4Addr> = listed.into_iter().map(|(a, _)| a).collect();
    let spec = EniSpec {
        subnet_id: subnet,
        private_ip: ip,
        groups: c.params.list("SecurityGroupId"),
        description: c.params.get("Description").unwrap_or("").to_string(),
        interface_type: "interface".into(),
        requester_managed: false,
    };
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| {
        let id = w.create_network_interface(env, spec, &specs)?;
        if secondary_count.is_some() || !secondaries.is_empty() {
            w.assign_private_ip_addresses(env, &id, secondary_count, &secondaries, false)?;
        }
        Ok(id)
    })?;
    let w = c.read()?;
    let e = w
        .network_interfaces
        .get(&id)
        .ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("networkInterface", |x| render_eni(x, &w, e));
    Ok(x)
}

fn delete_network_interface(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkInterfaceId")?.to_string();
    c.mutate(|w, env| w.delete_network_interface(env, &id))?;
    Ok(return_true())
}

fn describe_network_interfaces(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("NetworkInterfaceId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.network_interfaces,
        &c.env.region,
        &ids,
        &filters,
        eni_not_found,
    )?;
    let (page, next) = paginate(c, rows, |e| &e.id)?;
    let mut x = Xml::new();
    x.set("networkInterfaceSet", page, |x, e| render_eni(x, &w, e));
    x.opt("nextToken", next);
    Ok(x)
}

fn attach_network_interface(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkInterfaceId")?.to_string();
    let instance = c.params.required("InstanceId")?.to_string();
    let index = c
        .params
        .int("DeviceIndex")?
        .ok_or_else(|| ApiError::missing("DeviceIndex"))?;
    if !(1..=31).contains(&index) {
        return Err(ApiError::bad_param("deviceIndex", &index.to_string()));
    }
    let att = c.mutate(|w, env| {
        // The instance must exist: it has a primary interface (device index 0), and the
        // new interface must be in the same availability zone.
        let primary = w
            .primary_eni_of_instance(&instance)
            .ok_or_else(|| {
                ApiError::not_found("InvalidInstanceID.NotFound", "instance ID", &instance)
            })?
            .clone();
        let eni = w.network_interface(&env.region, &id)?;
        if eni.availability_zone != primary.availability_zone {
            return Err(ApiError::invalid_value(format!(
                "The network interface {id} and instance {instance} are in different availability zones"
            )));
        }
        w.attach_interface(env, &id, &instance, index as u32, false)
    })?;
    let mut x = Xml::new();
    x.leaf("attachmentId", att).leaf("networkCardIndex", 0);
    Ok(x)
}

fn detach_network_interface(c: &mut Call) -> ApiResult<Xml> {
    let att = c.params.required("AttachmentId")?.to_string();
    c.mutate(|w, env| w.detach_network_interface(env, &att))?;
    Ok(return_true())
}

fn modify_network_interface_attribute(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkInterfaceId")?.to_string();
    let sdc = c.params.bool_value("SourceDestCheck")?;
    let groups = c.params.list("SecurityGroupId");
    let groups = if groups.is_empty() {
        None
    } else {
        Some(groups)
    };
    let desc = c.params.get("Description.Value").map(str::to_string);
    let count =
        usize::from(sdc.is_some()) + usize::from(groups.is_some()) + usize::from(desc.is_some());
    if count == 0 {
        return Err(ApiError::missing(
            "SourceDestCheck, SecurityGroupId or Description",
        ));
    }
    if count > 1 {
        return Err(ApiError::combination(
            "Fields for multiple attribute types specified: modify one attribute per call",
        ));
    }
    c.mutate(|w, env| w.modify_network_interface_attribute(env, &id, sdc, groups, desc))?;
    Ok(return_true())
}
