//! Reachability: "why can't A reach B?" answered from the fabric's own decision path.
//!
//! The page compiles the account's world into the topology the fabric runs
//! ([`crate::model::ec2::compile`], what the world runtime does on every change) and asks
//! [`Fabric::explain_round_trip`], the walk that decides real packets and the one the
//! lab's `reach` check uses, for the forward path of a new connection and, when it
//! arrives, its reply. Each hop is shown with the resource and rule that acted; the hop
//! that dropped the packet is highlighted and links to its rule. Like AWS's Reachability
//! Analyzer, this analyses configuration: no packet is sent and no connection state is
//! changed.

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use vpclab_netstack::internet::LEARNER_ADDR;
use vpclab_netstack::{DropReason, Fabric, Flow, Hop, HopAction, Outcome, Port, RuleRef, Verdict};

use super::pages::{self, cell, idc, name_of};
use super::{Console, Ctx, Nav, error_page, page};
use crate::model::ec2::instance::InstanceState;
use crate::model::{Filterable, World};

/// A host on the internet that is not the learner (a documentation address, as the
/// lab's checks use for "the internet").
pub const INTERNET_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);

/// One analysis: what was asked and what the fabric answered.
pub(crate) struct Analysis {
    pub what: String,
    pub forward: Verdict,
    pub back: Option<Verdict>,
    /// A remark about the ends (an instance that is stopped).
    pub note: Option<String>,
}

/// Where a flow starts: its address, its ingress port, and whether it is inside a VPC.
fn source(
    w: &World,
    region: &str,
    from: &str,
    now: crate::model::Timestamp,
) -> Result<(Ipv4Addr, Port, bool, String), String> {
    match from {
        "me" => Ok((
            LEARNER_ADDR,
            Port::Internet,
            false,
            format!("your computer ({LEARNER_ADDR})"),
        )),
        "internet" => Ok((
            INTERNET_ADDR,
            Port::Internet,
            false,
            format!("the internet ({INTERNET_ADDR})"),
        )),
        id if id.starts_with("i-") => {
            let i = w.instance(region, id).map_err(|e| e.message)?;
            let (state, _) = i.settled(now);
            if state != InstanceState::Running {
                return Err(format!(
                    "instance {id} is {}: only a running instance sends packets",
                    state.name()
                ));
            }
            let eni = i
                .primary_eni
                .clone()
                .ok_or_else(|| format!("instance {id} has no network interface"))?;
            // This page walks IPv4 flows; `vpclab trace -6` covers IPv6-only instances.
            let ip = i
                .ipv4()
                .ok_or_else(|| format!("instance {id} has no IPv4 address (IPv6-only subnet)"))?;
            Ok((
                ip,
                Port::Eni(Arc::from(eni.as_str())),
                true,
                format!("instance {id} ({ip})"),
            ))
        }
        id if id.starts_with("eni-") => {
            let e = w.network_interface(region, id).map_err(|e| e.message)?;
            let ip = e
                .ipv4()
                .ok_or_else(|| format!("interface {id} has no IPv4 address (IPv6-only subnet)"))?;
            Ok((
                ip,
                Port::Eni(Arc::from(e.id.as_str())),
                true,
                format!("interface {id} ({ip})"),
            ))
        }
        other => Err(format!("unknown source {other:?}")),
    }
}

/// Where a flow goes: an instance's private address from inside a VPC, its public
/// address from outside; or an address as typed.
fn destination(
    w: &World,
    region: &str,
    to: &str,
    to_ip: &str,
    inside: bool,
    now: crate::model::Timestamp,
) -> Result<(Ipv4Addr, Option<String>), String> {
    if to.starts_with("i-") {
        let i = w.instance(region, to).map_err(|e| e.message)?;
        let (state, _) = i.settled(now);
        let note = (state != InstanceState::Running).then(|| {
            format!(
                "instance {to} is {}: even where the network lets packets through, nothing answers",
                state.name()
            )
        });
        if inside {
            let ip = i
                .ipv4()
                .ok_or_else(|| format!("instance {to} has no IPv4 address (IPv6-only subnet)"))?;
            return Ok((ip, note));
        }
        let public = i
            .filter_values(w, "ip-address")
            .and_then(|v| v.first().and_then(|s| s.parse().ok()))
            .ok_or_else(|| format!("instance {to} has no public IP address, so nothing outside its VPC can reach it"))?;
        return Ok((public, note));
    }
    to_ip
        .trim()
        .parse()
        .map(|a| (a, None))
        .map_err(|_| format!("{to_ip:?} is not an IPv4 address"))
}

