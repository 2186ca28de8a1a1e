//! The host-side public DNS endpoint (`vpclab up --dns-listen 127.0.0.1:5300`): answers
//! as the world's internet resolver would, so that `dig @127.0.0.1 -p 5300
//! www.example.lab` on the learner's own machine sees public hosted zones and the public
//! names of instances, and never a private zone.
//!
//! Transport is `hickory-server`'s [`Server`] (UDP and TCP on sockets the caller bound);
//! the answers come from [`super::engine::respond`] with [`Vantage::Internet`], the same
//! engine the resolvers inside the VPCs use. The view is shared behind a lock: the
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
use tokio::net::{TcpListener, UdpSocket};

use super::engine::{Transport, Vantage, respond};
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

/// How long an idle TCP connection is kept open (RFC 7766 §6.2.3 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_QUEUE: usize = 32;

/// Errors of the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A socket failed for good.
    #[error("DNS endpoint failed: {0}")]
    Net(String),
}

/// Serves public DNS on `udp` and `tcp` (bound by the caller, normally the same loopback
/// port) until `shutdown` resolves; then stops accepting and returns once in-flight
/// queries are done.
pub async fn serve_public_dns(
    udp: UdpSocket,
    tcp: TcpListener,
    view: SharedView,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let mut server = Server::new(PublicHandler { view });
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE, TCP_QUEUE);
    let token = server.shutdown_token().clone();
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
    result.map_err(|e| ServeError::Net(e.to_string()))
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
