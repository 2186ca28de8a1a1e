//! Egress-only internet gateway actions: Create/Delete/DescribeEgressOnlyInternetGateways.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::ipv6::{EgressOnlyInternetGateway, eigw_not_found};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, tag_set};

pub const ACTIONS: &[(&str, Handler)] = &[
    (
        "CreateEgressOnlyInternetGateway",
        create_egress_only_internet_gateway,
    ),
    (
        "DeleteEgressOnlyInternetGateway",
        delete_egress_only_internet_gateway,
    ),
    (
        "DescribeEgressOnlyInternetGateways",
        describe_egress_only_internet_gateways,
    ),
];

fn render_eigw(x: &mut Xml, w: &World, g: &EgressOnlyInternetGateway) {
    x.set("attachmentSet", std::iter::once(&g.vpc_id), |x, v| {
        x.leaf("state", "attached").leaf("vpcId", v);
    })
    .leaf("egressOnlyInternetGatewayId", &g.id);
    tag_set(x, w, &g.id);
}

fn create_egress_only_internet_gateway(c: &mut Call) -> ApiResult<Xml> {
    let vpc = c.params.required("VpcId")?.to_string();
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| w.create_egress_only_igw(env, &vpc, &specs))?;
    let w = c.read()?;
    let g = w
        .egress_only_internet_gateways
        .get(&id)
        .ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.opt("clientToken", c.params.get("ClientToken"))
        .node("egressOnlyInternetGateway", |x| render_eigw(x, &w, g));
    Ok(x)
}

fn delete_egress_only_internet_gateway(c: &mut Call) -> ApiResult<Xml> {
    let id = c
        .params
        .required("EgressOnlyInternetGatewayId")?
        .to_string();
    c.mutate(|w, env| w.delete_egress_only_igw(env, &id))?;
    let mut x = Xml::new();
    x.leaf("returnCode", "true");
    Ok(x)
}

fn describe_egress_only_internet_gateways(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("EgressOnlyInternetGatewayId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.egress_only_internet_gateways,
        &c.env.region,
        &ids,
        &filters,
        eigw_not_found,
    )?;
    let (page, next) = paginate(c, rows, |g| &g.id)?;
    let mut x = Xml::new();
    x.set("egressOnlyInternetGatewaySet", page, |x, g| {
        render_eigw(x, &w, g)
    });
    x.opt("nextToken", next);
    Ok(x)
}
