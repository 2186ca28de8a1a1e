//! The website endpoint (`http://BUCKET.s3-website-REGION.localhost:PORT/`) and the
//! website configuration's XML. What to answer is decided by
//! [`crate::model::s3::website::answer`]; this module reads the blob and writes HTTP.
//! [`serve_website`] is the entry point for other listeners (the in-world internet
//! serves `BUCKET.s3-website-REGION.amazonaws.com` through it). Preflights and `Origin`
//! headers are answered from the bucket's CORS rules ([`super::cors`]).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::{Out, malformed_xml, parse_xml};
use crate::api::AppState;
use crate::api::xml::{Xml, escape};
use crate::model::s3::website::{Redirect, RoutingRule, WebAnswer, WebsiteConfig, answer};
use crate::model::{ApiError, ApiResult};

/// A website answer as plain values (status, headers, body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Answers `GET`/`HEAD` of `path` on the website of `bucket`, looking the bucket up in
/// every account's world (the first that has it: bucket names are per account in
/// vpclab, the website endpoint has no credentials). `host` is the Host the request
/// came to.
pub async fn serve_website(
    state: &AppState,
    bucket: &str,
    method: &str,
    path: &str,
    host: &str,
) -> WebResponse {
    let request_id = state.request_id();
    if method != "GET" && method != "HEAD" {
        return error_page(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            None,
            &request_id,
        );
    }
    let world = {
        let c = state.lock();
        c.accounts()
            .into_iter()
            .filter_map(|a| c.snapshot(&a))
            .find(|w| w.buckets.contains(bucket))
    };
    let Some(world) = world else {
        return error_page(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist",
            None,
            &request_id,
        );
    };
    let key = super::decode_path(path.trim_start_matches('/'));
    let key = key.split('?').next().unwrap_or("").to_string();
    match answer(&world, bucket, &key, host) {
        WebAnswer::Redirect { status, location } => WebResponse {
            status,
            headers: vec![("location".into(), location)],
            body: Vec::new(),
        },
        WebAnswer::Error {
            status,
            code,
            message,
            key,
        } => error_page(status, code, &message, key.as_deref(), &request_id),
        WebAnswer::Object {
            status, version, ..
        } => {
            // An archived object is served only while a restore's copy lives, as a
            // GetObject would be.
            if !version.readable_at((state.clock)()) {
                return error_page(
                    403,
                    "InvalidObjectState",
                    "The operation is not valid for the object's storage class",
                    None,
                    &request_id,
                );
            }
            let body = match state.blobs() {
                Ok(b) => match b.read(&version.blob, None).await {
                    Ok(bytes) => bytes,
                    Err(_) => {
                        return error_page(
                            500,
                            "InternalError",
                            "We encountered an internal error. Please try again.",
                            None,
                            &request_id,
                        );
                    }
                },
                Err(_) => {
                    return error_page(
                        503,
                        "ServiceUnavailable",
                        "This vpclab server has no object store.",
                        None,
                        &request_id,
                    );
                }
            };
            let mut headers = vec![
                ("etag".to_string(), version.etag.clone()),
                (
                    "last-modified".to_string(),
                    super::http_date(version.last_modified),
                ),
            ];
            for (k, v) in &version.headers {
                if k == "x-amz-website-redirect-location" {
                    return WebResponse {
                        status: 301,
                        headers: vec![("location".into(), v.clone())],
                        body: Vec::new(),
                    };
                }
                headers.push((k.clone(), v.clone()));
            }
            WebResponse {
                status,
                headers,
                body: if method == "HEAD" { Vec::new() } else { body },
            }
        }
    }
}

/// The HTML error page of the website endpoint.
fn error_page(
    status: u16,
    code: &str,
    message: &str,
    key: Option<&str>,
    request_id: &str,
) -> WebResponse {
    let title = match status {
        403 => "403 Forbidden",
        404 => "404 Not Found",
        405 => "405 Method Not Allowed",
        _ => "Error",
    };
    let mut items = format!(
        "<li>Code: {}</li><li>Message: {}</li>",
        escape(code),
        escape(message)
    );
    if let Some(k) = key {
        items.push_str(&format!("<li>Key: {}</li>", escape(k)));
    }
    items.push_str(&format!("<li>RequestId: {}</li>", escape(request_id)));
    let body = format!(
        "<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<ul>\n{items}\n</ul>\n<hr/>\n</body>\n</html>\n"
    );
    WebResponse {
        status,
        headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
        body: body.into_bytes(),
    }
}

