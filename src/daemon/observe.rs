//! Observing the network from the command line, over the API port:
//!
//! - `GET /_vpclab/trace?src=S&dst=D&proto=P&port=N[&ipv6=1]`: the hop-by-hop walk of
//!   one packet (IPv6 with `ipv6=1` or an IPv6 address at either end) and its reply ([`crate::model::World::walk`], the fabric's own decision path on the
//!   current configuration), as JSON for `vpclab trace`.
//! - `GET /_vpclab/capture?target=T&count=N&duration_ms=M`: a live pcap stream of what
//!   crosses an interface, an instance's interface or a subnet's interfaces, taken from
//!   the account's fabric tap ([`crate::world::capture`]), for `vpclab capture`.
//!
//! Both authenticate like any API call (the learner's own world, its region from the
//! credential scope).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::model::ec2::insights::{
    DEFAULT_SOURCE_PORT, PathComponent, Proto, WalkQuery, explanation_code,
};
use crate::model::{Env, World};
use crate::world::Worlds;
use vpclab_netstack::{DropReason, Outcome, Verdict};

#[derive(Clone)]
struct ObserveState {
    api: AppState,
    worlds: Worlds,
}

/// The routes of `vpclab trace` and `vpclab capture`, to merge into the API router.
pub fn router(api: AppState, worlds: Worlds) -> Router {
    Router::new()
        .route("/_vpclab/trace", get(trace))
        .route("/_vpclab/capture", get(capture))
        .with_state(ObserveState { api, worlds })
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(format!("{body}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn params(parts: &axum::http::request::Parts) -> Vec<(String, String)> {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The caller's account, region and current world.
fn caller(
    st: &ObserveState,
    parts: &axum::http::request::Parts,
) -> Result<(String, String, Arc<World>, crate::model::Timestamp), Box<Response>> {
    let identity = st
        .api
        .authenticate(&crate::api::signed_request(parts), b"")
        .map_err(|e| {
            Box::new(text(
                StatusCode::FORBIDDEN,
                format!("{}: {}", e.code, e.message),
            ))
        })?;
    let now = (st.api.clock)();
    let region = identity.credential.region.clone();
    let env = Env::new(region.clone(), now).with_action("vpclab:Observe");
    let world = st.api.lock().read(&identity.account, &env).map_err(|e| {
        Box::new(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {}", e.code, e.message),
        ))
    })?;
    Ok((identity.account, region, world, now))
}

fn hop_json(c: &PathComponent) -> Value {
    let detail = if let Some(r) = &c.acl_rule {
        let ports = r
            .ports
            .map(|p| format!(" ports {}-{}", p.from, p.to))
            .unwrap_or_default();
        let number = if r.rule_number == 32767 {
            "*".to_string()
        } else {
            r.rule_number.to_string()
        };
        Some(format!(
            "{} rule {number}: {} protocol {}{ports} {} {}",
            if r.egress { "outbound" } else { "inbound" },
            r.rule_action,
            r.protocol,
            if r.egress { "to" } else { "from" },
            r.cidr
        ))
    } else if let Some(r) = &c.sg_rule {
        let ports = r
            .ports
            .map(|p| format!(" ports {}-{}", p.from, p.to))
            .unwrap_or_default();
        let peer = r
            .cidr
            .clone()
            .or_else(|| r.peer_group.clone())
            .or_else(|| r.prefix_list_id.clone())
            .unwrap_or_default();
        Some(format!(
            "{} rule: protocol {}{ports} {} {peer}",
            r.direction,
            r.protocol,
            if r.direction == "egress" {
                "to"
            } else {
                "from"
            }
        ))
    } else {
        c.route
            .as_ref()
            .map(|r| format!("route {} -> {} ({})", r.destination_cidr, r.target, r.state))
    };
    json!({
        "sequence": c.sequence,
        "component": c.component.id,
        "name": c.component.name,
        "action": c.action,
        "rule": detail,
    })
}

/// A remedy in one line, for the drops a learner fixes by adding something. `v6`: the
/// packet was an IPv6 one.
fn hint(r: &DropReason, v6: bool) -> Option<String> {
    Some(match r {
        DropReason::NoRouteV6 { table, dst } => format!(
            "missing route: no IPv6 route in {table} covers {dst}; add one (for the internet, ::/0 to an internet gateway or an egress-only internet gateway)"
        ),
        DropReason::BlackholeV6 { table, route } => format!(
            "the route {route} in {table} cannot carry IPv6 or its target is gone: point it at an internet or egress-only internet gateway"
        ),
        DropReason::EgressOnlyInbound { .. } => "an egress-only internet gateway admits only replies to connections its instances started: for connections from the internet, route ::/0 to an internet gateway".to_string(),
        DropReason::IgwNotAttachedV6 { vpc, .. } => {
            format!("attach an internet gateway to {vpc} (and route ::/0 to it)")
        }
        DropReason::SecurityGroupNoMatch { eni, direction } if v6 => format!(
            "add an {} rule for IPv6 to a security group of {eni} (an IPv6 CIDR such as ::/0 or an address/128: a rule for an IPv4 CIDR never matches IPv6)",
            if *direction == vpclab_netstack::Direction::Inbound {
                "inbound"
            } else {
                "outbound"
            }
        ),
        DropReason::NaclDeny { acl, rule: None, .. } if v6 => format!(
            "no IPv6 rule of network ACL {acl} allows it: add an allow rule with an IPv6 CIDR (replies need ports 1024-65535)"
        ),
        DropReason::NoRoute { table, dst } => format!(
            "missing route: no route in {table} covers {dst}; add one (for the internet, 0.0.0.0/0 to an internet or NAT gateway)"
        ),
        DropReason::Blackhole { table, route } => {
            format!("the route {route} in {table} points at a target that is gone: replace it")
        }
        DropReason::SecurityGroupNoMatch { eni, direction } => format!(
            "add an {} rule to a security group of {eni}",
            if *direction == vpclab_netstack::Direction::Inbound {
                "inbound"
            } else {
                "outbound"
            }
        ),
        DropReason::NaclDeny { acl, rule, .. } => match rule {
            Some(n) => format!("network ACL {acl} rule {n} denies it: change or remove that rule"),
            None => format!(
                "no rule of network ACL {acl} allows it: add an allow rule (replies need ports 1024-65535)"
            ),
        },
        DropReason::IgwNoPublicIp { .. } => {
            "give the instance a public or Elastic IP address".to_string()
        }
        DropReason::PeeringNotTransitive { addr, .. } => format!(
            "peering is not transitive: to reach {addr}, peer its VPC directly with this one and route to that connection"
        ),
        _ => return None,
    })
}

fn verdict_json(v: &Verdict, components: &[PathComponent], v6: bool) -> Value {
    let (outcome, reason, code, remedy) = match &v.outcome {
        Outcome::Deliver(p) => (format!("delivered to {p}"), None, None, None),
        Outcome::Drop(r) => (
            format!("dropped: {r}"),
            Some(r.to_string()),
            explanation_code(r),
            hint(r, v6),
        ),
    };
    json!({
        "hops": components.iter().map(hop_json).collect::<Vec<_>>(),
        "delivered": v.is_delivered(),
        "outcome": outcome,
        "reason": reason,
        "code": code,
        "hint": remedy,
    })
}

async fn trace(State(st): State<ObserveState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let (_, region, w, now) = match caller(&st, &parts) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let params = params(&parts);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(src) = param("src") else {
        return text(StatusCode::BAD_REQUEST, "missing src".into());
    };
    let Some(dst) = param("dst") else {
        return text(StatusCode::BAD_REQUEST, "missing dst".into());
    };
    let proto_text = param("proto").unwrap_or_else(|| "tcp".into());
    let Some(proto) = Proto::parse(&proto_text) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("unknown protocol {proto_text:?}: use tcp, udp or icmp"),
        );
    };
    let port = match param("port").map(|p| p.parse::<u16>()) {
        None => match proto {
            Proto::Udp => 53,
            _ => 22,
        },
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "the port must be a number from 0 to 65535".into(),
            );
        }
    };
    let ipv6 = matches!(param("ipv6").as_deref(), Some("1" | "true"));
    let q = WalkQuery {
        source: src,
        destination: Some(dst),
        source_ip: None,
        destination_ip: None,
        proto,
        source_port: DEFAULT_SOURCE_PORT,
        destination_port: port,
        ipv6,
    };
    let walked = match w.walk(&region, &q, now) {
        Ok(x) => x,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.message),
    };
    let v6 = walked.is_v6();
    let forward = w.path_components(
        &region,
        &walked.forward,
        walked.source.component.as_ref(),
        None,
        v6,
    );
    let back = walked
        .back
        .as_ref()
        .map(|b| (b, w.path_components(&region, b, None, None, v6)));
    let body = json!({
        "source": walked.source.label,
        "destination": walked.destination.label,
        "protocol": proto_text.to_ascii_lowercase(),
        "ip_version": if v6 { 6 } else { 4 },
        "port": (proto != Proto::Icmp).then_some(port),
        "reachable": walked.reachable(),
        "note": walked.note,
        "forward": verdict_json(&walked.forward, &forward, v6),
        "return": back.map(|(b, c)| verdict_json(b, &c, v6)),
    });
    let mut r = Response::new(Body::from(body.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The largest capture a client may ask for, in packets and in time.
const MAX_COUNT: u64 = 1_000_000;
const MAX_DURATION_MS: u64 = 3_600_000;

/// The interfaces a capture target stands for: an interface, an instance's interfaces,
/// or every interface of a subnet.
fn capture_enis(
    w: &World,
    region: &str,
    target: &str,
) -> Result<std::collections::BTreeSet<Arc<str>>, String> {
    let enis: std::collections::BTreeSet<Arc<str>> = if target.starts_with("eni-") {
        let e = w.network_interface(region, target).map_err(|e| e.message)?;
        [Arc::from(e.id.as_str())].into_iter().collect()
    } else if target.starts_with("i-") {
        w.instance(region, target).map_err(|e| e.message)?;
        w.network_interfaces
            .in_region(region)
            .filter(|e| {
                e.attachment
                    .as_ref()
                    .is_some_and(|a| a.instance_id == target)
            })
            .map(|e| Arc::from(e.id.as_str()))
            .collect()
    } else if target.starts_with("subnet-") {
        if w.subnets.get(target).is_none_or(|s| s.region != region) {
            return Err(crate::model::tags::not_found_any(target).message);
        }
        w.network_interfaces
            .in_region(region)
            .filter(|e| e.subnet_id == target)
            .map(|e| Arc::from(e.id.as_str()))
            .collect()
    } else {
        return Err(format!(
            "{target:?} is not a network interface (eni-…), instance (i-…) or subnet (subnet-…)"
        ));
    };
    if enis.is_empty() {
        return Err(format!("{target} has no network interface to capture on"));
    }
    Ok(enis)
}

/// The pcap bytes of one packet (libpcap record header and data), written by smoltcp's
/// pcap sink.
fn pcap_record(c: &crate::world::capture::Captured) -> Vec<u8> {
    use smoltcp::phy::PcapSink;
    let micros =
        c.at.duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
    let mut out = Vec::with_capacity(16 + c.data.len());
    out.packet(smoltcp::time::Instant::from_micros(micros), &c.data);
    out
}

/// The libpcap global header for raw IPv4 packets (LINKTYPE_RAW).
pub fn pcap_header() -> Vec<u8> {
    use smoltcp::phy::{PcapLinkType, PcapSink};
    let mut out = Vec::with_capacity(24);
    out.global_header(PcapLinkType::Ip);
    out
}

async fn capture(State(st): State<ObserveState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let (account, region, w, _) = match caller(&st, &parts) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let params = params(&parts);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(target) = param("target") else {
        return text(StatusCode::BAD_REQUEST, "missing target".into());
    };
    let number = |k: &str, max: u64| -> Result<Option<u64>, String> {
        match param(k).map(|v| v.parse::<u64>()) {
            None => Ok(None),
            Some(Ok(n)) if n <= max => Ok(Some(n)),
            _ => Err(format!("{k} must be a number from 0 to {max}")),
        }
    };
    let count = match number("count", MAX_COUNT) {
        Ok(n) => n.unwrap_or(MAX_COUNT),
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let duration = match number("duration_ms", MAX_DURATION_MS) {
        Ok(n) => std::time::Duration::from_millis(n.unwrap_or(MAX_DURATION_MS)),
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let enis = match capture_enis(&w, &region, &target) {
        Ok(e) => e,
        Err(e) => return text(StatusCode::NOT_FOUND, e),
    };
    let Some(tap) = st.worlds.get(&account).and_then(|aw| aw.tap()) else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the world of this account is not running".into(),
        );
    };
    let sub = tap.subscribe(enis);
    let deadline = tokio::time::Instant::now() + duration;
    struct S {
        sub: crate::world::capture::Subscription,
        left: u64,
        deadline: tokio::time::Instant,
        header: bool,
    }
    let state = S {
        sub,
        left: count,
        deadline,
        header: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if !s.header {
            s.header = true;
            return Some((
                Ok::<_, std::io::Error>(bytes::Bytes::from(pcap_header())),
                s,
            ));
        }
        if s.left == 0 {
            return None;
        }
        let c = tokio::time::timeout_at(s.deadline, s.sub.rx.recv())
            .await
            .ok()
            .flatten()?;
        s.left -= 1;
        Some((Ok(bytes::Bytes::from(pcap_record(&c))), s))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.tcpdump.pcap"),
    );
    r
}
