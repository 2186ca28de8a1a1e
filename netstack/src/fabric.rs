//! The VPC forwarding pipeline: one decision path for real packets and for
//! "why can't A reach B?".
//!
//! [`Fabric::process`] parses a raw IPv4 packet, walks it through the stages
//! below, rewrites it in place (internet-gateway and NAT-gateway translation,
//! TTL) and returns a [`Verdict`]. [`Fabric::explain`] runs the very same walk
//! on a described [`Flow`] without touching any state. The walk only *reads*
//! connection-tracking and NAT state; what it would change is collected as
//! effects and applied by `process` once the packet is delivered.
//!
//! The order of the stages, and the AWS rule behind each:
//!
//! 1. **Exemptions.** Traffic from an interface to the Route 53 Resolver (VPC
//!    base + 2, 169.254.169.253) or instance metadata (169.254.169.254) is not
//!    filtered by network ACLs or security groups (AWS: "Amazon DNS server,
//!    instance metadata … traffic is not filtered").
//! 2. **Egress security groups** of the sending interface (stateful: a
//!    tracked connection passes, otherwise the OR of all rules of all groups).
//! 3. **Source/destination check**: an interface may only send from its own
//!    address unless the check is disabled (NAT instances, appliances).
//! 4. **Same subnet?** Traffic between two interfaces of one subnet crosses
//!    no network ACL and no route table.
//! 5. **Egress network ACL** of the source subnet (stateless, ascending rule
//!    numbers, first match, final `*` deny).
//! 6. **Route table** of the source subnet: longest prefix wins; targets
//!    local, internet gateway, NAT gateway, network interface, blackhole.
//! 7. **Gateways.** The internet gateway translates 1:1 between an interface's
//!    private address and its public/Elastic IP (dropping traffic of
//!    interfaces without one); the NAT gateway is itself an interface in its
//!    subnet — traffic to it crosses its subnet's ingress ACL, it translates
//!    the source to its own address and a port 1024–65535, and sends the
//!    packet on through its own subnet's ACL and route table.
//! 8. **Ingress network ACL** of the destination subnet, when the packet
//!    enters it from outside.
//! 9. **Ingress security groups** of the destination interface, then its
//!    destination check, then delivery.
//!
//! TTL is decremented at each gateway (internet gateway, NAT gateway) the
//! packet crosses; the VPC router between subnets is invisible to TTL, as on
//! AWS (a traceroute between two instances shows one hop). A packet whose TTL
//! runs out is answered with an ICMP time exceeded (RFC 792 type 11 code 0,
//! RFC 1812 §4.3.2.1 for the rate limit) from the hop that forwarded it into
//! the gateway: the sender's subnet router (its base + 1) for the first one,
//! the NAT gateway's private address past a NAT gateway, and the internet's
//! router ([`crate::internet::INTERNET_ROUTER_ADDR`]) for a packet from the
//! internet; the internet gateway itself never answers. The caller takes that
//! answer with [`Fabric::take_reply`] and hands it to the sender's port.

use std::net::Ipv4Addr;
use std::sync::Arc;

use smoltcp::time::Instant;

use crate::compiled::{CPeer, CRuleSet, CSgRule, CTarget, Compiled, ORDER_SHIFT};
use crate::conntrack::{ConnKey, Conntrack, Timeouts};
use crate::flow::{Flow, Pkt, is_echo, is_icmp_error, parse, write_back};
use crate::hash::FxBuild;
use crate::nat::{InKey, NatTable, OutKey};
use crate::port::{Port, ResId};
use crate::topology::{PortRange, Topology};
use crate::verdict::{Direction, DropReason, Hop, HopAction, Outcome, RuleRef, Verdict};

/// Tunables of a fabric; the defaults are AWS's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FabricConfig {
    /// Seed of the NAT gateway port allocator (one per world).
    pub seed: u64,
    /// NAT gateway source ports: 1024–65535 on AWS.
    pub nat_ports: PortRange,
    pub timeouts: Timeouts,
}

impl Default for FabricConfig {
    fn default() -> Self {
        FabricConfig {
            seed: 0,
            nat_ports: PortRange::new(1024, 65535),
            timeouts: Timeouts::default(),
        }
    }
}

/// Counters a caller may show or assert on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FabricStats {
    pub delivered: u64,
    pub dropped: u64,
    pub tracked_connections: usize,
    pub nat_mappings: usize,
}

/// A state change the walk decided on, applied only when the packet is delivered.
#[derive(Clone, Copy, Debug)]
enum Effect {
    ConnTouch {
        slot: u32,
        key: ConnKey,
        dir: Direction,
        flags: u8,
    },
    ConnNew {
        key: ConnKey,
        dir: Direction,
        flags: u8,
    },
    NatTouch {
        slot: u32,
        key: OutKey,
    },
    NatNew {
        key: OutKey,
        port: u16,
    },
}

/// The sans-IO data plane: topology snapshot, connection tracking, NAT state.
#[derive(Clone, Debug)]
pub struct Fabric {
    topology: Arc<Topology>,
    config: FabricConfig,
    conntrack: Conntrack,
    /// Connection tracking of the IPv6 path (`ipv6.rs`).
    conntrack6: crate::ipv6::Conntrack6,
    nat: NatTable,
    /// Stable numbers for interfaces and NAT gateways, so that state keyed by
    /// them survives topology swaps (dense indexes change between snapshots).
    stable_ids: std::collections::HashMap<ResId, u32, FxBuild>,
    eni_stable: Vec<u32>,
    nat_stable: Vec<u32>,
    record_hops: bool,
    effects: Vec<Effect>,
    flow_cache: std::collections::HashMap<FlowKey, CachedFlow, FxBuild>,
    /// The IPv6 path's flow cache (see [`CachedFlow6`]).
    flow_cache6: std::collections::HashMap<FlowKey6, CachedFlow6, FxBuild>,
    stats: FabricStats,
    flow_logs: crate::flowlog::FlowLogs,
    /// Bytes and packets each interface sent into and received from the fabric,
    /// indexed by stable number (what CloudWatch's `AWS/EC2` Network* metrics read).
    eni_counters: Vec<InterfaceCounters>,
    /// What each NAT gateway forwarded, by stable number (`AWS/NATGateway` metrics).
    nat_counters: Vec<NatCounters>,
    /// The ICMP time exceeded the last `process` produced, for its sender's port.
    reply: Option<(Port, Vec<u8>)>,
    /// The rate limit of those answers: tokens left in the current second.
    icmp_tokens: u32,
    icmp_second: i64,
}

/// How many ICMP time exceeded messages one fabric sends per second (RFC 1812
/// §4.3.2.8 asks routers to limit ICMP errors; Linux's default is about 1000/s).
const ICMP_ERRORS_PER_SECOND: u32 = 1000;

/// What one NAT gateway forwarded, as CloudWatch's `AWS/NATGateway` metrics count it.
/// Bytes are whole IPv4 packets; a packet toward the destination is also one "in from
/// source" (the gateway forwards what it accepts), so only one side is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    /// Sent out through the gateway to the destination (`BytesOutToDestination`,
    /// `PacketsOutToDestination`; equal to `BytesInFromSource` here).
    pub bytes_out_to_destination: u64,
    pub packets_out_to_destination: u64,
    /// Received back from the destination (`BytesInFromDestination`; equal to
    /// `BytesOutToSource` here).
    pub bytes_in_from_destination: u64,
    pub packets_in_from_destination: u64,
    /// New TCP mappings (`ConnectionEstablishedCount`).
    pub connections_established: u64,
    /// New flows refused because no source port was free toward their destination
    /// (`ErrorPortAllocation`).
    pub error_port_allocation: u64,
    /// TCP mappings held now (`ActiveConnectionCount`); filled in by
    /// [`Fabric::nat_counters`].
    pub active_tcp: u64,
}

/// Cumulative traffic of one interface since the fabric started: packets the
/// interface sent (`out`, whatever their fate) and packets delivered to it (`in`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub bytes_in: u64,
    pub packets_in: u64,
    pub bytes_out: u64,
    pub packets_out: u64,
}

/// The headers that decide a packet's fate, for the flow cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    /// Dense index of the sending interface, or `u32::MAX` for the internet.
    ingress: u32,
    proto: u8,
    icmp: u16,
    sport: u16,
    dport: u16,
    src: u32,
    dst: u32,
}

/// A memoised delivery.
///
/// The walk is a pure function of the topology, the packet's headers and the
/// liveness of the connection-tracking entries and NAT mappings it found.
/// A walk that used nothing else (every security group passed by tracked
/// state, no new NAT mapping) is remembered with those slots; replaying it is
/// exact as long as the topology is the same (the cache is cleared on every
/// swap) and each slot still holds the same live entry. `explain` never uses
/// it, and hop recording bypasses it.
#[derive(Clone, Debug)]
struct CachedFlow {
    port: Port,
    out: Rewrite,
    gateways: u8,
    conns: [(u32, ConnKey, Direction); 2],
    n_conns: u8,
    nats: [(u32, OutKey); 2],
    n_nats: u8,
    /// Dense index of the interface the packet is delivered to (`u32::MAX` for any
    /// other port), so replays count its traffic without hashing its id.
    to: u32,
    /// The flow-log records this flow feeds, fixed when memoised (the cache is
    /// cleared when the logged interfaces change): [`LOG_EGRESS`] for the sender's,
    /// [`LOG_INGRESS`] for the receiver's.
    log: u8,
    /// What replays of this decision counted for those records since the last
    /// flush ([`Fabric::flush_cached_flow_logs`]). Both records see the same
    /// packets, bytes and TCP flags (translation changes addresses and ports only).
    logged: crate::flowlog::FlowCounters,
}

/// [`CachedFlow::log`]: the sending interface has a flow log (egress record).
const LOG_EGRESS: u8 = 1;
/// [`CachedFlow::log`]: the receiving interface has a flow log (ingress record).
const LOG_INGRESS: u8 = 2;

/// Source, destination, source port, destination port after the walk.
type Rewrite = (u32, u32, u16, u16);

/// A memoised decision that still holds: where the packet goes, its rewrite, the
/// gateways crossed and the NAT mappings it used.
struct CacheHit {
    port: Port,
    out: Rewrite,
    gateways: u8,
    nats: [(u32, OutKey); 2],
    n_nats: u8,
    to: u32,
}

