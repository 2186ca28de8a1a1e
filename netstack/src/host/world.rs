//! The state behind a [`Net`](super::Net): every host's smoltcp interface,
//! in-memory device and socket set, the forwarder, and the bookkeeping the
//! driver needs (which hosts must be polled now, which at a later time).
//!
//! Everything here runs under the world's mutex, either from the driver
//! ([`crate::driver`]) or from a socket operation of an application task.
//! Nothing in this module sleeps or does I/O.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use super::{Forwarder, HostConfig, HostId, TcpConfig};
use crate::port::Port;

/// How long a socket whose owner went away may go without hearing from the
/// peer (FIN-WAIT, LAST-ACK) before it is aborted. Linux's `tcp_fin_timeout`
/// default is 60 s.
const ORPHAN_TIMEOUT: SmolDuration = SmolDuration::from_secs(60);

/// How long a half-open connection on a listener may wait for the
/// client's ACK (Linux: 5 SYN-ACK retries, about 63 s).
const HANDSHAKE_TIMEOUT: SmolDuration = SmolDuration::from_secs(63);

/// At most this many rounds of "poll every dirty host, forward what they
/// sent" run under one lock acquisition; then the driver yields so that
/// application tasks can read and write.
const ROUNDS_PER_RUN: usize = 64;

/// The in-memory network device of one host: packets the fabric delivered
/// (`rx`) and packets the host sent (`tx`), both raw IPv4.
///
/// Packet buffers are recycled through the world's pool: before a poll the
/// device is lent `spare` buffers to send with, and buffers of consumed
/// packets land in `spent`; both go back to the pool afterwards. This keeps
/// the allocator (and the kernel's page faults) off the packet path.
pub(crate) struct QueueDevice {
    pub(crate) rx: VecDeque<Vec<u8>>,
    pub(crate) tx: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    spent: Vec<Vec<u8>>,
    mtu: usize,
    l4_checksums: bool,
}

impl QueueDevice {
    fn new(mtu: usize, l4_checksums: bool) -> Self {
        QueueDevice {
            l4_checksums,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            spare: Vec::new(),
            spent: Vec::new(),
            mtu,
        }
    }
}

pub(crate) struct RxToken<'a> {
    pkt: Vec<u8>,
    spent: &'a mut Vec<Vec<u8>>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.pkt);
        self.spent.push(self.pkt);
        r
    }
}

pub(crate) struct TxToken<'a> {
    tx: &'a mut VecDeque<Vec<u8>>,
    buf: Option<Vec<u8>>,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = self.buf.unwrap_or_default();
        // smoltcp writes every byte of the packet; only growth is zeroed.
        buf.resize(len, 0);
        let r = f(&mut buf);
        self.tx.push_back(buf);
        r
    }
}

impl phy::Device for QueueDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: SmolInstant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let pkt = self.rx.pop_front()?;
        // This token is rarely used (immediate replies); it allocates if so,
        // rather than taking a pooled buffer it would mostly drop.
        Some((
            RxToken {
                pkt,
                spent: &mut self.spent,
            },
            TxToken {
                tx: &mut self.tx,
                buf: None,
            },
        ))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<TxToken<'_>> {
        let buf = self.spare.pop();
        Some(TxToken {
            tx: &mut self.tx,
            buf,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        if !self.l4_checksums {
            // Between smoltcp stacks through the fabric, TCP/UDP/ICMP
            // checksums protect nothing (no wire, and the fabric updates them
            // incrementally on NAT, RFC 1624): skip computing and checking
            // them. The IPv4 header checksum stays (the fabric verifies it).
            // A host facing a kernel (TUN) must turn them on.
            caps.checksum.tcp = Checksum::None;
            caps.checksum.udp = Checksum::None;
            caps.checksum.icmpv4 = Checksum::None;
            caps.checksum.icmpv6 = Checksum::None;
        }
        caps
    }
}

/// Buffers lent to a host for one poll.
const SPARES_PER_POLL: usize = 64;
/// Buffers the world keeps for reuse.
const POOL_MAX: usize = 256;

/// The kind of a socket whose owner dropped it; it is removed from the set
/// once it has nothing left to send.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SocketKind {
    Tcp,
    Udp,
    Icmp,
}

