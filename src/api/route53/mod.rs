//! The Route 53 REST-XML API under `/2013-04-01/`: hosted zones, record-set change
//! batches, change status and VPC associations, shaped as botocore's
//! `route53/2013-04-01/service-2.json` describes them.
//!
//! Requests are routed by method and path, bodies parsed with [`crate::api::xml::read`],
//! the model called through [`Control::mutate`] (one SQLite transaction per change,
//! committed before the answer) and the result rendered in the namespace
//! `https://route53.amazonaws.com/doc/2013-04-01/`. Errors are
//! `<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message></Error>
//! <RequestId>…</RequestId></ErrorResponse>`.
//!
//! Health checks are in [`health`]. Not implemented: traffic policies, delegation sets, query logging,
//! DNSSEC, tags (each answers `NotImplemented`, see docs/fidelity.md).

use std::str::FromStr;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::api::xml::read::{self, Element};
use crate::api::xml::{Xml, escape};
use crate::api::{AppState, MAX_BODY, sigv4};

pub mod health;
use crate::model::route53::{
    ChangeAction, CreateZoneInput, HostedZone, RecordChange, ResourceRecordSet, ZoneVpc, bare_id,
    invalid_input, normalize_name, render_name, rrset_order, zone_name_order,
};
use crate::model::{ApiError, ApiResult, Control, Env, World};

/// Route 53's XML namespace.
pub const ROUTE53_XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// Route 53's quotas on one ChangeResourceRecordSets request ("Quotas", API requests):
/// at most 1,000 `ResourceRecord` elements and 32,000 characters in all `Value`
/// elements, each counted twice under an `UPSERT`.
pub const MAX_BATCH_RECORDS: usize = 1000;
pub const MAX_BATCH_VALUE_CHARS: usize = 32_000;

/// Largest page ListHostedZones and ListResourceRecordSets return.
const MAX_ITEMS_ZONES: usize = 100;
const MAX_ITEMS_RRSETS: usize = 300;

/// The Route 53 endpoint: everything under `/2013-04-01`.
pub(crate) async fn endpoint(state: AppState, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let reply = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => handle(&state, &crate::api::signed_request(&parts), &bytes),
        Err(_) => {
            let e = invalid_input(format!(
                "The request body exceeds the maximum allowed size of {MAX_BODY} bytes."
            ))
            .with_status(413);
            error_reply(&e, &state.request_id())
        }
    };
    let mut resp = Response::new(Body::from(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(&reply.request_id) {
        headers.insert("x-amzn-RequestId", v);
    }
    if let Some(location) = reply.location
        && let Ok(v) = HeaderValue::from_str(&location)
    {
        headers.insert(header::LOCATION, v);
    }
    resp
}

/// A rendered answer: HTTP status, XML body, and the `Location` of a created zone.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
    pub request_id: String,
}

/// Handles one Route 53 request from its parts. Pure with respect to HTTP, so tests can
/// call it without a socket.
pub fn handle(state: &AppState, req: &sigv4::SignedRequest, body: &[u8]) -> Reply {
    let request_id = state.request_id();
    match run(state, req, body) {
        Ok((status, op, inner, location)) => Reply {
            status,
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{op}Response xmlns=\"{ROUTE53_XMLNS}\">{inner}</{op}Response>"
            ),
            location,
            request_id,
        },
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(code = %e.code, "route53 internal error");
            }
            error_reply(&e, &request_id)
        }
    }
}

fn error_reply(e: &ApiError, request_id: &str) -> Reply {
    let kind = if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    Reply {
        status: e.status,
        body: format!(
            "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"{ROUTE53_XMLNS}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            escape(&e.code),
            escape(&e.message)
        ),
        location: None,
        request_id: request_id.to_owned(),
    }
}

