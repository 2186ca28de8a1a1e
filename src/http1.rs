//! HTTP/1.1 for the hosts inside a world: hyper over the fabric's byte streams.
//!
//! Every HTTP server and client inside a world goes through here: the simulated
//! internet's sites (`world::internet`), the Route 53 health checkers (`world::health`),
//! an instance's metadata service and web servers, and its `curl`, `wget` and package
//! managers (`instance`). The transport is any tokio `AsyncRead + AsyncWrite`: a
//! netstack `TcpStream` (a connection through the fabric), an instance's `NetStream`, or
//! an in-memory pipe in tests. hyper does the protocol; this module turns its messages
//! into the plain [`Request`] and [`Response`] values the in-world code works with, so
//! handlers stay synchronous functions of a request.
//!
//! What it does not do: TLS (the callers wrap the stream first: `tls` holds the
//! configurations), HTTP/2. A client request ([`request`]) opens its connection and says
//! `Connection: close`, as `curl` run once does; only a load balancer node reuses its
//! connections to targets ([`KeepAlive`]), as an ALB does.
//!
//! Two choices that users can see:
//!
//! - Header names are written in Title-Case (`Content-Type`), as Apache, nginx and EC2's
//!   metadata service write them. hyper keeps no original case on the client side, so
//!   a received response shows its names in Title-Case too ([`Response::headers`]).
//! - A server answers an HTTP/1.0 request with an `HTTP/1.1` status line, as Apache and
//!   nginx do (RFC 9110 §6.2: a server sends the highest version it conforms to). hyper
//!   would say `HTTP/1.0`; [`Http11StatusLine`] rewrites the version of the first
//!   response on a connection, which is the only one an HTTP/1.0 client reads unless it
//!   asks to keep the connection open.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue};
use hyper::{StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use vpclab_netstack::host::{Host, TcpListener};

/// The largest body read, by a server or a client, so a confused peer cannot exhaust
/// memory. A larger request is answered `413 Payload Too Large`.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// A client that has not sent a whole request head in this time is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A request as a server's handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, `PUT` …
    pub method: String,
    /// The request target as sent: `/index.html?x=1`.
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0` (the web servers' access log shows it).
    pub version: &'static str,
    /// Header names in lower case, values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The client's address as the server sees it (after any NAT; IPv6 over IPv6).
    pub peer: SocketAddr,
}

impl Request {
    /// The first header with this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }
}

/// A response: what a handler returns, and what a client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0` (received responses; a server always writes 1.1).
    pub version: &'static str,
    pub status: u16,
    /// The reason phrase (`Not Found`). A server writes the standard phrase of the
    /// status whatever this says.
    pub reason: String,
    /// Header names in Title-Case, in order. A server adds `Content-Length` itself.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response of `status` with a body of type `content_type`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            version: "HTTP/1.1",
            status,
            reason: StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
                .to_string(),
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body: body.into(),
        }
    }

    /// `404 Not Found` in plain text.
    pub fn not_found() -> Response {
        Response::new(404, "text/plain", "Not Found\n")
    }

    /// The same response with one more header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The first header with this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn version_text(v: Version) -> &'static str {
    if v == Version::HTTP_10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    }
}

/// `content-type` → `Content-Type`: how the servers of a world write names.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

/// A server's answer to each request. Handlers are plain functions: whatever they need
/// (an instance's disk, a mirror's files) they capture.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serves HTTP/1.1 on one connection until the client closes it, it sends no request head
/// within [`HEADER_READ_TIMEOUT`], or a response says `Connection: close`.
pub async fn serve_connection<S>(io: S, peer: SocketAddr, handler: Handler) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(answer(req, peer, handler.as_ref()).await) }
    });
    hyper::server::conn::http1::Builder::new()
        // A client may send its request and then close its side (`vpclab connect` does
        // when its input ends, so does `nc`); Apache and nginx still answer it.
        .half_close(true)
        .title_case_headers(true)
        // The servers emulated here (and the old ones) send no Date header.
        .auto_date_header(false)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(Http11StatusLine::new(io)), service)
        .await
        .map_err(into_io)
}

