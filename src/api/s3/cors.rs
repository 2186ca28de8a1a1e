//! CORS on the wire: PutBucketCors's XML into [`m::cors::CorsConfig`], the answer to a
//! preflight (`OPTIONS /BUCKET/KEY`, unauthenticated: browsers send no credentials with
//! it), and the `Access-Control-*` headers added to an actual request's answer (errors
//! included) when a rule allows its `Origin`. What to answer is decided by
//! [`crate::model::s3::cors`]; this module reads headers and writes them.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;

use super::{Out, malformed_xml, parse_xml, render};
use crate::api::AppState;
use crate::api::xml::Xml;
use crate::model::ApiResult;
use crate::model::s3::{self as m, cors::CorsConfig, cors::CorsRule};

/// "The document is limited to 64 KB in size" (PutBucketCors).
const MAX_DOCUMENT: usize = 64 * 1024;

/// Parses PutBucketCors's `CORSConfiguration` (checks in [`CorsConfig::validate`]).
pub(super) fn parse_config(body: &[u8]) -> ApiResult<CorsConfig> {
    if body.len() > MAX_DOCUMENT {
        return Err(malformed_xml());
    }
    let doc = parse_xml(body)?;
    if doc.name != "CORSConfiguration" {
        return Err(malformed_xml());
    }
    let mut rules = Vec::new();
    for r in doc.children_named("CORSRule") {
        let list = |name: &str| -> Vec<String> {
            r.children_named(name)
                .map(|e| e.text.trim().to_string())
                .collect()
        };
        // "A CORSRule can have at most one MaxAgeSeconds element", an integer.
        let ages: Vec<_> = r.children_named("MaxAgeSeconds").collect();
        let max_age_seconds = match ages.as_slice() {
            [] => None,
            [one] => Some(
                one.text
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| malformed_xml())?,
            ),
            _ => return Err(malformed_xml()),
        };
        rules.push(CorsRule {
            id: r.text_of("ID").map(str::to_string),
            allowed_origins: list("AllowedOrigin"),
            allowed_methods: list("AllowedMethod"),
            allowed_headers: list("AllowedHeader"),
            expose_headers: list("ExposeHeader"),
            max_age_seconds,
        });
    }
    let cfg = CorsConfig { rules };
    cfg.validate()?;
    Ok(cfg)
}

/// The rules of a bucket: the parsed form, or the XML of a bucket stored before the
/// parsed form existed.
pub fn config_of(b: &m::Bucket) -> Option<CorsConfig> {
    b.cors.clone().or_else(|| {
        b.cors_xml
            .as_deref()
            .and_then(|x| parse_config(x.as_bytes()).ok())
    })
}

/// The CORS rules of `bucket` (the caller's own bucket by that name if it has one, else
/// the first account's that does, as for every S3 request): `None` when no account has
/// the bucket, `Some(None)` when it has no configuration.
pub fn bucket_rules(
    state: &AppState,
    caller: Option<&str>,
    bucket: &str,
) -> Option<Option<CorsConfig>> {
    let control = state.lock();
    let (_, world) = super::bucket_owner(&control, caller, bucket)?;
    world.buckets.get(bucket).map(config_of)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The method a request's rules are matched on: its `Access-Control-Request-Method`
/// when it carries one (S3 does so on actual requests too), else its own.
fn request_method<'a>(headers: &'a HeaderMap, method: &'a str) -> &'a str {
    header(headers, "access-control-request-method").unwrap_or(method)
}

/// Adds the grant's headers to an answer.
fn apply(resp: &mut Response, grant: &m::cors::Grant) {
    let h = resp.headers_mut();
    for (k, v) in grant.headers() {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.insert(k, v);
        }
    }
}