/// (status, operation name, inner XML, Location header)
pub(super) type Answer = (u16, &'static str, String, Option<String>);

fn run(state: &AppState, req: &sigv4::SignedRequest, body: &[u8]) -> ApiResult<Answer> {
    // SigV4 as every endpoint does it (`--auth strict` verifies the signature): the
    // access key selects the account; Route 53 signs in us-east-1.
    let identity = state.authenticate(req, body)?;
    let account = identity.account.as_str();
    let (method, path, query) = (req.method.as_str(), req.path.as_str(), req.query.as_deref());
    let q = Query::parse(query);
    let rest = path
        .strip_prefix("/2013-04-01")
        .unwrap_or(path)
        .trim_matches('/');
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let env = Env::new(identity.credential.region.clone(), (state.clock)())
        .with_action(operation(method, &segments));
    let mut control = state.lock();
    // Route 53 resources: a hosted zone (`arn:aws:route53:::hostedzone/ID`) or `*`.
    let resource = match segments.as_slice() {
        ["hostedzone", id, ..] => format!("arn:aws:route53:::hostedzone/{id}"),
        ["healthcheck", id, ..] => format!("arn:aws:route53:::healthcheck/{id}"),
        _ => "*".to_string(),
    };
    state
        .authorize(
            &control,
            &identity,
            &format!("route53:{}", env.action),
            &resource,
            req,
        )
        .map_err(|d| d.query())?;
    let c = &mut Ctx {
        control: &mut control,
        account,
    };
    match (method, segments.as_slice()) {
        ("POST", ["hostedzone"]) => create_hosted_zone(c, &env, body),
        ("GET", ["hostedzone"]) => list_hosted_zones(c, &env, &q),
        ("GET", ["hostedzonesbyname"]) => list_hosted_zones_by_name(c, &env, &q),
        ("GET", ["hostedzonecount"]) => hosted_zone_count(c, &env),
        ("GET", ["hostedzone", id]) => get_hosted_zone(c, &env, id),
        ("DELETE", ["hostedzone", id]) => {
            let change = mutate(c, &env, |w, env| w.delete_hosted_zone(env, id))?;
            Ok(ok("DeleteHostedZone", change_info(&change, "PENDING")))
        }
        ("POST", ["hostedzone", id, "rrset"]) => change_record_sets(c, &env, id, body),
        ("GET", ["hostedzone", id, "rrset"]) => list_record_sets(c, &env, id, &q),
        ("POST", ["hostedzone", id, "associatevpc"]) => {
            let (vpc, _) = vpc_request(body, "AssociateVPCWithHostedZoneRequest", &env)?;
            let change = mutate(c, &env, |w, env| w.associate_vpc(env, id, vpc))?;
            Ok(ok(
                "AssociateVPCWithHostedZone",
                change_info(&change, "PENDING"),
            ))
        }
        ("POST", ["hostedzone", id, "disassociatevpc"]) => {
            let (vpc, _) = vpc_request(body, "DisassociateVPCFromHostedZoneRequest", &env)?;
            let change = mutate(c, &env, |w, env| w.disassociate_vpc(env, id, vpc))?;
            Ok(ok(
                "DisassociateVPCFromHostedZone",
                change_info(&change, "PENDING"),
            ))
        }
        ("GET", ["change", id]) => {
            let world = c.read(&env)?;
            let change = world.route53_change(id)?.clone();
            // Changes take effect when acknowledged: vpclab's DNS answers from the new
            // state at once, so every change is already in sync.
            Ok(ok("GetChange", change_info(&change, "INSYNC")))
        }
        (_, [first, ..])
            if matches!(
                *first,
                "healthcheck" | "healthcheckcount" | "checkeripranges"
            ) =>
        {
            health::route(c, &env, &state.health, method, &segments, &q, body).unwrap_or_else(
                || {
                    Err(invalid_input(format!(
                        "The resource {method} {path} is not part of the Route 53 API."
                    ))
                    .with_status(404))
                },
            )
        }
        (_, [first, ..])
            if matches!(
                *first,
                "trafficpolicy"
                    | "trafficpolicies"
                    | "delegationset"
                    | "queryloggingconfig"
                    | "tags"
                    | "keysigningkey"
                    | "cidrcollection"
            ) =>
        {
            Err(ApiError::new(
                "NotImplemented",
                format!("vpclab does not emulate the Route 53 /{first} API."),
            )
            .with_status(501))
        }
        _ => Err(invalid_input(format!(
            "The resource {method} {path} is not part of the Route 53 API."
        ))
        .with_status(404)),
    }
}

/// The Route 53 operation a request addresses, as its change events name it.
fn operation(method: &str, segments: &[&str]) -> &'static str {
    match (method, segments) {
        ("POST", ["hostedzone"]) => "CreateHostedZone",
        ("DELETE", ["hostedzone", _]) => "DeleteHostedZone",
        ("POST", ["hostedzone", _, "rrset"]) => "ChangeResourceRecordSets",
        ("POST", ["hostedzone", _, "associatevpc"]) => "AssociateVPCWithHostedZone",
        ("POST", ["hostedzone", _, "disassociatevpc"]) => "DisassociateVPCFromHostedZone",
        ("POST", ["healthcheck"]) => "CreateHealthCheck",
        ("POST", ["healthcheck", _]) => "UpdateHealthCheck",
        ("DELETE", ["healthcheck", _]) => "DeleteHealthCheck",
        ("GET", _) => "route53:Read",
        _ => "route53:Request",
    }
}

