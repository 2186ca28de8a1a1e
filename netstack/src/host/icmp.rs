//! ICMP echo ("ping") from a host.

use std::future::poll_fn;
use std::io;
use std::net::IpAddr;
use std::task::Poll;
use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, Ipv6Address};

use super::world::SocketKind;
use super::{Host, NetError};

/// The payload of our echo requests: 56 bytes, like Linux `ping`.
const PAYLOAD: [u8; 56] = *b"vpclab ping payload, 56 bytes like iputils ping........!";

/// Removes the ping's socket however the ping ends.
struct Guard<'a> {
    host: &'a Host,
    handle: smoltcp::iface::SocketHandle,
    ident: u16,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let mut world = self.host.shared.lock();
        if let Some(slot) = world.hosts.get_mut(&self.host.id) {
            slot.orphan(self.handle, SocketKind::Icmp, None);
            slot.echo_ttl.remove(&self.ident);
        }
    }
}

/// Pings `dst` (ICMP echo, or ICMPv6 echo for an IPv6 address): the round-trip time
/// and the TTL (hop limit) the reply arrived with.
pub(super) async fn ping(
    host: &Host,
    dst: IpAddr,
    timeout: Duration,
) -> io::Result<(Duration, Option<u8>)> {
    let (guard, ident) = {
        let shared = &host.shared;
        let mut world = shared.lock();
        let slot = world.hosts.get_mut(&host.id).ok_or(NetError::HostGone)?;
        let ident = slot.next_icmp_ident;
        slot.next_icmp_ident = slot.next_icmp_ident.wrapping_add(1);
        let mut s = icmp::Socket::new(
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0u8; 1024]),
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0u8; 1024]),
        );
        s.bind(icmp::Endpoint::Ident(ident))
            .map_err(|e| io::Error::other(e.to_string()))?;
        match dst {
            IpAddr::V4(d) => {
                let repr = Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no: 1,
                    data: &PAYLOAD,
                };
                let buf = s
                    .send(repr.buffer_len(), IpAddress::Ipv4(d))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
                repr.emit(
                    &mut Icmpv4Packet::new_unchecked(buf),
                    &ChecksumCapabilities::default(),
                );
            }
            IpAddr::V6(d) => {
                let repr = Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no: 1,
                    data: &PAYLOAD,
                };
                let buf = s
                    .send(repr.buffer_len(), IpAddress::Ipv6(d))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
                // smoltcp re-parses the queued message when it sends it and fills in the
                // source address and checksum then: the addresses given here only shape
                // a checksum that is recomputed.
                repr.emit(
                    &Ipv6Address::UNSPECIFIED,
                    &d,
                    &mut Icmpv6Packet::new_unchecked(buf),
                    &ChecksumCapabilities::ignored(),
                );
            }
        }
        let handle = slot.sockets.add(s);
        shared.kick(&mut world, host.id);
        (
            Guard {
                host,
                handle,
                ident,
            },
            ident,
        )
    };
    let sent = tokio::time::Instant::now();
    let reply = poll_fn(|cx| {
        let mut world = host.shared.lock();
        let Some(slot) = world.hosts.get_mut(&host.id) else {
            return Poll::Ready(Err(NetError::HostGone.into()));
        };
        let s = slot.sockets.get_mut::<icmp::Socket>(guard.handle);
        while let Ok((data, from)) = s.recv() {
            if echo_reply_matches(data, from, ident) {
                return Poll::Ready(Ok(()));
            }
        }
        s.register_recv_waker(&host.shared.waker(cx));
        Poll::Pending
    });
    match tokio::time::timeout(timeout, reply).await {
        Ok(Ok(())) => {
            let rtt = sent.elapsed();
            let mut world = host.shared.lock();
            let ttl = world
                .hosts
                .get_mut(&host.id)
                .and_then(|slot| slot.echo_ttl.remove(&ident));
            Ok((rtt, ttl))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no echo reply from {dst}"),
        )),
    }
}

/// Whether `data`, an ICMP message from `from`, is the echo reply (sequence 1) to our
/// request `ident`.
fn echo_reply_matches(data: &[u8], from: IpAddress, ident: u16) -> bool {
    match from {
        IpAddress::Ipv4(_) => {
            let Ok(pkt) = Icmpv4Packet::new_checked(data) else {
                return false;
            };
            matches!(
                Icmpv4Repr::parse(&pkt, &ChecksumCapabilities::ignored()),
                Ok(Icmpv4Repr::EchoReply { ident: i, seq_no: 1, .. }) if i == ident
            )
        }
        IpAddress::Ipv6(src) => {
            let Ok(pkt) = Icmpv6Packet::new_checked(data) else {
                return false;
            };
            // The addresses only matter for the checksum, which is not checked here.
            matches!(
                Icmpv6Repr::parse(&src, &Ipv6Address::UNSPECIFIED, &pkt, &ChecksumCapabilities::ignored()),
                Ok(Icmpv6Repr::EchoReply { ident: i, seq_no: 1, .. }) if i == ident
            )
        }
    }
}
