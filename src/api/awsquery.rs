//! The awsQuery protocol of the services that are not EC2 (CloudWatch, SNS; later IAM,
//! STS, ELB, Auto Scaling): a form body with `Action` and `Version`, lists as
//! `Name.member.N`, maps as `Name.entry.N.key/value` (or `.Name/.Value`), and XML
//! answers `<OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata>…`, errors as
//! `<ErrorResponse><Error><Type>Sender</Type><Code>…`.
//!
//! The form is turned into the same JSON tree the JSON and CBOR layers hand their
//! handlers ([`Body`]), with every scalar as text, so one handler serves every protocol
//! (handlers read numbers and booleans leniently). The answer's JSON is written back as
//! XML: arrays as `<member>` elements, members named in the service's `maps` as
//! `<entry><key>…</key><value>…</value></entry>`, timestamps (epoch milliseconds under
//! the names in `timestamps`) as ISO 8601.

use axum::body::Body as HttpBody;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value};

use super::iam::authz::Denial;
use super::json::{Body, Handler, JsonCall, dispatch};
use super::query::Params;
use super::xml::escape;
use super::{AppState, MAX_BODY, sigv4};
use crate::model::{ApiError, ApiResult, Timestamp};

/// What an awsQuery service tells the shared layer.
pub struct QueryService {
    /// The XML namespace of its answers (`http://monitoring.amazonaws.com/doc/2010-08-01/`).
    pub xmlns: &'static str,
    /// Output members holding timestamps (epoch milliseconds in the handler's answer).
    pub timestamps: &'static [&'static str],
    /// Output members that are maps (rendered as `entry` elements).
    pub maps: &'static [&'static str],
    pub handler: fn(&mut JsonCall, &str) -> ApiResult<Value>,
    /// The service prefix of its IAM actions (`sns`, `cloudwatch` …).
    pub iam_prefix: &'static str,
    /// The ARN a call is authorized against: (region, account, body) → ARN or `*`.
    pub resource: fn(&str, &str, &Body) -> String,
}

/// Serves one awsQuery request of `service`.
pub async fn endpoint(state: AppState, req: Request, service: &'static QueryService) -> Response {
    let (parts, body) = req.into_parts();
    let request_id = state.request_id();
    let signed = super::signed_request(&parts);
    let (status, xml) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => match handle(&state, &signed, &bytes, service) {
            Ok((op, v)) => (200, render(&op, &v, service, &request_id)),
            Err(e) => (e.status, error_body(&e, &request_id)),
        },
        Err(_) => {
            let e = ApiError::new("RequestEntityTooLarge", "The request body is too large.")
                .with_status(413);
            (413, error_body(&e, &request_id))
        }
    };
    let mut resp = Response::new(HttpBody::from(xml));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

/// Handles a request from its parts: (operation, the handler's answer).
pub fn handle(
    state: &AppState,
    req: &sigv4::SignedRequest,
    bytes: &[u8],
    service: &QueryService,
) -> ApiResult<(String, Value)> {
    let identity = state.authenticate(req, bytes)?;
    let mut params = Params::default();
    if let Some(q) = &req.query {
        params.extend_from(q.as_bytes());
    }
    params.extend_from(bytes);
    params.check_xml_text()?;
    let op = params.get("Action").unwrap_or("").to_string();
    if op.is_empty() {
        return Err(ApiError::new(
            "MissingAction",
            "The request must contain the parameter Action",
        ));
    }
    let body = Body::from_map(tree(&params), "InvalidParameterValue");
    let handler = Handler {
        iam_prefix: service.iam_prefix,
        resource: service.resource,
        run: service.handler,
        denied: Denial::query,
        passed_roles: super::json::no_roles,
    };
    let v = dispatch(state, req, identity, &op, body, &handler)?;
    Ok((op, v))
}

