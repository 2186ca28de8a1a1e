//! Instances, images and instance types through the real `aws` CLI, as a learner's lab
//! uses them: find the newest Amazon Linux image, launch into a subnet, wait for
//! `running`, find instances with filters and `--query`, stop/start (the private address
//! stays, the automatic public one changes), terminate; and a daemon crash in between.
//! Instance transitions are shortened to 300 ms so `aws ec2 wait` answers on its first
//! poll.

use serde_json::{Value, json};

use crate::support::{Lab, ProcessDaemon, TestDaemon, s};

fn newest_al2023(d: &dyn Lab) -> String {
    crate::support::latest_al2023_ami(d)
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(s).collect()
}

#[test]
fn lifecycle_in_a_subnet_keeps_the_private_ip_and_changes_the_public_ip_on_stop_start() {
    let d = TestDaemon::start();
    let vpc = d.aws_text(&[
        "create-vpc",
        "--cidr-block",
        "10.0.0.0/16",
        "--query",
        "Vpc.VpcId",
    ]);
    d.aws(&[
        "modify-vpc-attribute",
        "--vpc-id",
        &vpc,
        "--enable-dns-hostnames",
    ]);
    let subnet = d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.0.1.0/24",
        "--query",
        "Subnet.SubnetId",
    ]);
    d.aws(&[
        "modify-subnet-attribute",
        "--subnet-id",
        &subnet,
        "--map-public-ip-on-launch",
    ]);
    d.aws(&[
        "create-key-pair",
        "--key-name",
        "lab",
        "--key-type",
        "ed25519",
    ]);
    let ami = newest_al2023(&d);
    assert_eq!(ami, "ami-0ccbe15b62d56cc35");

    let run = d.aws(&[
        "run-instances",
        "--image-id",
        &ami,
        "--instance-type",
        "t3.micro",
        "--key-name",
        "lab",
        "--subnet-id",
        &subnet,
        "--count",
        "2",
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=Name,Value=web}]",
    ]);
    let launched = run["Instances"].as_array().expect("instances");
    assert_eq!(launched.len(), 2);
    assert_eq!(s(&launched[0]["State"]["Name"]), "pending");
    // The first four addresses of a subnet are reserved.
    assert_eq!(s(&launched[0]["PrivateIpAddress"]), "10.0.1.4");
    assert_eq!(s(&launched[1]["PrivateIpAddress"]), "10.0.1.5");
    assert_eq!(
        s(&launched[0]["PrivateDnsName"]),
        "ip-10-0-1-4.ec2.internal"
    );
    let web1 = s(&launched[0]["InstanceId"]);
    let web2 = s(&launched[1]["InstanceId"]);
    let public1 = s(&launched[0]["PublicIpAddress"]);
    assert!(
        public1.starts_with("198.18.") || public1.starts_with("198.19."),
        "{public1}"
    );
    assert_eq!(
        s(&launched[0]["PublicDnsName"]),
        format!("ec2-{}.compute-1.amazonaws.com", public1.replace('.', "-"))
    );

    d.aws(&["wait", "instance-running", "--instance-ids", &web1, &web2]);

    let q = "Reservations[].Instances[].InstanceId";
    let running = d.aws(&[
        "describe-instances",
        "--filters",
        &format!("Name=subnet-id,Values={subnet}"),
        "Name=tag:Name,Values=web",
        "Name=instance-state-name,Values=running",
        "--query",
        q,
    ]);
    assert_eq!(ids(&running), [web1.clone(), web2.clone()]);
    let by_ip = d.aws(&[
        "describe-instances",
        "--filters",
        "Name=private-ip-address,Values=10.0.1.5",
        "--query",
        q,
    ]);
    assert_eq!(ids(&by_ip), std::slice::from_ref(&web2));
    let by_public = d.aws(&[
        "describe-instances",
        "--filters",
        &format!("Name=ip-address,Values={public1}"),
        "--query",
        q,
    ]);
    assert_eq!(ids(&by_public), std::slice::from_ref(&web1));
    let by_many = d.aws(&[
        "describe-instances",
        "--filters",
        "Name=key-name,Values=lab",
        "Name=instance-type,Values=t3.*",
        &format!("Name=vpc-id,Values={vpc}"),
        &format!("Name=image-id,Values={ami}"),
        "Name=availability-zone,Values=us-east-1*",
        "--query",
        q,
    ]);
    assert_eq!(ids(&by_many).len(), 2);
    let none = d.aws(&[
        "describe-instances",
        "--filters",
        "Name=tag-key,Values=Owner",
        "--query",
        q,
    ]);
    assert_eq!(none, json!([]));

    // Stop: the private address stays, the automatic public address goes.
    d.aws(&["stop-instances", "--instance-ids", &web1]);
    d.aws(&["wait", "instance-stopped", "--instance-ids", &web1]);
    let stopped = d.aws(&[
        "describe-instances",
        "--instance-ids",
        &web1,
        "--query",
        "Reservations[0].Instances[0].{ip: PrivateIpAddress, pub: PublicIpAddress, state: State.Name}",
    ]);
    assert_eq!(
        stopped,
        json!({"ip": "10.0.1.4", "pub": null, "state": "stopped"})
    );

    d.aws(&["start-instances", "--instance-ids", &web1]);
    d.aws(&["wait", "instance-running", "--instance-ids", &web1]);
    let restarted = d.aws(&[
        "describe-instances",
        "--instance-ids",
        &web1,
        "--query",
        "Reservations[0].Instances[0].[PrivateIpAddress, PublicIpAddress]",
    ]);
    assert_eq!(restarted[0], json!("10.0.1.4"));
    assert_ne!(
        s(&restarted[1]),
        public1,
        "a start assigns a new automatic public address"
    );

    let term = d.aws(&["terminate-instances", "--instance-ids", &web1, &web2]);
    assert_eq!(
        s(&term["TerminatingInstances"][0]["CurrentState"]["Name"]),
        "shutting-down"
    );
    d.aws(&[
        "wait",
        "instance-terminated",
        "--instance-ids",
        &web1,
        &web2,
    ]);
    // Terminated instances stay visible, without network details.
    let gone = d.aws(&[
        "describe-instances",
        "--instance-ids",
        &web1,
        "--query",
        "Reservations[0].Instances[0].{state: State.Name, ip: PrivateIpAddress, nics: length(NetworkInterfaces)}",
    ]);
    assert_eq!(gone, json!({"state": "terminated", "ip": null, "nics": 0}));
}

