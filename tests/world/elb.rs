//! An application load balancer on the fabric: an internet-facing ALB in two public
//! subnets in front of two instances whose user data installs httpd answers the
//! learner by its DNS name, alternates between the instances, and reports the targets
//! unhealthy with `Target.Timeout` once the instances' security group stops admitting
//! the ALB's group (the lesson the seed's notes teach).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::elb_args::{self, strs};
use crate::support::{Lab, TestDaemon, have, stderr, stdout};

const USER_DATA: &str = "#!/bin/bash\ndnf install -y httpd\nsystemctl start httpd\necho \"<h1>Hello from $(hostname -f)</h1>\" > /var/www/html/index.html\n";

fn elb(d: &TestDaemon, args: &[&str]) -> Value {
    let mut full = vec!["elbv2"];
    full.extend_from_slice(args);
    d.aws_cli_json(&full)
}

fn learner_get(d: &dyn Lab, host: &str) -> std::process::Output {
    d.vpclab(
        &["connect", "--timeout", "5", host, "80"],
        format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
}

/// Polls DescribeTargetHealth until every target is in `state`; returns the last answer.
fn wait_health(d: &TestDaemon, tg: &str, state: &str, within: Duration) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let h = elb(d, &["describe-target-health", "--target-group-arn", tg]);
        let all = h["TargetHealthDescriptions"].as_array().unwrap().clone();
        if !all.is_empty() && all.iter().all(|t| t["TargetHealth"]["State"] == state) {
            return all;
        }
        assert!(
            start.elapsed() < within,
            "targets never became {state}: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn an_internet_facing_alb_balances_two_instances_and_sees_them_fail_when_their_group_stops_admitting_it()
 {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc, a, b, _) = crate::support::two_zone_vpc(&d);
    let igw = d.aws_text(&[
        "describe-internet-gateways",
        "--query",
        "InternetGateways[0].InternetGatewayId",
    ]);
    crate::support::public_route_table(&d, &vpc, &igw, &[&a, &b]);
    let alb_sg = crate::support::security_group(&d, &vpc, "alb", &[(80, "0.0.0.0/0")]);
    let web_sg = crate::support::security_group(&d, &vpc, "web", &[]);
    // The instances admit HTTP from the ALB's group only.
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &web_sg,
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--source-group",
        &alb_sg,
    ]);
    let ami = crate::support::latest_al2023_ami(&d);
    let user_data = d.path("user-data.sh");
    std::fs::write(&user_data, USER_DATA).unwrap();
    let user_data = format!("file://{}", user_data.display());
    let mut ids = Vec::new();
    for s in [&a, &b] {
        ids.push(d.aws_text(&[
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "t3.micro",
            "--subnet-id",
            s,
            "--associate-public-ip-address",
            "--security-group-ids",
            &web_sg,
            "--user-data",
            &user_data,
            "--query",
            "Instances[0].InstanceId",
        ]));
    }
    let mut wait = vec!["wait", "instance-running", "--instance-ids"];
    wait.extend(ids.iter().map(String::as_str));
    d.aws_text(&wait);

    let tg = elb(
        &d,
        &strs(&elb_args::fast_target_group("web", &vpc, "instance")),
    );
    let tg = tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    let targets: Vec<String> = ids.iter().map(|i| format!("Id={i}")).collect();
    let mut reg = vec!["register-targets", "--target-group-arn", &tg, "--targets"];
    reg.extend(targets.iter().map(String::as_str));
    elb(&d, &reg);
    let lb = elb(
        &d,
        &[
            "create-load-balancer",
            "--name",
            "web",
            "--subnets",
            &a,
            &b,
            "--security-groups",
            &alb_sg,
        ],
    );
    let lb = &lb["LoadBalancers"][0];
    let lb_arn = lb["LoadBalancerArn"].as_str().unwrap().to_string();
    let dns = lb["DNSName"].as_str().unwrap().to_string();
    elb(&d, &strs(&elb_args::http_forward_listener(&lb_arn, &tg)));
    let start = Instant::now();
    while elb(
        &d,
        &["describe-load-balancers", "--load-balancer-arns", &lb_arn],
    )["LoadBalancers"][0]["State"]["Code"]
        != "active"
    {
        assert!(start.elapsed() < Duration::from_secs(30), "never active");
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_health(&d, &tg, "healthy", Duration::from_secs(90));

    // The DNS name answers the learner, and successive requests alternate between the
    // two instances.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let out = learner_get(&d, &dns);
        assert!(out.status.success(), "{}", stderr(&out));
        let page = stdout(&out);
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        let who = page.lines().last().unwrap_or_default().trim().to_string();
        assert!(who.starts_with("<h1>Hello from ip-10-0-"), "{page}");
        seen.push(who);
    }
    assert_ne!(seen[0], seen[1], "{seen:?}");
    assert_eq!(seen[0], seen[2], "{seen:?}");
    assert_eq!(seen[1], seen[3], "{seen:?}");

    // Without the rule admitting the ALB's group, the health checks time out.
    d.aws_text(&[
        "revoke-security-group-ingress",
        "--group-id",
        &web_sg,
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--source-group",
        &alb_sg,
    ]);
    let all = wait_health(&d, &tg, "unhealthy", Duration::from_secs(60));
    for t in &all {
        assert_eq!(t["TargetHealth"]["Reason"], "Target.Timeout", "{t}");
        assert_eq!(t["TargetHealth"]["Description"], "Request timed out", "{t}");
    }
}