/// The IPv6 path's flow-cache key: the sending interface's dense index
/// (`u32::MAX` for the internet) and the packet's fields the walk reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey6 {
    ingress: u32,
    p: crate::ipv6::Pkt6,
}

/// A memoised IPv6 delivery.
///
/// The IPv6 walk is a pure function of the topology, the packet's fields, its hop
/// limit (only through the gateways it crosses) and the liveness of the two
/// connection-table entries the packet could belong to
/// ([`crate::ipv6::Conntrack6::liveness`]). A decision is replayed only while the
/// topology is the one it was taken on (the cache is cleared on every swap, like the
/// IPv4 one: a rule change reaches established flows at once, except where AWS keeps
/// them, which the walk itself decides from the tracked connection), the liveness is
/// the same, and the hop limit outlives the gateways. Drops are never memoised.
#[derive(Clone, Debug)]
struct CachedFlow6 {
    port: Port,
    /// Dense index of the receiving interface (`u32::MAX`: the internet).
    to: u32,
    gateways: u8,
    /// [`crate::ipv6::Conntrack6::liveness`] when the decision was taken.
    live: u8,
    /// Whether the decision tracks the connection (`commit6`'s `track`).
    track: bool,
    /// [`LOG_EGRESS`] / [`LOG_INGRESS`], as for [`CachedFlow::log`].
    log: u8,
    /// What replays counted for those records since the last flush.
    logged: crate::flowlog::FlowCounters,
}

const FLOW_CACHE_CAPACITY: usize = 1 << 16;

/// Longest chain of gateways a packet may cross before it is called a loop.
const MAX_GATEWAYS: u8 = 8;

impl Fabric {
    /// A fabric over `topology` with AWS's defaults (seed 0).
    pub fn new(topology: Arc<Topology>) -> Self {
        Self::with_config(topology, FabricConfig::default())
    }

    /// A fabric with an explicit seed, NAT port range and timeouts.
    pub fn with_config(topology: Arc<Topology>, config: FabricConfig) -> Self {
        let mut f = Fabric {
            topology: Arc::new(Topology::empty()),
            config,
            conntrack: Conntrack::default(),
            conntrack6: Default::default(),
            nat: NatTable::default(),
            stable_ids: Default::default(),
            eni_stable: Vec::new(),
            nat_stable: Vec::new(),
            record_hops: false,
            effects: Vec::with_capacity(8),
            flow_cache: Default::default(),
            flow_cache6: Default::default(),
            stats: FabricStats::default(),
            flow_logs: Default::default(),
            eni_counters: Vec::new(),
            nat_counters: Vec::new(),
            reply: None,
            icmp_tokens: 0,
            icmp_second: i64::MIN,
        };
        f.set_topology(topology);
        f
    }

    /// Swaps in a new snapshot. Tracked connections and NAT mappings survive:
    /// AWS applies rule changes to new flows at once, but a flow already
    /// tracked keeps passing until it idles out.
    pub fn set_topology(&mut self, topology: Arc<Topology>) {
        let stable = |id: &ResId, ids: &mut std::collections::HashMap<ResId, u32, FxBuild>| {
            let next = ids.len() as u32;
            *ids.entry(id.clone()).or_insert(next)
        };
        self.eni_stable = topology
            .c
            .enis
            .iter()
            .map(|e| stable(&e.id, &mut self.stable_ids))
            .collect();
        self.nat_stable = topology
            .c
            .nats
            .iter()
            .map(|n| stable(&n.id, &mut self.stable_ids))
            .collect();
        // The cache's flow-log counts use the old topology's dense indexes.
        self.flush_cached_flow_logs();
        self.flow_logs
            .reindex(topology.c.enis.iter().map(|e| &e.id));
        self.eni_counters
            .resize(self.stable_ids.len(), InterfaceCounters::default());
        self.nat_counters
            .resize(self.stable_ids.len(), NatCounters::default());
        self.topology = topology;
        // Memoised decisions belong to the old rules.
        self.flow_cache.clear();
        self.flow_cache6.clear();
    }

    /// The interfaces that have a flow log (VPC Flow Logs resolved to interfaces by
    /// the caller). Kept across topology swaps.
    pub fn set_flow_logged(&mut self, enis: impl IntoIterator<Item = ResId>) {
        self.flush_cached_flow_logs();
        self.flow_logs.set_wanted(enis.into_iter().collect());
        let topology = self.topology.clone();
        self.flow_logs
            .reindex(topology.c.enis.iter().map(|e| &e.id));
        // Memoised decisions carry which of their interfaces are logged.
        self.flow_cache.clear();
        self.flow_cache6.clear();
    }

    /// Takes the flow records counted since the last call (see [`crate::flowlog`]).
    pub fn drain_flow_records(&mut self) -> crate::flowlog::FlowDrain {
        self.flush_cached_flow_logs();
        self.flow_logs.drain()
    }

    /// Moves what replays of memoised decisions counted for the flow logs into the
    /// record map (and zeroes it in the cache). Called before the records are drained
    /// and before the cache is cleared or its dense indexes change meaning: the one
    /// walk over the cache per flush is what keeps the per-packet cost of a logged
    /// established flow at three adds.
    fn flush_cached_flow_logs(&mut self) {
        use crate::flowlog::FlowRecordKey;
        if !self.flow_logs.any {
            return;
        }
        let enis = &self.topology.c.enis;
        for (k, e) in self.flow_cache.iter_mut() {
            if e.logged.packets == 0 {
                continue;
            }
            let n = std::mem::take(&mut e.logged);
            if e.log & LOG_EGRESS != 0
                && let Some(eni) = enis.get(k.ingress as usize)
            {
                let key = FlowRecordKey {
                    src: ip(k.src).into(),
                    dst: ip(k.dst).into(),
                    sport: k.sport,
                    dport: k.dport,
                    proto: k.proto,
                    egress: true,
                    accept: true,
                };
                self.flow_logs.add(k.ingress, &eni.id, key, n);
            }
            if e.log & LOG_INGRESS != 0
                && let Some(eni) = enis.get(e.to as usize)
            {
                let (src, dst, sport, dport) = e.out;
                let key = FlowRecordKey {
                    src: ip(src).into(),
                    dst: ip(dst).into(),
                    sport,
                    dport,
                    proto: k.proto,
                    egress: false,
                    accept: true,
                };
                self.flow_logs.add(e.to, &eni.id, key, n);
            }
        }
        // The IPv6 walk rewrites nothing: both records see the packet's own fields.
        for (k, e) in self.flow_cache6.iter_mut() {
            if e.logged.packets == 0 {
                continue;
            }
            let n = std::mem::take(&mut e.logged);
            let key = |egress: bool| FlowRecordKey {
                src: k.p.src.into(),
                dst: k.p.dst.into(),
                sport: k.p.sport,
                dport: k.p.dport,
                proto: k.p.proto,
                egress,
                accept: true,
            };
            if e.log & LOG_EGRESS != 0
                && let Some(eni) = enis.get(k.ingress as usize)
            {
                self.flow_logs.add(k.ingress, &eni.id, key(true), n);
            }
            if e.log & LOG_INGRESS != 0
                && let Some(eni) = enis.get(e.to as usize)
            {
                self.flow_logs.add(e.to, &eni.id, key(false), n);
            }
        }
    }

