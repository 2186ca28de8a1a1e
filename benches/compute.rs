//! Compute on the fabric: an application load balancer over one Fargate task, the same
//! task reached directly, a Lambda function's cold and warm invocations, a task's start.
//!
//! Prints `BENCH compute alb_rps=… alb_p50_ms=… direct_rps=… lambda_cold_ms=…
//! lambda_warm_ms=… task_start_ms=…`:
//!
//! - `alb_rps`, `alb_p50_ms`: sequential HTTP GETs, one TCP connection each, from the
//!   learner's address through the daemon's browser proxy (loopback) to the ALB's DNS
//!   name; the ALB node forwards to the nginx task through the fabric.
//! - `direct_rps`: the same requests to the task's public address (no ALB in between).
//! - `lambda_cold_ms`: the first Invoke of a Python function (a new execution
//!   environment); `lambda_warm_ms` the p50 of the following ones; both measured on the
//!   API port with a raw HTTP request (no aws CLI start-up in the figure). `NA` where
//!   functions cannot run (no user namespaces).
//! - `task_start_ms`: `startedAt - createdAt` of the service's task, as ECS reports it.
//!
//! Loopback only; bounded: `VPCLAB_BENCH_COMPUTE_N` requests per figure (default 200;
//! 20 without `--bench`, the CI smoke mode of `cargo test --bench compute`).
//! Needs the real aws CLI and `python3`.

mod common;
#[path = "../tests/support/elb_args.rs"]
mod elb_args;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Vpclab, check, env_usize, free_port, have, p50};

/// `aws SERVICE …`, JSON parsed.
fn cli(d: &Vpclab, args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new("aws");
    cmd.args(args).args(["--output", "json"]);
    d.env(&mut cmd);
    let out = cmd.output().expect("run aws");
    check(&out, &format!("aws {}", args.join(" ")));
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// One GET through the HTTP proxy; returns the status and the time it took.
fn get_via_proxy(proxy: u16, host: &str) -> (u16, f64) {
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    write!(
        s,
        "GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write request");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let status = String::from_utf8_lossy(buf.get(..12).unwrap_or_default())
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, t.elapsed().as_secs_f64() * 1000.0)
}

/// `n` sequential GETs; (requests per second, p50 ms). Panics if one fails.
fn measure(proxy: u16, host: &str, n: usize) -> (f64, f64) {
    let t = Instant::now();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let (status, ms) = get_via_proxy(proxy, host);
        assert_eq!(status, 200, "GET http://{host}/ through the proxy");
        times.push(ms);
    }
    (n as f64 / t.elapsed().as_secs_f64(), p50(times))
}

