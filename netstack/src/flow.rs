//! Flows and the packet bytes behind them.
//!
//! A [`Flow`] describes a packet the way a learner would ("TCP from 10.0.1.5
//! port 40000 to 198.18.0.7 port 22, SYN"). [`crate::Fabric::explain`] takes
//! one; [`parse_flow`] reads one from raw IPv4 bytes; [`Flow::to_packet`]
//! builds valid bytes for one (tests, probes, benchmarks).
//!
//! Inside the crate, [`Pkt`] is the mutable header view the pipeline rewrites
//! and [`Layout`] remembers where those headers sit in the bytes, so that the
//! rewrite is written back with incremental checksum updates (RFC 1624)
//! rather than a full recomputation.

use std::fmt;
use std::net::Ipv4Addr;

use smoltcp::wire::Ipv4Packet;

use crate::verdict::Malformed;

/// TCP header flags, as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const SYN_ACK: TcpFlags = TcpFlags(0x12);
    pub const FIN_ACK: TcpFlags = TcpFlags(0x11);

    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// The transport part of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowProto {
    Tcp {
        sport: u16,
        dport: u16,
        flags: TcpFlags,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// `ident` matters for echo request (8) and reply (0) only.
    Icmp {
        ty: u8,
        code: u8,
        ident: u16,
    },
    /// Any other IP protocol, by number.
    Other(u8),
}

/// A described packet: addresses and transport header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: FlowProto,
}

impl Flow {
    /// A TCP SYN (a new connection attempt).
    pub fn tcp_syn(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Self {
        Flow {
            src,
            dst,
            proto: FlowProto::Tcp {
                sport,
                dport,
                flags: TcpFlags::SYN,
            },
        }
    }

    /// A TCP segment with the given flags.
    pub fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: TcpFlags) -> Self {
        Flow {
            src,
            dst,
            proto: FlowProto::Tcp {
                sport,
                dport,
                flags,
            },
        }
    }

    pub fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Self {
        Flow {
            src,
            dst,
            proto: FlowProto::Udp { sport, dport },
        }
    }

    /// An ICMP echo request (ping).
    pub fn ping(src: Ipv4Addr, dst: Ipv4Addr, ident: u16) -> Self {
        Flow {
            src,
            dst,
            proto: FlowProto::Icmp {
                ty: 8,
                code: 0,
                ident,
            },
        }
    }

    /// The IP protocol number.
    pub fn protocol(&self) -> u8 {
        match self.proto {
            FlowProto::Tcp { .. } => 6,
            FlowProto::Udp { .. } => 17,
            FlowProto::Icmp { .. } => 1,
            FlowProto::Other(n) => n,
        }
    }

    /// The same flow seen from the other end (ports and addresses swapped;
    /// echo request becomes reply; a SYN becomes SYN-ACK).
    pub fn reply(&self) -> Flow {
        let proto = match self.proto {
            FlowProto::Tcp {
                sport,
                dport,
                flags,
            } => {
                let flags = if flags == TcpFlags::SYN {
                    TcpFlags::SYN_ACK
                } else {
                    flags
                };
                FlowProto::Tcp {
                    sport: dport,
                    dport: sport,
                    flags,
                }
            }
            FlowProto::Udp { sport, dport } => FlowProto::Udp {
                sport: dport,
                dport: sport,
            },
            FlowProto::Icmp { ty: 8, code, ident } => FlowProto::Icmp { ty: 0, code, ident },
            other => other,
        };
        Flow {
            src: self.dst,
            dst: self.src,
            proto,
        }
    }

    /// Builds a valid IPv4 packet for this flow (TTL 64, correct checksums).
    pub fn to_packet(&self, payload: &[u8]) -> Vec<u8> {
        self.to_packet_ttl(64, payload)
    }

