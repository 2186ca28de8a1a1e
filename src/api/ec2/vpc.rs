//! VPC actions: CreateVpc, DeleteVpc, DescribeVpcs, ModifyVpcAttribute,
//! DescribeVpcAttribute, AssociateVpcCidrBlock, DisassociateVpcCidrBlock,
//! CreateDefaultVpc.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::vpc::{Vpc, VpcAttribute, vpc_not_found};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateVpc", create_vpc),
    ("DeleteVpc", delete_vpc),
    ("DescribeVpcs", describe_vpcs),
    ("ModifyVpcAttribute", modify_vpc_attribute),
    ("DescribeVpcAttribute", describe_vpc_attribute),
    ("AssociateVpcCidrBlock", associate_vpc_cidr_block),
    ("DisassociateVpcCidrBlock", disassociate_vpc_cidr_block),
    ("CreateDefaultVpc", create_default_vpc),
];

/// The children of a `<vpc>`/`<item>` element.
pub fn render_vpc(x: &mut Xml, w: &World, v: &Vpc, state: &str) {
    x.leaf("vpcId", &v.id)
        .leaf("ownerId", &w.account)
        .leaf("state", state)
        .leaf("cidrBlock", v.cidr())
        .set("cidrBlockAssociationSet", &v.cidrs, |x, c| {
            x.leaf("cidrBlock", c.cidr)
                .leaf("associationId", &c.association_id)
                .node("cidrBlockState", |x| {
                    x.leaf("state", &c.state);
                });
        })
        .set("ipv6CidrBlockAssociationSet", &v.ipv6_cidrs, |x, c| {
            x.leaf("associationId", &c.association_id)
                .leaf("ipv6CidrBlock", c.cidr)
                .node("ipv6CidrBlockState", |x| {
                    x.leaf("state", &c.state);
                })
                .leaf("networkBorderGroup", &v.region)
                .leaf("ipv6Pool", "Amazon");
        })
        .leaf("dhcpOptionsId", &v.dhcp_options_id)
        .leaf("instanceTenancy", &v.instance_tenancy)
        .leaf("isDefault", tf(v.is_default))
        .node("blockPublicAccessStates", |x| {
            x.leaf("internetGatewayBlockMode", "off");
        });
    tag_set(x, w, &v.id);
}

/// IPAM and BYOIP pool parameters, which vpclab does not emulate: `Unsupported`.
fn refuse_pools(c: &Call) -> ApiResult<()> {
    for unsupported in [
        "Ipv4IpamPoolId",
        "Ipv6IpamPoolId",
        "Ipv6Pool",
        "Ipv6CidrBlock",
    ] {
        if c.params.get(unsupported).is_some() {
            return Err(ApiError::new(
                "Unsupported",
                format!(
                    "{unsupported}: IPAM and BYOIP pools are not supported by vpclab; use AmazonProvidedIpv6CidrBlock."
                ),
            ));
        }
    }
    Ok(())
}

fn create_vpc(c: &mut Call) -> ApiResult<Xml> {
    let cidr = c.params.get("CidrBlock").map(str::to_string);
    refuse_pools(c)?;
    let ipv6 = c
        .params
        .bool("AmazonProvidedIpv6CidrBlock")?
        .unwrap_or(false);
    let cidr = cidr.ok_or_else(|| ApiError::missing("CidrBlock"))?;
    let tenancy = c.params.get("InstanceTenancy").map(str::to_string);
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| {
        let id = w.create_vpc(env, &cidr, tenancy.as_deref(), &specs)?;
        if ipv6 {
            w.associate_vpc_ipv6_block(env, &id)?;
        }
        Ok(id)
    })?;
    let w = c.read()?;
    let v = w.vpcs.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    // AWS answers CreateVpc with the VPC still `pending`; it is `available` at once after.
    x.node("vpc", |x| render_vpc(x, &w, v, "pending"));
    Ok(x)
}

fn delete_vpc(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("VpcId")?.to_string();
    c.mutate(|w, env| w.delete_vpc(env, &id))?;
    Ok(return_true())
}

