//! Function URLs served: `https://<url-id>.lambda-url.<region>.on.aws/` inside a world
//! (the name resolves on the simulated internet to Lambda's endpoint address, whose
//! HTTPS is signed by vpclab's CA) and `http://<url-id>.lambda-url.<region>.localhost:PORT/`
//! on the learner's computer (the API port, as S3's website endpoint).
//!
//! The Lambda developer guide's "Invoking Lambda function URLs" is the rule: the request
//! becomes an event in payload format 2.0 (`rawPath`, `rawQueryString`, `headers`,
//! `requestContext.http`, `body` with `isBase64Encoded`), the function runs
//! synchronously, and its answer becomes the HTTP response: an object with `statusCode`
//! gives status, headers, cookies and body; any other JSON is a 200 with content type
//! `application/json` and that JSON (a string: its text) as body. Access follows
//! "Control access to Lambda function URLs": with `AuthType` `NONE` the function's
//! resource-based policy must let everyone (`*`) call `lambda:InvokeFunctionUrl` and
//! `lambda:InvokeFunction`; with `AWS_IAM` the request must be SigV4-signed for the
//! `lambda` service by a caller allowed both actions. Refusals are AWS's
//! `403 {"Message":"Forbidden"}`; a function error or timeout is a 502.

use std::collections::BTreeMap;

use axum::body::Body as HttpBody;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{MAX_SYNC_PAYLOAD, functions, run_invocation, spec_of};
use crate::api::{AppState, sigv4};
use crate::function::Status;
use crate::model::Env;
use crate::model::lambda::Function;

/// The `(url id, region)` a Host names: `<id>.lambda-url.<region>.on.aws` or
/// `<id>.lambda-url.<region>.localhost`, with or without a port.
pub fn url_host(host: &str) -> Option<(String, String)> {
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host
        .strip_suffix(".on.aws")
        .or_else(|| host.strip_suffix(".localhost"))?;
    let (id, region) = rest.split_once(".lambda-url.")?;
    let id_ok = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric());
    let region_ok = crate::model::region::region(region).is_some();
    (id_ok && region_ok).then(|| (id.to_string(), region.to_string()))
}

/// Whether a request is for a function URL, by its Host.
pub fn is_url_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(url_host)
        .is_some()
}

/// The URL `GetFunctionUrlConfig` reports: AWS's own form when the call came to Lambda's
/// endpoint inside a world (an instance resolves and reaches it), the loopback form on
/// the learner's computer (`host_port` is the API port's `:PORT`).
pub fn public_url(url_id: &str, region: &str, api_host: &str) -> String {
    let name = api_host.rsplit_once(':').map_or(api_host, |(h, _)| h);
    if name.to_ascii_lowercase().ends_with(".amazonaws.com") {
        format!("https://{url_id}.lambda-url.{region}.on.aws/")
    } else {
        let port = api_host
            .rsplit_once(':')
            .map(|(_, p)| format!(":{p}"))
            .unwrap_or_default();
        format!("http://{url_id}.lambda-url.{region}.localhost{port}/")
    }
}

