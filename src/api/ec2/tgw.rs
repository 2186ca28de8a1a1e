//! Transit gateway actions over [`crate::model::ec2::tgw`]: gateways, VPC attachments,
//! route tables, associations, propagations and routes. Options that AWS spells
//! `enable`/`disable` are parsed and rendered so.

use ipnet::Ipv4Net;

use crate::api::Call;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::model::ec2::tgw::{
    TgwOptionsInput, TgwRouteView, TgwStaticRoute, TransitGateway, TransitGatewayAttachment,
    TransitGatewayRouteTable, attachment_not_found, tgw_not_found, tgw_route_table_not_found,
};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateTransitGateway", create_tgw),
    ("DescribeTransitGateways", describe_tgws),
    ("ModifyTransitGateway", modify_tgw),
    ("DeleteTransitGateway", delete_tgw),
    ("CreateTransitGatewayVpcAttachment", create_attachment),
    (
        "DescribeTransitGatewayVpcAttachments",
        describe_vpc_attachments,
    ),
    ("DescribeTransitGatewayAttachments", describe_attachments),
    ("DeleteTransitGatewayVpcAttachment", delete_attachment),
    ("AcceptTransitGatewayVpcAttachment", accept_attachment),
    ("CreateTransitGatewayRouteTable", create_rt),
    ("DescribeTransitGatewayRouteTables", describe_rts),
    ("DeleteTransitGatewayRouteTable", delete_rt),
    ("AssociateTransitGatewayRouteTable", associate),
    ("DisassociateTransitGatewayRouteTable", disassociate),
    (
        "EnableTransitGatewayRouteTablePropagation",
        enable_propagation,
    ),
    (
        "DisableTransitGatewayRouteTablePropagation",
        disable_propagation,
    ),
    ("CreateTransitGatewayRoute", create_route),
    ("ReplaceTransitGatewayRoute", replace_route),
    ("DeleteTransitGatewayRoute", delete_route),
    ("SearchTransitGatewayRoutes", search_routes),
    ("GetTransitGatewayRouteTableAssociations", get_associations),
    ("GetTransitGatewayRouteTablePropagations", get_propagations),
];

fn ed(v: bool) -> &'static str {
    if v { "enable" } else { "disable" }
}

/// An `enable`/`disable` option.
fn ed_param(p: &Params, key: &str) -> ApiResult<Option<bool>> {
    match p.get(key) {
        None => Ok(None),
        Some("enable") => Ok(Some(true)),
        Some("disable") => Ok(Some(false)),
        Some(v) => Err(ApiError::bad_param(key, v)),
    }
}

fn options_input(p: &Params) -> ApiResult<TgwOptionsInput> {
    let o = |k: &str| format!("Options.{k}");
    let asn = match p.get(&o("AmazonSideAsn")) {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_param("AmazonSideAsn", v))?,
        ),
    };
    if p.get(&o("TransitGatewayCidrBlocks.1")).is_some()
        || ed_param(p, &o("SecurityGroupReferencingSupport"))? == Some(true)
    {
        return Err(ApiError::new(
            "Unsupported",
            "Transit gateway CIDR blocks and security group referencing are not emulated (docs/fidelity.md).",
        ));
    }
    if ed_param(p, &o("MulticastSupport"))? == Some(true) {
        return Err(ApiError::new(
            "Unsupported",
            "Transit gateway multicast is not emulated (docs/fidelity.md).",
        ));
    }
    Ok(TgwOptionsInput {
        amazon_side_asn: asn,
        auto_accept_shared_attachments: ed_param(p, &o("AutoAcceptSharedAttachments"))?,
        default_route_table_association: ed_param(p, &o("DefaultRouteTableAssociation"))?,
        association_default_route_table_id: p
            .get(&o("AssociationDefaultRouteTableId"))
            .map(str::to_string),
        default_route_table_propagation: ed_param(p, &o("DefaultRouteTablePropagation"))?,
        propagation_default_route_table_id: p
            .get(&o("PropagationDefaultRouteTableId"))
            .map(str::to_string),
        vpn_ecmp_support: ed_param(p, &o("VpnEcmpSupport"))?,
        dns_support: ed_param(p, &o("DnsSupport"))?,
        multicast_support: None,
    })
}