/// An asynchronous handler of whole messages, for servers that hand requests on to
/// another router (the AWS endpoints inside a world hand them to the API's).
pub type RawHandler = Arc<
    dyn Fn(
            hyper::Request<Bytes>,
            SocketAddr,
        ) -> Pin<Box<dyn std::future::Future<Output = hyper::Response<Bytes>> + Send>>
        + Send
        + Sync,
>;

/// Like [`serve_connection`], for a [`RawHandler`]: the request's body read whole (at
/// most [`MAX_BODY`]), the response passed through as the handler made it.
pub async fn serve_connection_raw<S>(io: S, peer: SocketAddr, handler: RawHandler) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let handler = handler.clone();
        async move {
            let (parts, body) = req.into_parts();
            let resp = match Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => handler(hyper::Request::from_parts(parts, b.to_bytes()), peer).await,
                Err(_) => {
                    let mut r = hyper::Response::new(Bytes::from_static(b"Payload Too Large\n"));
                    *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                    r
                }
            };
            Ok::<_, Infallible>(resp.map(Full::new))
        }
    });
    hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await
        .map_err(into_io)
}

/// Accepts connections on a fabric listener forever, serving each with `handler` in a
/// task of its own. Ends when the listener's host is removed.
pub async fn serve(listener: TcpListener, handler: Handler) {
    while let Ok((stream, peer)) = listener.accept().await {
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, peer, handler).await {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
}

/// Reads the request body and runs the handler.
async fn answer(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    handler: &(dyn Fn(&Request) -> Response + Send + Sync),
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return to_hyper(Response::new(413, "text/plain", "Payload Too Large\n"));
        }
    };
    let request = Request {
        method: parts.method.as_str().to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_string()),
        version: version_text(parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        peer,
    };
    to_hyper(handler(&request))
}

fn to_hyper(resp: Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in resp.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            // hyper computes the length from the body.
            (Ok(name), _) if name == CONTENT_LENGTH => {}
            (Ok(name), Ok(value)) => {
                out.headers_mut().append(name, value);
            }
            _ => tracing::debug!(header = %k, "a handler's header is not valid HTTP; dropped"),
        }
    }
    out
}

/// Sends one request on `io` (a fresh connection) and reads the whole response.
///
/// The request carries `Host`, the caller's `headers` in order, a `Content-Length` when
/// there is a body (or the method is POST or PUT), and `Connection: close`. Errors keep
/// the kind of the transport's error; a connection closed before any response is
/// `ConnectionReset` "Empty reply from server", as curl words it.
pub async fn request<S>(
    io: S,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let invalid = |e: hyper::http::Error| io::Error::new(io::ErrorKind::InvalidInput, e);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(target)
        .header(HOST, host);
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        builder = builder.header(CONTENT_LENGTH, body.len());
    }
    let req = builder
        .header(CONNECTION, "close")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(invalid)?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(into_io)?;
    let exchange = async move {
        let resp = sender.send_request(req).await.map_err(|e| {
            if e.is_incomplete_message() {
                io::Error::new(io::ErrorKind::ConnectionReset, "Empty reply from server")
            } else {
                into_io(e)
            }
        })?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(e) => into_io(*e),
                Err(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            })?
            .to_bytes();
        Ok::<_, io::Error>(from_parts(parts, body))
    };
    // The connection future moves the bytes; the exchange waits on it. Whichever ends
    // first, the exchange has the answer (or the error) once the connection is done.
    tokio::pin!(exchange, conn);
    tokio::select! {
        r = &mut exchange => r,
        _ = &mut conn => exchange.await,
    }
}

