//! The AWS wire protocols: HTTP in, model calls, XML out. No business rules live here:
//! handlers parse parameters, call one `World` method through [`Call::mutate`] (or read a
//! snapshot with [`Call::read`]) and render the result.
//!
//! - `POST /` (form body) and `GET /?…` (query string): the EC2 Query API ([`ec2`]).
//!   `Action` selects the handler; `Version` is accepted as sent.
//! - Route 53 (REST-XML under `/2013-04-01/`) is added as `route53.rs` by merging its
//!   router in [`router`] (see the marked line).
//!
//! Every request: [`AppState::authenticate`] parses SigV4 `Authorization` for access key →
//! account and credential scope → region, and with `--auth strict` verifies the signature
//! ([`sigv4`]); the body is limited to [`MAX_BODY`]; each error is an AWS error document
//! (`<Response><Errors><Error><Code>…`), never a bare 500 or a panic. Other protocols
//! (Route 53) call `AppState::authenticate` with [`signed_request`] of their request.
//!
//! # Adding an EC2 action (e.g. `DescribeKeyPairs`)
//!
//! 1. In the module of its resource family (e.g. a new `src/api/ec2/key_pair.rs`, listed
//!    in `ec2/mod.rs`'s `mod` lines and in [`ec2::ACTION_GROUPS`]) write
//!    `fn describe_key_pairs(c: &mut Call) -> ApiResult<Xml>` and add
//!    `("DescribeKeyPairs", describe_key_pairs)` to that module's `pub const ACTIONS`.
//! 2. Parse with `c.params` ([`query::Params`]: `required`, `get`, `bool`, `int`,
//!    `list("KeyName")`, `structs("IpPermissions")`, `filters()`, `tag_specs()`).
//!    Parameter names are the EC2 query names (botocore's `locationName`, capitalised).
//! 3. Mutations: `let id = c.mutate(|w, env| w.create_key_pair(env, …))?;`: this is the
//!    one door (validation, SQLite transaction, fabric notification, DryRun). Reads:
//!    `let w = c.read()?;` then `w.select(&w.key_pairs, &c.env.region, &ids, &filters,
//!    not_found)` and [`ec2::paginate`].
//! 4. Render the children of `<{Action}Response>` with [`xml::Xml`]: `x.leaf`, `x.opt`,
//!    `x.node`, `x.set("keySet", rows, |x, r| …)`, [`ec2::tag_set`]. Element names are
//!    botocore's `locationName`s. `requestId` and the envelope are added for you.

pub mod ec2;
pub mod query;
pub mod route53;
pub mod services;
pub mod sigv4;
pub mod xml;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::model::{ApiError, ApiResult, Control, Env, World};
use query::Params;
use xml::{Xml, escape};

/// Largest request body accepted (AWS's Query API limit is of the same order).
pub const MAX_BODY: usize = 1 << 20;

/// The EC2 XML namespace of API version 2016-11-15.
pub const EC2_XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

pub use crate::model::{Clock, system_clock};

/// Shared state of the API server.
#[derive(Clone)]
pub struct AppState {
    pub control: Arc<Mutex<Control>>,
    pub clock: Clock,
    /// How requests are authenticated (open by default).
    pub auth: sigv4::AuthMode,
    /// Route 53 health-check results (GetHealthCheckStatus reads them).
    pub health: crate::dns::health::HealthBoard,
    /// How long instances stay `pending`/`stopping`/`shutting-down`, in milliseconds.
    pub boot_delay_ms: i64,
    requests: Arc<AtomicU64>,
}

impl AppState {
    pub fn new(control: Arc<Mutex<Control>>, clock: Clock) -> AppState {
        AppState {
            control,
            clock,
            auth: sigv4::AuthMode::Open,
            health: crate::dns::health::HealthBoard::new(crate::dns::Views::default()),
            boot_delay_ms: crate::model::ec2::instance::DEFAULT_BOOT_DELAY_MS,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the authentication mode (`--auth strict`).
    pub fn with_auth(mut self, auth: sigv4::AuthMode) -> AppState {
        self.auth = auth;
        self
    }

    /// Sets how long instance state transitions take.
    pub fn with_boot_delay(mut self, delay: std::time::Duration) -> AppState {
        self.boot_delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Shares the health board the prober fills and the DNS view reads.
    pub fn with_health(mut self, board: crate::dns::health::HealthBoard) -> AppState {
        self.health = board;
        self
    }

    /// Authenticates a request of any protocol: the account it acts for and its
    /// credential scope (region, service). Route 53 and other endpoints call this too.
    pub fn authenticate(
        &self,
        req: &sigv4::SignedRequest,
        body: &[u8],
    ) -> ApiResult<sigv4::Identity> {
        self.auth.authenticate(req, body)
    }

    /// Locks the control. A poisoned lock is taken over: mutations run on copies, so the
    /// live worlds are consistent even if a handler panicked.
    pub fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh request id, UUID-shaped as AWS's.
    pub fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let a = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5bd1_e995;
        let t = (self.clock)().0 as u64;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t & 0xffff_ffff) as u32,
            (n & 0xffff) as u16,
            (a >> 20) & 0xfff,
            (a >> 8) & 0xfff,
            a & 0xffff_ffff_ffff
        )
    }
}

