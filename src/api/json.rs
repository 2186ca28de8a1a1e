//! The AWS JSON protocol (1.0 and 1.1), shared by every service that speaks it
//! (CloudWatch Logs today; DynamoDB, ECS, ECR, SSM … later).
//!
//! A request is `POST /` with `X-Amz-Target: <Prefix>.<Operation>` and a JSON object
//! body; the answer is a JSON object with `Content-Type: application/x-amz-json-1.1`
//! (or 1.0). An error is HTTP 400 (500 for internal failures) with the body
//! `{"__type": "<Code>", "message": "…"}` and the same code in `x-amzn-ErrorType`, which
//! is what botocore reads for the `An error occurred (<Code>)` line of the CLI.
//!
//! A service supplies a [`JsonService`]: its content type, the code it uses for
//! malformed input, and a function from ([`JsonCall`], operation) to a JSON answer. The
//! layer does the rest: body limit, SigV4 through [`AppState::authenticate`], the
//! region and clock ([`Env`]), the lock on the model, and the error shape. Handlers read
//! parameters with [`Body`]'s typed getters, which answer wrong types with the
//! service's validation error instead of panicking.

use std::collections::BTreeMap;

use axum::body::Body as HttpBody;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value};

use super::iam::authz::Denial;
use super::{AppState, MAX_BODY, sigv4};
use crate::model::{ApiError, ApiResult, Control, Env, World};

/// What a JSON-protocol service tells the shared layer.
pub struct JsonService {
    /// `application/x-amz-json-1.1` or `-1.0`.
    pub content_type: &'static str,
    /// The code of a request the service cannot parse (`InvalidParameterException` for
    /// CloudWatch Logs, `ValidationException` for DynamoDB …).
    pub validation_code: &'static str,
    /// Output members holding timestamps, given by the handler in epoch milliseconds
    /// and sent as epoch seconds (the JSON protocols' timestamp format). Empty for
    /// services whose members are plain millisecond numbers (CloudWatch Logs).
    pub timestamps: &'static [&'static str],
    /// Whether errors also carry `x-amzn-query-error: <Code>;Sender` (services that
    /// were Query services before, with the `awsQueryCompatible` trait: CloudWatch).
    pub query_compatible: bool,
    pub handler: fn(&mut JsonCall, &str) -> ApiResult<Value>,
    /// The service prefix of its IAM actions (`logs`, `dynamodb` …).
    pub iam_prefix: &'static str,
    /// The ARN a call is authorized against: (region, account, body) → ARN or `*`.
    pub resource: fn(&str, &str, &Body) -> String,
    /// The IAM roles a call hands to an AWS service, each with the service principal it
    /// is passed to: each needs `iam:PassRole` besides the call's own action. Takes the
    /// caller's account (for role names given without an ARN), the operation and body.
    pub passed_roles: fn(&str, &str, &Body) -> Vec<(String, &'static str)>,
}

/// A service none of whose calls hand a role to AWS.
pub fn no_roles(_account: &str, _op: &str, _body: &Body) -> Vec<(String, &'static str)> {
    Vec::new()
}

/// The resource of a service whose calls vpclab authorizes against `*` (no resource
/// types in the Service Authorization Reference that vpclab models yet).
pub fn any_resource(_region: &str, _account: &str, _body: &Body) -> String {
    "*".to_string()
}

/// Rewrites the members named in `names` (epoch ms) as epoch seconds, at any depth.
pub fn seconds(v: &mut Value, names: &[&str], is_ts: bool) {
    match v {
        Value::Number(n) if is_ts => {
            if let Some(ms) = n.as_f64() {
                *v = serde_json::json!(ms / 1000.0);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| seconds(x, names, is_ts)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                seconds(x, names, names.contains(&k.as_str()));
            }
        }
        _ => {}
    }
}

/// One JSON-protocol call in progress.
pub struct JsonCall<'a> {
    pub body: Body,
    pub account: String,
    pub env: Env,
    pub control: &'a mut Control,
    /// How long instances this call launches stay `pending` (the daemon's setting).
    pub boot_delay_ms: i64,
    /// vpclab's certificate authority (ACM issues with it), when the daemon has one.
    pub ca: Option<std::sync::Arc<crate::tls::Ca>>,
}