fn from_parts(parts: hyper::http::response::Parts, body: Bytes) -> Response {
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| parts.status.canonical_reason().map(str::to_string))
        .unwrap_or_default();
    Response {
        version: version_text(parts.version),
        status: parts.status.as_u16(),
        reason,
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    title_case(k.as_str()),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    }
}

/// Connections a client keeps open to the servers it sends many requests to: an
/// application load balancer node's connections to its targets. A request goes on an
/// idle connection to its destination when there is one (no TCP handshake and no close
/// per request), else on a new one; after a whole answer the connection is kept for the
/// next request unless either side said `Connection: close`. A connection idle longer
/// than the idle timeout is closed (the ALB's, 60 s by default), and at most
/// [`KeepAlive::MAX_IDLE`] wait per destination.
///
/// As with an ALB, a target that closes an idle connection just as a request goes out on
/// it makes that request fail (the caller answers 502); a request that hyper had not yet
/// written is sent again on a new connection.
pub struct KeepAlive {
    idle: std::sync::Mutex<std::collections::HashMap<SocketAddrV4, Vec<Idle>>>,
    idle_timeout: Duration,
}

struct Idle {
    since: tokio::time::Instant,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl KeepAlive {
    /// Idle connections kept per destination.
    pub const MAX_IDLE: usize = 8;

    pub fn new(idle_timeout: Duration) -> KeepAlive {
        KeepAlive {
            idle: Default::default(),
            idle_timeout,
        }
    }

    /// An idle connection to `dst` that is still open, dropping (closing) the expired and
    /// closed ones on the way.
    fn take(
        &self,
        dst: SocketAddrV4,
    ) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let now = tokio::time::Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let timeout = self.idle_timeout;
        idle.retain(|_, list| {
            list.retain(|c| now.duration_since(c.since) < timeout && !c.sender.is_closed());
            !list.is_empty()
        });
        let list = idle.get_mut(&dst)?;
        let found = list.pop().map(|c| c.sender);
        if list.is_empty() {
            idle.remove(&dst);
        }
        found
    }

    fn put(&self, dst: SocketAddrV4, sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(dst).or_default();
        if list.len() < Self::MAX_IDLE {
            list.push(Idle {
                since: tokio::time::Instant::now(),
                sender,
            });
        }
    }

    /// Sends one request to `dst` from `from` (a new connection within
    /// `connect_timeout` when no idle one is open) and reads the whole answer, at most
    /// [`MAX_BODY`]. `headers` must not carry `Host` or `Content-Length`.
    #[allow(clippy::too_many_arguments)]
    pub async fn request(
        &self,
        from: &Host,
        dst: SocketAddrV4,
        connect_timeout: Duration,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> io::Result<Response> {
        let invalid = |e: hyper::http::Error| io::Error::new(io::ErrorKind::InvalidInput, e);
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(target)
            .header(HOST, host);
        for (k, v) in headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            builder = builder.header(CONTENT_LENGTH, body.len());
        }
        let mut req = builder.body(Full::new(body)).map_err(invalid)?;
        let (mut sender, resp) = loop {
            match self.take(dst) {
                Some(mut sender) => match sender.try_send_request(req).await {
                    Ok(resp) => break (sender, resp),
                    Err(mut e) => match e.take_message() {
                        // Not written: the connection had closed; try another.
                        Some(back) => req = back,
                        None => return Err(into_io(e.into_error())),
                    },
                },
                None => {
                    let stream = from.connect_timeout(dst, connect_timeout).await?;
                    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
                        .title_case_headers(true)
                        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                        .await
                        .map_err(into_io)?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    let resp = sender.send_request(req).await.map_err(|e| {
                        if e.is_incomplete_message() {
                            io::Error::new(
                                io::ErrorKind::ConnectionReset,
                                "Empty reply from server",
                            )
                        } else {
                            into_io(e)
                        }
                    })?;
                    break (sender, resp);
                }
            }
        };
        let (parts, body) = resp.into_parts();
        let close = parts
            .headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(e) => into_io(*e),
                Err(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            })?
            .to_bytes();
        if !close && parts.version == Version::HTTP_11 {
            // The dispatcher is ready again once the answer was read whole.
            let ready = tokio::time::timeout(Duration::from_secs(1), sender.ready()).await;
            if matches!(ready, Ok(Ok(()))) {
                self.put(dst, sender);
            }
        }
        Ok(from_parts(parts, body))
    }
}

