//! Gateway VPC endpoints through the real fabric, driven by the aws CLI and OpenSSH: an
//! instance in a private subnet (no NAT, no internet gateway route) reaches S3 only
//! through a gateway endpoint on its route table; the endpoint's policy is evaluated for
//! requests that arrive through it; deleting the endpoint takes its route away.
//!
//! AWS rules (Amazon VPC User Guide, "Gateway endpoints"): "Each subnet route table must
//! have a route that sends traffic destined for the service to the gateway endpoint using
//! the prefix list for the service"; the route is added when a route table is associated
//! with the endpoint and removed with the association or the endpoint; "You cannot
//! explicitly add, modify, or delete an endpoint route"; the endpoint policy (default:
//! full access) controls access to the service through the endpoint.

use crate::support::{Lab, Network, TestDaemon, VPCLAB, have, s, stderr, stdout};

const BUCKET: &str = "vpce-data";

/// A bucket whose objects everyone may read (so the instance needs no credentials).
fn public_bucket(d: &TestDaemon) {
    d.aws_cli_json(&["s3api", "create-bucket", "--bucket", BUCKET]);
    d.aws_cli_json(&[
        "s3api",
        "put-public-access-block",
        "--bucket",
        BUCKET,
        "--public-access-block-configuration",
        "BlockPublicAcls=false,IgnorePublicAcls=false,BlockPublicPolicy=false,RestrictPublicBuckets=false",
    ]);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#
    );
    d.aws_cli_json(&[
        "s3api",
        "put-bucket-policy",
        "--bucket",
        BUCKET,
        "--policy",
        &policy,
    ]);
    let body = d.path("hello.txt");
    std::fs::write(&body, "hello through the endpoint\n").expect("write");
    d.aws_cli_json(&[
        "s3api",
        "put-object",
        "--bucket",
        BUCKET,
        "--key",
        "hello.txt",
        "--body",
        body.to_str().expect("utf-8 path"),
    ]);
}

/// An ssh configuration that reaches private instances (`10.*`) through the bastion.
fn jump_config(d: &TestDaemon, bastion_ip: &str, key: &std::path::Path) -> std::path::PathBuf {
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
    config
}

