//! Host stacks: real TCP/UDP/ICMP endpoints for instances, services and the
//! simulated internet, on top of the fabric.
//!
//! A [`Net`] is one world's set of hosts. Each [`Host`] is a smoltcp
//! [`Interface`](smoltcp::iface::Interface) (layer 3, `Medium::Ip`) over an
//! in-memory device, attached to the fabric at a [`Port`]. A driver task
//! (`driver.rs`) polls the hosts and carries every packet a host sends
//! through a [`Forwarder`] (the fabric in production, a simple router in
//! tests), then into the receiving host's device.
//!
//! On top, small async sockets for tokio, written for the pitfalls measured
//! in `crates.md`:
//! - [`TcpListener`] keeps a *pool* of listening sockets, topped up before
//!   every incoming SYN: smoltcp has no listen backlog, and a single
//!   listening socket would refuse all but one of simultaneous connects.
//! - [`TcpStream`] implements `AsyncRead`/`AsyncWrite`; `flush` only wakes the
//!   driver and never waits for the peer's ACK; buffer sizes come from
//!   [`TcpConfig`]; Nagle is off by default.
//! - Sockets whose owner is gone are reaped as soon as they are closed
//!   (smoltcp looks sockets up by linear scan: sets must stay small).
//!
//! This module does not decide whether a packet may pass (that is the
//! forwarder's job) and knows nothing of the protocols spoken over it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::net::SocketAddrV4;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use vpclab_netstack::Port;
//! use vpclab_netstack::host::{AddressForwarder, HostConfig, Net};
//!
//! // In vpclab the forwarder is the fabric: `Net::new(Fabric::new(topology))`.
//! let net = Net::new(
//!     AddressForwarder::new()
//!         .route("10.0.1.0/24".parse()?, Port::Eni("eni-a".into()))
//!         .route("10.0.2.0/24".parse()?, Port::Eni("eni-b".into())),
//! );
//! let a = net.add_host(HostConfig::vpc(Port::Eni("eni-a".into()), "10.0.1.10/24".parse()?))?;
//! let b = net.add_host(HostConfig::vpc(Port::Eni("eni-b".into()), "10.0.2.20/24".parse()?))?;
//!
//! let listener = b.listen(22)?;
//! tokio::spawn(async move {
//!     while let Ok((mut stream, _peer)) = listener.accept().await {
//!         let _ = stream.write_all(b"SSH-2.0-vpclab\r\n").await;
//!     }
//! });
//! let mut c = a.connect(SocketAddrV4::new("10.0.2.20".parse()?, 22)).await?;
//! let mut banner = [0u8; 16];
//! c.read_exact(&mut banner).await?;
//! assert_eq!(&banner, b"SSH-2.0-vpclab\r\n");
//! # Ok(())
//! # }
//! ```

mod forward;
mod icmp;
mod tcp;
mod udp;
pub(crate) mod world;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
/// The clock of host stacks and the fabric (smoltcp's), as [`Forwarder`] receives it.
pub use smoltcp::time::Instant as SmolInstant;
use tokio::sync::Notify;

pub use forward::AddressForwarder;
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use world::NetStats;

use crate::port::Port;
use world::World;

/// Decides, for every packet a host sends, where it goes.
///
/// The fabric implements this; so does [`AddressForwarder`] for tests that
/// need no VPC rules.
pub trait Forwarder: Send + std::any::Any {
    /// A host attached at `ingress` sent `packet` (raw IPv4). Rewrite it in
    /// place if needed (NAT, TTL) and return the port it must be delivered
    /// to, or `None` if it is dropped.
    fn forward(&mut self, now: SmolInstant, ingress: &Port, packet: &mut Vec<u8>) -> Option<Port>;

    /// Reclaim idle state (connection tracking, NAT mappings). Called by the
    /// driver at most every [`HOUSEKEEPING_INTERVAL`], and only while
    /// packets flow: an idle world stays asleep.
    fn housekeeping(&mut self, _now: SmolInstant) {}

    /// A packet the forwarder itself answers the last dropped one with (an ICMP time
    /// exceeded), and the port to hand it to. The host layer asks after each drop.
    fn take_reply(&mut self) -> Option<(Port, Vec<u8>)> {
        None
    }
}

/// How often the driver calls [`Forwarder::housekeeping`] while busy.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(30);

