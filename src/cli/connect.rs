//! `vpclab connect HOST PORT`: an OpenSSH `ProxyCommand`. Asks the daemon (over its API
//! port, signed like an API call) to open a TCP connection from the learner's internet
//! address to HOST:PORT inside the world, then copies stdin to it and it to stdout. The
//! connection crosses the internet gateway, NACLs and security groups like any packet,
//! so a missing port-22 rule makes it time out — and the daemon says which rule.
//!
//! The daemon is found through `--endpoint`, then `VPCLAB_ENDPOINT`, then
//! `AWS_ENDPOINT_URL`, then `http://127.0.0.1:4566`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// A public IP address (198.18.x.y) or public DNS name in your world.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The vpclab endpoint (default: $VPCLAB_ENDPOINT, $AWS_ENDPOINT_URL, http://127.0.0.1:4566).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Seconds to wait for the target to answer.
    #[arg(long, default_value_t = 20.0)]
    pub timeout: f64,
}

/// Where the daemon is, in the documented order.
pub(crate) fn endpoint(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("VPCLAB_ENDPOINT").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:4566".to_string())
}

/// `host:port` of an `http://host:port[/]` endpoint.
fn authority(endpoint: &str) -> anyhow::Result<String> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("endpoint {endpoint} is not an http:// URL"))?;
    let auth = rest.split('/').next().unwrap_or(rest);
    if auth.is_empty() {
        anyhow::bail!("endpoint {endpoint} has no host");
    }
    Ok(if auth.contains(':') {
        auth.to_string()
    } else {
        format!("{auth}:80")
    })
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// The headers of a SigV4-signed GET with an empty body (AWS "Signature Version 4
/// signing process"), using the same credentials the aws CLI would.
fn signed_headers(host_header: &str, path: &str, query: &str) -> Vec<(String, String)> {
    let key_id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".to_string());
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".to_string());
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".to_string());
    let now = time::OffsetDateTime::now_utc();
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let date = &amz_date[..8];
    let payload = sha256_hex(b"");
    // The query is built from names and values that need no escaping beyond what
    // `form_urlencoded` did; SigV4 wants them sorted.
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort();
    let canonical_query = pairs.join("&");
    let canonical = format!(
        "GET\n{path}\n{canonical_query}\nhost:{host_header}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload}"
    );
    let scope = format!("{date}/{region}/ec2/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, b"ec2");
    let k = hmac(&k, b"aws4_request");
    let sig = hex::encode(hmac(&k, to_sign.as_bytes()));
    vec![
        ("Host".into(), host_header.into()),
        ("X-Amz-Date".into(), amz_date.clone()),
        ("X-Amz-Content-Sha256".into(), payload),
        (
            "Authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"
            ),
        ),
    ]
}

/// An answer's status, its head's length, and the bytes read so far.
struct Head {
    status: u16,
    buf: Vec<u8>,
    head_len: usize,
}

/// Sends a signed GET to the daemon and reads the response head.
pub(crate) async fn request(
    endpoint: &str,
    path: &str,
    query: &str,
    upgrade: bool,
) -> anyhow::Result<(tokio::net::TcpStream, u16, Vec<u8>)> {
    let auth = authority(endpoint)?;
    let mut sock = tokio::net::TcpStream::connect(&auth)
        .await
        .with_context(|| format!("cannot reach vpclab at {endpoint} (is `vpclab up` running?)"))?;
    let _ = sock.set_nodelay(true);
    let mut req = format!("GET {path}?{query} HTTP/1.1\r\n");
    for (k, v) in signed_headers(&auth, path, query) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if upgrade {
        req.push_str(&format!(
            "Connection: Upgrade\r\nUpgrade: {}\r\n",
            crate::daemon::access::UPGRADE_PROTOCOL
        ));
    } else {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await?;
    let head = read_head(&mut sock).await?;
    let rest = head.buf[head.head_len..].to_vec();
    Ok((sock, head.status, rest))
}

async fn read_head(sock: &mut tokio::net::TcpStream) -> anyhow::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            anyhow::bail!("vpclab closed the connection without an answer");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).to_string();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("vpclab sent a malformed answer"))?;
            return Ok(Head {
                status,
                buf,
                head_len: pos + 4,
            });
        }
        if buf.len() > 64 * 1024 {
            anyhow::bail!("vpclab sent an oversized answer head");
        }
    }
}

/// Reads the rest of a non-upgraded answer (the server closes after it).
pub(crate) async fn body(mut sock: tokio::net::TcpStream, mut got: Vec<u8>) -> String {
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).trim().to_string()
}

pub fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (sock, rest) = rt.block_on(connect(args))?;
    let sock = sock.into_std().context("cannot take over the connection")?;
    drop(rt);
    splice(sock, &rest)?;
    Ok(ExitCode::SUCCESS)
}

/// Asks the daemon for the connection; returns it once upgraded, with any bytes of the
/// world that came with the answer.
async fn connect(args: ConnectArgs) -> anyhow::Result<(tokio::net::TcpStream, Vec<u8>)> {
    let endpoint = endpoint(args.endpoint.as_deref());
    let timeout_ms = (args.timeout.max(0.1) * 1000.0) as u64;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("host", &args.host)
        .append_pair("port", &args.port.to_string())
        .append_pair("timeout_ms", &timeout_ms.to_string())
        .finish();
    let (sock, status, rest) = request(&endpoint, "/_vpclab/connect", &query, true).await?;
    if status != 101 {
        let text = body(sock, rest).await;
        let line = text.lines().next().unwrap_or("").to_string();
        let line = if line.is_empty() {
            format!(
                "connection to {}:{} failed (HTTP {status})",
                args.host, args.port
            )
        } else {
            line
        };
        anyhow::bail!("{line}");
    }
    Ok((sock, rest))
}

/// Bytes moved per read and write of the splice: a few SSH packets (OpenSSH sends up
/// to 32 KiB of channel data per packet), so a bulk `scp` takes few system calls.
const SPLICE_CHUNK: usize = 256 * 1024;

/// Copies stdin to the connection and the connection to stdout until the world side
/// closes. One thread per direction with blocking I/O on the raw descriptors: tokio's
/// stdin and stdout hand every read and write to its blocking pool (8 KiB at a time
/// through `io::copy`), which cost more than the copying itself in a bulk transfer.
fn splice(sock: std::net::TcpStream, first: &[u8]) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    sock.set_nonblocking(false)?;
    // Raw descriptors, without std's line-buffered stdout or its stdin buffer.
    let mut stdin = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let mut up = sock.try_clone()?;
    // stdin → world; when stdin ends, half-close so the server sees EOF. The thread is
    // left behind (blocked on stdin) when the world side ends the session.
    std::thread::spawn(move || {
        let mut buf = vec![0u8; SPLICE_CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if up.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    // world → stdout; the session is over when the world side closes.
    if !first.is_empty() && stdout.write_all(first).is_err() {
        return Ok(());
    }
    let mut down = sock;
    let mut buf = vec![0u8; SPLICE_CHUNK];
    loop {
        let n = match down.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stdout.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn endpoint_url_gives_the_daemon_address() {
        assert_eq!(
            authority("http://127.0.0.1:4566").unwrap(),
            "127.0.0.1:4566"
        );
        assert_eq!(authority("http://localhost/").unwrap(), "localhost:80");
        assert!(authority("https://127.0.0.1:4566").is_err());
        assert!(authority("http://").is_err());
    }
}