/// What the learner asked: source, destination (an instance id, or `ip` and an
/// address), protocol and port.
pub(crate) struct Question<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub to_ip: &'a str,
    pub proto: &'a str,
    pub port: u16,
}

/// Runs the analysis on a fabric compiled from the account's world.
pub(crate) fn analyse(
    w: &World,
    region: &str,
    q: &Question,
    now: crate::model::Timestamp,
) -> Result<Analysis, String> {
    let Question {
        from,
        to,
        to_ip,
        proto,
        port,
    } = *q;
    let (src, ingress, inside, src_name) = source(w, region, from, now)?;
    let (dst, note) = destination(w, region, to, to_ip, inside, now)?;
    let flow = match proto {
        "udp" => Flow::udp(src, 40001, dst, port),
        "icmp" => Flow::ping(src, dst, 7),
        _ => Flow::tcp_syn(src, 40001, dst, port),
    };
    let topology = crate::model::ec2::compile::compile(w)
        .map_err(|e| format!("the network does not compile: {e}"))?;
    let fabric = Fabric::new(Arc::new(topology));
    let (forward, back) =
        fabric.explain_round_trip(smoltcp::time::Instant::from_millis(now.0), &ingress, &flow);
    let what = match proto {
        "icmp" => format!("ping from {src_name} to {dst}"),
        p => format!("{}/{port} from {src_name} to {dst}", p.to_uppercase()),
    };
    Ok(Analysis {
        what,
        forward,
        back,
        note,
    })
}

/// The page of the rule (or resource) behind a hop.
fn hop_link(h: &Hop) -> Option<String> {
    let base = pages::href_of(&h.component)?;
    Some(match (&h.action, &h.rule) {
        (HopAction::NaclDeny(d) | HopAction::NaclAllow(d), Some(RuleRef::NaclEntry(n))) => {
            format!(
                "{base}#{}",
                pages::nacl_anchor(d.to_string() == "outbound", Some(i32::from(*n)))
            )
        }
        (HopAction::NaclDeny(d) | HopAction::NaclAllow(d), Some(RuleRef::NaclDefault)) => {
            format!(
                "{base}#{}",
                pages::nacl_anchor(d.to_string() == "outbound", None)
            )
        }
        (
            _,
            Some(RuleRef::SecurityGroupRule {
                group,
                rule_id: Some(r),
                ..
            }),
        ) => {
            format!("{}#{r}", pages::href_of(group).unwrap_or(base))
        }
        (_, Some(RuleRef::Route(net))) => {
            format!("{base}#route-{}", net.to_string().replace(['/', '.'], "-"))
        }
        _ => base,
    })
}

/// The learner-facing reason of a drop, with the security groups named.
pub(crate) fn reason(w: &World, r: &DropReason) -> String {
    if let DropReason::SecurityGroupNoMatch { eni, direction } = r
        && let Some(e) = w.network_interfaces.get(eni)
    {
        let groups: Vec<String> = e
            .groups
            .iter()
            .map(|g| {
                let n = w
                    .security_groups
                    .get(g)
                    .map(|s| s.group_name.clone())
                    .unwrap_or_default();
                format!("{g} ({n})")
            })
            .collect();
        return format!(
            "no {direction} rule of security group {} on {eni} allows it (security groups only allow; what no rule allows is dropped)",
            groups.join(", ")
        );
    }
    r.to_string()
}

fn hops(w: &World, v: &Verdict, label: &str) -> Markup {
    let decisive = v.hops.len().saturating_sub(1);
    let dropped = !v.is_delivered();
    html! {
        h3 { (label) }
        ol.hops {
            @for (i, h) in v.hops.iter().enumerate() {
                @let is_drop = dropped && i == decisive;
                li.decisive[is_drop] {
                    span.what { @if let Some(href) = hop_link(h) { a href=(href) { (h.component) } } @else { (h.component) } }
                    @let n = name_of(w, &h.component); @if !n.is_empty() { span.muted { (n) } br; }
                    (h.action)
                    @if let Some(r) = &h.rule { " by " (r) }
                }
            }
            li.decisive[dropped && v.hops.is_empty()] {
                span.what { (match &v.outcome { Outcome::Deliver(_) => "Delivered", Outcome::Drop(_) => "Dropped" }) }
                (match &v.outcome { Outcome::Deliver(p) => p.to_string(), Outcome::Drop(r) => reason(w, r) })
            }
        }
    }
}

