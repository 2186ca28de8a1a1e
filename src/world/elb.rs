//! Load balancer nodes on the fabric: one host per node interface of every `active`
//! load balancer, listening on its listeners' ports, and the health checks.
//!
//! An application load balancer's node serves HTTP/1.1 (`http1`) and forwards each
//! request to a target chosen round robin among the healthy targets of the target group
//! the listener's rules select, through the fabric (so the target's security group
//! must admit the node's group or address), adding `X-Forwarded-For`, `-Proto`, `-Port`
//! and `X-Amzn-Trace-Id`. A network load balancer's node splices TCP to a target.
//! Health checks run from the load balancer's first node every `HealthCheckIntervalSeconds`
//! per target; what they conclude (ELB user guide, "Health checks for your target
//! groups": one pass after registration makes a target healthy, `UnhealthyThresholdCount`
//! failures unhealthy, `HealthyThresholdCount` passes healthy again) is committed to the
//! model with the reason code, so DescribeTargetHealth shows it.
//!
//! What it leaves to others: the rules (`model::elb`), packet filtering (`netstack`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ipnet::Ipv4Net;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vpclab_netstack::Port;
use vpclab_netstack::host::{Host, HostConfig, Net, TcpConfig, TcpStream};
use vpclab_netstack::topology::rid;

use super::Worlds;
use crate::http1;
use crate::model::elb::{Action, LoadBalancer, TargetGroup};
use crate::model::{Env, World};

/// The kinds the load balancer runtime follows.
pub(crate) const KINDS: &[&str] = &[
    "elb_load_balancer",
    "elb_target_group",
    "elb_listener",
    "instance",
    "network_interface",
];

/// How long a node waits for a target's TCP handshake (ALB: 10 s, then 504).
const TARGET_CONNECT: Duration = Duration::from_secs(10);
/// How long a node waits for a target's answer (the ALB idle timeout, 60 s).
const TARGET_ANSWER: Duration = Duration::from_secs(60);

type Shared = watch::Receiver<Option<Arc<World>>>;

struct NodeRt {
    host: Host,
    listeners: BTreeMap<u16, JoinHandle<()>>,
}

/// One target's checks in progress.
#[derive(Default)]
struct CheckRt {
    next: Option<Instant>,
    running: bool,
    ok: u32,
    fail: u32,
    checked_once: bool,
}

/// What one health check found.
struct Outcome {
    tg: String,
    id: String,
    port: u16,
    /// `None`: passed; else (reason, description).
    failure: Option<(&'static str, String)>,
}

/// Runs one account's load balancer nodes and health checks until the world stops.
pub(crate) async fn run(account: String, net: Net, worlds: Worlds, mut rx: Shared) {
    let mut nodes: BTreeMap<String, NodeRt> = BTreeMap::new();
    let mut checks: BTreeMap<(String, String, u16), CheckRt> = BTreeMap::new();
    let (tx, mut results) = mpsc::channel::<Outcome>(256);
    let rr = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let world = rx.borrow_and_update().clone();
                if let Some(w) = world {
                    reconcile(&w, &net, &mut nodes, &rx, &rr);
                }
            }
            _ = tick.tick() => {
                let world = rx.borrow().clone();
                if let Some(w) = world {
                    start_checks(&w, &nodes, &mut checks, &tx);
                }
            }
            Some(r) = results.recv() => {
                let world = rx.borrow().clone();
                if let Some(w) = world {
                    conclude(&account, &worlds, &w, &mut checks, r);
                }
            }
        }
    }
    for (_, n) in nodes {
        for (_, t) in n.listeners {
            t.abort();
        }
        n.host.remove();
    }
}

