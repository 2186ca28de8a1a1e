//! Internet gateway actions: Create/Delete/Attach/Detach/DescribeInternetGateways.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::igw::{InternetGateway, igw_not_found};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateInternetGateway", create_internet_gateway),
    ("DeleteInternetGateway", delete_internet_gateway),
    ("AttachInternetGateway", attach_internet_gateway),
    ("DetachInternetGateway", detach_internet_gateway),
    ("DescribeInternetGateways", describe_internet_gateways),
];

fn render_igw(x: &mut Xml, w: &World, g: &InternetGateway) {
    x.leaf("internetGatewayId", &g.id)
        .leaf("ownerId", &w.account)
        .set("attachmentSet", &g.attached_vpc, |x, v| {
            // AWS reports an attached internet gateway's attachment as `available`.
            x.leaf("vpcId", v).leaf("state", "available");
        });
    tag_set(x, w, &g.id);
}

fn create_internet_gateway(c: &mut Call) -> ApiResult<Xml> {
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| w.create_internet_gateway(env, &specs))?;
    let w = c.read()?;
    let g = w
        .internet_gateways
        .get(&id)
        .ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("internetGateway", |x| render_igw(x, &w, g));
    Ok(x)
}

fn delete_internet_gateway(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("InternetGatewayId")?.to_string();
    c.mutate(|w, env| w.delete_internet_gateway(env, &id))?;
    Ok(return_true())
}

fn attach_internet_gateway(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("InternetGatewayId")?.to_string();
    let vpc = c.params.required("VpcId")?.to_string();
    c.mutate(|w, env| w.attach_internet_gateway(env, &id, &vpc))?;
    Ok(return_true())
}

fn detach_internet_gateway(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("InternetGatewayId")?.to_string();
    let vpc = c.params.required("VpcId")?.to_string();
    c.mutate(|w, env| w.detach_internet_gateway(env, &id, &vpc))?;
    Ok(return_true())
}

fn describe_internet_gateways(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("InternetGatewayId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.internet_gateways,
        &c.env.region,
        &ids,
        &filters,
        igw_not_found,
    )?;
    let (page, next) = paginate(c, rows, |g| &g.id)?;
    let mut x = Xml::new();
    x.set("internetGatewaySet", page, |x, g| render_igw(x, &w, g));
    x.opt("nextToken", next);
    Ok(x)
}