/// Errors of host management (socket operations return `std::io::Error`,
/// as tokio's do).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Another internet host already has this address.
    #[error("address {0} is already used by another internet host")]
    AddressInUse(IpAddr),
    /// The world already has a catch-all internet host.
    #[error("the world already has a catch-all internet host")]
    CatchAllInUse,
    /// Another host is already attached to this port.
    #[error("a host is already attached to {0}")]
    PortInUse(Port),
    /// The host was removed from the world.
    #[error("the host was removed")]
    HostGone,
    /// The forwarder is not of the requested type.
    #[error("the forwarder is not of the requested type")]
    WrongForwarder,
}

impl From<NetError> for std::io::Error {
    fn from(e: NetError) -> Self {
        let kind = match e {
            NetError::AddressInUse(_) | NetError::PortInUse(_) | NetError::CatchAllInUse => {
                std::io::ErrorKind::AddrInUse
            }
            NetError::HostGone => std::io::ErrorKind::NotConnected,
            NetError::WrongForwarder => std::io::ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}

/// TCP settings of a host.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Receive buffer per connection, in bytes. It is the receive window and
    /// never grows (smoltcp), so it bounds throughput per round trip.
    pub rx_buffer: usize,
    /// Send buffer per connection, in bytes.
    pub tx_buffer: usize,
    /// Nagle's algorithm. Off by default: interactive SSH and request/response
    /// protocols should not wait for ACKs to send small writes.
    pub nagle: bool,
    /// Delayed-ACK timeout (`None` acknowledges every segment at once).
    pub ack_delay: Option<Duration>,
    /// TCP keep-alive interval, if any.
    pub keepalive: Option<Duration>,
    /// How long [`Host::connect`] waits for the handshake. A SYN dropped by a
    /// security group is never answered, so the connect times out, as on AWS.
    pub connect_timeout: Duration,
    /// Connections not yet accepted, per listener; further SYNs are reset.
    pub backlog: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            nagle: false,
            ack_delay: None,
            keepalive: None,
            connect_timeout: Duration::from_secs(30),
            backlog: 128,
        }
    }
}

/// The VPC MTU: AWS supports jumbo frames inside a VPC.
pub const VPC_MTU: usize = 9001;
/// The MTU across an internet gateway (and of internet hosts).
pub const INTERNET_MTU: usize = 1500;

/// How to build a host.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Where the host attaches to the fabric.
    pub port: Port,
    /// Its addresses with their prefix (the subnet). At most two are used
    /// (smoltcp's compiled-in `IFACE_MAX_ADDR_COUNT`).
    pub addrs: Vec<Ipv4Net>,
    /// Default gateway (`None`: only on-link destinations are reachable).
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 addresses with their prefix (a dual-stack instance's /64). Together with
    /// `addrs`, at most four are used (`iface-max-addr-count-4`).
    pub addrs6: Vec<Ipv6Net>,
    /// IPv6 default gateway (the VPC router's link-local address for an instance).
    /// With `Medium::Ip` there is no neighbour discovery, so it only has to exist for
    /// off-link IPv6 destinations to be routable.
    pub gateway6: Option<Ipv6Addr>,
    /// Interface MTU: [`VPC_MTU`] or [`INTERNET_MTU`].
    pub mtu: usize,
    /// TCP settings.
    pub tcp: TcpConfig,
    /// Seed of the stack's randomness (TCP initial sequence numbers); by
    /// default derived from the host's number in the world, so runs repeat.
    pub seed: Option<u64>,
    /// Compute and verify TCP/UDP/ICMP checksums. Off by default: between
    /// smoltcp stacks through the fabric they protect nothing and cost about
    /// a fifth of the CPU of a bulk transfer. Turn on for a host whose
    /// packets reach a kernel (TUN).
    pub l4_checksums: bool,
    /// The catch-all internet host: smoltcp's any-IP mode, and every packet to
    /// `Port::Internet` that no other host (nor a TUN sink) claims and whose
    /// destination passes [`crate::internet::is_internet_host`] is delivered here.
    /// Only on `Port::Internet`; at most one per world.
    pub catch_all: bool,
    /// Hold every packet delivered to this host this long first (the internet's
    /// latency). Packets stay in order.
    pub delay: Option<Duration>,
    /// Rewrite the TTL of every packet this host sends (smoltcp sends with 64).
    pub ttl: Option<u8>,
}

impl HostConfig {
    /// A host in a VPC subnet: `addr` carries the subnet prefix; the gateway
    /// is the subnet's base + 1 (the VPC router, as on AWS); MTU 9001.
    pub fn vpc(port: Port, addr: Ipv4Net) -> Self {
        let gateway = Ipv4Addr::from(u32::from(addr.network()).wrapping_add(1));
        HostConfig {
            port,
            addrs: vec![addr],
            gateway: Some(gateway),
            addrs6: Vec::new(),
            gateway6: None,
            mtu: VPC_MTU,
            tcp: TcpConfig::default(),
            seed: None,
            l4_checksums: false,
            catch_all: false,
            delay: None,
            ttl: None,
        }
    }