pub(super) fn ok(op: &'static str, inner: String) -> Answer {
    (200, op, inner, None)
}

/// The account's control for one request.
pub(super) struct Ctx<'a> {
    control: &'a mut Control,
    account: &'a str,
}

impl Ctx<'_> {
    pub(super) fn read(&mut self, env: &Env) -> ApiResult<std::sync::Arc<World>> {
        self.control.read(self.account, env)
    }
}

pub(super) fn mutate<R>(
    c: &mut Ctx<'_>,
    env: &Env,
    f: impl FnOnce(&mut World, &Env) -> ApiResult<R>,
) -> ApiResult<R> {
    c.control.mutate(c.account, env, false, f)
}

/// The query string, decoded.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `marker`: where a listing resumes, the id a previous page's `NextMarker` gave.
    /// Route 53 documents the marker as that id (at most 64 characters); anything not
    /// shaped like one of `what`'s ids is `InvalidInput`, not an empty page.
    pub(super) fn marker(
        &self,
        what: &str,
        id_shaped: fn(&str) -> bool,
    ) -> ApiResult<Option<&str>> {
        let Some(m) = self.get("marker") else {
            return Ok(None);
        };
        if m.chars().count() > 64 {
            return Err(invalid_input(format!(
                "1 validation error detected: Value '{m}' at 'marker' failed to satisfy constraint: Member must have length less than or equal to 64"
            )));
        }
        if !id_shaped(m) {
            return Err(invalid_input(format!(
                "Invalid marker '{m}': a marker is the {what} ID a previous response gave as NextMarker."
            )));
        }
        Ok(Some(m))
    }

    /// `maxitems`: a positive integer, capped at `max`.
    pub(super) fn max_items(&self, max: usize) -> ApiResult<usize> {
        match self.get("maxitems") {
            None => Ok(max),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n.min(max)),
                _ => Err(invalid_input(format!(
                    "1 validation error detected: Value '{v}' at 'maxItems' failed to satisfy constraint: Member must be a positive integer"
                ))),
            },
        }
    }
}

pub(super) fn body_root(body: &[u8], expected: &str) -> ApiResult<Element> {
    let root = read::parse(body)?;
    if root.name != expected {
        return Err(invalid_input(format!(
            "Invalid XML ; the root element must be {expected}, not {}",
            root.name
        )));
    }
    Ok(root)
}

pub(super) fn parse_bool(field: &str, text: &str) -> ApiResult<bool> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(invalid_input(format!(
            "Invalid XML ; cvc-datatype-valid: '{other}' is not a valid value for 'boolean' ({field})."
        ))),
    }
}