fn render_tgw(x: &mut Xml, w: &World, t: &TransitGateway) {
    let o = &t.options;
    x.leaf("transitGatewayId", &t.id)
        .leaf(
            "transitGatewayArn",
            format!(
                "arn:aws:ec2:{}:{}:transit-gateway/{}",
                t.region, w.account, t.id
            ),
        )
        .leaf("state", &t.state)
        .leaf("ownerId", &w.account)
        .leaf("description", &t.description)
        .leaf("creationTime", t.created.iso())
        .node("options", |x| {
            x.leaf("amazonSideAsn", o.amazon_side_asn)
                .leaf(
                    "autoAcceptSharedAttachments",
                    ed(o.auto_accept_shared_attachments),
                )
                .leaf(
                    "defaultRouteTableAssociation",
                    ed(o.default_route_table_association),
                )
                .opt(
                    "associationDefaultRouteTableId",
                    o.association_default_route_table_id.as_deref(),
                )
                .leaf(
                    "defaultRouteTablePropagation",
                    ed(o.default_route_table_propagation),
                )
                .opt(
                    "propagationDefaultRouteTableId",
                    o.propagation_default_route_table_id.as_deref(),
                )
                .leaf("vpnEcmpSupport", ed(o.vpn_ecmp_support))
                .leaf("dnsSupport", ed(o.dns_support))
                .leaf("securityGroupReferencingSupport", "disable")
                .leaf("multicastSupport", ed(o.multicast_support));
        });
    tag_set(x, w, &t.id);
}

fn one_tgw(c: &mut Call, id: &str) -> ApiResult<Xml> {
    let w = c.read()?;
    let t = w.transit_gateways.get(id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("transitGateway", |x| render_tgw(x, &w, t));
    Ok(x)
}

fn create_tgw(c: &mut Call) -> ApiResult<Xml> {
    let description = c.params.get("Description").map(str::to_string);
    let input = options_input(c.params)?;
    let specs = c.params.tag_specs()?;
    let id =
        c.mutate(|w, env| w.create_transit_gateway(env, description.as_deref(), &input, &specs))?;
    one_tgw(c, &id)
}

fn describe_tgws(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("TransitGatewayIds");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.transit_gateways,
        &c.env.region,
        &ids,
        &filters,
        tgw_not_found,
    )?;
    let (page, next) = paginate(c, rows, |r| &r.id)?;
    let mut x = Xml::new();
    x.set("transitGatewaySet", page, |x, t| render_tgw(x, &w, t));
    x.opt("nextToken", next);
    Ok(x)
}

fn modify_tgw(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("TransitGatewayId")?.to_string();
    let description = c.params.get("Description").map(str::to_string);
    let input = options_input(c.params)?;
    for removed in [
        "Options.AddTransitGatewayCidrBlocks.1",
        "Options.RemoveTransitGatewayCidrBlocks.1",
    ] {
        if c.params.get(removed).is_some() {
            return Err(ApiError::new(
                "Unsupported",
                "Transit gateway CIDR blocks are not emulated (docs/fidelity.md).",
            ));
        }
    }
    c.mutate(|w, env| w.modify_transit_gateway(env, &id, description.as_deref(), &input))?;
    one_tgw(c, &id)
}

fn delete_tgw(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("TransitGatewayId")?.to_string();
    c.mutate(|w, env| w.delete_transit_gateway(env, &id))?;
    one_tgw(c, &id)
}

fn render_vpc_attachment(x: &mut Xml, w: &World, a: &TransitGatewayAttachment) {
    x.leaf("transitGatewayAttachmentId", &a.id)
        .leaf("transitGatewayId", &a.transit_gateway_id)
        .leaf("vpcId", &a.vpc_id)
        .leaf("vpcOwnerId", &w.account)
        .leaf("state", &a.state)
        .set("subnetIds", &a.subnet_ids, |x, s| {
            x.text(s);
        })
        .leaf("creationTime", a.created.iso())
        .node("options", |x| {
            x.leaf("dnsSupport", ed(a.dns_support))
                .leaf("securityGroupReferencingSupport", "disable")
                .leaf("ipv6Support", ed(a.ipv6_support))
                .leaf("applianceModeSupport", ed(a.appliance_mode_support));
        });
    tag_set(x, w, &a.id);
}

