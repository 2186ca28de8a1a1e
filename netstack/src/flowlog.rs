//! The flow-log aggregator: what VPC Flow Logs record, taken from the fabric's own
//! verdicts (invariant 1: one decision path).
//!
//! For each interface that has a flow log, every packet the fabric decides is counted
//! against one record per (interface, direction, 5-tuple, action), as AWS's records are
//! per interface and per direction as the interface sees them:
//!
//! - the **sending** interface gets an egress record: `REJECT` when its own security
//!   group, its subnet's outbound network ACL or its source/destination check dropped
//!   the packet, else `ACCEPT` (the packet left the interface);
//! - the **receiving** interface gets an ingress record: `ACCEPT` when the packet was
//!   delivered to it, `REJECT` when its security group or its subnet's inbound network
//!   ACL dropped it.
//!
//! So the stateless-NACL trap shows as an inbound ACCEPT and an outbound REJECT on the
//! same interface, and a security-group drop as an inbound REJECT. Traffic to the VPC
//! resolver and the metadata service is not logged, as on AWS.
//!
//! IPv6 packets are counted the same way from the IPv6 walk's verdicts (`ipv6.rs`),
//! with IPv6 addresses in their records; that walk has no flow cache, so each of
//! its packets updates the record map directly.
//!
//! Cost: one flag test per packet when no interface is logged. A packet that replays a
//! memoised decision of the fabric's flow cache (every packet of an established flow
//! after its first) is counted in that cache entry: three adds on memory the lookup
//! already touched, no hashing. Only packets that take the full walk (new flows,
//! drops) update the record map here, one hash-map update per logged side. The cache
//! entries' counters are folded into the map when the records are drained and before
//! the cache is cleared (topology swap, expiry, a full cache, a change of logged
//! interfaces), so no packet is lost or counted twice. The map holds at most
//! [`MAX_RECORDS`] records between drains; packets of further flows are counted as
//! skipped, which the caller reports as AWS's `SKIPDATA`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::hash::FxBuild;
use crate::port::ResId;

/// Most records kept between two drains (per fabric).
pub const MAX_RECORDS: usize = 1 << 16;

/// One flow as one interface saw it in one window. IPv4 and IPv6 flows share the
/// record map; AWS's records carry either family's addresses (and `type` says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowRecordKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// The interface sent the packet (`egress`) or received it.
    pub egress: bool,
    pub accept: bool,
}

impl FlowRecordKey {
    /// Whether the flow is IPv6 (AWS's `type` field: `IPv6`).
    pub fn is_ipv6(&self) -> bool {
        self.src.is_ipv6()
    }
}

/// Hashed as two words rather than field by field: the record map is updated twice
/// per logged packet, and seven separate hasher rounds were a visible share of that.
/// An IPv6 flow's addresses take two more words each.
impl std::hash::Hash for FlowRecordKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                h.write_u64(u64::from(u32::from(s)) << 32 | u64::from(u32::from(d)))
            }
            (s, d) => {
                h.write_u128(match s {
                    IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
                    IpAddr::V6(a) => u128::from(a),
                });
                h.write_u128(match d {
                    IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
                    IpAddr::V6(a) => u128::from(a),
                });
            }
        }
        h.write_u64(
            u64::from(self.sport) << 48
                | u64::from(self.dport) << 32
                | u64::from(self.proto) << 8
                | u64::from(self.egress) << 1
                | u64::from(self.accept),
        );
    }
}

/// What was counted for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    pub packets: u64,
    pub bytes: u64,
    /// The OR of the TCP flags seen (AWS's `tcp-flags` field).
    pub tcp_flags: u8,
}

/// A drained record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub eni: ResId,
    pub key: FlowRecordKey,
    pub counters: FlowCounters,
}

/// The records of one window, and how many packets could not be recorded.
#[derive(Clone, Debug, Default)]
pub struct FlowDrain {
    pub records: Vec<FlowRecord>,
    /// Interfaces that had packets the full map could not record.
    pub skipped: Vec<ResId>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct FlowLogs {
    /// The interfaces with a flow log, by id (kept across topology swaps).
    wanted: HashSet<ResId, FxBuild>,
    /// `logged[dense eni index]` for the topology in force.
    pub(crate) logged: Vec<bool>,
    pub(crate) any: bool,
    records: HashMap<(u32, FlowRecordKey), FlowCounters, FxBuild>,
    /// Dense index → id of the interfaces that have records (the topology may change
    /// before the drain).
    ids: HashMap<u32, ResId, FxBuild>,
    skipped: HashSet<ResId, FxBuild>,
}

impl FlowLogs {
    pub(crate) fn set_wanted(&mut self, wanted: HashSet<ResId, FxBuild>) {
        self.wanted = wanted;
    }

