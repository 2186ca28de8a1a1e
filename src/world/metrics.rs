//! Publishes the `AWS/EC2` metrics of each running instance from the fabric's own
//! per-interface counters (`Fabric::interface_counters`): every period, the bytes and
//! packets each instance's interfaces sent and received since the last period become
//! one datapoint each of `NetworkIn`, `NetworkOut`, `NetworkPacketsIn` and
//! `NetworkPacketsOut` (dimension `InstanceId`, timestamped at the period's start, as
//! CloudWatch timestamps a period), with `StatusCheckFailed`, `_Instance` and `_System`
//! at 0 (an instance the fabric runs has passed its checks). One `vpclab:Metrics`
//! commit per region per tick.
//!
//! `CPUUtilization` is the CPU time the instance's workload really used in the period
//! (`Runtime::cpu_times`: the emulated shell's `stress` hogs, measured per thread, or
//! the sandbox's process tree from `/proc`) over the period's wall time times the
//! instance type's vCPUs, in percent, as EC2 defines it ("the percentage of physical
//! CPU time that Amazon EC2 uses to run the EC2 instance").
//!
//! The period is EC2 basic monitoring's 5 minutes, or 1 minute for an instance with
//! detailed monitoring (`Monitoring.State` `enabled`: RunInstances `Monitoring.Enabled`,
//! MonitorInstances); the status checks are published every minute for all. In tests
//! the daemon's `metrics_interval` replaces the 5 minutes (and a fifth of it the
//! minute).
//!
//! [`run_nat`] publishes `AWS/NATGateway` every minute from the fabric's NAT counters
//! (`Fabric::nat_counters`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vpclab_netstack::host::Net;
use vpclab_netstack::{InterfaceCounters, NatCounters, ResId};

use crate::model::cloudwatch::{Datum, Dimension, Stats};
use crate::model::ec2::instance::InstanceState;
use crate::model::{Env, Timestamp};

use super::Worlds;

/// EC2 basic monitoring: one datapoint per metric every 5 minutes.
pub const BASIC_PERIOD: Duration = Duration::from_secs(300);

/// EC2 detailed monitoring (`Monitoring.State` `enabled`): one datapoint per metric
/// every minute. The status-check metrics are published at this frequency for every
/// instance, whatever its monitoring ("available at a 1-minute frequency at no charge").
pub const DETAILED_PERIOD: Duration = Duration::from_secs(60);

/// Basic monitoring's period counted in detailed ones.
const BASIC_TICKS: u32 = 5;
const _: () = assert!(BASIC_PERIOD.as_secs() == DETAILED_PERIOD.as_secs() * BASIC_TICKS as u64);

/// The action of the commits that publish metrics.
pub const ACTION: &str = "vpclab:Metrics";

type Counters = BTreeMap<ResId, InterfaceCounters>;

/// CPU time used so far and vCPUs, per instance.
type CpuTimes = BTreeMap<String, (Duration, u32)>;

fn cpu_times(runtime: &Mutex<super::instances::Runtime>) -> CpuTimes {
    runtime
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .cpu_times()
}

/// `CPUUtilization` in percent: CPU time used in the period over what the instance's
/// vCPUs could have used in it. `None` for an instance that was not running at both ends.
fn utilization(before: &CpuTimes, now: &CpuTimes, instance: &str, wall: Duration) -> Option<f64> {
    let (used, vcpus) = now.get(instance)?;
    let (was, _) = before.get(instance)?;
    let capacity = wall.as_secs_f64() * f64::from((*vcpus).max(1));
    if capacity <= 0.0 {
        return None;
    }
    let pct = used.saturating_sub(*was).as_secs_f64() / capacity * 100.0;
    Some(pct.clamp(0.0, 100.0))
}

fn read(net: &Net) -> Option<Counters> {
    net.with_forwarder::<super::fabric::LiveFabric, _>(|f| {
        f.without_compiling()
            .interface_counters()
            .into_iter()
            .collect()
    })
    .ok()
}

/// The readings taken at one tick: the fabric's interface counters, the instances'
/// CPU times, and when (model clock for timestamps, wall clock for CPU capacity).
#[derive(Clone)]
struct Reading {
    counters: Arc<Counters>,
    cpu: Arc<CpuTimes>,
    /// Model clock, ms: the start of the period that begins at this reading.
    start: i64,
    at: Instant,
}

impl Reading {
    fn take(
        net: &Net,
        worlds: &Worlds,
        runtime: &Mutex<super::instances::Runtime>,
    ) -> Option<Self> {
        Some(Reading {
            counters: Arc::new(read(net)?),
            cpu: Arc::new(cpu_times(runtime)),
            start: (worlds.cfg().clock)().0,
            at: Instant::now(),
        })
    }
}