/// A scalar of the request tree as text (forms carry text; a handler's own tree may hold
/// numbers and booleans); `None` for a missing member, a list or a map.
pub fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The form as a JSON tree: `A.member.2.B=x` → `{"A": [{…}, {"B": "x"}]}`,
/// `M.entry.1.key=k&M.entry.1.value=v` → `{"M": {"k": "v"}}`.
pub fn tree(params: &Params) -> Map<String, Value> {
    let mut root = Map::new();
    for (k, v) in params.pairs() {
        let mut node = &mut root;
        let segments: Vec<&str> = k.split('.').collect();
        for (i, seg) in segments.iter().enumerate() {
            if i + 1 == segments.len() {
                node.insert((*seg).to_string(), Value::String(v.to_string()));
            } else {
                let next = node
                    .entry((*seg).to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !next.is_object() {
                    *next = Value::Object(Map::new());
                }
                node = next.as_object_mut().expect("made an object above");
            }
        }
    }
    let mut v = Value::Object(root);
    shape(&mut v);
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Turns `member`/`entry` objects into arrays and maps, depth first.
fn shape(v: &mut Value) {
    let Value::Object(m) = v else {
        return;
    };
    for x in m.values_mut() {
        shape(x);
    }
    let only = |name: &str| m.len() == 1 && m.contains_key(name);
    if only("member") {
        let Some(Value::Object(items)) = m.remove("member") else {
            *v = Value::Array(Vec::new());
            return;
        };
        let mut indexed: Vec<(u64, Value)> = items
            .into_iter()
            .filter_map(|(k, x)| Some((k.parse().ok()?, x)))
            .collect();
        indexed.sort_by_key(|(n, _)| *n);
        *v = Value::Array(indexed.into_iter().map(|(_, x)| x).collect());
    } else if only("entry") {
        let Some(Value::Object(items)) = m.remove("entry") else {
            *v = Value::Object(Map::new());
            return;
        };
        let mut indexed: Vec<(u64, Value)> = items
            .into_iter()
            .filter_map(|(k, x)| Some((k.parse().ok()?, x)))
            .collect();
        indexed.sort_by_key(|(n, _)| *n);
        let mut out = Map::new();
        for (_, e) in indexed {
            let key = e
                .get("key")
                .or_else(|| e.get("Name"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let value = e.get("value").or_else(|| e.get("Value")).cloned();
            if let (Some(k), Some(val)) = (key, value) {
                out.insert(k, val);
            }
        }
        *v = Value::Object(out);
    }
}

/// A successful answer.
pub fn render(op: &str, v: &Value, service: &QueryService, request_id: &str) -> String {
    let op = escape(op);
    let mut inner = String::new();
    if let Value::Object(m) = v {
        for (k, x) in m {
            element(&mut inner, k, x, service, false);
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{op}Response xmlns=\"{}\"><{op}Result>{inner}</{op}Result><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{op}Response>",
        service.xmlns
    )
}

fn element(out: &mut String, name: &str, v: &Value, service: &QueryService, is_ts: bool) {
    let is_ts = is_ts || service.timestamps.contains(&name);
    let name = escape(name);
    match v {
        Value::Null => {}
        Value::Array(items) => {
            out.push_str(&format!("<{name}>"));
            for x in items {
                element(out, "member", x, service, is_ts);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Object(m) if service.maps.contains(&name.as_str()) => {
            out.push_str(&format!("<{name}>"));
            for (k, x) in m {
                out.push_str("<entry>");
                element(out, "key", &Value::String(k.clone()), service, false);
                element(out, "value", x, service, false);
                out.push_str("</entry>");
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Object(m) => {
            out.push_str(&format!("<{name}>"));
            for (k, x) in m {
                element(out, k, x, service, false);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Number(n) if is_ts => {
            let ms = n.as_f64().unwrap_or(0.0) as i64;
            out.push_str(&format!("<{name}>{}</{name}>", Timestamp(ms).iso()));
        }
        Value::Number(n) => out.push_str(&format!("<{name}>{n}</{name}>")),
        Value::Bool(b) => out.push_str(&format!("<{name}>{b}</{name}>")),
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", escape(s))),
    }
}

/// `<ErrorResponse>` as the Query services write it.
pub fn error_body(e: &ApiError, request_id: &str) -> String {
    if e.status >= 500 {
        tracing::error!(code = %e.code, "internal error");
    }
    let kind = if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        escape(&e.code),
        escape(&e.message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_entries_become_lists_and_maps() {
        let p = Params::parse(
            b"Action=PutMetricData&MetricData.member.2.MetricName=b&MetricData.member.1.MetricName=a&MetricData.member.1.Dimensions.member.1.Name=InstanceId&Attributes.entry.1.key=DisplayName&Attributes.entry.1.value=Ops&MessageAttributes.entry.1.Name=k&MessageAttributes.entry.1.Value.DataType=String",
        );
        let t = tree(&p);
        assert_eq!(t["MetricData"][0]["MetricName"], "a");
        assert_eq!(t["MetricData"][1]["MetricName"], "b");
        assert_eq!(t["MetricData"][0]["Dimensions"][0]["Name"], "InstanceId");
        assert_eq!(t["Attributes"]["DisplayName"], "Ops");
        assert_eq!(t["MessageAttributes"]["k"]["DataType"], "String");
    }

    #[test]
    fn answers_render_lists_maps_and_timestamps() {
        static S: QueryService = QueryService {
            xmlns: "urn:x",
            timestamps: &["Timestamp"],
            maps: &["Attributes"],
            handler: |_, _| Ok(Value::Null),
            iam_prefix: "test",
            resource: super::super::json::any_resource,
        };
        let v = serde_json::json!({
            "Datapoints": [{"Timestamp": 0, "Sum": 2.5}],
            "Attributes": {"A": "<b>"},
        });
        let xml = render("GetX", &v, &S, "rid");
        assert!(xml.contains("<Datapoints><member><Sum>2.5</Sum><Timestamp>1970-01-01T00:00:00.000Z</Timestamp></member></Datapoints>"), "{xml}");
        assert!(
            xml.contains(
                "<Attributes><entry><key>A</key><value>&lt;b&gt;</value></entry></Attributes>"
            ),
            "{xml}"
        );
        assert!(xml.contains("<GetXResult>") && xml.contains("<RequestId>rid</RequestId>"));
    }
}