/// One Invoke on the API port; returns (status, ms).
fn invoke(port: u16, function: &str) -> (u16, f64) {
    let body = br#"{"name":"bench"}"#;
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    write!(
        s,
        "POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nX-Amz-Date: 20260101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("write body");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let failed = text.contains("X-Amz-Function-Error") || text.contains("x-amz-function-error");
    (
        if failed { 0 } else { status },
        t.elapsed().as_secs_f64() * 1000.0,
    )
}

/// Creates a Python function; returns its cold and warm invoke times, or `None` when
/// functions cannot run here.
fn lambda(d: &Vpclab, port: u16, dir: &std::path::Path, n: usize) -> Option<(f64, f64)> {
    std::fs::write(
        dir.join("lambda_function.py"),
        "def handler(event, context):\n    return {\"hi\": event.get(\"name\")}\n",
    )
    .ok()?;
    let zip = dir.join("fn.zip");
    let ok = Command::new("python3")
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg(dir.join("lambda_function.py"))
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    cli(
        d,
        &[
            "iam",
            "create-role",
            "--role-name",
            "bench-fn",
            "--assume-role-policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        ],
    );
    let role = "arn:aws:iam::000000000000:role/bench-fn";
    cli(
        d,
        &[
            "lambda",
            "create-function",
            "--function-name",
            "bench",
            "--runtime",
            "python3.12",
            "--handler",
            "lambda_function.handler",
            "--zip-file",
            &format!("fileb://{}", zip.display()),
            "--role",
            role,
        ],
    );
    let (status, cold) = invoke(port, "bench");
    if status != 200 {
        eprintln!("compute bench: Lambda invoke answered {status}; functions cannot run here");
        return None;
    }
    let warm: Vec<f64> = (0..n).map(|_| invoke(port, "bench").1).collect();
    Some((cold, p50(warm)))
}

fn main() {
    if !have("aws", "--version") {
        eprintln!("compute bench: the aws CLI is missing; skipped");
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let n = env_usize("VPCLAB_BENCH_COMPUTE_N", if full { 200 } else { 20 });
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = free_port();
    let d = Vpclab::start_with(
        dir.path(),
        &["--proxy-listen", &format!("127.0.0.1:{proxy}")],
    );
    let port: u16 = d
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");

    // The default VPC: two subnets in two zones, one group open on 80.
    let vpc = text(
        &cli(
            &d,
            &[
                "ec2",
                "describe-vpcs",
                "--filters",
                "Name=is-default,Values=true",
            ],
        )["Vpcs"][0]["VpcId"],
    );
    let subnets: Vec<String> = cli(
        &d,
        &[
            "ec2",
            "describe-subnets",
            "--filters",
            &format!("Name=vpc-id,Values={vpc}"),
            "--query",
            "sort_by(Subnets, &AvailabilityZone)[0:2].SubnetId",
        ],
    )
    .as_array()
    .expect("subnets")
    .iter()
    .map(text)
    .collect();
    let sg = text(
        &cli(
            &d,
            &[
                "ec2",
                "create-security-group",
                "--group-name",
                "bench-web",
                "--description",
                "bench",
                "--vpc-id",
                &vpc,
            ],
        )["GroupId"],
    );
    cli(
        &d,
        &[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--protocol",
            "tcp",
            "--port",
            "80",
            "--cidr",
            "0.0.0.0/0",
        ],
    );
    let elbv2 = |args: Vec<String>| {
        let mut full = vec!["elbv2".to_string()];
        full.extend(args);
        cli(&d, &elb_args::strs(&full))
    };
    let tg = text(
        &elbv2(elb_args::fast_target_group("bench", &vpc, "ip"))["TargetGroups"][0]["TargetGroupArn"],
    );
    let lb = cli(
        &d,
        &[
            "elbv2",
            "create-load-balancer",
            "--name",
            "bench",
            "--subnets",
            &subnets[0],
            &subnets[1],
            "--security-groups",
            &sg,
        ],
    );
    let lb_arn = text(&lb["LoadBalancers"][0]["LoadBalancerArn"]);
    let dns = text(&lb["LoadBalancers"][0]["DNSName"]);
    elbv2(elb_args::http_forward_listener(&lb_arn, &tg));

    // One nginx task as a service registered in the target group.
    cli(&d, &["ecs", "create-cluster", "--cluster-name", "bench"]);
    let td = dir.path().join("td.json");
    std::fs::write(
        &td,
        r#"{"family":"web","requiresCompatibilities":["FARGATE"],"networkMode":"awsvpc","cpu":"256","memory":"512",
            "containerDefinitions":[{"name":"web","image":"nginx","portMappings":[{"containerPort":80}]}]}"#,
    )
    .expect("write task definition");
    cli(
        &d,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{}", td.display()),
        ],
    );
    cli(
        &d,
        &[
            "ecs",
            "create-service",
            "--cluster",
            "bench",
            "--service-name",
            "web",
            "--task-definition",
            "web",
            "--desired-count",
            "1",
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &format!(
                "awsvpcConfiguration={{subnets=[{}],securityGroups=[{sg}],assignPublicIp=ENABLED}}",
                subnets[0]
            ),
            "--load-balancers",
            &format!("targetGroupArn={tg},containerName=web,containerPort=80"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let h = cli(
            &d,
            &["elbv2", "describe-target-health", "--target-group-arn", &tg],
        );
        if h["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "healthy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the task never became healthy: {h}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let task_arn = text(&cli(&d, &["ecs", "list-tasks", "--cluster", "bench"])["taskArns"][0]);
    let task = cli(
        &d,
        &[
            "ecs",
            "describe-tasks",
            "--cluster",
            "bench",
            "--tasks",
            &task_arn,
        ],
    );
    let t = &task["tasks"][0];
    let task_start_ms =
        (t["startedAt"].as_f64().unwrap_or(0.0) - t["createdAt"].as_f64().unwrap_or(0.0)) * 1000.0;
    let eni = t["attachments"][0]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == "networkInterfaceId")
        .map(|x| text(&x["value"]))
        .unwrap_or_default();
    let public = text(
        &cli(
            &d,
            &[
                "ec2",
                "describe-network-interfaces",
                "--network-interface-ids",
                &eni,
            ],
        )["NetworkInterfaces"][0]["Association"]["PublicIp"],
    );

    let (alb_rps, alb_p50) = measure(proxy, &dns, n);
    let (direct_rps, direct_p50) = measure(proxy, &public, n);
    let (cold, warm) = match lambda(&d, port, dir.path(), n) {
        Some((c, w)) => (format!("{c:.1}"), format!("{w:.2}")),
        None => ("NA".to_string(), "NA".to_string()),
    };
    eprintln!(
        "compute bench: {n} requests each; ALB p50 {alb_p50:.2} ms, direct p50 {direct_p50:.2} ms"
    );
    println!(
        "BENCH compute alb_rps={alb_rps:.0} alb_p50_ms={alb_p50:.2} direct_rps={direct_rps:.0} lambda_cold_ms={cold} lambda_warm_ms={warm} task_start_ms={task_start_ms:.0}"
    );
}
