//! CloudWatch detailed monitoring of EC2 instances, seen through the aws CLI.
//!
//! AWS (EC2 User Guide, "Manage detailed monitoring"): with basic monitoring an
//! instance's metrics are "available automatically in 5-minute periods"; with detailed
//! monitoring enabled (RunInstances `--monitoring Enabled=true`, MonitorInstances) "in
//! 1-minute periods". `Monitoring.State` is one of `disabled | disabling | enabled |
//! pending` (API reference, `Monitoring`).
//!
//! The daemon's `metrics_interval` (5 s here) stands for the 5 minutes and a fifth of it
//! (1 s) for the minute, so `--period 1` plays the part of `--period 60`: a detailed
//! instance has a `NetworkIn` datapoint in every "minute", a basic one only every fifth.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{Lab, Network, TestDaemon, have, stderr};

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The timestamps (ms) of the `NetworkIn` datapoints of `instance` since `since_s`,
/// in order, at a 1-second period (the scaled minute), with their sums.
fn network_in(d: &dyn Lab, instance: &str, since_s: u64) -> Vec<(i64, f64)> {
    let got = d.aws_cli_json(&[
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        "AWS/EC2",
        "--metric-name",
        "NetworkIn",
        "--dimensions",
        &format!("Name=InstanceId,Value={instance}"),
        "--start-time",
        &since_s.to_string(),
        "--end-time",
        &(now_s() + 60).to_string(),
        "--period",
        "1",
        "--statistics",
        "Sum",
    ]);
    let mut points: Vec<(i64, f64)> = got["Datapoints"]
        .as_array()
        .expect("Datapoints")
        .iter()
        .map(|p| {
            // ISO 8601 text, or seconds when the CLI is set to print timestamps raw.
            let t = match &p["Timestamp"] {
                Value::String(t) => {
                    let t = time::OffsetDateTime::parse(
                        t,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap_or_else(|e| panic!("{t}: {e}"));
                    (t.unix_timestamp_nanos() / 1_000_000) as i64
                }
                other => (other.as_f64().unwrap_or_else(|| panic!("Timestamp: {p}")) * 1000.0)
                    .round() as i64,
            };
            (t, p["Sum"].as_f64().expect("Sum"))
        })
        .collect();
    points.sort_by_key(|p| p.0);
    points
}

/// The gaps (ms) between consecutive datapoints.
fn gaps(points: &[(i64, f64)]) -> Vec<i64> {
    points.windows(2).map(|w| w[1].0 - w[0].0).collect()
}

fn monitoring_state(d: &dyn Lab, instance: &str) -> String {
    d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        instance,
        "--query",
        "Reservations[0].Instances[0].Monitoring.State",
    ])
}

