//! The learner's browser inside the world: one loopback port that speaks SOCKS5
//! (RFC 1928, with RFC 1929 username/password) and HTTP proxying (`CONNECT` and
//! absolute-form requests). Every connection it opens leaves from the learner's internet
//! address in the world (as `vpclab connect` does), so the internet gateway, the network
//! ACLs and the security groups decide; names resolve through the world's public DNS.
//! Nothing it does reaches the host's network: the only sockets it opens are the world's.
//!
//! Which world: with open authentication the daemon's one account; with `--auth strict`
//! the account of an access key given as the proxy's credentials (SOCKS5 username and
//! password, or `Proxy-Authorization: Basic` of `KEY:SECRET`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::api::AppState;
use crate::api::sigv4::AuthMode;
use crate::world::{AccessError, AccountWorld, Worlds};

/// How long a client may take to send its greeting or request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening a connection inside the world may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest HTTP request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Connections served at once; more wait for the accept loop.
const MAX_CONNECTIONS: usize = 256;
/// Copy buffer per direction.
const SPLICE_BUF: usize = 64 * 1024;

/// What a proxy connection needs.
#[derive(Clone)]
pub struct Proxy {
    api: AppState,
    worlds: Worlds,
    /// The region a world is created in when the proxy is its first user.
    region: String,
}

impl Proxy {
    pub fn new(api: AppState, worlds: Worlds, region: &str) -> Proxy {
        Proxy {
            api,
            worlds,
            region: region.to_string(),
        }
    }