    /// Recomputes the per-index flags for a topology's interfaces (in index order).
    /// Records already counted are kept under their ids.
    pub(crate) fn reindex<'a>(&mut self, enis: impl Iterator<Item = &'a ResId>) {
        self.flush_ids();
        self.logged = enis.map(|id| self.wanted.contains(id)).collect();
        self.any = self.logged.iter().any(|b| *b);
    }

    /// Moves counted records from dense indexes to ids before indexes change.
    fn flush_ids(&mut self) {
        // Dense indexes are only valid for one topology: re-key what was counted so far
        // by moving it to a side list under the interface id.
        if self.records.is_empty() {
            return;
        }
        let mut moved: Vec<((u32, FlowRecordKey), FlowCounters)> = self.records.drain().collect();
        // Give each id a fresh private index above any dense one.
        let mut by_id: HashMap<ResId, u32, FxBuild> = HashMap::default();
        let mut ids: HashMap<u32, ResId, FxBuild> = HashMap::default();
        for ((ix, _), _) in &mut moved {
            let Some(id) = self.ids.get(ix).cloned() else {
                continue;
            };
            let next = u32::MAX - by_id.len() as u32;
            let n = *by_id.entry(id.clone()).or_insert(next);
            ids.insert(n, id);
            *ix = n;
        }
        self.ids = ids;
        for (k, v) in moved {
            let e = self.records.entry(k).or_default();
            e.packets += v.packets;
            e.bytes += v.bytes;
            e.tcp_flags |= v.tcp_flags;
        }
    }

    /// Counts one packet on the interface with dense index `ix`.
    #[inline]
    pub(crate) fn count(&mut self, ix: u32, id: &ResId, key: FlowRecordKey, len: usize, flags: u8) {
        if !self.logged.get(ix as usize).copied().unwrap_or(false) {
            return;
        }
        self.add(
            ix,
            id,
            key,
            FlowCounters {
                packets: 1,
                bytes: len as u64,
                tcp_flags: flags,
            },
        );
    }

    /// Adds counters gathered elsewhere (the fabric's flow cache, see
    /// [`crate::fabric`]) to the record of `key` on the interface with dense index
    /// `ix`. The caller has checked that the interface is logged.
    pub(crate) fn add(&mut self, ix: u32, id: &ResId, key: FlowRecordKey, n: FlowCounters) {
        let full = self.records.len() >= MAX_RECORDS;
        match self.records.get_mut(&(ix, key)) {
            Some(c) => {
                c.packets += n.packets;
                c.bytes += n.bytes;
                c.tcp_flags |= n.tcp_flags;
            }
            None if full => {
                if !self.skipped.contains(id) {
                    self.skipped.insert(id.clone());
                }
            }
            None => {
                self.ids.entry(ix).or_insert_with(|| id.clone());
                self.records.insert((ix, key), n);
            }
        }
    }

    /// Whether the interface with dense index `ix` has a flow log.
    #[inline]
    pub(crate) fn is_logged(&self, ix: u32) -> bool {
        self.logged.get(ix as usize).copied().unwrap_or(false)
    }

    /// Takes every record counted since the last drain, sorted by interface and key.
    pub(crate) fn drain(&mut self) -> FlowDrain {
        let mut records: Vec<FlowRecord> = self
            .records
            .drain()
            .filter_map(|((ix, key), counters)| {
                Some(FlowRecord {
                    eni: self.ids.get(&ix)?.clone(),
                    key,
                    counters,
                })
            })
            .collect();
        records.sort_by(|a, b| (&a.eni, a.key).cmp(&(&b.eni, b.key)));
        // A record counted under a dense index and again after a re-index (topology
        // swap, change of logged interfaces) is one flow: one record.
        records.dedup_by(|later, kept| {
            let same = later.eni == kept.eni && later.key == kept.key;
            if same {
                kept.counters.packets += later.counters.packets;
                kept.counters.bytes += later.counters.bytes;
                kept.counters.tcp_flags |= later.counters.tcp_flags;
            }
            same
        });
        self.ids.clear();
        let mut skipped: Vec<ResId> = self.skipped.drain().collect();
        skipped.sort();
        FlowDrain { records, skipped }
    }
}
