//! Subnet actions: CreateSubnet, DeleteSubnet, DescribeSubnets, ModifySubnetAttribute.

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
];

pub fn render_subnet(x: &mut Xml, w: &World, s: &Subnet, state: &str) {
    x.leaf("subnetId", &s.id)
        .leaf("subnetArn", s.arn(&w.account))
        .leaf("state", state)
        .leaf("vpcId", &s.vpc_id)
        .leaf("cidrBlock", s.cidr)
        .leaf("availableIpAddressCount", w.available_ip_count(s))
        .leaf("availabilityZone", &s.availability_zone)
        .leaf("availabilityZoneId", &s.availability_zone_id)
        .leaf("defaultForAz", tf(s.default_for_az))
        .leaf("mapPublicIpOnLaunch", tf(s.map_public_ip_on_launch))
        .leaf("mapCustomerOwnedIpOnLaunch", "false")
        .leaf("assignIpv6AddressOnCreation", "false")
        .set(
            "ipv6CidrBlockAssociationSet",
            std::iter::empty::<()>(),
            |_, _| {},
        )
        .leaf("ownerId", &w.account)
        .leaf("enableDns64", "false")
        .leaf("ipv6Native", "false")
        .node("privateDnsNameOptionsOnLaunch", |x| {
            x.leaf("hostnameType", "ip-name")
                .leaf("enableResourceNameDnsARecord", "false")
                .leaf("enableResourceNameDnsAAAARecord", "false");
        })
        .node("blockPublicAccessStates", |x| {
            x.leaf("internetGatewayBlockMode", "off");
        });
    tag_set(x, w, &s.id);
}

fn create_subnet(c: &mut Call) -> ApiResult<Xml> {
    let vpc = c.params.required("VpcId")?.to_string();
    if c.params.get("Ipv6CidrBlock").is_some() || c.params.get("Ipv4IpamPoolId").is_some() {
        return Err(ApiError::new(
            "Unsupported",
            "IPv6 and IPAM subnets are not supported by vpclab.",
        ));
    }
    let cidr = c.params.required("CidrBlock")?.to_string();
    let az = c.params.get("AvailabilityZone").map(str::to_string);
    let az_id = c.params.get("AvailabilityZoneId").map(str::to_string);
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| {
        w.create_subnet(env, &vpc, &cidr, az.as_deref(), az_id.as_deref(), &specs)
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
    let Some(v) = c.params.bool_value("MapPublicIpOnLaunch")? else {
        for other in [
            "AssignIpv6AddressOnCreation",
            "EnableDns64",
            "EnableResourceNameDnsARecordOnLaunch",
            "EnableResourceNameDnsAAAARecordOnLaunch",
            "MapCustomerOwnedIpOnLaunch",
            "PrivateDnsHostnameTypeOnLaunch",
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
        return Err(ApiError::missing("MapPublicIpOnLaunch"));
    };
    c.mutate(|w, env| w.set_map_public_ip_on_launch(env, &id, v))?;
    Ok(return_true())
}