impl JsonCall<'_> {
    /// The account's world as it is now.
    pub fn read(&mut self) -> ApiResult<std::sync::Arc<World>> {
        self.control.read(&self.account, &self.env)
    }

    /// A model mutation through the one door (validated, committed, published).
    pub fn mutate<R>(&mut self, f: impl FnOnce(&mut World, &Env) -> ApiResult<R>) -> ApiResult<R> {
        self.control.mutate(&self.account, &self.env, false, f)
    }
}

/// A request's JSON object, with getters that name the member in their errors.
pub struct Body {
    map: Map<String, Value>,
    code: &'static str,
}

impl Body {
    /// A body already decoded by another protocol layer (RPC v2 CBOR, awsQuery).
    pub fn from_map(map: Map<String, Value>, code: &'static str) -> Body {
        Body { map, code }
    }

    /// Parses a request body: empty means `{}`; anything but an object is refused.
    pub fn parse(bytes: &[u8], code: &'static str) -> ApiResult<Body> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body {
                map: Map::new(),
                code,
            });
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Body { map, code }),
            _ => Err(ApiError::new(
                "SerializationException",
                "The request body is not a JSON object.",
            )),
        }
    }

    fn wrong(&self, name: &str, what: &str) -> ApiError {
        ApiError::new(
            self.code,
            format!(
                "1 validation error detected: Value at '{name}' failed to satisfy constraint: Member must be {what}"
            ),
        )
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> ApiResult<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(name, "a string")),
        }
    }

    pub fn required_str(&self, name: &str) -> ApiResult<&str> {
        self.str(name)?.ok_or_else(|| {
            ApiError::new(
                self.code,
                format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"),
            )
        })
    }

    pub fn int(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "an integer")),
        }
    }

    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(name, "a boolean")),
        }
    }

    pub fn str_list(&self, name: &str) -> ApiResult<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.wrong(name, "a list of strings")),
            Some(_) => Err(self.wrong(name, "a list of strings")),
        }
    }

    pub fn str_map(&self, name: &str) -> ApiResult<BTreeMap<String, String>> {
        match self.get(name) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect::<Option<BTreeMap<_, _>>>()
                .ok_or_else(|| self.wrong(name, "a map of strings")),
            Some(_) => Err(self.wrong(name, "a map of strings")),
        }
    }

    pub fn list(&self, name: &str) -> ApiResult<&[Value]> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.wrong(name, "a list")),
        }
    }
}

/// Serves one JSON-protocol request of `service`.
pub async fn endpoint(state: AppState, req: Request, service: &'static JsonService) -> Response {
    let (parts, body) = req.into_parts();
    let request_id = state.request_id();
    let result = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => handle(&state, &super::signed_request(&parts), &bytes, service),
        Err(_) => Err(ApiError::new(
            "RequestEntityTooLargeException",
            format!("The request body exceeds the maximum allowed size of {MAX_BODY} bytes."),
        )
        .with_status(413)),
    };
    match result {
        Ok(mut v) => {
            if !service.timestamps.is_empty() {
                seconds(&mut v, service.timestamps, false);
            }
            respond(200, service.content_type, v.to_string(), None, &request_id)
        }
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(code = %e.code, "internal error");
            }
            let body = serde_json::json!({ "__type": e.code, "message": e.message }).to_string();
            let mut resp = respond(
                e.status,
                service.content_type,
                body,
                Some(&e.code),
                &request_id,
            );
            if service.query_compatible {
                let kind = if e.status >= 500 {
                    "Receiver"
                } else {
                    "Sender"
                };
                if let Ok(h) = HeaderValue::from_str(&format!("{};{kind}", e.code)) {
                    resp.headers_mut().insert("x-amzn-query-error", h);
                }
            }
            resp
        }
    }
}

