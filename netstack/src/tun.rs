//! TUN access: route part of the host machine's IP space into a world.
//!
//! [`Tun::attach`] opens a kernel TUN device and bridges it to the world's
//! internet: IPv4 packets the kernel routes into the device (typically the
//! world's public range, 198.18.0.0/15) enter the fabric at
//! [`Port::Internet`], as if sent by an internet host; packets the fabric
//! delivers to `Port::Internet` for an address the TUN claims (and that no
//! internet host of the world holds) are written to the device. Any tool of
//! the host machine then reaches the world's public addresses unchanged.
//!
//! The kernel checks TCP/UDP/ICMP checksums that host stacks skip between
//! themselves, so they are recomputed on the way out. Creating the device
//! needs `CAP_NET_ADMIN`; configuring the kernel side (address, link up,
//! route) is the caller's job ([`Tun::setup_commands`] lists it).

use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Weak};

use ipnet::Ipv4Net;
use smoltcp::wire::{
    Icmpv4Packet, Icmpv6Packet, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tun_tap::{Iface, Mode};

use crate::host::world::PortSink;
use crate::host::{Net, Shared};
use crate::port::Port;

/// Packets queued toward the kernel before further ones are dropped.
const QUEUE: usize = 1024;
/// Packets a bridge moves per wake-up in one direction before it lets the other run.
const BATCH: usize = 64;

/// A TUN device bridged to a world. Dropping it stops the bridge (the
/// device disappears when its file descriptor closes).
pub struct Tun {
    name: String,
    claim: Ipv4Net,
    net: Net,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun")
            .field("name", &self.name)
            .field("claim", &self.claim)
            .finish()
    }
}

impl Tun {
    /// Create TUN device `name` and bridge it to `net`. `claim` is the
    /// internet range the kernel side answers for (e.g. the learner's
    /// 203.0.113.0/24): the world's replies to it go to the device.
    pub fn attach(net: &Net, name: &str, claim: Ipv4Net) -> io::Result<Tun> {
        let iface = Iface::without_packet_info(name, Mode::Tun)?;
        iface.set_non_blocking()?;
        let name = iface.name().to_string();
        // `AsyncFd::new` is deprecated because a `T` that does not own its
        // descriptor could close it while registered; `Iface` owns its file
        // for its whole life, and the safe constructor is the only one that
        // needs no `unsafe` (forbidden in this crate).
        #[allow(deprecated)]
        let fd = AsyncFd::new(iface)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        net.shared.lock().sinks.push((claim, tx));
        let task = tokio::spawn(pump(fd, rx, Arc::downgrade(&net.shared)));
        Ok(Tun {
            name,
            claim,
            net: net.clone(),
            task,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `ip` commands that configure the kernel side: give it `addr`
    /// (inside the claimed range), bring it up and route `routes` through it.
    pub fn setup_commands(&self, addr: Ipv4Addr, routes: &[Ipv4Net]) -> Vec<Vec<String>> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut cmds = vec![
            s(&[
                "ip",
                "addr",
                "add",
                &format!("{addr}/{}", self.claim.prefix_len()),
                "dev",
                &self.name,
            ]),
            s(&["ip", "link", "set", &self.name, "up"]),
        ];
        for r in routes {
            cmds.push(s(&[
                "ip",
                "route",
                "add",
                &r.to_string(),
                "dev",
                &self.name,
            ]));
        }
        cmds
    }
}

impl Drop for Tun {
    fn drop(&mut self) {
        self.task.abort();
        self.net
            .shared
            .lock()
            .sinks
            .retain(|(net, _)| *net != self.claim);
    }
}

/// A TUN device made elsewhere (inside a sandboxed instance's network namespace),
/// standing in for the host stack at one fabric port: what the kernel behind it sends
/// enters the fabric at `port`, as if the instance's interface sent it, and what the
/// fabric delivers to `port` is written to it: IPv4, and IPv6 to unicast addresses (the
/// kernel's own multicast stays behind). Dropping it detaches the port.
pub struct PortTun {
    port: Port,
    net: Net,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for PortTun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortTun").field("port", &self.port).finish()
    }
}

impl PortTun {
    /// Bridge `device` (an open, non-blocking TUN descriptor without packet
    /// information) to `port` of `net`. Fails if a host or another device
    /// already serves the port.
    pub fn attach(net: &Net, device: std::os::fd::OwnedFd, port: Port) -> io::Result<PortTun> {
        let file = Arc::new(std::fs::File::from(device));
        #[allow(deprecated)] // as in `Tun::attach`: the `File` owns its descriptor
        let fd = AsyncFd::new(file.clone())?;
        let (tx, rx) = mpsc::channel(QUEUE);
        {
            let mut world = net.shared.lock();
            if world.port_sinks.contains_key(&port) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{port:?} already has a device"),
                ));
            }
            world.port_sinks.insert(
                port.clone(),
                PortSink {
                    queue: tx,
                    device: file,
                },
            );
        }
        let task = tokio::spawn(pump_port(fd, rx, port.clone(), Arc::downgrade(&net.shared)));
        Ok(PortTun {
            port,
            net: net.clone(),
            task,
        })
    }
}

