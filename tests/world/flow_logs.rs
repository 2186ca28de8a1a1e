//! VPC Flow Logs from the fabric's real verdicts, read back with the real `aws logs`
//! CLI: a refused SSH attempt (security group without port 22) appears as a REJECT
//! record found by the space-delimited filter pattern AWS documents for flow logs.

use std::time::{Duration, Instant};

use crate::support::{Lab, Network, TestDaemon, have, stderr};

const REJECTED_SSH: &str = "[version, account, eni, source, destination, srcport, destport=\"22\", protocol=\"6\", packets, bytes, windowstart, windowend, action=\"REJECT\", flowlogstatus]";

fn daemon() -> TestDaemon {
    TestDaemon::start_with(|c| c.flow_log_window = Some(Duration::from_millis(400)))
}

/// `aws logs filter-log-events` until it finds something (flow logs are delivered
/// once per capture window), or 20 s pass.
pub(crate) fn wait_for_events(
    d: &TestDaemon,
    group: &str,
    pattern: &str,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = d.aws_cli_json(&[
            "logs",
            "--region",
            "us-east-1",
            "filter-log-events",
            "--log-group-name",
            group,
            "--filter-pattern",
            pattern,
        ]);
        let events = out["events"].as_array().cloned().unwrap_or_default();
        if !events.is_empty() || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_refused_ssh_attempt_is_a_reject_record_found_by_the_flow_log_pattern() {
    if !have("aws") {
        return;
    }
    let d = daemon();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "web-only", &[(80, "0.0.0.0/0")]);
    d.key_pair("lab", "ed25519");
    let (instance, ip, private_ip) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let eni = d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        &instance,
        "--query",
        "Reservations[0].Instances[0].NetworkInterfaces[0].NetworkInterfaceId",
    ]);
    d.aws_cli_json(&[
        "logs",
        "--region",
        "us-east-1",
        "create-log-group",
        "--log-group-name",
        "vpc-flow",
    ]);
    let created = d.aws(&[
        "create-flow-logs",
        "--resource-type",
        "VPC",
        "--resource-ids",
        &net.vpc,
        "vpc-00000000000000000",
        "--traffic-type",
        "ALL",
        "--log-group-name",
        "vpc-flow",
        "--deliver-logs-permission-arn",
        "arn:aws:iam::000000000000:role/flow-logs",
        "--max-aggregation-interval",
        "60",
    ]);
    let fl = created["FlowLogIds"][0]
        .as_str()
        .expect("an id")
        .to_string();
    assert_eq!(
        created["Unsuccessful"][0]["Error"]["Code"], "InvalidVpcID.NotFound",
        "{created}"
    );
    let described = d.aws(&["describe-flow-logs", "--flow-log-ids", &fl]);
    let f = &described["FlowLogs"][0];
    assert_eq!(f["ResourceId"], net.vpc.as_str());
    assert_eq!(f["TrafficType"], "ALL");
    assert_eq!(f["MaxAggregationInterval"], 60);
    assert_eq!(
        f["LogFormat"],
        "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}"
    );

    // The SYN crosses the internet gateway and the NACL, and the security group drops it.
    let out = d.vpclab(&["connect", "--timeout", "1", &ip, "22"], b"");
    assert!(!out.status.success(), "{}", stderr(&out));

    let events = wait_for_events(&d, "vpc-flow", REJECTED_SSH);
    assert!(!events.is_empty(), "no REJECT record for port 22");
    let msg = events[0]["message"].as_str().expect("message");
    let fields: Vec<&str> = msg.split(' ').collect();
    assert_eq!(fields.len(), 14, "{msg}");
    assert_eq!(fields[0], "2");
    assert_eq!(fields[1], "000000000000");
    assert_eq!(fields[2], eni, "{msg}");
    assert_eq!(
        fields[4], private_ip,
        "the interface sees its private address: {msg}"
    );
    assert_eq!(
        events[0]["logStreamName"],
        eni.as_str(),
        "stream named after the ENI"
    );
    // Nothing was accepted on port 22.
    let accepted = wait_for_events(
        &d,
        "vpc-flow",
        "[v, a, e, s, d, sp, dp=22, p, pk, b, st, en, action=ACCEPT, ls]",
    );
    assert!(accepted.is_empty(), "{accepted:?}");

    let out = d.aws(&[
        "delete-flow-logs",
        "--flow-log-ids",
        &fl,
        "fl-00000000000000000",
    ]);
    assert_eq!(
        out["Unsuccessful"][0]["Error"]["Code"], "InvalidFlowLogId.NotFound",
        "{out}"
    );
    let left = d.aws(&["describe-flow-logs"]);
    assert_eq!(left["FlowLogs"].as_array().map(Vec::len), Some(0));
}

#[test]
fn custom_formats_take_v3_to_v5_fields_and_refuse_unknown_ones() {
    if !have("aws") {
        return;
    }
    let d = daemon();
    let net = Network::build(&d);
    let base = [
        "create-flow-logs",
        "--resource-type",
        "Subnet",
        "--resource-ids",
        &net.public_subnet,
        "--traffic-type",
        "REJECT",
        "--log-group-name",
        "custom",
        "--deliver-logs-permission-arn",
        "arn:aws:iam::000000000000:role/flow-logs",
        "--log-format",
    ];
    let mut bad = base.to_vec();
    bad.push("${version} ${srcaddr} ${no-such-field}");
    let err = d.aws_err(&bad, "InvalidParameter");
    assert!(err.contains("no-such-field"), "{err}");
    let mut good = base.to_vec();
    good.push("${version} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${pkt-srcaddr} ${dstport} ${tcp-flags} ${flow-direction} ${action}");
    let created = d.aws(&good);
    let id = created["FlowLogIds"][0].as_str().expect("id");
    let f = d.aws(&["describe-flow-logs", "--flow-log-ids", id]);
    assert_eq!(f["FlowLogs"][0]["MaxAggregationInterval"], 600);

    let sg = net.security_group(&d, "closed", &[]);
    d.key_pair("lab", "ed25519");
    let (instance, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let out = d.vpclab(&["connect", "--timeout", "1", &ip, "22"], b"");
    assert!(!out.status.success());
    // The log group did not exist: delivery created it, as AWS's does.
    let events = wait_for_events(
        &d,
        "custom",
        "[..., dport=22, flags, direction=ingress, action=REJECT]",
    );
    assert!(!events.is_empty(), "no REJECT record");
    let msg = events[0]["message"].as_str().expect("message");
    let fields: Vec<&str> = msg.split(' ').collect();
    assert_eq!(fields[0], "5", "{msg}");
    assert_eq!(fields[1], net.vpc, "{msg}");
    assert_eq!(fields[2], net.public_subnet, "{msg}");
    assert_eq!(fields[3], instance, "{msg}");
    assert_eq!(fields[7], "2", "a lone SYN: {msg}");
}