fn parse_vpc(e: &Element, env: &Env) -> ApiResult<ZoneVpc> {
    let vpc_id = e
        .text_of("VPCId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid_input("Invalid request: the VPC element needs a VPCId"))?;
    let region = e.text_of("VPCRegion").unwrap_or(&env.region);
    Ok(ZoneVpc {
        region: region.to_owned(),
        vpc_id: vpc_id.to_owned(),
    })
}

fn vpc_request(body: &[u8], root: &str, env: &Env) -> ApiResult<(ZoneVpc, Option<String>)> {
    let root = body_root(body, root)?;
    let vpc = root
        .child("VPC")
        .ok_or_else(|| invalid_input("Invalid request: missing VPC"))?;
    Ok((
        parse_vpc(vpc, env)?,
        root.text_of("Comment").map(str::to_owned),
    ))
}

// ---------------------------------------------------------------------------
// Hosted zones
// ---------------------------------------------------------------------------

fn create_hosted_zone(c: &mut Ctx<'_>, env: &Env, body: &[u8]) -> ApiResult<Answer> {
    let root = body_root(body, "CreateHostedZoneRequest")?;
    let config = root.child("HostedZoneConfig");
    let private_zone = config
        .and_then(|c| c.text_of("PrivateZone"))
        .map(|t| parse_bool("PrivateZone", t))
        .transpose()?;
    let input = CreateZoneInput {
        name: root.text_of("Name").unwrap_or_default().to_owned(),
        caller_reference: root
            .text_of("CallerReference")
            .unwrap_or_default()
            .to_owned(),
        comment: config.and_then(|c| c.text_of("Comment")).map(str::to_owned),
        private_zone,
        vpc: root.child("VPC").map(|v| parse_vpc(v, env)).transpose()?,
    };
    let (zone, change) = mutate(c, env, |w, env| w.create_hosted_zone(env, input))?;
    let mut x = Xml::new();
    hosted_zone_xml(&mut x, &zone);
    x.raw(&change_info(&change, "PENDING"));
    if zone.private {
        if let Some(vpc) = zone.vpcs.first() {
            x.node("VPC", |x| {
                x.leaf("VPCRegion", &vpc.region).leaf("VPCId", &vpc.vpc_id);
            });
        }
    } else {
        delegation_set_xml(&mut x, &zone);
    }
    let location = format!(
        "https://route53.amazonaws.com/2013-04-01/hostedzone/{}",
        zone.id
    );
    Ok((201, "CreateHostedZone", x.finish(), Some(location)))
}

fn get_hosted_zone(c: &mut Ctx<'_>, env: &Env, id: &str) -> ApiResult<Answer> {
    let world = c.read(env)?;
    let zone = world.hosted_zone(id)?;
    let mut x = Xml::new();
    hosted_zone_xml(&mut x, zone);
    if zone.private {
        x.node("VPCs", |x| {
            for vpc in &zone.vpcs {
                x.node("VPC", |x| {
                    x.leaf("VPCRegion", &vpc.region).leaf("VPCId", &vpc.vpc_id);
                });
            }
        });
    } else {
        delegation_set_xml(&mut x, zone);
    }
    Ok(ok("GetHostedZone", x.finish()))
}

fn list_hosted_zones(c: &mut Ctx<'_>, env: &Env, q: &Query) -> ApiResult<Answer> {
    let world = c.read(env)?;
    let max = q.max_items(MAX_ITEMS_ZONES)?;
    let marker = q.marker("hosted zone", |m| {
        let id = bare_id(m, "/hostedzone/");
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    })?;
    let wanted = match q.get("hostedzonetype") {
        None => None,
        Some("PrivateHostedZone") => Some(true),
        Some(other) => {
            return Err(invalid_input(format!(
                "Value '{other}' at 'hostedZoneType' failed to satisfy constraint: Member must satisfy enum value set: [PrivateHostedZone]"
            )));
        }
    };
    let zones: Vec<&HostedZone> = world
        .hosted_zones
        .iter()
        .filter(|z| wanted.is_none_or(|p| z.private == p))
        .filter(|z| marker.is_none_or(|m| z.id.as_str() >= bare_id(m, "/hostedzone/")))
        .collect();
    let truncated = zones.len() > max;
    let mut x = Xml::new();
    x.node("HostedZones", |x| {
        for zone in zones.iter().take(max) {
            hosted_zone_xml(x, zone);
        }
    });
    x.opt("Marker", marker);
    x.leaf("IsTruncated", truncated);
    if truncated {
        x.leaf("NextMarker", &zones[max].id);
    }
    x.leaf("MaxItems", max);
    Ok(ok("ListHostedZones", x.finish()))
}

fn list_hosted_zones_by_name(c: &mut Ctx<'_>, env: &Env, q: &Query) -> ApiResult<Answer> {
    let world = c.read(env)?;
    let max = q.max_items(MAX_ITEMS_ZONES)?;
    let start_name = q.get("dnsname").map(normalize_name).transpose()?;
    let start_id = q.get("hostedzoneid").map(|id| bare_id(id, "/hostedzone/"));
    if start_id.is_some() && start_name.is_none() {
        return Err(invalid_input(
            "Invalid request: HostedZoneId requires DNSName to be specified",
        ));
    }
    let mut zones: Vec<&HostedZone> = world.hosted_zones.iter().collect();
    zones.sort_by(|a, b| zone_name_order(&a.name, &b.name).then_with(|| a.id.cmp(&b.id)));
    let zones: Vec<&HostedZone> = zones
        .into_iter()
        .filter(|z| match &start_name {
            None => true,
            Some(name) => match zone_name_order(&z.name, name) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => start_id.is_none_or(|id| z.id.as_str() >= id),
            },
        })
        .collect();
    let truncated = zones.len() > max;
    let mut x = Xml::new();
    x.node("HostedZones", |x| {
        for zone in zones.iter().take(max) {
            hosted_zone_xml(x, zone);
        }
    });
    x.opt("DNSName", q.get("dnsname"));
    x.opt("HostedZoneId", start_id);
    x.leaf("IsTruncated", truncated);
    if truncated {
        x.leaf("NextDNSName", &zones[max].name);
        x.leaf("NextHostedZoneId", &zones[max].id);
    }
    x.leaf("MaxItems", max);
    Ok(ok("ListHostedZonesByName", x.finish()))
}

