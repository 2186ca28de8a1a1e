//! Learner access over the API port: `GET /_vpclab/connect?host=H&port=P` with
//! `Connection: Upgrade` / `Upgrade: vpclab-connect`, authenticated like any API call,
//! opens a TCP connection from the learner's internet address to H:P inside the
//! caller's world and, once it is established, answers `101 Switching Protocols` and
//! splices the HTTP connection to it. When the connection cannot be opened the answer
//! is an HTTP error whose body is one line saying why (the CLI prints it).
//! `GET /_vpclab/whoami` answers the learner's address.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

use crate::api::AppState;
use crate::world::{AccessError, AccountWorld, Worlds};

/// The protocol name of the upgrade.
pub const UPGRADE_PROTOCOL: &str = "vpclab-connect";
/// Default and largest connect timeouts a client may ask for.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// Copy buffer per direction of a learner connection.
const SPLICE_BUF: usize = 64 * 1024;

#[derive(Clone)]
struct AccessState {
    api: AppState,
    worlds: Worlds,
}

/// The routes of learner access, to merge into the API router.
pub fn router(api: AppState, worlds: Worlds) -> Router {
    Router::new()
        .route("/_vpclab/connect", get(connect))
        .route("/_vpclab/whoami", get(whoami))
        .with_state(AccessState { api, worlds })
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(format!("{body}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Authenticates and finds the caller's world.
fn world_of(
    st: &AccessState,
    parts: &axum::http::request::Parts,
) -> Result<std::sync::Arc<AccountWorld>, Box<Response>> {
    let identity = st
        .api
        .authenticate(&crate::api::signed_request(parts), b"")
        .map_err(|e| {
            Box::new(text(
                StatusCode::FORBIDDEN,
                format!("{}: {}", e.code, e.message),
            ))
        })?;
    {
        // Make sure the account's world exists (a first call creates its default VPC).
        let env = crate::model::Env::new(identity.credential.region.clone(), (st.api.clock)())
            .with_action("vpclab:Connect");
        let mut c = st.api.lock();
        if let Err(e) = c.read(&identity.account, &env) {
            return Err(Box::new(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {}", e.code, e.message),
            )));
        }
    }
    st.worlds.get(&identity.account).ok_or_else(|| {
        Box::new(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the world of this account is not running".to_string(),
        ))
    })
}

fn query_params(parts: &axum::http::request::Parts) -> Vec<(String, String)> {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn whoami(State(st): State<AccessState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match world_of(&st, &parts) {
        Ok(w) => text(StatusCode::OK, w.learner_addr().to_string()),
        Err(r) => *r,
    }
}

async fn connect(State(st): State<AccessState>, mut req: Request) -> Response {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let world = match world_of(&st, &parts) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let params = query_params(&parts);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(host) = param("host") else {
        return text(StatusCode::BAD_REQUEST, "missing host".to_string());
    };
    let Some(port) = param("port").and_then(|p| p.parse::<u16>().ok()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "missing or invalid port".to_string(),
        );
    };
    let timeout = param("timeout_ms")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(MAX_TIMEOUT);
    // An IPv6 address (OpenSSH passes it bare, or in brackets) is reached from the
    // learner's IPv6 address: through the VPC's internet gateway, or refused by an
    // egress-only one.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let dst = if let Ok(ip6) = bare.parse::<std::net::Ipv6Addr>() {
        SocketAddr::from((ip6, port))
    } else {
        let Some(ip) = world.resolve_public(&host, &st.worlds.cfg().dns.of(world.account())) else {
            return text(
                StatusCode::NOT_FOUND,
                AccessError::UnknownHost(host).to_string(),
            );
        };
        SocketAddr::V4(SocketAddrV4::new(ip, port))
    };
    let stream = match world.learner_connect(dst, timeout).await {
        Ok(s) => s,
        Err(e) => {
            let status = match e {
                AccessError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            return text(status, e.to_string());
        }
    };
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        let mut stream = stream;
        // Buffers of a few SSH packets each way (tokio's default is 8 KiB): every read
        // of the world side takes the world's lock, so fewer, larger reads.
        let _ =
            tokio::io::copy_bidirectional_with_sizes(&mut io, &mut stream, SPLICE_BUF, SPLICE_BUF)
                .await;
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    r.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static(UPGRADE_PROTOCOL));
    r
}