#[test]
fn detailed_monitoring_publishes_every_minute_and_basic_every_five() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start_with(|c| c.metrics_interval = Some(Duration::from_secs(5)));
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (detailed, detailed_ip, _) = net.launch(
        &d,
        &net.public_subnet,
        "lab",
        &sg,
        &["--monitoring", "Enabled=true"],
    );
    let (basic, basic_ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    assert_eq!(monitoring_state(&d, &detailed), "enabled");
    assert_eq!(monitoring_state(&d, &basic), "disabled");
    let filtered = d.aws_text(&[
        "describe-instances",
        "--filters",
        "Name=monitoring-state,Values=enabled",
        "--query",
        "Reservations[].Instances[].InstanceId",
    ]);
    assert_eq!(filtered, detailed);

    // Traffic into both: an SSH session each.
    let since = now_s() - 1;
    for ip in [&detailed_ip, &basic_ip] {
        let out = d.ssh(&key, "ec2-user", ip, "echo hello");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // Two basic periods (and ten detailed ones) later.
    std::thread::sleep(Duration::from_secs(11));
    let fine = network_in(&d, &detailed, since);
    let coarse = network_in(&d, &basic, since);
    assert!(fine.len() >= 8, "a datapoint every scaled minute: {fine:?}");
    assert!(
        gaps(&fine).iter().all(|g| *g < 2_500),
        "detailed: one datapoint per scaled minute: {:?}",
        gaps(&fine)
    );
    assert!(
        (1..=3).contains(&coarse.len()),
        "basic: one datapoint per five scaled minutes: {coarse:?}"
    );
    assert!(
        gaps(&coarse).iter().all(|g| *g >= 4_500),
        "basic: datapoints five scaled minutes apart: {:?}",
        gaps(&coarse)
    );
    // The detailed instance's minutes carry its SSH session (the basic one's may still
    // be in a five-minute period not yet published when the session ran late).
    let total: f64 = fine.iter().map(|x| x.1).sum();
    assert!(total > 2_000.0, "{fine:?}");

    // MonitorInstances answers `pending`, UnmonitorInstances `disabling`; the settled
    // states follow.
    let on = d.aws(&["monitor-instances", "--instance-ids", &basic]);
    assert_eq!(on["InstanceMonitorings"][0]["InstanceId"], basic.as_str());
    assert_eq!(
        on["InstanceMonitorings"][0]["Monitoring"]["State"],
        "pending"
    );
    let off = d.aws(&["unmonitor-instances", "--instance-ids", &detailed]);
    assert_eq!(
        off["InstanceMonitorings"][0]["Monitoring"]["State"],
        "disabling"
    );
    assert_eq!(monitoring_state(&d, &basic), "enabled");
    assert_eq!(monitoring_state(&d, &detailed), "disabled");
    let switched = now_s() + 1;
    std::thread::sleep(Duration::from_secs(11));
    let fine = network_in(&d, &basic, switched);
    let coarse = network_in(&d, &detailed, switched);
    assert!(
        fine.len() >= 7 && gaps(&fine).iter().all(|g| *g < 2_500),
        "now detailed: {fine:?}"
    );
    assert!(
        coarse.len() <= 3 && gaps(&coarse).iter().all(|g| *g >= 4_500),
        "now basic: {coarse:?}"
    );

    // An unknown instance is AWS's error, not a silent success.
    d.aws_err(
        &["monitor-instances", "--instance-ids", "i-0123456789abcdef0"],
        "InvalidInstanceID.NotFound",
    );
}

/// The status-check metrics are published every minute for every instance, whatever
/// its monitoring (EC2 User Guide: "available at a 1-minute frequency at no charge").
#[test]
fn status_checks_are_published_every_minute_without_detailed_monitoring() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start_with(|c| c.metrics_interval = Some(Duration::from_secs(5)));
    let net = Network::build(&d);
    let sg = net.security_group(&d, "none", &[]);
    d.key_pair("lab", "ed25519");
    let (basic, _, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let since = now_s() - 1;
    std::thread::sleep(Duration::from_secs(7));
    let got: Value = d.aws_cli_json(&[
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        "AWS/EC2",
        "--metric-name",
        "StatusCheckFailed",
        "--dimensions",
        &format!("Name=InstanceId,Value={basic}"),
        "--start-time",
        &since.to_string(),
        "--end-time",
        &(now_s() + 60).to_string(),
        "--period",
        "1",
        "--statistics",
        "Maximum",
    ]);
    let points = got["Datapoints"].as_array().expect("Datapoints");
    assert!(points.len() >= 5, "{points:?}");
    assert!(points.iter().all(|p| p["Maximum"].as_f64() == Some(0.0)));
}

/// The sum of `metric` (statistic `stat`) of a NAT gateway over the last 10 minutes, at a
/// 60-second period, or `None` before any datapoint.
fn nat_metric(d: &dyn Lab, nat: &str, metric: &str, stat: &str) -> Option<f64> {
    let got = d.aws_cli_json(&[
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        "AWS/NATGateway",
        "--metric-name",
        metric,
        "--dimensions",
        &format!("Name=NatGatewayId,Value={nat}"),
        "--start-time",
        &(now_s() - 600).to_string(),
        "--end-time",
        &(now_s() + 60).to_string(),
        "--period",
        "60",
        "--statistics",
        stat,
    ]);
    let points = got["Datapoints"].as_array()?;
    if points.is_empty() {
        return None;
    }
    Some(
        points
            .iter()
            .filter_map(|p| p[stat].as_f64())
            .fold(0.0, |a, b| if stat == "Sum" { a + b } else { a.max(b) }),
    )
}

/// `AWS/NATGateway` from the fabric's own NAT counters: a private instance fetches a
/// page from an internet host through the NAT gateway (its user data runs `curl`),
/// and CloudWatch shows the bytes the gateway sent to the destination and the TCP
/// connections through it, under the `NatGatewayId` dimension. Before any traffic the
/// gateway publishes zeros (AWS: "the NAT gateway publishes metrics every minute").
#[test]
fn nat_gateway_metrics_show_a_private_instances_traffic_to_the_internet() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start_with(|c| c.metrics_interval = Some(Duration::from_secs(1)));
    let net = Network::build(&d);
    let (nat, _) = net.nat_gateway(&d);
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    wait_for("the idle gateway's first datapoint", &|| {
        nat_metric(&d, &nat, "BytesOutToDestination", "Sum").is_some()
    });
    assert_eq!(
        nat_metric(&d, &nat, "BytesOutToDestination", "Sum"),
        Some(0.0),
        "no traffic yet"
    );

    let sg = net.security_group(&d, "private", &[]);
    d.key_pair("lab", "ed25519");
    let script = d.path("fetch.sh");
    std::fs::write(
        &script,
        "#!/bin/bash\n\
         curl -s http://192.0.2.10/ > /root/ip-1\n\
         curl -s http://192.0.2.10/ > /root/ip-2\n\
         curl -s http://192.0.2.10/ > /root/ip-3\n",
    )
    .expect("write user data");
    net.launch(
        &d,
        &net.private_subnet,
        "lab",
        &sg,
        &["--user-data", &format!("file://{}", script.display())],
    );
    // Three HTTP exchanges: SYN, the request, ACKs and FIN each way, well over 500 bytes
    // out to the destination.
    wait_for("BytesOutToDestination to show the requests", &|| {
        nat_metric(&d, &nat, "BytesOutToDestination", "Sum").is_some_and(|b| b > 500.0)
    });
    let back = nat_metric(&d, &nat, "BytesInFromDestination", "Sum").unwrap_or(0.0);
    assert!(back > 0.0, "the answers came back through the gateway");
    let opened = nat_metric(&d, &nat, "ConnectionEstablishedCount", "Sum").unwrap_or(0.0);
    assert_eq!(opened, 3.0, "one TCP connection per curl");
    let active = nat_metric(&d, &nat, "ActiveConnectionCount", "Maximum").unwrap_or(0.0);
    assert!(
        active >= 1.0,
        "connections held through the gateway: {active}"
    );
    let refused = nat_metric(&d, &nat, "ErrorPortAllocation", "Sum").unwrap_or(-1.0);
    assert_eq!(refused, 0.0);
}