fn describe_vpcs(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("VpcId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(&w.vpcs, &c.env.region, &ids, &filters, vpc_not_found)?;
    let (page, next) = paginate(c, rows, |v| &v.id)?;
    let mut x = Xml::new();
    x.set("vpcSet", page, |x, v| render_vpc(x, &w, v, &v.state));
    x.opt("nextToken", next);
    Ok(x)
}

fn modify_vpc_attribute(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("VpcId")?.to_string();
    let mut set = Vec::new();
    for (name, attr) in [
        ("EnableDnsSupport", VpcAttribute::EnableDnsSupport),
        ("EnableDnsHostnames", VpcAttribute::EnableDnsHostnames),
        (
            "EnableNetworkAddressUsageMetrics",
            VpcAttribute::EnableNetworkAddressUsageMetrics,
        ),
    ] {
        if let Some(v) = c.params.bool_value(name)? {
            set.push((attr, v));
        }
    }
    let (attr, value) = match set.as_slice() {
        [one] => *one,
        [] => return Err(ApiError::missing("EnableDnsSupport or EnableDnsHostnames")),
        _ => {
            return Err(ApiError::combination(
                "Fields for multiple attribute types specified: enableDnsSupport, enableDnsHostnames",
            ));
        }
    };
    c.mutate(|w, env| w.modify_vpc_attribute(env, &id, attr, value))?;
    Ok(return_true())
}

fn describe_vpc_attribute(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("VpcId")?.to_string();
    let name = c.params.required("Attribute")?.to_string();
    let attr = VpcAttribute::parse(&name).ok_or_else(|| ApiError::bad_param("attribute", &name))?;
    let w = c.read()?;
    let v = w.vpc(&c.env.region, &id)?;
    let value = match attr {
        VpcAttribute::EnableDnsSupport => v.enable_dns_support,
        VpcAttribute::EnableDnsHostnames => v.enable_dns_hostnames,
        VpcAttribute::EnableNetworkAddressUsageMetrics => v.enable_network_address_usage_metrics,
    };
    let mut x = Xml::new();
    x.leaf("vpcId", &v.id).node(&name, |x| {
        x.leaf("value", tf(value));
    });
    Ok(x)
}

fn associate_vpc_cidr_block(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("VpcId")?.to_string();
    let ipv6 = c
        .params
        .bool("AmazonProvidedIpv6CidrBlock")?
        .unwrap_or(false);
    let cidr = c.params.get("CidrBlock").map(str::to_string);
    refuse_pools(c)?;
    let mut x = Xml::new();
    match (cidr, ipv6) {
        (Some(_), true) => {
            return Err(ApiError::combination(
                "Specify either CidrBlock or AmazonProvidedIpv6CidrBlock, not both.",
            ));
        }
        (None, false) => return Err(ApiError::missing("CidrBlock")),
        (None, true) => {
            let (assoc, block) = c.mutate(|w, env| w.associate_vpc_ipv6_block(env, &id))?;
            x.leaf("vpcId", &id).node("ipv6CidrBlockAssociation", |x| {
                x.leaf("associationId", &assoc)
                    .leaf("ipv6CidrBlock", block)
                    .node("ipv6CidrBlockState", |x| {
                        x.leaf("state", "associating");
                    })
                    .leaf("networkBorderGroup", &c.env.region)
                    .leaf("ipv6Pool", "Amazon");
            });
        }
        (Some(cidr), false) => {
            let assoc = c.mutate(|w, env| w.associate_vpc_cidr_block(env, &id, &cidr))?;
            let w = c.read()?;
            let block = w
                .vpcs
                .get(&id)
                .and_then(|v| v.cidrs.iter().find(|x| x.association_id == assoc))
                .map(|b| b.cidr.to_string())
                .unwrap_or(cidr);
            x.leaf("vpcId", &id).node("cidrBlockAssociation", |x| {
                x.leaf("associationId", &assoc)
                    .leaf("cidrBlock", &block)
                    .node("cidrBlockState", |x| {
                        x.leaf("state", "associating");
                    });
            });
        }
    }
    Ok(x)
}

fn disassociate_vpc_cidr_block(c: &mut Call) -> ApiResult<Xml> {
    let assoc = c.params.required("AssociationId")?.to_string();
    let mut x = Xml::new();
    if let Some((vpc_id, cidr)) =
        c.mutate(|w, env| w.disassociate_vpc_ipv6_block(env, &assoc).transpose())?
    {
        x.leaf("vpcId", vpc_id)
            .node("ipv6CidrBlockAssociation", |x| {
                x.leaf("associationId", &assoc)
                    .leaf("ipv6CidrBlock", cidr)
                    .node("ipv6CidrBlockState", |x| {
                        x.leaf("state", "disassociating");
                    });
            });
        return Ok(x);
    }
    let (vpc_id, cidr) = c.mutate(|w, env| w.disassociate_vpc_cidr_block(env, &assoc))?;
    x.leaf("vpcId", vpc_id).node("cidrBlockAssociation", |x| {
        x.leaf("associationId", &assoc)
            .leaf("cidrBlock", cidr)
            .node("cidrBlockState", |x| {
                x.leaf("state", "disassociating");
            });
    });
    Ok(x)
}

fn create_default_vpc(c: &mut Call) -> ApiResult<Xml> {
    let id = c.mutate(|w, env| w.create_default_vpc(env))?;
    let w = c.read()?;
    let v = w.vpcs.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("vpc", |x| render_vpc(x, &w, v, "pending"));
    Ok(x)
}
