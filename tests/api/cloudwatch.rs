//! CloudWatch metrics, metric math, dashboards and alarms through the real `aws
//! cloudwatch` CLI (AWS JSON 1.0), boto3 (Smithy RPC v2 CBOR since botocore 1.43), and
//! the awsQuery protocol older SDKs use, over raw HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{Lab, TestDaemon, have};

fn cw(d: &TestDaemon, args: &[&str]) -> Value {
    let mut full = vec!["cloudwatch"];
    full.extend_from_slice(args);
    d.aws_cli_json(&full)
}

/// `aws cloudwatch …` expecting the error `code`; returns stderr.
fn cw_err(d: &TestDaemon, args: &[&str], code: &str) -> String {
    let mut full = vec!["cloudwatch"];
    full.extend_from_slice(args);
    let out = d.aws_cli(&full);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} should fail with {code}");
    assert!(err.contains(&format!("({code})")), "expected {code}: {err}");
    err
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A minute boundary a few minutes ago, so every datapoint falls in known periods.
fn base() -> i64 {
    let n = now_s() - 600;
    n - n % 60
}

fn iso(secs: i64) -> String {
    // The CLI accepts epoch seconds for timestamp parameters.
    secs.to_string()
}

#[test]
fn statistics_and_metric_math_come_from_the_datapoints_put() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let b = base();
    // Three plain values in the first minute, a statistic set in the second, and a
    // Values/Counts array in the third, on one metric; one value on a second host.
    let data = serde_json::json!([
        {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}], "Timestamp": b + 1, "Value": 10.0, "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}], "Timestamp": b + 2, "Value": 20.0, "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}], "Timestamp": b + 3, "Value": 60.0, "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}], "Timestamp": b + 61,
         "StatisticValues": {"SampleCount": 4, "Sum": 100, "Minimum": 5, "Maximum": 50}, "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}], "Timestamp": b + 121,
         "Values": [1, 3], "Counts": [2, 2], "Unit": "Milliseconds", "StorageResolution": 1},
        {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "b"}], "Timestamp": b + 1, "Value": 5.0, "Unit": "Milliseconds"},
    ])
    .to_string();
    cw(
        &d,
        &[
            "put-metric-data",
            "--namespace",
            "Shop",
            "--metric-data",
            &data,
        ],
    );

    let stats = cw(
        &d,
        &[
            "get-metric-statistics",
            "--namespace",
            "Shop",
            "--metric-name",
            "Latency",
            "--dimensions",
            "Name=Host,Value=a",
            "--start-time",
            &iso(b),
            "--end-time",
            &iso(b + 180),
            "--period",
            "60",
            "--statistics",
            "Sum",
            "Average",
            "Minimum",
            "Maximum",
            "SampleCount",
        ],
    );
    assert_eq!(stats["Label"], "Latency");
    let mut points = stats["Datapoints"].as_array().cloned().unwrap();
    // CLI v1 prints timestamps as received: JSON 1.0 sends epoch seconds.
    points.sort_by(|a, b| {
        a["Timestamp"]
            .as_f64()
            .partial_cmp(&b["Timestamp"].as_f64())
            .unwrap()
    });
    assert_eq!(points.len(), 3, "{stats}");
    assert_eq!(points[0]["Sum"], 90.0);
    assert_eq!(points[0]["Average"], 30.0);
    assert_eq!(points[0]["Minimum"], 10.0);
    assert_eq!(points[0]["Maximum"], 60.0);
    assert_eq!(points[0]["SampleCount"], 3.0);
    assert_eq!(points[0]["Unit"], "Milliseconds");
    assert_eq!(points[1]["Average"], 25.0);
    assert_eq!(points[2]["Sum"], 8.0, "1×2 + 3×2");
    assert_eq!(points[2]["SampleCount"], 4.0);
    // Each period is timestamped at its start.
    assert_eq!(points[0]["Timestamp"].as_f64(), Some(b as f64), "{stats}");
    assert_eq!(points[2]["Timestamp"].as_f64(), Some((b + 120) as f64));

    let listed = cw(&d, &["list-metrics", "--namespace", "Shop"]);
    assert_eq!(
        listed["Metrics"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let only_b = cw(&d, &["list-metrics", "--dimensions", "Name=Host,Value=b"]);
    assert_eq!(only_b["Metrics"][0]["Dimensions"][0]["Value"], "b");

    let queries = serde_json::json!([
        {"Id": "a", "MetricStat": {"Metric": {"Namespace": "Shop", "MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}]}, "Period": 60, "Stat": "Sum"}, "ReturnData": false},
        {"Id": "h", "MetricStat": {"Metric": {"Namespace": "Shop", "MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "b"}]}, "Period": 60, "Stat": "Sum"}, "ReturnData": false},
        {"Id": "both", "Expression": "a + h", "Label": "a plus b"},
        {"Id": "total", "Expression": "SUM(METRICS())"},
        {"Id": "avg", "Expression": "AVG(a)"},
        {"Id": "maxed", "Expression": "MAX([a, h]) * 2"},
    ])
    .to_string();
    let md = cw(
        &d,
        &[
            "get-metric-data",
            "--metric-data-queries",
            &queries,
            "--start-time",
            &iso(b),
            "--end-time",
            &iso(b + 180),
            "--scan-by",
            "TimestampAscending",
        ],
    );
    let r = md["MetricDataResults"].as_array().unwrap();
    let by = |id: &str| {
        r.iter()
            .find(|x| x["Id"] == id)
            .unwrap_or_else(|| panic!("{id}: {md}"))
    };
    assert!(
        r.iter().all(|x| x["Id"] != "a"),
        "ReturnData false hides a query"
    );
    // Arithmetic keeps the timestamps both series have: only the first minute.
    assert_eq!(by("both")["Values"], serde_json::json!([95.0]));
    assert_eq!(by("both")["Label"], "a plus b");
    assert_eq!(by("total")["Values"], serde_json::json!([95.0, 100.0, 8.0]));
    assert_eq!(
        by("avg")["Values"][0],
        serde_json::json!((90.0 + 100.0 + 8.0) / 3.0)
    );
    assert_eq!(
        by("maxed")["Values"],
        serde_json::json!([180.0, 200.0, 16.0])
    );
    assert_eq!(by("total")["Timestamps"].as_array().map(Vec::len), Some(3));

    // Bad input: AWS's codes.
    cw_err(
        &d,
        &[
            "put-metric-data",
            "--namespace",
            "Shop",
            "--metric-name",
            "X",
            "--value",
            "1",
            "--unit",
            "Furlongs",
        ],
        "InvalidParameterValue",
    );
    let both = serde_json::json!([{"MetricName": "X", "Value": 1, "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}]).to_string();
    cw_err(
        &d,
        &[
            "put-metric-data",
            "--namespace",
            "Shop",
            "--metric-data",
            &both,
        ],
        "InvalidParameterCombination",
    );
    cw_err(
        &d,
        &[
            "put-metric-data",
            "--namespace",
            "AWS/EC2",
            "--metric-name",
            "X",
            "--value",
            "1",
        ],
        "InvalidParameterValue",
    );
    cw_err(
        &d,
        &[
            "get-metric-statistics",
            "--namespace",
            "Shop",
            "--metric-name",
            "Latency",
            "--start-time",
            &iso(b),
            "--end-time",
            &iso(b + 60),
            "--period",
            "7",
            "--statistics",
            "Sum",
        ],
        "InvalidParameterValue",
    );
    let bad_expr = serde_json::json!([{"Id": "e", "Expression": "nosuch * 2"}]).to_string();
    cw_err(
        &d,
        &[
            "get-metric-data",
            "--metric-data-queries",
            &bad_expr,
            "--start-time",
            &iso(b),
            "--end-time",
            &iso(b + 60),
        ],
        "ValidationError",
    );
}

#[test]
fn dashboards_are_put_listed_read_and_deleted() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let body = r#"{"widgets":[{"type":"metric","x":0,"y":0,"width":6,"height":6,"properties":{"metrics":[["AWS/EC2","NetworkIn"]],"region":"us-east-1"}}]}"#;
    cw(
        &d,
        &[
            "put-dashboard",
            "--dashboard-name",
            "net",
            "--dashboard-body",
            body,
        ],
    );
    let got = cw(&d, &["get-dashboard", "--dashboard-name", "net"]);
    assert_eq!(got["DashboardBody"], body);
    assert_eq!(
        got["DashboardArn"],
        "arn:aws:cloudwatch::000000000000:dashboard/net"
    );
    let list = cw(&d, &["list-dashboards"]);
    assert_eq!(list["DashboardEntries"][0]["DashboardName"], "net");
    assert_eq!(list["DashboardEntries"][0]["Size"], body.len());
    cw_err(
        &d,
        &[
            "put-dashboard",
            "--dashboard-name",
            "x",
            "--dashboard-body",
            "not json",
        ],
        "InvalidParameterInput",
    );
    cw(&d, &["delete-dashboards", "--dashboard-names", "net"]);
    cw_err(
        &d,
        &["get-dashboard", "--dashboard-name", "net"],
        "ResourceNotFound",
    );
    cw_err(
        &d,
        &["delete-dashboards", "--dashboard-names", "net"],
        "ResourceNotFound",
    );
}

#[test]
fn alarms_go_to_alarm_on_breaching_data_record_history_and_compose() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    cw(
        &d,
        &[
            "put-metric-alarm",
            "--alarm-name",
            "errors-high",
            "--namespace",
            "Shop",
            "--metric-name",
            "Errors",
            "--statistic",
            "Sum",
            "--period",
            "10",
            "--evaluation-periods",
            "1",
            "--threshold",
            "5",
            "--comparison-operator",
            "GreaterThanThreshold",
            "--treat-missing-data",
            "notBreaching",
        ],
    );
    cw(
        &d,
        &[
            "put-composite-alarm",
            "--alarm-name",
            "shop-down",
            "--alarm-rule",
            "ALARM(\"errors-high\") AND NOT OK(errors-high)",
        ],
    );
    let a = cw(&d, &["describe-alarms", "--alarm-names", "errors-high"]);
    // Created in INSUFFICIENT_DATA; the first evaluation (missing data counts as not
    // breaching) may already have made it OK.
    let first = a["MetricAlarms"][0]["StateValue"].as_str().unwrap_or("");
    assert!(first == "INSUFFICIENT_DATA" || first == "OK", "{a}");
    assert_eq!(a["MetricAlarms"][0]["TreatMissingData"], "notBreaching");
    assert_eq!(
        a["CompositeAlarms"].as_array().map(Vec::len),
        Some(0),
        "metric alarms only by default"
    );

    // Breaching data in the current 10-second period: the next evaluation sees it
    // once the period is complete.
    cw(
        &d,
        &[
            "put-metric-data",
            "--namespace",
            "Shop",
            "--metric-name",
            "Errors",
            "--value",
            "9",
        ],
    );
    // Read from the history: the alarm returns to OK one period later (missing data is
    // not breaching), which a loaded machine's polling of the current state can miss.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let reason = loop {
        let h = cw(
            &d,
            &[
                "describe-alarm-history",
                "--alarm-name",
                "errors-high",
                "--history-item-type",
                "StateUpdate",
            ],
        );
        let to_alarm = h["AlarmHistoryItems"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| {
                x["HistorySummary"]
                    .as_str()
                    .is_some_and(|s| s.ends_with("to ALARM"))
            })
            .cloned();
        if let Some(item) = to_alarm {
            let data: Value = serde_json::from_str(item["HistoryData"].as_str().unwrap_or("{}"))
                .expect("HistoryData is JSON");
            break data["newState"]["stateReason"]
                .as_str()
                .unwrap_or("")
                .to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "errors-high never went to ALARM: {h}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(
        reason.starts_with("Threshold Crossed: 1 out of the last 1 datapoints [9"),
        "{reason}"
    );
    // The composite alarm followed (read from its history: the metric alarm returns
    // to OK at the next evaluation, as missing data counts as not breaching).
    let composite = cw(
        &d,
        &[
            "describe-alarm-history",
            "--alarm-name",
            "shop-down",
            "--history-item-type",
            "StateUpdate",
        ],
    );
    let summaries = |h: &Value| -> Vec<String> {
        h["AlarmHistoryItems"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["HistorySummary"].as_str().map(str::to_string))
            .collect()
    };
    assert!(
        summaries(&composite)
            .iter()
            .any(|s| s.ends_with("to ALARM")),
        "{composite}"
    );
    assert_eq!(
        composite["AlarmHistoryItems"][0]["AlarmType"],
        "CompositeAlarm"
    );

    let for_metric = cw(
        &d,
        &[
            "describe-alarms-for-metric",
            "--namespace",
            "Shop",
            "--metric-name",
            "Errors",
        ],
    );
    assert_eq!(for_metric["MetricAlarms"][0]["AlarmName"], "errors-high");
    let history = cw(
        &d,
        &[
            "describe-alarm-history",
            "--alarm-name",
            "errors-high",
            "--history-item-type",
            "StateUpdate",
        ],
    );
    assert!(
        summaries(&history).iter().any(|s| s.ends_with("to ALARM")),
        "{history}"
    );

    // SetAlarmState: INSUFFICIENT_DATA is a state evaluation never picks for this alarm.
    cw(
        &d,
        &[
            "set-alarm-state",
            "--alarm-name",
            "errors-high",
            "--state-value",
            "INSUFFICIENT_DATA",
            "--state-reason",
            "testing",
        ],
    );
    let history = cw(
        &d,
        &[
            "describe-alarm-history",
            "--alarm-name",
            "errors-high",
            "--history-item-type",
            "StateUpdate",
        ],
    );
    assert!(
        summaries(&history)
            .iter()
            .any(|s| s.ends_with("to INSUFFICIENT_DATA")),
        "{history}"
    );
    assert!(
        history["AlarmHistoryItems"].to_string().contains("testing"),
        "{history}"
    );
    cw(
        &d,
        &["disable-alarm-actions", "--alarm-names", "errors-high"],
    );
    let a = cw(&d, &["describe-alarms", "--alarm-names", "errors-high"]);
    assert_eq!(a["MetricAlarms"][0]["ActionsEnabled"], false);

    cw_err(
        &d,
        &[
            "set-alarm-state",
            "--alarm-name",
            "nope",
            "--state-value",
            "OK",
            "--state-reason",
            "x",
        ],
        "ResourceNotFound",
    );
    cw_err(
        &d,
        &[
            "put-metric-alarm",
            "--alarm-name",
            "bad",
            "--namespace",
            "Shop",
            "--metric-name",
            "Errors",
            "--statistic",
            "Sum",
            "--period",
            "60",
            "--evaluation-periods",
            "2",
            "--datapoints-to-alarm",
            "3",
            "--threshold",
            "1",
            "--comparison-operator",
            "GreaterThanThreshold",
        ],
        "InvalidParameterValue",
    );
    cw_err(
        &d,
        &[
            "put-composite-alarm",
            "--alarm-name",
            "c2",
            "--alarm-rule",
            "ALARM(x) AND",
        ],
        "InvalidParameterValue",
    );
    cw(
        &d,
        &["delete-alarms", "--alarm-names", "shop-down", "errors-high"],
    );
    cw_err(
        &d,
        &["delete-alarms", "--alarm-names", "errors-high"],
        "ResourceNotFound",
    );
}

/// boto3 speaks Smithy RPC v2 CBOR to CloudWatch (the CLI speaks JSON 1.0): the same
/// answers, with timestamps as CBOR tag 1 and the Query error codes.
#[test]
fn boto3_over_rpc_v2_cbor_reads_statistics_math_and_errors() {
    if !have("python3") {
        return;
    }
    let d = TestDaemon::start();
    let out = d.boto3("boto3_cloudwatch.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("protocol smithy-rpc-v2-cbor"), "{stdout}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}

/// awsQuery, as the Node SDK v2 and older botocore send it: a signed form POST.
fn query(d: &TestDaemon, form: &str) -> (u16, String) {
    let addr = d.url().trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).expect("connect");
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=00\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn the_query_protocol_reads_members_and_writes_xml() {
    let d = TestDaemon::start();
    let b = base();
    let (status, body) = query(
        &d,
        &format!(
            "Action=PutMetricData&Version=2010-08-01&Namespace=Shop&MetricData.member.1.MetricName=Hits&MetricData.member.1.Value=4&MetricData.member.1.Timestamp={b}&MetricData.member.1.Dimensions.member.1.Name=Page&MetricData.member.1.Dimensions.member.1.Value=home&MetricData.member.2.MetricName=Hits&MetricData.member.2.Value=6&MetricData.member.2.Timestamp={b}&MetricData.member.2.Dimensions.member.1.Name=Page&MetricData.member.2.Dimensions.member.1.Value=home"
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(
            "<PutMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">"
        ),
        "{body}"
    );
    let start = b - 60;
    let (status, body) = query(
        &d,
        &format!(
            "Action=GetMetricStatistics&Version=2010-08-01&Namespace=Shop&MetricName=Hits&Dimensions.member.1.Name=Page&Dimensions.member.1.Value=home&StartTime={start}&EndTime={}&Period=60&Statistics.member.1=Sum&Statistics.member.2=Average",
            b + 60
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<Sum>10.0</Sum>") || body.contains("<Sum>10</Sum>"),
        "{body}"
    );
    assert!(
        body.contains("<Average>5.0</Average>") || body.contains("<Average>5</Average>"),
        "{body}"
    );
    assert!(body.contains("<Datapoints><member>"), "{body}");
    let (status, body) = query(
        &d,
        "Action=GetMetricStatistics&Version=2010-08-01&MetricName=Hits",
    );
    assert_eq!(status, 400);
    assert!(body.contains("<Code>MissingParameter</Code>"), "{body}");
}