/// One EC2 call in progress: its parameters, account, region/time, and access to the
/// model through the one door.
pub struct Call<'a> {
    pub params: &'a Params,
    /// How long instance state transitions take (the daemon's setting).
    pub boot_delay_ms: i64,
    pub account: String,
    pub env: Env,
    pub dry_run: bool,
    pub control: &'a mut Control,
}

impl Call<'_> {
    /// The account's world as it is now (the region's default VPC is created on first use).
    pub fn read(&mut self) -> ApiResult<Arc<World>> {
        self.control.read(&self.account, &self.env)
    }

    /// Applies a model mutation: validated, committed in one SQLite transaction before
    /// this returns, then published to subscribers. With `DryRun=true` nothing is
    /// committed and success becomes `DryRunOperation`.
    pub fn mutate<R>(&mut self, f: impl FnOnce(&mut World, &Env) -> ApiResult<R>) -> ApiResult<R> {
        self.control
            .mutate(&self.account, &self.env, self.dry_run, f)
    }
}

/// The HTTP router: every request goes to the service [`services::route`] picks.
pub fn router(state: AppState) -> Router {
    Router::new()
        .fallback(|State(state): State<AppState>, req: Request| services::dispatch(state, req))
        .with_state(state)
}

fn not_found(state: &AppState) -> Response {
    let id = state.request_id();
    xml_response(
        404,
        ec2_error_body(
            &ApiError::new(
                "InvalidAction",
                "The requested URL is not served by vpclab.",
            )
            .with_status(404),
            &id,
        ),
    )
}

fn xml_response(status: u16, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    resp
}

/// An EC2 error document (`<Response><Errors><Error>…</Errors><RequestID>…`).
pub fn ec2_error_body(e: &ApiError, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        escape(&e.code),
        escape(&e.message),
        request_id
    )
}

/// The EC2 Query endpoint (`/`, form body or query string).
pub(crate) async fn ec2_endpoint(state: AppState, req: Request) -> Response {
    if req.uri().path() != "/" {
        return not_found(&state);
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let id = state.request_id();
            let e = ApiError::new(
                "RequestEntityTooLarge",
                format!("The request body exceeds the maximum allowed size of {MAX_BODY} bytes."),
            )
            .with_status(413);
            return xml_response(413, ec2_error_body(&e, &id));
        }
    };
    let (status, body) = handle_ec2(&state, &signed_request(&parts), &bytes);
    xml_response(status, body).into_response()
}

/// The parts of an HTTP request SigV4 covers.
pub fn signed_request(parts: &axum::http::request::Parts) -> sigv4::SignedRequest {
    sigv4::SignedRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    }
}

/// Handles one EC2 Query request from its parts; returns (HTTP status, XML body). Pure
/// with respect to HTTP, so tests can call it without a socket.
pub fn handle_ec2(state: &AppState, req: &sigv4::SignedRequest, body: &[u8]) -> (u16, String) {
    let request_id = state.request_id();
    let mut params = Params::default();
    if let Some(q) = &req.query {
        params.extend_from(q.as_bytes());
    }
    params.extend_from(body);
    let action = params.get("Action").unwrap_or("").to_string();
    match run_ec2(state, req, body, &params, &action) {
        Ok(inner) => {
            let name = escape(&action);
            (
                200,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{name}Response xmlns=\"{EC2_XMLNS}\"><requestId>{request_id}</requestId>{inner}</{name}Response>"
                ),
            )
        }
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(action = %action, code = %e.code, "internal error");
            }
            (e.status, ec2_error_body(&e, &request_id))
        }
    }
}

fn run_ec2(
    state: &AppState,
    req: &sigv4::SignedRequest,
    body: &[u8],
    params: &Params,
    action: &str,
) -> ApiResult<String> {
    let identity = state.authenticate(req, body)?;
    let cred = identity.credential;
    if action.is_empty() {
        return Err(ApiError::new(
            "MissingAction",
            "The request must contain the parameter Action",
        ));
    }
    let handler = ec2::find(action).ok_or_else(|| {
        ApiError::new(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )
    })?;
    let dry_run = params.bool("DryRun")?.unwrap_or(false);
    let env = Env::new(cred.region.clone(), (state.clock)()).with_action(action);
    let mut control = state.lock();
    let mut call = Call {
        params,
        boot_delay_ms: state.boot_delay_ms,
        account: identity.account,
        env,
        dry_run,
        control: &mut control,
    };
    match handler(&mut call) {
        Ok(_) if dry_run => Err(ApiError::dry_run_ok()),
        Ok(x) => Ok(x.finish()),
        Err(e) => Err(e),
    }
}

/// Serves the API on a bound listener until `shutdown` resolves (graceful: in-flight
/// requests finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A convenience for handlers: an empty body.
pub fn empty() -> Xml {
    Xml::new()
}