/// A TCP listener: a pool of sockets in LISTEN state on one port.
///
/// smoltcp has no listen backlog (one socket is one connection), so the
/// pool is topped up before every incoming SYN (see
/// [`HostSlot::ensure_listening`]): many clients can connect at once.
pub(crate) struct ListenerPool {
    pub(crate) sockets: Vec<SocketHandle>,
    /// Connections not yet taken by `accept` (established or in handshake),
    /// at most this many; beyond it new SYNs get a reset (as a full Linux
    /// accept queue with `tcp_abort_on_overflow` would).
    pub(crate) backlog: usize,
    /// The task waiting in `accept`, registered on every socket created
    /// for this listener.
    pub(crate) waker: Option<std::task::Waker>,
}

/// One host: an interface with its device and sockets.
pub(crate) struct HostSlot {
    pub(crate) port: Port,
    pub(crate) addrs: Vec<smoltcp::wire::Ipv4Cidr>,
    pub(crate) addrs6: Vec<ipnet::Ipv6Net>,
    pub(crate) iface: Interface,
    pub(crate) device: QueueDevice,
    pub(crate) sockets: SocketSet<'static>,
    pub(crate) tcp: TcpConfig,
    pub(crate) listeners: BTreeMap<u16, ListenerPool>,
    /// Sockets whose owner is gone, with the local port to free once they
    /// are removed.
    pub(crate) orphans: Vec<(SocketHandle, SocketKind, Option<u16>)>,
    /// Local ports in use by TCP sockets this host opened or listens on.
    pub(crate) tcp_ports: BTreeSet<u16>,
    pub(crate) udp_ports: BTreeSet<u16>,
    next_ephemeral: u16,
    pub(crate) next_icmp_ident: u16,
    dirty: bool,
    /// The time (µs) at which this host is registered in `World::timers`.
    timer: Option<i64>,
    /// TTL written into every packet the host sends (`HostConfig::ttl`).
    ttl: Option<u8>,
    /// How long (µs) packets wait before delivery to this host (0: none).
    delay_us: i64,
    /// The TTL of the last echo reply received per ICMP identifier, for
    /// `Host::ping_ttl` (only this host's pings are in it, removed when done).
    pub(crate) echo_ttl: BTreeMap<u16, u8>,
}

/// Linux's default ephemeral port range (`net.ipv4.ip_local_port_range`),
/// which Amazon Linux keeps: the range NACL lessons talk about.
pub(crate) const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

impl HostSlot {
    fn new(id: HostId, cfg: &HostConfig, now: SmolInstant) -> Self {
        let mut device = QueueDevice::new(cfg.mtu, cfg.l4_checksums);
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = cfg.seed.unwrap_or(0x5eed_0000_0000_0000 ^ id.0);
        let iface = Interface::new(config, &mut device, now);
        let mut slot = HostSlot {
            port: cfg.port.clone(),
            addrs: Vec::new(),
            addrs6: cfg.addrs6.clone(),
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            tcp: cfg.tcp.clone(),
            listeners: BTreeMap::new(),
            orphans: Vec::new(),
            tcp_ports: BTreeSet::new(),
            udp_ports: BTreeSet::new(),
            next_ephemeral: *EPHEMERAL.start() + (id.0 % 1000) as u16 * 17,
            next_icmp_ident: 0x1000u16.wrapping_add(id.0 as u16),
            dirty: false,
            timer: None,
            ttl: cfg.ttl,
            delay_us: cfg
                .delay
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            echo_ttl: BTreeMap::new(),
        };
        // The catch-all internet host accepts packets for any address and answers
        // from the address they were sent to.
        slot.iface.set_any_ip(cfg.catch_all);
        let addrs: Vec<_> = cfg.addrs.iter().map(super::to_smol_cidr).collect();
        slot.set_addrs(&addrs);
        if let Some(gw) = cfg.gateway {
            // With Medium::Ip there is no neighbour resolution: the gateway
            // only has to exist so that off-link destinations are routable;
            // the fabric decides where the packet really goes.
            let _ = slot.iface.routes_mut().add_default_ipv4_route(gw);
        }
        if let Some(gw) = cfg.gateway6 {
            let _ = slot.iface.routes_mut().add_default_ipv6_route(gw);
        }
        slot
    }

    pub(crate) fn set_addrs(&mut self, addrs: &[smoltcp::wire::Ipv4Cidr]) {
        self.addrs = addrs.to_vec();
        self.sync_addrs();
    }

