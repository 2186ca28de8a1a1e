//! An ECS service behind an application load balancer, end to end with the aws CLI:
//! an internet-facing ALB in two public subnets forwards to an `ip` target group; a
//! Fargate service of two nginx tasks (`nginxdemos/hello`, which names the task's
//! address) in two private subnets registers its tasks there as they start; the
//! learner reaches the ALB's DNS name and the answers alternate between the tasks; once
//! the tasks' security group stops admitting the ALB's group, the health checks time
//! out (`Target.Timeout`); scaling the service to zero deregisters the tasks; without a
//! health check grace period, the service replaces the tasks the ALB reports unhealthy.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::elb::{AlbNet, elb};
use crate::support::elb_args::{self, strs};
use crate::support::{Lab, TestDaemon, have, stderr, stdout};

const HELLO: &str = r#"{
  "family": "hello",
  "requiresCompatibilities": ["FARGATE"],
  "networkMode": "awsvpc",
  "cpu": "256",
  "memory": "512",
  "containerDefinitions": [
    { "name": "web", "image": "nginxdemos/hello", "essential": true,
      "portMappings": [{ "containerPort": 80, "protocol": "tcp" }] }
  ]
}"#;

/// `ecs update-service` of the `hello` service in `myapp`, with `args`.
fn update_service(d: &TestDaemon, args: &[&str]) {
    let mut full = vec![
        "ecs",
        "update-service",
        "--cluster",
        "myapp",
        "--service",
        "hello",
    ];
    full.extend_from_slice(args);
    d.aws_cli_json(&full);
}

/// `ecs describe-services` of the `hello` service: the service.
fn hello_service(d: &TestDaemon) -> Value {
    let v = d.aws_cli_json(&[
        "ecs",
        "describe-services",
        "--cluster",
        "myapp",
        "--services",
        "hello",
    ]);
    v["services"][0].clone()
}

fn wait_targets(d: &TestDaemon, tg: &str, n: usize, state: &str, within: Duration) -> Vec<Value> {
    crate::elb::wait_targets(d, tg, Some(n), state, within)
}

