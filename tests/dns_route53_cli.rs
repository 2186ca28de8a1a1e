//! Black-box: the real `aws route53 …` CLI against `vpclab up`, and the real `dig`
//! against its `--dns-listen` port. What a learner does: create a zone, add records,
//! query them at once; and what goes wrong (duplicate records, deleting a non-empty
//! zone, private zones invisible from the internet).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    api: String,
    dns_port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools_present() -> bool {
    for (tool, arg) in [("aws", "--version"), ("dig", "-v")] {
        if Command::new(tool).arg(arg).output().is_err() {
            eprintln!("skipped: `{tool}` is not installed (scripts/install-test-deps)");
            return false;
        }
    }
    true
}

fn start(state: &Path) -> Daemon {
    let endpoint = state.join("endpoint.json");
    let _ = std::fs::remove_file(&endpoint);
    let child = Command::new(env!("CARGO_BIN_EXE_vpclab"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
        ])
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vpclab");
    // Owned by the guard at once, so a failed start still kills and reaps the child.
    let mut daemon = Daemon {
        child,
        api: String::new(),
        dns_port: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&endpoint)
            && let Ok(info) = serde_json::from_str::<serde_json::Value>(&text)
        {
            daemon.api = info["api"].as_str().expect("api").to_owned();
            let dns = info["dns"].as_str().expect("dns endpoint");
            daemon.dns_port = dns.rsplit(':').next().expect("port").parse().expect("port");
            return daemon;
        }
        assert!(Instant::now() < deadline, "vpclab did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn aws(d: &Daemon, args: &[&str]) -> Output {
    Command::new("aws")
        .args(args)
        .args(["--output", "json"])
        .env("AWS_ENDPOINT_URL", &d.api)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_PAGER", "")
        .output()
        .expect("run aws")
}

fn aws_json(d: &Daemon, args: &[&str]) -> serde_json::Value {
    let out = aws(d, args);
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

fn aws_err(d: &Daemon, args: &[&str]) -> String {
    let out = aws(d, args);
    assert!(!out.status.success(), "aws {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dig(d: &Daemon, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &d.dns_port.to_string(),
            "+time=2",
            "+tries=1",
        ])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn batch(dir: &Path, name: &str, json: &str) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, json).expect("write batch");
    format!("file://{}", path.display())
}

#[test]
fn records_created_with_the_cli_resolve_at_once_and_survive_a_restart() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let d = start(&state);

    let created = aws_json(
        &d,
        &[
            "route53",
            "create-hosted-zone",
            "--name",
            "example.lab",
            "--caller-reference",
            "lab-1",
        ],
    );
    let zone_id = created["HostedZone"]["Id"].as_str().expect("id").to_owned();
    assert_eq!(created["HostedZone"]["Name"], "example.lab.");
    assert_eq!(
        created["DelegationSet"]["NameServers"]
            .as_array()
            .expect("name servers")
            .len(),
        4
    );

    let create = batch(
        tmp.path(),
        "create.json",
        r#"{"Changes":[
          {"Action":"CREATE","ResourceRecordSet":{"Name":"www.example.lab","Type":"A","TTL":300,
            "ResourceRecords":[{"Value":"198.18.0.10"}]}},
          {"Action":"CREATE","ResourceRecordSet":{"Name":"app.example.lab","Type":"CNAME","TTL":60,
            "ResourceRecords":[{"Value":"www.example.lab"}]}},
          {"Action":"CREATE","ResourceRecordSet":{"Name":"example.lab","Type":"MX","TTL":300,
            "ResourceRecords":[{"Value":"10 mail.example.lab"}]}}]}"#,
    );
    let changed = aws_json(
        &d,
        &[
            "route53",
            "change-resource-record-sets",
            "--hosted-zone-id",
            &zone_id,
            "--change-batch",
            &create,
        ],
    );
    let change_id = changed["ChangeInfo"]["Id"].as_str().expect("change id");
    // GetChange: in sync at once, so `aws route53 wait` returns immediately.
    let status = aws_json(&d, &["route53", "get-change", "--id", change_id]);
    assert_eq!(status["ChangeInfo"]["Status"], "INSYNC");

    // Visible on the next query.
    assert_eq!(
        dig(&d, &["+short", "www.example.lab"]).trim(),
        "198.18.0.10"
    );
    let chased = dig(&d, &["+short", "app.example.lab"]);
    assert_eq!(chased.trim(), "www.example.lab.\n198.18.0.10");
    assert_eq!(
        dig(&d, &["+short", "example.lab", "MX"]).trim(),
        "10 mail.example.lab."
    );
    let soa = dig(&d, &["+short", "example.lab", "SOA"]);
    assert!(soa.contains("awsdns-hostmaster.amazon.com."), "{soa}");

    // UPSERT replaces, and the next query sees it.
    let upsert = batch(
        tmp.path(),
        "upsert.json",
        r#"{"Changes":[{"Action":"UPSERT","ResourceRecordSet":{"Name":"www.example.lab","Type":"A",
            "TTL":60,"ResourceRecords":[{"Value":"198.18.0.11"}]}}]}"#,
    );
    aws_json(
        &d,
        &[
            "route53",
            "change-resource-record-sets",
            "--hosted-zone-id",
            &zone_id,
            "--change-batch",
            &upsert,
        ],
    );
    assert_eq!(
        dig(&d, &["+short", "www.example.lab"]).trim(),
        "198.18.0.11"
    );

    // Creating it again is an InvalidChangeBatch naming the record set.
    let err = aws_err(
        &d,
        &[
            "route53",
            "change-resource-record-sets",
            "--hosted-zone-id",
            &zone_id,
            "--change-batch",
            &create,
        ],
    );
    assert!(err.contains("(InvalidChangeBatch)"), "{err}");
    assert!(
        err.contains("Tried to create resource record set [name='app.example.lab.', type='CNAME'] but it already exists"),
        "{err}"
    );

    // A zone with records cannot be deleted.
    let err = aws_err(&d, &["route53", "delete-hosted-zone", "--id", &zone_id]);
    assert!(err.contains("(HostedZoneNotEmpty)"), "{err}");
    let err = aws_err(&d, &["route53", "get-hosted-zone", "--id", "ZNOSUCHZONE"]);
    assert!(err.contains("(NoSuchHostedZone)"), "{err}");

    // Listing shows the records, `*`-escaped names and all.
    let listed = aws_json(
        &d,
        &[
            "route53",
            "list-resource-record-sets",
            "--hosted-zone-id",
            &zone_id,
        ],
    );
    let names: Vec<String> = listed["ResourceRecordSets"]
        .as_array()
        .expect("sets")
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["Name"].as_str().unwrap_or(""),
                s["Type"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "example.lab. MX",
            "example.lab. NS",
            "example.lab. SOA",
            "app.example.lab. CNAME",
            "www.example.lab. A"
        ]
    );

    // Everything acknowledged survives a restart (state in SQLite), and DNS serves it.
    drop(d);
    let d = start(&state);
    assert_eq!(
        dig(&d, &["+short", "www.example.lab"]).trim(),
        "198.18.0.11"
    );
}