    pub(crate) fn set_addrs6(&mut self, addrs: &[ipnet::Ipv6Net], gateway6: Option<Ipv6Addr>) {
        self.addrs6 = addrs.to_vec();
        self.sync_addrs();
        self.iface.routes_mut().remove_default_ipv6_route();
        if let Some(gw) = gateway6.filter(|_| !addrs.is_empty()) {
            let _ = self.iface.routes_mut().add_default_ipv6_route(gw);
        }
    }

    /// Hands the interface its IPv4 then IPv6 addresses.
    fn sync_addrs(&mut self) {
        let (v4, v6) = (&self.addrs, &self.addrs6);
        self.iface.update_ip_addrs(|list| {
            list.clear();
            // The list holds `IFACE_MAX_ADDR_COUNT` (4) entries; callers are told so
            // in `HostConfig`, extra addresses are ignored.
            for a in v4 {
                let _ = list.push(IpCidr::Ipv4(*a));
            }
            for a in v6 {
                let _ = list.push(IpCidr::Ipv6(super::to_smol_cidr6(a)));
            }
        });
    }

    /// A fresh TCP socket with this host's buffer sizes and options.
    pub(crate) fn new_tcp_socket(&self) -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; self.tcp.rx_buffer]),
            tcp::SocketBuffer::new(vec![0u8; self.tcp.tx_buffer]),
        );
        s.set_nagle_enabled(self.tcp.nagle);
        s.set_ack_delay(self.tcp.ack_delay.map(to_smol));
        s.set_keep_alive(self.tcp.keepalive.map(to_smol));
        s
    }

    /// Pick a free ephemeral port, Linux-style: sequential from a per-host
    /// starting point, skipping ports in use.
    pub(crate) fn ephemeral_port(&mut self, udp: bool) -> Option<u16> {
        let span = (*EPHEMERAL.end() - *EPHEMERAL.start()) as u32 + 1;
        for _ in 0..span {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p >= *EPHEMERAL.end() {
                *EPHEMERAL.start()
            } else {
                p + 1
            };
            let used = if udp {
                self.udp_ports.contains(&p)
            } else {
                self.tcp_ports.contains(&p) || self.listeners.contains_key(&p)
            };
            if !used {
                return Some(p);
            }
        }
        None
    }

    /// Make sure the listener on `port` has a socket in LISTEN state for the
    /// SYN from `remote` about to be processed.
    ///
    /// Listening sockets are created only here, just before a SYN needs one:
    /// an idle listener holds no socket (no buffers, and nothing in the
    /// linear socket lookup). A retransmitted SYN of a handshake already in
    /// progress gets no new socket, so it reaches the socket that owns it.
    fn ensure_listening(&mut self, port: u16, remote: IpEndpoint) {
        let Some(pool) = self.listeners.get(&port) else {
            return;
        };
        let mut pending = 0;
        for &h in &pool.sockets {
            let s = self.sockets.get::<tcp::Socket>(h);
            if s.state() == tcp::State::Listen || s.remote_endpoint() == Some(remote) {
                return;
            }
            pending += 1;
        }
        if pending >= pool.backlog {
            return;
        }
        let waker = pool.waker.clone();
        let mut s = self.new_tcp_socket();
        // A handshake that never completes (the SYN-ACK is dropped on the
        // way back) is given up, as Linux does after its SYN-ACK retries;
        // `accept` clears the timeout.
        s.set_timeout(Some(HANDSHAKE_TIMEOUT));
        if let Some(w) = &waker {
            s.register_recv_waker(w);
        }
        if s.listen(IpListenEndpoint { addr: None, port }).is_ok() {
            let h = self.sockets.add(s);
            if let Some(pool) = self.listeners.get_mut(&port) {
                pool.sockets.push(h);
            }
        }
    }

    /// The destination port and the source of `pkt` if it is a TCP SYN
    /// (without ACK) to a port this host listens on.
    fn syn_to_listener(&self, pkt: &[u8]) -> Option<(u16, IpEndpoint)> {
        if self.listeners.is_empty() || pkt.len() < 20 {
            return None;
        }
        let (src, l4) = match pkt[0] >> 4 {
            4 if pkt[9] == 6 => {
                let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
                (IpAddress::Ipv4(src), ((pkt[0] & 0x0f) as usize) * 4)
            }
            // The fabric refuses IPv6 extension headers, so TCP follows the fixed header.
            6 if pkt.get(6) == Some(&6) => {
                let src: [u8; 16] = pkt.get(8..24)?.try_into().ok()?;
                (IpAddress::Ipv6(Ipv6Addr::from(src)), 40)
            }
            _ => return None,
        };
        let tcp = pkt.get(l4..l4 + 14)?;
        let flags = tcp[13];
        let (syn, ack) = (flags & 0x02 != 0, flags & 0x10 != 0);
        let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
        let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
        (syn && !ack && self.listeners.contains_key(&dport))
            .then(|| (dport, IpEndpoint::new(src, sport)))
    }

    /// Poll the interface: every delivered packet (topping up listener pools
    /// before each SYN), then everything the sockets want to send.
    fn poll(&mut self, now: SmolInstant) {
        self.iface.poll_maintenance(now);
        loop {
            if let Some(front) = self.device.rx.front()
                && let Some((port, remote)) = self.syn_to_listener(front)
            {
                self.ensure_listening(port, remote);
            }
            match self
                .iface
                .poll_ingress_single(now, &mut self.device, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                _ => continue,
            }
        }
        while self
            .iface
            .poll_egress(now, &mut self.device, &mut self.sockets)
            == smoltcp::iface::PollResult::SocketStateChanged
        {}
        self.reap();
    }

    /// Remove sockets nobody owns any more once they are done, and
    /// connections that died on a listener before being accepted.
    fn reap(&mut self) {
        for pool in self.listeners.values_mut() {
            let sockets = &mut self.sockets;
            pool.sockets.retain(|&h| {
                // Listening sockets are made just before the SYN that needs
                // one; any left over (a handshake that was reset or gave up
                // returns to LISTEN) would only lengthen the socket scan.
                let dead = matches!(
                    sockets.get::<tcp::Socket>(h).state(),
                    tcp::State::Closed | tcp::State::Listen
                );
                if dead {
                    sockets.remove(h);
                }
                !dead
            });
        }
        let sockets = &mut self.sockets;
        let tcp_ports = &mut self.tcp_ports;
        let udp_ports = &mut self.udp_ports;
        self.orphans.retain(|&(h, kind, release)| {
            let done = match kind {
                SocketKind::Tcp => {
                    let s = sockets.get::<tcp::Socket>(h);
                    // TIME-WAIT is reaped at once: smoltcp's is a fixed 10 s
                    // and an idle world must keep its socket sets small
                    // (socket lookup is a linear scan).
                    matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait)
                }
                SocketKind::Udp => sockets.get::<udp::Socket>(h).send_queue() == 0,
                SocketKind::Icmp => sockets.get::<icmp::Socket>(h).send_queue() == 0,
            };
            if done {
                sockets.remove(h);
                match (kind, release) {
                    (SocketKind::Tcp, Some(p)) => {
                        tcp_ports.remove(&p);
                    }
                    (SocketKind::Udp, Some(p)) => {
                        udp_ports.remove(&p);
                    }
                    _ => {}
                }
            }
            !done
        });
    }

    /// Hand a socket over to the reaper (its owner dropped it).
    pub(crate) fn orphan(&mut self, h: SocketHandle, kind: SocketKind, release: Option<u16>) {
        if let SocketKind::Tcp = kind {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            s.close();
            s.set_timeout(Some(ORPHAN_TIMEOUT));
        }
        self.orphans.push((h, kind, release));
    }

    /// Like [`Self::orphan`], but resets the connection instead of closing it.
    pub(crate) fn orphan_abort(&mut self, h: SocketHandle, release: Option<u16>) {
        self.sockets.get_mut::<tcp::Socket>(h).abort();
        self.orphans.push((h, SocketKind::Tcp, release));
    }
}

