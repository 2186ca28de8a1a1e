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
//! | [`INTERNET_ROUTER_ADDR`] (192.0.2.254) | the catch-all internet host's own address, "the internet" in `traceroute` |
//! | [`SERVICE_ENDPOINTS`] (198.51.100.0/26) | AWS service endpoints (`ec2.us-east-1.amazonaws.com` …) |
//! | [`WELL_KNOWN`] (198.51.100.128/26) | well-known public names (`example.com`, `www.google.com` …) |
//! | [`LEARNER_ADDR`] (203.0.113.10) | the learner's computer, as the VPC sees it |
//! | every other public address ([`is_internet_host`]) | the catch-all internet host |
//! | [`INTERNET_ROUTER_ADDR6`] (3fff::254) | the catch-all host's own IPv6 address |
//! | [`LEARNER_ADDR6`] (3fff:203:0:113::10) | the learner's computer over IPv6 |
//! | [`WELL_KNOWN6`] (3fff:198:51:100::/64) | well-known public names over IPv6 (their AAAA records), served by the catch-all host |
//! | every global IPv6 address outside 2001:db8::/32 ([`is_internet_host6`]) | the catch-all internet host |
//!
//! IPv6: VPCs get their /56s from the documentation prefix 2001:db8::/32, so vpclab's
//! own IPv6 addresses on the internet come from the other documentation prefix,
//! 3fff::/20 (RFC 9637), and the catch-all host answers every other global unicast
//! address (2000::/3: `2606:4700:4700::1111`, `2001:4860:4860::8888` …).
//!
//! Any globally routable address (8.8.8.8, 1.1.1.1, 93.184.215.14 …) is a host of the
//! simulated internet: one smoltcp stack in any-IP mode ([`HostConfig::catch_all`])
//! answers for all of them, so no stack exists per address. It is found only when no
//! other host has the destination, so it costs nothing to the rest of the traffic.
//! Special-purpose ranges (RFC 6890: private, shared, loopback, link-local,
//! documentation, benchmarking, multicast, reserved) are nobody's on the internet: a
//! packet there is lost, as it would be past a real internet gateway — except the
//! addresses of the table above, which vpclab's own services hold.
//!
//! This module attaches only the learner's computer ([`Learner`]): learner access opens
//! a TCP connection from the learner's address into the world and splices it to any
//! byte stream (what `vpclab connect` runs). The services at the other addresses are
//! vpclab's (`world::internet`, `dns`, `world::health`): they are hosts like any other,
//! and netstack speaks no HTTP and no DNS.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

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
/// The catch-all internet host's own address: the hop `traceroute` shows as "the
/// internet".
pub const INTERNET_ROUTER_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The catch-all internet host's own IPv6 address.
pub const INTERNET_ROUTER_ADDR6: Ipv6Addr = Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0x254);
/// The learner's computer over IPv6 (a mirror of 203.0.113.10 in 3fff::/20).
pub const LEARNER_ADDR6: Ipv6Addr = Ipv6Addr::new(0x3fff, 0x203, 0, 0x113, 0, 0, 0, 0x10);

/// Where the names of AWS service endpoints point (TEST-NET-2, first quarter).
pub const SERVICE_ENDPOINTS: Ipv4Net = net(Ipv4Addr::new(198, 51, 100, 0), 26);
/// Where well-known public names point (TEST-NET-2, third quarter). Documentation
/// addresses: nothing real could ever answer there, whatever escaped.
pub const WELL_KNOWN: Ipv4Net = net(Ipv4Addr::new(198, 51, 100, 128), 26);

/// Where well-known public names point over IPv6 (their AAAA records): the mirror of
/// [`WELL_KNOWN`] in vpclab's own 3fff::/20, so `example.com` is 198.51.100.129 and
/// 3fff:198:51:100::129. The catch-all host answers there.
pub const WELL_KNOWN6: Ipv6Net =
    match Ipv6Net::new(Ipv6Addr::new(0x3fff, 0x198, 0x51, 0x100, 0, 0, 0, 0), 64) {
        Ok(n) => n,
        Err(_) => panic!("64 is a valid IPv6 prefix length"),
    };

/// Public DNS resolvers learners type from memory: UDP and TCP port 53 there reach the
/// world's public resolver (Google, Cloudflare, Quad9, OpenDNS).
pub const PUBLIC_RESOLVERS: [Ipv4Addr; 8] = [
    Ipv4Addr::new(8, 8, 8, 8),
    Ipv4Addr::new(8, 8, 4, 4),
    Ipv4Addr::new(1, 1, 1, 1),
    Ipv4Addr::new(1, 0, 0, 1),
    Ipv4Addr::new(9, 9, 9, 9),
    Ipv4Addr::new(149, 112, 112, 112),
    Ipv4Addr::new(208, 67, 222, 222),
    Ipv4Addr::new(208, 67, 220, 220),
];

/// The one-way delay of every packet delivered to the catch-all internet host, so the
/// round trip to any internet address is this long (plus the fabric's own time), as a
/// ping from a cloud region to a nearby public service is.
pub const INTERNET_DELAY: Duration = Duration::from_millis(10);

