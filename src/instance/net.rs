//! The instance's view of the network: the one trait every network tool of the emulated
//! shell goes through (`curl`, `ping`, `nc`, `dig`, `dnf`, the web servers …).
//!
//! The product implements [`InstanceNet`] over the instance's host stack on the fabric,
//! so every connection crosses route tables, NACLs and security groups like any packet.
//! This module defines only the trait and [`FakeNet`], an in-memory implementation that
//! tests use to say "this address answers, that one times out".

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::sync::mpsc;

/// A boxed, sendable future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connected byte stream (a TCP connection on the fabric).
pub trait NetStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> NetStream for T {}

/// A listening TCP socket that yields accepted connections with the peer's address.
pub trait NetListener: Send {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Box<dyn NetStream>, SocketAddr)>>;
}

/// An echo reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingReply {
    pub rtt: Duration,
    pub ttl: u8,
}

/// One hop of a `traceroute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHop {
    /// The address that answered.
    pub addr: IpAddr,
    /// What it is, when known (`_gateway`, the NAT gateway's id).
    pub name: Option<String>,
    pub rtt: Duration,
}

/// What a `traceroute` found: the hops that answered, in order, and whether the
/// destination itself was the last of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub hops: Vec<TraceHop>,
    pub reached: bool,
}

/// One interface, as `ip addr` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// `ens5` on Nitro instances.
    pub name: String,
    /// `02:ab:cd:ef:01:02`.
    pub mac: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    /// Its IPv6 addresses with their prefix length (a dual-stack instance's /64).
    pub addrs6: Vec<(Ipv6Addr, u8)>,
}

/// One kernel route, as `ip route` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// `default` or a CIDR such as `10.0.1.0/24`.
    pub dst: String,
    pub via: Option<Ipv4Addr>,
    pub dev: String,
    pub src: Option<Ipv4Addr>,
}

/// One IPv6 route, as `ip -6 route` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route6Info {
    /// `default` or a prefix such as `2001:db8:1:1::/64`.
    pub dst: String,
    pub via: Option<Ipv6Addr>,
    pub dev: String,
}

