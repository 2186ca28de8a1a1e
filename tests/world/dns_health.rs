//! Route 53 health checks end to end, with the real tools: the `aws route53 …health-check…`
//! commands against the daemon, and DNS failover seen by `dig` on its DNS endpoint
//! when a security group stops letting the health checkers (192.0.2.96/29) reach
//! the primary's web server — as on AWS, where the checkers' ranges must be allowed.
//!
//! Probes run every 500 ms here (`DaemonConfig::for_tests`, the harness's default)
//! instead of every 10 or 30 s, so failover happens within seconds.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{Lab, Network, TestDaemon, stderr, stdout};

fn route53(d: &dyn Lab, args: &[&str]) -> Output {
    let mut cmd = Command::new("aws");
    cmd.arg("route53").args(args).args(["--output", "json"]);
    d.env(&mut cmd);
    cmd.output().expect("run aws route53")
}

fn route53_ok(d: &dyn Lab, args: &[&str]) -> serde_json::Value {
    let out = route53(d, args);
    assert!(
        out.status.success(),
        "aws route53 {args:?} failed: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    if text.trim().is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&text).expect("json output")
}

/// Polls `f` until it returns true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn statuses(d: &dyn Lab, id: &str) -> Vec<String> {
    let v = route53_ok(d, &["get-health-check-status", "--health-check-id", id]);
    v["HealthCheckObservations"]
        .as_array()
        .expect("observations")
        .iter()
        .map(|o| {
            o["StatusReport"]["Status"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

#[test]
fn health_check_api_with_the_aws_cli() {
    let d = TestDaemon::start();
    let config = "IPAddress=198.18.0.7,Port=80,Type=HTTP,ResourcePath=/health,RequestInterval=10,FailureThreshold=2";
    let created = route53_ok(
        &d,
        &[
            "create-health-check",
            "--caller-reference",
            "web-1",
            "--health-check-config",
            config,
        ],
    );
    let hc = &created["HealthCheck"];
    let id = hc["Id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(hc["HealthCheckConfig"]["Type"], "HTTP");
    assert_eq!(hc["HealthCheckConfig"]["FailureThreshold"], 2);
    assert_eq!(hc["HealthCheckVersion"], 1);
    assert!(
        created["Location"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!("/healthcheck/{id}")))
    );

    // The same caller reference: the same check; with another configuration: refused.
    let again = route53_ok(
        &d,
        &[
            "create-health-check",
            "--caller-reference",
            "web-1",
            "--health-check-config",
            config,
        ],
    );
    assert_eq!(again["HealthCheck"]["Id"], id.as_str());
    let out = route53(
        &d,
        &[
            "create-health-check",
            "--caller-reference",
            "web-1",
            "--health-check-config",
            "IPAddress=198.18.0.8,Port=80,Type=HTTP",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("HealthCheckAlreadyExists"),
        "{}",
        stderr(&out)
    );

    // Checkers are on the internet: a private address cannot be checked.
    let out = route53(
        &d,
        &[
            "create-health-check",
            "--caller-reference",
            "private",
            "--health-check-config",
            "IPAddress=10.0.1.5,Port=80,Type=TCP",
        ],
    );
    assert!(stderr(&out).contains("InvalidInput"), "{}", stderr(&out));

    let got = route53_ok(&d, &["get-health-check", "--health-check-id", &id]);
    assert_eq!(
        got["HealthCheck"]["HealthCheckConfig"]["IPAddress"],
        "198.18.0.7"
    );
    assert_eq!(
        got["HealthCheck"]["HealthCheckConfig"]["ResourcePath"],
        "/health"
    );
    let list = route53_ok(&d, &["list-health-checks"]);
    let ids: Vec<&str> = list["HealthChecks"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|h| h["Id"].as_str())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
    let count = route53_ok(&d, &["get-health-check-count"]);
    assert_eq!(count["HealthCheckCount"], 1);
    let ranges = route53_ok(&d, &["get-checker-ip-ranges"]);
    assert_eq!(ranges["CheckerIpRanges"][0], "192.0.2.96/29");

    // Nothing answers at 198.18.0.7: every checker reports a timeout.
    assert!(
        eventually(Duration::from_secs(20), || {
            let s = statuses(&d, &id);
            s.len() == 8
                && s.iter()
                    .all(|s| s.starts_with("Failure: Connection timed out"))
        }),
        "{:?}",
        statuses(&d, &id)
    );

    // Record sets may name existing checks only.
    let zone = route53_ok(
        &d,
        &[
            "create-hosted-zone",
            "--name",
            "example.lab",
            "--caller-reference",
            "z1",
        ],
    );
    let zone_id = zone["HostedZone"]["Id"]
        .as_str()
        .expect("zone id")
        .to_owned();
    let batch = |hc: &str| {
        format!(
            r#"{{"Changes":[{{"Action":"CREATE","ResourceRecordSet":{{"Name":"www.example.lab","Type":"A","SetIdentifier":"p","Failover":"PRIMARY","TTL":5,"ResourceRecords":[{{"Value":"198.18.0.7"}}],"HealthCheckId":"{hc}"}}}}]}}"#
        )
    };
    let out = route53(
        &d,
        &[
            "change-resource-record-sets",
            "--hosted-zone-id",
            &zone_id,
            "--change-batch",
            &batch("00000000-0000-0000-0000-000000000000"),
        ],
    );
    assert!(
        stderr(&out).contains("NoSuchHealthCheck"),
        "{}",
        stderr(&out)
    );
    route53_ok(
        &d,
        &[
            "change-resource-record-sets",
            "--hosted-zone-id",
            &zone_id,
            "--change-batch",
            &batch(&id),
        ],
    );

    let updated = route53_ok(
        &d,
        &[
            "update-health-check",
            "--health-check-id",
            &id,
            "--health-check-version",
            "1",
            "--failure-threshold",
            "5",
        ],
    );
    assert_eq!(updated["HealthCheck"]["HealthCheckVersion"], 2);
    assert_eq!(
        updated["HealthCheck"]["HealthCheckConfig"]["FailureThreshold"],
        5
    );
    let out = route53(
        &d,
        &[
            "update-health-check",
            "--health-check-id",
            &id,
            "--health-check-version",
            "1",
            "--disabled",
        ],
    );
    assert!(
        stderr(&out).contains("HealthCheckVersionMismatch"),
        "{}",
        stderr(&out)
    );

    route53_ok(&d, &["delete-health-check", "--health-check-id", &id]);
    let out = route53(&d, &["get-health-check", "--health-check-id", &id]);
    assert!(
        stderr(&out).contains("NoSuchHealthCheck"),
        "{}",
        stderr(&out)
    );

    // Health checks are stored: they survive a restart.
    let kept = route53_ok(
        &d,
        &[
            "create-health-check",
            "--caller-reference",
            "tcp-1",
            "--health-check-config",
            "IPAddress=198.18.0.9,Port=22,Type=TCP",
        ],
    );
    let kept_id = kept["HealthCheck"]["Id"].as_str().expect("id").to_owned();
    let mut d = d;
    d.stop();
    d.launch();
    let got = route53_ok(&d, &["get-health-check", "--health-check-id", &kept_id]);
    assert_eq!(got["HealthCheck"]["HealthCheckConfig"]["Type"], "TCP");
}

#[test]
fn failover_follows_the_security_group_that_admits_the_health_checkers() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    // SSH from anywhere; HTTP only from Route 53's health checkers.
    let sg = net.security_group(&d, "web", &[(22, "0.0.0.0/0"), (80, "192.0.2.96/29")]);
    let key = d.key_pair("lab", "ed25519");
    let (_, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let out = d.ssh(
        &key,
        "ec2-user",
        &ip,
        "sudo dnf install -y httpd >/dev/null && echo primary | sudo tee /var/www/html/index.html >/dev/null && sudo systemctl start httpd",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let hc = route53_ok(
        &d,
        &[
            "create-health-check",
            "--caller-reference",
            "primary-web",
            "--health-check-config",
            &format!(
                "IPAddress={ip},Port=80,Type=HTTP,ResourcePath=/,RequestInterval=10,FailureThreshold=2"
            ),
        ],
    );
    let hc_id = hc["HealthCheck"]["Id"].as_str().expect("id").to_owned();
    let zone = route53_ok(
        &d,
        &[
            "create-hosted-zone",
            "--name",
            "example.lab",
            "--caller-reference",
            "z1",
        ],
    );
    let zone_id = zone["HostedZone"]["Id"]
        .as_str()
        .expect("zone id")
        .to_owned();
    // The secondary is the world's web site (192.0.2.80).
    let batch = format!(
        r#"{{"Changes":[
            {{"Action":"CREATE","ResourceRecordSet":{{"Name":"www.example.lab","Type":"A","SetIdentifier":"primary","Failover":"PRIMARY","TTL":5,"ResourceRecords":[{{"Value":"{ip}"}}],"HealthCheckId":"{hc_id}"}}}},
            {{"Action":"CREATE","ResourceRecordSet":{{"Name":"www.example.lab","Type":"A","SetIdentifier":"secondary","Failover":"SECONDARY","TTL":5,"ResourceRecords":[{{"Value":"192.0.2.80"}}]}}}}]}}"#
    );
    route53_ok(
        &d,
        &[
            "change-resource-record-sets",
            "--hosted-zone-id",
            &zone_id,
            "--change-batch",
            &batch,
        ],
    );

    assert!(
        eventually(Duration::from_secs(20), || {
            let s = statuses(&d, &hc_id);
            s.len() == 8 && s.iter().all(|s| s == "Success: HTTP Status Code 200, OK")
        }),
        "{:?}",
        statuses(&d, &hc_id)
    );
    assert_eq!(d.dig_short("www.example.lab"), ip);

    // Revoke the checkers' rule: their SYNs are dropped, the check fails, DNS fails over.
    let revoke = [
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--cidr",
        "192.0.2.96/29",
    ];
    let answer = || d.dig_short("www.example.lab");
    let mut args = vec!["revoke-security-group-ingress"];
    args.extend_from_slice(&revoke);
    d.aws_text(&args);
    let revoked = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || answer() == "192.0.2.80"),
        "dig still answers {}",
        answer()
    );
    eprintln!(
        "failover to the secondary {:?} after the revoke (interval 500 ms, threshold 2)",
        revoked.elapsed()
    );
    let s = statuses(&d, &hc_id);
    assert!(
        s.iter()
            .any(|s| s.starts_with("Failure: Connection timed out")),
        "{s:?}"
    );

    // Restore it: the primary answers again.
    let mut args = vec!["authorize-security-group-ingress"];
    args.extend_from_slice(&revoke);
    d.aws_text(&args);
    let restored = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || answer() == ip),
        "dig still answers {}",
        answer()
    );
    eprintln!(
        "back to the primary {:?} after the restore",
        restored.elapsed()
    );
}
