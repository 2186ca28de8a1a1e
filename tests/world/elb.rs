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

pub(crate) fn elb(d: &TestDaemon, args: &[&str]) -> Value {
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
pub(crate) fn wait_health(d: &TestDaemon, tg: &str, state: &str, within: Duration) -> Vec<Value> {
    wait_targets(d, tg, None, state, within)
}

/// Polls DescribeTargetHealth until the group has targets (`n` of them when given), all
/// in `state`; returns them.
pub(crate) fn wait_targets(
    d: &TestDaemon,
    tg: &str,
    n: Option<usize>,
    state: &str,
    within: Duration,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let h = elb(d, &["describe-target-health", "--target-group-arn", tg]);
        let all = h["TargetHealthDescriptions"]
            .as_array()
            .expect("TargetHealthDescriptions")
            .clone();
        if !all.is_empty()
            && n.is_none_or(|n| all.len() == n)
            && all.iter().all(|t| t["TargetHealth"]["State"] == state)
        {
            return all;
        }
        assert!(
            start.elapsed() < within,
            "targets never became {state}: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The network of the load balancer tests: a VPC with two public subnets in two zones
/// routed to its internet gateway, the ALB's group admitting `alb_ports` from anywhere,
/// and the backends' group admitting `backend_ports` from anywhere and port 80 from the
/// ALB's group only.
pub(crate) struct AlbNet {
    pub vpc: String,
    pub a: String,
    pub b: String,
    pub alb_sg: String,
    pub backend_sg: String,
}

impl AlbNet {
    pub(crate) fn build(d: &TestDaemon, alb_ports: &[u16], backend_ports: &[u16]) -> AlbNet {
        let (vpc, a, b, _) = crate::support::two_zone_vpc(d);
        let igw = d.aws_text(&[
            "describe-internet-gateways",
            "--query",
            "InternetGateways[0].InternetGatewayId",
        ]);
        crate::support::public_route_table(d, &vpc, &igw, &[&a, &b]);
        let anywhere = |ports: &[u16]| -> Vec<(u16, &'static str)> {
            ports.iter().map(|p| (*p, "0.0.0.0/0")).collect()
        };
        let alb_sg = crate::support::security_group(d, &vpc, "alb", &anywhere(alb_ports));
        let backend_sg =
            crate::support::security_group(d, &vpc, "backend", &anywhere(backend_ports));
        let net = AlbNet {
            vpc,
            a,
            b,
            alb_sg,
            backend_sg,
        };
        net.admit_alb(d, "authorize-security-group-ingress");
        net
    }

    /// Adds (`authorize-security-group-ingress`) or removes (`revoke-…`) the backends'
    /// rule admitting the ALB's group on port 80.
    pub(crate) fn admit_alb(&self, d: &TestDaemon, verb: &str) {
        d.aws_text(&[
            verb,
            "--group-id",
            &self.backend_sg,
            "--protocol",
            "tcp",
            "--port",
            "80",
            "--source-group",
            &self.alb_sg,
        ]);
    }

    /// An internet-facing ALB `name` in both subnets: (ARN, DNS name).
    pub(crate) fn alb(&self, d: &TestDaemon, name: &str) -> (String, String) {
        let lb = elb(
            d,
            &[
                "create-load-balancer",
                "--name",
                name,
                "--subnets",
                &self.a,
                &self.b,
                "--security-groups",
                &self.alb_sg,
            ],
        );
        let lb = &lb["LoadBalancers"][0];
        (
            lb["LoadBalancerArn"].as_str().expect("arn").to_string(),
            lb["DNSName"].as_str().expect("dns").to_string(),
        )
    }

    /// Instances in the backends' group, one per subnet, running `user_data`, with a
    /// public address and the key pair `key`; waits until they run. Their ids.
    pub(crate) fn web_instances(
        &self,
        d: &TestDaemon,
        subnets: &[&str],
        user_data: &str,
        key: Option<&str>,
    ) -> Vec<String> {
        let ami = crate::support::latest_al2023_ami(d);
        let file = d.path("user-data.sh");
        std::fs::write(&file, user_data).expect("write user data");
        let user_data = format!("file://{}", file.display());
        let mut ids = Vec::new();
        for s in subnets {
            let mut args = vec![
                "run-instances",
                "--image-id",
                &ami,
                "--instance-type",
                "t3.micro",
                "--subnet-id",
                s,
                "--associate-public-ip-address",
                "--security-group-ids",
                &self.backend_sg,
                "--user-data",
                &user_data,
                "--query",
                "Instances[0].InstanceId",
            ];
            if let Some(k) = key {
                args.extend_from_slice(&["--key-name", k]);
            }
            ids.push(d.aws_text(&args));
        }
        d.wait_running(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        ids
    }

    /// An HTTP target group `name` with fast health checks (`instance` or `ip`): its ARN.
    pub(crate) fn target_group(&self, d: &TestDaemon, name: &str, kind: &str) -> String {
        elb(
            d,
            &strs(&elb_args::fast_target_group(name, &self.vpc, kind)),
        )["TargetGroups"][0]["TargetGroupArn"]
            .as_str()
            .expect("TargetGroupArn")
            .to_string()
    }
}

/// Registers instances (by id) in a target group.
pub(crate) fn register(d: &TestDaemon, tg: &str, ids: &[String]) {
    let targets: Vec<String> = ids.iter().map(|i| format!("Id={i}")).collect();
    let mut reg = vec!["register-targets", "--target-group-arn", tg, "--targets"];
    reg.extend(targets.iter().map(String::as_str));
    elb(d, &reg);
}

/// Waits (30 s at most) until the load balancer is `active`.
pub(crate) fn wait_active(d: &TestDaemon, lb_arn: &str) {
    let start = Instant::now();
    while elb(
        d,
        &["describe-load-balancers", "--load-balancer-arns", lb_arn],
    )["LoadBalancers"][0]["State"]["Code"]
        != "active"
    {
        assert!(start.elapsed() < Duration::from_secs(30), "never active");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn an_internet_facing_alb_balances_two_instances_and_sees_them_fail_when_their_group_stops_admitting_it()
 {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    // The instances admit HTTP from the ALB's group only.
    let net = AlbNet::build(&d, &[80], &[]);
    let ids = net.web_instances(&d, &[&net.a, &net.b], USER_DATA, None);
    let tg = net.target_group(&d, "web", "instance");
    register(&d, &tg, &ids);
    let (lb_arn, dns) = net.alb(&d, "web");
    elb(&d, &strs(&elb_args::http_forward_listener(&lb_arn, &tg)));
    wait_active(&d, &lb_arn);
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
    net.admit_alb(&d, "revoke-security-group-ingress");
    let all = wait_health(&d, &tg, "unhealthy", Duration::from_secs(60));
    for t in &all {
        assert_eq!(t["TargetHealth"]["Reason"], "Target.Timeout", "{t}");
        assert_eq!(t["TargetHealth"]["Description"], "Request timed out", "{t}");
    }
}

/// A network load balancer: a TCP listener splices the learner's connection to an
/// instance (no HTTP parsing: the instance's own response comes back), the DNS name
/// resolves to the nodes' public addresses, and TCP health checks fail once the
/// instances' group stops admitting port 80 (an NLB without security groups is checked
/// from its nodes' private addresses, so the targets' group alone decides).
#[test]
fn an_internet_facing_nlb_splices_tcp_to_its_targets_and_fails_tcp_health_checks_without_the_rule()
{
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let net = AlbNet::build(&d, &[], &[80]);
    let ids = net.web_instances(&d, &[&net.a, &net.b], USER_DATA, None);
    let tg = elb(
        &d,
        &[
            "create-target-group",
            "--name",
            "web-tcp",
            "--protocol",
            "TCP",
            "--port",
            "80",
            "--target-type",
            "instance",
            "--vpc-id",
            &net.vpc,
            "--health-check-protocol",
            "TCP",
            "--health-check-interval-seconds",
            "5",
            "--health-check-timeout-seconds",
            "2",
            "--healthy-threshold-count",
            "2",
            "--unhealthy-threshold-count",
            "2",
        ],
    )["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .expect("TargetGroupArn")
        .to_string();
    register(&d, &tg, &ids);
    let lb = elb(
        &d,
        &[
            "create-load-balancer",
            "--name",
            "web-nlb",
            "--type",
            "network",
            "--subnets",
            &net.a,
            &net.b,
        ],
    );
    let lb = &lb["LoadBalancers"][0];
    assert_eq!(lb["Type"], "network", "{lb}");
    let lb_arn = lb["LoadBalancerArn"].as_str().expect("arn").to_string();
    let dns = lb["DNSName"].as_str().expect("dns").to_string();
    elb(
        &d,
        &[
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "TCP",
            "--port",
            "80",
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={tg}"),
        ],
    );
    wait_active(&d, &lb_arn);
    wait_health(&d, &tg, "healthy", Duration::from_secs(90));

    // The instance's web server answers through the node, byte for byte: an HTTP/1.0
    // request gets httpd's own answer (an ALB would have spoken HTTP/1.1 itself).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let out = learner_get(&d, &dns);
        assert!(out.status.success(), "{}", stderr(&out));
        let page = stdout(&out);
        assert!(page.starts_with("HTTP/1."), "{page}");
        assert!(page.contains(" 200 "), "{page}");
        assert!(
            !page.to_ascii_lowercase().contains("awselb"),
            "an NLB adds nothing: {page}"
        );
        let who = page.lines().last().unwrap_or_default().trim().to_string();
        assert!(who.starts_with("<h1>Hello from ip-10-0-"), "{page}");
        seen.insert(who);
    }
    assert!(!seen.is_empty());

    // Without the rule admitting port 80, the nodes' TCP health checks fail and the
    // learner's connection finds no healthy target.
    d.aws_text(&[
        "revoke-security-group-ingress",
        "--group-id",
        &net.backend_sg,
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--cidr",
        "0.0.0.0/0",
    ]);
    let all = wait_health(&d, &tg, "unhealthy", Duration::from_secs(60));
    for t in &all {
        assert_eq!(
            t["TargetHealth"]["Reason"], "Target.FailedHealthChecks",
            "{t}"
        );
    }
    let out = learner_get(&d, &dns);
    let page = stdout(&out);
    assert!(
        !out.status.success() || !page.contains(" 200 "),
        "no healthy target, yet: {page}"
    );
}
