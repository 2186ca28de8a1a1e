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
//! account and credential scope → region, and with `--auth strict` verifies the signature,
//! the payload hash and the request time against [`AppState::clock`] ([`sigv4`]); the body is limited to [`MAX_BODY`]; each error is an AWS error document
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

pub mod acm;
pub mod autoscaling;
pub mod awsquery;
pub mod cbor;
pub mod cloudwatch;
pub mod dynamodb;
pub mod ec2;
pub mod ecr;
pub mod ecs;
pub mod elb;
pub mod iam;
pub mod json;
pub mod lambda;
pub mod logs;
pub mod query;
pub mod route53;
pub mod s3;
pub mod services;
pub mod sigv4;
pub mod sns;
pub mod ssm;
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
    /// `--iam enforce`: identity policies apply in every account.
    pub iam_enforce: bool,
    /// Where S3 object bytes live (`None`: S3 answers ServiceUnavailable).
    pub objects: Option<Arc<s3::blob::BlobStore>>,
    /// DynamoDB's per-account databases (`None`: DynamoDB answers InternalServerError).
    pub dynamodb: Option<Arc<dynamodb::Tables>>,
    /// The ECR registry endpoint's files (`None`: the registry answers UNAVAILABLE).
    pub ecr: Option<Arc<ecr::registry::Registry>>,
    /// Lambda's code store and function runtime (`None`: Lambda answers ServiceException).
    pub lambda: Option<Arc<lambda::Functions>>,
    /// vpclab's certificate authority, which signs the certificates ACM issues (`None`:
    /// RequestCertificate answers `ServiceUnavailableException`).
    pub ca: Option<Arc<crate::tls::Ca>>,
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
            iam_enforce: false,
            objects: None,
            dynamodb: None,
            ecr: None,
            lambda: None,
            ca: None,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the authentication mode (`--auth strict`).
    pub fn with_auth(mut self, auth: sigv4::AuthMode) -> AppState {
        self.auth = auth;
        self
    }

    /// Applies IAM policies in every account (`--iam enforce`).
    pub fn with_iam_enforce(mut self, on: bool) -> AppState {
        self.iam_enforce = on;
        self
    }

    /// Whether signatures are verified (only then do IAM identities exist).
    pub fn auth_is_strict(&self) -> bool {
        matches!(self.auth, sigv4::AuthMode::Strict(_))
    }

    /// The one authorization gate ([`iam::authz::authorize`]) for a caller that is
    /// already authenticated, under the control lock the handler holds.
    pub fn authorize(
        &self,
        control: &Control,
        identity: &sigv4::Identity,
        action: &str,
        resource: &str,
        req: &sigv4::SignedRequest,
    ) -> Result<(), iam::authz::Denial> {
        iam::authz::authorize(
            control,
            self.iam_enforce,
            identity,
            action,
            resource,
            (self.clock)(),
            iam::source_ip(req).as_deref(),
        )
    }

    /// [`iam::authz::authorize_pass_role`] for every role a call hands to `service`.
    pub fn authorize_pass_role(
        &self,
        control: &Control,
        identity: &sigv4::Identity,
        roles: &[String],
        service: &str,
        req: &sigv4::SignedRequest,
    ) -> Result<(), iam::authz::Denial> {
        let ip = iam::source_ip(req);
        for role in roles {
            iam::authz::authorize_pass_role(
                control,
                self.iam_enforce,
                identity,
                role,
                service,
                (self.clock)(),
                ip.as_deref(),
            )?;
        }
        Ok(())
    }

    /// Gives S3 its object store (the daemon's `objects/` folder).
    pub fn with_objects(mut self, blobs: s3::blob::BlobStore) -> AppState {
        self.objects = Some(Arc::new(blobs));
        self
    }

    /// Gives the ECR registry endpoint its folder.
    pub fn with_ecr(mut self, registry: ecr::registry::Registry) -> AppState {
        self.ecr = Some(Arc::new(registry));
        self
    }

    /// Gives Lambda its code store and runtime.
    /// Gives ACM the certificate authority it issues certificates with.
    pub fn with_ca(mut self, ca: Arc<crate::tls::Ca>) -> AppState {
        self.ca = Some(ca);
        self
    }

    pub fn with_lambda(mut self, functions: lambda::Functions) -> AppState {
        self.lambda = Some(Arc::new(functions));
        self
    }

    /// Gives DynamoDB its folder of per-account databases.
    pub fn with_dynamodb(mut self, tables: dynamodb::Tables) -> AppState {
        self.dynamodb = Some(Arc::new(tables));
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

    /// Authenticates a request of any protocol at the state's clock: the account it acts
    /// for and its credential scope (region, service). Route 53, `/_vpclab/connect` and
    /// other endpoints call this too, so strict mode's time and payload checks cover them.
    pub fn authenticate(
        &self,
        req: &sigv4::SignedRequest,
        body: &[u8],
    ) -> ApiResult<sigv4::Identity> {
        self.auth.authenticate(req, body, (self.clock)())
    }

    /// [`AppState::authenticate`] for a body hashed as it streamed by.
    pub fn authenticate_payload(
        &self,
        req: &sigv4::SignedRequest,
        body: sigv4::Payload<'_>,
    ) -> ApiResult<sigv4::Identity> {
        self.auth.authenticate_payload(req, body, (self.clock)())
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

/// Middleware: requests whose Host names an S3 bucket or website go to S3.
pub async fn s3_hosts(
    State(state): State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if s3::is_s3_host(req.headers()) {
        return s3::endpoint(state, req).await;
    }
    // Function URLs, before the registry's `/v2/` paths could claim one.
    if lambda::url::is_url_request(req.headers()) {
        return lambda::url::serve(state, req).await;
    }
    // The ECR registry (OCI distribution API): by its Host or a `/v2/` path.
    if ecr::registry::is_registry_request(&req) {
        return ecr::registry::endpoint(state, req).await;
    }
    next.run(req).await
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

/// The pseudo-header carrying the client's address (from the connection, never from
/// the client: a header of that name sent by a client is dropped). It is not signed, so
/// it does not take part in SigV4.
pub const SOURCE_IP_HEADER: &str = "x-vpclab-source-ip";

/// The parts of an HTTP request SigV4 covers, plus the client's address.
pub fn signed_request(parts: &axum::http::request::Parts) -> sigv4::SignedRequest {
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != SOURCE_IP_HEADER)
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    if let Some(axum::extract::ConnectInfo(peer)) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        headers.push((SOURCE_IP_HEADER.to_string(), peer.ip().to_string()));
    }
    sigv4::SignedRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers,
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
    let cred = identity.credential.clone();
    params.check_xml_text()?;
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
    let resource = iam::authz::ec2_resource(action, params, &cred.region, &identity.account);
    state
        .authorize(
            &control,
            &identity,
            &format!("ec2:{action}"),
            &resource,
            req,
        )
        .map_err(|d| d.ec2())?;
    if matches!(
        action,
        "RunInstances" | "AssociateIamInstanceProfile" | "ReplaceIamInstanceProfileAssociation"
    ) {
        state
            .authorize_pass_role(
                &control,
                &identity,
                &ec2::passed_roles(&control, &identity.account, params),
                "ec2.amazonaws.com",
                req,
            )
            .map_err(|d| d.ec2())?;
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use super::*;
    use crate::api::sigv4::{AccessKey, AuthMode, KeyFile, SignedRequest, sign};
    use crate::model::Timestamp;

    const T0: i64 = 1_764_000_000_000;

    fn key() -> AccessKey {
        AccessKey {
            access_key: "AKIAALICE0000000000".into(),
            secret_key: "alice-secret".into(),
            account: "111111111111".into(),
        }
    }

    /// A strict-mode state whose clock the test moves.
    fn strict_state(now: Arc<AtomicI64>) -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let control = Control::open(&crate::model::store::StorePaths::scratch(dir.path()))
            .expect("state dir");
        let clock: Clock = Arc::new(move || Timestamp(now.load(Ordering::Relaxed)));
        let state = AppState::new(Arc::new(Mutex::new(control)), clock)
            .with_auth(AuthMode::strict(KeyFile { keys: vec![key()] }));
        (state, dir)
    }

    /// Issue 10: strict mode checks X-Amz-Date against the state's clock, so a request
    /// captured now does not replay once the window has passed.
    #[test]
    fn issue10_strict_mode_checks_request_time_against_the_state_clock() {
        let now = Arc::new(AtomicI64::new(T0));
        let (state, _dir) = strict_state(now.clone());
        let body = b"Action=DescribeVpcs&Version=2016-11-15";
        let mut req = SignedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: None,
            headers: vec![("host".into(), "127.0.0.1:4566".into())],
        };
        sign(&mut req, body, &key(), "us-east-1", "ec2", Timestamp(T0));
        let (status, xml) = handle_ec2(&state, &req, body);
        assert_eq!(status, 200, "{xml}");
        now.store(T0 + 20 * 60_000, Ordering::Relaxed);
        let (status, xml) = handle_ec2(&state, &req, body);
        assert_eq!(status, 400, "{xml}");
        assert!(xml.contains("<Code>RequestExpired</Code>"), "{xml}");
    }

    /// Issue 10: `/_vpclab/connect` authenticates through `AppState::authenticate` with
    /// an empty body; a request shaped as `vpclab connect` signs it (payload hash header
    /// signed) verifies now and is refused once stale.
    #[test]
    fn issue10_connect_authentication_applies_the_same_time_window() {
        let now = Arc::new(AtomicI64::new(T0));
        let (state, _dir) = strict_state(now.clone());
        let mut req = SignedRequest {
            method: "GET".into(),
            path: "/_vpclab/connect".into(),
            query: Some("host=198.18.0.7&port=22".into()),
            headers: vec![
                ("host".into(), "127.0.0.1:4566".into()),
                (
                    "x-amz-content-sha256".into(),
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
                ),
            ],
        };
        sign(&mut req, b"", &key(), "us-east-1", "ec2", Timestamp(T0));
        let id = state.authenticate(&req, b"").expect("fresh request");
        assert_eq!(id.account, "111111111111");
        now.store(T0 + 16 * 60_000, Ordering::Relaxed);
        assert_eq!(
            state.authenticate(&req, b"").unwrap_err().code,
            "RequestExpired"
        );
    }

    /// An open-mode state at a fixed time.
    fn open_state() -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let control = Control::open(&crate::model::store::StorePaths::scratch(dir.path()))
            .expect("state dir");
        let clock: Clock = Arc::new(|| Timestamp(T0));
        (AppState::new(Arc::new(Mutex::new(control)), clock), dir)
    }

    /// One EC2 call in open mode; (status, body).
    fn call(state: &AppState, form: &str) -> (u16, String) {
        let req = SignedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: None,
            headers: vec![(
                "authorization".into(),
                "AWS4-HMAC-SHA256 Credential=test/20251124/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0".into(),
            )],
        };
        handle_ec2(state, &req, form.as_bytes())
    }

    fn default_vpc(state: &AppState) -> String {
        let (status, xml) = call(state, "Action=DescribeVpcs&Version=2016-11-15");
        assert_eq!(status, 200, "{xml}");
        let root = xml::read::parse(xml.as_bytes()).expect("DescribeVpcs parses");
        root.child("vpcSet")
            .and_then(|s| s.child("item"))
            .and_then(|i| i.text_of("vpcId"))
            .expect("a default VPC")
            .to_string()
    }

    /// Issue 10: a tag value (or any stored text) XML cannot carry is refused with
    /// InvalidParameterValue, and listings keep parsing; text stored by an older build
    /// renders as U+FFFD instead of breaking every later DescribeVpcs.
    #[test]
    fn issue10_text_xml_cannot_carry_is_refused_and_listings_still_parse() {
        let (state, _dir) = open_state();
        let vpc = default_vpc(&state);
        for (form, param) in [
            (
                format!("Action=CreateTags&ResourceId.1={vpc}&Tag.1.Key=k&Tag.1.Value=a%EF%BF%BEb"),
                "Tag.1.Value",
            ),
            (
                format!("Action=CreateTags&ResourceId.1={vpc}&Tag.1.Key=%EF%BF%BF&Tag.1.Value=v"),
                "Tag.1.Key",
            ),
            (
                format!(
                    "Action=CreateSecurityGroup&VpcId={vpc}&GroupName=web&GroupDescription=bell%07"
                ),
                "GroupDescription",
            ),
        ] {
            let (status, xml) = call(&state, &form);
            assert_eq!(status, 400, "{xml}");
            assert!(xml.contains("<Code>InvalidParameterValue</Code>"), "{xml}");
            assert!(xml.contains(param), "{xml}");
            xml::read::parse(xml.as_bytes()).expect("the error document parses");
        }
        assert_eq!(default_vpc(&state), vpc, "listing still works");

        // A value an older build let through, already in the state.
        let env = Env::new("us-east-1", Timestamp(T0));
        state
            .lock()
            .mutate(crate::model::DEFAULT_ACCOUNT, &env, false, |w, env| {
                w.create_tags(
                    env,
                    std::slice::from_ref(&vpc),
                    &[("k".into(), "x\u{ffff}y".into())],
                )
            })
            .expect("stored");
        let (status, xml) = call(&state, "Action=DescribeVpcs");
        assert_eq!(status, 200, "{xml}");
        assert!(xml.contains("<value>x\u{fffd}y</value>"), "{xml}");
        let (status, xml) = call(&state, "Action=DescribeTags");
        assert_eq!(status, 200, "{xml}");
        xml::read::parse(xml.as_bytes()).expect("DescribeTags parses");
    }

    /// Issue 10: a NextToken this server did not hand out is EC2's InvalidParameterValue,
    /// not an empty page; the tokens it does hand out still visit every row once.
    #[test]
    fn issue10_garbage_next_token_is_invalid_parameter_value() {
        let (state, _dir) = open_state();
        for i in 0..6 {
            let (status, xml) = call(
                &state,
                &format!("Action=CreateVpc&CidrBlock=10.{i}.0.0%2F16"),
            );
            assert_eq!(status, 200, "{xml}");
        }
        for action in [
            "DescribeVpcs",
            "DescribeSubnets",
            "DescribeTags",
            "DescribeInstances",
            "DescribeInstanceTypes",
            "DescribeSecurityGroupRules",
        ] {
            for garbage in ["garbage", "vpc-00000000", "Zm9v.0000000000000000"] {
                let (status, xml) = call(
                    &state,
                    &format!("Action={action}&MaxResults=5&NextToken={garbage}"),
                );
                assert_eq!(status, 400, "{action} {garbage}: {xml}");
                assert!(
                    xml.contains("<Code>InvalidParameterValue</Code>")
                        && xml.contains("for parameter NextToken is invalid"),
                    "{action}: {xml}"
                );
            }
        }
        let (_, first) = call(&state, "Action=DescribeVpcs&MaxResults=5");
        let token = first
            .split("<nextToken>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .expect("a second page")
            .to_string();
        let (status, second) = call(
            &state,
            &format!("Action=DescribeVpcs&MaxResults=5&NextToken={token}"),
        );
        assert_eq!(status, 200, "{second}");
        assert_eq!(
            first.matches("<vpcId>").count() + second.matches("<vpcId>").count(),
            7
        );
        let (status, xml) = call(
            &state,
            &format!("Action=DescribeSubnets&MaxResults=5&NextToken={token}"),
        );
        assert_eq!(status, 400, "another action's token: {xml}");
    }

    mod props {
        use std::sync::LazyLock;

        use proptest::prelude::*;
        // `any` is also axum's routing function, glob-imported with `super::*`.
        use proptest::prelude::any;
        use proptest::sample::select;

        use super::*;

        static STATE: LazyLock<(AppState, tempfile::TempDir)> = LazyLock::new(open_state);

        const NAMES: &[&str] = &[
            "VpcId",
            "VpcId.1",
            "SubnetId",
            "SubnetId.1",
            "GroupId",
            "GroupId.1",
            "CidrBlock",
            "InstanceId.1",
            "ResourceId.1",
            "Tag.1.Key",
            "Tag.1.Value",
            "Filter.1.Name",
            "Filter.1.Value.1",
            "MaxResults",
            "NextToken",
            "DryRun",
            "GroupName",
            "GroupDescription",
            "Description",
            "IpPermissions.1.IpProtocol",
            "IpPermissions.1.FromPort",
            "IpPermissions.1.ToPort",
            "IpPermissions.1.IpRanges.1.CidrIp",
            "RouteTableId",
            "DestinationCidrBlock",
            "GatewayId",
            "NetworkAclId",
            "RuleNumber",
            "Protocol",
            "RuleAction",
            "Egress",
            "ImageId",
            "InstanceType",
            "MinCount",
            "MaxCount",
            "KeyName",
            "UserData",
            "AllocationId",
            "Domain",
            "TagSpecification.1.ResourceType",
            "TagSpecification.1.Tag.1.Key",
            "EnableDnsSupport.Value",
            "PortRange.From",
            "PortRange.To",
            "NetworkInterfaceId",
            "PrivateIpAddress",
            "AvailabilityZone",
        ];

        const VALUES: &[&str] = &[
            "",
            "vpc-00000000",
            "subnet-00000000",
            "sg-00000000",
            "10.0.0.0/16",
            "10.0.1.0/24",
            "0.0.0.0/0",
            "10.0.0.0/33",
            "300.0.0.0/8",
            "tcp",
            "-1",
            "6",
            "22",
            "65536",
            "-5",
            "5",
            "1000",
            "true",
            "false",
            "allow",
            "deny",
            "ami-0c02fb55956c7d316",
            "t3.micro",
            "1",
            "2",
            "99999999999",
            "vpc",
            "subnet",
            "Name",
            "tag:Name",
            "vpc-id",
            "*",
            "standard",
            "aGVsbG8=",
            "us-east-1a",
        ];

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => select(VALUES).prop_map(str::to_string),
                1 => any::<String>(),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            /// Any action with any of the parameters EC2 knows, holding plausible or
            /// random values: an AWS answer that parses as XML, never a panic or a 500.
            #[test]
            fn any_ec2_request_gets_a_well_formed_answer(
                action in select(ec2::action_names()),
                params in proptest::collection::vec((select(NAMES), value()), 0..8),
            ) {
                let mut form = form_urlencoded::Serializer::new(String::new());
                form.append_pair("Action", action);
                for (k, v) in &params {
                    form.append_pair(k, v);
                }
                let (status, body) = call(&STATE.0, &form.finish());
                prop_assert!(status != 500, "{}", body);
                prop_assert!(xml::read::parse(body.as_bytes()).is_ok(), "{}", body);
            }
        }
    }
}
