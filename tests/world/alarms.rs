//! A CloudWatch alarm on an instance's `NetworkIn`, published from the fabric's own
//! interface counters: real SSH traffic through the internet gateway puts it in ALARM,
//! its EC2 action stops the instance through the same path as StopInstances, and its
//! SNS action mails the alarm to a confirmed email subscription (`vpclab mail`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Lab, Network, TestDaemon, have, stderr};

fn mailbox(d: &dyn Lab) -> Vec<Value> {
    let state = d.state_dir();
    let out = d.vpclab(
        &["mail", "--json", "--state-dir", state.to_str().unwrap()],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn ssh_traffic_puts_a_network_in_alarm_in_alarm_which_stops_the_instance_and_mails() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start_with(|c| c.metrics_interval = Some(Duration::from_secs(1)));
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (instance, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);

    // An email subscription, confirmed with the token of its confirmation mail.
    let topic = d.aws_cli_json(&["sns", "create-topic", "--name", "alarms"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_string();
    d.aws_cli_json(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic,
        "--protocol",
        "email",
        "--notification-endpoint",
        "ops@example.com",
    ]);
    let confirmation = mailbox(&d);
    let token = confirmation[0]["body"]
        .as_str()
        .unwrap()
        .split("--token ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    d.aws_cli_json(&[
        "sns",
        "confirm-subscription",
        "--topic-arn",
        &topic,
        "--token",
        &token,
    ]);

    // Quiet first: the fabric's counters publish zeros, the alarm settles in OK.
    d.aws_cli_json(&[
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        "busy",
        "--namespace",
        "AWS/EC2",
        "--metric-name",
        "NetworkIn",
        "--dimensions",
        &format!("Name=InstanceId,Value={instance}"),
        "--statistic",
        "Sum",
        "--period",
        "10",
        "--evaluation-periods",
        "1",
        "--threshold",
        "3000",
        "--comparison-operator",
        "GreaterThanThreshold",
        "--alarm-actions",
        "arn:aws:automate:us-east-1:ec2:stop",
        &topic,
    ]);
    let state = || {
        d.aws_cli_json(&["cloudwatch", "describe-alarms", "--alarm-names", "busy"])["MetricAlarms"]
            [0]["StateValue"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    wait_until("the alarm to be OK on quiet traffic", 40, || {
        state() == "OK"
    });

    // The datapoints come from the interface's real traffic.
    let stats = d.aws_cli_json(&[
        "cloudwatch",
        "list-metrics",
        "--namespace",
        "AWS/EC2",
        "--dimensions",
        &format!("Name=InstanceId,Value={instance}"),
    ]);
    let names: Vec<&str> = stats["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["MetricName"].as_str())
        .collect();
    for m in [
        "NetworkIn",
        "NetworkOut",
        "NetworkPacketsIn",
        "NetworkPacketsOut",
        "StatusCheckFailed",
    ] {
        assert!(names.contains(&m), "{m} missing from {names:?}");
    }

    // SSH sessions move over 3000 bytes into the instance in every 10 s period while
    // they go on (one session alone can straddle two periods and leave each under the
    // threshold, so the traffic is kept up until the alarm sees it).
    let out = d.ssh(&key, "ec2-user", &ip, "echo hello from the instance");
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until("the alarm to fire", 60, || {
        state() == "ALARM" || {
            d.ssh(&key, "ec2-user", &ip, "echo still here");
            false
        }
    });

    // The EC2 action stopped the instance.
    wait_until("the instance to stop", 20, || {
        let s = d.aws_text(&[
            "describe-instances",
            "--instance-ids",
            &instance,
            "--query",
            "Reservations[0].Instances[0].State.Name",
        ]);
        s == "stopping" || s == "stopped"
    });
    let history = d.aws_cli_json(&[
        "cloudwatch",
        "describe-alarm-history",
        "--alarm-name",
        "busy",
        "--history-item-type",
        "Action",
    ]);
    let actions: Vec<&str> = history["AlarmHistoryItems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["HistorySummary"].as_str())
        .collect();
    assert!(
        actions
            .iter()
            .any(|a| a.contains("ec2:stop") && a.starts_with("Successfully")),
        "{actions:?}"
    );

    // The SNS action mailed the alarm, in CloudWatch's notification format.
    let mail = mailbox(&d);
    let alarm_mail = mail
        .iter()
        .find(|m| m["type"] == "Notification")
        .unwrap_or_else(|| panic!("no alarm mail: {mail:?}"));
    assert_eq!(alarm_mail["to"], "ops@example.com");
    assert_eq!(
        alarm_mail["subject"],
        "ALARM: \"busy\" in US East (N. Virginia)"
    );
    let body = alarm_mail["body"].as_str().unwrap();
    let json_part = body.split("\n\n--\n").next().unwrap();
    let n: Value = serde_json::from_str(json_part).expect("the alarm message is JSON");
    assert_eq!(n["AlarmName"], "busy");
    assert_eq!(n["NewStateValue"], "ALARM");
    assert_eq!(n["OldStateValue"], "OK");
    assert_eq!(n["Trigger"]["MetricName"], "NetworkIn");
    assert_eq!(n["Trigger"]["Dimensions"][0]["value"], instance.as_str());
}

/// Route 53's health checkers publish `AWS/Route53` `HealthCheckStatus` (0 unhealthy)
/// to CloudWatch in us-east-1, from their own probes: a TCP check of an address where
/// nothing answers turns unhealthy, and an alarm can watch it.
#[test]
fn a_failing_health_check_publishes_health_check_status_zero() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start_with(|c| c.metrics_interval = Some(Duration::from_secs(1)));
    let created = d.aws_cli_json(&[
        "route53",
        "create-health-check",
        "--caller-reference",
        "nothing-there",
        "--health-check-config",
        "IPAddress=203.0.113.10,Port=80,Type=TCP,RequestInterval=10,FailureThreshold=1",
    ]);
    let id = created["HealthCheck"]["Id"].as_str().unwrap().to_string();
    let dims = format!("Name=HealthCheckId,Value={id}");
    wait_until("HealthCheckStatus 0", 60, || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let start = (now - 600).to_string();
        let end = (now + 60).to_string();
        let got = d.aws_cli_json(&[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/Route53",
            "--metric-name",
            "HealthCheckStatus",
            "--dimensions",
            &dims,
            "--start-time",
            &start,
            "--end-time",
            &end,
            "--period",
            "60",
            "--statistics",
            "Minimum",
        ]);
        got["Datapoints"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x["Minimum"].as_f64() == Some(0.0)))
    });
}

/// The share of one core a spinning thread gets on this host right now (CPU time over
/// wall time for half a second), from `/proc/thread-self/schedstat`.
fn core_share() -> f64 {
    let cpu_ns = || -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    std::thread::spawn(move || {
        let (c0, t0) = (cpu_ns(), Instant::now());
        let mut x = 1u64;
        while t0.elapsed() < Duration::from_millis(500) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        (cpu_ns() - c0) as f64 / t0.elapsed().as_nanos() as f64
    })
    .join()
    .unwrap()
}

/// `CPUUtilization` comes from the CPU time the instance's workload really uses: idle,
/// the datapoints are 0; `stress --cpu 1` (installed with dnf, as on Amazon Linux) on a
/// one-vCPU t2.micro drives it past 50 % and an alarm on it goes to ALARM. The figure is
/// real CPU time, so on a host whose cores are taken by other work the hog gets less,
/// and how much less changes from second to second (CI measured a hog at 49 % right
/// after a spinning thread got 99 %). The threshold is therefore 20 %, four times what
/// the idle instance is asserted to stay under, or less when a spinning thread
/// measurably gets under 40 % of a core here.
#[test]
fn stress_on_an_instance_puts_a_cpu_utilization_alarm_in_alarm() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let share = core_share();
    let threshold = (share * 50.0).clamp(5.0, 20.0);
    eprintln!(
        "a spinning thread gets {:.0} % of a core: threshold {threshold:.1} %",
        share * 100.0
    );
    let d = TestDaemon::start_with(|c| c.metrics_interval = Some(Duration::from_secs(1)));
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (instance, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let dims = format!("Name=InstanceId,Value={instance}");
    d.aws_cli_json(&[
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        "cpu-high",
        "--namespace",
        "AWS/EC2",
        "--metric-name",
        "CPUUtilization",
        "--dimensions",
        &dims,
        "--statistic",
        "Maximum",
        "--period",
        "10",
        "--evaluation-periods",
        "1",
        "--threshold",
        &format!("{threshold:.1}"),
        "--comparison-operator",
        "GreaterThanThreshold",
    ]);
    let state = || {
        d.aws_cli_json(&["cloudwatch", "describe-alarms", "--alarm-names", "cpu-high"])
            ["MetricAlarms"][0]["StateValue"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    wait_until("the alarm to be OK while the instance idles", 40, || {
        state() == "OK"
    });
    let max_cpu = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let s = d.aws_cli_json(&[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/EC2",
            "--metric-name",
            "CPUUtilization",
            "--dimensions",
            &dims,
            "--statistics",
            "Maximum",
            "--period",
            "60",
            "--start-time",
            &(now - 600).to_string(),
            "--end-time",
            &(now + 60).to_string(),
        ]);
        s["Datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["Maximum"].as_f64())
            .fold(f64::NAN, f64::max)
    };
    let idle = max_cpu();
    assert!(idle < 5.0, "an idle instance uses next to no CPU: {idle}");

    let out = d.ssh(
        &key,
        "ec2-user",
        &ip,
        "sudo dnf install -y stress >/dev/null && stress --cpu 1 --timeout 12s",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("dispatching hogs: 1 cpu") && printed.contains("successful run completed"),
        "{printed}"
    );
    // The transition is read from the history: a period later the alarm is OK again.
    let fired = Instant::now() + Duration::from_secs(40);
    loop {
        let h = d.aws_cli_json(&[
            "cloudwatch",
            "describe-alarm-history",
            "--alarm-name",
            "cpu-high",
            "--history-item-type",
            "StateUpdate",
        ]);
        if h["AlarmHistoryItems"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["HistorySummary"].as_str())
            .any(|s| s.ends_with("to ALARM"))
        {
            break;
        }
        assert!(
            Instant::now() < fired,
            "the alarm did not fire; the highest CPUUtilization was {}",
            max_cpu()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let busy = max_cpu();
    assert!(busy > threshold, "a busy vCPU shows: {busy}");
}
