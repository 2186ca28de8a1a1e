//! The learner's path into an instance, end to end, with the real tools: `aws` creates the
//! key pair and launches into a public subnet, OpenSSH logs in with the `.pem` through
//! `vpclab connect`, and every packet crosses the internet gateway, the network ACL and
//! the security group of the world's fabric.

use crate::support::{Lab, Network, TestDaemon, VPCLAB, stderr, stdout};

/// The learner's address, as `vpclab whoami` prints it.
fn my_ip(d: &dyn Lab) -> String {
    let out = d.vpclab(&["whoami"], b"");
    assert!(out.status.success(), "whoami: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn ssh_with_rsa_and_ed25519_pem_runs_the_command_and_returns_its_exit_status() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let me = my_ip(&d);
    assert!(me.starts_with("203.0.113."), "{me}");
    let sg = net.security_group(&d, "ssh", &[(22, &format!("{me}/32"))]);
    let rsa = d.key_pair("lab-rsa", "rsa");
    let ed = d.key_pair("lab-ed", "ed25519");
    let (_, ip_rsa, _) = net.launch(&d, &net.public_subnet, "lab-rsa", &sg, &[]);
    let (_, ip_ed, _) = net.launch(&d, &net.public_subnet, "lab-ed", &sg, &[]);

    for (key, ip) in [(&rsa, &ip_rsa), (&ed, &ip_ed)] {
        let out = d.ssh(key, "ec2-user", ip, "echo hi; exit 3");
        assert_eq!(out.status.code(), Some(3), "ssh stderr: {}", stderr(&out));
        assert_eq!(stdout(&out), "hi\n");
    }
    // The other instance's key is not authorized; neither is another user.
    let out = d.ssh(&rsa, "ec2-user", &ip_ed, "true");
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("Permission denied (publickey)"),
        "{}",
        stderr(&out)
    );
    // root with the right key is let in only to be told which user to use, as
    // cloud-init arranges on AWS's images (issue 10).
    let out = d.ssh(&rsa, "root", &ip_rsa, "true");
    assert!(
        stdout(&out)
            .contains(r#"Please login as the user "ec2-user" rather than the user "root"."#),
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(142));
}

#[test]
fn without_a_port_22_rule_the_connection_times_out_and_says_which_rule() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "web-only", &[(80, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (_, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);

    let started = std::time::Instant::now();
    let out = d.ssh_with(&key, "ec2-user", &ip, "true", 2);
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("vpclab: connection to {ip}:22 timed out")),
        "{err}"
    );
    assert!(err.contains("security group"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));

    // The same connect, by itself: one line, a non-zero exit code.
    let out = d.vpclab(&["connect", "--timeout", "1", &ip, "22"], b"");
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    // Allowing port 22 governs the next packet.
    crate::support::allow_tcp(&d, &sg, 22, "0.0.0.0/0");
    let out = d.ssh(&key, "ec2-user", &ip, "hostname");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ip-10-0-1-4.ec2.internal\n");
}

#[test]
fn a_network_acl_deny_makes_the_connection_time_out() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (_, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    assert!(d.ssh(&key, "ec2-user", &ip, "true").status.success());

    // A new ACL on the subnet: deny SSH from anywhere at rule 100.
    let acl = d.aws_text(&[
        "create-network-acl",
        "--vpc-id",
        &net.vpc,
        "--query",
        "NetworkAcl.NetworkAclId",
    ]);
    for (egress, rule) in [("--ingress", "100"), ("--egress", "100")] {
        let action = if egress == "--ingress" {
            "deny"
        } else {
            "allow"
        };
        let ports = if egress == "--ingress" {
            "From=22,To=22"
        } else {
            "From=0,To=65535"
        };
        d.aws_text(&[
            "create-network-acl-entry",
            "--network-acl-id",
            &acl,
            egress,
            "--rule-number",
            rule,
            "--protocol",
            "tcp",
            "--port-range",
            ports,
            "--cidr-block",
            "0.0.0.0/0",
            "--rule-action",
            action,
        ]);
    }
    let assoc = d.aws_text(&[
        "describe-network-acls",
        "--filters",
        &format!("Name=association.subnet-id,Values={}", net.public_subnet),
        "--query",
        &format!(
            "NetworkAcls[0].Associations[?SubnetId=='{}'].NetworkAclAssociationId",
            net.public_subnet
        ),
    ]);
    d.aws_text(&[
        "replace-network-acl-association",
        "--association-id",
        &assoc,
        "--network-acl-id",
        &acl,
    ]);
    let out = d.ssh_with(&key, "ec2-user", &ip, "true", 2);
    assert_eq!(out.status.code(), Some(255));
    let err = stderr(&out);
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains(&acl) && err.contains("rule 100"), "{err}");
}

#[test]
fn instance_metadata_answers_from_inside_the_instance() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (id, ip, private) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let script = "TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); \
                  curl -s -H \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/meta-data/instance-id; echo; \
                  curl -s -H \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/meta-data/local-ipv4; echo; \
                  curl -s -H \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/meta-data/public-ipv4";
    let out = d.ssh(&key, "ec2-user", &ip, script);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}\n{private}\n{ip}"));

    // The identity document and the interface's metadata name the world's own account,
    // interface and groups, as DescribeInstances does.
    let described = d.aws(&["describe-instances", "--instance-ids", &id]);
    let owner = described["Reservations"][0]["OwnerId"]
        .as_str()
        .expect("OwnerId");
    let eni =
        described["Reservations"][0]["Instances"][0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
            .as_str()
            .expect("NetworkInterfaceId");
    let script = "T=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); \
                  M=http://169.254.169.254/latest/meta-data; \
                  MAC=$(curl -s -H \"X-aws-ec2-metadata-token: $T\" $M/mac); \
                  curl -s -H \"X-aws-ec2-metadata-token: $T\" http://169.254.169.254/latest/dynamic/instance-identity/document | grep accountId; \
                  curl -s -H \"X-aws-ec2-metadata-token: $T\" $M/network/interfaces/macs/$MAC/owner-id; echo; \
                  curl -s -H \"X-aws-ec2-metadata-token: $T\" $M/network/interfaces/macs/$MAC/interface-id; echo; \
                  curl -s -H \"X-aws-ec2-metadata-token: $T\" $M/network/interfaces/macs/$MAC/security-group-ids";
    let out = d.ssh(&key, "ec2-user", &ip, script);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("  \"accountId\": \"{owner}\",\n{owner}\n{eni}\n{sg}")
    );
}