/// Handles a request from its parts; pure with respect to HTTP, so tests can call it
/// without a socket.
pub fn handle(
    state: &AppState,
    req: &sigv4::SignedRequest,
    bytes: &[u8],
    service: &JsonService,
) -> ApiResult<Value> {
    let identity = state.authenticate(req, bytes)?;
    let target = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let Some((_, op)) = target.split_once('.') else {
        return Err(ApiError::new(
            "UnknownOperationException",
            "The request has no X-Amz-Target operation.",
        ));
    };
    let body = Body::parse(bytes, service.validation_code)?;
    let handler = Handler {
        iam_prefix: service.iam_prefix,
        resource: service.resource,
        run: service.handler,
        denied: Denial::json,
        passed_roles: service.passed_roles,
    };
    dispatch(state, req, identity, op, body, &handler)
}

/// What a protocol layer hands `dispatch`: the service's IAM prefix and resource
/// function, its handler, and how the protocol words a refusal.
pub struct Handler {
    pub iam_prefix: &'static str,
    pub resource: fn(&str, &str, &Body) -> String,
    pub run: fn(&mut JsonCall, &str) -> ApiResult<Value>,
    /// `Denial::json` (`AccessDeniedException`) or `Denial::query` (`AccessDenied`).
    pub denied: fn(&Denial) -> ApiError,
    /// The roles the call passes to a service ([`JsonService::passed_roles`]).
    pub passed_roles: fn(&str, &str, &Body) -> Vec<(String, &'static str)>,
}

/// The part every protocol shares once it has read the operation and its body (JSON,
/// CBOR and awsQuery): build the `Env`, lock the model, authorize `prefix:Operation` on
/// the call's resource, and run the handler under the lock.
pub fn dispatch(
    state: &AppState,
    req: &sigv4::SignedRequest,
    identity: sigv4::Identity,
    op: &str,
    body: Body,
    handler: &Handler,
) -> ApiResult<Value> {
    let env = Env::new(identity.credential.region.clone(), (state.clock)()).with_action(op);
    let mut control = state.lock();
    let resource = (handler.resource)(&identity.credential.region, &identity.account, &body);
    state
        .authorize(
            &control,
            &identity,
            &format!("{}:{op}", handler.iam_prefix),
            &resource,
            req,
        )
        .map_err(|d| (handler.denied)(&d))?;
    for (role, service) in (handler.passed_roles)(&identity.account, op, &body) {
        state
            .authorize_pass_role(&control, &identity, &[role], service, req)
            .map_err(|d| (handler.denied)(&d))?;
    }
    let mut call = JsonCall {
        body,
        account: identity.account,
        env,
        control: &mut control,
        boot_delay_ms: state.boot_delay_ms,
        ca: state.ca.clone(),
    };
    (handler.run)(&mut call, op)
}

/// The error for an operation a JSON service does not have (or vpclab does not emulate).
pub fn unknown_operation(op: &str) -> ApiError {
    ApiError::new(
        "UnknownOperationException",
        format!("vpclab does not implement the operation {op} (see docs/api.md)"),
    )
}

fn respond(
    status: u16,
    content_type: &'static str,
    body: String,
    error: Option<&str>,
    request_id: &str,
) -> Response {
    let mut resp = Response::new(HttpBody::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(code) = error.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert("x-amzn-ErrorType", code);
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
    fn bodies_are_objects_and_getters_refuse_wrong_types() {
        assert!(Body::parse(b"", "X").is_ok());
        assert_eq!(
            Body::parse(b"[1]", "X").err().map(|e| e.code),
            Some("SerializationException".into())
        );
        let b = Body::parse(br#"{"a":"s","n":3,"l":["x"],"m":{"k":"v"},"z":null}"#, "X").unwrap();
        assert_eq!(b.str("a").unwrap(), Some("s"));
        assert_eq!(b.int("n").unwrap(), Some(3));
        assert_eq!(b.str("z").unwrap(), None);
        assert_eq!(b.int("a").unwrap_err().code, "X");
        assert_eq!(b.required_str("missing").unwrap_err().code, "X");
        assert_eq!(b.str_list("l").unwrap(), vec!["x".to_string()]);
        assert_eq!(b.str_map("m").unwrap()["k"], "v");
        assert!(b.str_map("l").is_err());
    }
}