    /// A service host inside a VPC with several addresses, such as the
    /// Route 53 Resolver (`Port::Resolver(vpc)`, VPC base + 2 with the VPC
    /// prefix and 169.254.169.253/32) or the metadata service
    /// (`Port::Metadata(eni)`, 169.254.169.254/32). A default route sends
    /// replies anywhere (the fabric decides); MTU 9001.
    pub fn service(port: Port, addrs: Vec<Ipv4Net>) -> Self {
        let gateway = addrs
            .first()
            .map(|a| Ipv4Addr::from(u32::from(a.network()).wrapping_add(1)));
        HostConfig {
            port,
            addrs,
            gateway,
            addrs6: Vec::new(),
            gateway6: None,
            mtu: VPC_MTU,
            tcp: TcpConfig::default(),
            seed: None,
            l4_checksums: false,
            catch_all: false,
            delay: None,
            ttl: None,
        }
    }

    /// A host on the simulated internet (`Port::Internet`), MTU 1500, with a
    /// /24 around `addr` and a default route.
    pub fn internet(addr: Ipv4Addr) -> Self {
        let net = Ipv4Net::new(addr, 24).expect("24 is a valid IPv4 prefix length");
        let gateway = Ipv4Addr::from(u32::from(net.network()).wrapping_add(1));
        HostConfig {
            port: Port::Internet,
            addrs: vec![net],
            gateway: Some(gateway),
            addrs6: Vec::new(),
            gateway6: None,
            mtu: INTERNET_MTU,
            tcp: TcpConfig::default(),
            seed: None,
            l4_checksums: false,
            catch_all: false,
            delay: None,
            ttl: None,
        }
    }
}

impl HostConfig {
    /// The catch-all host of the simulated internet: it answers for every public
    /// address no other host has (see [`crate::internet`]), IPv4 and IPv6, from its own
    /// addresses [`crate::internet::INTERNET_ROUTER_ADDR`] and
    /// [`crate::internet::INTERNET_ROUTER_ADDR6`], with the internet's delay and TTL.
    pub fn catch_all() -> Self {
        HostConfig {
            catch_all: true,
            delay: Some(crate::internet::INTERNET_DELAY),
            ttl: Some(crate::internet::INTERNET_TTL),
            ..HostConfig::internet(crate::internet::INTERNET_ROUTER_ADDR)
                .with_ipv6(crate::internet::INTERNET_ROUTER_ADDR6)
        }
    }

    /// This internet host with an IPv6 address too (a /64 around it, a default route).
    pub fn with_ipv6(mut self, addr: Ipv6Addr) -> Self {
        let net = Ipv6Net::new(addr, 64).expect("64 is a valid IPv6 prefix length");
        self.addrs6 = vec![net];
        self.gateway6 = Some(Ipv6Addr::from(u128::from(net.network()) | 1));
        self
    }

    /// This VPC service host (resolver, metadata) also at `addr`, one of the IPv6
    /// addresses AWS gives the VPC's services (fd00:ec2::253, fd00:ec2::254), with a
    /// default route for its replies to the instances' IPv6 addresses.
    pub fn with_service_ipv6(mut self, addr: Ipv6Addr) -> Self {
        self.addrs6 = vec![Ipv6Net::from(addr)];
        self.gateway6 = Some(VPC_ROUTER_LINK_LOCAL);
        self
    }

    /// This VPC host dual-stack: its IPv6 addresses in the subnet's /64 and a default
    /// route via the VPC router's link-local address [`VPC_ROUTER_LINK_LOCAL`].
    pub fn with_vpc_ipv6(mut self, addrs: &[Ipv6Addr], subnet: Ipv6Net) -> Self {
        self.addrs6 = addrs
            .iter()
            .filter_map(|a| Ipv6Net::new(*a, subnet.prefix_len()).ok())
            .collect();
        if !self.addrs6.is_empty() {
            self.gateway6 = Some(VPC_ROUTER_LINK_LOCAL);
        }
        self
    }
}

/// The IPv6 router of every subnet, as an instance's routing table names it. On AWS an
/// instance learns its IPv6 default route from router advertisements, sent from the
/// router's link-local address; vpclab uses `fe80::1` for every subnet (a host stack
/// has no link layer, so the address only names the route).
pub const VPC_ROUTER_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// A host's number inside its world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub(crate) u64);

