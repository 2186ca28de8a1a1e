//! The simulated internet's address plan, and the learner's computer on it.
//!
//! Everything outside every VPC sits at [`Port::Internet`](crate::Port::Internet)
//! (MTU 1500) and is found by its address (ARCHITECTURE.md, "Address plan"):
//!
//! | address | what |
//! | --- | --- |
//! | [`WHATISMYIP_ADDR`] (192.0.2.10) | "what is my IP", like `checkip.amazonaws.com` |
//! | [`MIRROR_ADDR`] (192.0.2.20) | the package mirror |
//! | [`PUBLIC_DNS_ADDR`] (192.0.2.53) | the public DNS resolver |
//! | [`WEB_ADDR`] (192.0.2.80) | a small web site |
//! | 192.0.2.96/29 | the Route 53 health checkers |
//! | [`LEARNER_ADDR`] (203.0.113.10) | the learner's computer, as the VPC sees it |
//!
//! This module attaches only the learner's computer ([`Learner`]): learner access opens
//! a TCP connection from the learner's address into the world and splices it to any
//! byte stream (what `vpclab connect` runs). The services at the other addresses are
//! vpclab's (`world::internet`, `dns`, `world::health`): they are hosts like any other,
//! and netstack speaks no HTTP and no DNS.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::host::{Host, HostConfig, Net, NetError, TcpStream};

/// The "what is my IP" service.
pub const WHATISMYIP_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The package mirror.
pub const MIRROR_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
/// The public DNS resolver.
pub const PUBLIC_DNS_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// The web site.
pub const WEB_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
/// The learner's computer.
pub const LEARNER_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// The learner's computer, attached to a world at [`LEARNER_ADDR`]. Dropping it
/// detaches the host.
pub struct Learner {
    host: Host,
}

impl Learner {
    /// Attaches the learner's host to `net`. Call inside a tokio runtime.
    pub fn attach(net: &Net) -> Result<Learner, NetError> {
        Ok(Learner {
            host: net.add_host(HostConfig::internet(LEARNER_ADDR))?,
        })
    }

    /// The learner's host stack.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Opens a TCP connection from the learner's address to `dst` inside the world (it
    /// crosses the internet gateway, NACLs and security groups like any other) and copies
    /// bytes both ways between it and `io` until both sides are done. Returns the bytes
    /// sent into the world and received.
    pub async fn connect<S>(&self, dst: SocketAddrV4, io: S) -> io::Result<(u64, u64)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self.host.connect(dst).await?;
        splice(stream, io).await
    }
}

impl Drop for Learner {
    fn drop(&mut self) {
        self.host.remove();
    }
}

/// Copy bytes both ways between a world connection and any byte stream
/// until both directions have ended (a FIN on one side becomes a FIN on the
/// other). Returns (bytes from `io` into the world, bytes out of it).
pub async fn splice<S>(mut stream: TcpStream, mut io: S) -> io::Result<(u64, u64)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (out, back) = tokio::io::copy_bidirectional(&mut io, &mut stream).await?;
    Ok((out, back))
}