    /// Accepts connections until `stop` resolves.
    pub async fn serve(self, listener: TcpListener, stop: impl std::future::Future<Output = ()>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(stop);
        loop {
            let permit = tokio::select! {
                _ = &mut stop => return,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (conn, peer) = tokio::select! {
                _ = &mut stop => return,
                c = listener.accept() => match c {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "proxy accept failed");
                        continue;
                    }
                },
            };
            let proxy = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = proxy.handle(conn).await {
                    tracing::debug!(%peer, error = %e, "proxy connection ended");
                }
            });
        }
    }

    async fn handle(&self, conn: TcpStream) -> std::io::Result<()> {
        let _ = conn.set_nodelay(true);
        let mut first = [0u8; 1];
        let n = tokio::time::timeout(HEAD_TIMEOUT, conn.peek(&mut first))
            .await
            .map_err(|_| timed_out())??;
        if n == 0 {
            return Ok(());
        }
        if first[0] == 5 {
            self.socks5(conn).await
        } else {
            self.http(conn).await
        }
    }

    /// The world of `account`, created (with its default VPC) if this is its first use.
    fn world(&self, account: &str) -> Result<Arc<AccountWorld>, String> {
        let env = crate::model::Env::new(self.region.clone(), (self.api.clock)())
            .with_action("vpclab:Connect");
        self.api
            .lock()
            .read(account, &env)
            .map_err(|e| format!("{}: {}", e.code, e.message))?;
        self.worlds
            .get(account)
            .ok_or_else(|| "the world of this account is not running".to_string())
    }

    /// The account the credentials act for: the daemon's one account in open mode, the
    /// key's account in strict mode (the secret must match).
    fn account(&self, creds: Option<(&str, &str)>) -> Option<String> {
        match &self.api.auth {
            AuthMode::Open => Some(crate::model::DEFAULT_ACCOUNT.to_string()),
            AuthMode::Strict(keys) => {
                let (key, secret) = creds?;
                let rec = keys.find(key)?;
                // Temporary credentials need their session token, which a proxy login
                // cannot carry.
                if rec.session_token.is_some() {
                    return None;
                }
                constant_time_eq(rec.secret_key.as_bytes(), secret.as_bytes())
                    .then_some(rec.account)
            }
        }
    }

    fn needs_credentials(&self) -> bool {
        matches!(self.api.auth, AuthMode::Strict(_))
    }

    /// `host:port` → a connection from the learner's address inside the world.
    async fn open(
        &self,
        world: &AccountWorld,
        host: &str,
        port: u16,
    ) -> Result<netstack_tcp::Stream, AccessError> {
        let dns = self.worlds.cfg().dns.of(world.account());
        let ip = world
            .resolve_public(host, &dns)
            .ok_or_else(|| AccessError::UnknownHost(host.to_string()))?;
        // Tests cap network timeouts; a learner waits as long as a browser would.
        let timeout = self
            .worlds
            .cfg()
            .instance_timeout_cap
            .map_or(CONNECT_TIMEOUT, |cap| cap.min(CONNECT_TIMEOUT));
        world
            .learner_connect(SocketAddrV4::new(ip, port), timeout)
            .await
    }

    // -----------------------------------------------------------------------------------
    // SOCKS5

    async fn socks5(&self, mut conn: TcpStream) -> std::io::Result<()> {
        // Greeting: VER NMETHODS METHODS…
        let mut head = [0u8; 2];
        read_exact_timed(&mut conn, &mut head).await?;
        let mut methods = vec![0u8; usize::from(head[1])];
        read_exact_timed(&mut conn, &mut methods).await?;
        let wanted = if self.needs_credentials() { 2 } else { 0 };
        if !methods.contains(&wanted) {
            conn.write_all(&[5, 0xFF]).await?;
            return Ok(());
        }
        conn.write_all(&[5, wanted]).await?;
        let mut creds = None;
        if wanted == 2 {
            // RFC 1929: VER ULEN UNAME PLEN PASSWD.
            let mut v = [0u8; 2];
            read_exact_timed(&mut conn, &mut v).await?;
            let mut user = vec![0u8; usize::from(v[1])];
            read_exact_timed(&mut conn, &mut user).await?;
            let mut plen = [0u8; 1];
            read_exact_timed(&mut conn, &mut plen).await?;
            let mut pass = vec![0u8; usize::from(plen[0])];
            read_exact_timed(&mut conn, &mut pass).await?;
            creds = Some((
                String::from_utf8_lossy(&user).into_owned(),
                String::from_utf8_lossy(&pass).into_owned(),
            ));
        }
        let account = self.account(creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str())));
        if wanted == 2 {
            conn.write_all(&[1, if account.is_some() { 0 } else { 1 }])
                .await?;
        }
        let Some(account) = account else {
            return Ok(());
        };
        // Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
        let mut req = [0u8; 4];
        read_exact_timed(&mut conn, &mut req).await?;
        let host = match req[3] {
            1 => {
                let mut a = [0u8; 4];
                read_exact_timed(&mut conn, &mut a).await?;
                Ipv4Addr::from(a).to_string()
            }
            3 => {
                let mut len = [0u8; 1];
                read_exact_timed(&mut conn, &mut len).await?;
                let mut name = vec![0u8; usize::from(len[0])];
                read_exact_timed(&mut conn, &mut name).await?;
                String::from_utf8_lossy(&name).into_owned()
            }
            _ => {
                // IPv6 and anything else: the world is IPv4 only.
                return socks_reply(&mut conn, 8).await;
            }
        };
        let mut port = [0u8; 2];
        read_exact_timed(&mut conn, &mut port).await?;
        let port = u16::from_be_bytes(port);
        if req[1] != 1 {
            // Only CONNECT: no BIND, no UDP ASSOCIATE.
            return socks_reply(&mut conn, 7).await;
        }
        let world = match self.world(&account) {
            Ok(w) => w,
            Err(e) => {
                tracing::info!(error = %e, "proxy: no world");
                return socks_reply(&mut conn, 1).await;
            }
        };
        let mut stream = match self.open(&world, &host, port).await {
            Ok(s) => s,
            Err(e) => {
                // The reason goes to the daemon's log; SOCKS has only a code.
                tracing::info!(%host, port, why = %e, "proxy: connection refused by the world");
                let code = match e {
                    AccessError::Refused(_) => 5,
                    _ => 4,
                };
                return socks_reply(&mut conn, code).await;
            }
        };
        let learner = world.learner_addr().octets();
        conn.write_all(&[
            5, 0, 0, 1, learner[0], learner[1], learner[2], learner[3], 0, 0,
        ])
        .await?;
        tokio::io::copy_bidirectional_with_sizes(&mut conn, &mut stream, SPLICE_BUF, SPLICE_BUF)
            .await?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // HTTP

    async fn http(&self, mut conn: TcpStream) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(4096);
        let head_len = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() >= MAX_HEAD {
                return http_error(&mut conn, 431, "the request head is too large", false).await;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(HEAD_TIMEOUT, conn.read(&mut chunk))
                .await
                .map_err(|_| timed_out())??;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        let rest = buf[head_len..].to_vec();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let headers: Vec<(&str, &str)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(version)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return http_error(&mut conn, 400, "not an HTTP request", false).await;
        };
        let creds = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("proxy-authorization"))
            .and_then(|(_, v)| basic_credentials(v));
        let Some(account) = self.account(creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str())))
        else {
            return http_error(
                &mut conn,
                407,
                "vpclab's proxy needs an access key: user name = access key id, password = secret key",
                true,
            )
            .await;
        };
        let world = match self.world(&account) {
            Ok(w) => w,
            Err(e) => return http_error(&mut conn, 503, &e, false).await,
        };
        if method.eq_ignore_ascii_case("CONNECT") {
            let Some((host, port)) = split_host_port(target, 443) else {
                return http_error(&mut conn, 400, "CONNECT needs host:port", false).await;
            };
            let mut stream = match self.open(&world, &host, port).await {
                Ok(s) => s,
                Err(e) => return http_error(&mut conn, status_of(&e), &e.to_string(), false).await,
            };
            conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
            stream.write_all(&rest).await?;
            tokio::io::copy_bidirectional_with_sizes(
                &mut conn,
                &mut stream,
                SPLICE_BUF,
                SPLICE_BUF,
            )
            .await?;
            return Ok(());
        }
        // Absolute form: `GET http://host[:port]/path HTTP/1.1`.
        let Some(after) = target.strip_prefix("http://") else {
            let msg = if target.starts_with('/') {
                "this is vpclab's browser proxy: set it as your browser's proxy rather than opening it"
            } else {
                "only http:// URLs are proxied this way (https goes through CONNECT)"
            };
            return http_error(&mut conn, 400, msg, false).await;
        };
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        };
        let Some((host, port)) = split_host_port(authority, 80) else {
            return http_error(&mut conn, 400, "the URL has no host", false).await;
        };
        let mut stream = match self.open(&world, &host, port).await {
            Ok(s) => s,
            Err(e) => return http_error(&mut conn, status_of(&e), &e.to_string(), false).await,
        };
        // One request per connection: the origin sees `Connection: close`, so the
        // response ends with the connection and the browser opens a new one next time.
        let mut out = format!("{method} {path} {version}\r\n");
        for (k, v) in &headers {
            let lower = k.to_ascii_lowercase();
            if lower.starts_with("proxy-") || lower == "connection" || lower == "keep-alive" {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        stream.write_all(out.as_bytes()).await?;
        stream.write_all(&rest).await?;
        tokio::io::copy_bidirectional_with_sizes(&mut conn, &mut stream, SPLICE_BUF, SPLICE_BUF)
            .await?;
        Ok(())
    }
}