/// Wakes raised while the world is locked (smoltcp wakes a socket's task
/// from inside `poll`), delivered by the driver once it has unlocked it: a
/// task woken mid-run would otherwise only block on the world's mutex, and
/// one wake per run instead of one per segment saves most thread switches.
#[derive(Default)]
pub(crate) struct Deferred(Mutex<Vec<Waker>>);

impl Deferred {
    fn push(&self, w: Waker) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(w);
    }

    pub(crate) fn wake_all(&self) {
        let wakers = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for w in wakers {
            w.wake();
        }
    }
}

/// The waker registered with smoltcp: it queues the task's real waker.
struct ProxyWaker {
    real: Waker,
    deferred: Arc<Deferred>,
}

impl std::task::Wake for ProxyWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.deferred.push(self.real.clone());
    }
}

/// What the driver and the socket handles share.
pub(crate) struct Shared {
    pub(crate) deferred: Arc<Deferred>,
    world: Mutex<World>,
    /// Wakes the driver: a host became dirty.
    pub(crate) notify: Arc<Notify>,
    /// smoltcp time zero, on tokio's clock (so a paused clock drives it).
    pub(crate) start: tokio::time::Instant,
}

impl Shared {
    pub(crate) fn now(&self) -> SmolInstant {
        let us = self.start.elapsed().as_micros();
        SmolInstant::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock is a bug in this crate; the world's
        // data stays structurally valid, so carry on rather than cascade.
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The waker to register with smoltcp for the task of `cx`.
    pub(crate) fn waker(&self, cx: &Context<'_>) -> Waker {
        Waker::from(Arc::new(ProxyWaker {
            real: cx.waker().clone(),
            deferred: self.deferred.clone(),
        }))
    }

    /// Have `id` polled soon.
    pub(crate) fn kick(&self, world: &mut World, id: HostId) {
        world.mark_dirty(id);
        self.notify.notify_one();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Let the driver notice that the world is gone and end.
        self.notify.notify_one();
    }
}

/// One world's hosts and the driver that moves their packets. Cheap to
/// clone; the driver stops when the last clone (and every host and socket
/// handle) is dropped.
#[derive(Clone)]
pub struct Net {
    pub(crate) shared: Arc<Shared>,
}

impl Net {
    /// A world with no hosts, forwarding with `forwarder`. Spawns the driver
    /// on the current tokio runtime (panics outside one, like `tokio::spawn`).
    pub fn new(forwarder: impl Forwarder) -> Net {
        let notify = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            world: Mutex::new(World::new(Box::new(forwarder))),
            deferred: Arc::default(),
            notify: notify.clone(),
            start: tokio::time::Instant::now(),
        });
        tokio::spawn(crate::driver::run(Arc::downgrade(&shared), notify));
        Net { shared }
    }

    /// Attach a host.
    pub fn add_host(&self, cfg: HostConfig) -> Result<Host, NetError> {
        let now = self.shared.now();
        let id = self.shared.lock().add_host(&cfg, now)?;
        Ok(Host {
            shared: self.shared.clone(),
            id,
            port: cfg.port,
        })
    }

    /// Run `f` on the forwarder if it is an `F` (e.g. to install a new
    /// topology). Packets wait while `f` runs; the next packet sees its
    /// changes.
    pub fn with_forwarder<F: Forwarder, R>(
        &self,
        f: impl FnOnce(&mut F) -> R,
    ) -> Result<R, NetError> {
        let mut world = self.shared.lock();
        let any: &mut dyn std::any::Any = world.forwarder.as_mut();
        let fwd = any.downcast_mut::<F>().ok_or(NetError::WrongForwarder)?;
        Ok(f(fwd))
    }

    /// Replace the forwarder.
    pub fn set_forwarder(&self, forwarder: impl Forwarder) {
        self.shared.lock().forwarder = Box::new(forwarder);
    }

    /// Counters of packets sent, delivered and dropped so far.
    pub fn stats(&self) -> NetStats {
        self.shared.lock().stats
    }

    /// How many hosts are attached.
    pub fn host_count(&self) -> usize {
        self.shared.lock().hosts.len()
    }

    /// The world's clock as smoltcp (and the fabric) see it.
    pub fn now(&self) -> SmolInstant {
        self.shared.now()
    }
}

/// A handle on one host. Clones refer to the same host.
#[derive(Clone)]
pub struct Host {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: HostId,
    port: Port,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("id", &self.id)
            .field("port", &self.port)
            .finish()
    }
}

impl Host {
    /// The host's number in its world.
    pub fn id(&self) -> HostId {
        self.id
    }

    /// Where the host is attached.
    pub fn port(&self) -> &Port {
        &self.port
    }

