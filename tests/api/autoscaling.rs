//! EC2 launch templates (`aws ec2`) and Auto Scaling groups (`aws autoscaling`, awsQuery)
//! with the real CLI: template versions feed RunInstances, and a group keeps its
//! desired capacity, replacing an instance someone terminated, with its activities.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Lab, TestDaemon, have, two_zone_vpc};

fn ami(d: &TestDaemon) -> String {
    crate::support::latest_al2023_ami(d)
}

/// Two subnets in two zones and a launch template `web` (the newest Amazon Linux 2023,
/// t3.micro): the subnets' ids.
fn subnets_and_web_template(d: &TestDaemon) -> (String, String) {
    let (_, a, b, _) = two_zone_vpc(d);
    let ami = ami(d);
    d.aws(&[
        "create-launch-template",
        "--launch-template-name",
        "web",
        "--launch-template-data",
        &format!("{{\"ImageId\":\"{ami}\",\"InstanceType\":\"t3.micro\"}}"),
    ]);
    (a, b)
}

fn asg(d: &TestDaemon, args: &[&str]) -> Value {
    let mut full = vec!["autoscaling"];
    full.extend_from_slice(args);
    d.aws_cli_json(&full)
}

#[test]
fn launch_template_versions_feed_run_instances() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (_, a, _, _) = two_zone_vpc(&d);
    let ami = ami(&d);
    let data = format!("{{\"ImageId\":\"{ami}\",\"InstanceType\":\"t3.micro\"}}");
    let lt = d.aws(&[
        "create-launch-template",
        "--launch-template-name",
        "web",
        "--version-description",
        "first",
        "--launch-template-data",
        &data,
    ]);
    let lt_id = lt["LaunchTemplate"]["LaunchTemplateId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lt_id.starts_with("lt-"), "{lt}");
    assert_eq!(lt["LaunchTemplate"]["LatestVersionNumber"], 1);
    d.aws_err(
        &[
            "create-launch-template",
            "--launch-template-name",
            "web",
            "--launch-template-data",
            &data,
        ],
        "InvalidLaunchTemplateName.AlreadyExistsException",
    );
    let v2 = d.aws(&[
        "create-launch-template-version",
        "--launch-template-id",
        &lt_id,
        "--source-version",
        "1",
        "--launch-template-data",
        "{\"InstanceType\":\"t3.small\"}",
    ]);
    assert_eq!(v2["LaunchTemplateVersion"]["VersionNumber"], 2);
    assert_eq!(
        v2["LaunchTemplateVersion"]["LaunchTemplateData"]["ImageId"],
        ami.as_str()
    );
    let versions = d.aws(&[
        "describe-launch-template-versions",
        "--launch-template-name",
        "web",
    ]);
    assert_eq!(
        versions["LaunchTemplateVersions"].as_array().unwrap().len(),
        2
    );

    // `$Latest` is version 2 (t3.small); the default is still version 1.
    let run = |version: &str| {
        d.aws_text(&[
            "run-instances",
            "--launch-template",
            &format!("LaunchTemplateName=web,Version={version}"),
            "--subnet-id",
            &a,
            "--query",
            "Instances[0].InstanceType",
        ])
    };
    assert_eq!(run("$Latest"), "t3.small");
    assert_eq!(run("$Default"), "t3.micro");
    d.aws_err(
        &[
            "run-instances",
            "--launch-template",
            "LaunchTemplateName=nope",
            "--subnet-id",
            &a,
        ],
        "InvalidLaunchTemplateName.NotFoundException",
    );
}