/// Makes the attached nodes and their listeners match the world.
fn reconcile(
    world: &Arc<World>,
    net: &Net,
    nodes: &mut BTreeMap<String, NodeRt>,
    shared: &Shared,
    rr: &Arc<AtomicUsize>,
) {
    let mut want: BTreeMap<String, (Ipv4Net, &LoadBalancer)> = BTreeMap::new();
    for lb in world
        .elb_load_balancers
        .iter()
        .filter(|l| l.state == "active")
    {
        for n in &lb.nodes {
            let Some(eni) = world.network_interfaces.get(&n.eni_id) else {
                continue;
            };
            let Some(subnet) = world.subnets.get(&n.subnet_id) else {
                continue;
            };
            let addr = Ipv4Net::new(eni.private_ip, subnet.cidr.prefix_len())
                .unwrap_or_else(|_| Ipv4Net::from(eni.private_ip));
            want.insert(n.eni_id.clone(), (addr, lb));
        }
    }
    nodes.retain(|eni, n| {
        if want.contains_key(eni) {
            return true;
        }
        for t in n.listeners.values() {
            t.abort();
        }
        n.host.remove();
        false
    });
    for (eni, (addr, lb)) in &want {
        if !nodes.contains_key(eni) {
            let mut cfg = HostConfig::vpc(Port::Eni(rid(eni)), *addr);
            cfg.tcp = TcpConfig {
                connect_timeout: TARGET_CONNECT,
                ..TcpConfig::default()
            };
            match net.add_host(cfg) {
                Ok(host) => {
                    nodes.insert(
                        eni.clone(),
                        NodeRt {
                            host,
                            listeners: BTreeMap::new(),
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(eni = %eni, error = %e, "load balancer node not attached");
                    continue;
                }
            }
        }
        let Some(node) = nodes.get_mut(eni) else {
            continue;
        };
        let ports: BTreeSet<u16> = world
            .elb_listeners
            .iter()
            .filter(|l| l.load_balancer == lb.id)
            .map(|l| l.port)
            .collect();
        node.listeners.retain(|p, t| {
            let keep = ports.contains(p);
            if !keep {
                t.abort();
            }
            keep
        });
        for port in ports {
            if node.listeners.contains_key(&port) {
                continue;
            }
            let listener = match node.host.listen(port) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(eni = %eni, port, error = %e, "load balancer listener not opened");
                    continue;
                }
            };
            let ctx = Arc::new(Ctx {
                host: node.host.clone(),
                lb: lb.id.clone(),
                port,
                shared: shared.clone(),
                rr: rr.clone(),
                network: lb.is_network(),
                targets: http1::KeepAlive::new(TARGET_ANSWER),
                tls: std::sync::Mutex::new(None),
            });
            let task = tokio::spawn(async move {
                while let Ok((stream, peer)) = listener.accept().await {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        // A secure listener (HTTPS, TLS) terminates TLS on the node with
                        // its ACM certificate; a handshake that fails closes the connection.
                        let conn = match ctx.secure() {
                            Secure::Plain => Conn::Plain(stream),
                            Secure::Config(config) => {
                                let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                                match tokio::time::timeout(TLS_HANDSHAKE, accept).await {
                                    Ok(Ok(s)) => Conn::Tls(Box::new(s)),
                                    _ => return,
                                }
                            }
                            Secure::Unusable => return,
                        };
                        if ctx.network {
                            match conn {
                                Conn::Tls(s) => splice_tls(ctx, s).await,
                                Conn::Plain(s) => splice(ctx, s).await,
                            }
                            return;
                        }
                        let (stream, secure): (Box<dyn Stream>, bool) = match conn {
                            Conn::Tls(s) => (s, true),
                            Conn::Plain(s) => (Box::new(s), false),
                        };
                        {
                            let handler: http1::RawHandler = {
                                let ctx = ctx.clone();
                                Arc::new(move |req, peer| {
                                    let ctx = ctx.clone();
                                    Box::pin(async move { proxy(&ctx, req, peer, secure).await })
                                })
                            };
                            // An ALB answers HTTP/1.1 even to an HTTP/1.0 request.
                            let stream = http1::Http11StatusLine::new(stream);
                            let _ = http1::serve_connection_raw(stream, peer, handler).await;
                        }
                    });
                }
            });
            node.listeners.insert(port, task);
        }
    }
}

