//! TCP for tokio over smoltcp sockets: a listener that accepts many
//! simultaneous connections and a stream that implements `AsyncRead` and
//! `AsyncWrite`.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::world::{ListenerPool, SocketKind};
use super::{Host, NetError};

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer")
}

fn gone() -> io::Error {
    NetError::HostGone.into()
}

fn sockaddr(ep: IpEndpoint) -> SocketAddr {
    match ep.addr {
        IpAddress::Ipv4(a) => SocketAddr::new(IpAddr::V4(a), ep.port),
        IpAddress::Ipv6(a) => SocketAddr::new(IpAddr::V6(a), ep.port),
    }
}

/// Listens for TCP connections on one port of a host.
///
/// Backed by a pool of smoltcp sockets: one in LISTEN state is created
/// just before each incoming SYN (none while idle), so any number of clients (up to
/// [`TcpConfig::backlog`](super::TcpConfig::backlog) not yet accepted) can
/// connect at the same time. Dropping the listener resets connections not
/// yet accepted and closes the port (new SYNs get a reset).
pub struct TcpListener {
    host: Host,
    port: u16,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("host", &self.host.id)
            .field("port", &self.port)
            .finish()
    }
}

impl TcpListener {
    /// Listen on `port` on all of `host`'s addresses.
    pub fn bind(host: &Host, port: u16) -> io::Result<TcpListener> {
        if port == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "listening port must not be 0",
            ));
        }
        let mut world = host.shared.lock();
        let slot = world.hosts.get_mut(&host.id).ok_or_else(gone)?;
        if slot.listeners.contains_key(&port) || slot.tcp_ports.contains(&port) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("TCP port {port} is in use"),
            ));
        }
        let backlog = slot.tcp.backlog.max(1);
        slot.listeners.insert(
            port,
            ListenerPool {
                sockets: Vec::new(),
                backlog,
                waker: None,
            },
        );
        Ok(TcpListener {
            host: host.clone(),
            port,
        })
    }

    /// The port listened on.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// The host listening.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Wait for the next established connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll form of [`Self::accept`].
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let shared = &self.host.shared;
        let mut world = shared.lock();
        let slot = match world.hosts.get_mut(&self.host.id) {
            Some(s) => s,
            None => return Poll::Ready(Err(gone())),
        };
        let Some(pool) = slot.listeners.get_mut(&self.port) else {
            return Poll::Ready(Err(gone()));
        };
        let mut found = None;
        let mut dead = Vec::new();
        for (i, &h) in pool.sockets.iter().enumerate() {
            let s = slot.sockets.get::<tcp::Socket>(h);
            match s.state() {
                tcp::State::Listen | tcp::State::SynReceived => {}
                tcp::State::Closed | tcp::State::TimeWait => dead.push(i),
                _ => {
                    found = Some(i);
                    break;
                }
            }
        }
        if let Some(i) = found {
            let h = pool.sockets.remove(i);
            let s = slot.sockets.get_mut::<tcp::Socket>(h);
            // An established connection may stay idle for ever.
            s.set_timeout(None);
            let (Some(local), Some(peer)) = (s.local_endpoint(), s.remote_endpoint()) else {
                // An established socket always has both endpoints.
                slot.orphan_abort(h, None);
                return Poll::Ready(Err(io::Error::other("accepted socket without endpoints")));
            };
            // The socket's next timer changed: let the driver recompute it.
            shared.kick(&mut world, self.host.id);
            let stream = TcpStream {
                host: self.host.clone(),
                handle: h,
                ephemeral: None,
                closed_by_us: false,
                local: sockaddr(local),
                peer: sockaddr(peer),
            };
            return Poll::Ready(Ok((stream, sockaddr(peer))));
        }
        // Connections that died before being accepted: drop them.
        for i in dead.into_iter().rev() {
            let h = pool.sockets.remove(i);
            slot.orphans.push((h, SocketKind::Tcp, None));
        }
        let waker = shared.waker(cx);
        for &h in &pool.sockets {
            slot.sockets
                .get_mut::<tcp::Socket>(h)
                .register_recv_waker(&waker);
        }
        // No socket yet (idle listener) is fine: the driver creates one
        // when a SYN arrives, and its state changes wake this task.
        pool.waker = Some(waker);
        Poll::Pending
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let shared = self.host.shared.clone();
        let mut world = shared.lock();
        if let Some(slot) = world.hosts.get_mut(&self.host.id)
            && let Some(pool) = slot.listeners.remove(&self.port)
        {
            for h in pool.sockets {
                slot.orphan_abort(h, None);
            }
            shared.kick(&mut world, self.host.id);
        }
    }
}