fn plain(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut r = Response::new(HttpBody::from(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn forbidden() -> Response {
    plain(403, "application/json", r#"{"Message":"Forbidden"}"#)
}

fn not_found() -> Response {
    plain(404, "application/json", r#"{"Message":null}"#)
}

fn bad_gateway() -> Response {
    plain(502, "application/json", "Internal Server Error")
}

/// Whether a value (string or list) holds `want` (case-insensitive for actions).
fn holds(v: Option<&Value>, want: &str) -> bool {
    let hit = |s: &str| s.eq_ignore_ascii_case(want) || s == "*" || s == "lambda:*";
    match v {
        Some(Value::String(s)) => hit(s),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(hit),
        _ => false,
    }
}

/// Whether the function's resource-based policy gives everyone `action` through a
/// function URL of auth type NONE (a `lambda:FunctionUrlAuthType` condition, when
/// present, must say NONE).
fn public_allows(f: &Function, action: &str) -> bool {
    f.policy.iter().any(|s| {
        let allow = s.get("Effect").and_then(Value::as_str) == Some("Allow");
        let everyone = match s.get("Principal") {
            Some(Value::String(p)) => p == "*",
            Some(Value::Object(m)) => m.get("AWS") == Some(&json!("*")),
            _ => false,
        };
        let auth_type = s
            .get("Condition")
            .and_then(|c| c.get("StringEquals"))
            .and_then(|c| c.get("lambda:FunctionUrlAuthType"))
            .and_then(Value::as_str);
        allow && everyone && holds(s.get("Action"), action) && auth_type.is_none_or(|t| t == "NONE")
    })
}

/// Serves one request to a function URL.
pub async fn serve(state: AppState, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Some((url_id, region)) = url_host(&host) else {
        return not_found();
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_SYNC_PAYLOAD).await else {
        return plain(
            413,
            "application/json",
            r#"{"Message":"Request Entity Too Large"}"#,
        );
    };
    // The function behind the URL, in whichever account's world has it (the URL has no
    // credentials to name an account, as a website endpoint has none).
    let found = {
        let c = state.lock();
        c.accounts().into_iter().find_map(|a| {
            let w = c.snapshot(&a)?;
            let f = w.function_by_url(&url_id)?.clone();
            (f.region == region).then_some((a, f))
        })
    };
    let Some((account, f)) = found else {
        return not_found();
    };
    let Some(url) = f.url.clone() else {
        return not_found();
    };
    let signed = crate::api::signed_request(&parts);
    let invoked = match &url.qualifier {
        Some(q) => format!("{}:{q}", f.arn),
        None => f.arn.clone(),
    };
    // Who is calling: `anonymous` for NONE, the signer for AWS_IAM.
    let authorizer = if url.auth_type == "AWS_IAM" {
        let Ok(identity) = state.authenticate(&signed, &body) else {
            return forbidden();
        };
        if identity.credential.service != "lambda" || identity.account != account {
            return forbidden();
        }
        let control = state.lock();
        for action in ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"] {
            if state
                .authorize(&control, &identity, action, &f.arn, &signed)
                .is_err()
            {
                return forbidden();
            }
        }
        let arn = control
            .snapshot(&account)
            .map(|w| crate::api::iam::authz::principal_arn(&w, &account, &identity.principal))
            .unwrap_or_default();
        Some((identity, arn))
    } else {
        let allowed = ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"]
            .iter()
            .all(|a| public_allows(&f, a));
        if !allowed {
            return forbidden();
        }
        None
    };
    let Ok(fs) = functions(&state) else {
        return bad_gateway();
    };
    let env = Env::new(&region, (state.clock)());
    let Ok((spec, _)) = spec_of(&state, &fs, &account, &env, &invoked) else {
        return bad_gateway();
    };
    let request_id = state.request_id();
    let source_ip = crate::api::iam::source_ip(&signed).unwrap_or_else(|| "127.0.0.1".into());
    let event = event(&EventInput {
        url_id: &url_id,
        host: &host,
        identity: authorizer.as_ref(),
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        source_ip: &source_ip,
        request_id: &request_id,
        now_ms: env.now.0,
    });
    let payload = Bytes::from(event.to_string());
    match run_invocation(&state, &fs, &account, &region, &spec, payload, &request_id).await {
        Ok((out, _)) => match out.status {
            Status::Ok(b) => response_of(&b, &request_id),
            _ => bad_gateway(),
        },
        Err(e) => {
            tracing::warn!(error = %e, function = %spec.name, "function URL invocation failed");
            bad_gateway()
        }
    }
}

struct EventInput<'a> {
    url_id: &'a str,
    host: &'a str,
    /// The signer and its ARN (AWS_IAM).
    identity: Option<&'a (sigv4::Identity, String)>,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    source_ip: &'a str,
    request_id: &'a str,
    now_ms: i64,
}

/// Content types whose bodies reach the function as text; everything else is base64.
fn is_text(content_type: &str) -> bool {
    let t = content_type.to_ascii_lowercase();
    t.starts_with("text/")
        || t.contains("json")
        || t.contains("xml")
        || t.contains("javascript")
        || t.starts_with("application/x-www-form-urlencoded")
}

/// The request as payload format 2.0.
fn event(i: &EventInput<'_>) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in i.headers {
        if name.as_str() == crate::api::SOURCE_IP_HEADER {
            continue;
        }
        let Ok(v) = value.to_str() else { continue };
        if name == header::COOKIE {
            cookies.extend(v.split(';').map(|c| c.trim().to_string()));
            continue;
        }
        headers
            .entry(name.as_str().to_string())
            .and_modify(|e| {
                e.push(',');
                e.push_str(v);
            })
            .or_insert_with(|| v.to_string());
    }
    let host_name = i.host.rsplit_once(':').map_or(i.host, |(h, _)| h);
    let mut query = Map::new();
    for (k, v) in form_urlencoded::parse(i.query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(i.now_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
            ))
            .ok()
        })
        .unwrap_or_default();
    let mut context = json!({
        "accountId": i.identity.map_or("anonymous", |(id, _)| id.account.as_str()),
        "apiId": i.url_id,
        "domainName": host_name,
        "domainPrefix": i.url_id,
        "http": {
            "method": i.method,
            "path": i.path,
            "protocol": "HTTP/1.1",
            "sourceIp": i.source_ip,
            "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
        },
        "requestId": i.request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": time,
        "timeEpoch": i.now_ms,
    });
    if let Some((id, arn)) = i.identity {
        context["authorizer"] = json!({
            "iam": {
                "accessKey": id.credential.access_key,
                "accountId": id.account,
                "callerId": id.credential.access_key,
                "userArn": arn,
            }
        });
    }
    let mut v = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": i.path,
        "rawQueryString": i.query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        v["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        v["queryStringParameters"] = Value::Object(query);
    }
    if !i.body.is_empty() {
        let content_type = headers.get("content-type").map_or("", String::as_str);
        match std::str::from_utf8(i.body) {
            Ok(text) if is_text(content_type) || content_type.is_empty() => {
                v["body"] = json!(text);
            }
            _ => {
                v["body"] = json!(base64::engine::general_purpose::STANDARD.encode(i.body));
                v["isBase64Encoded"] = json!(true);
            }
        }
    }
    v
}