fn members(d: &TestDaemon) -> Vec<(String, String)> {
    let g = asg(
        d,
        &[
            "describe-auto-scaling-groups",
            "--auto-scaling-group-names",
            "web",
        ],
    );
    g["AutoScalingGroups"][0]["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["InstanceId"].as_str().unwrap().to_string(),
                i["LifecycleState"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn wait_in_service(d: &TestDaemon, n: usize, not: Option<&str>) -> Vec<String> {
    let start = Instant::now();
    loop {
        let m = members(d);
        let ok = m.len() == n
            && m.iter().all(|(_, s)| s == "InService")
            && not.is_none_or(|x| m.iter().all(|(i, _)| i != x));
        if ok {
            return m.into_iter().map(|(i, _)| i).collect();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{m:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn an_auto_scaling_group_keeps_its_capacity_and_replaces_a_terminated_instance() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (a, b) = subnets_and_web_template(&d);
    let err = d.aws_cli_err(&[
        "autoscaling",
        "create-auto-scaling-group",
        "--auto-scaling-group-name",
        "web",
        "--launch-template",
        "LaunchTemplateName=web",
        "--min-size",
        "1",
        "--max-size",
        "3",
        "--desired-capacity",
        "4",
        "--vpc-zone-identifier",
        &format!("{a},{b}"),
    ]);
    assert!(err.contains("(ValidationError)"), "{err}");
    asg(
        &d,
        &[
            "create-auto-scaling-group",
            "--auto-scaling-group-name",
            "web",
            "--launch-template",
            "LaunchTemplateName=web,Version=$Latest",
            "--min-size",
            "1",
            "--max-size",
            "3",
            "--desired-capacity",
            "2",
            "--vpc-zone-identifier",
            &format!("{a},{b}"),
        ],
    );
    let first = wait_in_service(&d, 2, None);
    // One instance per zone.
    let zones = d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        &first[0],
        &first[1],
        "--query",
        "Reservations[].Instances[].Placement.AvailabilityZone",
    ]);
    assert!(
        zones.contains("us-east-1a") && zones.contains("us-east-1b"),
        "{zones}"
    );

    // Someone terminates one: the group replaces it.
    d.aws_text(&["terminate-instances", "--instance-ids", &first[0]]);
    let now = wait_in_service(&d, 2, Some(&first[0]));
    assert!(now.contains(&first[1]), "{now:?}");
    let acts = asg(
        &d,
        &[
            "describe-scaling-activities",
            "--auto-scaling-group-name",
            "web",
        ],
    );
    let descriptions: Vec<&str> = acts["Activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Description"].as_str().unwrap())
        .collect();
    assert!(
        descriptions.contains(&format!("Terminating EC2 instance: {}", first[0]).as_str()),
        "{descriptions:?}"
    );
    assert_eq!(
        descriptions
            .iter()
            .filter(|d| d.starts_with("Launching a new EC2 instance: i-"))
            .count(),
        3,
        "{descriptions:?}"
    );

    // Capacity changes within the bounds only.
    let err = d.aws_cli_err(&[
        "autoscaling",
        "set-desired-capacity",
        "--auto-scaling-group-name",
        "web",
        "--desired-capacity",
        "5",
    ]);
    assert!(err.contains("(ValidationError)"), "{err}");
    asg(
        &d,
        &[
            "set-desired-capacity",
            "--auto-scaling-group-name",
            "web",
            "--desired-capacity",
            "1",
        ],
    );
    wait_in_service(&d, 1, None);

    // A group with instances is deleted only with --force-delete, which terminates them.
    let err = d.aws_cli_err(&[
        "autoscaling",
        "delete-auto-scaling-group",
        "--auto-scaling-group-name",
        "web",
    ]);
    assert!(err.contains("(ResourceInUse)"), "{err}");
    let last = members(&d)[0].0.clone();
    asg(
        &d,
        &[
            "delete-auto-scaling-group",
            "--auto-scaling-group-name",
            "web",
            "--force-delete",
        ],
    );
    let state = d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        &last,
        "--query",
        "Reservations[0].Instances[0].State.Name",
    ]);
    assert!(state == "shutting-down" || state == "terminated", "{state}");
    let g = asg(&d, &["describe-auto-scaling-groups"]);
    assert_eq!(g["AutoScalingGroups"].as_array().unwrap().len(), 0);
}

fn desired(d: &TestDaemon) -> u64 {
    asg(
        d,
        &[
            "describe-auto-scaling-groups",
            "--auto-scaling-group-names",
            "web",
        ],
    )["AutoScalingGroups"][0]["DesiredCapacity"]
        .as_u64()
        .unwrap_or(0)
}

/// Scaling policies (EC2 Auto Scaling User Guide, "Step and simple scaling policies",
/// "Target tracking scaling policies"): adjustments within min and max, percentages
/// rounded as the guide says, the simple policy's cooldown, a step policy run by a
/// CloudWatch alarm whose action names it, and a target tracking policy's alarms.
#[test]
fn scaling_policies_change_desired_capacity_within_the_group_limits() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (a, b) = subnets_and_web_template(&d);
    asg(
        &d,
        &[
            "create-auto-scaling-group",
            "--auto-scaling-group-name",
            "web",
            "--launch-template",
            "LaunchTemplateName=web",
            "--min-size",
            "1",
            "--max-size",
            "4",
            "--desired-capacity",
            "1",
            "--vpc-zone-identifier",
            &format!("{a},{b}"),
        ],
    );
    let put = |args: &[&str]| -> Value {
        let mut full = vec!["put-scaling-policy", "--auto-scaling-group-name", "web"];
        full.extend_from_slice(args);
        asg(&d, &full)
    };
    let out = put(&[
        "--policy-name",
        "out",
        "--adjustment-type",
        "ChangeInCapacity",
        "--scaling-adjustment",
        "2",
        "--cooldown",
        "300",
    ]);
    let out_arn = out["PolicyARN"].as_str().unwrap_or_default().to_string();
    assert!(
        out_arn.starts_with("arn:aws:autoscaling:us-east-1:")
            && out_arn.contains(":scalingPolicy:")
            && out_arn.ends_with(":autoScalingGroupName/web:policyName/out"),
        "{out}"
    );
    put(&[
        "--policy-name",
        "half",
        "--adjustment-type",
        "PercentChangeInCapacity",
        "--scaling-adjustment",
        "-50",
    ]);
    // A simple policy needs its adjustment.
    let err = d.aws_cli_err(&[
        "autoscaling",
        "put-scaling-policy",
        "--auto-scaling-group-name",
        "web",
        "--policy-name",
        "bad",
        "--adjustment-type",
        "ChangeInCapacity",
    ]);
    assert!(err.contains("(ValidationError)"), "{err}");

    let exec = |policy: &str, extra: &[&str]| {
        let mut full = vec![
            "execute-policy",
            "--auto-scaling-group-name",
            "web",
            "--policy-name",
            policy,
        ];
        full.extend_from_slice(extra);
        asg(&d, &full);
    };
    exec("out", &[]);
    assert_eq!(desired(&d), 3);
    // 3 + 2 is above the maximum: the group stops at 4.
    exec(&out_arn, &[]);
    assert_eq!(desired(&d), 4);
    // -50 % of 4 is -2.
    exec("half", &[]);
    assert_eq!(desired(&d), 2);
    // Honouring the cooldown the last run of "out" started, nothing happens.
    exec("out", &["--honor-cooldown"]);
    assert_eq!(desired(&d), 2);
    let acts = asg(
        &d,
        &[
            "describe-scaling-activities",
            "--auto-scaling-group-name",
            "web",
        ],
    );
    assert!(
        acts.to_string().contains(
            "a user request executed policy out changing the desired capacity from 1 to 3"
        ),
        "{acts}"
    );

    // A step policy run by an alarm on a metric the learner publishes.
    let step = put(&[
        "--policy-name",
        "step",
        "--policy-type",
        "StepScaling",
        "--adjustment-type",
        "ChangeInCapacity",
        "--step-adjustments",
        "MetricIntervalLowerBound=0,MetricIntervalUpperBound=20,ScalingAdjustment=1",
        "MetricIntervalLowerBound=20,ScalingAdjustment=2",
    ]);
    let step_arn = step["PolicyARN"].as_str().unwrap_or_default().to_string();
    d.aws_cli_json(&[
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        "busy",
        "--namespace",
        "Lab",
        "--metric-name",
        "Load",
        "--statistic",
        "Maximum",
        "--period",
        "10",
        "--evaluation-periods",
        "1",
        "--threshold",
        "50",
        "--comparison-operator",
        "GreaterThanThreshold",
        "--alarm-actions",
        &step_arn,
    ]);
    // Load 80 is 30 above the threshold: the second step, +2.
    let start = Instant::now();
    while desired(&d) != 4 {
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "the alarm never scaled the group"
        );
        d.aws_cli_json(&[
            "cloudwatch",
            "put-metric-data",
            "--namespace",
            "Lab",
            "--metric-name",
            "Load",
            "--value",
            "80",
        ]);
        std::thread::sleep(Duration::from_secs(1));
    }
    let history = d.aws_cli_json(&[
        "cloudwatch",
        "describe-alarm-history",
        "--alarm-name",
        "busy",
        "--history-item-type",
        "Action",
    ]);
    assert!(
        history.to_string().contains("Successfully executed action"),
        "{history}"
    );

    // Target tracking creates its two alarms; deleting the policy deletes them.
    let tt = put(&[
        "--policy-name",
        "track",
        "--policy-type",
        "TargetTrackingScaling",
        "--target-tracking-configuration",
        r#"{"CustomizedMetricSpecification":{"MetricName":"Load","Namespace":"Lab","Statistic":"Average"},"TargetValue":40}"#,
    ]);
    let names: Vec<String> = tt["Alarms"]
        .as_array()
        .expect("Alarms")
        .iter()
        .filter_map(|a| a["AlarmName"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names.len(), 2, "{tt}");
    assert!(
        names[0].starts_with("TargetTracking-web-AlarmHigh-"),
        "{names:?}"
    );
    assert!(
        names[1].starts_with("TargetTracking-web-AlarmLow-"),
        "{names:?}"
    );
    let alarms = d.aws_cli_json(&[
        "cloudwatch",
        "describe-alarms",
        "--alarm-name-prefix",
        "TargetTracking-web-",
    ]);
    let high = &alarms["MetricAlarms"][0];
    assert_eq!(high["Threshold"], 40.0, "{high}");
    assert_eq!(high["EvaluationPeriods"], 3, "{high}");
    assert_eq!(high["AlarmActions"][0], tt["PolicyARN"], "{high}");
    let low = &alarms["MetricAlarms"][1];
    assert_eq!(low["Threshold"], 36.0, "{low}");
    assert_eq!(low["EvaluationPeriods"], 15, "{low}");
    let listed = asg(
        &d,
        &[
            "describe-policies",
            "--auto-scaling-group-name",
            "web",
            "--policy-types",
            "TargetTrackingScaling",
        ],
    );
    assert_eq!(listed["ScalingPolicies"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        listed["ScalingPolicies"][0]["TargetTrackingConfiguration"]["TargetValue"],
        40.0
    );
    asg(
        &d,
        &[
            "delete-policy",
            "--auto-scaling-group-name",
            "web",
            "--policy-name",
            "track",
        ],
    );
    let alarms = d.aws_cli_json(&[
        "cloudwatch",
        "describe-alarms",
        "--alarm-name-prefix",
        "TargetTracking-web-",
    ]);
    assert_eq!(alarms["MetricAlarms"].as_array().map(Vec::len), Some(0));
    let all = asg(
        &d,
        &["describe-policies", "--auto-scaling-group-name", "web"],
    );
    assert_eq!(all["ScalingPolicies"].as_array().map(Vec::len), Some(3));
}