impl Drop for PortTun {
    fn drop(&mut self) {
        self.task.abort();
        self.net.shared.lock().port_sinks.remove(&self.port);
    }
}

async fn pump_port(
    fd: AsyncFd<Arc<std::fs::File>>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    port: Port,
    shared: Weak<Shared>,
) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 65536];
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let mut direct = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            ready = fd.readable() => {
                let Ok(mut guard) = ready else { return };
                // Everything the kernel has queued (up to a batch) goes through the
                // fabric under one lock: one wake-up per burst, not per packet.
                let mut closed = false;
                while batch.len() < BATCH {
                    match guard.try_io(|inner| (&**inner.get_ref()).read(&mut buf)) {
                        // EOF: the device is gone (its namespace died).
                        Ok(Ok(0)) => {
                            closed = true;
                            break;
                        }
                        // IPv4, and IPv6 to unicast destinations: the kernel's own
                        // multicast (router solicitations, MLD reports) has no
                        // router to answer it, as the VPC router is invisible.
                        Ok(Ok(n)) if carried(&buf[..n]) => batch.push(buf[..n].to_vec()),
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, ?port, "the instance's TUN device closed");
                            closed = true;
                            break;
                        }
                        Err(_would_block) => break,
                    }
                }
                if !batch.is_empty() {
                    let Some(shared) = shared.upgrade() else { return };
                    let now = shared.now();
                    let (wake, out) = shared.lock().send_external(
                        now,
                        &port,
                        batch.drain(..),
                        std::mem::take(&mut direct),
                    );
                    if wake {
                        shared.notify.notify_one();
                    }
                    direct = out;
                    // Packets for another sandbox go straight into its device.
                    for (device, mut pkt) in direct.drain(..) {
                        fix_checksums(&mut pkt);
                        let _ = (&*device).write(&pkt);
                    }
                }
                if closed {
                    return;
                }
            }
            pkt = rx.recv() => {
                let Some(first) = pkt else { return };
                // This packet and whatever else is queued (up to a batch): no select
                // per packet.
                let mut next = Some(first);
                for _ in 0..BATCH {
                    let Some(mut pkt) = next.take() else { break };
                    fix_checksums(&mut pkt);
                    // Non-blocking: a full kernel queue drops the packet; TCP retransmits.
                    let _ = (&**fd.get_ref()).write(&pkt);
                    next = rx.try_recv().ok();
                }
                if let Some(mut pkt) = next {
                    fix_checksums(&mut pkt);
                    let _ = (&**fd.get_ref()).write(&pkt);
                }
            }
        }
    }
}

/// Move packets both ways until the world is gone.
async fn pump(fd: AsyncFd<Iface>, mut rx: mpsc::Receiver<Vec<u8>>, shared: Weak<Shared>) {
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            ready = fd.readable() => {
                let Ok(mut guard) = ready else { return };
                match guard.try_io(|inner| inner.get_ref().recv(&mut buf)) {
                    Ok(Ok(n)) => {
                        let Some(shared) = shared.upgrade() else { return };
                        inject(&shared, &buf[..n]);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "reading the TUN device failed");
                        return;
                    }
                    Err(_would_block) => {}
                }
            }
            pkt = rx.recv() => {
                let Some(mut pkt) = pkt else { return };
                fix_checksums(&mut pkt);
                // Non-blocking: a full kernel queue drops the packet, as a
                // busy link would; TCP retransmits.
                let _ = fd.get_ref().send(&pkt);
            }
        }
    }
}