/// Runs `command` on the private instance at `ip` through the bastion; its stdout.
fn via_bastion(d: &TestDaemon, config: &std::path::Path, ip: &str, command: &str) -> String {
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-F")
        .arg(config)
        .args(["-J", "bastion", &format!("ec2-user@{ip}"), command])
        .stdin(std::process::Stdio::null());
    d.env(&mut cmd);
    let out = cmd.output().expect("run ssh");
    assert!(
        out.status.code() != Some(255),
        "ssh -J itself failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn a_private_instance_reaches_s3_only_through_a_gateway_endpoint_and_its_policy() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    public_bucket(&d);
    let net = Network::build(&d);
    let bastion_sg = net.security_group(&d, "bastion", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (_, bastion_ip, _) = net.launch(&d, &net.public_subnet, "lab", &bastion_sg, &[]);
    let app_sg = net.security_group(&d, "app", &[(22, "10.0.1.0/24")]);
    let (app, app_public, app_ip) = net.launch(&d, &net.private_subnet, "lab", &app_sg, &[]);
    assert_eq!(app_public, "None");
    let config = jump_config(&d, &bastion_ip, &key);
    // curl from the private instance to S3's regional name; prints the body, or the
    // HTTP status line on failure, or nothing when no connection opens.
    let fetch = || {
        via_bastion(
            &d,
            &config,
            &app_ip,
            &format!(
                "curl -s -m 3 -w ' HTTP %{{http_code}}' http://s3.us-east-1.amazonaws.com/{BUCKET}/hello.txt"
            ),
        )
    };

    // No endpoint, no NAT: the private subnet has no route to S3.
    let before = fetch();
    assert!(!before.contains("hello"), "{before}");
    let out = d.vpclab(&["trace", &app, "198.51.100.2:80"], b"");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}{}", stderr(&out));
    assert!(text.contains(&net.private_rt), "names the table: {text}");
    assert!(
        text.contains("com.amazonaws.us-east-1.s3"),
        "names the missing endpoint route: {text}"
    );

    let pl = d.aws_text(&[
        "describe-prefix-lists",
        "--filters",
        "Name=prefix-list-name,Values=com.amazonaws.us-east-1.s3",
        "--query",
        "PrefixLists[0].PrefixListId",
    ]);
    let created = d.aws(&[
        "create-vpc-endpoint",
        "--vpc-id",
        &net.vpc,
        "--vpc-endpoint-type",
        "Gateway",
        "--service-name",
        "com.amazonaws.us-east-1.s3",
        "--route-table-ids",
        &net.private_rt,
    ]);
    let vpce = s(&created["VpcEndpoint"]["VpcEndpointId"]);
    assert!(vpce.starts_with("vpce-"), "{created}");
    assert_eq!(s(&created["VpcEndpoint"]["State"]), "available");
    assert!(
        s(&created["VpcEndpoint"]["PolicyDocument"]).contains("\"Allow\""),
        "default full-access policy: {created}"
    );
    // The endpoint's route: destination the service's prefix list, target the endpoint.
    let routes = d.aws(&[
        "describe-route-tables",
        "--route-table-ids",
        &net.private_rt,
        "--query",
        "RouteTables[0].Routes[?DestinationPrefixListId]",
    ]);
    assert_eq!(s(&routes[0]["DestinationPrefixListId"]), pl, "{routes}");
    assert_eq!(s(&routes[0]["GatewayId"]), vpce, "{routes}");
    assert_eq!(s(&routes[0]["State"]), "active", "{routes}");
    // The route belongs to the endpoint: the route APIs may not remove it.
    d.aws_err(
        &[
            "delete-route",
            "--route-table-id",
            &net.private_rt,
            "--destination-prefix-list-id",
            &pl,
        ],
        "InvalidParameterValue",
    );

    let through = fetch();
    assert!(
        through.contains("hello through the endpoint") && through.contains("HTTP 200"),
        "{through}"
    );
    // The seed's URL structure, `https://s3-REGION.amazonaws.com/BUCKET/KEY` (the legacy
    // dash form), and its virtual-hosted twin reach the same object the same way.
    for url in [
        format!("https://s3-us-east-1.amazonaws.com/{BUCKET}/hello.txt"),
        format!("https://{BUCKET}.s3-us-east-1.amazonaws.com/hello.txt"),
    ] {
        let seed = via_bastion(
            &d,
            &config,
            &app_ip,
            &format!("curl -s -m 3 -w ' HTTP %{{http_code}}' {url}"),
        );
        assert!(
            seed.contains("hello through the endpoint") && seed.contains("HTTP 200"),
            "{url}: {seed}"
        );
    }

    // An endpoint policy that denies s3:GetObject: S3 answers AccessDenied, naming it.
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#;
    d.aws_text(&[
        "modify-vpc-endpoint",
        "--vpc-endpoint-id",
        &vpce,
        "--policy-document",
        deny,
    ]);
    let denied = fetch();
    assert!(denied.contains("HTTP 403"), "{denied}");
    assert!(denied.contains("AccessDenied"), "{denied}");
    assert!(denied.contains("VPC endpoint policy"), "{denied}");
    d.aws_text(&[
        "modify-vpc-endpoint",
        "--vpc-endpoint-id",
        &vpce,
        "--reset-policy",
    ]);
    assert!(fetch().contains("HTTP 200"));

    // Deleting the endpoint removes its route: the way to S3 is gone again.
    let deleted = d.aws(&["delete-vpc-endpoints", "--vpc-endpoint-ids", &vpce]);
    assert_eq!(
        deleted["Unsuccessful"].as_array().map(Vec::len),
        Some(0),
        "{deleted}"
    );
    let left = d.aws_text(&[
        "describe-route-tables",
        "--route-table-ids",
        &net.private_rt,
        "--query",
        "length(RouteTables[0].Routes[?DestinationPrefixListId])",
    ]);
    assert_eq!(left, "0");
    assert!(!fetch().contains("hello"));
}

#[test]
fn endpoint_api_rules_and_services() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let services = d.aws(&["describe-vpc-endpoint-services"]);
    let names: Vec<String> = services["ServiceNames"]
        .as_array()
        .expect("names")
        .iter()
        .map(s)
        .collect();
    assert!(
        names.contains(&"com.amazonaws.us-east-1.s3".to_string())
            && names.contains(&"com.amazonaws.us-east-1.dynamodb".to_string()),
        "{services}"
    );
    assert_eq!(
        s(&services["ServiceDetails"][0]["ServiceType"][0]["ServiceType"]),
        "Gateway"
    );
    d.aws_err(
        &[
            "create-vpc-endpoint",
            "--vpc-id",
            &net.vpc,
            "--service-name",
            "com.amazonaws.us-east-1.nosuch",
            "--route-table-ids",
            &net.private_rt,
        ],
        "InvalidServiceName",
    );
    let one = |rt: &str| {
        d.aws_text(&[
            "create-vpc-endpoint",
            "--vpc-id",
            &net.vpc,
            "--service-name",
            "com.amazonaws.us-east-1.dynamodb",
            "--route-table-ids",
            rt,
            "--query",
            "VpcEndpoint.VpcEndpointId",
        ])
    };
    let vpce = one(&net.private_rt);
    // One endpoint route per service in a table.
    d.aws_err(
        &[
            "create-vpc-endpoint",
            "--vpc-id",
            &net.vpc,
            "--service-name",
            "com.amazonaws.us-east-1.dynamodb",
            "--route-table-ids",
            &net.private_rt,
        ],
        "RouteAlreadyExists",
    );
    // Moving the endpoint to the public table moves its route.
    d.aws_text(&[
        "modify-vpc-endpoint",
        "--vpc-endpoint-id",
        &vpce,
        "--add-route-table-ids",
        &net.public_rt,
        "--remove-route-table-ids",
        &net.private_rt,
    ]);
    let rts = d.aws_text(&[
        "describe-vpc-endpoints",
        "--vpc-endpoint-ids",
        &vpce,
        "--query",
        "VpcEndpoints[0].RouteTableIds",
    ]);
    assert_eq!(rts, net.public_rt);
    let by_filter = d.aws_text(&[
        "describe-route-tables",
        "--filters",
        &format!("Name=route.gateway-id,Values={vpce}"),
        "--query",
        "RouteTables[].RouteTableId",
    ]);
    assert_eq!(by_filter, net.public_rt);
    let gone = d.aws(&[
        "delete-vpc-endpoints",
        "--vpc-endpoint-ids",
        &vpce,
        "vpce-0000000000000000f",
    ]);
    assert_eq!(
        s(&gone["Unsuccessful"][0]["Error"]["Code"]),
        "InvalidVpcEndpointId.NotFound",
        "{gone}"
    );
    assert_eq!(
        s(&gone["Unsuccessful"][0]["ResourceId"]),
        "vpce-0000000000000000f"
    );
}

