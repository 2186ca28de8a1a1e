//! UDP sockets for tokio over smoltcp.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::world::SocketKind;
use super::{Host, NetError};

/// Datagrams queued per direction.
const PACKETS: usize = 64;
/// Payload bytes queued per direction (one maximal datagram fits).
const PAYLOAD: usize = 64 * 1024;

/// A UDP socket of a host, bound to one port on all of its addresses.
/// Methods take `&self`: one task may send while another receives.
pub struct UdpSocket {
    host: Host,
    handle: SocketHandle,
    port: u16,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("host", &self.host.id)
            .field("port", &self.port)
            .finish()
    }
}

impl UdpSocket {
    /// Bind `port` (0: an ephemeral port) on `host`.
    pub fn bind(host: &Host, port: u16) -> io::Result<UdpSocket> {
        let shared = &host.shared;
        let mut world = shared.lock();
        let slot = world.hosts.get_mut(&host.id).ok_or(NetError::HostGone)?;
        let port = if port == 0 {
            slot.ephemeral_port(true)
                .ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free ephemeral port"))?
        } else if slot.udp_ports.contains(&port) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("UDP port {port} is in use"),
            ));
        } else {
            port
        };
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; PACKETS],
                vec![0u8; PAYLOAD],
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; PACKETS],
                vec![0u8; PAYLOAD],
            ),
        );
        s.bind(IpListenEndpoint { addr: None, port })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        slot.udp_ports.insert(port);
        let handle = slot.sockets.add(s);
        Ok(UdpSocket {
            host: host.clone(),
            handle,
            port,
        })
    }

    /// The bound port.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Send one datagram to `dst`.
    pub async fn send_to(&self, data: &[u8], dst: impl Into<SocketAddr>) -> io::Result<()> {
        let dst = dst.into();
        poll_fn(|cx| self.poll_send(cx, data, dst, None)).await
    }

    /// Send one datagram to `dst` from the local address `src` (for hosts
    /// with several addresses, such as the VPC resolver: a reply must come
    /// from the address that was asked).
    pub async fn send_from(&self, data: &[u8], src: Ipv4Addr, dst: SocketAddrV4) -> io::Result<()> {
        let (src, dst) = (IpAddr::V4(src), SocketAddr::V4(dst));
        poll_fn(|cx| self.poll_send(cx, data, dst, Some(src))).await
    }

    /// [`Self::send_from`] for either IP version (a dual-stack service such as the VPC
    /// resolver, which answers at fd00:ec2::253 as well).
    pub async fn send_from_ip(&self, data: &[u8], src: IpAddr, dst: SocketAddr) -> io::Result<()> {
        poll_fn(|cx| self.poll_send(cx, data, dst, Some(src))).await
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
        dst: SocketAddr,
        src: Option<IpAddr>,
    ) -> Poll<io::Result<()>> {
        let shared = &self.host.shared;
        let mut world = shared.lock();
        let Some(slot) = world.hosts.get_mut(&self.host.id) else {
            return Poll::Ready(Err(NetError::HostGone.into()));
        };
        let s = slot.sockets.get_mut::<udp::Socket>(self.handle);
        if data.len() > s.payload_send_capacity() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram too large",
            )));
        }
        let meta = udp::UdpMetadata {
            local_address: src.map(IpAddress::from),
            ..udp::UdpMetadata::from(IpEndpoint::new(IpAddress::from(dst.ip()), dst.port()))
        };
        match s.send_slice(data, meta) {
            Ok(()) => {
                shared.kick(&mut world, self.host.id);
                Poll::Ready(Ok(()))
            }
            Err(udp::SendError::BufferFull) => {
                s.register_send_waker(&shared.waker(cx));
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                e.to_string(),
            ))),
        }
    }

    /// Receive one IPv4 datagram: its length (truncated to `buf`) and sender. IPv6
    /// datagrams are read and skipped (see [`Self::recv_from_any`]).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddrV4)> {
        let (n, src, _) = self.recv_from_to(buf).await?;
        Ok((n, src))
    }

    /// Receive one IPv4 datagram: its length, sender and the local address it
    /// was sent to. IPv6 datagrams are skipped.
    pub async fn recv_from_to(
        &self,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddrV4, Ipv4Addr)> {
        loop {
            let (n, src, to) = self.recv_any(buf).await?;
            if let (SocketAddr::V4(src), to) = (src, to) {
                let to = match to {
                    Some(IpAddr::V4(a)) => a,
                    _ => Ipv4Addr::UNSPECIFIED,
                };
                return Ok((n, src, to));
            }
        }
    }

    /// Receive one datagram of either IP version: its length and sender.
    pub async fn recv_from_any(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, src, _) = self.recv_any(buf).await?;
        Ok((n, src))
    }

    /// Receive one datagram of either IP version: its length, sender and the local
    /// address it was sent to (`None` when the stack did not say).
    pub async fn recv_from_to_any(
        &self,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
        self.recv_any(buf).await
    }

    async fn recv_any(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
        poll_fn(|cx| {
            let shared = &self.host.shared;
            let mut world = shared.lock();
            let Some(slot) = world.hosts.get_mut(&self.host.id) else {
                return Poll::Ready(Err(NetError::HostGone.into()));
            };
            let s = slot.sockets.get_mut::<udp::Socket>(self.handle);
            match s.recv() {
                Ok((data, meta)) => {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    let src = SocketAddr::new(meta.endpoint.addr.into(), meta.endpoint.port);
                    Poll::Ready(Ok((n, src, meta.local_address.map(IpAddr::from))))
                }
                Err(_) => {
                    s.register_recv_waker(&shared.waker(cx));
                    Poll::Pending
                }
            }
        })
        .await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let shared = self.host.shared.clone();
        let mut world = shared.lock();
        if let Some(slot) = world.hosts.get_mut(&self.host.id) {
            slot.orphan(self.handle, SocketKind::Udp, Some(self.port));
            shared.kick(&mut world, self.host.id);
        }
    }
}