/// Adds the `Access-Control-*` headers to the answer of an actual request on `bucket`
/// when it carries an `Origin` that a rule allows for its method. `caller` is the
/// account the request ran as, when known.
pub fn decorate(
    state: &AppState,
    caller: Option<&str>,
    bucket: &str,
    headers: &HeaderMap,
    method: &str,
    resp: &mut Response,
) {
    let Some(origin) = header(headers, "origin") else {
        return;
    };
    let Some(Some(cfg)) = bucket_rules(state, caller, bucket) else {
        return;
    };
    if let Some(grant) = m::cors::actual(Some(&cfg), origin, request_method(headers, method)) {
        apply(resp, &grant);
    }
}

/// What a preflight decided, before it is written in the endpoint's own form.
pub(super) enum Preflight {
    Allowed(m::cors::Grant),
    Refused {
        refusal: m::cors::Refusal,
        /// The `Method` of S3's error: the requested method, or `OPTIONS`.
        method: String,
        /// `OBJECT` when rules were evaluated for a key, else `BUCKET`.
        resource_type: &'static str,
    },
}

/// Decides a preflight on `bucket` (and `key`, when the URL names one).
pub(super) fn decide(
    state: &AppState,
    bucket: Option<&str>,
    key: Option<&str>,
    headers: &HeaderMap,
) -> Preflight {
    let origin = header(headers, "origin");
    let method = header(headers, "access-control-request-method");
    let requested = m::cors::requested_headers(header(headers, "access-control-request-headers"));
    let rules = match (origin, bucket) {
        (Some(_), Some(b)) => bucket_rules(state, None, b),
        _ => None,
    };
    match m::cors::preflight(
        rules.as_ref().map(Option::as_ref),
        origin,
        method,
        &requested,
    ) {
        Ok(grant) => Preflight::Allowed(grant),
        Err(refusal) => {
            let resource_type = match refusal {
                m::cors::Refusal::NotAllowed if key.is_some() => "OBJECT",
                _ => "BUCKET",
            };
            Preflight::Refused {
                refusal,
                method: method.unwrap_or("OPTIONS").to_string(),
                resource_type,
            }
        }
    }
}

/// The REST endpoint's answer to a preflight: 200 with the grant's headers and no
/// body, or S3's XML error (`Code`, `Message`, `Method`, `ResourceType`, `RequestId`,
/// `HostId`, in that order).
pub(super) fn preflight(
    state: &AppState,
    bucket: Option<&str>,
    key: Option<&str>,
    headers: &HeaderMap,
    request_id: &str,
) -> Response {
    match decide(state, bucket, key, headers) {
        Preflight::Allowed(grant) => {
            let mut resp = render(Out::empty(200), request_id, false);
            apply(&mut resp, &grant);
            resp
        }
        Preflight::Refused {
            refusal,
            method,
            resource_type,
        } => {
            let e = refusal.error();
            let mut x = Xml::new();
            x.leaf("Code", &e.code).leaf("Message", &e.message);
            x.leaf("Method", &method)
                .leaf("ResourceType", resource_type);
            x.leaf("RequestId", request_id).leaf("HostId", request_id);
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>{}</Error>",
                x.finish()
            );
            let out = Out {
                status: e.status,
                headers: vec![(header::CONTENT_TYPE.to_string(), "application/xml".into())],
                body: body.into_bytes(),
                blob: None,
            };
            render(out, request_id, false)
        }
    }
}

/// Adds the grant's headers to a website endpoint answer (see [`decorate`]).
pub(super) fn decorate_website(
    state: &AppState,
    bucket: &str,
    headers: &HeaderMap,
    method: &str,
    out: &mut Vec<(String, String)>,
) {
    let Some(origin) = header(headers, "origin") else {
        return;
    };
    let Some(Some(cfg)) = bucket_rules(state, None, bucket) else {
        return;
    };
    if let Some(grant) = m::cors::actual(Some(&cfg), origin, request_method(headers, method)) {
        for (k, v) in grant.headers() {
            out.retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
            out.push((k, v));
        }
    }
}