/// The function's answer as the HTTP response ("Response payload format").
fn response_of(answer: &[u8], request_id: &str) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return bad_gateway();
    };
    let mut r = match v.as_object().filter(|o| o.contains_key("statusCode")) {
        Some(o) => {
            let status = o
                .get("statusCode")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok());
            let Some(status) = status else {
                return bad_gateway();
            };
            let text = match o.get("body") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let base64 = o.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
            let bytes = if base64 {
                match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                    Ok(b) => b,
                    Err(_) => return bad_gateway(),
                }
            } else {
                text.into_bytes()
            };
            let mut r = Response::new(HttpBody::from(bytes));
            *r.status_mut() = status;
            if let Some(Value::Object(h)) = o.get("headers") {
                for (name, value) in h {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if let (Ok(n), Ok(v)) = (
                        header::HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&value),
                    ) {
                        r.headers_mut().insert(n, v);
                    }
                }
            }
            if let Some(Value::Array(cookies)) = o.get("cookies") {
                for c in cookies.iter().filter_map(Value::as_str) {
                    if let Ok(v) = HeaderValue::from_str(c) {
                        r.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
            }
            r
        }
        None => {
            // Not an HTTP response object: the JSON, as the function wrote it, is the
            // body (a string: its text).
            let body = match &v {
                Value::String(s) => Bytes::from(s.clone()),
                _ => Bytes::copy_from_slice(answer),
            };
            plain(200, "application/json", body)
        }
    };
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-RequestId", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_in_both_forms_name_the_id_and_region() {
        let want = Some(("abc123".to_string(), "us-east-1".to_string()));
        assert_eq!(url_host("abc123.lambda-url.us-east-1.on.aws"), want);
        assert_eq!(url_host("ABC123.lambda-url.us-east-1.localhost:4566"), want);
        assert_eq!(url_host("abc123.lambda-url.mars-1.on.aws"), None);
        assert_eq!(url_host("lambda-url.us-east-1.on.aws"), None);
        assert_eq!(url_host("abc.s3.localhost"), None);
    }

    #[test]
    fn the_reported_url_follows_where_the_call_came_from() {
        assert_eq!(
            public_url("x1", "us-east-1", "lambda.us-east-1.amazonaws.com"),
            "https://x1.lambda-url.us-east-1.on.aws/"
        );
        assert_eq!(
            public_url("x1", "us-east-1", "127.0.0.1:4566"),
            "http://x1.lambda-url.us-east-1.localhost:4566/"
        );
    }

    fn body_of(r: Response) -> (u16, Option<String>, String) {
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(r.into_body(), 1 << 20))
            .unwrap();
        (status, ct, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// "If your function returns valid JSON without a statusCode, Lambda assumes a 200
    /// with content type application/json and the JSON as body"; a string is its text.
    #[test]
    fn answers_become_responses_as_lambda_infers_them() {
        let (s, ct, b) = body_of(response_of(br#"{"hello":"world"}"#, "r"));
        assert_eq!(
            (s, ct.as_deref(), b.as_str()),
            (200, Some("application/json"), r#"{"hello":"world"}"#)
        );
        let (s, _, b) = body_of(response_of(br#""Hello (world)""#, "r"));
        assert_eq!((s, b.as_str()), (200, "Hello (world)"));
        let full = br#"{"statusCode":201,"headers":{"content-type":"text/plain","x-a":"1"},"body":"aGk=","isBase64Encoded":true,"cookies":["a=1"]}"#;
        let r = response_of(full, "r");
        assert_eq!(r.headers()["x-a"], "1");
        assert_eq!(r.headers()[header::SET_COOKIE], "a=1");
        let (s, ct, b) = body_of(r);
        assert_eq!(
            (s, ct.as_deref(), b.as_str()),
            (201, Some("text/plain"), "hi")
        );
        assert_eq!(body_of(response_of(b"not json", "r")).0, 502);
        assert_eq!(body_of(response_of(br#"{"statusCode":"x"}"#, "r")).0, 502);
    }
}
