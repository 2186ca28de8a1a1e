//! A deliberately tiny HTTP/1.1 server and client over the host layer's
//! [`TcpStream`](crate::host::TcpStream), enough for the simulated
//! internet's services and for `curl`-like tools on instances.
//!
//! One request per connection (`Connection: close`), bodies by
//! `Content-Length`, no chunked encoding, no TLS. Anything more belongs in a
//! real HTTP crate above netstack.

use std::io;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::host::{Host, TcpListener};

/// Largest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// A client that sends nothing for this long is dropped.
const IDLE: Duration = Duration::from_secs(30);

/// A parsed request.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target, e.g. `/index.html`.
    pub path: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`).
    pub body: Vec<u8>,
    /// The client's address as the server sees it (after any NAT).
    pub peer: SocketAddrV4,
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names lower-cased, in order (the server adds
    /// `content-length`, `connection` and `server` itself).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of type `content_type`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// `404 Not Found`.
    pub fn not_found() -> Self {
        Response::new(404, "text/plain", "Not Found\n")
    }

    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Unknown",
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Read a message head (up to the blank line) and any bytes after it.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            buf.truncate(end);
            let head = String::from_utf8(buf).map_err(|_| bad("head is not UTF-8"))?;
            return Ok((head, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("head too large"));
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn content_length(headers: &[(String, String)]) -> io::Result<Option<usize>> {
    match headers.iter().find(|(n, _)| n == "content-length") {
        None => Ok(None),
        Some((_, v)) => {
            let n: usize = v.parse().map_err(|_| bad("bad content-length"))?;
            if n > MAX_BODY {
                return Err(bad("body too large"));
            }
            Ok(Some(n))
        }
    }
}

async fn read_body<R: AsyncRead + Unpin>(
    r: &mut R,
    mut have: Vec<u8>,
    len: usize,
) -> io::Result<Vec<u8>> {
    if have.len() < len {
        let mut rest = vec![0u8; len - have.len()];
        r.read_exact(&mut rest).await?;
        have.extend_from_slice(&rest);
    }
    have.truncate(len);
    Ok(have)
}

/// Serve one connection: read a request, answer it, close.
pub async fn serve_connection<S, H>(
    mut stream: S,
    peer: SocketAddrV4,
    handler: &H,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Fn(&Request) -> Response + ?Sized,
{
    let (head, rest) = tokio::time::timeout(IDLE, read_head(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request head timed out"))??;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        let resp = Response::new(400, "text/plain", "Bad Request\n");
        return write_response(&mut stream, &resp, false).await;
    };
    if !version.starts_with("HTTP/1.") {
        let resp = Response::new(400, "text/plain", "Bad Request\n");
        return write_response(&mut stream, &resp, false).await;
    }
    let headers = parse_headers(lines);
    let body = match content_length(&headers)? {
        Some(n) => read_body(&mut stream, rest, n).await?,
        None => Vec::new(),
    };
    let req = Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body,
        peer,
    };
    let resp = handler(&req);
    write_response(&mut stream, &resp, req.method == "HEAD").await
}

async fn write_response<S: AsyncWrite + Unpin>(
    s: &mut S,
    resp: &Response,
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (n, v) in &resp.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\nserver: vpclab\r\n\r\n",
        resp.body.len()
    ));
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&resp.body);
    }
    s.write_all(&bytes).await?;
    s.shutdown().await
}

/// Accept connections on `listener` forever, answering each request with
/// `handler` (one task per connection). Ends when the listener's host is
/// removed.
pub async fn serve<H>(listener: TcpListener, handler: H)
where
    H: Fn(&Request) -> Response + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    while let Ok((stream, peer)) = listener.accept().await {
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, peer, handler.as_ref()).await {
                tracing::debug!(%peer, error = %e, "http connection failed");
            }
        });
    }
}

/// `GET http://{host_header}{path}` from `from` to `dst`, with the host's
/// connect timeout.
pub async fn get(
    from: &Host,
    dst: SocketAddrV4,
    host_header: &str,
    path: &str,
) -> io::Result<Response> {
    let stream = from.connect(dst).await?;
    request(stream, "GET", host_header, path).await
}

/// Send one request on `stream` and read the response.
pub async fn request<S>(
    mut stream: S,
    method: &str,
    host_header: &str,
    path: &str,
) -> io::Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host_header}\r\nuser-agent: vpclab\r\naccept: */*\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let (head, rest) = read_head(&mut stream).await?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers = parse_headers(lines);
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        match content_length(&headers)? {
            Some(n) => read_body(&mut stream, rest, n).await?,
            None => {
                let mut body = rest;
                (&mut stream)
                    .take(MAX_BODY as u64)
                    .read_to_end(&mut body)
                    .await?;
                body
            }
        }
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}