#[test]
fn describe_images_and_instance_types_answer_from_the_catalog() {
    let d = TestDaemon::start();
    let ubuntu = d.aws(&[
        "describe-images",
        "--owners",
        "099720109477",
        "--filters",
        "Name=name,Values=ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
        "Name=architecture,Values=x86_64",
        "--query",
        "Images[].[Name, ImageOwnerAlias, RootDeviceName]",
    ]);
    let rows = ubuntu.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r[1] == "amazon" && r[2] == "/dev/sda1"));
    let all_amazon = d.aws(&[
        "describe-images",
        "--owners",
        "amazon",
        "--query",
        "length(Images)",
    ]);
    assert_eq!(all_amazon, json!(4));
    d.aws_err(
        &["describe-images", "--image-ids", "ami-00000000000000000"],
        "InvalidAMIID.NotFound",
    );

    let types = d.aws(&[
        "describe-instance-types",
        "--instance-types",
        "t2.micro",
        "r5.large",
        "--query",
        "sort_by(InstanceTypes, &InstanceType)[].[InstanceType, VCpuInfo.DefaultVCpus, MemoryInfo.SizeInMiB, FreeTierEligible]",
    ]);
    assert_eq!(
        types,
        json!([["r5.large", 2, 16384, false], ["t2.micro", 1, 1024, true]])
    );
    let two_vcpu = d.aws(&[
        "describe-instance-types",
        "--filters",
        "Name=vcpu-info.default-vcpus,Values=2",
        "Name=instance-type,Values=t3.*",
        "--query",
        "length(InstanceTypes)",
    ]);
    assert_eq!(two_vcpu, json!(5));
    d.aws_err(
        &["describe-instance-types", "--instance-types", "t9.huge"],
        "InvalidInstanceType",
    );
}

