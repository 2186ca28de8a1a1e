//! ICMP echo ("ping") from a host.

use std::future::poll_fn;
use std::io;
use std::net::Ipv4Addr;
use std::task::Poll;
use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

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

/// Pings `dst`: the round-trip time and the TTL the reply arrived with.
pub(super) async fn ping(
    host: &Host,
    dst: Ipv4Addr,
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
        let repr = Icmpv4Repr::EchoRequest {
            ident,
            seq_no: 1,
            data: &PAYLOAD,
        };
        let buf = s
            .send(repr.buffer_len(), IpAddress::Ipv4(dst))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(buf),
            &ChecksumCapabilities::default(),
        );
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
        while let Ok((data, _from)) = s.recv() {
            let Ok(pkt) = Icmpv4Packet::new_checked(data) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply {
                ident: i,
                seq_no: 1,
                ..
            }) = Icmpv4Repr::parse(&pkt, &ChecksumCapabilities::ignored())
                && i == ident
            {
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