/// Runs until the world stops. Ticks every minute (or a fifth of the daemon's
/// `metrics_interval`, tests): instances with detailed monitoring publish at every
/// tick, the others at every fifth, each datapoint covering the instance's own
/// period since its last one.
pub(super) async fn run(
    account: String,
    net: Net,
    worlds: Worlds,
    runtime: Arc<Mutex<super::instances::Runtime>>,
) {
    let tick = worlds
        .cfg()
        .metrics_interval
        .map_or(DETAILED_PERIOD, |basic| basic / BASIC_TICKS);
    let Some(mut prev) = Reading::take(&net, &worlds, &runtime) else {
        return;
    };
    // Where each running instance's current period began.
    let mut since: BTreeMap<String, Reading> = BTreeMap::new();
    // Where the current basic (five-tick) window began: basic datapoints are stamped on
    // that grid, as AWS's 5-minute ones are, even for an instance that started running
    // inside the window.
    let mut window_start = prev.start;
    let mut n: u32 = 0;
    loop {
        tokio::time::sleep(tick).await;
        n = (n + 1) % BASIC_TICKS;
        let Some(now) = Reading::take(&net, &worlds, &runtime) else {
            return;
        };
        let basic_due = n == 0;
        publish(
            &account,
            &worlds,
            &prev,
            &now,
            &mut since,
            basic_due.then_some(window_start),
        );
        if basic_due {
            window_start = now.start;
        }
        prev = now;
    }
}

fn delta(now: &InterfaceCounters, before: Option<&InterfaceCounters>) -> InterfaceCounters {
    let b = before.copied().unwrap_or_default();
    InterfaceCounters {
        bytes_in: now.bytes_in.saturating_sub(b.bytes_in),
        packets_in: now.packets_in.saturating_sub(b.packets_in),
        bytes_out: now.bytes_out.saturating_sub(b.bytes_out),
        packets_out: now.packets_out.saturating_sub(b.packets_out),
    }
}

/// One tick: `prev` is the last tick's reading, `now` this one's; `since` holds each
/// running instance's period start and is advanced for the instances that publish.
/// `basic_window` is the start of the five-tick window that ends now, at the ticks where
/// basic monitoring publishes.
fn publish(
    account: &str,
    worlds: &Worlds,
    prev: &Reading,
    now: &Reading,
    since: &mut BTreeMap<String, Reading>,
    basic_window: Option<i64>,
) {
    let basic_due = basic_window.is_some();
    let Some(control) = worlds.control() else {
        return;
    };
    let mut control = control.lock().unwrap_or_else(|e| e.into_inner());
    let Some(world) = control.snapshot(account) else {
        return;
    };
    // Instances that are not running start a fresh period when they run again.
    since.retain(|id, _| {
        world
            .instances
            .get(id)
            .is_some_and(|i| i.state == InstanceState::Running)
    });
    let mut publishing: BTreeMap<String, Reading> = BTreeMap::new();
    for inst in world.instances.iter() {
        // Detailed monitoring publishes at every tick, basic at every fifth.
        if inst.state == InstanceState::Running && (inst.monitoring || basic_due) {
            // An instance first seen running starts its period at the last tick.
            let base = since.get(&inst.id).unwrap_or(prev).clone();
            publishing.insert(inst.id.clone(), base);
        }
    }
    // Each attached interface's traffic over its instance's period, summed per instance.
    let mut per_instance: BTreeMap<String, InterfaceCounters> = BTreeMap::new();
    for eni in world.network_interfaces.iter() {
        let Some(att) = &eni.attachment else {
            continue;
        };
        let Some(base) = publishing.get(&att.instance_id) else {
            continue;
        };
        let key: ResId = vpclab_netstack::topology::rid(&eni.id);
        let Some(c) = now.counters.get(&key) else {
            continue;
        };
        let d = delta(c, base.counters.get(&key));
        let t = per_instance.entry(att.instance_id.clone()).or_default();
        t.bytes_in += d.bytes_in;
        t.packets_in += d.packets_in;
        t.bytes_out += d.bytes_out;
        t.packets_out += d.packets_out;
    }
    let mut by_region: BTreeMap<String, Vec<Datum>> = BTreeMap::new();
    for inst in world.instances.iter() {
        if inst.state != InstanceState::Running {
            continue;
        }
        let dims = vec![Dimension {
            name: "InstanceId".into(),
            value: inst.id.clone(),
        }];
        let datum = |name: &str, v: f64, unit: &str, start: i64| Datum {
            name: name.into(),
            dimensions: dims.clone(),
            timestamp: Some(start),
            stats: vec![Stats::one(v)],
            unit: Some(unit.into()),
            resolution: None,
        };
        let region = by_region.entry(inst.region.clone()).or_default();
        // The status checks: every minute for every instance (an instance the fabric
        // runs has passed them).
        region.extend([
            datum("StatusCheckFailed", 0.0, "Count", prev.start),
            datum("StatusCheckFailed_Instance", 0.0, "Count", prev.start),
            datum("StatusCheckFailed_System", 0.0, "Count", prev.start),
        ]);
        let Some(base) = publishing.get(&inst.id) else {
            continue;
        };
        // A detailed datapoint is stamped with its one-tick period's start; a basic one
        // with its five-tick window's, whenever the instance's own period began.
        let stamp = match basic_window {
            Some(window) if !inst.monitoring => window,
            _ => base.start,
        };
        // An instance that booted during the period has no start reading: no datapoint
        // rather than a made-up one.
        let wall = now.at.saturating_duration_since(base.at);
        if let Some(pct) = utilization(&base.cpu, &now.cpu, &inst.id, wall) {
            region.push(datum("CPUUtilization", pct, "Percent", stamp));
        }
        let c = per_instance.get(&inst.id).copied().unwrap_or_default();
        region.extend([
            datum("NetworkIn", c.bytes_in as f64, "Bytes", stamp),
            datum("NetworkOut", c.bytes_out as f64, "Bytes", stamp),
            datum("NetworkPacketsIn", c.packets_in as f64, "Count", stamp),
            datum("NetworkPacketsOut", c.packets_out as f64, "Count", stamp),
        ]);
    }
    for id in publishing.into_keys() {
        since.insert(id, now.clone());
    }
    let at = (worlds.cfg().clock)().0;
    for (region, data) in by_region {
        let env = Env::new(region, Timestamp(at)).with_action(ACTION);
        for chunk in data.chunks(crate::model::cloudwatch::MAX_DATUMS) {
            let chunk = chunk.to_vec();
            if let Err(e) = control.mutate(account, &env, false, |w, env| {
                w.put_metric_data(env, "AWS/EC2", chunk)
            }) {
                tracing::warn!(account, error = %e, "publishing EC2 metrics failed");
            }
        }
    }
}