/// `GET http://{host}{path}` from a host of the fabric to `dst`, within the host's
/// connect timeout.
pub async fn get(from: &Host, dst: SocketAddrV4, host: &str, path: &str) -> io::Result<Response> {
    let stream = from.connect(dst).await?;
    let headers = [
        ("User-Agent".to_string(), "vpclab".to_string()),
        ("Accept".to_string(), "*/*".to_string()),
    ];
    request(stream, "GET", host, path, &headers, b"").await
}

/// A hyper error as an `io::Error`, keeping the transport's error kind when there is
/// one (a reset stays `ConnectionReset`, a timeout `TimedOut`).
fn into_io(e: hyper::Error) -> io::Error {
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(io_err) = s.downcast_ref::<io::Error>() {
            return io::Error::new(io_err.kind(), e.to_string());
        }
        source = s.source();
    }
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::InvalidData
    };
    io::Error::new(kind, e)
}

/// The address a handler sees when a connection has no network peer (an in-process
/// pipe, such as the metadata service reached from the instance itself).
pub const NO_PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// A server-side stream wrapper that writes the first response of a connection with an
/// `HTTP/1.1` status line even when hyper chose `HTTP/1.0` (see the module doc).
pub struct Http11StatusLine<S> {
    inner: S,
    /// Bytes written so far (only the very first write can hold the status line).
    written: u64,
}