fn hosted_zone_count(c: &mut Ctx<'_>, env: &Env) -> ApiResult<Answer> {
    let world = c.read(env)?;
    let mut x = Xml::new();
    x.leaf("HostedZoneCount", world.hosted_zones.len());
    Ok(ok("GetHostedZoneCount", x.finish()))
}

fn hosted_zone_xml(x: &mut Xml, zone: &HostedZone) {
    x.node("HostedZone", |x| {
        x.leaf("Id", format!("/hostedzone/{}", zone.id))
            .leaf("Name", render_name(&zone.name))
            .leaf("CallerReference", &zone.caller_reference)
            .node("Config", |x| {
                x.opt("Comment", zone.comment.as_deref())
                    .leaf("PrivateZone", zone.private);
            })
            .leaf("ResourceRecordSetCount", zone.record_sets.len());
    });
}

fn delegation_set_xml(x: &mut Xml, zone: &HostedZone) {
    x.node("DelegationSet", |x| {
        x.node("NameServers", |x| {
            for ns in &zone.name_servers {
                x.leaf("NameServer", ns.trim_end_matches('.'));
            }
        });
    });
}

fn change_info(change: &crate::model::route53::Change, status: &str) -> String {
    let mut x = Xml::new();
    x.node("ChangeInfo", |x| {
        x.leaf("Id", format!("/change/{}", change.id))
            .leaf("Status", status)
            .leaf("SubmittedAt", change.submitted_at.iso())
            .opt("Comment", change.comment.as_deref());
    });
    x.finish()
}

// ---------------------------------------------------------------------------
// Record sets
// ---------------------------------------------------------------------------

fn change_record_sets(c: &mut Ctx<'_>, env: &Env, id: &str, body: &[u8]) -> ApiResult<Answer> {
    let root = body_root(body, "ChangeResourceRecordSetsRequest")?;
    let batch = root
        .child("ChangeBatch")
        .ok_or_else(|| invalid_input("Invalid request: missing ChangeBatch"))?;
    let comment = batch.text_of("Comment").map(str::to_owned);
    let mut changes = Vec::new();
    for change in batch
        .child("Changes")
        .into_iter()
        .flat_map(|c| c.children_named("Change"))
    {
        let action = ChangeAction::from_str(change.text_of("Action").unwrap_or_default())?;
        let set = change
            .child("ResourceRecordSet")
            .ok_or_else(|| invalid_input("Invalid request: a Change needs a ResourceRecordSet"))?;
        changes.push(RecordChange {
            action,
            set: parse_rrset(set)?,
        });
    }
    check_batch_quotas(&changes)?;
    let change = mutate(c, env, |w, env| {
        w.change_record_sets(env, id, comment, changes)
    })?;
    Ok(ok(
        "ChangeResourceRecordSets",
        change_info(&change, "PENDING"),
    ))
}

