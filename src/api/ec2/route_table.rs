//! Route table actions: Create/Delete/DescribeRouteTables, Create/Replace/DeleteRoute,
//! Associate/DisassociateRouteTable, ReplaceRouteTableAssociation.

use crate::api::Call;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::model::ec2::route_table::{Destination, RouteTable, RouteTarget, route_table_not_found};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateRouteTable", create_route_table),
    ("DeleteRouteTable", delete_route_table),
    ("DescribeRouteTables", describe_route_tables),
    ("CreateRoute", create_route),
    ("ReplaceRoute", replace_route),
    ("DeleteRoute", delete_route),
    ("AssociateRouteTable", associate_route_table),
    ("DisassociateRouteTable", disassociate_route_table),
    (
        "ReplaceRouteTableAssociation",
        replace_route_table_association,
    ),
];

fn render_rt(x: &mut Xml, w: &World, rt: &RouteTable) {
    x.leaf("routeTableId", &rt.id)
        .leaf("vpcId", &rt.vpc_id)
        .leaf("ownerId", &w.account)
        .set("routeSet", &rt.routes, |x, r| {
            match &r.destination {
                Destination::Cidr(c) => x.leaf("destinationCidrBlock", c),
                Destination::PrefixList(p) => x.leaf("destinationPrefixListId", p),
                Destination::Cidr6(c) => x.leaf("destinationIpv6CidrBlock", c),
            };
            match &r.target {
                RouteTarget::Local => {
                    x.leaf("gatewayId", "local");
                }
                RouteTarget::Gateway(g) => {
                    x.leaf("gatewayId", g);
                }
                RouteTarget::NatGateway(n) => {
                    x.leaf("natGatewayId", n);
                }
                RouteTarget::NetworkInterface(e) => {
                    x.leaf("networkInterfaceId", e);
                    if let Some(i) = w.instance_of_eni(e) {
                        x.leaf("instanceId", i).leaf("instanceOwnerId", &w.account);
                    }
                }
                RouteTarget::Instance(i) => {
                    x.leaf("instanceId", i).leaf("instanceOwnerId", &w.account);
                    if let Some(e) = w.primary_eni_of_instance(i) {
                        x.leaf("networkInterfaceId", &e.id);
                    }
                }
                RouteTarget::VpcPeering(p) => {
                    x.leaf("vpcPeeringConnectionId", p);
                }
                RouteTarget::EgressOnlyGateway(g) => {
                    x.leaf("egressOnlyInternetGatewayId", g);
                }
                RouteTarget::TransitGateway(t) => {
                    x.leaf("transitGatewayId", t);
                }
                // AWS shows a gateway endpoint's route with the endpoint as `gatewayId`.
                RouteTarget::VpcEndpoint(e) => {
                    x.leaf("gatewayId", e);
                }
            }
            x.leaf("state", w.route_state(rt, r))
                .leaf("origin", &r.origin);
        })
        .set("associationSet", &rt.associations, |x, a| {
            x.leaf("routeTableAssociationId", &a.id)
                .leaf("routeTableId", &rt.id)
                .opt("subnetId", a.subnet_id.as_deref())
                .opt("gatewayId", a.gateway_id.as_deref())
                .leaf("main", tf(a.main))
                .node("associationState", |x| {
                    x.leaf("state", "associated");
                });
        })
        .set("propagatingVgwSet", std::iter::empty::<()>(), |_, _| {});
    tag_set(x, w, &rt.id);
}

fn create_route_table(c: &mut Call) -> ApiResult<Xml> {
    let vpc = c.params.required("VpcId")?.to_string();
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| w.create_route_table(env, &vpc, &specs))?;
    let w = c.read()?;
    let rt = w.route_tables.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("routeTable", |x| render_rt(x, &w, rt));
    Ok(x)
}

fn delete_route_table(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("RouteTableId")?.to_string();
    c.mutate(|w, env| w.delete_route_table(env, &id))?;
    Ok(return_true())
}

fn describe_route_tables(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("RouteTableId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.route_tables,
        &c.env.region,
        &ids,
        &filters,
        route_table_not_found,
    )?;
    let (page, next) = paginate(c, rows, |r| &r.id)?;
    let mut x = Xml::new();
    x.set("routeTableSet", page, |x, r| render_rt(x, &w, r));
    x.opt("nextToken", next);
    Ok(x)
}