#[test]
fn host_key_and_files_survive_a_daemon_restart() {
    let mut d = TestDaemon::start();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (_, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let out = d.ssh(&key, "ec2-user", &ip, "echo kept > notes.txt");
    assert!(out.status.success(), "{}", stderr(&out));

    d.stop();
    d.launch();
    // known_hosts from the first run must still match (accept-new refuses a changed key).
    let mut out = d.ssh(&key, "ec2-user", &ip, "cat notes.txt");
    for _ in 0..20 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        out = d.ssh(&key, "ec2-user", &ip, "cat notes.txt");
    }
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "kept\n");
}

#[test]
fn user_data_runs_at_first_boot_and_the_console_prints_the_host_key_ssh_sees() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let script = d.path("user-data.sh");
    std::fs::write(
        &script,
        "#!/bin/bash\necho booted-by-user-data\necho from-user-data > /root/marker\n",
    )
    .expect("write user data");
    let (id, ip, _) = net.launch(
        &d,
        &net.public_subnet,
        "lab",
        &sg,
        &["--user-data", &format!("file://{}", script.display())],
    );
    let mut out = d.ssh(&key, "ec2-user", &ip, "sudo cat /root/marker");
    for _ in 0..20 {
        if stdout(&out) == "from-user-data\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        out = d.ssh(&key, "ec2-user", &ip, "sudo cat /root/marker");
    }
    assert_eq!(stdout(&out), "from-user-data\n", "{}", stderr(&out));
    let out = d.ssh(&key, "ec2-user", &ip, "cat /var/log/cloud-init-output.log");
    assert!(
        stdout(&out).contains("booted-by-user-data"),
        "{}",
        stdout(&out)
    );

    // The fingerprint in the console is the one OpenSSH recorded in known_hosts.
    let known = std::process::Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(d.path("known_hosts"))
        .output()
        .expect("ssh-keygen");
    let fp = stdout(&known)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string();
    let mut console = String::new();
    for _ in 0..20 {
        console = d.aws_text(&[
            "get-console-output",
            "--instance-id",
            &id,
            "--query",
            "Output",
        ]);
        if console.contains(&fp) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(console.contains(&fp), "{fp} not in console:\n{console}");
    assert!(console.contains("booted-by-user-data"), "{console}");
}

/// `ssh -J` through a bastion (RFC 4254 §7.2 local forwarding, which OpenSSH's
/// ProxyJump uses): the bastion opens the second hop from its own address, so the
/// private instance's security group must allow the bastion, and a private instance
/// whose group does not is refused by the fabric on that hop, not by the bastion.
#[test]
fn ssh_jump_through_a_bastion_reaches_a_private_instance_its_group_allows() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let me = my_ip(&d);
    let bastion_sg = net.security_group(&d, "bastion", &[(22, &format!("{me}/32"))]);
    let key = d.key_pair("lab", "ed25519");
    let (_, bastion_ip, _) = net.launch(&d, &net.public_subnet, "lab", &bastion_sg, &[]);
    // The private instance's group allows SSH from members of the bastion's group only.
    let app_sg = net.security_group(&d, "app", &[]);
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &app_sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--source-group",
        &bastion_sg,
    ]);
    let (_, app_public, app_ip) = net.launch(&d, &net.private_subnet, "lab", &app_sg, &[]);
    assert_eq!(app_public, "None");
    let config = d.path("jump.config");
    std::fs::write(
        &config,
        format!(
            "Host bastion\n  HostName {bastion_ip}\n  User ec2-user\n  IdentityFile {key}\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {kh}\n  ProxyCommand {VPCLAB} connect --timeout 10 %h %p\nHost 10.*\n  IdentityFile {key}\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {kh}\n",
            key = key.display(),
            kh = d.path("known_hosts").display(),
        ),
    )
    .expect("write ssh config");
    let jump = |target: &str| {
        let mut cmd = std::process::Command::new("ssh");
        cmd.arg("-F")
            .arg(&config)
            .args([
                "-J",
                "bastion",
                &format!("ec2-user@{target}"),
                "hostname -I",
            ])
            .stdin(std::process::Stdio::null());
        d.env(&mut cmd);
        cmd.output().expect("run ssh")
    };
    let out = jump(&app_ip);
    assert!(out.status.success(), "ssh -J: {}", stderr(&out));
    assert!(stdout(&out).contains(&app_ip), "{}", stdout(&out));
    // Without the group reference, the bastion's connection to app times out: the
    // forwarded channel fails as OpenSSH reports it.
    d.aws_text(&[
        "revoke-security-group-ingress",
        "--group-id",
        &app_sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--source-group",
        &bastion_sg,
    ]);
    let out = jump(&app_ip);
    assert_eq!(out.status.code(), Some(255), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("open failed"),
        "the jump says the channel failed: {}",
        stderr(&out)
    );
}
