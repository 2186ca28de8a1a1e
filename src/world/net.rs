//! [`InstanceNet`] over an instance's own host stack on the fabric: every connection,
//! ping and DNS query the emulated shell makes leaves through the instance's interface
//! and crosses security groups, network ACLs, route tables and gateways like any packet.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use ipnet::{Ipv4Net, Ipv6Net};
use vpclab_netstack::host::{Host, TcpListener, VPC_MTU};

use crate::instance::net::{
    BoxFuture, InstanceNet, InterfaceInfo, NetListener, NetStream, PingReply, Route6Info,
    RouteInfo, Trace, TraceHop,
};

/// An instance's network: its host stack plus what `ip addr` shows.
pub struct HostNet {
    pub(crate) host: Host,
    pub(crate) addr: Ipv4Addr,
    pub(crate) subnet: Ipv4Net,
    /// The interface's IPv6 addresses and the subnet's /64 (none: IPv4 only).
    pub(crate) addrs6: Vec<Ipv6Addr>,
    pub(crate) subnet6: Option<Ipv6Net>,
    pub(crate) mac: String,
    /// An upper bound on every timeout the instance's tools ask for (a test knob:
    /// `dnf` waits 30 s for its mirror, as the real one does).
    pub(crate) timeout_cap: Option<Duration>,
    /// Listeners by port, for connections the instance makes to itself (127.0.0.1 or
    /// its own address): those never reach the fabric, as on Linux, where they stay on
    /// the loopback interface.
    pub(crate) local: Mutex<BTreeMap<u16, mpsc::UnboundedSender<(DuplexStream, SocketAddrV4)>>>,
    /// The world's network, whose fabric answers "which hops lie on the way"
    /// (`traceroute`).
    pub(crate) net: vpclab_netstack::host::Net,
}

/// Buffer of an in-instance (loopback) connection.
const LOOPBACK_BUF: usize = 256 * 1024;

impl HostNet {
    fn cap(&self, t: Duration) -> Duration {
        self.timeout_cap.map_or(t, |c| t.min(c))
    }

    fn is_self(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || ip == self.addr
    }

    /// `traceroute -6`: the fabric's IPv6 decision for an echo probe says whether the
    /// probe leaves through an internet or egress-only gateway, whose hop limit the
    /// fabric answers from the subnet's router (the /64's first address + 1, as its
    /// ICMPv6 time exceeded does); the destination answers only if a probe really
    /// gets there and back. Inside a VPC the router is invisible: one hop.
    async fn trace6(&self, dst: Ipv6Addr, timeout: Duration) -> Trace {
        let mut trace = Trace::default();
        if dst.is_loopback() || self.addrs6.contains(&dst) {
            trace.reached = true;
            trace.hops.push(TraceHop {
                addr: dst.into(),
                name: None,
                rtt: Duration::from_micros(30),
            });
            return trace;
        }
        let Some(&src) = self.addrs6.first() else {
            return trace;
        };
        let port = self.host.port().clone();
        let probe = vpclab_netstack::ipv6::Pkt6::probe(src, dst, 58, 0x7472, 0);
        let now = self.net.now();
        let Ok(verdict) = self
            .net
            .with_forwarder::<super::fabric::LiveFabric, _>(|f| {
                f.current().explain6(now, &port, &probe)
            })
        else {
            return trace;
        };
        let leaves = verdict
            .hops
            .iter()
            .any(|h| matches!(h.action, vpclab_netstack::HopAction::Ipv6Gateway));
        if leaves && let Some(net) = self.subnet6 {
            trace.hops.push(TraceHop {
                addr: Ipv6Addr::from(u128::from(net.network()) + 1).into(),
                name: Some("_gateway".to_string()),
                rtt: Duration::from_micros(200),
            });
        }
        if verdict.is_delivered()
            && let Ok((rtt, _)) = self.host.ping_ttl(dst, self.cap(timeout)).await
        {
            trace.reached = true;
            trace.hops.push(TraceHop {
                addr: dst.into(),
                name: None,
                rtt,
            });
        }
        trace
    }

