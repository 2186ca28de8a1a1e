//! The Smithy RPC v2 CBOR protocol (`smithy-rpc-v2-cbor`), shared by every service that
//! speaks it (CloudWatch today: boto3 with botocore 1.43 prefers it for CloudWatch; the
//! aws CLI v1.45 still sends AWS JSON 1.0).
//!
//! A request is `POST /service/<ServiceName>/operation/<Operation>` with the header
//! `smithy-protocol: rpc-v2-cbor` and a CBOR map body (empty when the input is empty);
//! the answer carries the same header, `Content-Type: application/cbor`, and a CBOR map.
//! Timestamps travel as CBOR tag 1 (epoch seconds, integer or float). An error is HTTP
//! 400 (500 for internal failures) with the map `{"__type": <Code>, "message": …}`; a
//! service that was a Query service before (the `awsQueryCompatible` trait, CloudWatch)
//! also sends `x-amzn-query-error: <Code>;Sender`, which botocore prefers for the
//! `An error occurred (<Code>)` line.
//!
//! The layer turns CBOR into the same JSON tree the JSON protocol hands its handlers
//! ([`Body`]), so a service's handler does not know which protocol the request used.
//! Handlers give timestamps as epoch milliseconds under the member names listed in the
//! service's `timestamps`; the layer writes them as tag 1.

use axum::body::Body as HttpBody;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value};

use super::iam::authz::Denial;
use super::json::{Body, Handler, JsonCall, dispatch};
use super::{AppState, MAX_BODY, sigv4};
use crate::model::{ApiError, ApiResult};

/// What an RPC v2 CBOR service tells the shared layer.
pub struct CborService {
    /// The service shape's name, the second segment of the path
    /// (`GraniteServiceVersion20100801` for CloudWatch).
    pub name: &'static str,
    /// The code of a request the service cannot parse.
    pub validation_code: &'static str,
    /// Whether errors also carry `x-amzn-query-error` (the `awsQueryCompatible` trait).
    pub query_compatible: bool,
    /// Output members holding timestamps (epoch milliseconds in the handler's answer).
    pub timestamps: &'static [&'static str],
    pub handler: fn(&mut JsonCall, &str) -> ApiResult<Value>,
    /// The service prefix of its IAM actions (`cloudwatch` …).
    pub iam_prefix: &'static str,
    /// The ARN a call is authorized against: (region, account, body) → ARN or `*`.
    pub resource: fn(&str, &str, &Body) -> String,
}

/// Whether a request speaks this protocol (its header says so).
pub fn is_rpc_v2_cbor(req: &Request) -> bool {
    req.headers()
        .get("smithy-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("rpc-v2-cbor"))
}

/// Serves one RPC v2 CBOR request of `service`.
pub async fn endpoint(state: AppState, req: Request, service: &'static CborService) -> Response {
    let (parts, body) = req.into_parts();
    let request_id = state.request_id();
    let result = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => handle(&state, &super::signed_request(&parts), &bytes, service),
        Err(_) => Err(ApiError::new(
            "RequestEntityTooLarge",
            format!("The request body exceeds the maximum allowed size of {MAX_BODY} bytes."),
        )
        .with_status(413)),
    };
    match result {
        Ok(v) => respond(200, encode(&v, service.timestamps), None, &request_id),
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(code = %e.code, "internal error");
            }
            let body = encode(
                &serde_json::json!({ "__type": e.code, "message": e.message }),
                &[],
            );
            let query_error = service.query_compatible.then(|| {
                format!(
                    "{};{}",
                    e.code,
                    if e.status >= 500 {
                        "Receiver"
                    } else {
                        "Sender"
                    }
                )
            });
            respond(e.status, body, query_error, &request_id)
        }
    }
}

/// Handles a request from its parts; pure with respect to HTTP.
pub fn handle(
    state: &AppState,
    req: &sigv4::SignedRequest,
    bytes: &[u8],
    service: &CborService,
) -> ApiResult<Value> {
    let identity = state.authenticate(req, bytes)?;
    // /service/<name>/operation/<op>
    let mut segments = req.path.trim_start_matches('/').split('/');
    let op = match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some("service"), Some(name), Some("operation"), Some(op), None)
            if name == service.name && !op.is_empty() =>
        {
            op.to_string()
        }
        _ => {
            return Err(ApiError::new(
                "UnknownOperationException",
                format!(
                    "The path {} is not /service/{}/operation/<Operation>.",
                    req.path, service.name
                ),
            )
            .with_status(404));
        }
    };
    let body = if bytes.is_empty() {
        Body::from_map(Map::new(), service.validation_code)
    } else {
        match decode(bytes) {
            Ok(Value::Object(map)) => Body::from_map(map, service.validation_code),
            _ => {
                return Err(ApiError::new(
                    "SerializationException",
                    "The request body is not a CBOR map.",
                ));
            }
        }
    };
    let handler = Handler {
        iam_prefix: service.iam_prefix,
        resource: service.resource,
        run: service.handler,
        denied: Denial::json,
        passed_roles: super::json::no_roles,
    };
    dispatch(state, req, identity, &op, body, &handler)
}

