//! Delivers VPC Flow Logs: every capture window, takes the records the fabric counted
//! from its own verdicts (`Fabric::drain_flow_records`), renders each in the format of
//! every flow log that covers its interface and wants its action, and writes them with
//! one `vpclab:FlowLogs` commit into the flow log's CloudWatch Logs group, stream named
//! after the interface (as AWS names them). The group is created if it does not exist,
//! as AWS's delivery does with the role's permission.
//!
//! The window is 60 seconds, or the daemon's `flow_log_window` (tests); see
//! docs/fidelity.md for how this differs from AWS's 60/600-second intervals.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vpclab_netstack::flowlog::{FlowDrain, FlowRecord};
use vpclab_netstack::host::Net;

use crate::model::ec2::flow_log::FlowLog;
use crate::model::logs::InputEvent;
use crate::model::{Env, World};

use super::Worlds;

/// AWS's shortest aggregation interval, the default window here.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// The action of the commits that deliver flow-log records.
pub const ACTION: &str = "vpclab:FlowLogs";

/// Runs until the world stops: one delivery per window.
pub(super) async fn run(account: String, net: Net, worlds: Worlds) {
    let window = worlds.cfg().flow_log_window.unwrap_or(DEFAULT_WINDOW);
    let mut start = (worlds.cfg().clock)().0;
    loop {
        tokio::time::sleep(window).await;
        let drain = match net.with_forwarder::<super::fabric::LiveFabric, _>(|f| {
            f.without_compiling().drain_flow_records()
        }) {
            Ok(d) => d,
            Err(_) => return,
        };
        let end = (worlds.cfg().clock)().0;
        if !drain.records.is_empty() || !drain.skipped.is_empty() {
            deliver(&account, &worlds, &drain, start, end);
        }
        start = end;
    }
}

fn deliver(account: &str, worlds: &Worlds, drain: &FlowDrain, start: i64, end: i64) {
    let Some(control) = worlds.control() else {
        return;
    };
    let mut control = control.lock().unwrap_or_else(|e| e.into_inner());
    let Some(world) = control.snapshot(account) else {
        return;
    };
    // (region, group, stream) → messages, in record order.
    let mut batches: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for r in &drain.records {
        for f in world.flow_logs_of_eni(&r.eni) {
            if f.wants(r.key.accept) {
                let line = render(&world, f, r, start, end);
                batches
                    .entry((
                        f.region.clone(),
                        f.log_group_name.clone(),
                        r.eni.to_string(),
                    ))
                    .or_default()
                    .push(line);
            }
        }
    }
    // SKIPDATA: the window had packets the aggregator could not record.
    for eni in &drain.skipped {
        for f in world.flow_logs_of_eni(eni) {
            let line = f.render(|field| match field {
                "version" => f.version().to_string(),
                "account-id" => world.account.clone(),
                "interface-id" => eni.to_string(),
                "start" => (start / 1000).to_string(),
                "end" => (end / 1000).to_string(),
                "log-status" => "SKIPDATA".into(),
                _ => "-".into(),
            });
            batches
                .entry((f.region.clone(), f.log_group_name.clone(), eni.to_string()))
                .or_default()
                .push(line);
        }
    }
    if batches.is_empty() {
        return;
    }
    for ((region, group, stream), lines) in batches {
        let env = Env::new(region, crate::model::Timestamp(end)).with_action(ACTION);
        // PutLogEvents' own limit: 10,000 events per batch.
        for chunk in lines.chunks(crate::model::logs::MAX_BATCH_EVENTS) {
            let events: Vec<InputEvent> = chunk
                .iter()
                .map(|m| InputEvent {
                    timestamp: end,
                    message: m.clone(),
                })
                .collect();
            let r = control.mutate(account, &env, false, |w, env| {
                if w.log_group(env, &group).is_err() {
                    w.create_log_group(env, &group, None, BTreeMap::new())?;
                }
                w.put_log_events(env, &group, &stream, &events, true)
            });
            if let Err(e) = r {
                tracing::warn!(account, group, error = %e, "flow-log delivery failed");
            }
        }
    }
}

/// One record in `f`'s format. Fields the fabric does not know print `-`, as AWS
/// prints fields that do not apply.
fn render(world: &World, f: &FlowLog, r: &FlowRecord, start: i64, end: i64) -> String {
    let eni = world.network_interfaces.get(&r.eni);
    let k = &r.key;
    f.render(|field| match field {
        "version" => f.version().to_string(),
        "account-id" => world.account.clone(),
        "interface-id" => r.eni.to_string(),
        "srcaddr" | "pkt-srcaddr" => k.src.to_string(),
        "dstaddr" | "pkt-dstaddr" => k.dst.to_string(),
        "srcport" => k.sport.to_string(),
        "dstport" => k.dport.to_string(),
        "protocol" => k.proto.to_string(),
        "packets" => r.counters.packets.to_string(),
        "bytes" => r.counters.bytes.to_string(),
        "start" => (start / 1000).to_string(),
        "end" => (end / 1000).to_string(),
        "action" => if k.accept { "ACCEPT" } else { "REJECT" }.into(),
        "log-status" => "OK".into(),
        "vpc-id" => eni.map_or("-".into(), |e| e.vpc_id.clone()),
        "subnet-id" => eni.map_or("-".into(), |e| e.subnet_id.clone()),
        "instance-id" => eni
            .and_then(|e| e.attachment.as_ref())
            .map_or("-".into(), |a| a.instance_id.clone()),
        "az-id" => eni.map_or("-".into(), |e| e.availability_zone.clone()),
        "region" => f.region.clone(),
        "tcp-flags" => {
            if k.proto == 6 {
                // AWS's field reports FIN (1), SYN (2), RST (4) and SYN-ACK (18), ORed
                // over the window; ACK alone is not reported.
                let f = r.counters.tcp_flags;
                let syn_ack = if f & 0x12 == 0x12 { 0x10 } else { 0 };
                ((f & 0x07) | syn_ack).to_string()
            } else {
                "0".into()
            }
        }
        "type" => if k.is_ipv6() { "IPv6" } else { "IPv4" }.into(),
        "flow-direction" => if k.egress { "egress" } else { "ingress" }.into(),
        _ => "-".into(),
    })
}

/// The interfaces the fabric should count for: called with every compiled world.
pub(super) fn logged(world: &Arc<World>) -> Vec<vpclab_netstack::ResId> {
    world
        .flow_logged_enis()
        .iter()
        .map(|id| vpclab_netstack::topology::rid(id))
        .collect()
}
