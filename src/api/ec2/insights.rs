//! Reachability Analyzer actions: Create/Describe/DeleteNetworkInsightsPath(s),
//! StartNetworkInsightsAnalysis, Describe/DeleteNetworkInsightsAnalys(is|es). The
//! analysis itself is the model's ([`crate::model::ec2::insights`]); this file parses
//! and renders AWS's shapes (`PathComponent`, `Explanation`, `AnalysisComponent` …).

use crate::api::Call;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::model::ec2::insights::{
    AclRuleInfo, AnalysisResult, Component, CreatePath, Explanation, Header,
    NetworkInsightsAnalysis, NetworkInsightsPath, PathComponent, PathFilter, PortSpan, RouteInfo,
    SgRuleInfo, analysis_not_found, path_not_found,
};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, tag_set};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateNetworkInsightsPath", create_path),
    ("DescribeNetworkInsightsPaths", describe_paths),
    ("DeleteNetworkInsightsPath", delete_path),
    ("StartNetworkInsightsAnalysis", start_analysis),
    ("DescribeNetworkInsightsAnalyses", describe_analyses),
    ("DeleteNetworkInsightsAnalysis", delete_analysis),
];

fn port_range(p: &Params, prefix: &str) -> ApiResult<Option<PortSpan>> {
    let from = p.int(&format!("{prefix}.FromPort"))?;
    let to = p.int(&format!("{prefix}.ToPort"))?;
    let port = |name: &str, v: i64| {
        u16::try_from(v)
            .map_err(|_| ApiError::bad_param(&format!("{prefix}.{name}"), &v.to_string()))
    };
    Ok(match (from, to) {
        (None, None) => None,
        (Some(f), None) => Some(PortSpan {
            from: port("FromPort", f)?,
            to: port("FromPort", f)?,
        }),
        (None, Some(t)) => Some(PortSpan {
            from: port("ToPort", t)?,
            to: port("ToPort", t)?,
        }),
        (Some(f), Some(t)) => Some(PortSpan {
            from: port("FromPort", f)?,
            to: port("ToPort", t)?,
        }),
    })
}

fn path_filter(p: &Params, prefix: &str) -> ApiResult<PathFilter> {
    let ip = |k: &str| -> ApiResult<Option<std::net::Ipv4Addr>> {
        let key = format!("{prefix}.{k}");
        p.get(&key)
            .map(|s| s.parse().map_err(|_| ApiError::bad_param(&key, s)))
            .transpose()
    };
    Ok(PathFilter {
        source_address: ip("SourceAddress")?,
        source_ports: port_range(p, &format!("{prefix}.SourcePortRange"))?,
        destination_address: ip("DestinationAddress")?,
        destination_ports: port_range(p, &format!("{prefix}.DestinationPortRange"))?,
    })
}

fn create_path(c: &mut Call) -> ApiResult<Xml> {
    let p = CreatePath {
        source: c.params.get("Source").map(str::to_string),
        destination: c.params.get("Destination").map(str::to_string),
        source_ip: c.params.get("SourceIp").map(str::to_string),
        destination_ip: c.params.get("DestinationIp").map(str::to_string),
        protocol: c.params.get("Protocol").map(str::to_string),
        destination_port: c.params.int("DestinationPort")?,
        filter_at_source: path_filter(c.params, "FilterAtSource")?,
        filter_at_destination: path_filter(c.params, "FilterAtDestination")?,
        tag_specs: c.params.tag_specs()?,
    };
    let path = c.mutate(|w, env| w.create_network_insights_path(env, &p))?;
    let w = c.read()?;
    let mut x = Xml::new();
    x.node("networkInsightsPath", |x| render_path(x, &w, &path));
    Ok(x)
}

fn render_filter(x: &mut Xml, name: &str, f: &Option<PathFilter>) {
    let Some(f) = f else { return };
    x.node(name, |x| {
        x.opt("sourceAddress", f.source_address);
        if let Some(r) = f.source_ports {
            x.node("sourcePortRange", |x| {
                x.leaf("fromPort", r.from).leaf("toPort", r.to);
            });
        }
        x.opt("destinationAddress", f.destination_address);
        if let Some(r) = f.destination_ports {
            x.node("destinationPortRange", |x| {
                x.leaf("fromPort", r.from).leaf("toPort", r.to);
            });
        }
    });
}