/// A packet from the kernel enters the fabric at the internet port.
fn inject(shared: &Shared, pkt: &[u8]) {
    // Only IPv4: the kernel also sends IPv6 router solicitations.
    if pkt.first().map(|b| b >> 4) != Some(4) {
        return;
    }
    let now = shared.now();
    let mut world = shared.lock();
    world.send(now, &Port::Internet, pkt.to_vec());
    drop(world);
    shared.notify.notify_one();
}

/// Whether a packet an instance's kernel wrote to its TUN device goes into the fabric:
/// IPv4, or IPv6 to a unicast address (not ff00::/8).
fn carried(pkt: &[u8]) -> bool {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => true,
        Some(6) => pkt.len() >= 40 && pkt[24] != 0xff,
        _ => false,
    }
}

/// Recompute the IPv4 and TCP/UDP/ICMP checksums of `pkt` (or, for an IPv6 packet, its
/// TCP/UDP/ICMPv6 checksum: IPv6 has no header checksum).
pub fn fix_checksums(pkt: &mut [u8]) {
    if pkt.first().is_some_and(|b| b >> 4 == 6) {
        fix_checksums6(pkt);
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut pkt[..]) else {
        return;
    };
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let proto = ip.next_header();
    ip.fill_checksum();
    let payload = ip.payload_mut();
    match proto {
        IpProtocol::Tcp => {
            if let Ok(mut t) = TcpPacket::new_checked(payload) {
                t.fill_checksum(&src, &dst);
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut u) = UdpPacket::new_checked(payload) {
                u.fill_checksum(&src, &dst);
            }
        }
        IpProtocol::Icmp => {
            if let Ok(mut i) = Icmpv4Packet::new_checked(payload) {
                i.fill_checksum();
            }
        }
        _ => {}
    }
}

/// The IPv6 half of [`fix_checksums`]. A packet with extension headers is left alone (the
/// fabric does not forward them).
fn fix_checksums6(pkt: &mut [u8]) {
    let Ok(mut ip) = Ipv6Packet::new_checked(&mut pkt[..]) else {
        return;
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let proto = ip.next_header();
    let payload = ip.payload_mut();
    match proto {
        IpProtocol::Tcp => {
            if let Ok(mut t) = TcpPacket::new_checked(payload) {
                t.fill_checksum(&IpAddress::Ipv6(src), &IpAddress::Ipv6(dst));
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut u) = UdpPacket::new_checked(payload) {
                u.fill_checksum(&IpAddress::Ipv6(src), &IpAddress::Ipv6(dst));
            }
        }
        IpProtocol::Icmpv6 => {
            if let Ok(mut i) = Icmpv6Packet::new_checked(payload) {
                i.fill_checksum(&src, &dst);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicast_ipv6_is_carried_and_the_kernels_multicast_is_not() {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[24] = 0x20;
        assert!(carried(&p));
        // A router solicitation to ff02::2.
        p[24] = 0xff;
        assert!(!carried(&p));
        assert!(!carried(&p[..20]));
        p[0] = 0x45;
        assert!(carried(&p));
    }

    #[test]
    fn an_icmpv6_echo_gets_the_checksum_the_kernel_checks() {
        use smoltcp::wire::{Icmpv6Repr, Ipv6Repr};
        let (src, dst) = (
            "2001:db8::4".parse().unwrap(),
            "2001:db8:0:1::4".parse().unwrap(),
        );
        let echo = Icmpv6Repr::EchoRequest {
            ident: 7,
            seq_no: 1,
            data: b"hi",
        };
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmpv6,
            payload_len: echo.buffer_len(),
            hop_limit: 64,
        };
        let mut buf = vec![0u8; ip.buffer_len() + echo.buffer_len()];
        ip.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        // Left unchecksummed, as a host stack that skips checksums sends it.
        let n = buf.len();
        let icmp = &mut buf[40..n];
        icmp[0] = 128;
        icmp[4..6].copy_from_slice(&7u16.to_be_bytes());
        icmp[6..8].copy_from_slice(&1u16.to_be_bytes());
        icmp[8..].copy_from_slice(b"hi");
        assert!(
            !Icmpv6Packet::new_checked(&buf[40..])
                .unwrap()
                .verify_checksum(&src, &dst)
        );
        fix_checksums(&mut buf);
        assert!(
            Icmpv6Packet::new_checked(&buf[40..])
                .unwrap()
                .verify_checksum(&src, &dst)
        );
    }
}
