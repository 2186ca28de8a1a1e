//! Instances and the world's internet, end to end with the real tools: the bastion
//! lesson (ssh from a public instance to a private one with a key copied by `scp`), a NAT
//! gateway's Elastic IP seen by the "what is my IP" service, `dnf install` that needs a
//! path to the internet, the VPC resolver, and a web server the learner reaches only when
//! the security group allows port 80.

use crate::support::{Lab, Network, TestDaemon, VPCLAB, stderr, stdout};

/// An HTTP GET from the learner's computer through `vpclab connect`.
fn learner_get(d: &dyn Lab, host: &str, port: u16) -> std::process::Output {
    d.vpclab(
        &["connect", "--timeout", "2", host, &port.to_string()],
        format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
}

#[test]
fn private_instance_behind_a_nat_gateway_reaches_the_internet_with_the_elastic_ip() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let bastion_sg = net.security_group(&d, "bastion", &[(22, "0.0.0.0/0")]);
    let private_sg = net.security_group(&d, "private", &[(22, "10.0.1.0/24")]);
    let key = d.key_pair("lab", "ed25519");
    let (_, bastion, _) = net.launch(&d, &net.public_subnet, "lab", &bastion_sg, &[]);
    let (_, public_of_private, private) =
        net.launch(&d, &net.private_subnet, "lab", &private_sg, &[]);
    assert_eq!(public_of_private, "None");

    // The bastion lesson: copy the key up (OpenSSH 9's scp speaks SFTP), hop inside.
    crate::support::require("scp");
    let mut scp = std::process::Command::new("scp");
    scp.arg("-i")
        .arg(&key)
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
        ])
        .arg(format!(
            "UserKnownHostsFile={}",
            d.path("known_hosts").display()
        ))
        .arg("-o")
        .arg(format!("ProxyCommand={VPCLAB} connect %h %p"))
        .arg(&key)
        .arg(format!("ec2-user@{bastion}:lab.pem"));
    d.env(&mut scp);
    let out = scp.output().expect("run scp");
    assert!(out.status.success(), "scp: {}", stderr(&out));
    let hop = |cmd: &str| {
        d.ssh_with(
            &key,
            "ec2-user",
            &bastion,
            &format!(
                "ssh -i lab.pem -o StrictHostKeyChecking=no ec2-user@{private} '{cmd}'; echo \"exit=$?\""
            ),
            10,
        )
    };
    let out = hop("hostname");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ip-10-0-2-4.ec2.internal\nexit=0\n");

    // No route to the internet: the package mirror cannot be reached.
    let out = hop("sudo dnf install -y httpd");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("exit=1"), "{text}");
    assert!(text.contains("Failed to download metadata"), "{text}");

    // A NAT gateway with an Elastic IP in the public subnet, and the private default route.
    let alloc = d.aws_text(&[
        "allocate-address",
        "--domain",
        "vpc",
        "--query",
        "AllocationId",
    ]);
    let eip = d.aws_text(&[
        "describe-addresses",
        "--allocation-ids",
        &alloc,
        "--query",
        "Addresses[0].PublicIp",
    ]);
    let nat = d.aws_text(&[
        "create-nat-gateway",
        "--subnet-id",
        &net.public_subnet,
        "--allocation-id",
        &alloc,
        "--query",
        "NatGateway.NatGatewayId",
    ]);
    // `aws ec2 wait` polls every 15 s; the gateway is available well before that.
    for _ in 0..40 {
        let state = d.aws_text(&[
            "describe-nat-gateways",
            "--nat-gateway-ids",
            &nat,
            "--query",
            "NatGateways[0].State",
        ]);
        if state == "available" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        &net.private_rt,
        "--destination-cidr-block",
        "0.0.0.0/0",
        "--nat-gateway-id",
        &nat,
    ]);
    let out = hop("curl -s http://192.0.2.10/");
    assert_eq!(stdout(&out), format!("{eip}\nexit=0\n"), "{}", stderr(&out));
    let out = hop("sudo dnf install -y httpd");
    assert!(stdout(&out).contains("Complete!"), "{}", stdout(&out));
    assert!(stdout(&out).ends_with("exit=0\n"), "{}", stdout(&out));

    // The VPC resolver (base + 2) answers the instance's own private name.
    let out = hop("dig +short ip-10-0-1-4.ec2.internal");
    assert_eq!(stdout(&out), "10.0.1.4\nexit=0\n", "{}", stderr(&out));
}

#[test]
fn web_server_is_reachable_from_the_learner_only_when_the_security_group_allows_80() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    d.aws_text(&[
        "modify-vpc-attribute",
        "--vpc-id",
        &net.vpc,
        "--enable-dns-hostnames",
    ]);
    let sg = net.security_group(&d, "web", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "rsa");
    let (_, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let out = d.ssh(
        &key,
        "ec2-user",
        &ip,
        "sudo dnf install -y httpd >/dev/null && echo 'hello from vpclab' | sudo tee /var/www/html/index.html >/dev/null && sudo systemctl start httpd && curl -s http://localhost/",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from vpclab\n");

    let out = learner_get(&d, &ip, 80);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));

    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--cidr",
        "0.0.0.0/0",
    ]);
    // By public DNS name, resolved by the world's public DNS.
    let name = format!("ec2-{}.compute-1.amazonaws.com", ip.replace('.', "-"));
    let out = learner_get(&d, &name, 80);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.ends_with("hello from vpclab\n"), "{page}");

    // `vpclab ssh-config` makes plain `ssh -i key ec2-user@<public name>` work.
    let out = d.vpclab(&["ssh-config"], b"");
    assert!(out.status.success());
    let config = d.path("ssh_config");
    std::fs::write(&config, stdout(&out)).expect("write config");
    let mut ssh = std::process::Command::new("ssh");
    ssh.arg("-F")
        .arg(&config)
        .arg("-i")
        .arg(&key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
        ])
        .arg(format!(
            "UserKnownHostsFile={}",
            d.path("known_hosts").display()
        ))
        .arg(format!("ec2-user@{name}"))
        .arg("whoami")
        .env("AWS_ENDPOINT_URL", d.url());
    let out = ssh.output().expect("run ssh");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ec2-user\n");
}