/// NAT gateways publish every minute, as AWS's do (or every `metrics_interval`).
pub const NAT_PERIOD: Duration = Duration::from_secs(60);

type NatReadings = BTreeMap<ResId, NatCounters>;

/// The NAT counters of the newest committed world's gateways: the topology is compiled
/// first, so a gateway created since the last packet publishes its zeros too.
fn read_nats(net: &Net) -> Option<NatReadings> {
    net.with_forwarder::<super::fabric::LiveFabric, _>(|f| {
        f.current().nat_counters().into_iter().collect()
    })
    .ok()
}

/// Publishes `AWS/NATGateway` for every available NAT gateway (dimension `NatGatewayId`)
/// from the fabric's NAT counters, until the world stops. The byte and packet metrics
/// and `ConnectionEstablishedCount`/`ErrorPortAllocation` are the period's growth;
/// `ActiveConnectionCount` is the TCP mappings held at the period's end.
pub(super) async fn run_nat(account: String, net: Net, worlds: Worlds) {
    let every = worlds.cfg().metrics_interval.unwrap_or(NAT_PERIOD);
    let Some(mut last) = read_nats(&net) else {
        return;
    };
    let mut start = (worlds.cfg().clock)().0;
    loop {
        tokio::time::sleep(every).await;
        let Some(now) = read_nats(&net) else {
            return;
        };
        publish_nats(&account, &worlds, &last, &now, start);
        last = now;
        start = (worlds.cfg().clock)().0;
    }
}

/// The datapoints of one NAT gateway for one period: (metric, value, unit).
fn nat_data(
    now: &NatCounters,
    before: Option<&NatCounters>,
) -> Vec<(&'static str, u64, &'static str)> {
    let b = before.copied().unwrap_or_default();
    let d = |n: u64, o: u64| n.saturating_sub(o);
    let out_bytes = d(now.bytes_out_to_destination, b.bytes_out_to_destination);
    let out_packets = d(now.packets_out_to_destination, b.packets_out_to_destination);
    let in_bytes = d(now.bytes_in_from_destination, b.bytes_in_from_destination);
    let in_packets = d(
        now.packets_in_from_destination,
        b.packets_in_from_destination,
    );
    vec![
        // What the gateway accepts from the VPC it forwards, and the other way round:
        // the "source" metrics equal the "destination" ones (no loss inside).
        ("BytesOutToDestination", out_bytes, "Bytes"),
        ("BytesInFromSource", out_bytes, "Bytes"),
        ("PacketsOutToDestination", out_packets, "Count"),
        ("PacketsInFromSource", out_packets, "Count"),
        ("BytesInFromDestination", in_bytes, "Bytes"),
        ("BytesOutToSource", in_bytes, "Bytes"),
        ("PacketsInFromDestination", in_packets, "Count"),
        ("PacketsOutToSource", in_packets, "Count"),
        ("ActiveConnectionCount", now.active_tcp, "Count"),
        (
            "ConnectionEstablishedCount",
            d(now.connections_established, b.connections_established),
            "Count",
        ),
        (
            "ErrorPortAllocation",
            d(now.error_port_allocation, b.error_port_allocation),
            "Count",
        ),
    ]
}

