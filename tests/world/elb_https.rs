//! HTTPS on an application load balancer with a certificate from ACM: the certificate
//! is requested with DNS validation, stays `PENDING_VALIDATION` (and unusable by a
//! listener) until its CNAME record exists in a public hosted zone, then `ISSUED`; an
//! HTTPS listener presents it, and `curl --cacert` (the chain `get-certificate`
//! returns: vpclab's CA) reaches the target from the learner's computer through the
//! browser proxy and from an instance in the world; port 80 redirects to HTTPS; the
//! certificate cannot be deleted while the listener uses it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::elb::{AlbNet, elb, register, wait_active, wait_health};
use crate::support::elb_args::strs;
use crate::support::{Lab, TestDaemon, have, stderr, stdout};

const DOMAIN: &str = "www.example.com";

fn acm(d: &TestDaemon, args: &[&str]) -> Value {
    let mut full = vec!["acm"];
    full.extend_from_slice(args);
    d.aws_cli_json(&full)
}

/// `aws …` (any service) expecting the AWS error `code`; returns stderr.
fn fails_with(d: &TestDaemon, args: &[&str], code: &str) -> String {
    let err = d.aws_cli_err(args);
    assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    err
}

/// `curl` through the browser proxy (SOCKS5, names resolved in the world), trusting
/// `ca` when given (else the system's bundle).
fn curl(
    d: &TestDaemon,
    ca: Option<&std::path::Path>,
    url: &str,
    extra: &[&str],
) -> std::process::Output {
    let proxy = d.background().proxy_addr.expect("the browser proxy runs");
    let via = format!("socks5h://{proxy}");
    let mut args: Vec<String> = ["-sS", "--max-time", "10", "--proxy", &via]
        .map(str::to_string)
        .to_vec();
    if let Some(ca) = ca {
        args.extend(["--cacert".to_string(), ca.display().to_string()]);
    }
    args.extend(extra.iter().map(|x| x.to_string()));
    args.push(url.to_string());
    std::process::Command::new("curl")
        .args(&args)
        .output()
        .expect("curl runs")
}

