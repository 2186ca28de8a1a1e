//! Black-box: the real `aws route53 …` CLI against `vpclab up`, and the real `dig`
//! against its `--dns-listen` port. What a learner does: create a zone, add records,
//! query them at once; and what goes wrong (duplicate records, deleting a non-empty
//! zone, private zones invisible from the internet).

use std::path::{Path, PathBuf};

use crate::support::{Lab, ProcessDaemon, TestDaemon, have};

/// Both real clients, or (outside CI) a skipped test.
fn tools_present() -> bool {
    have("aws") && have("dig")
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
    // `vpclab up` itself: the restart below is a SIGKILL.
    let mut d = ProcessDaemon::start();

    let created = d.aws_cli_json(&[
        "route53",
        "create-hosted-zone",
        "--name",
        "example.lab",
        "--caller-reference",
        "lab-1",
    ]);
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
        d.dir(),
        "create.json",
        r#"{"Changes":[
          {"Action":"CREATE","ResourceRecordSet":{"Name":"www.example.lab","Type":"A","TTL":300,
            "ResourceRecords":[{"Value":"198.18.0.10"}]}},
          {"Action":"CREATE","ResourceRecordSet":{"Name":"app.example.lab","Type":"CNAME","TTL":60,
            "ResourceRecords":[{"Value":"www.example.lab"}]}},
          {"Action":"CREATE","ResourceRecordSet":{"Name":"example.lab","Type":"MX","TTL":300,
            "ResourceRecords":[{"Value":"10 mail.example.lab"}]}}]}"#,
    );
    let changed = d.aws_cli_json(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &zone_id,
        "--change-batch",
        &create,
    ]);
    let change_id = changed["ChangeInfo"]["Id"].as_str().expect("change id");
    // GetChange: in sync at once, so `aws route53 wait` returns immediately.
    let status = d.aws_cli_json(&["route53", "get-change", "--id", change_id]);
    assert_eq!(status["ChangeInfo"]["Status"], "INSYNC");

    // Visible on the next query.
    assert_eq!(d.dig(&["+short", "www.example.lab"]).trim(), "198.18.0.10");
    let chased = d.dig(&["+short", "app.example.lab"]);
    assert_eq!(chased.trim(), "www.example.lab.\n198.18.0.10");
    assert_eq!(
        d.dig(&["+short", "example.lab", "MX"]).trim(),
        "10 mail.example.lab."
    );
    let soa = d.dig(&["+short", "example.lab", "SOA"]);
    assert!(soa.contains("awsdns-hostmaster.amazon.com."), "{soa}");

    // UPSERT replaces, and the next query sees it.
    let upsert = batch(
        d.dir(),
        "upsert.json",
        r#"{"Changes":[{"Action":"UPSERT","ResourceRecordSet":{"Name":"www.example.lab","Type":"A",
            "TTL":60,"ResourceRecords":[{"Value":"198.18.0.11"}]}}]}"#,
    );
    d.aws_cli_json(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &zone_id,
        "--change-batch",
        &upsert,
    ]);
    assert_eq!(d.dig(&["+short", "www.example.lab"]).trim(), "198.18.0.11");

    // Creating it again is an InvalidChangeBatch naming the record set.
    let err = d.aws_cli_err(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &zone_id,
        "--change-batch",
        &create,
    ]);
    assert!(err.contains("(InvalidChangeBatch)"), "{err}");
    assert!(
        err.contains("Tried to create resource record set [name='app.example.lab.', type='CNAME'] but it already exists"),
        "{err}"
    );

    // A zone with records cannot be deleted.
    let err = d.aws_cli_err(&["route53", "delete-hosted-zone", "--id", &zone_id]);
    assert!(err.contains("(HostedZoneNotEmpty)"), "{err}");
    let err = d.aws_cli_err(&["route53", "get-hosted-zone", "--id", "ZNOSUCHZONE"]);
    assert!(err.contains("(NoSuchHostedZone)"), "{err}");

    // Listing shows the records, `*`-escaped names and all.
    let listed = d.aws_cli_json(&[
        "route53",
        "list-resource-record-sets",
        "--hosted-zone-id",
        &zone_id,
    ]);
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
    d.kill9();
    d.launch();
    assert_eq!(d.dig(&["+short", "www.example.lab"]).trim(), "198.18.0.11");
}

#[test]
fn private_zones_are_invisible_from_the_internet_endpoint() {
    if !tools_present() {
        return;
    }
    let d = TestDaemon::start();
    let vpcs = d.aws_cli_json(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=isDefault,Values=true",
    ]);
    let vpc_id = vpcs["Vpcs"][0]["VpcId"]
        .as_str()
        .expect("default vpc")
        .to_owned();
    let vpc_arg = format!("VPCRegion=us-east-1,VPCId={vpc_id}");
    let created = d.aws_cli_json(&[
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
    ]);
    assert_eq!(created["HostedZone"]["Config"]["PrivateZone"], true);
    assert_eq!(created["VPC"]["VPCId"], vpc_id.as_str());
    let zone_id = created["HostedZone"]["Id"].as_str().expect("id").to_owned();
    let add = batch(
        d.dir(),
        "db.json",
        r#"{"Changes":[{"Action":"CREATE","ResourceRecordSet":{"Name":"db.corp.internal","Type":"A",
            "TTL":300,"ResourceRecords":[{"Value":"172.31.0.10"}]}}]}"#,
    );
    d.aws_cli_json(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &zone_id,
        "--change-batch",
        &add,
    ]);
    let out = d.dig(&["db.corp.internal"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let got = d.aws_cli_json(&["route53", "get-hosted-zone", "--id", &zone_id]);
    assert_eq!(got["VPCs"][0]["VPCId"], vpc_id.as_str());
    let err = d.aws_cli_err(&[
        "route53",
        "disassociate-vpc-from-hosted-zone",
        "--hosted-zone-id",
        &zone_id,
        "--vpc",
        &vpc_arg,
    ]);
    assert!(err.contains("(LastVPCAssociation)"), "{err}");
    let by_name = d.aws_cli_json(&["route53", "list-hosted-zones-by-name"]);
    assert_eq!(by_name["HostedZones"][0]["Name"], "corp.internal.");
}
