//! The host-side public DNS endpoint (`vpclab up --dns-listen 127.0.0.1:5300`): answers
//! as the world's internet resolver would, so that `dig @127.0.0.1 -p 5300
//! www.example.lab` on the learner's own machine sees public hosted zones and the public
//! names of instances, and never a private zone.
//!
//! UDP is served by `hickory-server`'s [`Server`] on the socket the caller bound. TCP is
//! served here, on the listener the caller bound, because it needs bounds hickory 0.26
//! does not offer: `Server::register_listener` takes only a per-connection timeout
//! (reset by each complete query) and accepts any number of connections, so a client
//! opening connections and keeping them busy could take every descriptor. Here at most
//! [`TcpLimits::max_connections`] are served at once (a connection over the limit is
//! closed as soon as it is accepted) and each must deliver a whole query, and take each
//! answer, within [`TcpLimits::idle`]: RFC 7766 §6.2.3 lets a server close idle
//! connections, and suggests timeouts of seconds.
//!
//! Both transports answer with the same engine the resolvers inside the VPCs use
//! ([`super::engine`], [`Vantage::Internet`]). The view is shared behind a lock: the
//! control plane replaces it after every change, and the next query sees the change.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, Message, MessageType, ResponseCode};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::engine::{Transport, Vantage, answer, respond};
use super::view::DnsView;

/// The view as the endpoint shares it with whoever keeps it current.
pub type SharedView = Arc<RwLock<DnsView>>;

/// The DNS views of every account: each account's world resolves from its own view, so
/// no account's hosted zones or instance names answer in another's world. Cheap to
/// clone.
#[derive(Clone, Default)]
pub struct Views {
    by_account: Arc<RwLock<std::collections::BTreeMap<String, SharedView>>>,
    /// Tests: one view for every account.
    single: Option<SharedView>,
}

impl Views {
    /// A registry that hands every account the same view (unit tests).
    pub fn single(view: SharedView) -> Views {
        Views {
            single: Some(view),
            ..Views::default()
        }
    }

    /// The view of `account` (empty until its world is first compiled).
    pub fn of(&self, account: &str) -> SharedView {
        if let Some(v) = &self.single {
            return v.clone();
        }
        if let Some(v) = self
            .by_account
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
        {
            return v.clone();
        }
        self.by_account
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.to_owned())
            .or_default()
            .clone()
    }

    /// Every account's view.
    pub fn all(&self) -> Vec<SharedView> {
        if let Some(v) = &self.single {
            return vec![v.clone()];
        }
        self.by_account
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// The bounds on DNS over TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections served at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// How long a connection may take to deliver a whole query (its two length bytes and
    /// the message), or to take an answer, before it is closed.
    pub idle: Duration,
}

impl TcpLimits {
    /// vpclab's figures: 128 connections, 10 seconds. One learner's `dig +tcp` or
    /// resolver needs a handful; 128 stays far below a 1,024-descriptor limit.
    pub const DEFAULT: TcpLimits = TcpLimits {
        max_connections: 128,
        idle: Duration::from_secs(10),
    };
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits::DEFAULT
    }
}

/// Errors of the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A socket failed for good.
    #[error("DNS endpoint failed: {0}")]
    Net(String),
}

/// Serves public DNS on `udp` and `tcp` (bound by the caller, normally the same loopback
/// port) with [`TcpLimits::DEFAULT`] until `shutdown` resolves; then stops accepting,
/// closes TCP connections and returns once in-flight UDP queries are done.
pub async fn serve_public_dns(
    udp: UdpSocket,
    tcp: TcpListener,
    view: SharedView,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_public_dns_with(udp, tcp, view, TcpLimits::DEFAULT, shutdown).await
}