#[test]
fn an_ecs_service_behind_an_internet_facing_alb_alternates_between_its_tasks_and_fails_health_checks_without_the_rule()
 {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let net = AlbNet::build(&d, &[80], &[]);
    // Private subnets for the tasks: the main route table, which has no default route.
    let pa = crate::support::subnet(&d, &net.vpc, "10.0.11.0/24", "us-east-1a");
    let pb = crate::support::subnet(&d, &net.vpc, "10.0.12.0/24", "us-east-1b");
    let task_sg = &net.backend_sg;
    let tg = net.target_group(&d, "hello", "ip");
    let (lb_arn, dns) = net.alb(&d, "hello");

    let file = d.path("hello.json");
    std::fs::write(&file, HELLO).expect("write task definition");
    d.aws_cli_json(&["ecs", "create-cluster", "--cluster-name", "myapp"]);
    d.aws_cli_json(&[
        "ecs",
        "register-task-definition",
        "--cli-input-json",
        &format!("file://{}", file.display()),
    ]);
    let network = format!("awsvpcConfiguration={{subnets=[{pa},{pb}],securityGroups=[{task_sg}]}}");
    let lbs = format!(r#"[{{"targetGroupArn":"{tg}","containerName":"web","containerPort":80}}]"#);
    let service = |name: &str| -> std::process::Output {
        d.aws_cli(&[
            "ecs",
            "create-service",
            "--cluster",
            "myapp",
            "--service-name",
            name,
            "--task-definition",
            "hello:1",
            "--desired-count",
            "2",
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &network,
            "--load-balancers",
            &lbs,
            // Long enough that the first phase's unhealthy tasks are left in place.
            "--health-check-grace-period-seconds",
            "3600",
        ])
    };
    // A target group that no load balancer forwards to is refused, as ECS refuses it.
    let out = service("early");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("InvalidParameterException")
            && stderr(&out).contains("does not have an associated load balancer"),
        "{}",
        stderr(&out)
    );
    elb(&d, &strs(&elb_args::http_forward_listener(&lb_arn, &tg)));
    let out = service("hello");
    assert!(out.status.success(), "{}", stderr(&out));

    // Both tasks are registered by their private addresses and become healthy.
    let healthy = wait_targets(&d, &tg, 2, "healthy", Duration::from_secs(90));
    let mut ips: Vec<String> = healthy
        .iter()
        .map(|t| t["Target"]["Id"].as_str().unwrap_or_default().to_string())
        .collect();
    ips.sort();
    let mut task_ips: Vec<String> = {
        let arns = d.aws_cli_json(&["ecs", "list-tasks", "--cluster", "myapp"]);
        let arns: Vec<&str> = arns["taskArns"]
            .as_array()
            .expect("taskArns")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut args = vec!["ecs", "describe-tasks", "--cluster", "myapp", "--tasks"];
        args.extend(arns);
        d.aws_cli_json(&args)["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|t| t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"].clone())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    task_ips.sort();
    assert_eq!(ips, task_ips);
    for t in &healthy {
        assert_eq!(t["Target"]["Port"], 80, "{t}");
    }

    // The learner reaches the ALB by name; answers alternate between the two tasks.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let out = d.vpclab(
            &["connect", "--timeout", "5", &dns, "80"],
            format!("GET / HTTP/1.0\r\nHost: {dns}\r\n\r\n").as_bytes(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let page = stdout(&out);
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        let addr = page
            .split("Server&nbsp;address:</span> <span>")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .unwrap_or_default()
            .to_string();
        assert!(ips.contains(&addr), "{addr} not a task address: {page}");
        seen.push(addr);
    }
    assert_ne!(seen[0], seen[1], "{seen:?}");
    assert_eq!(seen[0], seen[2], "{seen:?}");
    assert_eq!(seen[1], seen[3], "{seen:?}");

    // Without the rule admitting the ALB's group, the checks time out.
    net.admit_alb(&d, "revoke-security-group-ingress");
    let sick = wait_targets(&d, &tg, 2, "unhealthy", Duration::from_secs(60));
    for t in &sick {
        assert_eq!(t["TargetHealth"]["Reason"], "Target.Timeout", "{t}");
    }

    // Scaling the service to zero deregisters its tasks (they drain).
    update_service(&d, &["--desired-count", "0"]);
    wait_targets(&d, &tg, 2, "draining", Duration::from_secs(20));
    let svc = hello_service(&d);
    let text = svc["events"].to_string();
    assert!(text.contains("registered 1 targets"), "{text}");
    assert!(text.contains("deregistered 1 targets"), "{text}");
    assert_eq!(svc["healthCheckGracePeriodSeconds"], 3600, "{svc}");

    // ECS developer guide: once the grace period has passed, the service scheduler stops
    // a task the load balancer reports unhealthy and starts a replacement. Back to two
    // tasks with no grace period, still without the rule: the new tasks fail their
    // checks and are replaced.
    update_service(
        &d,
        &[
            "--desired-count",
            "2",
            "--health-check-grace-period-seconds",
            "0",
        ],
    );
    let start = Instant::now();
    let events = loop {
        let text = hello_service(&d)["events"].to_string();
        if text.contains("is unhealthy in (target-group") {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the service never reported an unhealthy task: {text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        events.contains(&format!("(target-group {tg}) due to (reason ")),
        "{events}"
    );
    assert!(
        events.contains("has stopped 1 running tasks")
            || events.contains("has stopped 2 running tasks"),
        "{events}"
    );
    let stopped = d.aws_cli_json(&[
        "ecs",
        "list-tasks",
        "--cluster",
        "myapp",
        "--desired-status",
        "STOPPED",
    ]);
    let mut args = vec!["ecs", "describe-tasks", "--cluster", "myapp", "--tasks"];
    args.extend(
        stopped["taskArns"]
            .as_array()
            .expect("taskArns")
            .iter()
            .filter_map(Value::as_str),
    );
    let reasons = d.aws_cli_json(&args)["tasks"].to_string();
    assert!(
        reasons.contains(&format!(
            "Task failed ELB health checks in (target-group {tg})"
        )),
        "{reasons}"
    );
    // Replacements are started: the service keeps two tasks that want to run.
    let running = d.aws_cli_json(&[
        "ecs",
        "list-tasks",
        "--cluster",
        "myapp",
        "--service-name",
        "hello",
        "--desired-status",
        "RUNNING",
    ]);
    assert_eq!(
        running["taskArns"].as_array().map(Vec::len),
        Some(2),
        "{running}"
    );
}