/// Everything the shell's network tools need from the instance's own network stack.
///
/// Failures use the `io::ErrorKind` a Linux socket would report, so tools can word them
/// like the real ones: `TimedOut` (filtered by a security group or NACL, or no route
/// out), `ConnectionRefused` (the host answered with a reset: nothing listens),
/// `HostUnreachable`/`NetworkUnreachable` (no route at all), `AddrInUse` for a listen.
pub trait InstanceNet: Send + Sync {
    /// Opens a TCP connection from the instance, giving up after `timeout`.
    fn tcp_connect(
        &self,
        dst: SocketAddrV4,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Box<dyn NetStream>>>;

    /// Listens on the instance's address(es) at `port`.
    fn tcp_listen(&self, port: u16) -> BoxFuture<'_, io::Result<Box<dyn NetListener>>>;

    /// Sends one ICMP echo request and waits for the reply.
    fn ping(
        &self,
        dst: Ipv4Addr,
        seq: u16,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<PingReply>>;

    /// Sends one UDP datagram and returns the first reply (a DNS exchange).
    fn udp_exchange(
        &self,
        dst: SocketAddrV4,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Vec<u8>>>;

    /// The instance's interfaces (`ip addr`).
    fn interfaces(&self) -> Vec<InterfaceInfo>;

    /// The instance's routing table (`ip route`).
    fn routes(&self) -> Vec<RouteInfo>;

    /// Opens a TCP connection over IPv6. An instance without an IPv6 address has no
    /// IPv6 route: `NetworkUnreachable`, as Linux answers.
    fn tcp_connect6(
        &self,
        _dst: SocketAddrV6,
        _timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Box<dyn NetStream>>> {
        Box::pin(async { Err(io::Error::from(io::ErrorKind::NetworkUnreachable)) })
    }

    /// [`Self::udp_exchange`] over IPv6 (a DNS query to fd00:ec2::253). An instance
    /// without an IPv6 address has no IPv6 route: `NetworkUnreachable`.
    fn udp_exchange6(
        &self,
        _dst: SocketAddrV6,
        _payload: Vec<u8>,
        _timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        Box::pin(async { Err(io::Error::from(io::ErrorKind::NetworkUnreachable)) })
    }

    /// Sends one ICMPv6 echo request and waits for the reply (`ttl` is the hop limit).
    fn ping6(
        &self,
        _dst: Ipv6Addr,
        _seq: u16,
        _timeout: Duration,
    ) -> BoxFuture<'_, io::Result<PingReply>> {
        Box::pin(async { Err(io::Error::from(io::ErrorKind::NetworkUnreachable)) })
    }

    /// The instance's IPv6 routing table (`ip -6 route`): empty without IPv6.
    fn routes6(&self) -> Vec<Route6Info> {
        Vec::new()
    }

    /// The hops on the way to `dst` that would answer a `traceroute` (by default none:
    /// a network that knows no hops shows only stars).
    fn trace(&self, _dst: IpAddr, _timeout: Duration) -> BoxFuture<'_, Trace> {
        Box::pin(async { Trace::default() })
    }
}

/// A TCP service in [`FakeNet`]: called with the server end of each connection.
pub type FakeService =
    Arc<dyn Fn(DuplexStream, SocketAddrV4) -> BoxFuture<'static, ()> + Send + Sync>;

/// A DNS responder in [`FakeNet`]: query bytes in, response bytes out.
pub type FakeUdp = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

#[derive(Default)]
struct FakeInner {
    services: BTreeMap<SocketAddrV4, FakeService>,
    listeners: BTreeMap<u16, mpsc::UnboundedSender<(DuplexStream, SocketAddrV4)>>,
    refused: Vec<Ipv4Addr>,
    pingable: BTreeMap<Ipv4Addr, Duration>,
    udp: BTreeMap<SocketAddrV4, FakeUdp>,
}

/// An in-memory network for tests: addresses answer only when the test says so;
/// everything else times out, as a filtered destination does on AWS.
pub struct FakeNet {
    me: Ipv4Addr,
    prefix_len: u8,
    mac: String,
    inner: Mutex<FakeInner>,
}

impl FakeNet {
    /// A network where the instance has address `me` in a subnet of `prefix_len`.
    pub fn new(me: Ipv4Addr, prefix_len: u8, mac: &str) -> Arc<Self> {
        Arc::new(FakeNet {
            me,
            prefix_len,
            mac: mac.to_string(),
            inner: Mutex::new(FakeInner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeInner> {
        // A poisoned lock only means a test panicked; keep the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `addr` accept TCP connections, each served by `service`.
    pub fn add_service(&self, addr: SocketAddrV4, service: FakeService) {
        self.lock().services.insert(addr, service);
    }

    /// Makes `ip` answer every TCP connection with a reset.
    pub fn add_refusing_host(&self, ip: Ipv4Addr) {
        self.lock().refused.push(ip);
    }

    /// Makes `ip` answer pings after `rtt`.
    pub fn add_pingable(&self, ip: Ipv4Addr, rtt: Duration) {
        self.lock().pingable.insert(ip, rtt);
    }

    /// Makes `addr` answer UDP datagrams.
    pub fn add_udp(&self, addr: SocketAddrV4, responder: FakeUdp) {
        self.lock().udp.insert(addr, responder);
    }
}

struct FakeListener {
    rx: mpsc::UnboundedReceiver<(DuplexStream, SocketAddrV4)>,
}

impl NetListener for FakeListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Box<dyn NetStream>, SocketAddr)>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Some((s, peer)) => Ok((Box::new(s) as Box<dyn NetStream>, SocketAddr::V4(peer))),
                None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
            }
        })
    }
}

const FAKE_BUF: usize = 256 * 1024;

impl InstanceNet for FakeNet {
    fn tcp_connect(
        &self,
        dst: SocketAddrV4,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Box<dyn NetStream>>> {
        let peer = SocketAddrV4::new(self.me, 40000);
        let (service, listener, refused) = {
            let inner = self.lock();
            let local = *dst.ip() == self.me || dst.ip().is_loopback();
            let listener = if local {
                inner.listeners.get(&dst.port()).cloned()
            } else {
                None
            };
            (
                inner.services.get(&dst).cloned(),
                listener,
                inner.refused.contains(dst.ip()) || (local && !inner.services.contains_key(&dst)),
            )
        };
        Box::pin(async move {
            if let Some(tx) = listener {
                let (a, b) = tokio::io::duplex(FAKE_BUF);
                tx.send((b, peer))
                    .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
                return Ok(Box::new(a) as Box<dyn NetStream>);
            }
            if let Some(service) = service {
                let (a, b) = tokio::io::duplex(FAKE_BUF);
                tokio::spawn(service(b, peer));
                return Ok(Box::new(a) as Box<dyn NetStream>);
            }
            if refused {
                return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
            }
            tokio::time::sleep(timeout).await;
            Err(io::Error::from(io::ErrorKind::TimedOut))
        })
    }

    fn tcp_listen(&self, port: u16) -> BoxFuture<'_, io::Result<Box<dyn NetListener>>> {
        Box::pin(async move {
            let mut inner = self.lock();
            if inner.listeners.get(&port).is_some_and(|tx| !tx.is_closed()) {
                return Err(io::Error::from(io::ErrorKind::AddrInUse));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            inner.listeners.insert(port, tx);
            Ok(Box::new(FakeListener { rx }) as Box<dyn NetListener>)
        })
    }

    fn ping(
        &self,
        dst: Ipv4Addr,
        _seq: u16,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<PingReply>> {
        let rtt = if dst == self.me || dst.is_loopback() {
            Some(Duration::from_micros(30))
        } else {
            self.lock().pingable.get(&dst).copied()
        };
        Box::pin(async move {
            match rtt {
                Some(rtt) if rtt < timeout => {
                    tokio::time::sleep(rtt).await;
                    Ok(PingReply { rtt, ttl: 127 })
                }
                _ => {
                    tokio::time::sleep(timeout).await;
                    Err(io::Error::from(io::ErrorKind::TimedOut))
                }
            }
        })
    }

    fn udp_exchange(
        &self,
        dst: SocketAddrV4,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        let responder = self.lock().udp.get(&dst).cloned();
        Box::pin(async move {
            if let Some(answer) = responder.and_then(|r| r(&payload)) {
                return Ok(answer);
            }
            tokio::time::sleep(timeout).await;
            Err(io::Error::from(io::ErrorKind::TimedOut))
        })
    }

    fn interfaces(&self) -> Vec<InterfaceInfo> {
        vec![InterfaceInfo {
            name: "ens5".to_string(),
            mac: self.mac.clone(),
            addr: self.me,
            prefix_len: self.prefix_len,
            mtu: 9001,
            addrs6: Vec::new(),
        }]
    }

    fn routes(&self) -> Vec<RouteInfo> {
        let net = ipnet::Ipv4Net::new(self.me, self.prefix_len)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| ipnet::Ipv4Net::default());
        let gw = Ipv4Addr::from(u32::from(net.network()).wrapping_add(1));
        vec![
            RouteInfo {
                dst: "default".to_string(),
                via: Some(gw),
                dev: "ens5".to_string(),
                src: Some(self.me),
            },
            RouteInfo {
                dst: net.to_string(),
                via: None,
                dev: "ens5".to_string(),
                src: Some(self.me),
            },
        ]
    }
}