pub(crate) fn to_smol(d: std::time::Duration) -> SmolDuration {
    SmolDuration::from_micros(d.as_micros().min(u64::MAX as u128) as u64)
}

/// Counters of what the driver did, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Packets hosts sent into the forwarder.
    pub sent: u64,
    /// Packets delivered to a host.
    pub delivered: u64,
    /// Packets the forwarder dropped.
    pub dropped: u64,
    /// Packets the forwarder sent to a port no host is attached to.
    pub unattached: u64,
    /// Times the driver woke up and ran (an idle world does not).
    pub driver_runs: u64,
}

/// What one [`World::run`] left to do.
pub(crate) struct RunResult {
    /// Hosts are still dirty (the round budget ran out): run again soon.
    pub(crate) more: bool,
    /// The earliest timer deadline, in µs of smoltcp time.
    pub(crate) next_timer: Option<i64>,
    /// Whether any packet moved.
    pub(crate) progressed: bool,
}

/// Everything behind the world's mutex.
pub(crate) struct World {
    pub(crate) forwarder: Box<dyn Forwarder>,
    pub(crate) hosts: BTreeMap<HostId, HostSlot>,
    /// Which host receives packets delivered to a port. `Port::Internet` is
    /// not in here: it is demultiplexed by destination address.
    by_port: BTreeMap<Port, HostId>,
    by_internet_addr: BTreeMap<IpAddr, HostId>,
    /// The catch-all internet host (`HostConfig::catch_all`), if attached.
    catch_all: Option<HostId>,
    /// Packets held for delivery to hosts with a delay: (due µs, host, packet),
    /// in due order (each host's delay is fixed, packets are queued as sent).
    delayed: VecDeque<(i64, HostId, Vec<u8>)>,
    dirty: Vec<HostId>,
    /// (deadline in µs, host): when a host's timers next need a poll.
    timers: BTreeSet<(i64, HostId)>,
    next_id: u64,
    outbox: Vec<Vec<u8>>,
    /// Recycled packet buffers (see [`QueueDevice`]).
    pool: Vec<Vec<u8>>,
    /// Internet addresses served outside the world (a TUN device): packets
    /// delivered to `Port::Internet` for them, when no host has the address.
    pub(crate) sinks: Vec<(ipnet::Ipv4Net, tokio::sync::mpsc::Sender<Vec<u8>>)>,
    /// Ports served outside the world (a sandboxed instance's TUN device): every
    /// packet delivered to the port, when no host is attached there.
    pub(crate) port_sinks: BTreeMap<Port, PortSink>,
    /// While [`World::send_external`] runs: packets for port sinks, to be written to
    /// their devices by the caller once the lock is released (`None` otherwise).
    direct: Option<Vec<DevicePacket>>,
    /// When (µs) the forwarder's housekeeping last ran.
    last_housekeeping: i64,
    pub(crate) stats: NetStats,
}

