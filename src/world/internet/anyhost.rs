//! The catch-all host of the simulated internet: one host stack that answers for every
//! public address no other host has (netstack's any-IP host, `HostConfig::catch_all`),
//! with the internet's delay and TTL.
//!
//! What it serves, by the address a client asked for:
//!
//! - ICMP echo: answered by the stack itself, from any of its addresses.
//! - TCP 80 and 443 (HTTPS with a certificate for the requested name, minted by vpclab's
//!   CA, [`crate::tls`]): at an AWS service endpoint address (198.51.100.0/26), the door
//!   to the API — each request goes to the daemon's service router as the world's
//!   account ([`ApiDoor`]); anywhere else, a generic web server whose page names the
//!   site.
//! - UDP and TCP 53 at the well-known public resolvers (8.8.8.8, 1.1.1.1 …): the world's
//!   public DNS resolver (`world::resolver`).
//! - Any other TCP port: a reset (no socket listens), as a closed port of a real host.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use vpclab_netstack::host::{Host, HostConfig, Net, NetError, TcpListener};
use vpclab_netstack::internet::{PUBLIC_RESOLVERS, SERVICE_ENDPOINTS};

use crate::http1::{self, Request, Response};
use crate::tls::Ca;

/// One request that reached an AWS service endpoint inside a world.
pub struct DoorRequest {
    /// The account whose world the request came from.
    pub account: String,
    /// Who sent it, as the endpoint sees it (after any NAT).
    pub peer: SocketAddr,
    /// The gateway VPC endpoint (`vpce-…`) it came through, if it did not come over
    /// the internet: the service then also evaluates the endpoint's policy.
    pub endpoint: Option<String>,
    pub request: hyper::Request<Bytes>,
}

/// The way from the in-world AWS endpoints to the API: the daemon hands each request to
/// the same service router its API port uses.
pub type ApiDoor = Arc<
    dyn Fn(DoorRequest) -> std::pin::Pin<Box<dyn Future<Output = hyper::Response<Bytes>> + Send>>
        + Send
        + Sync,
>;

/// What the catch-all host serves with.
#[derive(Clone)]
pub(super) struct Ctx {
    pub(super) account: String,
    pub(super) ca: Arc<Ca>,
    pub(super) door: Option<ApiDoor>,
    /// Set on the host behind a gateway VPC endpoint.
    pub(super) endpoint: Option<String>,
}

/// Attaches the catch-all host to `net` and starts its servers.
pub(super) fn start(
    net: &Net,
    ctx: Ctx,
    dns: crate::dns::SharedView,
) -> Result<(Host, Vec<JoinHandle<()>>), NetError> {
    let host = net.add_host(HostConfig::catch_all())?;
    let http = host.listen(80).map_err(|_| NetError::HostGone)?;
    let https = host.listen(443).map_err(|_| NetError::HostGone)?;
    let mut tasks = super::super::resolver::start_on(&host, dns, &PUBLIC_RESOLVERS)?;
    let ctx = Arc::new(ctx);
    tasks.push(tokio::spawn(accept(http, false, ctx.clone())));
    tasks.push(tokio::spawn(accept(https, true, ctx)));
    Ok((host, tasks))
}

async fn accept(listener: TcpListener, tls: bool, ctx: Arc<Ctx>) {
    while let Ok((stream, peer)) = listener.accept().await {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let local = stream.local_addr();
            if !tls {
                return serve(stream, local, peer, &ctx).await;
            }
            let config = ctx.ca.server_config(local.ip());
            let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
            match tokio::time::timeout(http1::HEADER_READ_TIMEOUT, handshake).await {
                Ok(Ok(tls)) => serve(tls, local, peer, &ctx).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

async fn serve<S>(io: S, local: SocketAddr, peer: SocketAddr, ctx: &Ctx)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let result = if let IpAddr::V4(ip) = local.ip()
        && SERVICE_ENDPOINTS.contains(&ip)
    {
        http1::serve_connection_raw(io, peer, door_handler(ctx)).await
    } else {
        http1::serve_connection(io, peer, web_page(local)).await
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "internet connection ended with an error");
    }
}

/// Attaches the service host behind gateway VPC endpoint `id` (`Port::Endpoint`): it
/// holds the service's addresses (`addrs`, the CIDRs of its prefix list) and serves the
/// same door to the API as the catch-all host on 80 and 443, each request marked with the
/// endpoint it came through.
pub(super) fn start_endpoint(
    net: &Net,
    id: &str,
    addrs: Vec<ipnet::Ipv4Net>,
    ctx: Ctx,
) -> Result<(Host, Vec<JoinHandle<()>>), NetError> {
    serve_door(
        net,
        HostConfig::service(
            vpclab_netstack::Port::Endpoint(vpclab_netstack::topology::rid(id)),
            addrs,
        ),
        ctx,
    )
}

/// A host at `cfg` serving the API door on 80 and 443 (an endpoint's service host).
pub(super) fn serve_door(
    net: &Net,
    cfg: HostConfig,
    ctx: Ctx,
) -> Result<(Host, Vec<JoinHandle<()>>), NetError> {
    let host = net.add_host(cfg)?;
    let http = host.listen(80).map_err(|_| NetError::HostGone)?;
    let https = host.listen(443).map_err(|_| NetError::HostGone)?;
    let ctx = Arc::new(ctx);
    let tasks = vec![
        tokio::spawn(accept(http, false, ctx.clone())),
        tokio::spawn(accept(https, true, ctx)),
    ];
    Ok((host, tasks))
}

fn door_handler(ctx: &Ctx) -> http1::RawHandler {
    let door = ctx.door.clone();
    let account = ctx.account.clone();
    let endpoint = ctx.endpoint.clone();
    Arc::new(move |request, peer| {
        let door = door.clone();
        let account = account.clone();
        let endpoint = endpoint.clone();
        Box::pin(async move {
            match door {
                Some(door) => {
                    door(DoorRequest {
                        account,
                        peer,
                        endpoint,
                        request,
                    })
                    .await
                }
                None => {
                    let mut r = hyper::Response::new(Bytes::from_static(
                        b"the AWS API is not connected to this world\n",
                    ));
                    *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                    r
                }
            }
        })
    })
}

/// The generic web site every other internet address serves: a page naming the site
/// the client asked for (its `Host`), so `curl -s http://example.com` prints something
/// recognisable.
fn web_page(local: SocketAddr) -> http1::Handler {
    Arc::new(move |req: &Request| {
        let site = req
            .header("host")
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_string())
            .unwrap_or_else(|| local.ip().to_string());
        let site = html_escape(&site);
        let resp = match (req.method.as_str(), req.path()) {
            ("GET" | "HEAD", "/" | "/index.html") => Response::new(
                200,
                "text/html; charset=utf-8",
                format!(
                    "<!doctype html>\n<html><head><title>{site}</title></head>\n<body><h1>{site}</h1>\n<p>This is {site} ({ip}) on the simulated internet of your vpclab world. Your request left your VPC and came back: the route out works.</p>\n</body></html>\n",
                    ip = local.ip()
                ),
            ),
            ("GET" | "HEAD", _) => Response::not_found(),
            _ => Response::new(405, "text/plain", "Method Not Allowed\n"),
        };
        resp.with_header("Server", "vpclab")
    })
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