    fn lock_local(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<u16, mpsc::UnboundedSender<(DuplexStream, SocketAddrV4)>>>
    {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accepts from the fabric and from the instance itself.
/// Sends one datagram from a fresh port of `host` and waits up to `timeout` for the
/// first answer from `dst` (IPv4 or IPv6).
async fn udp_exchange(
    host: &Host,
    dst: SocketAddr,
    payload: Vec<u8>,
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let sock = host.bind_udp(0)?;
    sock.send_to(&payload, dst).await?;
    let mut buf = vec![0u8; 65535];
    let wait = async {
        loop {
            let (n, from) = sock.recv_from_any(&mut buf).await?;
            if from == dst {
                return Ok::<usize, io::Error>(n);
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(n)) => {
            buf.truncate(n);
            Ok(buf)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer from {dst}"),
        )),
    }
}

struct HostListener {
    fabric: TcpListener,
    local: mpsc::UnboundedReceiver<(DuplexStream, SocketAddrV4)>,
}

impl NetListener for HostListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Box<dyn NetStream>, SocketAddr)>> {
        Box::pin(async move {
            tokio::select! {
                r = self.fabric.accept() => {
                    let (s, peer) = r?;
                    Ok((Box::new(s) as Box<dyn NetStream>, peer))
                }
                Some((s, peer)) = self.local.recv() => {
                    Ok((Box::new(s) as Box<dyn NetStream>, SocketAddr::V4(peer)))
                }
            }
        })
    }
}

impl InstanceNet for HostNet {
    fn tcp_connect(
        &self,
        dst: SocketAddrV4,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Box<dyn NetStream>>> {
        let timeout = self.cap(timeout);
        if self.is_self(*dst.ip()) {
            // Linux answers a connection to a closed local port with a reset at once.
            let tx = self.lock_local().get(&dst.port()).cloned();
            let peer = SocketAddrV4::new(*dst.ip(), 40000);
            return Box::pin(async move {
                let tx = tx.ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))?;
                let (a, b) = tokio::io::duplex(LOOPBACK_BUF);
                tx.send((b, peer))
                    .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
                Ok(Box::new(a) as Box<dyn NetStream>)
            });
        }
        Box::pin(async move {
            let s = self.host.connect_timeout(dst, timeout).await?;
            Ok(Box::new(s) as Box<dyn NetStream>)
        })
    }

