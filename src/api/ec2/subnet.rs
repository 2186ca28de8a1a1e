//! Subnet actions: CreateSubnet, DeleteSubnet, DescribeSubnets, ModifySubnetAttribute,
//! Associate/DisassociateSubnetCidrBlock (the subnet's IPv6 /64).

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::subnet::{Subnet, subnet_not_found};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateSubnet", create_subnet),
    ("DeleteSubnet", delete_subnet),
    ("DescribeSubnets", describe_subnets),
    ("ModifySubnetAttribute", modify_subnet_attribute),
    ("AssociateSubnetCidrBlock", associate_subnet_cidr_block),
    (
        "DisassociateSubnetCidrBlock",
        disassociate_subnet_cidr_block,
    ),
];

pub fn render_subnet(x: &mut Xml, w: &World, s: &Subnet, state: &str) {
    x.leaf("subnetId", &s.id)
        .leaf("subnetArn", s.arn(&w.account))
        .leaf("state", state)
        .leaf("vpcId", &s.vpc_id)
        .opt("cidrBlock", (!s.ipv6_native).then_some(s.cidr))
        .leaf("availableIpAddressCount", w.available_ip_count(s))
        .leaf("availabilityZone", &s.availability_zone)
        .leaf("availabilityZoneId", &s.availability_zone_id)
        .leaf("defaultForAz", tf(s.default_for_az))
        .leaf("mapPublicIpOnLaunch", tf(s.map_public_ip_on_launch))
        .leaf("mapCustomerOwnedIpOnLaunch", "false")
        .leaf(
            "assignIpv6AddressOnCreation",
            tf(s.assign_ipv6_address_on_creation),
        )
        .set("ipv6CidrBlockAssociationSet", &s.ipv6_cidrs, |x, c| {
            x.leaf("associationId", &c.association_id)
                .leaf("ipv6CidrBlock", c.cidr)
                .node("ipv6CidrBlockState", |x| {
                    x.leaf("state", &c.state);
                })
                .leaf("ipSource", "amazon")
                .leaf("ipv6AddressAttribute", "public");
        })
        .leaf("ownerId", &w.account)
        .leaf("enableDns64", "false")
        .leaf("ipv6Native", tf(s.ipv6_native))
        .node("privateDnsNameOptionsOnLaunch", |x| {
            let o = &s.dns_name_options;
            x.leaf("hostnameType", o.hostname_type())
                .leaf("enableResourceNameDnsARecord", tf(o.a_record))
                .leaf("enableResourceNameDnsAAAARecord", tf(o.aaaa_record));
        })
        .node("blockPublicAccessStates", |x| {
            x.leaf("internetGatewayBlockMode", "off");
        });
    tag_set(x, w, &s.id);
}

fn create_subnet(c: &mut Call) -> ApiResult<Xml> {
    let vpc = c.params.required("VpcId")?.to_string();
    if c.params.get("Ipv4IpamPoolId").is_some() || c.params.get("Ipv6IpamPoolId").is_some() {
        return Err(ApiError::new(
            "Unsupported",
            "IPAM subnets are not supported by vpclab.",
        ));
    }
    // IPv6-only subnets: a /64 and no IPv4 block; their instances and interfaces get
    // IPv6 addresses only (`model::ec2::eni::NO_PRIVATE_IPV4`).
    let native = c.params.bool("Ipv6Native")?.unwrap_or(false);
    let cidr = c.params.get("CidrBlock").map(str::to_string);
    if native && cidr.is_some() {
        return Err(ApiError::combination(
            "An IPv6-only subnet (Ipv6Native) has no IPv4 CIDR block: CidrBlock cannot be given with Ipv6Native.",
        ));
    }
    if native && c.params.get("Ipv6CidrBlock").is_none() {
        return Err(ApiError::missing("Ipv6CidrBlock"));
    }
    if !native && cidr.is_none() {
        return Err(ApiError::missing("CidrBlock"));
    }
    let ipv6 = c.params.get("Ipv6CidrBlock").map(str::to_string);
    let az = c.params.get("AvailabilityZone").map(str::to_string);
    let az_id = c.params.get("AvailabilityZoneId").map(str::to_string);
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| {
        let (az, az_id) = (az.as_deref(), az_id.as_deref());
        let Some(cidr) = &cidr else {
            let block = ipv6.as_deref().ok_or_else(ApiError::internal)?;
            return w.create_ipv6_native_subnet(env, &vpc, block, az, az_id, &specs);
        };
        let id = w.create_subnet(env, &vpc, cidr, az, az_id, &specs)?;
        if let Some(block) = &ipv6 {
            w.associate_subnet_ipv6_block(env, &id, block)?;
        }
        Ok(id)
    })?;
    let w = c.read()?;
    let s = w.subnets.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("subnet", |x| render_subnet(x, &w, s, "available"));
    Ok(x)
}

