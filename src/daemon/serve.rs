//! The API port's HTTP/1.1 server: hyper connections driving the axum router, with the
//! limits a hostile or careless client cannot exceed.
//!
//! - **Header-read and idle timeout** ([`ApiLimits::header_read_timeout`]): a
//!   connection must deliver a request's headers within this time, counted from when it
//!   opens or finished its previous request, or it is closed. An idle keep-alive
//!   connection is therefore closed after the same time.
//! - **Connections in total and per client address** ([`ApiLimits::max_connections`],
//!   [`ApiLimits::max_per_client`]; the per-client cap applies to non-loopback clients,
//!   since every local client shares 127.0.0.1). When the total is reached, the
//!   connection that has been idle longest is closed to make room; only when every
//!   connection is busy with a request is the new one refused. A client that opens
//!   connections and sends nothing (slowloris) therefore cannot lock others out: its
//!   connections are the idle ones.
//! - Request bodies are bounded by each protocol handler (`api::MAX_BODY`).
//!
//! Shutdown is graceful: the listener stops accepting, each connection finishes the
//! request in flight, and connections still open after [`DRAIN`] are dropped.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// How long shutdown waits for open connections to finish their requests.
const DRAIN: Duration = Duration::from_secs(5);

/// Limits of the API port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// Time to receive a request's headers (and the idle timeout between requests).
    pub header_read_timeout: Duration,
    /// Open connections in total.
    pub max_connections: usize,
    /// Open connections from one non-loopback client address.
    pub max_per_client: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_per_client: 64,
        }
    }
}

/// One open connection, as the admission logic sees it.
struct Slot {
    peer: IpAddr,
    /// `Some(since)` while no request is in flight.
    idle_since: Option<Instant>,
    /// Closes the connection.
    evict: Arc<Notify>,
}

/// The open connections, by a serial number.
#[derive(Default)]
struct Registry {
    next: u64,
    slots: BTreeMap<u64, Slot>,
}

impl Registry {
    /// Admits a connection from `peer`, evicting the longest-idle connection if the
    /// total is reached. `None`: refused (every connection is busy, or the client is at
    /// its own cap).
    fn admit(&mut self, peer: IpAddr, limits: &ApiLimits) -> Option<(u64, Arc<Notify>)> {
        if !peer.is_loopback()
            && self.slots.values().filter(|s| s.peer == peer).count() >= limits.max_per_client
        {
            return None;
        }
        if self.slots.len() >= limits.max_connections {
            let victim = self
                .slots
                .iter()
                .filter_map(|(id, s)| s.idle_since.map(|t| (t, *id)))
                .min()
                .map(|(_, id)| id)?;
            if let Some(slot) = self.slots.remove(&victim) {
                slot.evict.notify_one();
            }
        }
        let id = self.next;
        self.next += 1;
        let evict = Arc::new(Notify::new());
        self.slots.insert(
            id,
            Slot {
                peer,
                idle_since: Some(Instant::now()),
                evict: evict.clone(),
            },
        );
        Some((id, evict))
    }

    fn set_busy(&mut self, id: u64, busy: bool) {
        if let Some(s) = self.slots.get_mut(&id) {
            s.idle_since = if busy { None } else { Some(Instant::now()) };
        }
    }
}

type Shared = Arc<Mutex<Registry>>;

fn lock(r: &Shared) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ApiLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let registry: Shared = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admitted = lock(&registry).admit(peer.ip(), &limits);
        let Some((id, evict)) = admitted else {
            tracing::debug!(%peer, "connection refused: at the connection limit");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection(
            stream,
            peer,
            id,
            evict,
            app.clone(),
            registry.clone(),
            limits.header_read_timeout,
            stop_rx.clone(),
        ));
        // Reap finished connection tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tasks.abort_all();
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    id: u64,
    evict: Arc<Notify>,
    app: Router,
    registry: Shared,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let svc = {
        let registry = registry.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            lock(&registry).set_busy(id, true);
            let app = app.clone();
            let registry = registry.clone();
            async move {
                let mut req = req.map(axum::body::Body::new);
                // The client's address, for aws:SourceIp in IAM conditions.
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let resp = app.oneshot(req).await;
                lock(&registry).set_busy(id, false);
                resp
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = evict.notified() => {
            tracing::debug!(%peer, "closing the longest-idle connection to admit a new one");
            Ok(())
        }
        _ = stopping(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
    lock(&registry).slots.remove(&id);
}

/// Resolves when the server starts shutting down.
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> ApiLimits {
        ApiLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: max,
            max_per_client: 2,
        }
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let mut r = Registry::default();
        let local: IpAddr = [127, 0, 0, 1].into();
        let (first, first_evict) = r.admit(local, &limits(2)).unwrap();
        let (second, _) = r.admit(local, &limits(2)).unwrap();
        r.set_busy(second, true);
        let (_third, _) = r.admit(local, &limits(2)).expect("an idle one was evicted");
        assert!(!r.slots.contains_key(&first), "the idle connection went");
        assert!(r.slots.contains_key(&second), "the busy connection stayed");
        // The evicted connection's task is woken to close.
        let woken = first_evict.notified();
        tokio::pin!(woken);
        assert!(
            futures_ready(woken.as_mut()),
            "eviction notifies the connection"
        );
    }

    #[test]
    fn when_every_connection_is_busy_a_new_one_is_refused() {
        let mut r = Registry::default();
        let local: IpAddr = [127, 0, 0, 1].into();
        let (a, _) = r.admit(local, &limits(1)).unwrap();
        r.set_busy(a, true);
        assert!(r.admit(local, &limits(1)).is_none());
    }

    #[test]
    fn a_remote_client_is_held_to_its_own_cap_but_loopback_is_not() {
        let mut r = Registry::default();
        let remote: IpAddr = [192, 0, 2, 7].into();
        let local: IpAddr = [127, 0, 0, 1].into();
        assert!(r.admit(remote, &limits(10)).is_some());
        assert!(r.admit(remote, &limits(10)).is_some());
        assert!(r.admit(remote, &limits(10)).is_none());
        for _ in 0..3 {
            assert!(r.admit(local, &limits(10)).is_some());
        }
    }

    /// Issue 10, item 3 (slowloris): idle connections up to the limit and beyond must not
    /// keep a real client out. Before the fix the API port had no header-read timeout
    /// and no eviction: every idle connection held a slot forever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn issue10_idle_connections_cannot_lock_a_real_client_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let limits = ApiLimits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 8,
            max_per_client: 8,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, limits, async {
            let _ = stopped.await;
        }));
        // Three times the limit of connections that never send a byte, plus one that
        // sent half a request line.
        let mut idle = Vec::new();
        for _ in 0..24 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HT").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut reply))
            .await
            .expect("the real client is answered")
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("hello"));
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn issue10_slowloris_a_connection_that_sends_no_headers_is_closed() {
        use tokio::io::AsyncReadExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let limits = ApiLimits {
            header_read_timeout: Duration::from_secs(10),
            ..ApiLimits::default()
        };
        tokio::spawn(serve(listener, app, limits, std::future::pending()));
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        // The server closes (EOF, or a 408 then EOF) once the timeout has passed.
        let read = tokio::time::timeout(Duration::from_secs(11), async {
            let mut total = Vec::new();
            loop {
                match idle.read(&mut buf).await {
                    Ok(0) | Err(_) => break total,
                    Ok(n) => total.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "the idle connection was closed within 11 s");
    }

    /// Polls a future once with a no-op waker.
    fn futures_ready<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.poll(&mut cx).is_ready()
    }
}
