//! CloudWatch Logs through the real `aws logs` CLI (AWS JSON 1.1): groups, streams,
//! events, filter patterns, retention, tags, `aws logs tail`, and AWS's error codes.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{Lab, TestDaemon, have};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn logs(d: &TestDaemon, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["logs", "--region", "us-east-1"];
    all.extend_from_slice(args);
    d.aws_cli_json(&all)
}

fn logs_err(d: &TestDaemon, args: &[&str], code: &str) -> String {
    let mut all = vec!["logs", "--region", "us-east-1"];
    all.extend_from_slice(args);
    let err = d.aws_cli_err(&all);
    assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    err
}

#[test]
fn log_groups_streams_and_events_round_trip_through_the_cli() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    for g in ["/app/web", "/app/worker", "/other"] {
        logs(&d, &["create-log-group", "--log-group-name", g]);
    }
    logs_err(
        &d,
        &["create-log-group", "--log-group-name", "/app/web"],
        "ResourceAlreadyExistsException",
    );
    // Prefix, and pagination one group per page (the CLI follows nextToken).
    let listed = logs(
        &d,
        &["describe-log-groups", "--log-group-name-prefix", "/app/"],
    );
    let names: Vec<_> = listed["logGroups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["logGroupName"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["/app/web", "/app/worker"]);
    assert_eq!(
        listed["logGroups"][0]["arn"],
        "arn:aws:logs:us-east-1:000000000000:log-group:/app/web:*"
    );
    let page = logs(&d, &["describe-log-groups", "--max-items", "1"]);
    assert_eq!(page["logGroups"].as_array().map(Vec::len), Some(1));
    let token = page["NextToken"].as_str().expect("a next page");
    let rest = logs(&d, &["describe-log-groups", "--starting-token", token]);
    assert_eq!(rest["logGroups"].as_array().map(Vec::len), Some(2));

    logs(
        &d,
        &[
            "create-log-stream",
            "--log-group-name",
            "/app/web",
            "--log-stream-name",
            "i-1",
        ],
    );
    let t = now_ms();
    let events = format!(
        r#"[{{"timestamp":{},"message":"GET /index.html 200"}},{{"timestamp":{},"message":"ERROR db timeout"}},{{"timestamp":{},"message":"{{\"level\":\"warn\",\"ms\":950}}"}}]"#,
        t - 3000,
        t - 2000,
        t - 1000
    );
    let put = logs(
        &d,
        &[
            "put-log-events",
            "--log-group-name",
            "/app/web",
            "--log-stream-name",
            "i-1",
            "--log-events",
            &events,
        ],
    );
    assert!(put.get("rejectedLogEventsInfo").is_none(), "{put}");
    // Out of order: the whole batch fails.
    let unordered = format!(
        r#"[{{"timestamp":{t},"message":"b"}},{{"timestamp":{},"message":"a"}}]"#,
        t - 10
    );
    let err = logs_err(
        &d,
        &[
            "put-log-events",
            "--log-group-name",
            "/app/web",
            "--log-stream-name",
            "i-1",
            "--log-events",
            &unordered,
        ],
        "InvalidParameterException",
    );
    assert!(err.contains("chronological order"), "{err}");
    // More than 2 hours ahead: reported, not stored.
    let future = format!(
        r#"[{{"timestamp":{},"message":"from the future"}}]"#,
        t + 3 * 3600 * 1000
    );
    let put = logs(
        &d,
        &[
            "put-log-events",
            "--log-group-name",
            "/app/web",
            "--log-stream-name",
            "i-1",
            "--log-events",
            &future,
        ],
    );
    assert_eq!(put["rejectedLogEventsInfo"]["tooNewLogEventStartIndex"], 0);

    let got = logs(
        &d,
        &[
            "get-log-events",
            "--log-group-name",
            "/app/web",
            "--log-stream-name",
            "i-1",
            "--start-from-head",
        ],
    );
    let msgs: Vec<_> = got["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(msgs.len(), 3, "{got}");
    assert_eq!(msgs[0], "GET /index.html 200");
    assert!(
        got["nextForwardToken"]
            .as_str()
            .is_some_and(|t| t.starts_with("f/"))
    );

    let filter = |pattern: &str| -> Vec<String> {
        let out = logs(
            &d,
            &[
                "filter-log-events",
                "--log-group-name",
                "/app/web",
                "--filter-pattern",
                pattern,
            ],
        );
        out["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(filter("ERROR"), ["ERROR db timeout"]);
    assert_eq!(filter("?ERROR ?200").len(), 2);
    assert_eq!(filter("GET -ERROR"), ["GET /index.html 200"]);
    assert_eq!(filter("{ $.ms > 900 }").len(), 1);
    assert_eq!(
        filter("[method, path, status=200]"),
        ["GET /index.html 200"]
    );
    logs_err(
        &d,
        &[
            "filter-log-events",
            "--log-group-name",
            "/app/web",
            "--filter-pattern",
            "{ $.ms > }",
        ],
        "InvalidParameterException",
    );

    // Reading on from the forward token: nothing new yet, and the token stays put
    // (how a following reader knows it has caught up). `aws logs tail` is a CLI v2
    // command; the v1 CLI installed here has no `tail` (docs/fidelity.md).
    let fwd = got["nextForwardToken"].as_str().expect("token").to_string();
    let again = logs(
        &d,
        &[
            "get-log-events",
            "--log-group-name",
            "/app/web",
            "--log-stream-name",
            "i-1",
            "--next-token",
            &fwd,
        ],
    );
    assert_eq!(again["events"].as_array().map(Vec::len), Some(0), "{again}");
    assert_eq!(again["nextForwardToken"].as_str(), Some(fwd.as_str()));

    // Retention and tags.
    logs_err(
        &d,
        &[
            "put-retention-policy",
            "--log-group-name",
            "/app/web",
            "--retention-in-days",
            "2",
        ],
        "InvalidParameterException",
    );
    logs(
        &d,
        &[
            "put-retention-policy",
            "--log-group-name",
            "/app/web",
            "--retention-in-days",
            "7",
        ],
    );
    let arn = "arn:aws:logs:us-east-1:000000000000:log-group:/app/web";
    logs(
        &d,
        &[
            "tag-resource",
            "--resource-arn",
            arn,
            "--tags",
            "team=net,env=lab",
        ],
    );
    logs(
        &d,
        &["untag-resource", "--resource-arn", arn, "--tag-keys", "env"],
    );
    let tags = logs(&d, &["list-tags-for-resource", "--resource-arn", arn]);
    assert_eq!(tags["tags"], serde_json::json!({"team": "net"}));
    let g = logs(
        &d,
        &["describe-log-groups", "--log-group-name-prefix", "/app/web"],
    );
    assert_eq!(g["logGroups"][0]["retentionInDays"], 7);

    // Deleting: the stream, then the group; both then unknown.
    logs(
        &d,
        &[
            "delete-log-stream",
            "--log-group-name",
            "/app/web",
            "--log-stream-name",
            "i-1",
        ],
    );
    logs_err(
        &d,
        &[
            "get-log-events",
            "--log-group-name",
            "/app/web",
            "--log-stream-name",
            "i-1",
        ],
        "ResourceNotFoundException",
    );
    logs(&d, &["delete-log-group", "--log-group-name", "/app/web"]);
    logs_err(
        &d,
        &["delete-log-group", "--log-group-name", "/app/web"],
        "ResourceNotFoundException",
    );
}

/// Durable like every resource: groups and events survive a restart.
#[test]
fn log_events_survive_a_restart() {
    if !have("aws") {
        return;
    }
    let mut d = TestDaemon::start();
    logs(&d, &["create-log-group", "--log-group-name", "keep"]);
    logs(
        &d,
        &[
            "create-log-stream",
            "--log-group-name",
            "keep",
            "--log-stream-name",
            "s",
        ],
    );
    let ev = format!(r#"[{{"timestamp":{},"message":"still here"}}]"#, now_ms());
    logs(
        &d,
        &[
            "put-log-events",
            "--log-group-name",
            "keep",
            "--log-stream-name",
            "s",
            "--log-events",
            &ev,
        ],
    );
    d.stop();
    d.launch();
    let got = logs(
        &d,
        &[
            "get-log-events",
            "--log-group-name",
            "keep",
            "--log-stream-name",
            "s",
        ],
    );
    assert_eq!(got["events"][0]["message"], "still here");
}

/// What `aws logs tail --follow` does (CLI v2; the machine's CLI is v1): boto3 pages
/// through FilterLogEvents from a start time and polls again from the newest
/// timestamp, dropping event ids it has printed. New events, including one at that
/// same timestamp, show up once each, interleaved across streams.
#[test]
fn tail_follow_polling_through_filter_log_events_sees_each_new_event_once() {
    if !have("python3") {
        return;
    }
    let d = TestDaemon::start();
    let out = d.boto3("boto3_logs_tail.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("tail ").count(), 6, "{stdout}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}

/// The sums of `metric` in namespace `App` over the last hour, one per minute.
fn app_metric_sum(d: &TestDaemon, metric: &str) -> f64 {
    let now = now_ms() / 1000;
    let got = d.aws_cli_json(&[
        "cloudwatch",
        "get-metric-statistics",
        "--region",
        "us-east-1",
        "--namespace",
        "App",
        "--metric-name",
        metric,
        "--start-time",
        &(now - 3600).to_string(),
        "--end-time",
        &(now + 60).to_string(),
        "--period",
        "3600",
        "--statistics",
        "Sum",
    ]);
    got["Datapoints"]
        .as_array()
        .expect("Datapoints")
        .iter()
        .filter_map(|p| p["Sum"].as_f64())
        .sum()
}

/// Metric filters (CloudWatch Logs User Guide, "Creating metrics from log events using
/// filters"): each event the pattern matches publishes the filter's metric value, a
/// number or a JSON field of the event; events before the filter existed count for
/// nothing; a deleted filter publishes no more.
#[test]
fn metric_filters_turn_matching_log_events_into_metrics() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    logs(&d, &["create-log-group", "--log-group-name", "/app/api"]);
    logs(
        &d,
        &[
            "create-log-stream",
            "--log-group-name",
            "/app/api",
            "--log-stream-name",
            "i-1",
        ],
    );
    let put = |messages: &[&str]| {
        let t = now_ms();
        let events: Vec<serde_json::Value> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| serde_json::json!({"timestamp": t + i as i64, "message": m}))
            .collect();
        logs(
            &d,
            &[
                "put-log-events",
                "--log-group-name",
                "/app/api",
                "--log-stream-name",
                "i-1",
                "--log-events",
                &serde_json::to_string(&events).expect("json"),
            ],
        );
    };
    put(&[r#"{"level": "ERROR", "ms": 900}"#]);
    logs(
        &d,
        &[
            "put-metric-filter",
            "--log-group-name",
            "/app/api",
            "--filter-name",
            "errors",
            "--filter-pattern",
            r#"{ $.level = "ERROR" }"#,
            "--metric-transformations",
            "metricName=Errors,metricNamespace=App,metricValue=1",
        ],
    );
    logs(
        &d,
        &[
            "put-metric-filter",
            "--log-group-name",
            "/app/api",
            "--filter-name",
            "latency",
            "--filter-pattern",
            "{ $.ms > 0 }",
            "--metric-transformations",
            "metricName=LatencyMs,metricNamespace=App,metricValue=$.ms,unit=Milliseconds",
        ],
    );
    put(&[
        r#"{"level": "INFO", "ms": 20}"#,
        r#"{"level": "ERROR", "ms": 300}"#,
        r#"{"level": "ERROR", "ms": 100}"#,
        "not json at all",
    ]);
    assert_eq!(
        app_metric_sum(&d, "Errors"),
        2.0,
        "two ERROR events after the filter"
    );
    assert_eq!(
        app_metric_sum(&d, "LatencyMs"),
        420.0,
        "the ms fields summed"
    );

    let described = logs(
        &d,
        &["describe-metric-filters", "--log-group-name", "/app/api"],
    );
    let filters = described["metricFilters"].as_array().expect("filters");
    assert_eq!(filters.len(), 2, "{described}");
    assert_eq!(filters[0]["filterName"], "errors");
    assert_eq!(filters[0]["logGroupName"], "/app/api");
    assert_eq!(
        filters[1]["metricTransformations"][0]["metricValue"],
        "$.ms"
    );
    let by_metric = logs(
        &d,
        &[
            "describe-metric-filters",
            "--metric-name",
            "Errors",
            "--metric-namespace",
            "App",
        ],
    );
    assert_eq!(by_metric["metricFilters"].as_array().map(Vec::len), Some(1));

    logs(
        &d,
        &[
            "delete-metric-filter",
            "--log-group-name",
            "/app/api",
            "--filter-name",
            "errors",
        ],
    );
    put(&[r#"{"level": "ERROR", "ms": 1}"#]);
    assert_eq!(
        app_metric_sum(&d, "Errors"),
        2.0,
        "a deleted filter counts nothing"
    );
    assert_eq!(app_metric_sum(&d, "LatencyMs"), 421.0);

    logs_err(
        &d,
        &[
            "delete-metric-filter",
            "--log-group-name",
            "/app/api",
            "--filter-name",
            "errors",
        ],
        "ResourceNotFoundException",
    );
    logs_err(
        &d,
        &[
            "put-metric-filter",
            "--log-group-name",
            "/app/api",
            "--filter-name",
            "bad",
            "--filter-pattern",
            "{ $.ms > }",
            "--metric-transformations",
            "metricName=X,metricNamespace=App,metricValue=1",
        ],
        "InvalidParameterException",
    );
    logs_err(
        &d,
        &[
            "put-metric-filter",
            "--log-group-name",
            "/nope",
            "--filter-name",
            "x",
            "--filter-pattern",
            "ERROR",
            "--metric-transformations",
            "metricName=X,metricNamespace=App,metricValue=1",
        ],
        "ResourceNotFoundException",
    );
}
