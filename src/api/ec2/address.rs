//! Elastic IP and NAT gateway actions: Allocate/Release/Associate/DisassociateAddress,
//! DescribeAddresses, Create/Delete/DescribeNatGateways.

use std::net::Ipv4Addr;

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::address::{Address, AssociateAddressInput, allocation_not_found};
use crate::model::ec2::nat::NatGateway;
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("AllocateAddress", allocate_address),
    ("ReleaseAddress", release_address),
    ("AssociateAddress", associate_address),
    ("DisassociateAddress", disassociate_address),
    ("DescribeAddresses", describe_addresses),
    ("CreateNatGateway", create_nat_gateway),
    ("DeleteNatGateway", delete_nat_gateway),
    ("DescribeNatGateways", describe_nat_gateways),
];

fn parse_ip(name: &str, v: Option<&str>) -> ApiResult<Option<Ipv4Addr>> {
    v.map(|s| s.parse().map_err(|_| ApiError::bad_param(name, s)))
        .transpose()
}

fn allocate_address(c: &mut Call) -> ApiResult<Xml> {
    if let Some(d) = c.params.get("Domain")
        && d != "vpc"
    {
        return Err(ApiError::bad_param("domain", d));
    }
    if c.params.get("Address").is_some() || c.params.get("PublicIpv4Pool").is_some() {
        return Err(ApiError::new(
            "Unsupported",
            "BYOIP addresses and pools are not supported by vpclab.",
        ));
    }
    let specs = c.params.tag_specs()?;
    let (id, ip) = c.mutate(|w, env| w.allocate_address(env, &specs))?;
    let mut x = Xml::new();
    x.leaf("publicIp", ip)
        .leaf("domain", "vpc")
        .leaf("allocationId", id)
        .leaf("publicIpv4Pool", "amazon")
        .leaf("networkBorderGroup", &c.env.region);
    Ok(x)
}

fn release_address(c: &mut Call) -> ApiResult<Xml> {
    let alloc = c.params.get("AllocationId").map(str::to_string);
    let ip = c.params.get("PublicIp").map(str::to_string);
    if alloc.is_none() && ip.is_none() {
        return Err(ApiError::missing("AllocationId"));
    }
    c.mutate(|w, env| w.release_address(env, alloc.as_deref(), ip.as_deref()))?;
    Ok(return_true())
}

fn associate_address(c: &mut Call) -> ApiResult<Xml> {
    let input = AssociateAddressInput {
        allocation_id: c.params.get("AllocationId").map(str::to_string),
        public_ip: c.params.get("PublicIp").map(str::to_string),
        instance_id: c.params.get("InstanceId").map(str::to_string),
        network_interface_id: c.params.get("NetworkInterfaceId").map(str::to_string),
        private_ip: parse_ip("privateIpAddress", c.params.get("PrivateIpAddress"))?,
        allow_reassociation: c.params.bool("AllowReassociation")?.unwrap_or(false),
    };
    if input.allocation_id.is_none() && input.public_ip.is_none() {
        return Err(ApiError::missing("AllocationId"));
    }
    let assoc = c.mutate(|w, env| w.associate_address(env, &input))?;
    let mut x = Xml::new();
    x.leaf("return", "true").leaf("associationId", assoc);
    Ok(x)
}

fn disassociate_address(c: &mut Call) -> ApiResult<Xml> {
    let assoc = c.params.get("AssociationId").map(str::to_string);
    let ip = c.params.get("PublicIp").map(str::to_string);
    if assoc.is_none() && ip.is_none() {
        return Err(ApiError::missing("AssociationId"));
    }
    c.mutate(|w, env| w.disassociate_address(env, assoc.as_deref(), ip.as_deref()))?;
    Ok(return_true())
}

fn render_address(x: &mut Xml, w: &World, a: &Address) {
    x.leaf("publicIp", a.public_ip)
        .leaf("allocationId", &a.id)
        .leaf("domain", "vpc");
    if let Some(s) = &a.association {
        x.leaf("associationId", &s.association_id)
            .leaf("networkInterfaceId", &s.network_interface_id)
            .leaf("networkInterfaceOwnerId", &w.account)
            .leaf("privateIpAddress", s.private_ip)
            .opt("instanceId", w.instance_of_eni(&s.network_interface_id));
    }
    x.leaf("publicIpv4Pool", "amazon")
        .leaf("networkBorderGroup", &a.region);
    tag_set(x, w, &a.id);
}