/// A TCP connection of a host.
///
/// `poll_flush` never waits for the peer's acknowledgement: data written is
/// in the socket's send buffer and the driver sends it. `poll_shutdown`
/// sends FIN. Dropping the stream closes it gracefully in the background.
pub struct TcpStream {
    host: Host,
    handle: SocketHandle,
    /// The ephemeral port to free when the socket is gone (client side).
    ephemeral: Option<u16>,
    /// Whether this side sent FIN: then a socket found CLOSED ended
    /// normally; otherwise it was reset (or aborted by a timeout).
    closed_by_us: bool,
    local: SocketAddr,
    peer: SocketAddr,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish()
    }
}

impl TcpStream {
    /// Connect from `host` to `dst`, waiting at most `timeout` for the
    /// handshake. A reset answer gives `ConnectionRefused`; no answer gives
    /// `TimedOut`.
    pub async fn connect(host: &Host, dst: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        let mut stream = {
            let shared = &host.shared;
            let mut world = shared.lock();
            let slot = world.hosts.get_mut(&host.id).ok_or_else(gone)?;
            let port = slot.ephemeral_port(false).ok_or_else(|| {
                io::Error::new(io::ErrorKind::AddrInUse, "no free ephemeral port")
            })?;
            let mut s = slot.new_tcp_socket();
            s.connect(
                slot.iface.context(),
                (IpAddress::from(dst.ip()), dst.port()),
                IpListenEndpoint { addr: None, port },
            )
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot connect to {dst}: {e}"),
                )
            })?;
            let local = s.local_endpoint().map(sockaddr).unwrap_or_else(|| {
                let any = match dst {
                    SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                };
                SocketAddr::new(any, port)
            });
            slot.tcp_ports.insert(port);
            let handle = slot.sockets.add(s);
            shared.kick(&mut world, host.id);
            TcpStream {
                host: host.clone(),
                handle,
                ephemeral: Some(port),
                closed_by_us: false,
                local,
                peer: dst,
            }
        };
        match tokio::time::timeout(timeout, poll_fn(|cx| stream.poll_established(cx))).await {
            Ok(Ok(())) => {
                // The source address is chosen when the SYN is sent.
                if let Some(local) = stream.with_socket(|s| s.local_endpoint()).ok().flatten() {
                    stream.local = sockaddr(local);
                }
                Ok(stream)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connection to {dst} timed out"),
            )),
        }
    }

    fn poll_established(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let peer = self.peer;
        let shared = &self.host.shared;
        self.with_socket(|s| match s.state() {
            tcp::State::SynSent | tcp::State::SynReceived => {
                s.register_send_waker(&shared.waker(cx));
                Poll::Pending
            }
            tcp::State::Closed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("connection to {peer} refused"),
            ))),
            _ => Poll::Ready(Ok(())),
        })?
    }

    /// Run `f` on the smoltcp socket; wakes the driver afterwards.
    fn with_socket<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> io::Result<R> {
        let shared = &self.host.shared;
        let mut world = shared.lock();
        let slot = world.hosts.get_mut(&self.host.id).ok_or_else(gone)?;
        let r = f(slot.sockets.get_mut::<tcp::Socket>(self.handle));
        Ok(r)
    }

    /// Like `with_socket`, and has the host polled (something was queued or
    /// the window opened).
    fn with_socket_kick<R>(
        &self,
        f: impl FnOnce(&mut tcp::Socket<'static>) -> (R, bool),
    ) -> io::Result<R> {
        let shared = &self.host.shared;
        let mut world = shared.lock();
        let slot = world.hosts.get_mut(&self.host.id).ok_or_else(gone)?;
        let (r, kick) = f(slot.sockets.get_mut::<tcp::Socket>(self.handle));
        if kick {
            shared.kick(&mut world, self.host.id);
        }
        Ok(r)
    }

    /// Local address and port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The peer's address and port (as this host sees it: after NAT).
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The peer's IP, as `IpAddr`.
    pub fn peer_ip(&self) -> IpAddr {
        self.peer.ip()
    }

    /// Turn Nagle's algorithm off (`true`) or on.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.with_socket(|s| s.set_nagle_enabled(!nodelay))
    }

    /// Reset the connection (RST) instead of closing it.
    pub fn abort(self) {
        let shared = self.host.shared.clone();
        let mut world = shared.lock();
        if let Some(slot) = world.hosts.get_mut(&self.host.id) {
            slot.orphan_abort(self.handle, self.ephemeral);
            shared.kick(&mut world, self.host.id);
        }
        drop(world);
        std::mem::forget(self);
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &*self;
        let closed_by_us = this.closed_by_us;
        let r = this.with_socket_kick(|s| {
            if s.can_recv() {
                // Whether the window had closed to less than half: only then
                // must the driver announce the reopened window at once;
                // otherwise the next ACK carries it (saves a wake-up per read).
                let was_tight = s.recv_queue() * 2 >= s.recv_capacity();
                // The ring buffer may wrap: take up to two contiguous pieces.
                let mut total = 0;
                for _ in 0..2 {
                    let n = s
                        .recv(|data| {
                            let n = data.len().min(buf.remaining());
                            buf.put_slice(&data[..n]);
                            (n, n)
                        })
                        .unwrap_or(0);
                    total += n;
                    if n == 0 || buf.remaining() == 0 {
                        break;
                    }
                }
                (Poll::Ready(Ok(())), total > 0 && was_tight)
            } else if s.state() == tcp::State::Closed && !closed_by_us {
                // CLOSED without our FIN: the peer reset the connection.
                (Poll::Ready(Err(reset())), false)
            } else if !s.may_recv() {
                // FIN received: end of stream.
                (Poll::Ready(Ok(())), false)
            } else {
                s.register_recv_waker(&this.host.shared.waker(cx));
                (Poll::Pending, false)
            }
        });
        match r {
            Ok(p) => p,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &*self;
        let closed_by_us = this.closed_by_us;
        let r = this.with_socket_kick(|s| {
            if s.state() == tcp::State::Closed && !closed_by_us {
                (Poll::Ready(Err(reset())), false)
            } else if !s.may_send() {
                let e = io::Error::new(io::ErrorKind::BrokenPipe, "connection closed");
                (Poll::Ready(Err(e)), false)
            } else if s.can_send() {
                // With bytes already queued, an ACK (or a timer) is due and
                // will poll the host, which sends the new bytes too; only an
                // idle socket needs the driver woken.
                let idle = s.send_queue() == 0;
                match s.send_slice(data) {
                    Ok(n) => (Poll::Ready(Ok(n)), n > 0 && idle),
                    Err(e) => (Poll::Ready(Err(io::Error::other(e.to_string()))), false),
                }
            } else {
                s.register_send_waker(&this.host.shared.waker(cx));
                (Poll::Pending, false)
            }
        });
        match r {
            Ok(p) => p,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Deliberately not waiting for the peer's ACK (see the module doc):
        // the bytes are queued and the driver is already awake.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.closed_by_us = true;
        match self.with_socket_kick(|s| {
            s.close();
            ((), true)
        }) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let shared = self.host.shared.clone();
        let mut world = shared.lock();
        if let Some(slot) = world.hosts.get_mut(&self.host.id) {
            slot.orphan(self.handle, SocketKind::Tcp, self.ephemeral);
            shared.kick(&mut world, self.host.id);
        }
    }
}
