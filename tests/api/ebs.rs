//! EBS through the real `aws` CLI: volumes with AWS's size and IOPS limits, attach and
//! detach with their states, the root volume and block-device mappings of RunInstances,
//! `DeleteOnTermination` at terminate, snapshots and volumes made from them, and all of
//! it kept across a daemon restart. Volume transitions take 500 ms, so each `wait`
//! comes after a short sleep and answers on its first poll.

use serde_json::Value;

use crate::support::{Lab, TestDaemon, s};

fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(700));
}

fn volume(d: &dyn Lab, id: &str) -> Value {
    d.aws(&["describe-volumes", "--volume-ids", id])["Volumes"][0].clone()
}

#[test]
fn volume_limits_are_aws_limits() {
    let d = TestDaemon::start();
    let az = ["--availability-zone", "us-east-1a"];
    let v = d.aws(
        &[
            &["create-volume", "--size", "10", "--volume-type", "gp3"][..],
            &az,
        ]
        .concat(),
    );
    assert_eq!(v["State"], "creating");
    assert_eq!(v["Iops"], 3000, "gp3's baseline IOPS");
    assert_eq!(v["Throughput"], 125);
    let gp2 = d.aws(&[&["create-volume", "--size", "100"][..], &az].concat());
    assert_eq!(
        gp2["VolumeType"], "gp2",
        "gp2 is CreateVolume's default type"
    );
    assert_eq!(gp2["Iops"], 300, "gp2: 3 IOPS per GiB");
    let e = d.aws_err(
        &[
            &["create-volume", "--size", "20000", "--volume-type", "gp2"][..],
            &az,
        ]
        .concat(),
        "InvalidParameterValue",
    );
    assert!(e.contains("16384"), "{e}");
    d.aws_err(
        &[
            &["create-volume", "--size", "100", "--volume-type", "st1"][..],
            &az,
        ]
        .concat(),
        "InvalidParameterValue",
    );
    d.aws_err(
        &[
            &["create-volume", "--size", "10", "--volume-type", "io1"][..],
            &az,
        ]
        .concat(),
        "MissingParameter",
    );
    let e = d.aws_err(
        &[
            &[
                "create-volume",
                "--size",
                "10",
                "--volume-type",
                "io1",
                "--iops",
                "1000",
            ][..],
            &az,
        ]
        .concat(),
        "InvalidParameterValue",
    );
    assert!(e.contains("ratio"), "io1 allows 50 IOPS per GiB: {e}");
    d.aws_err(
        &[
            &[
                "create-volume",
                "--size",
                "10",
                "--volume-type",
                "gp2",
                "--iops",
                "300",
            ][..],
            &az,
        ]
        .concat(),
        "InvalidParameterValue",
    );
    d.aws_err(
        &[
            "create-volume",
            "--size",
            "10",
            "--availability-zone",
            "us-east-1z",
        ],
        "InvalidZone.NotFound",
    );
    let id = s(&v["VolumeId"]);
    settle();
    d.aws(&["wait", "volume-available", "--volume-ids", &id]);
    let m = d.aws(&[
        "modify-volume",
        "--volume-id",
        &id,
        "--size",
        "20",
        "--iops",
        "6000",
    ]);
    assert_eq!(m["VolumeModification"]["TargetSize"], 20);
    assert_eq!(m["VolumeModification"]["OriginalSize"], 10);
    assert_eq!(volume(&d, &id)["Iops"], 6000);
    d.aws_err(
        &["modify-volume", "--volume-id", &id, "--size", "15"],
        "InvalidParameterValue",
    );
    d.aws_err(
        &["describe-volumes", "--volume-ids", "vol-0123456789abcdef0"],
        "InvalidVolume.NotFound",
    );
}