fn describe_addresses(c: &mut Call) -> ApiResult<Xml> {
    let mut ids = c.params.list("AllocationId");
    let ips = c.params.list("PublicIp");
    let filters = c.params.filters()?;
    let w = c.read()?;
    for ip in &ips {
        let a = w
            .addresses
            .in_region(&c.env.region)
            .find(|a| a.public_ip.to_string() == *ip)
            .ok_or_else(|| {
                ApiError::new(
                    "InvalidAddress.NotFound",
                    format!("Address '{ip}' not found."),
                )
            })?;
        ids.push(a.id.clone());
    }
    let rows = w.select(
        &w.addresses,
        &c.env.region,
        &ids,
        &filters,
        allocation_not_found,
    )?;
    let mut x = Xml::new();
    x.set("addressesSet", rows, |x, a| render_address(x, &w, a));
    Ok(x)
}

fn render_nat(x: &mut Xml, w: &World, n: &NatGateway) {
    x.leaf("createTime", n.create_time.iso())
        .opt("deleteTime", n.delete_time.map(|t| t.iso()))
        .set("natGatewayAddressSet", &n.addresses, |x, a| {
            x.opt("allocationId", a.allocation_id.as_deref())
                .leaf("networkInterfaceId", &a.network_interface_id)
                .leaf("privateIp", a.private_ip)
                .opt("publicIp", a.public_ip)
                .opt("associationId", a.association_id.as_deref())
                .leaf("isPrimary", "true")
                .leaf(
                    "status",
                    match n.state.as_str() {
                        "pending" => "associating",
                        "deleting" => "disassociating",
                        "deleted" => "succeeded",
                        _ => "succeeded",
                    },
                );
        })
        .leaf("natGatewayId", &n.id)
        .leaf("state", &n.state)
        .leaf("subnetId", &n.subnet_id)
        .leaf("vpcId", &n.vpc_id)
        .leaf("connectivityType", &n.connectivity_type)
        .leaf("availabilityMode", "zonal");
    tag_set(x, w, &n.id);
}

fn create_nat_gateway(c: &mut Call) -> ApiResult<Xml> {
    if c.params.get("VpcId").is_some() && c.params.get("SubnetId").is_none() {
        return Err(ApiError::new(
            "Unsupported",
            "Regional NAT gateways are not supported by vpclab; give SubnetId.",
        ));
    }
    let subnet = c.params.required("SubnetId")?.to_string();
    let alloc = c.params.get("AllocationId").map(str::to_string);
    let conn = c.params.get("ConnectivityType").map(str::to_string);
    let ip = parse_ip("privateIpAddress", c.params.get("PrivateIpAddress"))?;
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| {
        w.create_nat_gateway(env, &subnet, alloc.as_deref(), conn.as_deref(), ip, &specs)
    })?;
    let w = c.read()?;
    let n = w.nat_gateways.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    if let Some(t) = c.params.get("ClientToken") {
        x.leaf("clientToken", t);
    }
    x.node("natGateway", |x| render_nat(x, &w, n));
    Ok(x)
}

fn delete_nat_gateway(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NatGatewayId")?.to_string();
    c.mutate(|w, env| w.delete_nat_gateway(env, &id))?;
    let mut x = Xml::new();
    x.leaf("natGatewayId", id);
    Ok(x)
}

fn describe_nat_gateways(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("NatGatewayId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(&w.nat_gateways, &c.env.region, &ids, &filters, |id| {
        ApiError::new(
            "NatGatewayNotFound",
            format!("NAT gateway {id} was not found"),
        )
    })?;
    let (page, next) = paginate(c, rows, |n| &n.id)?;
    let mut x = Xml::new();
    x.set("natGatewaySet", page, |x, n| render_nat(x, &w, n));
    x.opt("nextToken", next);
    Ok(x)
}