/// [`serve_public_dns`] with other TCP bounds (tests use small ones).
pub async fn serve_public_dns_with(
    udp: UdpSocket,
    tcp: TcpListener,
    view: SharedView,
    limits: TcpLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let mut server = Server::new(PublicHandler { view: view.clone() });
    server.register_socket(udp);
    let token = server.shutdown_token().clone();
    let tcp_stop = token.clone();
    let tcp_task = tokio::spawn(async move {
        serve_tcp(tcp, view, limits, tcp_stop.cancelled()).await;
    });
    let done = server.block_until_done();
    tokio::pin!(done);
    tokio::pin!(shutdown);
    let result = tokio::select! {
        result = &mut done => result,
        () = &mut shutdown => {
            token.cancel();
            done.await
        }
    };
    token.cancel();
    let _ = tcp_task.await;
    result.map_err(|e| ServeError::Net(e.to_string()))
}

/// Accepts TCP connections until `stop`, serving at most `limits.max_connections` at
/// once. Connections still open at `stop` are closed.
async fn serve_tcp(
    listener: TcpListener,
    view: SharedView,
    limits: TcpLimits,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors or a connection reset before it was accepted: wait a
                // moment rather than spin, and keep serving.
                tracing::debug!(%error, "DNS TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("DNS TCP connection refused: limit reached");
            drop(stream);
            continue;
        };
        let view = view.clone();
        connections.spawn(async move {
            serve_tcp_connection(stream, &view, limits.idle).await;
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// Answers the queries of one connection in order (RFC 1035 §4.2.2 framing: two length
/// bytes, then the message) until the client closes, stalls, or sends nothing for `idle`.
async fn serve_tcp_connection(mut stream: TcpStream, view: &SharedView, idle: Duration) {
    loop {
        let read = async {
            let len = stream.read_u16().await?;
            let mut query = vec![0u8; usize::from(len)];
            stream.read_exact(&mut query).await?;
            Ok::<_, std::io::Error>(query)
        };
        let Ok(Ok(query)) = tokio::time::timeout(idle, read).await else {
            return;
        };
        let response = {
            // A poisoned lock still holds a complete view (writers swap whole views).
            let view = view.read().unwrap_or_else(|e| e.into_inner());
            answer(&view, Vantage::Internet, &query, Transport::Tcp)
        };
        // No answer (not a query) is no answer over TCP either.
        let Some(response) = response else { continue };
        let Ok(len) = u16::try_from(response.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&response);
        match tokio::time::timeout(idle, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Answers every request from the internet's vantage point.
struct PublicHandler {
    view: SharedView,
}

#[async_trait::async_trait]
impl RequestHandler for PublicHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let transport = match request.protocol() {
            Protocol::Udp => Transport::UDP,
            _ => Transport::Tcp,
        };
        // hickory has parsed the message already; rebuild the engine's input from it,
        // keeping the question's original case (RFC 4343 §4.1).
        let mut query = Message::new(
            request.metadata.id,
            MessageType::Query,
            request.metadata.op_code,
        );
        query.metadata = request.metadata;
        query.queries = request
            .queries
            .queries()
            .iter()
            .map(|q| q.original().clone())
            .collect();
        query.edns = request.edns.clone();

        let response = {
            // A poisoned lock still holds a complete view (writers swap whole views).
            let view = self.view.read().unwrap_or_else(|e| e.into_inner());
            respond(&view, Vantage::Internet, &query, transport)
        };
        let Some(response) = response else {
            return no_response(&query);
        };
        // The engine has already fitted the response to the client's buffer (and set TC);
        // hickory encodes it as is, echoing the question bytes it received.
        let builder = MessageResponseBuilder::new(&request.queries, response.edns.as_ref());
        let message = builder.build(
            response.metadata,
            response.answers.iter(),
            response.authorities.iter(),
            std::iter::empty(),
            response.additionals.iter(),
        );
        match response_handle.send_response(message).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "DNS response not sent");
                no_response(&query)
            }
        }
    }
}

/// What hickory logs when nothing was sent.
fn no_response(query: &Message) -> ResponseInfo {
    let mut metadata = query.metadata;
    metadata.message_type = MessageType::Response;
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
