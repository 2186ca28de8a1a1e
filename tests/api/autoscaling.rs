//! EC2 launch templates (`aws ec2`) and Auto Scaling groups (`aws autoscaling`, awsQuery)
//! with the real CLI: template versions feed RunInstances, and a group keeps its
//! desired capacity, replacing an instance someone terminated, with its activities.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Lab, TestDaemon, have, two_zone_vpc};

fn ami(d: &TestDaemon) -> String {
    d.aws_text(&[
        "describe-images",
        "--owners",
        "amazon",
        "--filters",
        "Name=name,Values=al2023-ami-*",
        "--query",
        "sort_by(Images, &CreationDate)[-1].ImageId",
    ])
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
    let (_, a, b, _) = two_zone_vpc(&d);
    let ami = ami(&d);
    d.aws(&[
        "create-launch-template",
        "--launch-template-name",
        "web",
        "--launch-template-data",
        &format!("{{\"ImageId\":\"{ami}\",\"InstanceType\":\"t3.micro\"}}"),
    ]);
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