fn publish_nats(
    account: &str,
    worlds: &Worlds,
    before: &NatReadings,
    now: &NatReadings,
    start: i64,
) {
    let Some(control) = worlds.control() else {
        return;
    };
    let mut control = control.lock().unwrap_or_else(|e| e.into_inner());
    let Some(world) = control.snapshot(account) else {
        return;
    };
    let mut by_region: BTreeMap<String, Vec<Datum>> = BTreeMap::new();
    for nat in world.nat_gateways.iter() {
        if nat.state != "available" {
            continue;
        }
        let key: ResId = vpclab_netstack::topology::rid(&nat.id);
        let Some(c) = now.get(&key) else {
            continue;
        };
        let dims = vec![Dimension {
            name: "NatGatewayId".into(),
            value: nat.id.clone(),
        }];
        by_region.entry(nat.region.clone()).or_default().extend(
            nat_data(c, before.get(&key))
                .into_iter()
                .map(|(name, v, unit)| Datum {
                    name: name.into(),
                    dimensions: dims.clone(),
                    timestamp: Some(start),
                    stats: vec![Stats::one(v as f64)],
                    unit: Some(unit.into()),
                    resolution: None,
                }),
        );
    }
    let at = (worlds.cfg().clock)().0;
    for (region, data) in by_region {
        let env = Env::new(region, Timestamp(at)).with_action(ACTION);
        for chunk in data.chunks(crate::model::cloudwatch::MAX_DATUMS) {
            let chunk = chunk.to_vec();
            if let Err(e) = control.mutate(account, &env, false, |w, env| {
                w.put_metric_data(env, "AWS/NATGateway", chunk)
            }) {
                tracing::warn!(account, error = %e, "publishing NAT gateway metrics failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_utilization_is_cpu_time_over_the_vcpus_wall_time() {
        let at = |ms: u64, vcpus: u32| -> CpuTimes {
            [("i-1".to_string(), (Duration::from_millis(ms), vcpus))].into()
        };
        let wall = Duration::from_secs(10);
        // 5 s of CPU in 10 s on one vCPU: 50 %; on two vCPUs: 25 %.
        assert_eq!(
            utilization(&at(1_000, 1), &at(6_000, 1), "i-1", wall),
            Some(50.0)
        );
        assert_eq!(
            utilization(&at(1_000, 2), &at(6_000, 2), "i-1", wall),
            Some(25.0)
        );
        // Idle is 0, and measurement noise never goes past 100.
        assert_eq!(utilization(&at(0, 1), &at(0, 1), "i-1", wall), Some(0.0));
        assert_eq!(
            utilization(&at(0, 1), &at(11_000, 1), "i-1", wall),
            Some(100.0)
        );
        // Not running at the period's start: no datapoint.
        assert_eq!(
            utilization(&CpuTimes::new(), &at(6_000, 1), "i-1", wall),
            None
        );
    }

    #[test]
    fn nat_metrics_are_the_period_growth_and_the_connections_held() {
        let before = NatCounters {
            bytes_out_to_destination: 1_000,
            packets_out_to_destination: 10,
            connections_established: 2,
            ..NatCounters::default()
        };
        let now = NatCounters {
            bytes_out_to_destination: 4_000,
            packets_out_to_destination: 25,
            bytes_in_from_destination: 9_000,
            packets_in_from_destination: 12,
            connections_established: 3,
            error_port_allocation: 4,
            active_tcp: 1,
        };
        let data: BTreeMap<&str, u64> = nat_data(&now, Some(&before))
            .into_iter()
            .map(|(n, v, _)| (n, v))
            .collect();
        assert_eq!(data["BytesOutToDestination"], 3_000);
        assert_eq!(data["PacketsOutToDestination"], 15);
        assert_eq!(data["BytesInFromDestination"], 9_000);
        assert_eq!(data["BytesOutToSource"], 9_000);
        assert_eq!(data["ConnectionEstablishedCount"], 1);
        assert_eq!(data["ErrorPortAllocation"], 4);
        // A gauge, not a growth.
        assert_eq!(data["ActiveConnectionCount"], 1);
    }
}