/// What a listener's connections need.
struct Ctx {
    host: Host,
    lb: String,
    port: u16,
    shared: Shared,
    rr: Arc<AtomicUsize>,
    network: bool,
    /// Connections to targets, reused from one request to the next (an ALB keeps its
    /// target connections open up to its idle timeout).
    targets: http1::KeepAlive,
    /// The TLS configuration of a secure listener, with the (certificate ARN, policy,
    /// certificate PEM) it was made from.
    tls: std::sync::Mutex<Option<(String, Arc<rustls::ServerConfig>)>>,
}

/// A byte stream a listener serves: the fabric's TCP stream, or TLS over it.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// A listener's accepted connection, before or after TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<dyn Stream>),
}

enum Secure {
    Plain,
    Config(Arc<rustls::ServerConfig>),
    /// A secure listener whose certificate is gone or unusable: connections close.
    Unusable,
}

impl Ctx {
    /// Whether this port's listener terminates TLS now, and with what.
    fn secure(&self) -> Secure {
        let Some(world) = self.shared.borrow().clone() else {
            return Secure::Unusable;
        };
        let Some(l) = world
            .elb_listeners
            .iter()
            .find(|l| l.load_balancer == self.lb && l.port == self.port)
        else {
            return Secure::Unusable;
        };
        if !matches!(l.protocol.as_str(), "HTTPS" | "TLS") {
            return Secure::Plain;
        }
        let Some(cert) = l
            .certificates
            .first()
            .and_then(|a| world.acm_certificates.get(a))
        else {
            return Secure::Unusable;
        };
        let policy = l
            .ssl_policy
            .as_deref()
            .unwrap_or(crate::model::elb::DEFAULT_SSL_POLICY);
        let key = format!(
            "{}|{policy}|{}",
            cert.id,
            cert.cert_pem.len() ^ cert.meta.not_after as usize
        );
        let mut cached = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, config)) = cached.as_ref()
            && *k == key
        {
            return Secure::Config(config.clone());
        }
        match crate::tls::certified_key(&cert.cert_pem, cert.chain_pem.as_deref(), &cert.key_pem) {
            Ok(certified) => {
                let (_, tls13) = crate::model::elb::policy_versions(policy);
                let config = crate::tls::fixed_server_config(certified, tls13);
                *cached = Some((key, config.clone()));
                Secure::Config(config)
            }
            Err(e) => {
                tracing::warn!(certificate = %cert.id, error = %e, "listener certificate unusable");
                Secure::Unusable
            }
        }
    }
}

/// The target a new request or connection goes to: the forward action's group (by
/// weight), then round robin among its healthy targets; when none is healthy but some
/// are unhealthy, among those (ALB user guide: the load balancer "fails open").
fn choose(world: &World, actions: &[Action], rr: &AtomicUsize) -> Result<SocketAddrV4, u16> {
    let Some(Action::Forward { groups }) = actions.first() else {
        return Err(503);
    };
    let total: u32 = groups.iter().map(|(_, w)| *w).sum();
    let n = rr.fetch_add(1, Ordering::Relaxed);
    let group = if total == 0 {
        return Err(503);
    } else {
        let mut pick = (n as u32) % total;
        groups
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map(|(g, _)| g.as_str())
    };
    let Some(tg) = group.and_then(|g| world.elb_target_groups.get(g)) else {
        return Err(503);
    };
    let addrs = |state: &str| -> Vec<SocketAddrV4> {
        tg.targets
            .iter()
            .filter(|t| world.shown_health(tg, t).0 == state)
            .filter_map(|t| Some(SocketAddrV4::new(world.target_address(tg, &t.id)?, t.port)))
            .collect()
    };
    let mut pool = addrs("healthy");
    if pool.is_empty() {
        pool = addrs("unhealthy");
    }
    if pool.is_empty() {
        return Err(503);
    }
    Ok(pool[n % pool.len()])
}

fn elb_page(status: u16) -> hyper::Response<Bytes> {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let body = format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    response(status, "text/html", Bytes::from(body))
}

fn response(status: u16, content_type: &str, body: Bytes) -> hyper::Response<Bytes> {
    let mut r = hyper::Response::new(body);
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        hyper::header::SERVER,
        hyper::header::HeaderValue::from_static("awselb/2.0"),
    );
    r
}

