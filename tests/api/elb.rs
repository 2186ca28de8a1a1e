//! Elastic Load Balancing v2 through the real `aws elbv2` CLI (awsQuery): load
//! balancers, target groups, targets, listeners, rules and tags, and the errors the
//! ELB API reference lists for bad input.

use serde_json::Value;

use crate::support::{Lab, TestDaemon, have, two_zone_vpc};

fn elb(d: &TestDaemon, args: &[&str]) -> Value {
    let mut full = vec!["elbv2"];
    full.extend_from_slice(args);
    d.aws_cli_json(&full)
}

fn elb_err(d: &TestDaemon, args: &[&str], code: &str) -> String {
    let mut full = vec!["elbv2"];
    full.extend_from_slice(args);
    let err = d.aws_cli_err(&full);
    assert!(err.contains(&format!("({code})")), "expected {code}: {err}");
    err
}

#[test]
fn an_application_load_balancer_its_target_group_listener_and_rules_follow_the_elb_api() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc, a, b, a2) = two_zone_vpc(&d);
    let sg = d.aws_text(&[
        "create-security-group",
        "--group-name",
        "alb",
        "--description",
        "alb",
        "--vpc-id",
        &vpc,
        "--query",
        "GroupId",
    ]);

    // ALB user guide: subnets from at least two Availability Zones, one per zone.
    elb_err(
        &d,
        &["create-load-balancer", "--name", "web", "--subnets", &a],
        "ValidationError",
    );
    elb_err(
        &d,
        &[
            "create-load-balancer",
            "--name",
            "web",
            "--subnets",
            &a,
            &a2,
        ],
        "InvalidConfigurationRequest",
    );
    elb_err(
        &d,
        &["create-load-balancer", "--name=-web", "--subnets", &a, &b],
        "ValidationError",
    );
    elb_err(
        &d,
        &[
            "create-load-balancer",
            "--name",
            "web",
            "--subnets",
            &a,
            "subnet-0123456789abcdef0",
        ],
        "SubnetNotFound",
    );

    let out = elb(
        &d,
        &[
            "create-load-balancer",
            "--name",
            "web",
            "--subnets",
            &a,
            &b,
            "--security-groups",
            &sg,
            "--tags",
            "Key=env,Value=lab",
        ],
    );
    let lb = &out["LoadBalancers"][0];
    let lb_arn = lb["LoadBalancerArn"].as_str().unwrap().to_string();
    assert!(
        lb_arn.starts_with(
            "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/"
        ),
        "{lb_arn}"
    );
    assert_eq!(lb["State"]["Code"], "provisioning");
    assert_eq!(lb["Type"], "application");
    assert_eq!(lb["Scheme"], "internet-facing");
    assert_eq!(lb["VpcId"], vpc.as_str());
    assert_eq!(lb["SecurityGroups"][0], sg.as_str());
    assert_eq!(lb["CanonicalHostedZoneId"], "Z35SXDOTRQ7X7K");
    let dns = lb["DNSName"].as_str().unwrap();
    assert!(
        dns.starts_with("web-") && dns.ends_with(".us-east-1.elb.amazonaws.com"),
        "{dns}"
    );
    assert_eq!(lb["AvailabilityZones"].as_array().unwrap().len(), 2);

    // The same name with other subnets is a duplicate.
    elb_err(
        &d,
        &[
            "create-load-balancer",
            "--name",
            "web",
            "--subnets",
            &a2,
            &b,
        ],
        "DuplicateLoadBalancerName",
    );

    // One requester-managed interface per node, described as AWS describes it, with
    // the load balancer's security group.
    let enis = d.aws(&[
        "describe-network-interfaces",
        "--filters",
        "Name=requester-managed,Values=true",
        &format!("Name=vpc-id,Values={vpc}"),
    ]);
    let enis = enis["NetworkInterfaces"].as_array().unwrap();
    assert_eq!(enis.len(), 2, "{enis:?}");
    let short = lb_arn.split(":loadbalancer/").nth(1).unwrap();
    for e in enis {
        assert_eq!(e["Description"], format!("ELB {short}").as_str());
        assert_eq!(e["Groups"][0]["GroupId"], sg.as_str());
        assert!(e["Association"]["PublicIp"].is_string(), "{e}");
    }

    // Target groups: AWS's defaults for HTTP, and the API's ranges.
    let tg = elb(
        &d,
        &[
            "create-target-group",
            "--name",
            "web-tg",
            "--protocol",
            "HTTP",
            "--port",
            "80",
            "--vpc-id",
            &vpc,
            "--target-type",
            "ip",
        ],
    );
    let tg = &tg["TargetGroups"][0];
    assert_eq!(tg["HealthCheckIntervalSeconds"], 30);
    assert_eq!(tg["HealthCheckTimeoutSeconds"], 5);
    assert_eq!(tg["HealthyThresholdCount"], 5);
    assert_eq!(tg["UnhealthyThresholdCount"], 2);
    assert_eq!(tg["HealthCheckPath"], "/");
    assert_eq!(tg["Matcher"]["HttpCode"], "200");
    let tg_arn = tg["TargetGroupArn"].as_str().unwrap().to_string();
    elb_err(
        &d,
        &[
            "create-target-group",
            "--name",
            "fast",
            "--protocol",
            "HTTP",
            "--port",
            "80",
            "--vpc-id",
            &vpc,
            "--health-check-interval-seconds",
            "10",
            "--health-check-timeout-seconds",
            "10",
        ],
        "ValidationError",
    );

    // IP targets must be inside the VPC; a registered one is unused until a listener
    // forwards to its group; an unregistered one is reported as not registered.
    elb_err(
        &d,
        &[
            "register-targets",
            "--target-group-arn",
            &tg_arn,
            "--targets",
            "Id=192.168.1.1",
        ],
        "InvalidTarget",
    );
    elb(
        &d,
        &[
            "register-targets",
            "--target-group-arn",
            &tg_arn,
            "--targets",
            "Id=10.0.1.50",
        ],
    );
    let health = elb(
        &d,
        &["describe-target-health", "--target-group-arn", &tg_arn],
    );
    let h = &health["TargetHealthDescriptions"][0];
    assert_eq!(h["Target"]["Id"], "10.0.1.50");
    assert_eq!(h["Target"]["Port"], 80);
    assert_eq!(h["Target"]["AvailabilityZone"], "us-east-1a");
    assert_eq!(h["TargetHealth"]["State"], "unused");
    assert_eq!(h["TargetHealth"]["Reason"], "Target.NotInUse");
    let health = elb(
        &d,
        &[
            "describe-target-health",
            "--target-group-arn",
            &tg_arn,
            "--targets",
            "Id=10.0.1.99",
        ],
    );
    assert_eq!(
        health["TargetHealthDescriptions"][0]["TargetHealth"]["Reason"],
        "Target.NotRegistered"
    );

    // Listeners: HTTP on an ALB, one per port; TCP belongs to network load balancers.
    let forward = format!("Type=forward,TargetGroupArn={tg_arn}");
    let l = elb(
        &d,
        &[
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "HTTP",
            "--port",
            "80",
            "--default-actions",
            &forward,
        ],
    );
    let listener = l["Listeners"][0]["ListenerArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        l["Listeners"][0]["DefaultActions"][0]["TargetGroupArn"],
        tg_arn.as_str()
    );
    elb_err(
        &d,
        &[
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "HTTP",
            "--port",
            "80",
            "--default-actions",
            &forward,
        ],
        "DuplicateListener",
    );
    elb_err(
        &d,
        &[
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "TCP",
            "--port",
            "81",
            "--default-actions",
            &forward,
        ],
        "UnsupportedProtocol",
    );
    let tgs = elb(
        &d,
        &["describe-target-groups", "--load-balancer-arn", &lb_arn],
    );
    assert_eq!(
        tgs["TargetGroups"][0]["LoadBalancerArns"][0],
        lb_arn.as_str()
    );

    // Rules: path and host conditions, one rule per priority, the default rule last.
    let rule = elb(
        &d,
        &[
            "create-rule",
            "--listener-arn",
            &listener,
            "--priority",
            "10",
            "--conditions",
            "Field=path-pattern,Values=/api/*",
            "--actions",
            "Type=fixed-response,FixedResponseConfig={StatusCode=418,ContentType=text/plain,MessageBody=teapot}",
        ],
    );
    assert_eq!(rule["Rules"][0]["Priority"], "10");
    assert_eq!(rule["Rules"][0]["Conditions"][0]["Values"][0], "/api/*");
    elb_err(
        &d,
        &[
            "create-rule",
            "--listener-arn",
            &listener,
            "--priority",
            "10",
            "--conditions",
            "Field=host-header,Values=api.example.com",
            "--actions",
            &forward,
        ],
        "PriorityInUse",
    );
    let rules = elb(&d, &["describe-rules", "--listener-arn", &listener]);
    let rules = rules["Rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[1]["IsDefault"], true);
    assert_eq!(rules[1]["Priority"], "default");

    // A group in use cannot be deleted.
    elb_err(
        &d,
        &["delete-target-group", "--target-group-arn", &tg_arn],
        "ResourceInUse",
    );

    // Tags.
    elb(
        &d,
        &[
            "add-tags",
            "--resource-arns",
            &tg_arn,
            "--tags",
            "Key=team,Value=blue",
        ],
    );
    let tags = elb(&d, &["describe-tags", "--resource-arns", &lb_arn, &tg_arn]);
    assert_eq!(tags["TagDescriptions"][0]["Tags"][0]["Key"], "env");
    assert_eq!(tags["TagDescriptions"][1]["Tags"][0]["Value"], "blue");

    // Deleting the load balancer takes its listeners and interfaces; then the group
    // can go.
    elb(
        &d,
        &["delete-load-balancer", "--load-balancer-arn", &lb_arn],
    );
    elb_err(
        &d,
        &["describe-load-balancers", "--load-balancer-arns", &lb_arn],
        "LoadBalancerNotFound",
    );
    elb_err(
        &d,
        &["describe-listeners", "--listener-arns", &listener],
        "ListenerNotFound",
    );
    let enis = d.aws(&[
        "describe-network-interfaces",
        "--filters",
        "Name=requester-managed,Values=true",
    ]);
    assert_eq!(enis["NetworkInterfaces"].as_array().unwrap().len(), 0);
    elb(&d, &["delete-target-group", "--target-group-arn", &tg_arn]);
    let tgs = elb(&d, &["describe-target-groups"]);
    assert_eq!(tgs["TargetGroups"].as_array().unwrap().len(), 0);
}