#[test]
fn private_zones_are_invisible_from_the_internet_endpoint() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let d = start(tmp.path());
    let vpcs = aws_json(
        &d,
        &[
            "ec2",
            "describe-vpcs",
            "--filters",
            "Name=isDefault,Values=true",
        ],
    );
    let vpc_id = vpcs["Vpcs"][0]["VpcId"]
        .as_str()
        .expect("default vpc")
        .to_owned();
    let vpc_arg = format!("VPCRegion=us-east-1,VPCId={vpc_id}");
    let created = aws_json(
        &d,
        &[
            "route53",
            "create-hosted-zone",
            "--name",
            "corp.internal",
            "--caller-reference",
            "private-1",
            "--vpc",
            &vpc_arg,
            "--hosted-zone-config",
            "PrivateZone=true",
        ],
    );
    assert_eq!(created["HostedZone"]["Config"]["PrivateZone"], true);
    assert_eq!(created["VPC"]["VPCId"], vpc_id.as_str());
    let zone_id = created["HostedZone"]["Id"].as_str().expect("id").to_owned();
    let add = batch(
        tmp.path(),
        "db.json",
        r#"{"Changes":[{"Action":"CREATE","ResourceRecordSet":{"Name":"db.corp.internal","Type":"A",
            "TTL":300,"ResourceRecords":[{"Value":"172.31.0.10"}]}}]}"#,
    );
    aws_json(
        &d,
        &[
            "route53",
            "change-resource-record-sets",
            "--hosted-zone-id",
            &zone_id,
            "--change-batch",
            &add,
        ],
    );
    let out = dig(&d, &["db.corp.internal"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let got = aws_json(&d, &["route53", "get-hosted-zone", "--id", &zone_id]);
    assert_eq!(got["VPCs"][0]["VPCId"], vpc_id.as_str());
    let err = aws_err(
        &d,
        &[
            "route53",
            "disassociate-vpc-from-hosted-zone",
            "--hosted-zone-id",
            &zone_id,
            "--vpc",
            &vpc_arg,
        ],
    );
    assert!(err.contains("(LastVPCAssociation)"), "{err}");
    let by_name = aws_json(&d, &["route53", "list-hosted-zones-by-name"]);
    assert_eq!(by_name["HostedZones"][0]["Name"], "corp.internal.");
}