/// Headers a proxy does not pass on (RFC 9110 §7.6.1's connection-specific fields).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// The `Location` of a redirect action: each part of the configuration with the
/// request's own values put in for `#{protocol}`, `#{host}`, `#{port}`, `#{path}` (without
/// its leading `/`) and `#{query}` (ALB user guide, "Redirect actions"). The port is left
/// out when it is the protocol's default.
fn redirect_location(
    cfg: (&str, &str, &str, &str, &str),
    secure: bool,
    listener_port: u16,
    host: &str,
    uri: &hyper::Uri,
) -> String {
    let (protocol, port, to_host, path, query) = cfg;
    let own_protocol = if secure { "https" } else { "http" };
    let own_host = host.split(':').next().unwrap_or("");
    let own_path = uri.path().trim_start_matches('/');
    let own_query = uri.query().unwrap_or("");
    let fill = |t: &str| {
        t.replace("#{protocol}", own_protocol)
            .replace("#{host}", own_host)
            .replace("#{port}", &listener_port.to_string())
            .replace("#{path}", own_path)
            .replace("#{query}", own_query)
    };
    let scheme = fill(protocol).to_ascii_lowercase();
    let port = fill(port);
    let default = matches!(
        (scheme.as_str(), port.as_str()),
        ("https", "443") | ("http", "80")
    );
    let mut out = format!("{scheme}://{}", fill(to_host));
    if !default {
        out.push(':');
        out.push_str(&port);
    }
    let path = fill(path);
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&path);
    let query = fill(query);
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    out
}

async fn proxy(
    ctx: &Ctx,
    req: hyper::Request<Bytes>,
    peer: std::net::SocketAddr,
    secure: bool,
) -> hyper::Response<Bytes> {
    let Some(world) = ctx.shared.borrow().clone() else {
        return elb_page(503);
    };
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let path = req.uri().path().to_string();
    let Some(listener) = world
        .elb_listeners
        .iter()
        .find(|l| l.load_balancer == ctx.lb && l.port == ctx.port)
    else {
        return elb_page(503);
    };
    let actions = listener.route(&host, &path);
    if let Some(Action::Redirect {
        protocol,
        port,
        host: to_host,
        path: to_path,
        query,
        status,
    }) = actions.first()
    {
        let location = redirect_location(
            (protocol, port, to_host, to_path, query),
            secure,
            ctx.port,
            &host,
            req.uri(),
        );
        let mut r = elb_page(*status);
        if let Ok(v) = hyper::header::HeaderValue::from_str(&location) {
            r.headers_mut().insert(hyper::header::LOCATION, v);
        }
        return r;
    }
    if let Some(Action::FixedResponse {
        status,
        content_type,
        body,
    }) = actions.first()
    {
        return response(
            *status,
            content_type.as_deref().unwrap_or("text/plain"),
            Bytes::from(body.clone().unwrap_or_default()),
        );
    }
    let dst = match choose(&world, actions, &ctx.rr) {
        Ok(d) => d,
        Err(status) => return elb_page(status),
    };
    drop(world);
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut forwarded_for = None;
    for (k, v) in req.headers() {
        let name = k.as_str();
        if HOP_BY_HOP.contains(&name) {
            continue;
        }
        let Ok(v) = v.to_str() else {
            continue;
        };
        if name == "x-forwarded-for" {
            forwarded_for = Some(v.to_string());
            continue;
        }
        if matches!(name, "x-forwarded-proto" | "x-forwarded-port") {
            continue;
        }
        headers.push((k.to_string(), v.to_string()));
    }
    let client = peer.ip().to_string();
    headers.push((
        "X-Forwarded-For".into(),
        match forwarded_for {
            Some(prev) => format!("{prev}, {client}"),
            None => client,
        },
    ));
    headers.push((
        "X-Forwarded-Proto".into(),
        if secure { "https" } else { "http" }.into(),
    ));
    headers.push(("X-Forwarded-Port".into(), ctx.port.to_string()));
    let n = ctx.rr.load(Ordering::Relaxed) as u64;
    headers.push((
        "X-Amzn-Trace-Id".into(),
        format!(
            "Root=1-{:08x}-{:024x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            u128::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) >> 32
        ),
    ));
    let target = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let method = req.method().to_string();
    let exchange = ctx.targets.request(
        &ctx.host,
        dst,
        TARGET_CONNECT,
        &method,
        &host,
        &target,
        &headers,
        req.into_body(),
    );
    let resp = match tokio::time::timeout(TARGET_ANSWER, exchange).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => return elb_page(504),
        Ok(Err(_)) => return elb_page(502),
        Err(_) => return elb_page(504),
    };
    let mut out = hyper::Response::new(Bytes::from(resp.body));
    *out.status_mut() =
        hyper::StatusCode::from_u16(resp.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    for (k, v) in &resp.headers {
        if HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()) {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            out.headers_mut().append(k, v);
        }
    }
    out
}

