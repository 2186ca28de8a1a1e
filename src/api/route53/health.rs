//! The Route 53 health-check actions under `/2013-04-01/healthcheck…`: CreateHealthCheck,
//! GetHealthCheck, UpdateHealthCheck, DeleteHealthCheck, ListHealthChecks,
//! GetHealthCheckCount, GetHealthCheckStatus, GetHealthCheckLastFailureReason and
//! GetCheckerIpRanges, shaped as botocore's `route53/2013-04-01` model describes them.
//!
//! The configuration rules are the model's (`model::route53_health`); the status comes
//! from the [`crate::dns::health::HealthBoard`] the prober fills.

use std::net::Ipv4Addr;
use std::str::FromStr;

use super::{Answer, Ctx, Query, body_root, mutate, ok, parse_bool};
use crate::api::xml::Xml;
use crate::api::xml::read::Element;
use crate::dns::health::{CHECKER_RANGE, HealthBoard, Observation};
use crate::model::route53::health::{HealthCheck, HealthCheckConfig, HealthCheckUpdate};
use crate::model::route53::invalid_input;
use crate::model::{ApiError, ApiResult, Env, Timestamp};

/// Largest page of ListHealthChecks.
const MAX_ITEMS: usize = 1000;
/// Default page of ListHealthChecks.
const DEFAULT_ITEMS: usize = 100;

fn number<T: FromStr>(field: &str, text: &str) -> ApiResult<T> {
    text.parse().map_err(|_| {
        invalid_input(format!(
            "Invalid XML ; cvc-datatype-valid: '{text}' is not a valid value for {field}."
        ))
    })
}

fn opt_number<T: FromStr>(e: &Element, field: &str) -> ApiResult<Option<T>> {
    e.text_of(field).map(|t| number(field, t)).transpose()
}

fn opt_bool(e: &Element, field: &str) -> ApiResult<Option<bool>> {
    e.text_of(field).map(|t| parse_bool(field, t)).transpose()
}

fn ip(e: &Element) -> ApiResult<Option<Ipv4Addr>> {
    match e.text_of("IPAddress") {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<Ipv4Addr>() {
            Ok(ip) => Ok(Some(ip)),
            Err(_) if text.parse::<std::net::Ipv6Addr>().is_ok() => Err(ApiError::new(
                "NotImplemented",
                "vpclab's health checkers probe IPv4 addresses only.",
            )
            .with_status(501)),
            Err(_) => Err(invalid_input(format!(
                "Invalid parameter : IP address {text} is not a valid IPv4 address."
            ))),
        },
    }
}

fn regions(e: &Element) -> Option<Vec<String>> {
    e.child("Regions").map(|r| {
        r.children_named("Region")
            .map(|x| x.text.trim().to_owned())
            .collect()
    })
}

fn parse_config(e: &Element) -> ApiResult<HealthCheckConfig> {
    Ok(HealthCheckConfig {
        ip_address: ip(e)?,
        port: opt_number(e, "Port")?,
        check_type: e.text_of("Type").unwrap_or_default().to_owned(),
        resource_path: e.text_of("ResourcePath").map(str::to_owned),
        fqdn: e
            .text_of("FullyQualifiedDomainName")
            .map(|f| f.trim_end_matches('.').to_ascii_lowercase()),
        search_string: e.text_of("SearchString").map(str::to_owned),
        request_interval: opt_number(e, "RequestInterval")?.unwrap_or(30),
        failure_threshold: opt_number(e, "FailureThreshold")?.unwrap_or(3),
        measure_latency: opt_bool(e, "MeasureLatency")?.unwrap_or(false),
        inverted: opt_bool(e, "Inverted")?.unwrap_or(false),
        disabled: opt_bool(e, "Disabled")?.unwrap_or(false),
        enable_sni: opt_bool(e, "EnableSNI")?,
        regions: regions(e).unwrap_or_default(),
    })
}

fn health_check_xml(x: &mut Xml, hc: &HealthCheck) {
    let c = &hc.config;
    x.node("HealthCheck", |x| {
        x.leaf("Id", &hc.id)
            .leaf("CallerReference", &hc.caller_reference)
            .node("HealthCheckConfig", |x| {
                x.opt("IPAddress", c.ip_address)
                    .leaf("Port", c.effective_port())
                    .leaf("Type", &c.check_type)
                    .opt("ResourcePath", c.resource_path.as_deref())
                    .opt("FullyQualifiedDomainName", c.fqdn.as_deref())
                    .opt("SearchString", c.search_string.as_deref())
                    .leaf("RequestInterval", c.request_interval)
                    .leaf("FailureThreshold", c.failure_threshold)
                    .leaf("MeasureLatency", c.measure_latency)
                    .leaf("Inverted", c.inverted)
                    .leaf("Disabled", c.disabled);
                if c.check_type.starts_with("HTTPS") {
                    x.leaf("EnableSNI", c.enable_sni.unwrap_or(c.fqdn.is_some()));
                }
                if !c.regions.is_empty() {
                    x.node("Regions", |x| {
                        for r in &c.regions {
                            x.leaf("Region", r);
                        }
                    });
                }
            })
            .leaf("HealthCheckVersion", hc.version);
    });
}

fn observations_xml(obs: &[Observation]) -> String {
    let mut x = Xml::new();
    x.node("HealthCheckObservations", |x| {
        for o in obs {
            x.node("HealthCheckObservation", |x| {
                x.leaf("Region", &o.region)
                    .leaf("IPAddress", o.ip)
                    .node("StatusReport", |x| {
                        x.leaf("Status", &o.report.status)
                            .leaf("CheckedTime", Timestamp(o.report.checked_ms).iso());
                    });
            });
        }
    });
    x.finish()
}

