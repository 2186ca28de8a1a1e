//! Publishes the `AWS/EC2` metrics of each running instance from the fabric's own
//! per-interface counters (`Fabric::interface_counters`): every period, the bytes and
//! packets each instance's interfaces sent and received since the last period become
//! one datapoint each of `NetworkIn`, `NetworkOut`, `NetworkPacketsIn` and
//! `NetworkPacketsOut` (dimension `InstanceId`, timestamped at the period's start, as
//! CloudWatch timestamps a period), with `StatusCheckFailed`, `_Instance` and `_System`
//! at 0 (an instance the fabric runs has passed its checks). One `vpclab:Metrics`
//! commit per region per period.
//!
//! The period is EC2 basic monitoring's 5 minutes, or the daemon's `metrics_interval`
//! (tests). `CPUUtilization` is not published: the emulated instance runs no workload
//! whose CPU time could be measured (docs/fidelity.md).

use std::collections::BTreeMap;
use std::time::Duration;

use vpclab_netstack::host::Net;
use vpclab_netstack::{InterfaceCounters, ResId};

use crate::model::cloudwatch::{Datum, Dimension, Stats};
use crate::model::ec2::instance::InstanceState;
use crate::model::{Env, Timestamp};

use super::Worlds;

/// EC2 basic monitoring: one datapoint per metric every 5 minutes.
pub const BASIC_PERIOD: Duration = Duration::from_secs(300);

/// The action of the commits that publish metrics.
pub const ACTION: &str = "vpclab:Metrics";

type Counters = BTreeMap<ResId, InterfaceCounters>;

fn read(net: &Net) -> Option<Counters> {
    net.with_forwarder::<super::fabric::LiveFabric, _>(|f| {
        f.without_compiling()
            .interface_counters()
            .into_iter()
            .collect()
    })
    .ok()
}

/// Runs until the world stops: one publication per period.
pub(super) async fn run(account: String, net: Net, worlds: Worlds) {
    let every = worlds.cfg().metrics_interval.unwrap_or(BASIC_PERIOD);
    let Some(mut last) = read(&net) else {
        return;
    };
    let mut start = (worlds.cfg().clock)().0;
    loop {
        tokio::time::sleep(every).await;
        let Some(now) = read(&net) else {
            return;
        };
        publish(&account, &worlds, &last, &now, start);
        last = now;
        start = (worlds.cfg().clock)().0;
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

fn publish(account: &str, worlds: &Worlds, before: &Counters, now: &Counters, start: i64) {
    let Some(control) = worlds.control() else {
        return;
    };
    let mut control = control.lock().unwrap_or_else(|e| e.into_inner());
    let Some(world) = control.snapshot(account) else {
        return;
    };
    // Each attached interface's traffic, summed per instance.
    let mut per_instance: BTreeMap<String, InterfaceCounters> = BTreeMap::new();
    for eni in world.network_interfaces.iter() {
        let Some(att) = &eni.attachment else {
            continue;
        };
        let key: ResId = vpclab_netstack::topology::rid(&eni.id);
        let Some(c) = now.get(&key) else {
            continue;
        };
        let d = delta(c, before.get(&key));
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
        let c = per_instance.get(&inst.id).copied().unwrap_or_default();
        let dims = vec![Dimension {
            name: "InstanceId".into(),
            value: inst.id.clone(),
        }];
        let datum = |name: &str, v: u64, unit: &str| Datum {
            name: name.into(),
            dimensions: dims.clone(),
            timestamp: Some(start),
            stats: vec![Stats::one(v as f64)],
            unit: Some(unit.into()),
            resolution: None,
        };
        by_region.entry(inst.region.clone()).or_default().extend([
            datum("NetworkIn", c.bytes_in, "Bytes"),
            datum("NetworkOut", c.bytes_out, "Bytes"),
            datum("NetworkPacketsIn", c.packets_in, "Count"),
            datum("NetworkPacketsOut", c.packets_out, "Count"),
            datum("StatusCheckFailed", 0, "Count"),
            datum("StatusCheckFailed_Instance", 0, "Count"),
            datum("StatusCheckFailed_System", 0, "Count"),
        ]);
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