    /// The host's addresses (empty once removed).
    pub fn addrs(&self) -> Vec<Ipv4Net> {
        let world = self.shared.lock();
        world
            .hosts
            .get(&self.id)
            .map(|s| s.addrs.iter().map(from_smol_cidr).collect())
            .unwrap_or_default()
    }

    /// The primary address.
    pub fn addr(&self) -> Option<Ipv4Addr> {
        self.addrs().first().map(|n| n.addr())
    }

    /// The host's IPv6 addresses (empty for an IPv4-only host, or once removed).
    pub fn addrs6(&self) -> Vec<Ipv6Net> {
        let world = self.shared.lock();
        world
            .hosts
            .get(&self.id)
            .map(|s| s.addrs6.clone())
            .unwrap_or_default()
    }

    /// Replace the host's IPv6 addresses (an address assigned or unassigned while the
    /// instance runs); the IPv6 default route follows (`gateway6` when there are any).
    pub fn set_addrs6(&self, addrs: &[Ipv6Net], gateway6: Option<Ipv6Addr>) {
        self.shared.lock().set_addrs6(self.id, addrs, gateway6);
    }

    /// Replace the host's addresses (e.g. a secondary private IP).
    pub fn set_addrs(&self, addrs: &[Ipv4Net]) {
        let cidrs: Vec<_> = addrs.iter().map(to_smol_cidr).collect();
        self.shared.lock().set_addrs(self.id, &cidrs);
    }

    /// How many smoltcp sockets the host holds (listening, open, or closing
    /// and not yet reaped).
    pub fn socket_count(&self) -> usize {
        let world = self.shared.lock();
        world
            .hosts
            .get(&self.id)
            .map(|s| s.sockets.iter().count())
            .unwrap_or(0)
    }

    /// Detach the host: its connections die without a word (as when an
    /// instance is terminated) and every pending socket call fails.
    pub fn remove(&self) {
        let slot = self.shared.lock().remove_host(self.id);
        drop(slot);
        // Removal aborted the sockets, which queued their tasks' wakes.
        self.shared.deferred.wake_all();
    }

    /// Listen for TCP connections on `port` (all of the host's addresses).
    pub fn listen(&self, port: u16) -> std::io::Result<TcpListener> {
        TcpListener::bind(self, port)
    }

    /// Open a TCP connection, waiting at most the host's
    /// [`TcpConfig::connect_timeout`].
    pub async fn connect(&self, dst: impl Into<SocketAddr>) -> std::io::Result<TcpStream> {
        let dst = dst.into();
        let timeout = {
            let world = self.shared.lock();
            let slot = world.hosts.get(&self.id).ok_or(NetError::HostGone)?;
            slot.tcp.connect_timeout
        };
        TcpStream::connect(self, dst, timeout).await
    }

    /// Open a TCP connection, waiting at most `timeout`.
    pub async fn connect_timeout(
        &self,
        dst: impl Into<SocketAddr>,
        timeout: Duration,
    ) -> std::io::Result<TcpStream> {
        TcpStream::connect(self, dst.into(), timeout).await
    }

    /// A UDP socket on `port` (0: an ephemeral port).
    pub fn bind_udp(&self, port: u16) -> std::io::Result<UdpSocket> {
        UdpSocket::bind(self, port)
    }

    /// Send one ICMP echo request (ICMPv6 for an IPv6 address) and wait for the
    /// reply; the round-trip time is measured on tokio's clock.
    pub async fn ping(
        &self,
        dst: impl Into<IpAddr>,
        timeout: Duration,
    ) -> std::io::Result<Duration> {
        icmp::ping(self, dst.into(), timeout)
            .await
            .map(|(rtt, _)| rtt)
    }

    /// Like [`Host::ping`], with the TTL the reply arrived with (as `ping` prints
    /// it), when the host saw it.
    pub async fn ping_ttl(
        &self,
        dst: impl Into<IpAddr>,
        timeout: Duration,
    ) -> std::io::Result<(Duration, Option<u8>)> {
        icmp::ping(self, dst.into(), timeout).await
    }
}

pub(crate) fn to_smol_cidr(n: &Ipv4Net) -> smoltcp::wire::Ipv4Cidr {
    smoltcp::wire::Ipv4Cidr::new(n.addr(), n.prefix_len())
}

pub(crate) fn to_smol_cidr6(n: &Ipv6Net) -> smoltcp::wire::Ipv6Cidr {
    smoltcp::wire::Ipv6Cidr::new(n.addr(), n.prefix_len())
}

fn from_smol_cidr(c: &smoltcp::wire::Ipv4Cidr) -> Ipv4Net {
    Ipv4Net::new(c.address(), c.prefix_len()).expect("smoltcp prefixes are at most 32")
}