#[test]
fn launch_and_lifecycle_errors_are_the_aws_errors() {
    let d = TestDaemon::start();
    let ami = newest_al2023(&d);
    d.aws_err(
        &["run-instances", "--image-id", "ami-0123456789abcdef0"],
        "InvalidAMIID.NotFound",
    );
    d.aws_err(
        &["run-instances", "--image-id", &ami, "--key-name", "missing"],
        "InvalidKeyPair.NotFound",
    );
    d.aws_err(
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "t9.huge",
        ],
        "InvalidParameterValue",
    );
    d.aws_err(
        &[
            "describe-instances",
            "--instance-ids",
            "i-0123456789abcdef0",
        ],
        "InvalidInstanceID.NotFound",
    );
    let id = d.aws_text(&[
        "run-instances",
        "--image-id",
        &ami,
        "--query",
        "Instances[0].InstanceId",
    ]);
    d.aws(&["terminate-instances", "--instance-ids", &id]);
    d.aws(&["wait", "instance-terminated", "--instance-ids", &id]);
    d.aws_err(
        &["start-instances", "--instance-ids", &id],
        "IncorrectInstanceState",
    );
}

#[test]
fn instances_survive_a_daemon_crash_in_the_state_they_had() {
    let mut d = ProcessDaemon::start();
    let ami = newest_al2023(&d);
    // No subnet: the default subnet of the default VPC, which maps public addresses and
    // has DNS hostnames.
    let run = d.aws(&[
        "run-instances",
        "--image-id",
        &ami,
        "--query",
        "Instances[0].[InstanceId, PrivateIpAddress]",
    ]);
    let (id, private) = (s(&run[0]), s(&run[1]));
    assert!(private.starts_with("172.31."), "{private}");
    d.aws(&["wait", "instance-running", "--instance-ids", &id]);
    d.aws(&[
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--no-source-dest-check",
    ]);
    d.kill9();

    d.launch();
    let after = d.aws(&[
        "describe-instances",
        "--instance-ids",
        &id,
        "--query",
        "Reservations[0].Instances[0].[State.Name, PrivateIpAddress, SourceDestCheck, PublicDnsName]",
    ]);
    assert_eq!(after[0], json!("running"));
    assert_eq!(after[1], json!(private));
    assert_eq!(after[2], json!(false));
    assert!(s(&after[3]).ends_with(".compute-1.amazonaws.com"));
    let attr = d.aws(&[
        "describe-instance-attribute",
        "--instance-id",
        &id,
        "--attribute",
        "sourceDestCheck",
    ]);
    assert_eq!(attr["SourceDestCheck"]["Value"], json!(false));
    let status = d.aws(&[
        "describe-instance-status",
        "--instance-ids",
        &id,
        "--query",
        "InstanceStatuses[0].InstanceState.Name",
    ]);
    assert_eq!(status, json!("running"));
    let console = d.aws_text(&[
        "get-console-output",
        "--instance-id",
        &id,
        "--query",
        "Output",
    ]);
    assert!(
        console.contains("-----BEGIN SSH HOST KEY FINGERPRINTS-----"),
        "{console}"
    );
    assert!(console.contains(&format!("ip-{}", private.replace('.', "-"))));
}

#[test]
fn boto3_waiters_and_parsed_fields_work_for_instances_and_key_pairs() {
    let d = TestDaemon::start();
    let out = d.boto3("boto3_instances.py");
    assert!(
        out.status.success(),
        "boto3 interop failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