/// Routes one `/healthcheck…`, `/healthcheckcount` or `/checkeripranges` request;
/// `None` when the path is not one of them.
pub(super) fn route(
    c: &mut Ctx<'_>,
    env: &Env,
    board: &HealthBoard,
    method: &str,
    segments: &[&str],
    q: &Query,
    body: &[u8],
) -> Option<ApiResult<Answer>> {
    Some(match (method, segments) {
        ("POST", ["healthcheck"]) => create(c, env, body),
        ("GET", ["healthcheck"]) => list(c, env, q),
        ("GET", ["healthcheckcount"]) => c.read(env).map(|w| {
            let mut x = Xml::new();
            x.leaf("HealthCheckCount", w.health_checks.len());
            ok("GetHealthCheckCount", x.finish())
        }),
        ("GET", ["checkeripranges"]) => {
            let mut x = Xml::new();
            x.node("CheckerIpRanges", |x| {
                x.leaf("member", CHECKER_RANGE);
            });
            Ok(ok("GetCheckerIpRanges", x.finish()))
        }
        ("GET", ["healthcheck", id]) => c.read(env).and_then(|w| {
            let mut x = Xml::new();
            health_check_xml(&mut x, w.health_check(id)?);
            Ok(ok("GetHealthCheck", x.finish()))
        }),
        ("POST", ["healthcheck", id]) => update(c, env, id, body),
        ("DELETE", ["healthcheck", id]) => mutate(c, env, |w, _| w.delete_health_check(id))
            .map(|()| ok("DeleteHealthCheck", String::new())),
        ("GET", ["healthcheck", id, "status"]) => c.read(env).and_then(|w| {
            let hc = w.health_check(id)?;
            Ok(ok(
                "GetHealthCheckStatus",
                observations_xml(&board.observations(&hc.id)),
            ))
        }),
        ("GET", ["healthcheck", id, "lastfailurereason"]) => c.read(env).and_then(|w| {
            let hc = w.health_check(id)?;
            Ok(ok(
                "GetHealthCheckLastFailureReason",
                observations_xml(&board.last_failures(&hc.id)),
            ))
        }),
        _ => return None,
    })
}

fn create(c: &mut Ctx<'_>, env: &Env, body: &[u8]) -> ApiResult<Answer> {
    let root = body_root(body, "CreateHealthCheckRequest")?;
    let reference = root
        .text_of("CallerReference")
        .unwrap_or_default()
        .to_owned();
    let config = root
        .child("HealthCheckConfig")
        .ok_or_else(|| invalid_input("Invalid request: missing HealthCheckConfig"))?;
    let config = parse_config(config)?;
    let (hc, _) = mutate(c, env, |w, env| {
        w.create_health_check(env, &reference, config)
    })?;
    let mut x = Xml::new();
    health_check_xml(&mut x, &hc);
    let location = format!(
        "https://route53.amazonaws.com/2013-04-01/healthcheck/{}",
        hc.id
    );
    Ok((201, "CreateHealthCheck", x.finish(), Some(location)))
}

fn update(c: &mut Ctx<'_>, env: &Env, id: &str, body: &[u8]) -> ApiResult<Answer> {
    let root = body_root(body, "UpdateHealthCheckRequest")?;
    let update = HealthCheckUpdate {
        version: opt_number(&root, "HealthCheckVersion")?,
        ip_address: ip(&root)?,
        port: opt_number(&root, "Port")?,
        resource_path: root.text_of("ResourcePath").map(str::to_owned),
        fqdn: root
            .text_of("FullyQualifiedDomainName")
            .map(|f| f.trim_end_matches('.').to_ascii_lowercase()),
        search_string: root.text_of("SearchString").map(str::to_owned),
        failure_threshold: opt_number(&root, "FailureThreshold")?,
        inverted: opt_bool(&root, "Inverted")?,
        disabled: opt_bool(&root, "Disabled")?,
        enable_sni: opt_bool(&root, "EnableSNI")?,
        regions: regions(&root),
        reset: root
            .child("ResetElements")
            .map(|r| {
                r.children_named("ResettableElementName")
                    .map(|e| e.text.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let hc = mutate(c, env, |w, _| w.update_health_check(id, update))?;
    let mut x = Xml::new();
    health_check_xml(&mut x, &hc);
    Ok(ok("UpdateHealthCheck", x.finish()))
}

fn list(c: &mut Ctx<'_>, env: &Env, q: &Query) -> ApiResult<Answer> {
    let world = c.read(env)?;
    let max = match q.get("maxitems") {
        None => DEFAULT_ITEMS,
        Some(_) => q.max_items(MAX_ITEMS)?,
    };
    let marker = q.get("marker");
    let checks: Vec<&HealthCheck> = world
        .health_checks
        .iter()
        .filter(|h| marker.is_none_or(|m| h.id.as_str() >= m))
        .collect();
    let truncated = checks.len() > max;
    let mut x = Xml::new();
    x.node("HealthChecks", |x| {
        for hc in checks.iter().take(max) {
            health_check_xml(x, hc);
        }
    });
    x.leaf("Marker", marker.unwrap_or_default());
    x.leaf("IsTruncated", truncated);
    if truncated {
        x.leaf("NextMarker", &checks[max].id);
    }
    x.leaf("MaxItems", max);
    Ok(ok("ListHealthChecks", x.finish()))
}
