//! NAT gateway translation state.
//!
//! A NAT gateway maps many private (address, port) pairs to its own address
//! and ports 1024–65535, for TCP, UDP and ICMP echo (the identifier plays the
//! port). Mappings are endpoint-dependent, as on AWS (55,000 simultaneous
//! connections *per destination*): the same gateway port may serve different
//! destinations. Ports are chosen by a seeded, deterministic hash of the flow,
//! then probed upward for a free one, so the same inputs always give the same
//! ports. A mapping idle for 350 s is gone (AWS's NAT idle timeout).

use smoltcp::time::Instant;

use crate::hash::{FxBuild, splitmix};
use crate::topology::PortRange;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct OutKey {
    pub nat: u32,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub src: u32,
    pub dst: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct InKey {
    pub nat: u32,
    pub proto: u8,
    pub rport: u16,
    pub port: u16,
    pub remote: u32,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapping {
    pub out: OutKey,
    pub port: u16,
    pub last_seen: Instant,
}

impl Mapping {
    pub fn in_key(&self) -> InKey {
        InKey {
            nat: self.out.nat,
            proto: self.out.proto,
            rport: self.out.dport,
            port: self.port,
            remote: self.out.dst,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NatTable {
    slots: Vec<Option<Mapping>>,
    free: Vec<u32>,
    out_ix: std::collections::HashMap<OutKey, u32, FxBuild>,
    in_ix: std::collections::HashMap<InKey, u32, FxBuild>,
}

impl NatTable {
    fn live(&self, slot: u32, now: Instant, idle: smoltcp::time::Duration) -> Option<&Mapping> {
        let m = self.slots.get(slot as usize)?.as_ref()?;
        (now < m.last_seen + idle).then_some(m)
    }

    pub fn lookup_out(
        &self,
        k: &OutKey,
        now: Instant,
        idle: smoltcp::time::Duration,
    ) -> Option<(u32, u16)> {
        let slot = *self.out_ix.get(k)?;
        self.live(slot, now, idle).map(|m| (slot, m.port))
    }

    pub fn lookup_in(
        &self,
        k: &InKey,
        now: Instant,
        idle: smoltcp::time::Duration,
    ) -> Option<(u32, OutKey)> {
        let slot = *self.in_ix.get(k)?;
        self.live(slot, now, idle).map(|m| (slot, m.out))
    }

    /// Picks a free gateway port for a new mapping, or `None` when every port
    /// toward this destination is taken.
    pub fn choose_port(
        &self,
        k: &OutKey,
        seed: u64,
        range: PortRange,
        now: Instant,
        idle: smoltcp::time::Duration,
    ) -> Option<u16> {
        let span = u32::from(range.to.saturating_sub(range.from)) + 1;
        let mut h = splitmix(seed ^ u64::from(k.nat));
        h = splitmix(h ^ (u64::from(k.src) << 32 | u64::from(k.dst)));
        h = splitmix(h ^ (u64::from(k.sport) << 24 | u64::from(k.dport) << 8 | u64::from(k.proto)));
        let start = (h % u64::from(span)) as u32;
        (0..span).find_map(|i| {
            let port = (u32::from(range.from) + (start + i) % span) as u16;
            let ik = InKey {
                nat: k.nat,
                proto: k.proto,
                rport: k.dport,
                port,
                remote: k.dst,
            };
            match self.in_ix.get(&ik) {
                Some(&slot) if self.live(slot, now, idle).is_some() => None,
                _ => Some(port),
            }
        })
    }

    /// Whether `slot` still holds the live mapping for `key`.
    pub fn is_live(
        &self,
        slot: u32,
        key: &OutKey,
        now: Instant,
        idle: smoltcp::time::Duration,
    ) -> bool {
        self.live(slot, now, idle).is_some_and(|m| m.out == *key)
    }

    pub fn touch(&mut self, slot: u32, now: Instant) {
        if let Some(Some(m)) = self.slots.get_mut(slot as usize) {
            m.last_seen = now;
        }
    }

    fn remove_slot(&mut self, slot: u32) {
        if let Some(m) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            if self.out_ix.get(&m.out) == Some(&slot) {
                self.out_ix.remove(&m.out);
            }
            let ik = m.in_key();
            if self.in_ix.get(&ik) == Some(&slot) {
                self.in_ix.remove(&ik);
            }
            self.free.push(slot);
        }
    }

    pub fn insert(&mut self, out: OutKey, port: u16, now: Instant) {
        // Replace whatever dead mapping still holds either key.
        if let Some(&s) = self.out_ix.get(&out) {
            self.remove_slot(s);
        }
        let m = Mapping {
            out,
            port,
            last_seen: now,
        };
        if let Some(&s) = self.in_ix.get(&m.in_key()) {
            self.remove_slot(s);
        }
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(m);
                s
            }
            None => {
                self.slots.push(Some(m));
                (self.slots.len() - 1) as u32
            }
        };
        self.out_ix.insert(out, slot);
        self.in_ix.insert(m.in_key(), slot);
    }

    pub fn expire(&mut self, now: Instant, idle: smoltcp::time::Duration) {
        for slot in 0..self.slots.len() as u32 {
            if self.slots[slot as usize].is_some() && self.live(slot, now, idle).is_none() {
                self.remove_slot(slot);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.out_ix.len()
    }

    /// TCP mappings held per gateway (stable number): idle ones go at the next
    /// [`NatTable::expire`].
    pub fn tcp_mappings(&self) -> std::collections::BTreeMap<u32, u64> {
        let mut out = std::collections::BTreeMap::new();
        for m in self.slots.iter().flatten() {
            if m.out.proto == 6 {
                *out.entry(m.out.nat).or_default() += 1;
            }
        }
        out
    }
}