/// The world's stream type, named once.
mod netstack_tcp {
    pub type Stream = vpclab_netstack::host::TcpStream;
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "client too slow")
}

async fn read_exact_timed<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<()> {
    tokio::time::timeout(HEAD_TIMEOUT, r.read_exact(buf))
        .await
        .map_err(|_| timed_out())??;
    Ok(())
}

async fn socks_reply<W: AsyncWrite + Unpin>(w: &mut W, code: u8) -> std::io::Result<()> {
    w.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

fn status_of(e: &AccessError) -> u16 {
    match e {
        AccessError::TimedOut { .. } => 504,
        AccessError::UnknownHost(_) => 502,
        _ => 502,
    }
}

/// A plain-text error page; its body is the reason (a browser shows it).
async fn http_error<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    why: &str,
    authenticate: bool,
) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        407 => "Proxy Authentication Required",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let body = format!("vpclab: {why}\n");
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if authenticate {
        head.push_str("Proxy-Authenticate: Basic realm=\"vpclab\"\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).await?;
    w.write_all(body.as_bytes()).await?;
    w.shutdown().await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `Basic base64(user:pass)` → (user, pass).
fn basic_credentials(v: &str) -> Option<(String, String)> {
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// `host[:port]` (a bracketed IPv6 literal is refused: the world is IPv4 only).
fn split_host_port(s: &str, default: u16) -> Option<(String, u16)> {
    if s.is_empty() || s.starts_with('[') {
        return None;
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((s.to_string(), default)),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Binds the proxy's port.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the browser proxy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_credentials_and_targets() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("AKID:se:cret")
        );
        assert_eq!(
            basic_credentials(&v),
            Some(("AKID".to_string(), "se:cret".to_string()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(
            split_host_port("example.com:8080", 80),
            Some(("example.com".to_string(), 8080))
        );
        assert_eq!(
            split_host_port("example.com", 80),
            Some(("example.com".to_string(), 80))
        );
        assert_eq!(split_host_port("[::1]:80", 80), None);
        assert_eq!(split_host_port("h:notaport", 80), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