fn one_attachment(c: &mut Call, id: &str) -> ApiResult<Xml> {
    let w = c.read()?;
    let a = w
        .transit_gateway_attachments
        .get(id)
        .ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("transitGatewayVpcAttachment", |x| {
        render_vpc_attachment(x, &w, a)
    });
    Ok(x)
}

fn create_attachment(c: &mut Call) -> ApiResult<Xml> {
    let tgw = c.params.required("TransitGatewayId")?.to_string();
    let vpc = c.params.required("VpcId")?.to_string();
    let subnets = c.params.list("SubnetIds");
    let options = (
        ed_param(c.params, "Options.DnsSupport")?,
        ed_param(c.params, "Options.Ipv6Support")?,
        ed_param(c.params, "Options.ApplianceModeSupport")?,
    );
    if options.1 == Some(true) {
        return Err(ApiError::new(
            "Unsupported",
            "IPv6 through a transit gateway is not emulated (docs/fidelity.md).",
        ));
    }
    let specs = c.params.tag_specs()?;
    let id =
        c.mutate(|w, env| w.create_tgw_vpc_attachment(env, &tgw, &vpc, &subnets, options, &specs))?;
    one_attachment(c, &id)
}

fn describe_vpc_attachments(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("TransitGatewayAttachmentIds");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.transit_gateway_attachments,
        &c.env.region,
        &ids,
        &filters,
        attachment_not_found,
    )?;
    let (page, next) = paginate(c, rows, |r| &r.id)?;
    let mut x = Xml::new();
    x.set("transitGatewayVpcAttachments", page, |x, a| {
        render_vpc_attachment(x, &w, a)
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn describe_attachments(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("TransitGatewayAttachmentIds");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.transit_gateway_attachments,
        &c.env.region,
        &ids,
        &filters,
        attachment_not_found,
    )?;
    let (page, next) = paginate(c, rows, |r| &r.id)?;
    let mut x = Xml::new();
    x.set("transitGatewayAttachments", page, |x, a| {
        x.leaf("transitGatewayAttachmentId", &a.id)
            .leaf("transitGatewayId", &a.transit_gateway_id)
            .leaf("transitGatewayOwnerId", &w.account)
            .leaf("resourceOwnerId", &w.account)
            .leaf("resourceType", "vpc")
            .leaf("resourceId", &a.vpc_id)
            .leaf("state", &a.state);
        if let Some(rt) = &a.association {
            x.node("association", |x| {
                x.leaf("transitGatewayRouteTableId", rt)
                    .leaf("state", "associated");
            });
        }
        x.leaf("creationTime", a.created.iso());
        tag_set(x, &w, &a.id);
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn delete_attachment(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("TransitGatewayAttachmentId")?.to_string();
    c.mutate(|w, env| w.delete_tgw_vpc_attachment(env, &id))?;
    one_attachment(c, &id)
}

/// Attachments of one account's own VPCs need no acceptance (AWS asks for it only
/// across accounts), so there is never one in `pendingAcceptance`.
fn accept_attachment(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("TransitGatewayAttachmentId")?.to_string();
    let w = c.read()?;
    let a = w.tgw_attachment(&c.env.region, &id)?;
    Err(ApiError::new(
        "IncorrectState",
        format!(
            "tgw-attachment {id} is in invalid state {}: only attachments pending acceptance can be accepted.",
            a.state
        ),
    ))
}

fn render_rt(x: &mut Xml, w: &World, r: &TransitGatewayRouteTable) {
    let tgw = w.transit_gateways.get(&r.transit_gateway_id);
    let is =
        |f: fn(&TransitGateway) -> Option<&String>| tgw.and_then(f).is_some_and(|id| *id == r.id);
    x.leaf("transitGatewayRouteTableId", &r.id)
        .leaf("transitGatewayId", &r.transit_gateway_id)
        .leaf("state", &r.state)
        .leaf(
            "defaultAssociationRouteTable",
            tf(is(|t| {
                t.options.association_default_route_table_id.as_ref()
            })),
        )
        .leaf(
            "defaultPropagationRouteTable",
            tf(is(|t| {
                t.options.propagation_default_route_table_id.as_ref()
            })),
        )
        .leaf("creationTime", r.created.iso());
    tag_set(x, w, &r.id);
}

fn one_rt(c: &mut Call, id: &str) -> ApiResult<Xml> {
    let w = c.read()?;
    let r = w
        .transit_gateway_route_tables
        .get(id)
        .ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("transitGatewayRouteTable", |x| render_rt(x, &w, r));
    Ok(x)
}

fn create_rt(c: &mut Call) -> ApiResult<Xml> {
    let tgw = c.params.required("TransitGatewayId")?.to_string();
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| w.create_tgw_route_table(env, &tgw, &specs))?;
    one_rt(c, &id)
}

fn describe_rts(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("TransitGatewayRouteTableIds");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.transit_gateway_route_tables,
        &c.env.region,
        &ids,
        &filters,
        tgw_route_table_not_found,
    )?;
    let (page, next) = paginate(c, rows, |r| &r.id)?;
    let mut x = Xml::new();
    x.set("transitGatewayRouteTables", page, |x, r| {
        render_rt(x, &w, r)
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn delete_rt(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("TransitGatewayRouteTableId")?.to_string();
    c.mutate(|w, env| w.delete_tgw_route_table(env, &id))?;
    one_rt(c, &id)
}

fn rt_and_attachment(c: &Call) -> ApiResult<(String, String)> {
    Ok((
        c.params.required("TransitGatewayRouteTableId")?.to_string(),
        c.params.required("TransitGatewayAttachmentId")?.to_string(),
    ))
}

/// `association` / `propagation`: attachment, its VPC, the table and a state.
fn render_link(x: &mut Xml, w: &World, name: &str, rt: &str, att: &str, state: &str) {
    let vpc = w
        .transit_gateway_attachments
        .get(att)
        .map(|a| a.vpc_id.clone())
        .unwrap_or_default();
    x.node(name, |x| {
        x.leaf("transitGatewayRouteTableId", rt)
            .leaf("transitGatewayAttachmentId", att)
            .leaf("resourceId", &vpc)
            .leaf("resourceType", "vpc")
            .leaf("state", state);
    });
}

fn associate(c: &mut Call) -> ApiResult<Xml> {
    let (rt, att) = rt_and_attachment(c)?;
    c.mutate(|w, env| w.associate_tgw_route_table(env, &rt, &att))?;
    let w = c.read()?;
    let mut x = Xml::new();
    render_link(&mut x, &w, "association", &rt, &att, "associating");
    Ok(x)
}

fn disassociate(c: &mut Call) -> ApiResult<Xml> {
    let (rt, att) = rt_and_attachment(c)?;
    c.mutate(|w, env| w.disassociate_tgw_route_table(env, &rt, &att))?;
    let w = c.read()?;
    let mut x = Xml::new();
    render_link(&mut x, &w, "association", &rt, &att, "disassociating");
    Ok(x)
}

fn enable_propagation(c: &mut Call) -> ApiResult<Xml> {
    let (rt, att) = rt_and_attachment(c)?;
    c.mutate(|w, env| w.set_tgw_propagation(env, &rt, &att, true))?;
    let w = c.read()?;
    let mut x = Xml::new();
    render_link(&mut x, &w, "propagation", &rt, &att, "enabled");
    Ok(x)
}

fn disable_propagation(c: &mut Call) -> ApiResult<Xml> {
    let (rt, att) = rt_and_attachment(c)?;
    c.mutate(|w, env| w.set_tgw_propagation(env, &rt, &att, false))?;
    let w = c.read()?;
    let mut x = Xml::new();
    render_link(&mut x, &w, "propagation", &rt, &att, "disabled");
    Ok(x)
}

fn render_route(x: &mut Xml, w: &World, cidr: Ipv4Net, att: Option<&str>, kind: &str, state: &str) {
    x.leaf("destinationCidrBlock", cidr);
    if let Some(a) = att {
        let vpc = w
            .transit_gateway_attachments
            .get(a)
            .map(|a| a.vpc_id.clone())
            .unwrap_or_default();
        x.set("transitGatewayAttachments", [a], |x, a| {
            x.leaf("resourceId", &vpc)
                .leaf("transitGatewayAttachmentId", a)
                .leaf("resourceType", "vpc");
        });
    }
    x.leaf("type", kind).leaf("state", state);
}

/// The static route as the route table now shows it (its state follows its target).
fn route_answer(c: &mut Call, rt: &str, r: &TgwStaticRoute, state: Option<&str>) -> ApiResult<Xml> {
    let w = c.read()?;
    let shown = w
        .transit_gateway_route_tables
        .get(rt)
        .map(|t| w.tgw_routes(t))
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.cidr == r.cidr && v.kind == "static");
    let state = state
        .or(shown.as_ref().map(|v| v.state))
        .unwrap_or("blackhole");
    let mut x = Xml::new();
    x.node("route", |x| {
        render_route(x, &w, r.cidr, r.attachment.as_deref(), "static", state)
    });
    Ok(x)
}

fn route_params(c: &Call) -> ApiResult<(String, String, Option<String>, bool)> {
    Ok((
        c.params.required("TransitGatewayRouteTableId")?.to_string(),
        c.params.required("DestinationCidrBlock")?.to_string(),
        c.params
            .get("TransitGatewayAttachmentId")
            .map(str::to_string),
        c.params.bool("Blackhole")?.unwrap_or(false),
    ))
}

fn create_route(c: &mut Call) -> ApiResult<Xml> {
    let (rt, cidr, att, blackhole) = route_params(c)?;
    let r = c.mutate(|w, env| w.create_tgw_route(env, &rt, &cidr, att.as_deref(), blackhole))?;
    route_answer(c, &rt, &r, None)
}

fn replace_route(c: &mut Call) -> ApiResult<Xml> {
    let (rt, cidr, att, blackhole) = route_params(c)?;
    let r = c.mutate(|w, env| w.replace_tgw_route(env, &rt, &cidr, att.as_deref(), blackhole))?;
    route_answer(c, &rt, &r, None)
}

fn delete_route(c: &mut Call) -> ApiResult<Xml> {
    let rt = c.params.required("TransitGatewayRouteTableId")?.to_string();
    let cidr = c.params.required("DestinationCidrBlock")?.to_string();
    let r = c.mutate(|w, env| w.delete_tgw_route(env, &rt, &cidr))?;
    route_answer(c, &rt, &r, Some("deleted"))
}

/// Whether a route passes one SearchTransitGatewayRoutes filter.
fn route_matches(w: &World, v: &TgwRouteView, name: &str, values: &[String]) -> ApiResult<bool> {
    let cidrs = || -> ApiResult<Vec<Ipv4Net>> {
        values
            .iter()
            .map(|s| crate::model::parse_cidr("route-search", s))
            .collect()
    };
    let vpc = v
        .attachment
        .as_ref()
        .and_then(|a| w.transit_gateway_attachments.get(a))
        .map(|a| a.vpc_id.clone());
    let any = |have: Option<&str>| have.is_some_and(|h| values.iter().any(|x| x == h));
    Ok(match name {
        "type" => any(Some(v.kind)),
        "state" => any(Some(v.state)),
        "attachment.transit-gateway-attachment-id" => any(v.attachment.as_deref()),
        "attachment.resource-id" => any(vpc.as_deref()),
        "attachment.resource-type" => v.attachment.is_some() && any(Some("vpc")),
        "route-search.exact-match" => cidrs()?.contains(&v.cidr),
        // The route's prefix contains the given one (AWS: "routes that are a
        // supernet of the CIDR or the CIDR itself" for longest-prefix and supernet).
        "route-search.supernet-of-match" => cidrs()?
            .iter()
            .any(|c| v.cidr.contains(&c.network()) && v.cidr.prefix_len() <= c.prefix_len()),
        "route-search.subnet-of-match" => cidrs()?
            .iter()
            .any(|c| c.contains(&v.cidr.network()) && c.prefix_len() <= v.cidr.prefix_len()),
        "route-search.longest-prefix-match" => true,
        _ => {
            return Err(ApiError::invalid_value(format!(
                "The filter '{name}' is invalid"
            )));
        }
    })
}

fn search_routes(c: &mut Call) -> ApiResult<Xml> {
    let rt = c.params.required("TransitGatewayRouteTableId")?.to_string();
    let filters = c.params.filters()?;
    if filters.is_empty() {
        return Err(ApiError::missing("Filters"));
    }
    let max = match c.params.int("MaxResults")? {
        None => 1000,
        Some(n) if (5..=1000).contains(&n) => n as usize,
        Some(n) => return Err(ApiError::bad_param("MaxResults", &n.to_string())),
    };
    let w = c.read()?;
    let table = w.tgw_route_table(&c.env.region, &rt)?;
    let mut rows = Vec::new();
    for v in w.tgw_routes(table) {
        let mut keep = true;
        for f in &filters {
            keep &= route_matches(&w, &v, &f.name, &f.values)?;
        }
        if keep {
            rows.push(v);
        }
    }
    // longest-prefix-match: of the routes containing the address, the longest only.
    if let Some(f) = filters
        .iter()
        .find(|f| f.name == "route-search.longest-prefix-match")
    {
        let mut best: Vec<TgwRouteView> = Vec::new();
        for s in &f.values {
            let c = crate::model::parse_cidr("route-search.longest-prefix-match", s)?;
            if let Some(r) = rows
                .iter()
                .filter(|v| v.cidr.contains(&c.network()) && v.cidr.prefix_len() <= c.prefix_len())
                .max_by_key(|v| v.cidr.prefix_len())
                && !best.contains(r)
            {
                best.push(r.clone());
            }
        }
        rows = best;
    }
    let more = rows.len() > max;
    rows.truncate(max);
    let mut x = Xml::new();
    x.set("routeSet", &rows, |x, v| {
        render_route(x, &w, v.cidr, v.attachment.as_deref(), v.kind, v.state)
    });
    x.leaf("additionalRoutesAvailable", tf(more));
    Ok(x)
}

/// The attachments of a table's associations or propagations, filtered by
/// `transit-gateway-attachment-id`, `resource-id`, `resource-type`.
fn linked<'a>(
    c: &Call,
    w: &'a World,
    rt: &TransitGatewayRouteTable,
    propagations: bool,
) -> ApiResult<Vec<&'a TransitGatewayAttachment>> {
    let filters = c.params.filters()?;
    let mut out = Vec::new();
    for a in w.transit_gateway_attachments.iter() {
        let linked = if propagations {
            rt.propagations.contains(&a.id)
        } else {
            a.association.as_deref() == Some(rt.id.as_str())
        };
        if !linked {
            continue;
        }
        let mut keep = true;
        for f in &filters {
            let have = match f.name.as_str() {
                "transit-gateway-attachment-id" => a.id.as_str(),
                "resource-id" => a.vpc_id.as_str(),
                "resource-type" => "vpc",
                n => {
                    return Err(ApiError::invalid_value(format!(
                        "The filter '{n}' is invalid"
                    )));
                }
            };
            keep &= f.values.iter().any(|v| v == have);
        }
        if keep {
            out.push(a);
        }
    }
    Ok(out)
}

fn get_associations(c: &mut Call) -> ApiResult<Xml> {
    linked_attachments(c, false)
}

fn get_propagations(c: &mut Call) -> ApiResult<Xml> {
    linked_attachments(c, true)
}

/// GetTransitGatewayRouteTableAssociations (`propagations` false) or
/// …Propagations (true): the attachments linked to a table, one page.
fn linked_attachments(c: &mut Call, propagations: bool) -> ApiResult<Xml> {
    let rt = c.params.required("TransitGatewayRouteTableId")?.to_string();
    let w = c.read()?;
    let table = w.tgw_route_table(&c.env.region, &rt)?;
    let rows = linked(c, &w, table, propagations)?;
    let (page, next) = paginate(c, rows, |r| &r.id)?;
    let (set, state) = if propagations {
        ("transitGatewayRouteTablePropagations", "enabled")
    } else {
        ("associations", "associated")
    };
    let mut x = Xml::new();
    x.set(set, page, |x, a| {
        x.leaf("transitGatewayAttachmentId", &a.id)
            .leaf("resourceId", &a.vpc_id)
            .leaf("resourceType", "vpc")
            .leaf("state", state);
    });
    x.opt("nextToken", next);
    Ok(x)
}