/// A packet for a device outside the world, and the device.
pub(crate) type DevicePacket = (Arc<std::fs::File>, Vec<u8>);

/// A fabric port served by a device outside the world (a sandbox's TUN): its queue,
/// read by the device's own task, and the device itself, which another device's task
/// may write to directly.
pub(crate) struct PortSink {
    pub(crate) queue: tokio::sync::mpsc::Sender<Vec<u8>>,
    pub(crate) device: Arc<std::fs::File>,
}

impl World {
    pub(crate) fn new(forwarder: Box<dyn Forwarder>) -> Self {
        World {
            forwarder,
            hosts: BTreeMap::new(),
            by_port: BTreeMap::new(),
            by_internet_addr: BTreeMap::new(),
            catch_all: None,
            delayed: VecDeque::new(),
            dirty: Vec::new(),
            timers: BTreeSet::new(),
            next_id: 1,
            outbox: Vec::new(),
            pool: Vec::new(),
            sinks: Vec::new(),
            port_sinks: BTreeMap::new(),
            direct: None,
            last_housekeeping: 0,
            stats: NetStats::default(),
        }
    }

    pub(crate) fn add_host(
        &mut self,
        cfg: &HostConfig,
        now: SmolInstant,
    ) -> Result<HostId, super::NetError> {
        if cfg.catch_all && (cfg.port != Port::Internet || self.catch_all.is_some()) {
            return Err(super::NetError::CatchAllInUse);
        }
        if cfg.port == Port::Internet {
            for a in internet_addrs(cfg) {
                if self.by_internet_addr.contains_key(&a) {
                    return Err(super::NetError::AddressInUse(a));
                }
            }
        } else if self.by_port.contains_key(&cfg.port) {
            return Err(super::NetError::PortInUse(cfg.port.clone()));
        }
        let id = HostId(self.next_id);
        self.next_id += 1;
        let slot = HostSlot::new(id, cfg, now);
        if cfg.port == Port::Internet {
            for a in internet_addrs(cfg) {
                self.by_internet_addr.insert(a, id);
            }
        } else {
            self.by_port.insert(cfg.port.clone(), id);
        }
        if cfg.catch_all {
            self.catch_all = Some(id);
        }
        self.hosts.insert(id, slot);
        Ok(id)
    }

