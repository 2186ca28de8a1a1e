//! Secondary private IPv4 addresses through the real `aws` CLI and the fabric's
//! `explain`. AWS rules (EC2 User Guide, "Multiple IP addresses"; API reference of
//! AssignPrivateIpAddresses and UnassignPrivateIpAddresses): secondary addresses come
//! from the interface's subnet, by count or by address; an instance type caps the IPv4
//! addresses of an interface (t3.micro: 2); an address in use stays where it is unless
//! reassignment is allowed; the primary address cannot be unassigned.

use serde_json::Value;

use crate::support::{Lab, TestDaemon, have, latest_al2023_ami};

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn addresses(d: &TestDaemon, eni: &str) -> Vec<(String, bool)> {
    let v = d.aws(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        eni,
    ]);
    v["NetworkInterfaces"][0]["PrivateIpAddresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| (s(&a["PrivateIpAddress"]), a["Primary"] == true))
        .collect()
}

#[test]
fn secondary_addresses_are_assigned_listed_limited_and_reach_their_interface() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let vpc = d.aws_text(&[
        "create-vpc",
        "--cidr-block",
        "10.0.0.0/16",
        "--query",
        "Vpc.VpcId",
    ]);
    let sub = d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.0.1.0/24",
        "--availability-zone",
        "us-east-1a",
        "--query",
        "Subnet.SubnetId",
    ]);
    let eni = d.aws_text(&[
        "create-network-interface",
        "--subnet-id",
        &sub,
        "--query",
        "NetworkInterface.NetworkInterfaceId",
    ]);
    let out = d.aws(&[
        "assign-private-ip-addresses",
        "--network-interface-id",
        &eni,
        "--secondary-private-ip-address-count",
        "2",
    ]);
    let assigned: Vec<String> = out["AssignedPrivateIpAddresses"]
        .as_array()
        .expect("assigned")
        .iter()
        .map(|a| s(&a["PrivateIpAddress"]))
        .collect();
    assert_eq!(assigned.len(), 2, "{out}");
    let all = addresses(&d, &eni);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].1 && !all[1].1 && !all[2].1, "{all:?}");
    assert_eq!(all[1].0, assigned[0]);

    // An explicit address; one in use elsewhere stays there.
    d.aws_text(&[
        "assign-private-ip-addresses",
        "--network-interface-id",
        &eni,
        "--private-ip-addresses",
        "10.0.1.50",
    ]);
    let other = d.aws_text(&[
        "create-network-interface",
        "--subnet-id",
        &sub,
        "--query",
        "NetworkInterface.NetworkInterfaceId",
    ]);
    d.aws_err(
        &[
            "assign-private-ip-addresses",
            "--network-interface-id",
            &other,
            "--private-ip-addresses",
            "10.0.1.50",
        ],
        "InvalidIPAddress.InUse",
    );
    d.aws_text(&[
        "assign-private-ip-addresses",
        "--network-interface-id",
        &other,
        "--private-ip-addresses",
        "10.0.1.50",
        "--allow-reassignment",
    ]);
    assert!(addresses(&d, &other).iter().any(|(a, _)| a == "10.0.1.50"));
    assert!(!addresses(&d, &eni).iter().any(|(a, _)| a == "10.0.1.50"));
    d.aws_err(
        &[
            "assign-private-ip-addresses",
            "--network-interface-id",
            &eni,
        ],
        "MissingParameter",
    );
    // Unassign a secondary; never the primary.
    d.aws_text(&[
        "unassign-private-ip-addresses",
        "--network-interface-id",
        &eni,
        "--private-ip-addresses",
        &assigned[1],
    ]);
    assert_eq!(addresses(&d, &eni).len(), 2);
    let primary = addresses(&d, &eni)[0].0.clone();
    d.aws_err(
        &[
            "unassign-private-ip-addresses",
            "--network-interface-id",
            &eni,
            "--private-ip-addresses",
            &primary,
        ],
        "InvalidParameterValue",
    );

    // RunInstances: a t3.micro interface holds 2 IPv4 addresses.
    let ami = latest_al2023_ami(&d);
    d.key_pair("lab", "ed25519");
    let sg = d.aws_text(&[
        "create-security-group",
        "--group-name",
        "ssh",
        "--description",
        "ssh",
        "--vpc-id",
        &vpc,
        "--query",
        "GroupId",
    ]);
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "10.0.0.0/16",
    ]);
    let run = |count: &str| {
        vec![
            "run-instances".to_string(),
            "--image-id".into(),
            ami.clone(),
            "--instance-type".into(),
            "t3.micro".into(),
            "--key-name".into(),
            "lab".into(),
            "--subnet-id".into(),
            sub.clone(),
            "--security-group-ids".into(),
            sg.clone(),
            "--secondary-private-ip-address-count".into(),
            count.into(),
            "--query".into(),
            "Instances[0].InstanceId".into(),
        ]
    };
    let args = run("2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    d.aws_err(&args, "PrivateIpAddressLimitExceeded");
    let args = run("1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let target = d.aws_text(&args);
    let v = d.aws(&["describe-instances", "--instance-ids", &target]);
    let nic = &v["Reservations"][0]["Instances"][0]["NetworkInterfaces"][0];
    let ips = nic["PrivateIpAddresses"].as_array().expect("addresses");
    assert_eq!(ips.len(), 2, "{v}");
    assert_eq!(ips[1]["Primary"], false, "{v}");
    let secondary = s(&ips[1]["PrivateIpAddress"]);
    let target_eni = s(&nic["NetworkInterfaceId"]);

    // The fabric delivers the secondary address to its interface, through its group.
    let args = run("0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let source = d.aws_text(&args);
    d.wait_running(&[&source]);
    let out = d.vpclab(&["trace", &source, &format!("{secondary}:22")], b"");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&target_eni), "{text}");
    let out = d.vpclab(&["trace", &source, &format!("{secondary}:80")], b"");
    assert_eq!(
        out.status.code(),
        Some(3),
        "port 80 is not in the group: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