/// The TTL of every packet the catch-all internet host sends: as if it started at 128
/// (Windows, many routers) and crossed eleven routers before the internet gateway,
/// which takes one more, so a ping shows `ttl=116`.
pub const INTERNET_TTL: u8 = 117;

const fn net(addr: Ipv4Addr, len: u8) -> Ipv4Net {
    match Ipv4Net::new(addr, len) {
        Ok(n) => n,
        Err(_) => panic!("prefix length above 32"),
    }
}

/// Special-purpose IPv4 ranges (RFC 6890 and the IANA registry): no internet host
/// lives there.
const SPECIAL_PURPOSE: [(u32, u8); 15] = [
    (0x0000_0000, 8),  // "this network"
    (0x0a00_0000, 8),  // private (RFC 1918)
    (0x6440_0000, 10), // shared address space (carrier-grade NAT)
    (0x7f00_0000, 8),  // loopback
    (0xa9fe_0000, 16), // link-local
    (0xac10_0000, 12), // private (RFC 1918)
    (0xc000_0000, 24), // IETF protocol assignments
    (0xc000_0200, 24), // TEST-NET-1 (documentation)
    (0xc058_6300, 24), // 6to4 relay anycast (deprecated)
    (0xc0a8_0000, 16), // private (RFC 1918)
    (0xc612_0000, 15), // benchmarking
    (0xc633_6400, 24), // TEST-NET-2 (documentation)
    (0xcb00_7100, 24), // TEST-NET-3 (documentation)
    (0xe000_0000, 4),  // multicast
    (0xf000_0000, 4),  // reserved, and the limited broadcast address
];

/// Whether `addr` is globally routable: outside every special-purpose range.
pub fn is_global(addr: Ipv4Addr) -> bool {
    let a = u32::from(addr);
    !SPECIAL_PURPOSE
        .iter()
        .any(|&(base, len)| a >> (32 - len) == base >> (32 - len))
}

/// Whether the catch-all internet host answers for `addr`: any globally routable
/// address, and vpclab's blocks for service endpoints and well-known names.
pub fn is_internet_host(addr: Ipv4Addr) -> bool {
    is_global(addr) || SERVICE_ENDPOINTS.contains(&addr) || WELL_KNOWN.contains(&addr)
}

/// The learner's computer, attached to a world at [`LEARNER_ADDR`]. Dropping it
/// detaches the host.
/// Whether the catch-all host answers for the IPv6 address `addr`: global unicast
/// (2000::/3) outside the documentation prefixes (2001:db8::/32, where VPC blocks
/// live, and 3fff::/20, vpclab's own), the IETF protocol assignments (2001::/23) and
/// 6to4 (2002::/16); and the well-known names' block [`WELL_KNOWN6`].
pub fn is_internet_host6(addr: Ipv6Addr) -> bool {
    if WELL_KNOWN6.contains(&addr) {
        return true;
    }
    let a = u128::from(addr);
    let within = |base: u128, len: u32| a >> (128 - len) == base >> (128 - len);
    within(0x2000 << 112, 3)
        && !within(0x2001_0db8 << 96, 32)
        && !within(0x3fff << 112, 20)
        && !within(0x2001 << 112, 23)
        && !within(0x2002 << 112, 16)
}

pub struct Learner {
    host: Host,
}

impl Learner {
    /// Attaches the learner's host to `net`. Call inside a tokio runtime.
    pub fn attach(net: &Net) -> Result<Learner, NetError> {
        Ok(Learner {
            host: net.add_host(HostConfig::internet(LEARNER_ADDR).with_ipv6(LEARNER_ADDR6))?,
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
    pub async fn connect<S>(&self, dst: impl Into<SocketAddr>, io: S) -> io::Result<(u64, u64)>
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catch_all_answers_global_ipv6_outside_the_documentation_prefixes() {
        for a in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450::1",
            "3fff:198:51:100::129",
        ] {
            assert!(is_internet_host6(a.parse().unwrap()), "{a}");
        }
        // VPC blocks, vpclab's own addresses, link-local, unique local, 6to4.
        for a in [
            "2001:db8:12::1",
            "3fff::254",
            "fe80::1",
            "fd00:ec2::253",
            "2002::1",
            "::1",
        ] {
            assert!(!is_internet_host6(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn global_addresses_are_the_ones_outside_the_special_purpose_registry() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "52.94.76.1",
            "223.255.255.1",
        ] {
            assert!(is_global(a.parse().unwrap()), "{a}");
        }
        for a in [
            "10.1.2.3",
            "172.31.0.5",
            "192.168.0.1",
            "100.100.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "192.0.2.10",
            "198.18.0.7",
            "198.51.100.5",
            "203.0.113.10",
            "224.0.0.1",
            "255.255.255.255",
            "0.1.2.3",
        ] {
            assert!(!is_global(a.parse().unwrap()), "{a}");
        }
        assert!(is_internet_host("198.51.100.10".parse().unwrap()));
        assert!(is_internet_host("198.51.100.130".parse().unwrap()));
        assert!(!is_internet_host("198.51.100.77".parse().unwrap()));
    }
}