/// The one target of a CreateRoute/ReplaceRoute call.
fn target(p: &Params) -> ApiResult<RouteTarget> {
    let mut found = Vec::new();
    if let Some(g) = p.get("GatewayId") {
        found.push(if g == "local" {
            RouteTarget::Local
        } else if g.starts_with("igw-") {
            RouteTarget::Gateway(g.to_string())
        } else {
            return Err(ApiError::new(
                "InvalidGatewayID.NotFound",
                format!("The gateway ID '{g}' does not exist"),
            ));
        });
    }
    if let Some(n) = p.get("NatGatewayId") {
        found.push(RouteTarget::NatGateway(n.to_string()));
    }
    if let Some(e) = p.get("NetworkInterfaceId") {
        found.push(RouteTarget::NetworkInterface(e.to_string()));
    }
    if let Some(i) = p.get("InstanceId") {
        found.push(RouteTarget::Instance(i.to_string()));
    }
    if let Some(v) = p.get("VpcPeeringConnectionId") {
        found.push(RouteTarget::VpcPeering(v.to_string()));
    }
    if let Some(g) = p.get("EgressOnlyInternetGatewayId") {
        found.push(RouteTarget::EgressOnlyGateway(g.to_string()));
    }
    if let Some(t) = p.get("TransitGatewayId") {
        found.push(RouteTarget::TransitGateway(t.to_string()));
    }
    for unsupported in [
        "LocalGatewayId",
        "CarrierGatewayId",
        "VpcEndpointId",
        "CoreNetworkArn",
        "OdbNetworkArn",
    ] {
        if p.get(unsupported).is_some() {
            return Err(ApiError::new(
                "Unsupported",
                format!("Route targets of type {unsupported} are not supported by vpclab."),
            ));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(ApiError::missing(
            "target (GatewayId, NatGatewayId, NetworkInterfaceId or InstanceId)",
        )),
        _ => Err(ApiError::combination("More than one target specified")),
    }
}

/// The one destination of a route call: `DestinationCidrBlock`,
/// `DestinationIpv6CidrBlock` or `DestinationPrefixListId` (AWS: exactly one of them).
fn destination(p: &Params) -> ApiResult<String> {
    let given: Vec<(&str, &str)> = [
        "DestinationCidrBlock",
        "DestinationIpv6CidrBlock",
        "DestinationPrefixListId",
    ]
    .into_iter()
    .filter_map(|k| p.get(k).map(|v| (k, v)))
    .collect();
    match given.as_slice() {
        [("DestinationCidrBlock", c)] if c.contains(':') => Err(ApiError::invalid_value(format!(
            "Value ({c}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block."
        ))),
        [("DestinationIpv6CidrBlock", c)] if !c.contains(':') => {
            Err(ApiError::invalid_value(format!(
                "Value ({c}) for parameter destinationIpv6CidrBlock is invalid. This is not a valid IPv6 CIDR block."
            )))
        }
        [(_, v)] => Ok(v.to_string()),
        [] => Err(ApiError::missing(
            "DestinationCidrBlock, DestinationIpv6CidrBlock or DestinationPrefixListId",
        )),
        _ => Err(ApiError::combination(
            "Specify one destination: a CIDR block, an IPv6 CIDR block or a prefix list ID",
        )),
    }
}

fn create_route(c: &mut Call) -> ApiResult<Xml> {
    let rt = c.params.required("RouteTableId")?.to_string();
    let dest = destination(c.params)?;
    let t = target(c.params)?;
    c.mutate(|w, env| w.create_route(env, &rt, &dest, t))?;
    Ok(return_true())
}

fn replace_route(c: &mut Call) -> ApiResult<Xml> {
    let rt = c.params.required("RouteTableId")?.to_string();
    let dest = destination(c.params)?;
    let t = target(c.params)?;
    c.mutate(|w, env| w.replace_route(env, &rt, &dest, t))?;
    Ok(return_true())
}

fn delete_route(c: &mut Call) -> ApiResult<Xml> {
    let rt = c.params.required("RouteTableId")?.to_string();
    let dest = destination(c.params)?;
    c.mutate(|w, env| w.delete_route(env, &rt, &dest))?;
    Ok(return_true())
}

fn associate_route_table(c: &mut Call) -> ApiResult<Xml> {
    let rt = c.params.required("RouteTableId")?.to_string();
    if c.params.get("GatewayId").is_some() {
        return Err(ApiError::new(
            "Unsupported",
            "Gateway route table associations are not supported by vpclab.",
        ));
    }
    let subnet = c.params.required("SubnetId")?.to_string();
    let assoc = c.mutate(|w, env| w.associate_route_table(env, &rt, &subnet))?;
    let mut x = Xml::new();
    x.leaf("associationId", assoc)
        .node("associationState", |x| {
            x.leaf("state", "associated");
        });
    Ok(x)
}

fn disassociate_route_table(c: &mut Call) -> ApiResult<Xml> {
    let assoc = c.params.required("AssociationId")?.to_string();
    c.mutate(|w, env| w.disassociate_route_table(env, &assoc))?;
    Ok(return_true())
}

fn replace_route_table_association(c: &mut Call) -> ApiResult<Xml> {
    let assoc = c.params.required("AssociationId")?.to_string();
    let rt = c.params.required("RouteTableId")?.to_string();
    let new = c.mutate(|w, env| w.replace_route_table_association(env, &assoc, &rt))?;
    let mut x = Xml::new();
    x.leaf("newAssociationId", new)
        .node("associationState", |x| {
            x.leaf("state", "associated");
        });
    Ok(x)
}