fn render_path(x: &mut Xml, w: &World, p: &NetworkInsightsPath) {
    x.leaf("networkInsightsPathId", &p.id)
        .leaf("networkInsightsPathArn", w.ec2_arn(&p.region, &p.id))
        .leaf("createdDate", p.created.iso())
        .leaf("source", &p.source)
        .leaf("sourceArn", w.ec2_arn(&p.region, &p.source))
        .opt("destination", p.destination.as_deref())
        .opt(
            "destinationArn",
            p.destination.as_deref().map(|d| w.ec2_arn(&p.region, d)),
        )
        .opt("sourceIp", p.source_ip)
        .opt("destinationIp", p.destination_ip)
        .leaf("protocol", &p.protocol)
        .opt("destinationPort", p.destination_port);
    render_filter(x, "filterAtSource", &p.filter_at_source);
    render_filter(x, "filterAtDestination", &p.filter_at_destination);
    tag_set(x, w, &p.id);
}

fn describe_paths(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("NetworkInsightsPathId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.network_insights_paths,
        &c.env.region,
        &ids,
        &filters,
        path_not_found,
    )?;
    let (page, next) = paginate(c, rows, |p| &p.id)?;
    let mut x = Xml::new();
    x.set("networkInsightsPathSet", page, |x, p| render_path(x, &w, p));
    x.opt("nextToken", next);
    Ok(x)
}

fn delete_path(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkInsightsPathId")?.to_string();
    c.mutate(|w, env| w.delete_network_insights_path(env, &id))?;
    let mut x = Xml::new();
    x.leaf("networkInsightsPathId", id);
    Ok(x)
}

fn start_analysis(c: &mut Call) -> ApiResult<Xml> {
    let path_id = c.params.required("NetworkInsightsPathId")?.to_string();
    let filter_in = c.params.list("FilterInArn");
    if !c.params.list("AdditionalAccount").is_empty() {
        return Err(ApiError::new(
            "Unsupported",
            "vpclab analyses paths inside one account; AdditionalAccounts is not emulated (see docs/fidelity.md)",
        ));
    }
    let tags = c.params.tag_specs()?;
    let a =
        c.mutate(|w, env| w.start_network_insights_analysis(env, &path_id, &filter_in, &tags))?;
    let w = c.read()?;
    let mut x = Xml::new();
    // The answer to Start is the analysis as it begins, as on AWS: `running`, without
    // results; DescribeNetworkInsightsAnalyses then shows it finished.
    x.node("networkInsightsAnalysis", |x| {
        render_analysis_head(x, &w, &a);
        x.leaf("status", "running");
        tag_set(x, &w, &a.id);
    });
    Ok(x)
}

fn render_analysis_head(x: &mut Xml, w: &World, a: &NetworkInsightsAnalysis) {
    x.leaf("networkInsightsAnalysisId", &a.id)
        .leaf("networkInsightsAnalysisArn", w.ec2_arn(&a.region, &a.id))
        .leaf("networkInsightsPathId", &a.path_id)
        .leaf("startDate", a.started.iso());
    if !a.filter_in_arns.is_empty() {
        x.set("filterInArnSet", &a.filter_in_arns, |x, arn| {
            x.raw(&crate::api::xml::escape(arn));
        });
    }
}

fn component(x: &mut Xml, name: &str, c: &Option<Component>) {
    if let Some(c) = c {
        x.node(name, |x| comp_body(x, c));
    }
}

fn comp_body(x: &mut Xml, c: &Component) {
    x.leaf("id", &c.id)
        .leaf("arn", &c.arn)
        .opt("name", c.name.as_deref());
}

fn port_range_node(x: &mut Xml, name: &str, r: Option<PortSpan>) {
    if let Some(r) = r {
        x.node(name, |x| {
            x.leaf("from", r.from).leaf("to", r.to);
        });
    }
}

fn acl_rule(x: &mut Xml, r: &Option<AclRuleInfo>) {
    let Some(r) = r else { return };
    x.node("aclRule", |x| {
        x.leaf("cidr", &r.cidr).leaf("egress", r.egress);
        port_range_node(x, "portRange", r.ports);
        x.leaf("protocol", &r.protocol)
            .leaf("ruleAction", &r.rule_action)
            .leaf("ruleNumber", r.rule_number);
    });
}

fn sg_rule(x: &mut Xml, r: &Option<SgRuleInfo>) {
    let Some(r) = r else { return };
    x.node("securityGroupRule", |x| {
        x.opt("cidr", r.cidr.as_deref())
            .leaf("direction", &r.direction)
            .leaf("securityGroupId", &r.security_group_id);
        port_range_node(x, "portRange", r.ports);
        x.opt("prefixListId", r.prefix_list_id.as_deref())
            .leaf("protocol", &r.protocol);
    });
}