    pub(crate) fn remove_host(&mut self, id: HostId) -> Option<HostSlot> {
        let mut slot = self.hosts.remove(&id)?;
        if slot.port == Port::Internet {
            self.by_internet_addr.retain(|_, h| *h != id);
        } else {
            self.by_port.remove(&slot.port);
        }
        if self.catch_all == Some(id) {
            self.catch_all = None;
        }
        if slot.delay_us > 0 {
            self.delayed.retain(|(_, h, _)| *h != id);
        }
        if let Some(t) = slot.timer.take() {
            self.timers.remove(&(t, id));
        }
        // Wake every task blocked on one of its sockets: they will find the
        // host gone and fail.
        for (_, s) in slot.sockets.iter_mut() {
            match s {
                smoltcp::socket::Socket::Tcp(s) => s.abort(),
                smoltcp::socket::Socket::Udp(s) => s.close(),
                _ => {}
            }
        }
        Some(slot)
    }

    /// Change the addresses of a host (secondary private IPs, a public IP of
    /// an internet host).
    pub(crate) fn set_addrs(&mut self, id: HostId, addrs: &[smoltcp::wire::Ipv4Cidr]) {
        let Some(slot) = self.hosts.get_mut(&id) else {
            return;
        };
        slot.set_addrs(addrs);
        if slot.port == Port::Internet {
            self.by_internet_addr.retain(|_, h| *h != id);
            for a in addrs {
                self.by_internet_addr.insert(IpAddr::V4(a.address()), id);
            }
            for a in &slot.addrs6 {
                self.by_internet_addr.insert(IpAddr::V6(a.addr()), id);
            }
        }
    }

    /// Change the IPv6 addresses of a host.
    pub(crate) fn set_addrs6(
        &mut self,
        id: HostId,
        addrs: &[ipnet::Ipv6Net],
        gateway6: Option<Ipv6Addr>,
    ) {
        let Some(slot) = self.hosts.get_mut(&id) else {
            return;
        };
        slot.set_addrs6(addrs, gateway6);
        if slot.port == Port::Internet {
            self.by_internet_addr.retain(|a, h| *h != id || a.is_ipv4());
            for a in addrs {
                self.by_internet_addr.insert(IpAddr::V6(a.addr()), id);
            }
        }
        self.mark_dirty(id);
    }

    /// Note that `id` must be polled on the driver's next run.
    pub(crate) fn mark_dirty(&mut self, id: HostId) {
        if let Some(slot) = self.hosts.get_mut(&id)
            && !slot.dirty
        {
            slot.dirty = true;
            self.dirty.push(id);
        }
    }

    fn host_for(&self, port: &Port, pkt: &[u8]) -> Option<HostId> {
        match port {
            Port::Internet => self.by_internet_addr.get(&dst_addr(pkt)?).copied(),
            other => self.by_port.get(other).copied(),
        }
    }

    /// Carry one packet sent at `port` through the forwarder to its host
    /// (or external sink).
    pub(crate) fn send(&mut self, now: SmolInstant, port: &Port, mut pkt: Vec<u8>) {
        self.stats.sent += 1;
        let Some(to) = self.forwarder.forward(now, port, &mut pkt) else {
            self.stats.dropped += 1;
            self.pool.push(pkt);
            // The fabric's own answer (a time exceeded) goes back to the sender.
            if let Some((back, reply)) = self.forwarder.take_reply() {
                self.carry(now, back, reply);
            }
            return;
        };
        self.carry(now, to, pkt);
    }

    /// Hands a packet the forwarder let through to the host at `to`, else a TUN sink
    /// there, else (at the internet) the catch-all host.
    fn carry(&mut self, now: SmolInstant, to: Port, pkt: Vec<u8>) {
        let Some(dst) = self.host_for(&to, &pkt) else {
            // Only what no host has goes further: a TUN sink, then the catch-all
            // internet host.
            if let Some(sink) = self.port_sinks.get(&to) {
                if let Some(direct) = self.direct.as_mut() {
                    // From one device to another: the sender's task writes it.
                    direct.push((sink.device.clone(), pkt));
                    self.stats.delivered += 1;
                } else if sink.queue.try_send(pkt).is_ok() {
                    // A full queue drops, as a busy NIC would.
                    self.stats.delivered += 1;
                }
                return;
            }
            if to == Port::Internet
                && let Some(dst) = dst_addr(&pkt)
            {
                if let IpAddr::V4(dst) = dst
                    && let Some((_, sink)) = self.sinks.iter().find(|(net, _)| net.contains(&dst))
                {
                    // A full queue drops, as a busy NIC would.
                    if sink.try_send(pkt).is_ok() {
                        self.stats.delivered += 1;
                    }
                    return;
                }
                let public = match dst {
                    IpAddr::V4(a) => crate::internet::is_internet_host(a),
                    IpAddr::V6(a) => crate::internet::is_internet_host6(a),
                };
                if let Some(id) = self.catch_all
                    && public
                {
                    self.deliver(now, id, pkt);
                    return;
                }
            }
            self.stats.unattached += 1;
            self.pool.push(pkt);
            return;
        };
        self.deliver(now, dst, pkt);
    }