#[test]
fn attach_detach_snapshots_and_delete_on_termination_survive_a_restart() {
    let mut d = TestDaemon::start();
    let image = crate::support::latest_al2023_ami(&d);
    let run = d.aws(&[
        "run-instances",
        "--image-id",
        &image,
        "--instance-type",
        "t2.micro",
        "--placement",
        "AvailabilityZone=us-east-1a",
        "--block-device-mappings",
        r#"[{"DeviceName":"/dev/xvda","Ebs":{"VolumeSize":20,"VolumeType":"gp3"}},{"DeviceName":"/dev/sdh","Ebs":{"VolumeSize":5,"DeleteOnTermination":false}}]"#,
        "--tag-specifications",
        "ResourceType=volume,Tags=[{Key=team,Value=blue}]",
    ]);
    let inst = s(&run["Instances"][0]["InstanceId"]);
    let vols = d.aws(&[
        "describe-volumes",
        "--filters",
        &format!("Name=attachment.instance-id,Values={inst}"),
    ])["Volumes"]
        .clone();
    let vols = vols.as_array().expect("volumes");
    assert_eq!(vols.len(), 2, "{vols:?}");
    let root = vols
        .iter()
        .find(|v| v["Attachments"][0]["Device"] == "/dev/xvda")
        .expect("the root volume");
    assert_eq!(root["Size"], 20);
    assert_eq!(root["VolumeType"], "gp3");
    assert_eq!(root["Tags"][0]["Value"], "blue");
    let root_id = s(&root["VolumeId"]);
    let kept = vols
        .iter()
        .find(|v| v["Attachments"][0]["Device"] == "/dev/sdh")
        .expect("the /dev/sdh volume");
    assert_eq!(kept["Attachments"][0]["DeleteOnTermination"], false);
    let kept_id = s(&kept["VolumeId"]);

    let data = d.aws(&[
        "create-volume",
        "--size",
        "8",
        "--availability-zone",
        "us-east-1a",
        "--tag-specifications",
        "ResourceType=volume,Tags=[{Key=Name,Value=data}]",
    ]);
    let data_id = s(&data["VolumeId"]);
    settle();
    let other_az = d.aws(&[
        "create-volume",
        "--size",
        "8",
        "--availability-zone",
        "us-east-1b",
    ]);
    settle();
    d.aws_err(
        &[
            "attach-volume",
            "--volume-id",
            &s(&other_az["VolumeId"]),
            "--instance-id",
            &inst,
            "--device",
            "/dev/sdg",
        ],
        "InvalidVolume.ZoneMismatch",
    );
    let a = d.aws(&[
        "attach-volume",
        "--volume-id",
        &data_id,
        "--instance-id",
        &inst,
        "--device",
        "/dev/sdf",
    ]);
    assert_eq!(a["State"], "attaching");
    settle();
    d.aws(&["wait", "volume-in-use", "--volume-ids", &data_id]);
    let v = volume(&d, &data_id);
    assert_eq!(v["State"], "in-use");
    assert_eq!(v["Attachments"][0]["State"], "attached");
    assert_eq!(v["Attachments"][0]["InstanceId"], inst.as_str());
    // `/dev/xvdf` is the same attachment point as `/dev/sdf`.
    let spare = d.aws(&[
        "create-volume",
        "--size",
        "1",
        "--availability-zone",
        "us-east-1a",
    ]);
    settle();
    d.aws_err(
        &[
            "attach-volume",
            "--volume-id",
            &s(&spare["VolumeId"]),
            "--instance-id",
            &inst,
            "--device",
            "/dev/xvdf",
        ],
        "InvalidParameterValue",
    );
    d.aws_err(&["delete-volume", "--volume-id", &data_id], "VolumeInUse");
    d.aws_err(
        &["detach-volume", "--volume-id", &root_id],
        "OperationNotPermitted",
    );
    let devices = d.aws(&[
        "describe-instances",
        "--instance-ids",
        &inst,
        "--query",
        "Reservations[0].Instances[0].BlockDeviceMappings[].DeviceName",
    ]);
    assert_eq!(
        devices,
        serde_json::json!(["/dev/xvda", "/dev/sdf", "/dev/sdh"])
    );

    // A snapshot, and a volume made from it (its size by default).
    let snap = d.aws(&[
        "create-snapshot",
        "--volume-id",
        &data_id,
        "--description",
        "nightly",
    ]);
    let snap_id = s(&snap["SnapshotId"]);
    assert_eq!(snap["State"], "pending");
    settle();
    d.aws(&["wait", "snapshot-completed", "--snapshot-ids", &snap_id]);
    let listed = d.aws(&["describe-snapshots", "--owner-ids", "self"]);
    assert_eq!(listed["Snapshots"][0]["Description"], "nightly");
    assert_eq!(listed["Snapshots"][0]["VolumeSize"], 8);
    let restored = d.aws(&[
        "create-volume",
        "--snapshot-id",
        &snap_id,
        "--availability-zone",
        "us-east-1b",
    ]);
    assert_eq!(restored["Size"], 8);
    assert_eq!(restored["SnapshotId"], snap_id.as_str());
    d.aws_err(
        &[
            "create-volume",
            "--snapshot-id",
            &snap_id,
            "--size",
            "4",
            "--availability-zone",
            "us-east-1a",
        ],
        "InvalidParameterValue",
    );

    let det = d.aws(&["detach-volume", "--volume-id", &data_id]);
    assert_eq!(det["State"], "detaching");
    settle();
    d.aws(&["wait", "volume-available", "--volume-ids", &data_id]);
    assert!(
        volume(&d, &data_id)["Attachments"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    );

    // Restart: volumes, attachments, snapshots and tags are durable.
    d.stop();
    d.launch();
    assert_eq!(
        volume(&d, &kept_id)["Attachments"][0]["InstanceId"],
        inst.as_str()
    );
    assert_eq!(volume(&d, &data_id)["Tags"][0]["Value"], "data");
    d.aws(&["describe-snapshots", "--snapshot-ids", &snap_id]);

    d.aws(&["terminate-instances", "--instance-ids", &inst]);
    std::thread::sleep(std::time::Duration::from_millis(400));
    d.aws(&["wait", "instance-terminated", "--instance-ids", &inst]);
    d.aws_err(
        &["describe-volumes", "--volume-ids", &root_id],
        "InvalidVolume.NotFound",
    );
    let kept = volume(&d, &kept_id);
    assert_eq!(
        kept["State"], "available",
        "DeleteOnTermination=false keeps it"
    );
    d.aws(&["delete-volume", "--volume-id", &data_id]);
    d.aws(&["delete-snapshot", "--snapshot-id", &snap_id]);
    d.aws_err(
        &["describe-snapshots", "--snapshot-ids", &snap_id],
        "InvalidSnapshot.NotFound",
    );
}