/// A network load balancer's connection: spliced to a target as a whole.
/// The target of a network load balancer's new connection.
fn nlb_target(ctx: &Ctx) -> Option<SocketAddrV4> {
    let world = ctx.shared.borrow().clone()?;
    let listener = world
        .elb_listeners
        .iter()
        .find(|l| l.load_balancer == ctx.lb && l.port == ctx.port)?;
    choose(&world, &listener.default_actions, &ctx.rr).ok()
}

/// A network load balancer's connection: spliced to a target as a whole (reset when
/// there is no target to reach).
async fn splice(ctx: Arc<Ctx>, mut stream: TcpStream) {
    let Some(dst) = nlb_target(&ctx) else {
        stream.abort();
        return;
    };
    let Ok(mut upstream) = ctx.host.connect_timeout(dst, TARGET_CONNECT).await else {
        stream.abort();
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
}

/// A TLS listener's connection: TLS ends on the node, the plain bytes go to a target
/// over TCP (closed when there is no target to reach).
async fn splice_tls(ctx: Arc<Ctx>, mut stream: impl Stream) {
    let Some(dst) = nlb_target(&ctx) else {
        return;
    };
    let Ok(mut upstream) = ctx.host.connect_timeout(dst, TARGET_CONNECT).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
}

/// Starts the checks that are due: every target of every group an active load
/// balancer forwards to, from that load balancer's first attached node.
fn start_checks(
    world: &Arc<World>,
    nodes: &BTreeMap<String, NodeRt>,
    checks: &mut BTreeMap<(String, String, u16), CheckRt>,
    tx: &mpsc::Sender<Outcome>,
) {
    let now = Instant::now();
    let mut live = BTreeSet::new();
    for tg in world.elb_target_groups.iter() {
        let lbs = world.load_balancers_of(&tg.id);
        let from = lbs
            .iter()
            .filter_map(|l| world.elb_load_balancers.get(l))
            .filter(|l| l.state == "active")
            .flat_map(|l| l.nodes.iter())
            .find_map(|n| nodes.get(&n.eni_id).map(|rt| rt.host.clone()));
        let Some(from) = from else {
            continue;
        };
        for t in &tg.targets {
            if world.shown_health(tg, t).0 == "unused" || t.state == "draining" {
                continue;
            }
            let Some(ip) = world.target_address(tg, &t.id) else {
                continue;
            };
            let key = (tg.id.clone(), t.id.clone(), t.port);
            live.insert(key.clone());
            let rt = checks.entry(key).or_default();
            if rt.running || rt.next.is_some_and(|n| n > now) {
                continue;
            }
            rt.running = true;
            rt.next = Some(now + Duration::from_secs(u64::from(tg.health.interval_s)));
            let port = match tg.health.port.parse::<u16>() {
                Ok(p) => p,
                Err(_) => t.port,
            };
            tokio::spawn(check(
                from.clone(),
                tg.clone(),
                t.id.clone(),
                t.port,
                SocketAddrV4::new(ip, port),
                tx.clone(),
            ));
        }
    }
    checks.retain(|k, _| live.contains(k));
}

async fn check(
    from: Host,
    tg: TargetGroup,
    id: String,
    port: u16,
    dst: SocketAddrV4,
    tx: mpsc::Sender<Outcome>,
) {
    let h = &tg.health;
    let timeout = Duration::from_secs(u64::from(h.timeout_s));
    let alb = matches!(tg.protocol.as_str(), "HTTP" | "HTTPS");
    let timed_out = || {
        if alb {
            ("Target.Timeout", "Request timed out".to_string())
        } else {
            (
                "Target.FailedHealthChecks",
                "Health checks failed".to_string(),
            )
        }
    };
    let attempt = async {
        let stream = from.connect_timeout(dst, timeout).await;
        match stream {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Some(timed_out()),
            Err(_) => Some((
                "Target.FailedHealthChecks",
                "Health checks failed".to_string(),
            )),
            Ok(s) if h.protocol == "TCP" => {
                s.abort();
                None
            }
            Ok(s) => {
                let headers = [
                    (
                        "User-Agent".to_string(),
                        "ELB-HealthChecker/2.0".to_string(),
                    ),
                    (
                        "Accept-Encoding".to_string(),
                        "gzip, compressed".to_string(),
                    ),
                ];
                let host = dst.to_string();
                let path = h.path.as_deref().unwrap_or("/");
                match http1::request(s, "GET", &host, path, &headers, b"").await {
                    Ok(r) if h.matches(r.status) => None,
                    Ok(r) => Some((
                        "Target.ResponseCodeMismatch",
                        format!("Health checks failed with these codes: [{}]", r.status),
                    )),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Some(timed_out()),
                    Err(_) => Some((
                        "Target.FailedHealthChecks",
                        "Health checks failed".to_string(),
                    )),
                }
            }
        }
    };
    let failure = match tokio::time::timeout(timeout, attempt).await {
        Ok(f) => f,
        Err(_) => Some(timed_out()),
    };
    let _ = tx
        .send(Outcome {
            tg: tg.id,
            id,
            port,
            failure,
        })
        .await;
}

/// Counts one check and commits a change of state, if it is one.
fn conclude(
    account: &str,
    worlds: &Worlds,
    world: &World,
    checks: &mut BTreeMap<(String, String, u16), CheckRt>,
    r: Outcome,
) {
    let key = (r.tg.clone(), r.id.clone(), r.port);
    let Some(rt) = checks.get_mut(&key) else {
        return;
    };
    rt.running = false;
    let first = !rt.checked_once;
    rt.checked_once = true;
    match &r.failure {
        None => {
            rt.ok += 1;
            rt.fail = 0;
        }
        Some(_) => {
            rt.fail += 1;
            rt.ok = 0;
        }
    }
    let Some(tg) = world.elb_target_groups.get(&r.tg) else {
        return;
    };
    let Some(t) = tg.targets.iter().find(|t| t.id == r.id && t.port == r.port) else {
        return;
    };
    let h = &tg.health;
    let (state, reason, description): (&str, Option<&str>, Option<String>) =
        match (t.state.as_str(), &r.failure) {
            // After registration one passed check makes a target healthy.
            ("initial", None) => ("healthy", None, None),
            ("initial", Some((code, why))) if rt.fail >= h.unhealthy_threshold => {
                ("unhealthy", Some(code), Some(why.clone()))
            }
            ("initial", Some(_)) => (
                "initial",
                Some("Elb.InitialHealthChecking"),
                Some("Initial health checking in progress".to_string()),
            ),
            ("healthy", Some((code, why))) if rt.fail >= h.unhealthy_threshold => {
                ("unhealthy", Some(code), Some(why.clone()))
            }
            ("unhealthy", None) if rt.ok >= h.healthy_threshold => ("healthy", None, None),
            ("unhealthy", Some((code, why))) => ("unhealthy", Some(code), Some(why.clone())),
            _ => return,
        };
    if !first && t.state == state && t.reason.as_deref() == reason && t.description == description {
        return;
    }
    let Some(control) = worlds.control() else {
        return;
    };
    let mut control = control.lock().unwrap_or_else(|e| e.into_inner());
    let now = (worlds.cfg().clock)();
    let env = Env::new(tg.region.clone(), now).with_action("vpclab:TargetHealth");
    let _ = control.mutate(account, &env, false, |w, _| {
        Ok(w.set_target_health(&r.tg, &r.id, r.port, state, reason, description.as_deref()))
    });
}