    /// Carry packets that a device outside the world (a TUN) sent at `port`. Returns
    /// whether the driver must run (a host got a packet, a delayed delivery was queued,
    /// or the forwarder's housekeeping is due) and the packets that go to another
    /// device, which the caller writes once it has released the lock. A bulk transfer
    /// between two sandboxes thus wakes neither the driver nor the receiving device's
    /// task: the sending device's task carries each burst all the way.
    pub(crate) fn send_external(
        &mut self,
        now: SmolInstant,
        port: &Port,
        pkts: impl IntoIterator<Item = Vec<u8>>,
        direct: Vec<DevicePacket>,
    ) -> (bool, Vec<DevicePacket>) {
        let delayed = self.delayed.len();
        self.direct = Some(direct);
        for pkt in pkts {
            self.send(now, port, pkt);
        }
        let direct = self.direct.take().unwrap_or_default();
        let wake = !self.dirty.is_empty()
            || self.delayed.len() != delayed
            || now.total_micros() - self.last_housekeeping
                >= super::HOUSEKEEPING_INTERVAL.as_micros() as i64;
        (wake, direct)
    }

    /// Put `pkt` into the device of host `dst` (after the host's delay, if any).
    fn deliver(&mut self, now: SmolInstant, dst: HostId, pkt: Vec<u8>) {
        let Some(slot) = self.hosts.get_mut(&dst) else {
            return;
        };
        self.stats.delivered += 1;
        // An echo reply's TTL, for the ping that waits for it (ICMP only: one
        // byte compare for everything else).
        if pkt.first().is_some_and(|b| b >> 4 == 4)
            && pkt.get(9) == Some(&1)
            && let Some(ihl) = pkt.first().map(|b| usize::from(b & 0x0f) * 4)
            && pkt.get(ihl) == Some(&0)
            && let Some(ident) = pkt.get(ihl + 4..ihl + 6)
            && slot.echo_ttl.len() < 64
        {
            slot.echo_ttl
                .insert(u16::from_be_bytes([ident[0], ident[1]]), pkt[8]);
        } else if pkt.first().is_some_and(|b| b >> 4 == 6)
            && pkt.get(6) == Some(&crate::ipv6::ICMPV6)
            && pkt.get(40) == Some(&129)
            && let Some(ident) = pkt.get(44..46)
            && slot.echo_ttl.len() < 64
        {
            // An ICMPv6 echo reply: its hop limit, which `ping6` prints as `ttl=`.
            slot.echo_ttl
                .insert(u16::from_be_bytes([ident[0], ident[1]]), pkt[7]);
        }
        if slot.delay_us > 0 {
            let due = now.total_micros().saturating_add(slot.delay_us);
            self.delayed.push_back((due, dst, pkt));
            return;
        }
        slot.device.rx.push_back(pkt);
        self.mark_dirty(dst);
    }