/// Refuses a batch over Route 53's per-request quotas with `InvalidChangeBatch`, as AWS
/// does, before anything is applied.
fn check_batch_quotas(changes: &[RecordChange]) -> ApiResult<()> {
    let (mut records, mut chars) = (0usize, 0usize);
    for change in changes {
        let weight = if change.action == ChangeAction::Upsert {
            2
        } else {
            1
        };
        records += weight * change.set.records.len();
        chars += weight
            * change
                .set
                .records
                .iter()
                .map(|v| v.chars().count())
                .sum::<usize>();
    }
    let mut problems = Vec::new();
    if records > MAX_BATCH_RECORDS {
        problems.push(format!(
            "Number of records limit of {MAX_BATCH_RECORDS} exceeded."
        ));
    }
    if chars > MAX_BATCH_VALUE_CHARS {
        problems.push(format!(
            "Number of characters in Value elements limit of {MAX_BATCH_VALUE_CHARS} exceeded."
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::model::route53::invalid_change_batch(&problems))
    }
}

fn parse_number<T: FromStr>(field: &str, text: &str) -> ApiResult<T> {
    text.parse().map_err(|_| {
        invalid_input(format!(
            "Invalid XML ; cvc-datatype-valid: '{text}' is not a valid value for {field}."
        ))
    })
}

fn parse_rrset(e: &Element) -> ApiResult<ResourceRecordSet> {
    let text = |name: &str| e.text_of(name).map(str::to_owned);
    let alias = match e.child("AliasTarget") {
        None => None,
        Some(a) => Some(crate::model::route53::AliasTarget {
            hosted_zone_id: a.text_of("HostedZoneId").unwrap_or_default().to_owned(),
            dns_name: a.text_of("DNSName").unwrap_or_default().to_owned(),
            evaluate_target_health: parse_bool(
                "EvaluateTargetHealth",
                a.text_of("EvaluateTargetHealth").unwrap_or("false"),
            )?,
        }),
    };
    if e.child("Region").is_some()
        || e.child("GeoLocation").is_some()
        || e.child("GeoProximityLocation").is_some()
        || e.child("CidrRoutingConfig").is_some()
        || e.child("TrafficPolicyInstanceId").is_some()
    {
        return Err(ApiError::new(
            "NotImplemented",
            "vpclab emulates simple, weighted, failover and multivalue answer routing only (no latency, geolocation, geoproximity, IP-based or traffic-policy records).",
        )
        .with_status(501));
    }
    Ok(ResourceRecordSet {
        name: text("Name").unwrap_or_default(),
        rtype: text("Type").unwrap_or_default(),
        set_identifier: text("SetIdentifier"),
        weight: e
            .text_of("Weight")
            .map(|t| parse_number::<u8>("Weight (0 to 255)", t))
            .transpose()?,
        failover: text("Failover"),
        multi_value_answer: e
            .text_of("MultiValueAnswer")
            .map(|t| parse_bool("MultiValueAnswer", t))
            .transpose()?,
        ttl: e
            .text_of("TTL")
            .map(|t| parse_number::<u32>("TTL", t))
            .transpose()?,
        records: e
            .child("ResourceRecords")
            .into_iter()
            .flat_map(|r| r.children_named("ResourceRecord"))
            .map(|r| r.text_of("Value").unwrap_or_default().to_owned())
            .collect(),
        alias,
        health_check_id: text("HealthCheckId"),
    })
}

fn list_record_sets(c: &mut Ctx<'_>, env: &Env, id: &str, q: &Query) -> ApiResult<Answer> {
    let world = c.read(env)?;
    let zone = world.hosted_zone(id)?;
    let max = q.max_items(MAX_ITEMS_RRSETS)?;
    if q.get("type").is_some() && q.get("name").is_none() {
        return Err(invalid_input(
            "The input is not valid: you must specify StartRecordName when you specify StartRecordType",
        ));
    }
    let start = match q.get("name") {
        None => None,
        Some(name) => Some(ResourceRecordSet {
            name: normalize_name(name)?,
            rtype: q.get("type").unwrap_or_default().to_owned(),
            set_identifier: q.get("identifier").map(str::to_owned),
            ..ResourceRecordSet::default()
        }),
    };
    let sets: Vec<&ResourceRecordSet> = zone
        .record_sets
        .iter()
        .filter(|s| {
            start
                .as_ref()
                .is_none_or(|st| rrset_order(s, st) != std::cmp::Ordering::Less)
        })
        .collect();
    let truncated = sets.len() > max;
    let mut x = Xml::new();
    x.node("ResourceRecordSets", |x| {
        for set in sets.iter().take(max) {
            rrset_xml(x, set);
        }
    });
    x.leaf("IsTruncated", truncated);
    if truncated {
        let next = sets[max];
        x.leaf("NextRecordName", render_name(&next.name))
            .leaf("NextRecordType", &next.rtype)
            .opt("NextRecordIdentifier", next.set_identifier.as_deref());
    }
    x.leaf("MaxItems", max);
    Ok(ok("ListResourceRecordSets", x.finish()))
}

fn rrset_xml(x: &mut Xml, set: &ResourceRecordSet) {
    x.node("ResourceRecordSet", |x| {
        x.leaf("Name", render_name(&set.name))
            .leaf("Type", &set.rtype)
            .opt("SetIdentifier", set.set_identifier.as_deref())
            .opt("Weight", set.weight)
            .opt("Failover", set.failover.as_deref())
            .opt("MultiValueAnswer", set.multi_value_answer)
            .opt("TTL", set.ttl);
        if !set.records.is_empty() {
            x.node("ResourceRecords", |x| {
                for value in &set.records {
                    x.node("ResourceRecord", |x| {
                        x.leaf("Value", value);
                    });
                }
            });
        }
        if let Some(alias) = &set.alias {
            x.node("AliasTarget", |x| {
                x.leaf(
                    "HostedZoneId",
                    bare_id(&alias.hosted_zone_id, "/hostedzone/"),
                )
                .leaf("DNSName", render_name(&normalize_or_keep(&alias.dns_name)))
                .leaf("EvaluateTargetHealth", alias.evaluate_target_health);
            });
        }
        x.opt("HealthCheckId", set.health_check_id.as_deref());
    });
}

fn normalize_or_keep(name: &str) -> String {
    normalize_name(name).unwrap_or_else(|_| name.to_owned())
}

#[cfg(test)]
mod props {
    use std::sync::{Arc, LazyLock, Mutex};

    use proptest::prelude::*;
    // `any` is also axum's routing function, glob-imported with `super::*`.
    use proptest::prelude::any;

    use super::*;
    use crate::model::Timestamp;

    /// One state for every case, holding one zone the paths can name: requests
    /// accumulate, as on a long-running daemon.
    static STATE: LazyLock<(AppState, String, tempfile::TempDir)> = LazyLock::new(|| {
        let dir = tempfile::tempdir().expect("tmp");
        let control = Control::open(&crate::model::store::StorePaths::scratch(dir.path()))
            .expect("state dir");
        let clock: crate::api::Clock = Arc::new(|| Timestamp(1_764_000_000_000));
        let state = AppState::new(Arc::new(Mutex::new(control)), clock);
        let reply = handle(
            &state,
            &request("POST", "/2013-04-01/hostedzone".into(), None),
            b"<CreateHostedZoneRequest><Name>example.com</Name><CallerReference>r</CallerReference></CreateHostedZoneRequest>",
        );
        let zone = reply
            .body
            .split("<Id>/hostedzone/")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .expect("zone created")
            .to_string();
        (state, zone, dir)
    });

    fn request(method: &str, path: String, query: Option<String>) -> sigv4::SignedRequest {
        sigv4::SignedRequest {
            method: method.into(),
            path,
            query,
            headers: vec![(
                "authorization".into(),
                "AWS4-HMAC-SHA256 Credential=test/20251124/us-east-1/route53/aws4_request, SignedHeaders=host, Signature=0".into(),
            )],
        }
    }

    const NAMES: &[&str] = &[
        "CreateHostedZoneRequest",
        "ChangeResourceRecordSetsRequest",
        "CreateHealthCheckRequest",
        "UpdateHealthCheckRequest",
        "AssociateVPCWithHostedZoneRequest",
        "HealthCheckConfig",
        "HostedZoneConfig",
        "ChangeBatch",
        "Changes",
        "Change",
        "Action",
        "ResourceRecordSet",
        "ResourceRecords",
        "ResourceRecord",
        "Value",
        "Name",
        "Type",
        "TTL",
        "Weight",
        "SetIdentifier",
        "Failover",
        "MultiValueAnswer",
        "AliasTarget",
        "HostedZoneId",
        "DNSName",
        "EvaluateTargetHealth",
        "HealthCheckId",
        "CallerReference",
        "Comment",
        "PrivateZone",
        "VPC",
        "VPCId",
        "VPCRegion",
        "IPAddress",
        "Port",
        "ResourcePath",
        "FullyQualifiedDomainName",
        "SearchString",
        "RequestInterval",
        "FailureThreshold",
        "ChildHealthChecks",
        "ChildHealthCheck",
        "HealthThreshold",
        "Inverted",
        "Disabled",
    ];

    const TEXTS: &[&str] = &[
        "",
        "CREATE",
        "UPSERT",
        "DELETE",
        "A",
        "AAAA",
        "CNAME",
        "TXT",
        "MX",
        "SOA",
        "NS",
        "HTTP",
        "TCP",
        "CALCULATED",
        "PRIMARY",
        "60",
        "-1",
        "4294967296",
        "true",
        "false",
        "192.0.2.1",
        "example.com",
        "www.example.com.",
        "*.example.com",
        "\"txt\"",
        "10 mx.example.com.",
        "vpc-00000000",
        "us-east-1",
        "Z0000000000000000000A",
        "/",
    ];

    const ROOTS: &[&str] = &[
        "CreateHostedZoneRequest",
        "ChangeResourceRecordSetsRequest",
        "CreateHealthCheckRequest",
        "UpdateHealthCheckRequest",
        "AssociateVPCWithHostedZoneRequest",
        "DisassociateVPCFromHostedZoneRequest",
    ];

    /// Route 53 request documents built from Route 53's own element names, nested at
    /// random, with plausible and implausible text.
    fn document() -> impl Strategy<Value = String> {
        use proptest::sample::select;
        let text = prop_oneof![
            4 => select(TEXTS).prop_map(str::to_string),
            1 => "[a-z0-9.*\\-]{0,20}",
        ];
        let leaf = (select(NAMES), text).prop_map(|(n, t)| format!("<{n}>{t}</{n}>"));
        let tree = leaf.prop_recursive(6, 64, 6, |inner| {
            (select(NAMES), proptest::collection::vec(inner, 0..6))
                .prop_map(|(n, kids)| format!("<{n}>{}</{n}>", kids.concat()))
        });
        (select(ROOTS), proptest::collection::vec(tree, 0..5))
            .prop_map(|(n, kids)| format!("<{n}>{}</{n}>", kids.concat()))
    }

    /// Paths of the API's own routes (the zone is the state's), and random ones.
    fn path() -> impl Strategy<Value = String> {
        use proptest::sample::select;
        let zone = STATE.1.clone();
        let known = select(
            &[
                "hostedzone",
                "hostedzone/{Z}",
                "hostedzone/{Z}/rrset",
                "hostedzone/{Z}/rrset/",
                "hostedzone/{Z}/associatevpc",
                "hostedzone/{Z}/disassociatevpc",
                "hostedzonesbyname",
                "hostedzonecount",
                "healthcheck",
                "healthcheckcount",
                "healthcheck/00000000-0000-0000-0000-000000000000",
                "healthcheck/00000000-0000-0000-0000-000000000000/status",
                "change/C0000000000000000000A",
            ][..],
        )
        .prop_map(move |p| p.replace("{Z}", &zone));
        let random = proptest::collection::vec(
            select(
                &[
                    "hostedzone",
                    "rrset",
                    "healthcheck",
                    "status",
                    "%2F",
                    "x",
                    "",
                ][..],
            ),
            0..5,
        )
        .prop_map(|segs| segs.join("/"));
        prop_oneof![4 => known, 1 => random].prop_map(|p| format!("/2013-04-01/{p}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any method, path, query and body: an answer that is a well-formed XML
        /// document with an HTTP status, never a panic.
        #[test]
        fn any_request_gets_a_well_formed_answer(
            method in "(GET|POST|DELETE|POST|GET|PUT)",
            path in path(),
            query in proptest::option::of(
                "((marker|maxitems|dnsname|hostedzoneid|name|type|identifier|hostedzonetype)=[a-zA-Z0-9.%*-]{0,12}&?){0,3}"
            ),
            body in prop_oneof![
                document().prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..200),
            ],
        ) {
            let state = &STATE.0;
            let req = request(&method, path, query);
            let reply = handle(state, &req, &body);
            prop_assert!((200..600).contains(&reply.status));
            prop_assert!(reply.status != 500, "{}", reply.body);
            prop_assert!(read::parse(reply.body.as_bytes()).is_ok(), "{}", reply.body);
        }
    }
}