    fn tcp_listen(&self, port: u16) -> BoxFuture<'_, io::Result<Box<dyn NetListener>>> {
        Box::pin(async move {
            let fabric = self.host.listen(port)?;
            let (tx, local) = mpsc::unbounded_channel();
            self.lock_local().insert(port, tx);
            Ok(Box::new(HostListener { fabric, local }) as Box<dyn NetListener>)
        })
    }

    fn ping(
        &self,
        dst: Ipv4Addr,
        _seq: u16,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<PingReply>> {
        let timeout = self.cap(timeout);
        let to_self = self.is_self(dst);
        Box::pin(async move {
            if to_self {
                return Ok(PingReply {
                    rtt: Duration::from_micros(30),
                    ttl: 64,
                });
            }
            let (rtt, ttl) = self.host.ping_ttl(dst, timeout).await?;
            // The TTL the reply arrived with; a host stack sends with 64 (Linux).
            Ok(PingReply {
                rtt,
                ttl: ttl.unwrap_or(64),
            })
        })
    }

    fn udp_exchange(
        &self,
        dst: SocketAddrV4,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        let timeout = self.cap(timeout);
        Box::pin(udp_exchange(&self.host, dst.into(), payload, timeout))
    }

    fn interfaces(&self) -> Vec<InterfaceInfo> {
        vec![InterfaceInfo {
            name: "ens5".to_string(),
            mac: self.mac.clone(),
            addr: self.addr,
            prefix_len: self.subnet.prefix_len(),
            mtu: VPC_MTU as u32,
            addrs6: self
                .addrs6
                .iter()
                .map(|a| (*a, self.subnet6.map_or(128, |n| n.prefix_len())))
                .collect(),
        }]
    }

    fn tcp_connect6(
        &self,
        dst: SocketAddrV6,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Box<dyn NetStream>>> {
        let timeout = self.cap(timeout);
        Box::pin(async move {
            if self.addrs6.is_empty() {
                return Err(io::Error::from(io::ErrorKind::NetworkUnreachable));
            }
            let s = self
                .host
                .connect_timeout(SocketAddr::V6(dst), timeout)
                .await?;
            Ok(Box::new(s) as Box<dyn NetStream>)
        })
    }

    fn udp_exchange6(
        &self,
        dst: SocketAddrV6,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        let timeout = self.cap(timeout);
        Box::pin(async move {
            if self.addrs6.is_empty() {
                return Err(io::Error::from(io::ErrorKind::NetworkUnreachable));
            }
            udp_exchange(&self.host, dst.into(), payload, timeout).await
        })
    }

    fn ping6(
        &self,
        dst: Ipv6Addr,
        _seq: u16,
        timeout: Duration,
    ) -> BoxFuture<'_, io::Result<PingReply>> {
        let timeout = self.cap(timeout);
        Box::pin(async move {
            if dst.is_loopback() || self.addrs6.contains(&dst) {
                return Ok(PingReply {
                    rtt: Duration::from_micros(30),
                    ttl: 64,
                });
            }
            if self.addrs6.is_empty() {
                return Err(io::Error::from(io::ErrorKind::NetworkUnreachable));
            }
            let (rtt, ttl) = self.host.ping_ttl(IpAddr::V6(dst), timeout).await?;
            // The hop limit the reply arrived with; a host stack sends with 64 (Linux).
            Ok(PingReply {
                rtt,
                ttl: ttl.unwrap_or(64),
            })
        })
    }

    fn routes6(&self) -> Vec<Route6Info> {
        // What router advertisements give an EC2 instance: the on-link /64 and a
        // default route via the router's link-local address.
        let Some(net) = self.subnet6.filter(|_| !self.addrs6.is_empty()) else {
            return Vec::new();
        };
        vec![
            Route6Info {
                dst: net.trunc().to_string(),
                via: None,
                dev: "ens5".to_string(),
            },
            Route6Info {
                dst: "default".to_string(),
                via: Some(vpclab_netstack::host::VPC_ROUTER_LINK_LOCAL),
                dev: "ens5".to_string(),
            },
        ]
    }

    fn routes(&self) -> Vec<RouteInfo> {
        // What an EC2 instance's DHCP client installs: a default route via the VPC
        // router (subnet base + 1) and the on-link subnet route.
        let net = self.subnet.trunc();
        let gw = Ipv4Addr::from(u32::from(net.network()).wrapping_add(1));
        vec![
            RouteInfo {
                dst: "default".to_string(),
                via: Some(gw),
                dev: "ens5".to_string(),
                src: Some(self.addr),
            },
            RouteInfo {
                dst: net.to_string(),
                via: None,
                dev: "ens5".to_string(),
                src: Some(self.addr),
            },
        ]
    }

    fn trace(&self, dst: IpAddr, timeout: Duration) -> BoxFuture<'_, Trace> {
        Box::pin(async move {
            let dst = match dst {
                IpAddr::V4(d) => d,
                IpAddr::V6(d) => return self.trace6(d, timeout).await,
            };
            let mut trace = Trace::default();
            if self.is_self(dst) {
                trace.reached = true;
                trace.hops.push(TraceHop {
                    addr: dst.into(),
                    name: None,
                    rtt: Duration::from_micros(30),
                });
                return trace;
            }
            // The fabric's own account of a probe's way (the decision path every packet
            // takes): the VPC router when the probe leaves the subnet, the NAT gateway
            // when one translates it. Those hops answer at once.
            let port = self.host.port().clone();
            let flow = vpclab_netstack::Flow::ping(self.addr, dst, 0x7472);
            let now = self.net.now();
            let verdict = self
                .net
                .with_forwarder::<super::fabric::LiveFabric, _>(|f| {
                    f.current().explain(now, &port, &flow)
                })
                .ok();
            let Some(verdict) = verdict else {
                return trace;
            };
            let mut nominal = Duration::from_micros(200);
            // Inside a VPC the router is invisible (AWS: one hop between instances);
            // a probe that leaves through a gateway shows it first (`_gateway`).
            let leaves = verdict.hops.iter().any(|h| {
                matches!(
                    h.action,
                    vpclab_netstack::HopAction::IgwTranslate { .. }
                        | vpclab_netstack::HopAction::NatTranslate { .. }
                )
            });
            if leaves {
                trace.hops.push(TraceHop {
                    addr: Ipv4Addr::from(u32::from(self.subnet.network()) + 1).into(),
                    name: Some("_gateway".to_string()),
                    rtt: nominal,
                });
            }
            for hop in &verdict.hops {
                if let vpclab_netstack::HopAction::NatTranslate { to, .. } = hop.action {
                    nominal += Duration::from_micros(200);
                    trace.hops.push(TraceHop {
                        addr: to.0.into(),
                        name: Some(hop.component.to_string()),
                        rtt: nominal,
                    });
                }
            }
            // The destination answers only if a probe really gets there and back.
            if verdict.is_delivered()
                && let Ok((rtt, _)) = self.host.ping_ttl(dst, self.cap(timeout)).await
            {
                trace.reached = true;
                trace.hops.push(TraceHop {
                    addr: dst.into(),
                    name: None,
                    rtt,
                });
            }
            trace
        })
    }
}