    /// Poll every host that needs it and carry the packets they send through
    /// the forwarder until the world is quiet (or the round budget is spent).
    ///
    /// Returns whether work is left (the driver must come back at once) and
    /// the next timer deadline in µs.
    pub(crate) fn run(&mut self, now: SmolInstant) -> RunResult {
        self.stats.driver_runs += 1;
        let now_us = now.total_micros();
        while let Some(&(t, id)) = self.timers.first() {
            if t > now_us {
                break;
            }
            self.timers.pop_first();
            if let Some(slot) = self.hosts.get_mut(&id) {
                slot.timer = None;
            }
            self.mark_dirty(id);
        }
        while let Some(&(due, id, _)) = self.delayed.front() {
            if due > now_us {
                break;
            }
            if let Some((_, _, pkt)) = self.delayed.pop_front()
                && let Some(slot) = self.hosts.get_mut(&id)
            {
                slot.device.rx.push_back(pkt);
                self.mark_dirty(id);
            }
        }
        if now_us - self.last_housekeeping >= super::HOUSEKEEPING_INTERVAL.as_micros() as i64 {
            self.last_housekeeping = now_us;
            self.forwarder.housekeeping(now);
        }
        let sent_before = self.stats.sent;
        let mut rounds = 0;
        while !self.dirty.is_empty() && rounds < ROUNDS_PER_RUN {
            rounds += 1;
            let dirty = std::mem::take(&mut self.dirty);
            for id in dirty {
                let Some(slot) = self.hosts.get_mut(&id) else {
                    continue;
                };
                slot.dirty = false;
                let lend = SPARES_PER_POLL.min(self.pool.len());
                let mtu = slot.device.mtu;
                slot.device
                    .spare
                    .extend(self.pool.drain(self.pool.len() - lend..));
                while slot.device.spare.len() < SPARES_PER_POLL {
                    slot.device.spare.push(Vec::with_capacity(mtu));
                }
                slot.poll(now);
                self.pool.append(&mut slot.device.spare);
                self.pool.append(&mut slot.device.spent);
                let next = slot
                    .iface
                    .poll_at(now, &slot.sockets)
                    .map(|t| t.total_micros());
                if slot.timer != next {
                    if let Some(old) = slot.timer {
                        self.timers.remove(&(old, id));
                    }
                    if let Some(new) = next {
                        self.timers.insert((new, id));
                    }
                    slot.timer = next;
                }
                let port = slot.port.clone();
                if let Some(ttl) = slot.ttl {
                    for pkt in slot.device.tx.iter_mut() {
                        set_ttl(pkt, ttl);
                    }
                }
                self.outbox.extend(slot.device.tx.drain(..));
                let mut outbox = std::mem::take(&mut self.outbox);
                for pkt in outbox.drain(..) {
                    self.send(now, &port, pkt);
                }
                self.outbox = outbox;
            }
        }
        self.pool.truncate(POOL_MAX);
        let next_delayed = self.delayed.front().map(|&(due, _, _)| due);
        let next_timer = match (self.timers.first().map(|&(t, _)| t), next_delayed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RunResult {
            more: !self.dirty.is_empty(),
            next_timer,
            progressed: self.stats.sent != sent_before,
        }
    }
}

/// The destination address of a raw IPv4 or IPv6 packet.
fn dst_addr(pkt: &[u8]) -> Option<IpAddr> {
    match pkt.first()? >> 4 {
        4 => {
            let d: [u8; 4] = pkt.get(16..20)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(d)))
        }
        6 => {
            let d: [u8; 16] = pkt.get(24..40)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(d)))
        }
        _ => None,
    }
}

/// The addresses an internet host is found by.
fn internet_addrs(cfg: &HostConfig) -> impl Iterator<Item = IpAddr> + '_ {
    cfg.addrs
        .iter()
        .map(|a| IpAddr::V4(a.addr()))
        .chain(cfg.addrs6.iter().map(|a| IpAddr::V6(a.addr())))
}

/// Rewrite the TTL of a raw IPv4 packet and update its header checksum
/// (RFC 1624 incremental update of the 16-bit word holding TTL and protocol), or the
/// hop limit of an IPv6 packet (which has no header checksum).
fn set_ttl(pkt: &mut [u8], ttl: u8) {
    if pkt.first().is_some_and(|b| b >> 4 == 6) {
        if let Some(h) = pkt.get_mut(7) {
            *h = ttl;
        }
        return;
    }
    if pkt.len() < 20 || pkt[8] == ttl {
        return;
    }
    let old = u16::from_be_bytes([pkt[8], pkt[9]]);
    let new = u16::from_be_bytes([ttl, pkt[9]]);
    let sum = !u16::from_be_bytes([pkt[10], pkt[11]]);
    let mut acc = u32::from(sum) + u32::from(!old) + u32::from(new);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    let check = !(acc as u16);
    pkt[8] = ttl;
    pkt[10..12].copy_from_slice(&check.to_be_bytes());
}

#[cfg(test)]
mod ttl_tests {
    use super::set_ttl;

    fn checksum(h: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for w in h.chunks(2) {
            acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rewriting_the_ttl_keeps_the_header_checksum_valid() {
        let mut h = [
            0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 8, 8, 8, 8, 10, 0, 1, 10,
        ];
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        set_ttl(&mut h, 117);
        assert_eq!(h[8], 117);
        assert_eq!(checksum(&h), 0, "a valid header sums to zero");
    }
}