fn delete_subnet(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("SubnetId")?.to_string();
    c.mutate(|w, env| w.delete_subnet(env, &id))?;
    Ok(return_true())
}

fn describe_subnets(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("SubnetId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(&w.subnets, &c.env.region, &ids, &filters, subnet_not_found)?;
    let (page, next) = paginate(c, rows, |s| &s.id)?;
    let mut x = Xml::new();
    x.set("subnetSet", page, |x, s| render_subnet(x, &w, s, &s.state));
    x.opt("nextToken", next);
    Ok(x)
}

fn modify_subnet_attribute(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("SubnetId")?.to_string();
    if let Some(v) = c.params.bool_value("AssignIpv6AddressOnCreation")? {
        c.mutate(|w, env| w.set_assign_ipv6_on_creation(env, &id, v))?;
        return Ok(return_true());
    }
    if let Some(v) = c
        .params
        .bool_value("EnableResourceNameDnsARecordOnLaunch")?
    {
        c.mutate(|w, env| w.set_subnet_dns_name_options(env, &id, |o| o.a_record = v))?;
        return Ok(return_true());
    }
    if let Some(v) = c
        .params
        .bool_value("EnableResourceNameDnsAAAARecordOnLaunch")?
    {
        c.mutate(|w, env| w.set_subnet_dns_name_options(env, &id, |o| o.aaaa_record = v))?;
        return Ok(return_true());
    }
    if let Some(v) = c.params.get("PrivateDnsHostnameTypeOnLaunch") {
        let resource = match v {
            "resource-name" => true,
            "ip-name" => false,
            other => {
                return Err(ApiError::invalid_value(format!(
                    "Value ({other}) for parameter PrivateDnsHostnameTypeOnLaunch is invalid. Valid values: ip-name, resource-name"
                )));
            }
        };
        c.mutate(|w, env| {
            w.set_subnet_dns_name_options(env, &id, |o| o.resource_name_hostname = resource)
        })?;
        return Ok(return_true());
    }
    let Some(v) = c.params.bool_value("MapPublicIpOnLaunch")? else {
        for other in [
            "EnableDns64",
            "MapCustomerOwnedIpOnLaunch",
            "EnableLniAtDeviceIndex",
            "DisableLniAtDeviceIndex",
        ] {
            if c.params.get(other).is_some() || c.params.get(&format!("{other}.Value")).is_some() {
                return Err(ApiError::new(
                    "Unsupported",
                    format!("The subnet attribute {other} is not supported by vpclab."),
                ));
            }
        }
        return Err(ApiError::missing(
            "MapPublicIpOnLaunch or AssignIpv6AddressOnCreation",
        ));
    };
    c.mutate(|w, env| w.set_map_public_ip_on_launch(env, &id, v))?;
    Ok(return_true())
}

fn associate_subnet_cidr_block(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("SubnetId")?.to_string();
    if c.params.get("Ipv6IpamPoolId").is_some() {
        return Err(ApiError::new(
            "Unsupported",
            "IPAM pools are not supported by vpclab.",
        ));
    }
    let block = c.params.required("Ipv6CidrBlock")?.to_string();
    let assoc = c.mutate(|w, env| w.associate_subnet_ipv6_block(env, &id, &block))?;
    let w = c.read()?;
    let cidr = w
        .subnets
        .get(&id)
        .and_then(|s| s.ipv6_cidrs.iter().find(|b| b.association_id == assoc))
        .map(|b| b.cidr.to_string())
        .unwrap_or(block);
    let mut x = Xml::new();
    x.leaf("subnetId", &id)
        .node("ipv6CidrBlockAssociation", |x| {
            x.leaf("associationId", &assoc)
                .leaf("ipv6CidrBlock", &cidr)
                .node("ipv6CidrBlockState", |x| {
                    x.leaf("state", "associating");
                });
        });
    Ok(x)
}

fn disassociate_subnet_cidr_block(c: &mut Call) -> ApiResult<Xml> {
    let assoc = c.params.required("AssociationId")?.to_string();
    let (subnet, cidr) = c.mutate(|w, env| w.disassociate_subnet_ipv6_block(env, &assoc))?;
    let mut x = Xml::new();
    x.leaf("subnetId", subnet)
        .node("ipv6CidrBlockAssociation", |x| {
            x.leaf("associationId", &assoc)
                .leaf("ipv6CidrBlock", cidr)
                .node("ipv6CidrBlockState", |x| {
                    x.leaf("state", "disassociating");
                });
        });
    Ok(x)
}
