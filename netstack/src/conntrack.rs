//! Connection tracking: what makes security groups stateful.
//!
//! AWS security groups track connections per network interface: once a packet
//! is allowed (in either direction), the packets of the same flow in both
//! directions pass whatever the rules say, and removing the rule that let the
//! flow in does not cut it until it idles out. Entries are keyed from the
//! interface's point of view — (interface, protocol, local address/port,
//! remote address/port) — so the request and its reply find the same entry.
//!
//! Idle timeouts (see [`Timeouts`]) follow AWS's documented defaults where
//! there are any (TCP established 432,000 s, UDP 30 s / 180 s for streams)
//! and Linux conntrack's values elsewhere. An expired entry is treated as
//! absent on lookup; [`Conntrack::expire`] only reclaims memory.

use smoltcp::time::{Duration, Instant};

use crate::hash::FxBuild;
use crate::verdict::Direction;

/// Idle timeouts of tracked connections and NAT mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP before the responder has answered (SYN sent): 120 s (Linux `syn_sent`).
    pub tcp_handshake: Duration,
    /// TCP established: 432,000 s = 5 days (AWS `TcpEstablishedTimeout` default).
    pub tcp_established: Duration,
    /// TCP after a FIN in either direction: 120 s (Linux `fin_wait`/`time_wait`).
    pub tcp_closing: Duration,
    /// TCP after a RST: 10 s (Linux `close`).
    pub tcp_reset: Duration,
    /// UDP seen in one direction or one request/response: 30 s (AWS `UdpTimeout`).
    pub udp: Duration,
    /// UDP that has seen several request/response exchanges: 180 s (AWS `UdpStreamTimeout`).
    pub udp_stream: Duration,
    /// ICMP echo and other protocols: 30 s (Linux `icmp` timeout).
    pub icmp: Duration,
    /// NAT gateway idle timeout: 350 s (AWS).
    pub nat_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_handshake: Duration::from_secs(120),
            tcp_established: Duration::from_secs(432_000),
            tcp_closing: Duration::from_secs(120),
            tcp_reset: Duration::from_secs(10),
            udp: Duration::from_secs(30),
            udp_stream: Duration::from_secs(180),
            icmp: Duration::from_secs(30),
            nat_idle: Duration::from_secs(350),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ConnKey {
    /// The interface's stable number in the fabric (survives topology swaps).
    pub eni: u32,
    pub proto: u8,
    pub lport: u16,
    pub rport: u16,
    pub local: u32,
    pub remote: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpState {
    /// Only the initiator has spoken.
    Handshake,
    Established,
    /// A FIN was seen.
    Closing,
    Reset,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnEntry {
    pub key: ConnKey,
    pub initiator: Direction,
    pub tcp: TcpState,
    pub last_seen: Instant,
    /// Number of times the talking side changed (request → reply → request…).
    pub turns: u32,
    pub last_dir: Direction,
}

impl ConnEntry {
    fn timeout(&self, t: &Timeouts) -> Duration {
        match self.key.proto {
            6 => match self.tcp {
                TcpState::Handshake => t.tcp_handshake,
                TcpState::Established => t.tcp_established,
                TcpState::Closing => t.tcp_closing,
                TcpState::Reset => t.tcp_reset,
            },
            // AWS: a UDP flow that saw more than one request/response exchange
            // is a stream and gets the longer timeout.
            17 if self.turns >= 2 => t.udp_stream,
            17 => t.udp,
            _ => t.icmp,
        }
    }

    pub fn alive(&self, now: Instant, t: &Timeouts) -> bool {
        now < self.last_seen + self.timeout(t)
    }

    /// Advances the entry with one more packet going `dir` (relative to the interface).
    fn update(&mut self, now: Instant, dir: Direction, flags: u8) {
        self.last_seen = now;
        if dir != self.last_dir {
            self.turns = self.turns.saturating_add(1);
            self.last_dir = dir;
        }
        if self.key.proto != 6 {
            return;
        }
        const FIN: u8 = 0x01;
        const SYN: u8 = 0x02;
        const RST: u8 = 0x04;
        const ACK: u8 = 0x10;
        if flags & RST != 0 {
            self.tcp = TcpState::Reset;
        } else if flags & SYN != 0 && flags & ACK == 0 && self.tcp == TcpState::Reset {
            // A new connection reusing the tuple after a reset.
            self.tcp = TcpState::Handshake;
            self.initiator = dir;
        } else if flags & FIN != 0 {
            self.tcp = TcpState::Closing;
        } else if self.tcp == TcpState::Handshake && dir != self.initiator {
            self.tcp = TcpState::Established;
        } else if self.tcp == TcpState::Handshake && flags & SYN == 0 {
            // Picked up mid-stream (no SYN): treat as established, like Linux loose tracking.
            self.tcp = TcpState::Established;
        }
    }
}

/// The connection table: a slab of entries plus an index by key, so that the
/// pipeline can remember a slot during its read-only walk and the update
/// afterwards costs no second hash lookup.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conntrack {
    slots: Vec<Option<ConnEntry>>,
    free: Vec<u32>,
    index: std::collections::HashMap<ConnKey, u32, FxBuild>,
}

impl Conntrack {
    /// The live entry for `key`, if any.
    #[inline]
    pub fn lookup(&self, key: &ConnKey, now: Instant, t: &Timeouts) -> Option<u32> {
        let slot = *self.index.get(key)?;
        let e = self.slots[slot as usize].as_ref()?;
        e.alive(now, t).then_some(slot)
    }

    /// Whether `slot` still holds the live entry for `key`.
    #[inline]
    pub fn is_live(&self, slot: u32, key: &ConnKey, now: Instant, t: &Timeouts) -> bool {
        matches!(self.slots.get(slot as usize), Some(Some(e)) if e.key == *key && e.alive(now, t))
    }

    /// Refreshes a slot returned by `lookup` during the same packet.
    #[inline]
    pub fn touch(&mut self, slot: u32, now: Instant, dir: Direction, flags: u8) {
        if let Some(Some(e)) = self.slots.get_mut(slot as usize) {
            e.update(now, dir, flags);
        }
    }

    /// Starts tracking a flow a rule allowed (replacing a dead entry if any).
    pub fn insert(&mut self, key: ConnKey, now: Instant, dir: Direction, flags: u8) {
        let tcp = if flags & 0x02 != 0 && flags & 0x10 == 0 {
            TcpState::Handshake
        } else {
            TcpState::Established
        };
        let mut entry = ConnEntry {
            key,
            initiator: dir,
            tcp,
            last_seen: now,
            turns: 0,
            last_dir: dir,
        };
        entry.update(now, dir, flags);
        if flags & 0x02 != 0 && flags & 0x10 == 0 && flags & 0x04 == 0 {
            entry.tcp = TcpState::Handshake;
        }
        if let Some(&slot) = self.index.get(&key) {
            self.slots[slot as usize] = Some(entry);
            return;
        }
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(entry);
                s
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
    }

    /// Drops idle entries.
    pub fn expire(&mut self, now: Instant, t: &Timeouts) {
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(e) = s
                && !e.alive(now, t)
            {
                self.index.remove(&e.key);
                *s = None;
                self.free.push(i as u32);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }
}
