//! DHCP option sets through the real aws CLI and OpenSSH: the region's default set, the
//! validation of CreateDhcpOptions, association (also of `default`, no options), the
//! delete refused while a VPC uses a set, and what an instance sees: its
//! `/etc/resolv.conf` and `hostname -f`.
//!
//! AWS rules (CreateDhcpOptions and AssociateDhcpOptions references): `domain-name-servers`
//! holds up to four addresses or `AmazonProvidedDNS`; `netbios-node-type` is 1, 2, 4 or 8;
//! "After you associate the options with the VPC, any existing instances and all new
//! instances that you launch in that VPC use the options"; `default` associates no DHCP
//! options; an instance gets a custom host name in `domain-name` only when
//! `domain-name-servers` names a custom DNS server; the instance's private DNS name
//! (DescribeInstances) does not change.

use crate::support::{Lab, Network, TestDaemon, have, s, stdout};

/// Runs `command` on the instance until `want` holds for its output (the instance
/// renews its lease on the reconcile after the commit); returns the last output.
fn until(
    d: &TestDaemon,
    key: &std::path::Path,
    host: &str,
    command: &str,
    want: impl Fn(&str) -> bool,
) -> String {
    let mut last = String::new();
    for _ in 0..20 {
        last = stdout(&d.ssh(key, "ec2-user", host, command));
        if want(&last) {
            return last;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    last
}

/// Associates the option set `id` (or `default`) with `vpc`; DescribeVpcs then shows it.
fn associate(d: &TestDaemon, vpc: &str, id: &str) {
    d.aws_text(&[
        "associate-dhcp-options",
        "--dhcp-options-id",
        id,
        "--vpc-id",
        vpc,
    ]);
    assert_eq!(
        d.aws_text(&[
            "describe-vpcs",
            "--vpc-ids",
            vpc,
            "--query",
            "Vpcs[0].DhcpOptionsId"
        ]),
        id
    );
}

#[test]
fn dhcp_options_set_resolv_conf_and_host_name_and_default_means_none() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();

    // The region's default set: AmazonProvidedDNS and ec2.internal, used by the default VPC.
    let default_vpc = d.aws(&["describe-vpcs", "--filters", "Name=is-default,Values=true"]);
    let default_set = s(&default_vpc["Vpcs"][0]["DhcpOptionsId"]);
    let sets = d.aws(&["describe-dhcp-options", "--dhcp-options-ids", &default_set]);
    let configs = &sets["DhcpOptions"][0]["DhcpConfigurations"];
    assert_eq!(s(&configs[0]["Key"]), "domain-name", "{sets}");
    assert_eq!(s(&configs[0]["Values"][0]["Value"]), "ec2.internal");
    assert_eq!(s(&configs[1]["Key"]), "domain-name-servers");
    assert_eq!(s(&configs[1]["Values"][0]["Value"]), "AmazonProvidedDNS");

    // Validation, as CreateDhcpOptions answers it.
    for bad in [
        "Key=domain-nam,Values=corp.example",
        "Key=netbios-node-type,Values=3",
        "Key=domain-name-servers,Values=10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5",
        "Key=ntp-servers,Values=AmazonProvidedDNS",
    ] {
        d.aws_err(
            &["create-dhcp-options", "--dhcp-configurations", bad],
            "InvalidParameterValue",
        );
    }

    // A set with a search domain and the Amazon resolver, tagged at creation.
    let corp = d.aws(&[
        "create-dhcp-options",
        "--dhcp-configurations",
        "Key=domain-name,Values=corp.example",
        "Key=domain-name-servers,Values=AmazonProvidedDNS",
        "Key=ntp-servers,Values=169.254.169.123",
        "--tag-specifications",
        "ResourceType=dhcp-options,Tags=[{Key=Name,Value=corp}]",
    ]);
    let corp = s(&corp["DhcpOptions"]["DhcpOptionsId"]);
    assert!(corp.starts_with("dopt-"), "{corp}");
    let found = d.aws_text(&[
        "describe-dhcp-options",
        "--filters",
        "Name=tag:Name,Values=corp",
        "Name=key,Values=ntp-servers",
        "--query",
        "DhcpOptions[].DhcpOptionsId",
    ]);
    assert_eq!(found, corp);

    let net = Network::build(&d);
    associate(&d, &net.vpc, &corp);
    d.aws_err(
        &["delete-dhcp-options", "--dhcp-options-id", &corp],
        "DependencyViolation",
    );

    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (id, host, private) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let dashed = private.replace('.', "-");
    let conf = stdout(&d.ssh(&key, "ec2-user", &host, "cat /etc/resolv.conf"));
    assert_eq!(conf, "nameserver 10.0.0.2\nsearch corp.example\n");
    // With AmazonProvidedDNS the domain is only a search suffix: the name stays EC2's.
    let fqdn = stdout(&d.ssh(&key, "ec2-user", &host, "hostname -f"));
    assert_eq!(fqdn.trim(), format!("ip-{dashed}.ec2.internal"));

    // Custom servers: the running instance renews its lease and takes the domain as its
    // host name; its private DNS name in the API stays EC2's.
    let own = d.aws_text(&[
        "create-dhcp-options",
        "--dhcp-configurations",
        "Key=domain-name,Values=corp.example",
        "Key=domain-name-servers,Values=10.0.1.53,AmazonProvidedDNS",
        "--query",
        "DhcpOptions.DhcpOptionsId",
    ]);
    d.aws_text(&[
        "associate-dhcp-options",
        "--dhcp-options-id",
        &own,
        "--vpc-id",
        &net.vpc,
    ]);
    let conf = until(&d, &key, &host, "cat /etc/resolv.conf", |c| {
        c.contains("10.0.1.53")
    });
    assert_eq!(
        conf,
        "nameserver 10.0.1.53\nnameserver 10.0.0.2\nsearch corp.example\n"
    );
    let fqdn = stdout(&d.ssh(&key, "ec2-user", &host, "hostname -f"));
    assert_eq!(
        fqdn.trim(),
        format!("ip-{dashed}.corp.example"),
        "/etc/hosts:\n{}",
        stdout(&d.ssh(&key, "ec2-user", &host, "cat /etc/hosts"))
    );
    assert_eq!(
        d.aws_text(&[
            "describe-instances",
            "--instance-ids",
            &id,
            "--query",
            "Reservations[0].Instances[0].PrivateDnsName"
        ]),
        format!("ip-{dashed}.ec2.internal")
    );

    // `default`: no options at all, so no DNS server; the old sets can now be deleted.
    associate(&d, &net.vpc, "default");
    let conf = until(&d, &key, &host, "cat /etc/resolv.conf", |c| {
        !c.contains("nameserver")
    });
    assert!(!conf.contains("nameserver"), "{conf}");
    let dig = d.ssh(&key, "ec2-user", &host, "dig example.com");
    assert!(!dig.status.success());
    assert!(
        stdout(&dig).contains("communications error to 127.0.0.1#53: connection refused"),
        "{}",
        stdout(&dig)
    );
    for set in [&corp, &own] {
        d.aws_text(&["delete-dhcp-options", "--dhcp-options-id", set]);
    }
    d.aws_err(
        &["describe-dhcp-options", "--dhcp-options-ids", &corp],
        "InvalidDhcpOptionID.NotFound",
    );
    d.aws_err(
        &[
            "associate-dhcp-options",
            "--dhcp-options-id",
            &corp,
            "--vpc-id",
            &net.vpc,
        ],
        "InvalidDhcpOptionID.NotFound",
    );
}