#[test]
fn an_alb_terminates_https_with_a_dns_validated_acm_certificate() {
    if !have("aws") || !have("curl") {
        return;
    }
    let d = TestDaemon::start();
    let net = AlbNet::build(&d, &[80, 443], &[22]);
    // The request: pending, with the CNAME record ACM asks for.
    let arn = acm(
        &d,
        &[
            "request-certificate",
            "--domain-name",
            DOMAIN,
            "--validation-method",
            "DNS",
        ],
    )["CertificateArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(arn.starts_with("arn:aws:acm:us-east-1:"), "{arn}");
    let cert = &acm(&d, &["describe-certificate", "--certificate-arn", &arn])["Certificate"];
    assert_eq!(cert["Status"], "PENDING_VALIDATION", "{cert}");
    assert_eq!(cert["Type"], "AMAZON_ISSUED", "{cert}");
    let option = &cert["DomainValidationOptions"][0];
    assert_eq!(option["ValidationStatus"], "PENDING_VALIDATION", "{cert}");
    let record = &option["ResourceRecord"];
    assert_eq!(record["Type"], "CNAME", "{cert}");
    let name = record["Name"].as_str().unwrap().to_string();
    let value = record["Value"].as_str().unwrap().to_string();
    assert!(
        name.starts_with('_') && name.ends_with(".www.example.com."),
        "{name}"
    );
    assert!(value.ends_with(".acm-validations.aws."), "{value}");
    fails_with(
        &d,
        &["acm", "get-certificate", "--certificate-arn", &arn],
        "RequestInProgressException",
    );

    // The target: an instance whose user data serves a page.
    let key = d.key_pair("lab", "ed25519");
    let ids = net.web_instances(
        &d,
        &[&net.a],
        "#!/bin/bash\ndnf install -y httpd\nsystemctl start httpd\necho '<h1>secure hello</h1>' > /var/www/html/index.html\n",
        Some("lab"),
    );
    let public_ip = d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        &ids[0],
        "--query",
        "Reservations[0].Instances[0].PublicIpAddress",
    ]);
    let tg = net.target_group(&d, "web", "instance");
    register(&d, &tg, &ids);
    let (lb_arn, dns) = net.alb(&d, "web");
    let forward = format!("Type=forward,TargetGroupArn={tg}");
    let https = |cert: Option<&str>| -> Vec<String> {
        let mut v: Vec<String> = [
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "HTTPS",
            "--port",
            "443",
            "--default-actions",
            &forward,
        ]
        .map(str::to_string)
        .to_vec();
        if let Some(c) = cert {
            v.extend(["--certificates".to_string(), format!("CertificateArn={c}")]);
        }
        v
    };
    // No certificate, or one not issued yet: refused as AWS refuses them.
    let err = fails_with(&d, &strs(&https(None)), "ValidationError");
    assert!(
        err.contains("A certificate must be specified for HTTPS listeners"),
        "{err}"
    );
    fails_with(&d, &strs(&https(Some(&arn))), "CertificateNotFound");

    // The validation record in a public hosted zone issues the certificate.
    let zone = d.aws_cli_json(&[
        "route53",
        "create-hosted-zone",
        "--name",
        "example.com",
        "--caller-reference",
        "acm-test",
    ])["HostedZone"]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let batch = serde_json::json!({"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {"Name": name, "Type": "CNAME", "TTL": 300,
            "ResourceRecords": [{"Value": value}]}},
        {"Action": "UPSERT", "ResourceRecordSet": {"Name": DOMAIN, "Type": "CNAME", "TTL": 60,
            "ResourceRecords": [{"Value": dns}]}},
    ]});
    d.aws_cli_json(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &zone,
        "--change-batch",
        &batch.to_string(),
    ]);
    let start = Instant::now();
    loop {
        let c = &acm(&d, &["describe-certificate", "--certificate-arn", &arn])["Certificate"];
        if c["Status"] == "ISSUED" {
            assert_eq!(
                c["DomainValidationOptions"][0]["ValidationStatus"], "SUCCESS",
                "{c}"
            );
            assert!(
                c["NotAfter"].as_f64().unwrap() > c["NotBefore"].as_f64().unwrap(),
                "{c}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never issued: {c}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let got = acm(&d, &["get-certificate", "--certificate-arn", &arn]);
    let ca = d.path("chain.pem");
    std::fs::write(&ca, got["CertificateChain"].as_str().unwrap()).unwrap();
    assert!(
        got["Certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    // HTTPS on 443 with the certificate (the API's default policy), and a redirect on 80.
    let listener = d.aws_cli_json(&strs(&https(Some(&arn))));
    let listener = &listener["Listeners"][0];
    assert_eq!(
        listener["SslPolicy"], "ELBSecurityPolicy-2016-08",
        "{listener}"
    );
    assert_eq!(
        listener["Certificates"][0]["CertificateArn"],
        arn.as_str(),
        "{listener}"
    );
    let http = elb(
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
            "Type=redirect,RedirectConfig={Protocol=HTTPS,Port=443,StatusCode=HTTP_301}",
        ],
    );
    assert_eq!(
        http["Listeners"][0]["DefaultActions"][0]["RedirectConfig"]["StatusCode"],
        "HTTP_301"
    );
    let in_use = &acm(&d, &["describe-certificate", "--certificate-arn", &arn])["Certificate"];
    assert_eq!(in_use["InUseBy"][0], lb_arn.as_str(), "{in_use}");
    fails_with(
        &d,
        &["acm", "delete-certificate", "--certificate-arn", &arn],
        "ResourceInUseException",
    );
    wait_active(&d, &lb_arn);
    wait_health(&d, &tg, "healthy", Duration::from_secs(90));

    // From the learner's computer: the name verifies against the CA, the page is the
    // target's; plain HTTP is told to go to HTTPS.
    let url = format!("https://{DOMAIN}/");
    let out = curl(&d, Some(&ca), &url, &["-i"]);
    let page = stdout(&out);
    assert!(out.status.success(), "{}{page}", stderr(&out));
    assert!(page.contains("<h1>secure hello</h1>"), "{page}");
    let out = curl(&d, Some(&ca), &format!("http://{DOMAIN}/a/b?x=1"), &["-i"]);
    let page = stdout(&out);
    assert!(page.starts_with("HTTP/1.1 301"), "{}{page}", stderr(&out));
    assert!(
        page.to_ascii_lowercase()
            .contains("location: https://www.example.com/a/b?x=1"),
        "{page}"
    );
    // Without the CA, curl refuses the certificate (it is not a public CA's).
    let out = curl(&d, None, &url, &[]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));

    // From an instance in the world (its image trusts vpclab's CA).
    let out = d.ssh(&key, "ec2-user", &public_ip, &format!("curl -sS {url}"));
    assert!(
        stdout(&out).contains("<h1>secure hello</h1>"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // Once the listener is gone, the certificate can be deleted.
    let l_arn = listener["ListenerArn"].as_str().unwrap();
    elb(&d, &["delete-listener", "--listener-arn", l_arn]);
    acm(&d, &["delete-certificate", "--certificate-arn", &arn]);
    fails_with(
        &d,
        &["acm", "describe-certificate", "--certificate-arn", &arn],
        "ResourceNotFoundException",
    );
}