pub(super) async fn serve(
    state: &AppState,
    bucket: &str,
    parts: &axum::http::request::Parts,
    host: &str,
    request_id: &str,
) -> Response {
    // The website endpoint honours the bucket's CORS rules as the REST endpoint does: a
    // page on one bucket's website may fetch from another's.
    let r = if parts.method == axum::http::Method::OPTIONS {
        match super::cors::decide(state, Some(bucket), None, &parts.headers) {
            super::cors::Preflight::Allowed(grant) => WebResponse {
                status: 200,
                headers: grant.headers(),
                body: Vec::new(),
            },
            super::cors::Preflight::Refused { refusal, .. } => {
                let e = refusal.error();
                error_page(e.status, &e.code, &e.message, None, request_id)
            }
        }
    } else {
        let mut r =
            serve_website(state, bucket, parts.method.as_str(), parts.uri.path(), host).await;
        super::cors::decorate_website(
            state,
            bucket,
            &parts.headers,
            parts.method.as_str(),
            &mut r.headers,
        );
        r
    };
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    for (k, v) in r.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amz-request-id", v);
    }
    if !h.contains_key(header::CONTENT_TYPE) {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("binary/octet-stream"),
        );
    }
    resp
}

/// Parses PutBucketWebsite's `WebsiteConfiguration`.
pub fn parse_config(body: &[u8]) -> ApiResult<WebsiteConfig> {
    let doc = parse_xml(body)?;
    if doc.name != "WebsiteConfiguration" {
        return Err(malformed_xml());
    }
    let mut cfg = WebsiteConfig {
        index_suffix: doc
            .child("IndexDocument")
            .map(|i| i.text_of("Suffix").unwrap_or("").to_string()),
        error_key: doc
            .child("ErrorDocument")
            .and_then(|e| e.text_of("Key"))
            .map(str::to_string),
        ..WebsiteConfig::default()
    };
    if let Some(r) = doc.child("RedirectAllRequestsTo") {
        let host = r.text_of("HostName").ok_or_else(malformed_xml)?.to_string();
        cfg.redirect_all = Some((host, r.text_of("Protocol").map(str::to_string)));
    }
    if let Some(rules) = doc.child("RoutingRules") {
        for r in rules.children_named("RoutingRule") {
            let redirect = r.child("Redirect").ok_or_else(|| {
                ApiError::new("InvalidArgument", "A routing rule must have a Redirect")
            })?;
            let t = |e: Option<&crate::api::xml::read::Element>, n: &str| {
                e.and_then(|e| e.text_of(n)).map(str::to_string)
            };
            cfg.rules.push(RoutingRule {
                key_prefix_equals: t(r.child("Condition"), "KeyPrefixEquals"),
                http_error_code_returned_equals: t(
                    r.child("Condition"),
                    "HttpErrorCodeReturnedEquals",
                ),
                redirect: Redirect {
                    host_name: t(Some(redirect), "HostName"),
                    protocol: t(Some(redirect), "Protocol"),
                    http_redirect_code: t(Some(redirect), "HttpRedirectCode"),
                    replace_key_prefix_with: t(Some(redirect), "ReplaceKeyPrefixWith"),
                    replace_key_with: t(Some(redirect), "ReplaceKeyWith"),
                },
            });
        }
    }
    Ok(cfg)
}

/// GetBucketWebsite's answer.
pub(super) fn config_xml(cfg: &WebsiteConfig) -> Out {
    Out::xml("WebsiteConfiguration", |x: &mut Xml| {
        if let Some((host, proto)) = &cfg.redirect_all {
            x.node("RedirectAllRequestsTo", |x| {
                x.leaf("HostName", host);
                x.opt("Protocol", proto.as_deref());
            });
        }
        if let Some(s) = &cfg.index_suffix {
            x.node("IndexDocument", |x| {
                x.leaf("Suffix", s);
            });
        }
        if let Some(k) = &cfg.error_key {
            x.node("ErrorDocument", |x| {
                x.leaf("Key", k);
            });
        }
        if !cfg.rules.is_empty() {
            x.node("RoutingRules", |x| {
                for r in &cfg.rules {
                    x.node("RoutingRule", |x| {
                        if r.key_prefix_equals.is_some()
                            || r.http_error_code_returned_equals.is_some()
                        {
                            x.node("Condition", |x| {
                                x.opt("KeyPrefixEquals", r.key_prefix_equals.as_deref());
                                x.opt(
                                    "HttpErrorCodeReturnedEquals",
                                    r.http_error_code_returned_equals.as_deref(),
                                );
                            });
                        }
                        x.node("Redirect", |x| {
                            let d = &r.redirect;
                            x.opt("HostName", d.host_name.as_deref());
                            x.opt("HttpRedirectCode", d.http_redirect_code.as_deref());
                            x.opt("Protocol", d.protocol.as_deref());
                            x.opt("ReplaceKeyPrefixWith", d.replace_key_prefix_with.as_deref());
                            x.opt("ReplaceKeyWith", d.replace_key_with.as_deref());
                        });
                    });
                }
            });
        }
    })
}