    /// The cumulative counters of every interface the fabric has known (interfaces
    /// that left the topology keep their last values).
    pub fn interface_counters(&self) -> Vec<(ResId, InterfaceCounters)> {
        let mut out: Vec<(ResId, InterfaceCounters)> = self
            .stable_ids
            .iter()
            .filter_map(|(id, &n)| Some((id.clone(), *self.eni_counters.get(n as usize)?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every NAT gateway's counters since it was first seen, sorted by id, with
    /// `active_tcp` filled in from the mappings held now.
    pub fn nat_counters(&self) -> Vec<(ResId, NatCounters)> {
        let active = self.nat.tcp_mappings();
        let mut out: Vec<(ResId, NatCounters)> = self
            .topology
            .c
            .nats
            .iter()
            .filter_map(|n| {
                let s = *self.stable_ids.get(&n.id)?;
                let mut c = *self.nat_counters.get(s as usize)?;
                c.active_tcp = active.get(&s).copied().unwrap_or(0);
                Some((n.id.clone(), c))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Counts a delivered packet at a NAT gateway it crossed (`key`: the mapping it
    /// used, `new` when this packet created it; `sent`: the packet as it entered the
    /// fabric). A packet whose source is the mapping's private side went out to the
    /// destination; any other is a reply coming back to the source.
    fn count_nat(&mut self, key: &OutKey, new: bool, sent: &Pkt, len: usize) {
        let len = len as u64;
        let Some(c) = self.nat_counters.get_mut(key.nat as usize) else {
            return;
        };
        if sent.src == key.src && sent.sport == key.sport {
            c.bytes_out_to_destination += len;
            c.packets_out_to_destination += 1;
            if new && key.proto == 6 {
                c.connections_established += 1;
            }
        } else {
            c.bytes_in_from_destination += len;
            c.packets_in_from_destination += 1;
        }
    }

    /// Counts one decided packet: the sending interface (dense index `from`) sent it,
    /// and the receiving interface got it if it was delivered to one.
    /// Returns the receiving interface's dense index, for the flow logs.
    fn count_interfaces(
        &mut self,
        from: Option<u32>,
        outcome: &Outcome,
        len: usize,
    ) -> Option<u32> {
        let to = match outcome {
            Outcome::Deliver(Port::Eni(id)) => self.topology.c.eni_ix.get(id).copied(),
            _ => None,
        };
        self.count_interfaces_ix(from, to, len);
        to
    }

    /// [`Self::count_interfaces`] with the receiving interface's dense index known.
    #[inline]
    fn count_interfaces_ix(&mut self, from: Option<u32>, to: Option<u32>, len: usize) {
        let len = len as u64;
        if let Some(ix) = from
            && let Some(&n) = self.eni_stable.get(ix as usize)
            && let Some(c) = self.eni_counters.get_mut(n as usize)
        {
            c.bytes_out += len;
            c.packets_out += 1;
        }
        if let Some(ix) = to
            && let Some(&n) = self.eni_stable.get(ix as usize)
            && let Some(c) = self.eni_counters.get_mut(n as usize)
        {
            c.bytes_in += len;
            c.packets_in += 1;
        }
    }

    /// Counts one decided packet for the flow logs of the interfaces it crossed: the
    /// sender's egress record and the receiver's ingress record, each ACCEPT or REJECT
    /// from the verdict itself.
    ///
    /// `from` and `to` are the dense indexes of the sending interface and of the
    /// interface the packet was delivered to, which the caller already looked up for
    /// the interface counters: the per-packet cost is then the two record updates, no
    /// interface-id hashing.
    fn log_flow(
        &mut self,
        from: Option<u32>,
        to: Option<u32>,
        sent: &Pkt,
        seen: &Pkt,
        outcome: &Outcome,
        len: usize,
    ) {
        use crate::flowlog::FlowRecordKey;
        // AWS does not log traffic to the Amazon DNS server or instance metadata.
        if matches!(
            outcome,
            Outcome::Deliver(Port::Resolver(_) | Port::Metadata(_))
        ) {
            return;
        }
        let c = &self.topology.c;
        if let Some(ix) = from {
            let id = &c.enis[ix as usize].id;
            let subnet = &c.subnets[c.enis[ix as usize].subnet as usize].id;
            let reject = match outcome {
                Outcome::Drop(DropReason::SecurityGroupNoMatch { eni, direction })
                | Outcome::Drop(DropReason::SourceDestCheck { eni, direction, .. }) => {
                    eni == id && *direction == Direction::Outbound
                }
                Outcome::Drop(DropReason::NaclDeny {
                    subnet: s,
                    direction: Direction::Outbound,
                    ..
                }) => s == subnet,
                _ => false,
            };
            let key = FlowRecordKey {
                src: ip(sent.src).into(),
                dst: ip(sent.dst).into(),
                sport: sent.sport,
                dport: sent.dport,
                proto: sent.proto,
                egress: true,
                accept: !reject,
            };
            self.flow_logs.count(ix, id, key, len, sent.flags);
        }
        let receiver = match outcome {
            Outcome::Deliver(Port::Eni(_)) => to.map(|ix| (ix, true)),
            Outcome::Drop(DropReason::SecurityGroupNoMatch {
                eni,
                direction: Direction::Inbound,
            }) => c.eni_ix.get(eni).map(|&ix| (ix, false)),
            Outcome::Drop(DropReason::NaclDeny {
                subnet,
                direction: Direction::Inbound,
                ..
            }) => c
                .subnets
                .iter()
                .find(|s| &s.id == subnet)
                .and_then(|s| c.eni_by_ip.get(&(s.vpc, seen.dst)))
                .map(|&ix| (ix, false)),
            _ => None,
        };
        if let Some((ix, accept)) = receiver {
            let id = &c.enis[ix as usize].id;
            let key = FlowRecordKey {
                src: ip(seen.src).into(),
                dst: ip(seen.dst).into(),
                sport: seen.sport,
                dport: seen.dport,
                proto: seen.proto,
                egress: false,
                accept,
            };
            self.flow_logs.count(ix, id, key, len, seen.flags);
        }
    }

    /// [`Self::log_flow`] for an IPv6 packet (`p`, parsed from `bytes`): the same
    /// records, with IPv6 addresses. The IPv6 walk rewrites nothing, so the sender's
    /// and the receiver's records see the same addresses and ports.
    fn log_flow6(
        &mut self,
        from: Option<u32>,
        to: Option<u32>,
        p: &crate::ipv6::Pkt6,
        bytes: &[u8],
        outcome: &Outcome,
    ) {
        use crate::flowlog::FlowRecordKey;
        let flags = if p.proto == 6 {
            bytes.get(40 + 13).copied().unwrap_or(0)
        } else {
            0
        };
        let len = bytes.len();
        let c = &self.topology.c;
        let key = |egress: bool, accept: bool| FlowRecordKey {
            src: p.src.into(),
            dst: p.dst.into(),
            sport: p.sport,
            dport: p.dport,
            proto: p.proto,
            egress,
            accept,
        };
        if let Some(ix) = from {
            let id = &c.enis[ix as usize].id;
            let subnet = &c.subnets[c.enis[ix as usize].subnet as usize].id;
            let reject = match outcome {
                Outcome::Drop(DropReason::SecurityGroupNoMatch {
                    eni,
                    direction: Direction::Outbound,
                })
                | Outcome::Drop(DropReason::SourceDestCheckV6 { eni, .. }) => eni == id,
                Outcome::Drop(DropReason::NaclDeny {
                    subnet: s,
                    direction: Direction::Outbound,
                    ..
                }) => s == subnet,
                _ => false,
            };
            self.flow_logs.count(ix, id, key(true, !reject), len, flags);
        }
        let v6 = &self.topology.spec.v6;
        let receiver = match outcome {
            Outcome::Deliver(Port::Eni(_)) => to.map(|ix| (ix, true)),
            Outcome::Drop(DropReason::SecurityGroupNoMatch {
                eni,
                direction: Direction::Inbound,
            }) => c.eni_ix.get(eni).map(|&ix| (ix, false)),
            // The interface of that subnet that holds the destination address.
            Outcome::Drop(DropReason::NaclDeny {
                subnet,
                direction: Direction::Inbound,
                ..
            }) => v6
                .eni_addrs
                .iter()
                .filter(|(_, addrs)| addrs.contains(&p.dst))
                .filter_map(|(id, _)| c.eni_ix.get(id).copied())
                .find(|&ix| &c.subnets[c.enis[ix as usize].subnet as usize].id == subnet)
                .map(|ix| (ix, false)),
            _ => None,
        };
        if let Some((ix, accept)) = receiver {
            let id = &c.enis[ix as usize].id;
            self.flow_logs.count(ix, id, key(false, accept), len, flags);
        }
    }

    /// The snapshot in force.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    pub fn config(&self) -> &FabricConfig {
        &self.config
    }

    /// Whether `process` records the hops of each packet (off by default: the
    /// established-flow path then allocates nothing). `explain` always does.
    pub fn set_record_hops(&mut self, on: bool) {
        self.record_hops = on;
    }

    pub fn stats(&self) -> FabricStats {
        FabricStats {
            tracked_connections: self.conntrack.len(),
            nat_mappings: self.nat.len(),
            ..self.stats
        }
    }

    /// Decides one raw IPv4 packet entering at `ingress`, rewrites it in place
    /// (IGW/NAT translation, TTL) and says where it goes.
    pub fn process(&mut self, now: Instant, ingress: &Port, packet: &mut Vec<u8>) -> Verdict {
        // An answer nobody took belongs to an older packet.
        self.reply = None;
        // IPv6 takes its own path (`ipv6.rs`): one byte test on the IPv4 fast path.
        if packet.first().is_some_and(|b| b >> 4 == 6) {
            return self.process6(now, ingress, packet);
        }
        let (pkt, layout) = match parse(packet) {
            Ok(x) => x,
            Err(m) => {
                self.stats.dropped += 1;
                return Verdict {
                    hops: Vec::new(),
                    outcome: Outcome::Drop(DropReason::Malformed(m)),
                };
            }
        };
        // Established flows: replay the memoised decision when every piece
        // of state it relied on is still alive (see `FlowCache`).
        let cache_key = if self.record_hops || pkt.inner.is_some() {
            None
        } else {
            self.flow_key(ingress, &pkt)
        };
        if let Some(key) = &cache_key
            && let Some(hit) = self.cache_hit(now, key, &pkt, packet.len())
        {
            let mut new = pkt;
            (new.src, new.dst, new.sport, new.dport) = hit.out;
            new.ttl -= hit.gateways;
            write_back(packet, &layout, &pkt, &new);
            self.stats.delivered += 1;
            for (_, k) in &hit.nats[..hit.n_nats as usize] {
                self.count_nat(k, false, &pkt, packet.len());
            }
            let outcome = Outcome::Deliver(hit.port);
            let from = (key.ingress != u32::MAX).then_some(key.ingress);
            let to = (hit.to != u32::MAX).then_some(hit.to);
            // Flow logs were counted in the cache entry by `cache_hit`.
            self.count_interfaces_ix(from, to, packet.len());
            return Verdict {
                hops: Vec::new(),
                outcome,
            };
        }
        let mut hops = Vec::new();
        let mut effects = std::mem::take(&mut self.effects);
        effects.clear();
        let mut new = pkt;
        let (outcome, cacheable, gateways, answer_from) = {
            let mut w = Walk {
                c: &self.topology.c,
                fabric: self,
                now,
                hops: if self.record_hops {
                    Some(&mut hops)
                } else {
                    None
                },
                effects: &mut effects,
                gateways: 0,
                cacheable: true,
                answer_from: 0,
            };
            let o = w.start(ingress, &mut new);
            (o, w.cacheable, w.gateways, w.answer_from)
        };
        match &outcome {
            Outcome::Deliver(port) => {
                self.commit(now, &effects);
                write_back(packet, &layout, &pkt, &new);
                self.stats.delivered += 1;
                for e in &effects {
                    match e {
                        Effect::NatTouch { key, .. } => {
                            self.count_nat(key, false, &pkt, packet.len())
                        }
                        Effect::NatNew { key, .. } => self.count_nat(key, true, &pkt, packet.len()),
                        _ => {}
                    }
                }
                if cacheable && let Some(key) = cache_key {
                    self.cache_insert(key, port, &new, gateways, &effects);
                }
            }
            Outcome::Drop(reason) => {
                self.stats.dropped += 1;
                if let DropReason::TtlExceeded { .. } = reason {
                    self.time_exceeded(now, ingress, &pkt, answer_from, packet);
                }
                if let DropReason::NatPortsExhausted { nat, .. } = reason
                    && let Some(&s) = self.stable_ids.get(nat)
                    && let Some(c) = self.nat_counters.get_mut(s as usize)
                {
                    c.error_port_allocation += 1;
                }
            }
        }
        self.effects = effects;
        let from = match (&cache_key, ingress) {
            (Some(k), _) => (k.ingress != u32::MAX).then_some(k.ingress),
            (None, Port::Eni(id)) => self.topology.c.eni_ix.get(id).copied(),
            (None, _) => None,
        };
        let to = self.count_interfaces(from, &outcome, packet.len());
        if self.flow_logs.any && !is_service_traffic(ingress, &outcome) {
            self.log_flow(from, to, &pkt, &new, &outcome, packet.len());
        }
        Verdict { hops, outcome }
    }

    /// The IPv6 path of [`process`](Self::process) (`ipv6.rs` decides): an established
    /// flow replays its memoised decision (see [`CachedFlow6`]); any other packet takes
    /// the walk, whose delivery is then memoised. The hop limit loses one per gateway
    /// crossed, and a packet whose hop limit runs out at one is answered with an
    /// ICMPv6 time exceeded.
    fn process6(&mut self, now: Instant, ingress: &Port, packet: &mut [u8]) -> Verdict {
        let from = match ingress {
            Port::Eni(id) => self.topology.c.eni_ix.get(id).copied(),
            _ => None,
        };
        let len = packet.len();
        let p = match crate::ipv6::parse6(packet) {
            Ok(p) => p,
            Err(m) => {
                self.stats.dropped += 1;
                let outcome = Outcome::Drop(DropReason::Malformed(m));
                self.count_interfaces(from, &outcome, len);
                return Verdict {
                    hops: Vec::new(),
                    outcome,
                };
            }
        };
        let hop_limit = packet[7];
        let flags = if p.proto == 6 {
            packet.get(40 + 13).copied().unwrap_or(0)
        } else {
            0
        };
        let live = self.conntrack6.liveness(now, &p);
        // Hop recording bypasses the cache, as on the IPv4 path; so does a port that is
        // neither a known interface nor the internet.
        let key = match (ingress, from) {
            _ if self.record_hops => None,
            (Port::Eni(_), Some(ix)) => Some(FlowKey6 { ingress: ix, p }),
            (Port::Internet, _) => Some(FlowKey6 {
                ingress: u32::MAX,
                p,
            }),
            _ => None,
        };
        if let Some(k) = &key
            && let Some(hit) = self.flow_cache6.get_mut(k)
            && hit.live == live
            && (hit.gateways == 0 || hop_limit > hit.gateways)
        {
            if hit.log != 0 {
                hit.logged.packets += 1;
                hit.logged.bytes += len as u64;
                hit.logged.tcp_flags |= flags;
            }
            let port = hit.port.clone();
            let to = (hit.to != u32::MAX).then_some(hit.to);
            packet[7] = hop_limit - hit.gateways;
            // `commit6` on the same decision: the entry the walk found alive (or the
            // new one the decision starts) is refreshed.
            if hit.track || live != 0 {
                self.conntrack6.touch(now, &p);
            }
            self.stats.delivered += 1;
            self.count_interfaces_ix(from, to, len);
            return Verdict {
                hops: Vec::new(),
                outcome: Outcome::Deliver(port),
            };
        }
        let mut hops = Vec::new();
        let d = crate::ipv6::decide6(
            &self.topology,
            &self.conntrack6,
            now,
            ingress,
            &p,
            hop_limit,
            self.record_hops.then_some(&mut hops),
        );
        let to = self.count_interfaces(from, &d.outcome, len);
        match &d.outcome {
            Outcome::Deliver(port) => {
                crate::ipv6::commit6(&mut self.conntrack6, now, &p, d.track);
                packet[7] = hop_limit - d.gateways;
                self.stats.delivered += 1;
                // Only an established flow's decision is memoised, as on the IPv4
                // path: a new flow's first packet would never be replayed (its next
                // packet finds the connection it started alive, another liveness).
                if let Some(k) = key
                    && live != 0
                    && matches!(port, Port::Eni(_) | Port::Internet)
                {
                    self.cache_insert6(k, port, to, live, &d);
                }
            }
            Outcome::Drop(reason) => {
                self.stats.dropped += 1;
                if let DropReason::TtlExceeded { .. } = reason {
                    self.time_exceeded6(now, ingress, &p, packet);
                }
            }
        }
        if self.flow_logs.any && !is_service_traffic(ingress, &d.outcome) {
            self.log_flow6(from, to, &p, packet, &d.outcome);
        }
        Verdict {
            hops,
            outcome: d.outcome,
        }
    }

    /// Memoises an IPv6 delivery (see [`CachedFlow6`]), noting which flow logs its
    /// replays feed: the same records `log_flow6` counts for a delivered packet.
    fn cache_insert6(
        &mut self,
        key: FlowKey6,
        port: &Port,
        to: Option<u32>,
        live: u8,
        d: &crate::ipv6::Decision6,
    ) {
        let mut log = 0;
        if self.flow_logs.any {
            if key.ingress != u32::MAX && self.flow_logs.is_logged(key.ingress) {
                log |= LOG_EGRESS;
            }
            if to.is_some_and(|ix| self.flow_logs.is_logged(ix)) {
                log |= LOG_INGRESS;
            }
        }
        if self.flow_cache6.len() >= FLOW_CACHE_CAPACITY {
            self.flush_cached_flow_logs();
            self.flow_cache6.clear();
        }
        self.flow_cache6.insert(
            key,
            CachedFlow6 {
                port: port.clone(),
                to: to.unwrap_or(u32::MAX),
                gateways: d.gateways,
                live,
                track: d.track,
                log,
                logged: Default::default(),
            },
        );
    }

    /// Whether the rate limit lets one more ICMP error out at `now`: at most
    /// [`ICMP_ERRORS_PER_SECOND`] a second, IPv4 and IPv6 together.
    fn icmp_error_allowed(&mut self, now: Instant) -> bool {
        let second = now.total_millis().div_euclid(1000);
        if second != self.icmp_second {
            self.icmp_second = second;
            self.icmp_tokens = ICMP_ERRORS_PER_SECOND;
        }
        if self.icmp_tokens == 0 {
            return false;
        }
        self.icmp_tokens -= 1;
        true
    }

    /// The ICMPv6 time exceeded (RFC 4443 §3.3: type 3, code 0, "hop limit exceeded
    /// in transit") for `original`, whose hop limit ran out at a gateway: from the
    /// router that forwarded it there (the sender's subnet router, the first address
    /// after its /64's reserved base, or the internet's router for a packet from the
    /// internet), back at the port it came from. Never for an ICMPv6 error (RFC 4443
    /// §2.4 (e)), and within the same rate limit as IPv4's answers.
    fn time_exceeded6(
        &mut self,
        now: Instant,
        ingress: &Port,
        p: &crate::ipv6::Pkt6,
        original: &[u8],
    ) {
        if p.icmp.is_some_and(|(ty, _)| ty < 128) {
            return;
        }
        let from = match ingress {
            Port::Eni(e) => {
                let spec = &self.topology.spec;
                spec.network_interfaces
                    .get(e)
                    .and_then(|x| spec.v6.subnets.get(&x.subnet))
                    .map(|n| std::net::Ipv6Addr::from(u128::from(n.network()) + 1))
            }
            Port::Internet => Some(crate::internet::INTERNET_ROUTER_ADDR6),
            _ => None,
        };
        let Some(from) = from else {
            return;
        };
        if !self.icmp_error_allowed(now) {
            return;
        }
        let reply = crate::ipv6::icmpv6_error(from, 3, 0, original);
        self.reply = Some((ingress.clone(), reply));
    }

    /// The ICMP time exceeded for `original`, whose TTL ran out on a walk whose
    /// last forwarding hop was `from` (0: none that answers): addressed to the
    /// packet's sender as it sent it, back at the port it came from. Never for
    /// an ICMP error (RFC 1122 §3.2.2), and at most
    /// [`ICMP_ERRORS_PER_SECOND`] a second.
    fn time_exceeded(&mut self, now: Instant, ingress: &Port, p: &Pkt, from: u32, original: &[u8]) {
        if from == 0
            || p.icmp.is_some_and(|(ty, _)| is_icmp_error(ty))
            || !self.icmp_error_allowed(now)
        {
            return;
        }
        let reply = crate::flow::icmp_error(ip(from), 11, 0, original);
        self.reply = Some((ingress.clone(), reply));
    }

    /// Takes the packet the fabric itself sends back after the last
    /// [`process`](Self::process) (an ICMP time exceeded), with the port to
    /// hand it to: the port the dropped packet came from.
    pub fn take_reply(&mut self) -> Option<(Port, Vec<u8>)> {
        self.reply.take()
    }

    fn flow_key(&self, ingress: &Port, p: &Pkt) -> Option<FlowKey> {
        let ingress = match ingress {
            Port::Eni(id) => *self.topology.c.eni_ix.get(id)?,
            Port::Internet => u32::MAX,
            _ => return None,
        };
        Some(FlowKey {
            ingress,
            proto: p.proto,
            icmp: p
                .icmp
                .map_or(u16::MAX, |(t, c)| u16::from(t) << 8 | u16::from(c)),
            sport: p.sport,
            dport: p.dport,
            src: p.src,
            dst: p.dst,
        })
    }

    /// A memoised decision whose tracked connections and NAT mappings are
    /// all still alive: refresh them and return (port, rewritten addresses
    /// and ports, gateways crossed).
    ///
    /// A replay also counts the packet (`len` bytes) for the flow logs its entry feeds.
    fn cache_hit(&mut self, now: Instant, key: &FlowKey, p: &Pkt, len: usize) -> Option<CacheHit> {
        let t = self.config.timeouts;
        let hit = self.flow_cache.get_mut(key)?;
        // A TTL that would run out at one of the gateways takes the full walk.
        if p.ttl <= hit.gateways {
            return None;
        }
        let conns = &hit.conns[..hit.n_conns as usize];
        let nats = &hit.nats[..hit.n_nats as usize];
        if !conns
            .iter()
            .all(|(slot, k, _)| self.conntrack.is_live(*slot, k, now, &t))
            || !nats
                .iter()
                .all(|(slot, k)| self.nat.is_live(*slot, k, now, t.nat_idle))
        {
            return None;
        }
        for (slot, _, dir) in conns {
            self.conntrack.touch(*slot, now, *dir, p.flags);
        }
        for (slot, _) in nats {
            self.nat.touch(*slot, now);
        }
        if hit.log != 0 {
            hit.logged.packets += 1;
            hit.logged.bytes += len as u64;
            hit.logged.tcp_flags |= p.flags;
        }
        Some(CacheHit {
            port: hit.port.clone(),
            out: hit.out,
            gateways: hit.gateways,
            nats: hit.nats,
            n_nats: hit.n_nats,
            to: hit.to,
        })
    }

    fn cache_insert(
        &mut self,
        key: FlowKey,
        port: &Port,
        new: &Pkt,
        gateways: u8,
        effects: &[Effect],
    ) {
        let to = match port {
            Port::Eni(id) => self.topology.c.eni_ix.get(id).copied(),
            _ => None,
        };
        // The same choice as `log_flow` makes for a delivered packet: traffic to the
        // resolver and the metadata service is not logged.
        let mut log = 0;
        if self.flow_logs.any && !matches!(port, Port::Resolver(_) | Port::Metadata(_)) {
            if key.ingress != u32::MAX && self.flow_logs.is_logged(key.ingress) {
                log |= LOG_EGRESS;
            }
            if to.is_some_and(|ix| self.flow_logs.is_logged(ix)) {
                log |= LOG_INGRESS;
            }
        }
        let mut entry = CachedFlow {
            port: port.clone(),
            out: (new.src, new.dst, new.sport, new.dport),
            gateways,
            conns: [(0, ConnKey::default(), Direction::Inbound); 2],
            n_conns: 0,
            nats: [(0, OutKey::default()); 2],
            n_nats: 0,
            to: to.unwrap_or(u32::MAX),
            log,
            logged: Default::default(),
        };
        for e in effects {
            match *e {
                Effect::ConnTouch { slot, key, dir, .. } if entry.n_conns < 2 => {
                    entry.conns[entry.n_conns as usize] = (slot, key, dir);
                    entry.n_conns += 1;
                }
                Effect::NatTouch { slot, key } if entry.n_nats < 2 => {
                    entry.nats[entry.n_nats as usize] = (slot, key);
                    entry.n_nats += 1;
                }
                // Anything else (or more state than fits) is not memoised.
                _ => return,
            }
        }
        if self.flow_cache.len() >= FLOW_CACHE_CAPACITY {
            self.flush_cached_flow_logs();
            self.flow_cache.clear();
            self.flow_cache6.clear();
        }
        self.flow_cache.insert(key, entry);
    }

    /// The same decision path on a described flow, changing no state: the
    /// answer to "why can't A reach B?". A flow that matches a tracked
    /// connection or NAT mapping is answered as the next packet would be.
    pub fn explain(&self, now: Instant, ingress: &Port, flow: &Flow) -> Verdict {
        let mut hops = Vec::new();
        let mut effects = Vec::new();
        let mut p = Pkt::from_flow(flow);
        let outcome = Walk {
            c: &self.topology.c,
            fabric: self,
            now,
            hops: Some(&mut hops),
            effects: &mut effects,
            gateways: 0,
            cacheable: false,
            answer_from: 0,
        }
        .start(ingress, &mut p);
        Verdict { hops, outcome }
    }

    /// [`Fabric::explain`] for an IPv6 packet: the same decision `process` would take,
    /// with its hops, changing nothing.
    pub fn explain6(&self, now: Instant, ingress: &Port, p: &crate::ipv6::Pkt6) -> Verdict {
        let mut hops = Vec::new();
        let d = crate::ipv6::decide6(
            &self.topology,
            &self.conntrack6,
            now,
            ingress,
            p,
            crate::ipv6::EXPLAIN_HOP_LIMIT,
            Some(&mut hops),
        );
        Verdict {
            hops,
            outcome: d.outcome,
        }
    }

    /// The forward path of `flow` and, when it is delivered, the return path
    /// of its reply (ports and addresses swapped, SYN answered by SYN-ACK,
    /// echo request by echo reply) sent back from where the flow arrived —
    /// as if the flow had really been sent: the reply sees the connection
    /// tracking and NAT mapping the forward packet creates. Nothing changes
    /// in this fabric (the walk runs on a copy of its state), so this is the
    /// "forward and return path" of a reachability analysis, and it shows the
    /// classic stateless trap: a reply dropped by a network ACL.
    pub fn explain_round_trip(
        &self,
        now: Instant,
        ingress: &Port,
        flow: &Flow,
    ) -> (Verdict, Option<Verdict>) {
        let mut scratch = self.clone();
        scratch.record_hops = true;
        let mut bytes = flow.to_packet(&[]);
        let forward = scratch.process(now, ingress, &mut bytes);
        let Outcome::Deliver(at) = &forward.outcome else {
            return (forward, None);
        };
        let Ok(delivered) = crate::flow::parse_flow(&bytes) else {
            return (forward, None);
        };
        let mut reply = delivered.reply().to_packet(&[]);
        let back = scratch.process(now, at, &mut reply);
        (forward, Some(back))
    }

    /// [`Fabric::explain_round_trip`] for an IPv6 packet: its forward path and, when it
    /// is delivered, the path of its reply sent back from where it arrived, seeing the
    /// connection the forward packet would have tracked (security groups, the
    /// egress-only internet gateway). Nothing changes in this fabric. It shows the
    /// asymmetric path of a connection that comes in through the internet gateway and
    /// whose reply the subnet routes to an egress-only gateway.
    pub fn explain_round_trip6(
        &self,
        now: Instant,
        ingress: &Port,
        p: &crate::ipv6::Pkt6,
    ) -> (Verdict, Option<Verdict>) {
        let mut ct = self.conntrack6.clone();
        let mut hops = Vec::new();
        let hl = crate::ipv6::EXPLAIN_HOP_LIMIT;
        let d = crate::ipv6::decide6(&self.topology, &ct, now, ingress, p, hl, Some(&mut hops));
        let (outcome, track) = (d.outcome, d.track);
        let Outcome::Deliver(at) = outcome.clone() else {
            return (Verdict { hops, outcome }, None);
        };
        crate::ipv6::commit6(&mut ct, now, p, track);
        let mut back_hops = Vec::new();
        let back = crate::ipv6::decide6(
            &self.topology,
            &ct,
            now,
            &at,
            &p.reply(),
            hl,
            Some(&mut back_hops),
        )
        .outcome;
        (
            Verdict { hops, outcome },
            Some(Verdict {
                hops: back_hops,
                outcome: back,
            }),
        )
    }

    /// Drops idle connection-tracking entries and NAT mappings. Correctness
    /// does not depend on calling it (expired state is ignored on lookup); it
    /// reclaims memory.
    pub fn expire(&mut self, now: Instant) {
        let t = self.config.timeouts;
        self.conntrack.expire(now, &t);
        self.conntrack6.expire(now);
        self.nat.expire(now, t.nat_idle);
        self.flush_cached_flow_logs();
        self.flow_cache.clear();
        self.flow_cache6.clear();
    }

    fn commit(&mut self, now: Instant, effects: &[Effect]) {
        for e in effects {
            match *e {
                Effect::ConnTouch {
                    slot, dir, flags, ..
                } => self.conntrack.touch(slot, now, dir, flags),
                Effect::ConnNew { key, dir, flags } => self.conntrack.insert(key, now, dir, flags),
                Effect::NatTouch { slot, .. } => self.nat.touch(slot, now),
                Effect::NatNew { key, port } => self.nat.insert(key, port, now),
            }
        }
    }
}

/// One walk of one packet through the topology.
struct Walk<'a> {
    c: &'a Compiled,
    fabric: &'a Fabric,
    now: Instant,
    hops: Option<&'a mut Vec<Hop>>,
    effects: &'a mut Vec<Effect>,
    gateways: u8,
    /// False once the decision depended on something other than the
    /// topology and live tracked state (a rule created state, a NAT port was
    /// chosen): such a walk is not memoised in the flow cache.
    cacheable: bool,
    /// The address that answers if the TTL runs out at the next gateway: the
    /// hop that forwards the packet into it (0: none answers).
    answer_from: u32,
}

type Step = Result<(), DropReason>;

const METADATA: u32 = u32::from_be_bytes([169, 254, 169, 254]);
const RESOLVER_LINK_LOCAL: u32 = u32::from_be_bytes([169, 254, 169, 253]);

/// Traffic to or from the VPC resolver or the metadata service, which AWS does not
/// record in flow logs: a query (delivered to their port) and its reply (sent from it).
fn is_service_traffic(ingress: &Port, outcome: &Outcome) -> bool {
    matches!(ingress, Port::Resolver(_) | Port::Metadata(_))
        || matches!(
            outcome,
            Outcome::Deliver(Port::Resolver(_) | Port::Metadata(_))
        )
}

fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn in_net(a: u32, net: u32, len: u32) -> bool {
    (a ^ net) >> (32 - len) == 0
}

/// Addresses no internet router forwards: private (RFC 1918), shared
/// (RFC 6598), loopback, link-local, "this network", multicast and reserved.
fn not_internet_routable(a: u32) -> bool {
    in_net(a, 0x0a00_0000, 8)
        || in_net(a, 0xac10_0000, 12)
        || in_net(a, 0xc0a8_0000, 16)
        || in_net(a, 0x6440_0000, 10)
        || in_net(a, 0x7f00_0000, 8)
        || in_net(a, 0xa9fe_0000, 16)
        || in_net(a, 0, 8)
        || a >= 0xe000_0000
}

impl Walk<'_> {
    #[inline]
    fn hop(&mut self, f: impl FnOnce() -> Hop) {
        if let Some(h) = self.hops.as_mut() {
            h.push(f());
        }
    }

    fn start(&mut self, ingress: &Port, p: &mut Pkt) -> Outcome {
        let r = match ingress {
            Port::Eni(id) => match self.c.eni_ix.get(id) {
                Some(&e) => {
                    // The subnet's router (base + 1) forwards whatever leaves it.
                    let subnet = &self.c.subnets[self.c.enis[e as usize].subnet as usize];
                    self.answer_from = subnet.cidr.net.wrapping_add(1);
                    self.sent_by_eni(e, p)
                }
                None => Err(DropReason::UnknownPort),
            },
            Port::Internet => {
                self.answer_from = u32::from(crate::internet::INTERNET_ROUTER_ADDR);
                self.on_internet(p)
            }
            Port::Resolver(vpc) => self.service_reply(vpc, None, p),
            // The service answers through the gateway endpoint: the reply enters
            // the endpoint's VPC like traffic from a gateway (the destination
            // subnet's inbound network ACL, then the interface's groups).
            Port::Endpoint(id) => match self.c.endpoint_ix.get(id) {
                Some(&x) => {
                    let (id, v) = &self.c.endpoints[x as usize];
                    let to = self.c.vpcs[*v as usize].id.clone();
                    self.hop(|| Hop {
                        component: id.clone(),
                        action: HopAction::EndpointReturn { to },
                        rule: None,
                    });
                    self.arrive(*v, None, p)
                }
                None => Err(DropReason::UnknownPort),
            },
            Port::Metadata(eni) => match self.c.eni_ix.get(eni) {
                Some(&e) => {
                    let vpc = self.c.vpcs[self.c.enis[e as usize].vpc as usize].id.clone();
                    self.service_reply(&vpc, Some(e), p)
                }
                None => Err(DropReason::UnknownPort),
            },
        };
        match r {
            Ok(port) => Outcome::Deliver(port),
            Err(reason) => Outcome::Drop(reason),
        }
    }

    /// Replies of the resolver and metadata service go straight back to the
    /// interface: they are exempt from NACLs and security groups.
    fn service_reply(
        &mut self,
        vpc: &ResId,
        eni: Option<u32>,
        p: &Pkt,
    ) -> Result<Port, DropReason> {
        let Some(&v) = self.c.vpc_ix.get(vpc) else {
            return Err(DropReason::UnknownPort);
        };
        let Some(&e) = self.c.eni_by_ip.get(&(v, p.dst)) else {
            return Err(DropReason::NoInterface {
                vpc: vpc.clone(),
                dst: ip(p.dst),
            });
        };
        if eni.is_some_and(|m| m != e) {
            return Err(DropReason::UnknownPort);
        }
        let id = self.c.enis[e as usize].id.clone();
        self.hop(|| Hop {
            component: id.clone(),
            action: HopAction::Exempt,
            rule: None,
        });
        Ok(Port::Eni(id))
    }

    fn sent_by_eni(&mut self, e: u32, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        let eni = &c.enis[e as usize];
        let vpc = &c.vpcs[eni.vpc as usize];
        // 1. Exemptions: resolver and metadata are not filtered.
        let service = if p.dst == METADATA {
            Some(Port::Metadata(eni.id.clone()))
        } else if p.dst == RESOLVER_LINK_LOCAL || Some(p.dst) == vpc.resolver {
            if !vpc.dns {
                return Err(DropReason::ResolverDisabled {
                    vpc: vpc.id.clone(),
                });
            }
            Some(Port::Resolver(vpc.id.clone()))
        } else if in_net(p.dst, 0xa9fe_0000, 16) {
            return Err(DropReason::LinkLocalUnavailable { dst: ip(p.dst) });
        } else {
            None
        };
        if service.is_some() {
            self.hop(|| Hop {
                component: eni.id.clone(),
                action: HopAction::Exempt,
                rule: None,
            });
        } else if !eni.sg_free {
            // 2. Egress security groups (stateful).
            self.security_groups(e, Direction::Outbound, p)?;
        }
        // 3. Source/destination check.
        if eni.sdc {
            if !eni.owns(p.src) {
                return Err(self.sdc_drop(e, Direction::Outbound, p.src));
            }
            self.hop(|| Hop {
                component: eni.id.clone(),
                action: HopAction::SourceDestCheckPass(Direction::Outbound),
                rule: None,
            });
        }
        if let Some(port) = service {
            return Ok(port);
        }
        self.forward(eni.subnet, p)
    }

    fn sdc_drop(&mut self, e: u32, dir: Direction, addr: u32) -> DropReason {
        let id = self.c.enis[e as usize].id.clone();
        self.hop(|| Hop {
            component: id.clone(),
            action: HopAction::Drop,
            rule: None,
        });
        DropReason::SourceDestCheck {
            eni: id,
            direction: dir,
            addr: ip(addr),
        }
    }

    /// Steps 4–6: a packet leaves subnet `s` (from an interface in it).
    fn forward(&mut self, s: u32, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        let subnet = &c.subnets[s as usize];
        // 4. Same subnet: no NACL, no route table.
        if subnet.cidr.contains(p.dst) {
            self.hop(|| Hop {
                component: subnet.id.clone(),
                action: HopAction::SameSubnet,
                rule: None,
            });
            return self.arrive(subnet.vpc, Some(s), p);
        }
        // 5. Egress NACL of the source subnet — unless the route hands the
        // packet to a NAT gateway or interface inside this same subnet: that
        // hop does not cross the subnet boundary (the NAT gateway's own
        // departure is checked when it sends the packet on).
        let table = &c.tables[subnet.table as usize];
        let route = table.lookup(p.dst);
        let stays_inside = match route.map(|r| r.target) {
            Some(CTarget::Nat(n)) => c.nats[n as usize].subnet == s,
            Some(CTarget::Eni(e)) => c.enis[e as usize].subnet == s,
            _ => false,
        };
        if !stays_inside {
            self.nacl(s, Direction::Outbound, p)?;
        }
        // 6. Route table, longest prefix.
        let Some(route) = route else {
            self.hop(|| Hop {
                component: table.id.clone(),
                action: HopAction::Drop,
                rule: None,
            });
            return Err(DropReason::NoRoute {
                table: table.id.clone(),
                dst: ip(p.dst),
            });
        };
        self.hop(|| Hop {
            component: table.id.clone(),
            action: HopAction::Route(route.target_name.to_string()),
            rule: Some(RuleRef::Route(route.dest)),
        });
        let blackhole = || DropReason::Blackhole {
            table: table.id.clone(),
            route: route.dest,
        };
        match route.target {
            CTarget::Local => self.arrive(subnet.vpc, Some(s), p),
            CTarget::Igw(g) => {
                // AWS: a route to an internet gateway that is not attached to
                // this VPC is a blackhole.
                if c.vpcs[subnet.vpc as usize].igw != Some(g) {
                    return Err(blackhole());
                }
                self.igw_out(g, subnet.vpc, p)
            }
            CTarget::Nat(n) => self.nat_out(n, s, p),
            CTarget::Eni(e) => {
                let target = &c.enis[e as usize];
                if target.vpc != subnet.vpc {
                    return Err(blackhole());
                }
                if let Some(n) = target.nat {
                    return self.nat_out(n, s, p);
                }
                if target.subnet != s {
                    self.nacl(target.subnet, Direction::Inbound, p)?;
                }
                self.deliver(e, p)
            }
            CTarget::Peering(x) => {
                // AWS: a route to a peering that does not connect this VPC is a blackhole.
                let Some(peer) = c.peerings[x as usize].other(subnet.vpc) else {
                    return Err(blackhole());
                };
                self.peering_cross(x, subnet.vpc, peer, p)
            }
            CTarget::Endpoint(x) => {
                // AWS: a gateway endpoint serves only the VPC it was created in
                // (its routes exist only in that VPC's tables); a packet that
                // arrived over a peering never gets here, since the peer VPC's
                // `local` route delivers it.
                let (id, vpc) = &c.endpoints[x as usize];
                if *vpc != subnet.vpc {
                    return Err(blackhole());
                }
                self.hop(|| Hop {
                    component: id.clone(),
                    action: HopAction::Deliver,
                    rule: None,
                });
                Ok(Port::Endpoint(id.clone()))
            }
            CTarget::Tgw(t) => {
                // AWS: a route to a transit gateway with no attachment in this
                // VPC is a blackhole (the model shows it so too).
                match c.tgws[t as usize]
                    .attachments
                    .iter()
                    .position(|a| a.vpc == subnet.vpc)
                {
                    Some(a) => self.tgw_cross(t, a as u32, s, p),
                    None => Err(blackhole()),
                }
            }
            CTarget::Blackhole => Err(blackhole()),
        }
    }

    /// The subnet of attachment `a` in Availability Zone `zone`, if it has one
    /// there (one subnet per zone at most).
    fn tgw_subnet_in_zone(&self, t: u32, a: u32, zone: &ResId) -> Option<u32> {
        let att = &self.c.tgws[t as usize].attachments[a as usize];
        att.subnets
            .iter()
            .copied()
            .find(|&x| self.c.subnets[x as usize].zone == *zone)
    }

    /// The attachment subnet where traffic from zone `zone` leaves the gateway:
    /// the one in the same Availability Zone, else the attachment's first. AWS keeps
    /// traffic in the zone it entered while the next attachment has a subnet there,
    /// and crosses zones when it has none there (Transit Gateway guide, "How transit
    /// gateways work", Availability Zones).
    fn tgw_subnet(&self, t: u32, a: u32, zone: &ResId) -> Option<u32> {
        let att = &self.c.tgws[t as usize].attachments[a as usize];
        self.tgw_subnet_in_zone(t, a, zone)
            .or_else(|| att.subnets.first().copied())
    }

    /// Transit gateway `t` carries a packet that left subnet `s` through the
    /// gateway's attachment `a` in that VPC. AWS rules (Transit Gateway guide,
    /// "How transit gateways work", "Network ACLs for transit gateways"):
    /// the attachment subnet's inbound ACL rules evaluate traffic from the
    /// instances to the gateway; the route table associated with the
    /// attachment picks the next attachment by longest prefix, a blackhole
    /// route drops; the packet then leaves the gateway at the next
    /// attachment's interface (in the sender's zone where it has one), and
    /// that subnet's outbound ACL rules and route table decide the rest of the
    /// way, exactly as for traffic sent from that subnet (no ACL when the
    /// destination is in the attachment subnet itself).
    fn tgw_cross(&mut self, t: u32, a: u32, s: u32, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        let tgw = &c.tgws[t as usize];
        // A loop through the gateway (an attachment subnet routing back to
        // it) is stopped like one between gateways; the transit gateway does
        // not decrement the TTL, as a VPC router does not.
        self.gateways += 1;
        if self.gateways > MAX_GATEWAYS {
            return Err(DropReason::RoutingLoop);
        }
        let zone = &c.subnets[s as usize].zone;
        let att = &tgw.attachments[a as usize];
        // "Any resources in Availability Zones where there is no transit gateway
        // attachment cannot reach the transit gateway. If there is a route to the
        // transit gateway in a subnet route table, traffic is forwarded to the transit
        // gateway only when the transit gateway has an attachment in a subnet in the
        // same Availability Zone." (Transit Gateway guide, "Amazon VPC attachments",
        // Limits.)
        let Some(entry) = self.tgw_subnet_in_zone(t, a, zone) else {
            self.hop(|| Hop {
                component: att.id.clone(),
                action: HopAction::Drop,
                rule: None,
            });
            return Err(DropReason::TgwNoSubnetInZone {
                tgw: tgw.id.clone(),
                attachment: att.id.clone(),
                zone: zone.clone(),
            });
        };
        self.nacl(entry, Direction::Inbound, p)?;
        let Some(ti) = att.table else {
            self.hop(|| Hop {
                component: att.id.clone(),
                action: HopAction::Drop,
                rule: None,
            });
            return Err(DropReason::TgwNoAssociation {
                tgw: tgw.id.clone(),
                attachment: att.id.clone(),
            });
        };
        let table = &tgw.tables[ti as usize];
        let Some(route) = table.lookup(p.dst) else {
            self.hop(|| Hop {
                component: table.id.clone(),
                action: HopAction::Drop,
                rule: None,
            });
            return Err(DropReason::TgwNoRoute {
                tgw: tgw.id.clone(),
                table: table.id.clone(),
                dst: ip(p.dst),
            });
        };
        let target = route.target.map(|x| &tgw.attachments[x as usize]);
        self.hop(|| Hop {
            component: table.id.clone(),
            action: HopAction::Route(
                target.map_or_else(|| "blackhole".to_string(), |t| t.id.to_string()),
            ),
            rule: Some(RuleRef::Route(route.dest)),
        });
        let blackhole = || DropReason::TgwBlackhole {
            tgw: tgw.id.clone(),
            table: table.id.clone(),
            route: route.dest,
        };
        let (Some(next), Some(x)) = (target, route.target) else {
            return Err(blackhole());
        };
        let Some(out) = self.tgw_subnet(t, x, zone) else {
            return Err(blackhole());
        };
        self.hop(|| Hop {
            component: tgw.id.clone(),
            action: HopAction::TgwForward {
                tgw: tgw.id.clone(),
                attachment: next.id.clone(),
                vpc: c.vpcs[next.vpc as usize].id.clone(),
                subnet: c.subnets[out as usize].id.clone(),
            },
            rule: None,
        });
        self.forward(out, p)
    }

    /// A packet crosses peering `x` from VPC `from` into VPC `to`. AWS carries
    /// only traffic between the two VPCs' own blocks (no transitive peering, no
    /// edge-to-edge routing: the Reachability Analyzer's
    /// PCX_REQUIRES_ADDRESS_IN_VPC_CIDR). The peering is not a router hop (no TTL),
    /// and inside the peer VPC the `local` route delivers.
    fn peering_cross(
        &mut self,
        x: u32,
        from: u32,
        to: u32,
        p: &mut Pkt,
    ) -> Result<Port, DropReason> {
        let c = self.c;
        let pcx = &c.peerings[x as usize];
        let (outside, vpc, addr) = if !c.vpcs[to as usize].owns(p.dst) {
            (true, to, p.dst)
        } else if !c.vpcs[from as usize].owns(p.src) {
            (false, from, p.src)
        } else {
            self.hop(|| Hop {
                component: pcx.id.clone(),
                action: HopAction::PeeringCross {
                    to: c.vpcs[to as usize].id.clone(),
                },
                rule: None,
            });
            return self.arrive(to, None, p);
        };
        self.hop(|| Hop {
            component: pcx.id.clone(),
            action: HopAction::Drop,
            rule: None,
        });
        Err(DropReason::PeeringNotTransitive {
            peering: pcx.id.clone(),
            vpc: c.vpcs[vpc as usize].id.clone(),
            addr: ip(addr),
            destination: outside,
        })
    }

    /// Steps 8–9 for a packet addressed inside VPC `v`, coming from subnet
    /// `from` (or from a gateway, `None`).
    fn arrive(&mut self, v: u32, from: Option<u32>, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        let vpc = &c.vpcs[v as usize];
        let Some(&ds) = vpc
            .subnets
            .iter()
            .find(|&&s| c.subnets[s as usize].cidr.contains(p.dst))
        else {
            return Err(DropReason::NoInterface {
                vpc: vpc.id.clone(),
                dst: ip(p.dst),
            });
        };
        if from != Some(ds) {
            self.nacl(ds, Direction::Inbound, p)?;
        }
        let Some(&e) = c.eni_by_ip.get(&(v, p.dst)) else {
            return Err(DropReason::NoInterface {
                vpc: vpc.id.clone(),
                dst: ip(p.dst),
            });
        };
        if let Some(n) = c.enis[e as usize].nat {
            return self.nat_in(n, p);
        }
        self.deliver(e, p)
    }

    /// Step 9: ingress security groups, destination check, delivery.
    fn deliver(&mut self, e: u32, p: &mut Pkt) -> Result<Port, DropReason> {
        let eni = &self.c.enis[e as usize];
        if !eni.sg_free {
            self.security_groups(e, Direction::Inbound, p)?;
        }
        if eni.sdc && !eni.owns(p.dst) {
            return Err(self.sdc_drop(e, Direction::Inbound, p.dst));
        }
        self.hop(|| Hop {
            component: eni.id.clone(),
            action: HopAction::Deliver,
            rule: None,
        });
        Ok(Port::Eni(eni.id.clone()))
    }

    fn gateway_hop(&mut self, at: &ResId, p: &mut Pkt) -> Step {
        self.gateways += 1;
        if self.gateways > MAX_GATEWAYS {
            return Err(DropReason::RoutingLoop);
        }
        if p.ttl <= 1 {
            self.hop(|| Hop {
                component: at.clone(),
                action: HopAction::Drop,
                rule: None,
            });
            return Err(DropReason::TtlExceeded { at: at.clone() });
        }
        p.ttl -= 1;
        Ok(())
    }

    /// Internet gateway, outbound: 1:1 source translation, then the internet.
    fn igw_out(&mut self, g: u32, v: u32, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        let igw = &c.igws[g as usize];
        self.gateway_hop(&igw.id, p)?;
        let public = c
            .eni_by_ip
            .get(&(v, p.src))
            .and_then(|&e| c.enis[e as usize].public);
        let Some(public) = public else {
            self.hop(|| Hop {
                component: igw.id.clone(),
                action: HopAction::Drop,
                rule: None,
            });
            return Err(DropReason::IgwNoPublicIp {
                igw: igw.id.clone(),
                src: ip(p.src),
            });
        };
        let from = p.src;
        p.src = public;
        if let Some(inner) = p.inner.as_mut()
            && inner.dst == from
        {
            inner.dst = public;
        }
        self.hop(|| Hop {
            component: igw.id.clone(),
            action: HopAction::IgwTranslate {
                from: ip(from),
                to: ip(public),
            },
            rule: None,
        });
        self.on_internet(p)
    }

    /// The packet is on the internet: a public address of this world comes
    /// back in through its VPC's internet gateway; anything else routable is
    /// an internet host.
    fn on_internet(&mut self, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        if c.public_ranges.iter().any(|n| n.contains(p.dst)) {
            let Some(&e) = c.eni_by_public.get(&p.dst) else {
                return Err(DropReason::IgwNoAssociation { dst: ip(p.dst) });
            };
            return self.igw_in(e, p);
        }
        if not_internet_routable(p.dst) {
            return Err(DropReason::InternetNoRoute { dst: ip(p.dst) });
        }
        Ok(Port::Internet)
    }

    /// Internet gateway, inbound: 1:1 destination translation to the private
    /// address, then the destination subnet's ingress NACL and the interface.
    fn igw_in(&mut self, e: u32, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        let eni = &c.enis[e as usize];
        let vpc = &c.vpcs[eni.vpc as usize];
        let Some(g) = vpc.igw else {
            return Err(DropReason::IgwNotAttached {
                vpc: vpc.id.clone(),
                dst: ip(p.dst),
            });
        };
        let igw = &c.igws[g as usize];
        self.gateway_hop(&igw.id, p)?;
        let from = p.dst;
        p.dst = eni.private;
        if let Some(inner) = p.inner.as_mut()
            && inner.src == from
        {
            inner.src = eni.private;
        }
        self.hop(|| Hop {
            component: igw.id.clone(),
            action: HopAction::IgwTranslate {
                from: ip(from),
                to: ip(eni.private),
            },
            rule: None,
        });
        self.arrive(eni.vpc, None, p)
    }

    /// NAT gateway, outbound: crosses the NAT subnet's ingress NACL, then
    /// source translation, then leaves through the NAT subnet.
    fn nat_out(&mut self, n: u32, from: u32, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        let nat = &c.nats[n as usize];
        if nat.subnet != from {
            self.nacl(nat.subnet, Direction::Inbound, p)?;
        }
        self.gateway_hop(&nat.id, p)?;
        // Past the NAT gateway, it is the hop that answers (by its private address).
        self.answer_from = nat.private;
        if let (Some((ty, _)), Some(_)) = (p.icmp, p.inner)
            && is_icmp_error(ty)
        {
            return self.nat_out_icmp_error(n, p);
        }
        let (sport, dport) = match (p.proto, p.icmp) {
            (6 | 17, _) => (p.sport, p.dport),
            (1, Some((8, _))) => (p.sport, 0),
            _ => {
                self.hop(|| Hop {
                    component: nat.id.clone(),
                    action: HopAction::Drop,
                    rule: None,
                });
                return Err(DropReason::NatUnsupportedProtocol {
                    nat: nat.id.clone(),
                    protocol: p.proto,
                });
            }
        };
        let f = self.fabric;
        let idle = f.config.timeouts.nat_idle;
        let key = OutKey {
            nat: f.nat_stable[n as usize],
            proto: p.proto,
            sport,
            dport,
            src: p.src,
            dst: p.dst,
        };
        let port = match f.nat.lookup_out(&key, self.now, idle) {
            Some((slot, port)) => {
                self.effects.push(Effect::NatTouch { slot, key });
                port
            }
            None => match f
                .nat
                .choose_port(&key, f.config.seed, f.config.nat_ports, self.now, idle)
            {
                Some(port) => {
                    self.cacheable = false;
                    self.effects.push(Effect::NatNew { key, port });
                    port
                }
                None => {
                    return Err(DropReason::NatPortsExhausted {
                        nat: nat.id.clone(),
                        dst: ip(p.dst),
                        dst_port: p.dport,
                    });
                }
            },
        };
        let before = (ip(p.src), p.sport);
        p.src = nat.private;
        p.sport = port;
        if p.proto == 1 {
            p.dport = port;
        }
        self.hop(|| Hop {
            component: nat.id.clone(),
            action: HopAction::NatTranslate {
                from: before,
                to: (ip(nat.private), port),
            },
            rule: None,
        });
        self.forward(nat.subnet, p)
    }

    /// An ICMP error sent from inside about a translated flow (say, "port
    /// unreachable" for a UDP reply): the quoted packet is the reply as the
    /// instance saw it, so the mapping is found through it, and both the
    /// source and the quoted destination become the gateway's.
    fn nat_out_icmp_error(&mut self, n: u32, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        let nat = &c.nats[n as usize];
        let f = self.fabric;
        let idle = f.config.timeouts.nat_idle;
        let inner = p
            .inner
            .expect("nat_out only calls this for an ICMP error with a quoted header");
        let (sport, dport) = match inner.proto {
            1 => (inner.dport, 0),
            _ => (inner.dport, inner.sport),
        };
        let key = OutKey {
            nat: f.nat_stable[n as usize],
            proto: inner.proto,
            sport,
            dport,
            src: inner.dst,
            dst: inner.src,
        };
        let found = (inner.dst == p.src)
            .then(|| f.nat.lookup_out(&key, self.now, idle))
            .flatten();
        let Some((slot, port)) = found else {
            self.hop(|| Hop {
                component: nat.id.clone(),
                action: HopAction::Drop,
                rule: None,
            });
            return Err(DropReason::NatUnsupportedProtocol {
                nat: nat.id.clone(),
                protocol: p.proto,
            });
        };
        self.effects.push(Effect::NatTouch { slot, key });
        let before = (ip(p.src), inner.dport);
        p.src = nat.private;
        if let Some(q) = p.inner.as_mut() {
            q.dst = nat.private;
            q.dport = port;
            if q.proto == 1 {
                q.sport = port;
            }
        }
        self.hop(|| Hop {
            component: nat.id.clone(),
            action: HopAction::NatTranslate {
                from: before,
                to: (ip(nat.private), port),
            },
            rule: None,
        });
        self.forward(nat.subnet, p)
    }

    /// NAT gateway, inbound (after its subnet's ingress NACL): only replies
    /// of tracked mappings pass, translated back to the private side.
    fn nat_in(&mut self, n: u32, p: &mut Pkt) -> Result<Port, DropReason> {
        let c = self.c;
        let nat = &c.nats[n as usize];
        let f = self.fabric;
        let idle = f.config.timeouts.nat_idle;
        let stable = f.nat_stable[n as usize];
        // The key of the mapping this packet answers, from its own header or,
        // for an ICMP error, from the quoted header it carries.
        let key = match (p.proto, p.icmp, p.inner) {
            (6 | 17, _, _) => Some(InKey {
                nat: stable,
                proto: p.proto,
                rport: p.sport,
                port: p.dport,
                remote: p.src,
            }),
            (1, Some((0, _)), _) => Some(InKey {
                nat: stable,
                proto: 1,
                rport: 0,
                port: p.sport,
                remote: p.src,
            }),
            (1, Some((ty, _)), Some(inner)) if is_icmp_error(ty) && inner.src == nat.private => {
                let (rport, port) = match inner.proto {
                    1 => (0, inner.sport),
                    _ => (inner.dport, inner.sport),
                };
                Some(InKey {
                    nat: stable,
                    proto: inner.proto,
                    rport,
                    port,
                    remote: inner.dst,
                })
            }
            _ => None,
        };
        let Some((slot, out)) = key.and_then(|k| f.nat.lookup_in(&k, self.now, idle)) else {
            self.hop(|| Hop {
                component: nat.id.clone(),
                action: HopAction::Drop,
                rule: None,
            });
            return Err(DropReason::NatInboundNotTracked {
                nat: nat.id.clone(),
                dst: ip(p.dst),
            });
        };
        self.gateway_hop(&nat.id, p)?;
        self.effects.push(Effect::NatTouch { slot, key: out });
        let before = (ip(p.dst), p.dport);
        p.dst = out.src;
        match (p.proto, p.inner.as_mut()) {
            (1, Some(inner)) => {
                inner.src = out.src;
                inner.sport = out.sport;
                if inner.proto == 1 {
                    inner.dport = out.sport;
                }
            }
            (1, None) => {
                p.sport = out.sport;
                p.dport = out.sport;
            }
            _ => p.dport = out.sport,
        }
        self.hop(|| Hop {
            component: nat.id.clone(),
            action: HopAction::NatTranslate {
                from: before,
                to: (ip(out.src), p.dport),
            },
            rule: None,
        });
        self.forward(nat.subnet, p)
    }

    /// A network ACL, stateless: ascending rule numbers, first match decides,
    /// the final `*` rule denies.
    fn nacl(&mut self, s: u32, dir: Direction, p: &Pkt) -> Step {
        let c = self.c;
        let subnet = &c.subnets[s as usize];
        let acl = &c.acls[subnet.acl as usize];
        let (entries, peer) = match dir {
            Direction::Inbound => (&acl.inbound, p.src),
            Direction::Outbound => (&acl.outbound, p.dst),
        };
        let hit = entries
            .iter()
            .find(|e| e.cidr.contains(peer) && e.m.matches(p.proto, p.dport, p.icmp));
        match hit {
            Some(e) if e.allow => {
                self.hop(|| Hop {
                    component: acl.id.clone(),
                    action: HopAction::NaclAllow(dir),
                    rule: Some(RuleRef::NaclEntry(e.number)),
                });
                Ok(())
            }
            _ => {
                let rule = hit.map(|e| e.number);
                self.hop(|| Hop {
                    component: acl.id.clone(),
                    action: HopAction::NaclDeny(dir),
                    rule: Some(rule.map_or(RuleRef::NaclDefault, RuleRef::NaclEntry)),
                });
                Err(DropReason::NaclDeny {
                    acl: acl.id.clone(),
                    subnet: subnet.id.clone(),
                    rule,
                    direction: dir,
                })
            }
        }
    }

    /// Security groups of interface `e` in direction `dir`: a tracked
    /// connection passes; otherwise any rule of any group must allow.
    fn security_groups(&mut self, e: u32, dir: Direction, p: &Pkt) -> Step {
        let c = self.c;
        let f = self.fabric;
        let eni = &c.enis[e as usize];
        // ICMP errors are not part of a tracked connection on AWS (path MTU
        // discovery needs an explicit rule), so they are never tracked.
        let trackable = match p.icmp {
            Some((ty, _)) => is_echo(ty),
            None => true,
        };
        let key = trackable.then(|| {
            let (local, lport, remote, rport) = match dir {
                Direction::Outbound => (p.src, p.sport, p.dst, p.dport),
                Direction::Inbound => (p.dst, p.dport, p.src, p.sport),
            };
            ConnKey {
                eni: f.eni_stable[e as usize],
                proto: p.proto,
                lport,
                rport,
                local,
                remote,
            }
        });
        if let Some(k) = &key
            && let Some(slot) = f.conntrack.lookup(k, self.now, &f.config.timeouts)
        {
            self.effects.push(Effect::ConnTouch {
                slot,
                key: *k,
                dir,
                flags: p.flags,
            });
            self.hop(|| Hop {
                component: eni.id.clone(),
                action: HopAction::SecurityGroupAllow(dir),
                rule: Some(RuleRef::Tracked),
            });
            return Ok(());
        }
        let peer = match dir {
            Direction::Inbound => p.src,
            Direction::Outbound => p.dst,
        };
        let policy = &c.policies[eni.policy as usize];
        let rules = match dir {
            Direction::Inbound => &policy.ingress,
            Direction::Outbound => &policy.egress,
        };
        if let Some(order) = match_rules(c, rules, p, peer) {
            // Only echo *requests* start an ICMP connection; an unsolicited
            // echo reply allowed by a rule does not.
            if let Some(k) = key
                && !(p.proto == 1 && p.icmp.is_some_and(|(t, _)| t == 0))
            {
                self.effects.push(Effect::ConnNew {
                    key: k,
                    dir,
                    flags: p.flags,
                });
            }
            self.cacheable = false;
            let gpos = (order >> ORDER_SHIFT) as usize;
            let index = (order & ((1 << ORDER_SHIFT) - 1)) as usize;
            self.hop(|| {
                let sg = &c.sgs[eni.sgs[gpos] as usize];
                let ids = match dir {
                    Direction::Inbound => &sg.ingress_ids,
                    Direction::Outbound => &sg.egress_ids,
                };
                Hop {
                    component: sg.id.clone(),
                    action: HopAction::SecurityGroupAllow(dir),
                    rule: Some(RuleRef::SecurityGroupRule {
                        group: sg.id.clone(),
                        rule_id: ids.get(index).cloned().flatten(),
                        index,
                    }),
                }
            });
            return Ok(());
        }
        self.hop(|| Hop {
            component: eni.id.clone(),
            action: HopAction::SecurityGroupDeny(dir),
            rule: None,
        });
        Err(DropReason::SecurityGroupNoMatch {
            eni: eni.id.clone(),
            direction: dir,
        })
    }
}

/// The first (lowest-ordered) rule of an interface's merged rule set allowing `p`.
fn match_rules(c: &Compiled, rules: &CRuleSet, p: &Pkt, peer: u32) -> Option<u32> {
    let peer_ok = |r: &CSgRule| match r.peer {
        CPeer::Cidr(n) => n.contains(peer),
        CPeer::Group(Some(g)) => c.members[g as usize].binary_search(&peer).is_ok(),
        CPeer::Group(None) => false,
    };
    let mut best: Option<u32> = None;
    if matches!(p.proto, 6 | 17) {
        if let Some(bucket) = rules.by_port.get(&(p.proto, p.dport)) {
            best = bucket.iter().find(|r| peer_ok(r)).map(|r| r.order);
        }
        let ranges = if p.proto == 6 {
            &rules.tcp_ranges
        } else {
            &rules.udp_ranges
        };
        for r in ranges {
            if r.m.lo > p.dport {
                break;
            }
            if p.dport <= r.m.hi && best.is_none_or(|b| r.order < b) && peer_ok(r) {
                best = Some(r.order);
            }
        }
    }
    for r in &rules.other {
        if best.is_some_and(|b| b < r.order) {
            break;
        }
        if r.m.matches(p.proto, p.dport, p.icmp) && peer_ok(r) {
            best = Some(r.order);
            break;
        }
    }
    best
}