/// CBOR bytes → the JSON tree handlers read. Tag 1 (a timestamp) becomes its epoch
/// seconds, byte strings become base64 text (as the JSON protocols carry blobs).
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let v: Cbor = ciborium::de::from_reader(bytes).map_err(|e| e.to_string())?;
    to_json(v, 0)
}

/// Deepest nesting accepted (ciborium has its own recursion limit; this one bounds
/// the conversion).
const MAX_DEPTH: usize = 64;

fn to_json(v: Cbor, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    Ok(match v {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            if let Ok(n) = i64::try_from(i) {
                Value::Number(n.into())
            } else if let Ok(n) = u64::try_from(i) {
                Value::Number(n.into())
            } else {
                return Err("integer out of range".into());
            }
        }
        Cbor::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Cbor::Array(a) => Value::Array(
            a.into_iter()
                .map(|x| to_json(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let Cbor::Text(k) = k else {
                    return Err("map keys must be text".into());
                };
                out.insert(k, to_json(v, depth + 1)?);
            }
            Value::Object(out)
        }
        Cbor::Tag(_, inner) => to_json(*inner, depth + 1)?,
        _ => return Err("unsupported CBOR item".into()),
    })
}

/// The handler's JSON answer → CBOR bytes; members named in `timestamps` (numbers of
/// epoch milliseconds, or lists of them) become tag 1 with epoch seconds.
pub fn encode(v: &Value, timestamps: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(&to_cbor(v, timestamps, false), &mut out);
    out
}

fn timestamp(v: &Value) -> Cbor {
    let ms = v.as_f64().unwrap_or(0.0);
    Cbor::Tag(1, Box::new(Cbor::Float(ms / 1000.0)))
}

fn to_cbor(v: &Value, timestamps: &[&str], is_ts: bool) -> Cbor {
    match v {
        Value::Number(_) if is_ts => timestamp(v),
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cbor::Integer(i.into()),
            (None, Some(u)) => Cbor::Integer(u.into()),
            _ => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(a) => Cbor::Array(a.iter().map(|x| to_cbor(x, timestamps, is_ts)).collect()),
        Value::Object(m) => Cbor::Map(
            m.iter()
                .map(|(k, x)| {
                    (
                        Cbor::Text(k.clone()),
                        to_cbor(x, timestamps, timestamps.contains(&k.as_str())),
                    )
                })
                .collect(),
        ),
    }
}

fn respond(status: u16, body: Vec<u8>, query_error: Option<String>, request_id: &str) -> Response {
    let mut resp = Response::new(HttpBody::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/cbor"),
    );
    h.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    if let Some(q) = query_error.and_then(|q| HeaderValue::from_str(&q).ok()) {
        h.insert("x-amzn-query-error", q);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_as_tag_1_and_other_values_as_themselves() {
        let v = serde_json::json!({
            "Timestamp": 1_700_000_000_500i64,
            "Timestamps": [1_700_000_000_000i64],
            "Label": "x",
            "Values": [1.5, 2],
            "Ok": true,
        });
        let bytes = encode(&v, &["Timestamp", "Timestamps"]);
        let raw: Cbor = ciborium::de::from_reader(&bytes[..]).unwrap();
        let Cbor::Map(m) = &raw else { panic!() };
        let ts = m
            .iter()
            .find(|(k, _)| k.as_text() == Some("Timestamp"))
            .unwrap();
        assert!(matches!(&ts.1, Cbor::Tag(1, inner) if inner.as_float() == Some(1_700_000_000.5)));
        let back = decode(&bytes).unwrap();
        assert_eq!(back["Timestamp"].as_f64(), Some(1_700_000_000.5));
        assert_eq!(back["Label"], "x");
        assert_eq!(back["Values"][1], 2);
        assert_eq!(back["Ok"], true);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[0xff, 0x00, 0x13]).is_err());
        assert!(decode(&[0xa1, 0x01, 0x02]).is_err()); // {1: 2}: key not text
        assert!(decode(b"").is_err());
    }
}