impl<S> Http11StatusLine<S> {
    pub fn new(inner: S) -> Self {
        Http11StatusLine { inner, written: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Http11StatusLine<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Http11StatusLine<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        const OLD: &[u8] = b"HTTP/1.0 ";
        let this = &mut *self;
        let poll = if this.written == 0 && buf.starts_with(OLD) {
            // Same length, so the count written maps one to one.
            let mut patched = buf.to_vec();
            patched[..OLD.len()].copy_from_slice(b"HTTP/1.1 ");
            Pin::new(&mut this.inner).poll_write(cx, &patched)
        } else {
            Pin::new(&mut this.inner).poll_write(cx, buf)
        };
        if let Poll::Ready(Ok(n)) = &poll {
            this.written += *n as u64;
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn echo_handler() -> Handler {
        Arc::new(|r: &Request| {
            Response::new(
                200,
                "text/plain",
                format!("{} {} {} {}", r.method, r.target, r.version, r.body.len()),
            )
            .with_header("Server", "test")
        })
    }

    /// A raw exchange with a server over an in-memory pipe.
    async fn raw(request: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(serve_connection(server, NO_PEER, echo_handler()));
        client.write_all(request).await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        let _ = task.await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_server_writes_title_case_headers_and_no_date() {
        let out = raw(b"GET /a?b=1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: test\r\nConnection: close\r\nContent-Length: 21\r\n\r\nGET /a?b=1 HTTP/1.1 0"
        );
    }

    #[tokio::test]
    async fn an_http_1_0_request_gets_an_http_1_1_status_line() {
        let out = raw(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("GET / HTTP/1.0 0"), "{out}");
    }

    #[tokio::test]
    async fn a_client_that_closes_its_side_after_the_request_still_gets_the_answer() {
        for _ in 0..20 {
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let task = tokio::spawn(serve_connection(server, NO_PEER, echo_handler()));
            client
                .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            client.shutdown().await.unwrap();
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            let _ = task.await;
            let out = String::from_utf8_lossy(&out);
            assert!(out.ends_with("GET / HTTP/1.0 0"), "{out}");
        }
    }

    #[tokio::test]
    async fn head_gets_the_length_without_the_body() {
        let out = raw(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(out.contains("Content-Length: 17\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    #[tokio::test]
    async fn the_client_reads_status_reason_headers_and_body() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(serve_connection(server, NO_PEER, echo_handler()));
        let headers = [("User-Agent".to_string(), "curl/8.5.0".to_string())];
        let resp = request(client, "POST", "x", "/p", &headers, b"abc")
            .await
            .unwrap();
        assert_eq!((resp.version, resp.status), ("HTTP/1.1", 200));
        assert_eq!(resp.reason, "OK");
        assert_eq!(resp.header("server"), Some("test"));
        assert_eq!(resp.headers[0].0, "Content-Type");
        assert_eq!(resp.text(), "POST /p HTTP/1.1 3");
    }

    #[tokio::test]
    async fn a_connection_closed_without_a_response_is_an_empty_reply() {
        let (client, mut server) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = server.read(&mut buf).await;
            drop(server);
        });
        let err = request(client, "GET", "x", "/", &[], b"")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(err.to_string(), "Empty reply from server");
    }

    #[tokio::test]
    async fn a_non_standard_reason_phrase_is_kept() {
        let (client, mut server) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = server.read(&mut buf).await;
            let _ = server
                .write_all(b"HTTP/1.0 200 Fine Thanks\r\nx-thing: 1\r\n\r\nbody until close")
                .await;
        });
        let resp = request(client, "GET", "x", "/", &[], b"").await.unwrap();
        assert_eq!(resp.version, "HTTP/1.0");
        assert_eq!(resp.reason, "Fine Thanks");
        assert_eq!(resp.headers, vec![("X-Thing".to_string(), "1".to_string())]);
        assert_eq!(resp.text(), "body until close");
    }

    /// An ALB node's connections to a target: later requests ride the first connection
    /// (the target accepts one), and an answer saying `Connection: close` makes the next
    /// request open a new one.
    #[tokio::test]
    async fn keep_alive_sends_later_requests_on_the_open_connection() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use vpclab_netstack::host::{HostConfig, Net};
        use vpclab_netstack::{Fabric, Port, fixture};

        let (topology, ids) = fixture::public_private_vpc();
        let net = Net::new(Fabric::new(Arc::new(topology)));
        let web = net
            .add_host(HostConfig::vpc(
                Port::Eni(ids.web_eni.clone()),
                ipnet::Ipv4Net::new(ids.web_ip, 24).expect("prefix"),
            ))
            .expect("web host");
        let listener = web.listen(80).expect("listen");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let handler: Handler = Arc::new(|r: &Request| {
                    let resp = Response::new(200, "text/plain", r.target.clone());
                    if r.path() == "/close" {
                        resp.with_header("Connection", "close")
                    } else {
                        resp
                    }
                });
                tokio::spawn(serve_connection(stream, peer, handler));
            }
        });
        let node = net
            .add_host(HostConfig::internet(Ipv4Addr::new(192, 0, 2, 96)))
            .expect("node");
        let dst = SocketAddrV4::new(ids.web_public, 80);
        let pool = KeepAlive::new(Duration::from_secs(60));
        let get = |path: &'static str| {
            pool.request(
                &node,
                dst,
                Duration::from_secs(5),
                "GET",
                "web",
                path,
                &[],
                Bytes::new(),
            )
        };
        for path in ["/a", "/b", "/c"] {
            let r = get(path).await.expect("answer");
            assert_eq!((r.status, r.text()), (200, path.to_string()));
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for three requests"
        );
        assert_eq!(get("/close").await.expect("answer").status, 200);
        assert_eq!(get("/d").await.expect("answer").text(), "/d");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "a closed connection is not reused"
        );
    }
}