/// AWS rules (Amazon VPC User Guide, "Access an AWS service using an interface VPC
/// endpoint"): the endpoint gets a requester-managed network interface in each chosen
/// subnet, with the endpoint's security groups; "To use private DNS, you must enable
/// DNS hostnames and DNS resolution for your VPC"; with private DNS, "requests to the
/// default DNS name for the service resolve to the private IP addresses of the
/// endpoint network interfaces"; the security group "must allow traffic on port 443"
/// from the resources that call the service.
#[test]
fn a_private_instance_calls_sts_through_an_interface_endpoint_its_group_decides() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let bastion_sg = net.security_group(&d, "bastion", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (_, bastion_ip, _) = net.launch(&d, &net.public_subnet, "lab", &bastion_sg, &[]);
    let app_sg = net.security_group(&d, "app", &[(22, "10.0.1.0/24")]);
    let (_, _, app_ip) = net.launch(&d, &net.private_subnet, "lab", &app_sg, &[]);
    let config = jump_config(&d, &bastion_ip, &key);
    let vpce_sg = net.security_group(&d, "vpce", &[(443, "10.0.0.0/16")]);
    let create = [
        "create-vpc-endpoint",
        "--vpc-id",
        &net.vpc,
        "--vpc-endpoint-type",
        "Interface",
        "--service-name",
        "com.amazonaws.us-east-1.sts",
        "--subnet-ids",
        &net.private_subnet,
        "--security-group-ids",
        &vpce_sg,
    ];
    // Private DNS (the default) needs DNS hostnames, which a new VPC has off.
    let err = d.aws_err(&create, "InvalidParameter");
    assert!(err.contains("enableDnsHostnames"), "{err}");
    d.aws_text(&[
        "modify-vpc-attribute",
        "--vpc-id",
        &net.vpc,
        "--enable-dns-hostnames",
    ]);
    let created = d.aws(&create);
    let ep = &created["VpcEndpoint"];
    let vpce = s(&ep["VpcEndpointId"]);
    assert_eq!(s(&ep["VpcEndpointType"]), "Interface", "{created}");
    assert_eq!(
        ep["PrivateDnsEnabled"],
        serde_json::json!(true),
        "{created}"
    );
    let regional = s(&ep["DnsEntries"][0]["DnsName"]);
    assert!(
        regional.starts_with(&format!("{vpce}-"))
            && regional.ends_with(".sts.us-east-1.vpce.amazonaws.com"),
        "{created}"
    );
    let eni = s(&ep["NetworkInterfaceIds"][0]);
    let iface = d.aws(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        &eni,
    ]);
    let iface = &iface["NetworkInterfaces"][0];
    assert_eq!(s(&iface["InterfaceType"]), "vpc_endpoint", "{iface}");
    assert_eq!(
        iface["RequesterManaged"],
        serde_json::json!(true),
        "{iface}"
    );
    assert_eq!(s(&iface["Groups"][0]["GroupId"]), vpce_sg, "{iface}");
    let eni_ip = s(&iface["PrivateIpAddress"]);
    assert!(eni_ip.starts_with("10.0.2."), "{iface}");
    // A requester-managed interface is not the learner's to delete.
    assert!(
        !d.aws_raw(&["delete-network-interface", "--network-interface-id", &eni])
            .status
            .success()
    );

    // Inside the VPC the service's public name is the endpoint's interface.
    let resolved = via_bastion(
        &d,
        &config,
        &app_ip,
        "dig +short sts.us-east-1.amazonaws.com",
    );
    assert_eq!(resolved.trim(), eni_ip);
    // The endpoint's own name resolves to it too, from anywhere.
    assert_eq!(d.dig_short(&regional), eni_ip);
    // The private instance (no NAT, no internet route) reaches STS's endpoint over HTTPS
    // (the certificate verifies for the service's name); an unsigned GET gets the
    // service's page, proof enough that the connection opened through the interface.
    let call = || {
        via_bastion(
            &d,
            &config,
            &app_ip,
            "curl -s -m 3 -w ' HTTP %{http_code}' 'https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15'",
        )
    };
    let answer = call();
    assert!(
        answer.contains("sts.us-east-1.amazonaws.com") && answer.contains("HTTP 200"),
        "STS answered: {answer}"
    );

    // The endpoint's security group decides: without the 443 rule, no connection.
    d.aws_text(&[
        "revoke-security-group-ingress",
        "--group-id",
        &vpce_sg,
        "--protocol",
        "tcp",
        "--port",
        "443",
        "--cidr",
        "10.0.0.0/16",
    ]);
    let blocked = call();
    assert!(
        !blocked.contains("sts.us-east-1") && !blocked.contains("HTTP 200"),
        "the group admits nothing: {blocked}"
    );

    // Private DNS off: the name is STS's public address again (unreachable here).
    d.aws_text(&[
        "modify-vpc-endpoint",
        "--vpc-endpoint-id",
        &vpce,
        "--no-private-dns-enabled",
    ]);
    let resolved = via_bastion(
        &d,
        &config,
        &app_ip,
        "dig +short sts.us-east-1.amazonaws.com",
    );
    assert_ne!(resolved.trim(), eni_ip);

    // Deleting the endpoint removes its interface.
    d.aws(&["delete-vpc-endpoints", "--vpc-endpoint-ids", &vpce]);
    let left = d.aws_text(&[
        "describe-network-interfaces",
        "--filters",
        "Name=interface-type,Values=vpc_endpoint",
        "--query",
        "length(NetworkInterfaces)",
    ]);
    assert_eq!(left, "0");
}