    /// Builds a valid IPv4 packet with the given TTL.
    pub fn to_packet_ttl(&self, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let l4_len = match self.proto {
            FlowProto::Tcp { .. } => 20,
            FlowProto::Udp { .. } | FlowProto::Icmp { .. } => 8,
            FlowProto::Other(_) => 0,
        };
        let total = 20 + l4_len + payload.len();
        let mut b = vec![0u8; total];
        b[0] = 0x45;
        b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        b[8] = ttl;
        b[9] = self.protocol();
        b[12..16].copy_from_slice(&self.src.octets());
        b[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum(&b[..20], 0);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        let l4 = 20;
        b[l4 + l4_len..].copy_from_slice(payload);
        match self.proto {
            FlowProto::Tcp {
                sport,
                dport,
                flags,
            } => {
                b[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
                b[l4 + 2..l4 + 4].copy_from_slice(&dport.to_be_bytes());
                b[l4 + 12] = 5 << 4;
                b[l4 + 13] = flags.0;
                b[l4 + 14..l4 + 16].copy_from_slice(&64240u16.to_be_bytes());
                let c = checksum(&b[l4..], pseudo_sum(&b, 6, (total - 20) as u16));
                b[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
            }
            FlowProto::Udp { sport, dport } => {
                b[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
                b[l4 + 2..l4 + 4].copy_from_slice(&dport.to_be_bytes());
                b[l4 + 4..l4 + 6].copy_from_slice(&((total - 20) as u16).to_be_bytes());
                let mut c = checksum(&b[l4..], pseudo_sum(&b, 17, (total - 20) as u16));
                if c == 0 {
                    c = 0xffff;
                }
                b[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
            }
            FlowProto::Icmp { ty, code, ident } => {
                b[l4] = ty;
                b[l4 + 1] = code;
                b[l4 + 4..l4 + 6].copy_from_slice(&ident.to_be_bytes());
                b[l4 + 6..l4 + 8].copy_from_slice(&1u16.to_be_bytes());
                let c = checksum(&b[l4..], 0);
                b[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
            }
            FlowProto::Other(_) => {}
        }
        b
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            FlowProto::Tcp { sport, dport, .. } => {
                write!(f, "TCP {}:{sport} -> {}:{dport}", self.src, self.dst)
            }
            FlowProto::Udp { sport, dport } => {
                write!(f, "UDP {}:{sport} -> {}:{dport}", self.src, self.dst)
            }
            FlowProto::Icmp { ty, code, .. } => {
                write!(f, "ICMP type {ty} code {code} {} -> {}", self.src, self.dst)
            }
            FlowProto::Other(p) => write!(f, "IP protocol {p} {} -> {}", self.src, self.dst),
        }
    }
}

/// Builds an ICMP error (type/code) from `router` to the sender of
/// `original`, quoting its IP header and first 8 payload bytes (RFC 792).
pub fn icmp_error(router: Ipv4Addr, ty: u8, code: u8, original: &[u8]) -> Vec<u8> {
    let quoted = &original[..original.len().min(28)];
    let dst = if original.len() >= 16 {
        Ipv4Addr::new(original[12], original[13], original[14], original[15])
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let mut b = Flow {
        src: router,
        dst,
        proto: FlowProto::Icmp { ty, code, ident: 0 },
    }
    .to_packet(quoted);
    // Bytes 4..8 of an error are unused (zero), not an echo identifier.
    b[24..28].fill(0);
    b[22..24].fill(0);
    let c = checksum(&b[20..], 0);
    b[22..24].copy_from_slice(&c.to_be_bytes());
    b
}

/// Reads the flow of a raw IPv4 packet, validating it as the fabric does.
pub fn parse_flow(packet: &[u8]) -> Result<Flow, Malformed> {
    let (p, _) = parse(packet)?;
    Ok(p.flow())
}

// ---------------------------------------------------------------------------
// Internal header view.

/// The embedded header of an ICMP error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inner {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

/// The header fields the pipeline reads and rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pkt {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    /// TCP/UDP ports; for ICMP echo both hold the identifier.
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub icmp: Option<(u8, u8)>,
    pub ttl: u8,
    pub inner: Option<Inner>,
}

impl Pkt {
    pub fn from_flow(f: &Flow) -> Self {
        let (proto, sport, dport, flags, icmp) = match f.proto {
            FlowProto::Tcp {
                sport,
                dport,
                flags,
            } => (6, sport, dport, flags.0, None),
            FlowProto::Udp { sport, dport } => (17, sport, dport, 0, None),
            FlowProto::Icmp { ty, code, ident } => {
                let id = if is_echo(ty) { ident } else { 0 };
                (1, id, id, 0, Some((ty, code)))
            }
            FlowProto::Other(n) => (n, 0, 0, 0, None),
        };
        Pkt {
            src: u32::from(f.src),
            dst: u32::from(f.dst),
            proto,
            sport,
            dport,
            flags,
            icmp,
            ttl: 64,
            inner: None,
        }
    }

    pub fn flow(&self) -> Flow {
        let proto = match (self.proto, self.icmp) {
            (6, _) => FlowProto::Tcp {
                sport: self.sport,
                dport: self.dport,
                flags: TcpFlags(self.flags),
            },
            (17, _) => FlowProto::Udp {
                sport: self.sport,
                dport: self.dport,
            },
            (1, Some((ty, code))) => FlowProto::Icmp {
                ty,
                code,
                ident: self.sport,
            },
            (n, _) => FlowProto::Other(n),
        };
        Flow {
            src: Ipv4Addr::from(self.src),
            dst: Ipv4Addr::from(self.dst),
            proto,
        }
    }
}

pub(crate) fn is_echo(ty: u8) -> bool {
    ty == 8 || ty == 0
}

/// ICMP types that quote the offending packet (RFC 792).
pub(crate) fn is_icmp_error(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 5 | 11 | 12)
}

/// Where the headers sit in the bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub total: usize,
    /// Offset of the transport header.
    pub l4: usize,
    /// Offset of the inner IP header of an ICMP error.
    pub inner_ip: usize,
    pub inner_l4: usize,
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Validates and reads a raw IPv4 packet. Never panics on any input.
pub(crate) fn parse(b: &[u8]) -> Result<(Pkt, Layout), Malformed> {
    if b.is_empty() {
        return Err(Malformed::Truncated);
    }
    if b[0] >> 4 != 4 {
        return Err(Malformed::NotIpv4);
    }
    if b.len() < 20 {
        return Err(Malformed::Truncated);
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(Malformed::BadLength);
    }
    let total = usize::from(be16(b, 2));
    if total < ihl {
        return Err(Malformed::BadLength);
    }
    if total > b.len() {
        return Err(Malformed::Truncated);
    }
    let ip = Ipv4Packet::new_checked(&b[..total]).map_err(|_| Malformed::BadLength)?;
    if !ip.verify_checksum() {
        return Err(Malformed::BadChecksum);
    }
    if ihl > 20 {
        return Err(Malformed::IpOptions);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(Malformed::Fragment);
    }
    let proto = b[9];
    let l4 = ihl;
    let seg = &b[l4..total];
    let mut p = Pkt {
        src: be32(b, 12),
        dst: be32(b, 16),
        proto,
        sport: 0,
        dport: 0,
        flags: 0,
        icmp: None,
        ttl: b[8],
        inner: None,
    };
    let mut layout = Layout {
        total,
        l4,
        inner_ip: 0,
        inner_l4: 0,
    };
    match proto {
        6 => {
            if seg.len() < 20 {
                return Err(Malformed::Truncated);
            }
            let off = usize::from(seg[12] >> 4) * 4;
            if off < 20 || off > seg.len() {
                return Err(Malformed::BadLength);
            }
            p.sport = be16(seg, 0);
            p.dport = be16(seg, 2);
            p.flags = seg[13] & 0x3f;
        }
        17 => {
            if seg.len() < 8 {
                return Err(Malformed::Truncated);
            }
            let ulen = usize::from(be16(seg, 4));
            if ulen < 8 || ulen > seg.len() {
                return Err(Malformed::BadLength);
            }
            p.sport = be16(seg, 0);
            p.dport = be16(seg, 2);
        }
        1 => {
            if seg.len() < 8 {
                return Err(Malformed::Truncated);
            }
            let (ty, code) = (seg[0], seg[1]);
            p.icmp = Some((ty, code));
            if is_echo(ty) {
                p.sport = be16(seg, 4);
                p.dport = p.sport;
            } else if is_icmp_error(ty) {
                // The quoted header: an IPv4 header plus at least 8 bytes.
                let q = &seg[8..];
                if q.len() < 20 || q[0] >> 4 != 4 {
                    return Err(Malformed::Truncated);
                }
                let qihl = usize::from(q[0] & 0x0f) * 4;
                if qihl < 20 || q.len() < qihl + 8 {
                    return Err(Malformed::Truncated);
                }
                let qproto = q[9];
                let (sport, dport) = match qproto {
                    6 | 17 => (be16(q, qihl), be16(q, qihl + 2)),
                    1 if is_echo(q[qihl]) => (be16(q, qihl + 4), be16(q, qihl + 4)),
                    _ => (0, 0),
                };
                p.inner = Some(Inner {
                    src: be32(q, 12),
                    dst: be32(q, 16),
                    proto: qproto,
                    sport,
                    dport,
                });
                layout.inner_ip = l4 + 8;
                layout.inner_l4 = l4 + 8 + qihl;
            }
        }
        _ => {}
    }
    Ok((p, layout))
}

/// Internet checksum over `data`, starting from a partial sum.
pub(crate) fn checksum(data: &[u8], start: u32) -> u16 {
    let mut sum = start;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_sum(ip: &[u8], proto: u8, len: u16) -> u32 {
    let mut s = 0u32;
    for i in (12..20).step_by(2) {
        s += u32::from(be16(ip, i));
    }
    s + u32::from(proto) + u32::from(len)
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
#[inline]
fn adjust16(sum: u16, old: u16, new: u16) -> u16 {
    let mut s = u32::from(!sum) + u32::from(!old) + u32::from(new);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

#[inline]
fn adjust32(sum: u16, old: u32, new: u32) -> u16 {
    let s = adjust16(sum, (old >> 16) as u16, (new >> 16) as u16);
    adjust16(s, old as u16, new as u16)
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
#[inline]
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Writes the rewritten header view back into the bytes, updating checksums.
/// `b` was validated by [`parse`] with `layout`, so every offset is in range.
pub(crate) fn write_back(b: &mut Vec<u8>, layout: &Layout, old: &Pkt, new: &Pkt) {
    b.truncate(layout.total);
    if old == new {
        return;
    }
    // IPv4 header: addresses and TTL, then an incremental checksum update.
    let mut ipsum = be16(b, 10);
    if old.ttl != new.ttl {
        ipsum = adjust16(
            ipsum,
            u16::from(old.ttl) << 8 | u16::from(b[9]),
            u16::from(new.ttl) << 8 | u16::from(b[9]),
        );
        b[8] = new.ttl;
    }
    if old.src != new.src {
        ipsum = adjust32(ipsum, old.src, new.src);
        put32(b, 12, new.src);
    }
    if old.dst != new.dst {
        ipsum = adjust32(ipsum, old.dst, new.dst);
        put32(b, 16, new.dst);
    }
    put16(b, 10, ipsum);
    let l4 = layout.l4;
    match new.proto {
        6 | 17 => {
            let at = if new.proto == 6 { l4 + 16 } else { l4 + 6 };
            let mut sum = be16(b, at);
            if new.proto == 17 && sum == 0 {
                // UDP without a checksum stays without one (RFC 768).
                put16(b, l4, new.sport);
                put16(b, l4 + 2, new.dport);
                return;
            }
            sum = adjust32(sum, old.src, new.src);
            sum = adjust32(sum, old.dst, new.dst);
            sum = adjust16(sum, old.sport, new.sport);
            sum = adjust16(sum, old.dport, new.dport);
            if new.proto == 17 && sum == 0 {
                sum = 0xffff;
            }
            put16(b, l4, new.sport);
            put16(b, l4 + 2, new.dport);
            put16(b, at, sum);
        }
        1 => {
            if let (Some(oi), Some(ni)) = (old.inner, new.inner)
                && oi != ni
            {
                rewrite_inner(b, layout, &oi, &ni);
                // The error is short; recompute its checksum outright.
                put16(b, l4 + 2, 0);
                let c = checksum(&b[l4..layout.total], 0);
                put16(b, l4 + 2, c);
            } else if old.sport != new.sport {
                let sum = adjust16(be16(b, l4 + 2), old.sport, new.sport);
                put16(b, l4 + 4, new.sport);
                put16(b, l4 + 2, sum);
            }
        }
        _ => {}
    }
}

/// Rewrites the quoted header of an ICMP error (addresses, ports, and the
/// checksums inside it that the quote contains).
fn rewrite_inner(b: &mut [u8], layout: &Layout, old: &Inner, new: &Inner) {
    let ip = layout.inner_ip;
    let l4 = layout.inner_l4;
    let end = layout.total;
    let mut ipsum = be16(b, ip + 10);
    ipsum = adjust32(ipsum, old.src, new.src);
    ipsum = adjust32(ipsum, old.dst, new.dst);
    put32(b, ip + 12, new.src);
    put32(b, ip + 16, new.dst);
    put16(b, ip + 10, ipsum);
    match new.proto {
        6 | 17 => {
            put16(b, l4, new.sport);
            put16(b, l4 + 2, new.dport);
            let at = if new.proto == 6 { l4 + 16 } else { l4 + 6 };
            if at + 2 <= end {
                let mut sum = be16(b, at);
                if !(new.proto == 17 && sum == 0) {
                    sum = adjust32(sum, old.src, new.src);
                    sum = adjust32(sum, old.dst, new.dst);
                    sum = adjust16(sum, old.sport, new.sport);
                    sum = adjust16(sum, old.dport, new.dport);
                    put16(b, at, sum);
                }
            }
        }
        1 if old.sport != new.sport => {
            let sum = adjust16(be16(b, l4 + 2), old.sport, new.sport);
            put16(b, l4 + 4, new.sport);
            put16(b, l4 + 2, sum);
        }
        _ => {}
    }
}