fn route(x: &mut Xml, r: &Option<RouteInfo>) {
    let Some(r) = r else { return };
    x.node("routeTableRoute", |x| {
        x.leaf("destinationCidr", &r.destination_cidr)
            .leaf(&r.target_field, &r.target)
            .leaf("origin", &r.origin)
            .leaf("state", &r.state);
    });
}

fn header(x: &mut Xml, name: &str, h: &Option<Header>) {
    let Some(h) = h else { return };
    x.node(name, |x| {
        x.set("destinationAddressSet", [h.destination], |x, a| {
            x.raw(&a.to_string());
        });
        if let Some(p) = h.destination_port {
            x.set("destinationPortRangeSet", [p], |x, p| {
                x.leaf("from", p).leaf("to", p);
            });
        }
        x.leaf("protocol", &h.protocol);
        x.set("sourceAddressSet", [h.source], |x, a| {
            x.raw(&a.to_string());
        });
        if let Some(p) = h.source_port {
            x.set("sourcePortRangeSet", [p], |x, p| {
                x.leaf("from", p).leaf("to", p);
            });
        }
    });
}

fn path_component(x: &mut Xml, c: &PathComponent) {
    x.leaf("sequenceNumber", c.sequence);
    acl_rule(x, &c.acl_rule);
    x.node("component", |x| comp_body(x, &c.component));
    header(x, "outboundHeader", &c.outbound_header);
    header(x, "inboundHeader", &c.inbound_header);
    route(x, &c.route);
    sg_rule(x, &c.sg_rule);
    component(x, "subnet", &c.subnet);
    component(x, "vpc", &c.vpc);
}

fn explanation(x: &mut Xml, e: &Explanation) {
    component(x, "acl", &e.acl);
    acl_rule(x, &e.acl_rule);
    x.opt("address", e.address);
    component(x, "component", &e.component);
    x.opt("direction", e.direction.as_deref())
        .opt("explanationCode", e.code.as_deref());
    component(x, "internetGateway", &e.internet_gateway);
    component(x, "natGateway", &e.nat_gateway);
    component(x, "networkInterface", &e.network_interface);
    route(x, &e.route);
    component(x, "routeTable", &e.route_table);
    if !e.security_groups.is_empty() {
        x.set("securityGroupSet", &e.security_groups, |x, g| {
            comp_body(x, g)
        });
    }
    component(x, "subnet", &e.subnet);
    component(x, "vpc", &e.vpc);
}

fn render_result(x: &mut Xml, r: &AnalysisResult) {
    x.leaf("networkPathFound", r.path_found);
    x.set("forwardPathComponentSet", &r.forward, |x, c| {
        path_component(x, c)
    });
    x.set("returnPathComponentSet", &r.back, |x, c| {
        path_component(x, c)
    });
    x.set("explanationSet", &r.explanations, explanation);
}

fn render_analysis(x: &mut Xml, w: &World, a: &NetworkInsightsAnalysis) {
    render_analysis_head(x, w, a);
    x.leaf("status", a.status());
    match &a.result {
        Ok(r) => render_result(x, r),
        Err(message) => {
            x.leaf("statusMessage", message);
        }
    }
    tag_set(x, w, &a.id);
}

fn describe_analyses(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("NetworkInsightsAnalysisId");
    let path = c.params.get("NetworkInsightsPathId").map(str::to_string);
    let filters = c.params.filters()?;
    let w = c.read()?;
    if let Some(p) = &path
        && !w.network_insights_paths.contains(p)
    {
        return Err(path_not_found(p));
    }
    let mut rows = w.select(
        &w.network_insights_analyses,
        &c.env.region,
        &ids,
        &filters,
        analysis_not_found,
    )?;
    if let Some(p) = &path {
        rows.retain(|a| &a.path_id == p);
    }
    let (page, next) = paginate(c, rows, |a| &a.id)?;
    let mut x = Xml::new();
    x.set("networkInsightsAnalysisSet", page, |x, a| {
        render_analysis(x, &w, a)
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn delete_analysis(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkInsightsAnalysisId")?.to_string();
    c.mutate(|w, env| w.delete_network_insights_analysis(env, &id))?;
    let mut x = Xml::new();
    x.leaf("networkInsightsAnalysisId", id);
    Ok(x)
}