fn result(w: &World, a: &Analysis) -> Markup {
    let forward_drop = a.forward.drop_reason();
    let back_drop = a.back.as_ref().and_then(|b| b.drop_reason());
    html! {
        section #result aria-labelledby="result-h" {
            h2 #result-h { "Result: " (a.what) }
            @match (forward_drop, back_drop) {
                (Some(r), _) => p.alert role="status" { strong { "Not reachable. " } (reason(w, r)) },
                (None, Some(r)) => p.alert role="status" { strong { "Not reachable: the packet arrives but the reply is dropped. " } (reason(w, r))
                    " (network ACLs are stateless: the reply needs its own rule, usually for ports 1024-65535)." },
                (None, None) => p.notice role="status" { strong { "Reachable. " } "The network delivers the packet and lets the reply back." },
            }
            @if let Some(n) = &a.note { p.alert { (n) } }
            (hops(w, &a.forward, "Forward path"))
            @if let Some(b) = &a.back { (hops(w, b, "Return path (the reply)")) }
        }
    }
}

pub(crate) async fn page_handler(c: &Console, ctx: &Ctx, q: &super::FormData) -> Response {
    let w = match c.world(ctx) {
        Ok(w) => w,
        Err(e) => return error_page(ctx, &e),
    };
    let now = c.now();
    let from = q.get("from").unwrap_or("me");
    let to = q.get("to").unwrap_or("");
    let to_ip = q.get("to_ip").unwrap_or("");
    let proto = match q.get("proto") {
        Some("udp") => "udp",
        Some("icmp") => "icmp",
        _ => "tcp",
    };
    let port_text = q.get("port").unwrap_or("22");
    let asked = q.get("to").is_some();
    let outcome: Option<Result<Analysis, String>> = asked.then(|| {
        let port: u16 = port_text
            .trim()
            .parse()
            .map_err(|_| format!("port {port_text:?} is not a number from 0 to 65535"))?;
        analyse(
            &w,
            &ctx.region,
            &Question {
                from,
                to,
                to_ip,
                proto,
                port,
            },
            now,
        )
    });
    let instances: Vec<_> = w
        .instances
        .in_region(&ctx.region)
        .filter(|i| i.settled(now).0 != InstanceState::Terminated)
        .collect();
    let label = |id: &str| {
        let n = name_of(&w, id);
        if n.is_empty() {
            id.to_string()
        } else {
            format!("{n} ({id})")
        }
    };
    let body = html! {
        h1 { "Reachability" }
        p { "Pick a source, a destination and a port. The fabric that forwards every packet in this world walks a new connection "
            "(and its reply) through security groups, network ACLs, route tables and gateways, and says where it stops and why. "
            "No packet is sent." }
        form.stack method="get" action="/console/reach" {
            div.row {
                div.field {
                    label for="reach-from" { "Source" }
                    select #reach-from name="from" {
                        option value="me" selected[from == "me"] { "My computer (" (LEARNER_ADDR) ")" }
                        option value="internet" selected[from == "internet"] { "The internet (" (INTERNET_ADDR) ")" }
                        @for i in &instances { option value=(i.id) selected[from == i.id] { "Instance " (label(&i.id)) } }
                    }
                }
                div.field {
                    label for="reach-to" { "Destination" }
                    select #reach-to name="to" {
                        @for i in &instances { option value=(i.id) selected[to == i.id] { "Instance " (label(&i.id)) } }
                        option value="ip" selected[to == "ip"] { "An IPv4 address (below)" }
                    }
                }
                div.field {
                    label for="reach-to_ip" { "Address " span.hint { "(when the destination is an address)" } }
                    input #reach-to_ip name="to_ip" value=(to_ip) placeholder="10.0.1.10";
                }
            }
            div.row {
                div.field {
                    label for="reach-proto" { "Protocol" }
                    select #reach-proto name="proto" {
                        @for (v, l) in [("tcp", "TCP"), ("udp", "UDP"), ("icmp", "ICMP (ping)")] { option value=(v) selected[proto == v] { (l) } }
                    }
                }
                div.field {
                    label for="reach-port" { "Destination port" }
                    input #reach-port name="port" value=(port_text) inputmode="numeric" size="6";
                }
                div { button type="submit" { "Analyse path" } }
            }
        }
        @match &outcome {
            Some(Ok(a)) => (result(&w, a)),
            Some(Err(e)) => p.alert role="alert" { (e) },
            None => @if instances.is_empty() { p.muted { "There is no instance in " (ctx.region) " yet: " a href="/console/launch" { "launch one" } "." } },
        }
        p.hint { "Instances: " @for (n, i) in instances.iter().enumerate() { @if n > 0 { ", " } (cell(&idc(&i.id))) } }
    };
    page(ctx, "Reachability", Nav::Reach, body)
}

pub(crate) async fn page_route(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = pages::query_form(q.as_deref());
    page_handler(&c, &ctx, &q).await
}
