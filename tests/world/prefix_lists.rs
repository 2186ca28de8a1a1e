//! AWS-managed prefix lists seen through the real aws CLI: each Region has
//! `com.amazonaws.REGION.s3` and `.dynamodb`, whose one CIDR is the address the world's
//! DNS gives the service's regional endpoint (the in-world S3 and DynamoDB).

use crate::support::{Lab, TestDaemon, have, s};

#[test]
fn managed_prefix_lists_hold_the_in_world_endpoint_addresses() {
    if !have("aws") || !have("dig") {
        return;
    }
    let d = TestDaemon::start();
    let lists = d.aws(&["describe-prefix-lists"]);
    let names: Vec<String> = lists["PrefixLists"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| s(&p["PrefixListName"]))
        .collect();
    assert_eq!(
        names,
        [
            "com.amazonaws.us-east-1.s3",
            "com.amazonaws.us-east-1.dynamodb"
        ],
        "{lists}"
    );
    let s3 = &lists["PrefixLists"][0];
    let s3_ip = d.dig_short("s3.us-east-1.amazonaws.com");
    assert_eq!(
        s(&s3["Cidrs"][0]),
        format!("{}/32", s3_ip.trim()),
        "{lists}"
    );

    let id = s(&s3["PrefixListId"]);
    let managed = d.aws(&[
        "describe-managed-prefix-lists",
        "--filters",
        "Name=prefix-list-name,Values=com.amazonaws.us-east-1.s3",
    ]);
    assert_eq!(s(&managed["PrefixLists"][0]["PrefixListId"]), id);
    assert_eq!(s(&managed["PrefixLists"][0]["OwnerId"]), "AWS");
    let entries = d.aws(&["get-managed-prefix-list-entries", "--prefix-list-id", &id]);
    assert_eq!(s(&entries["Entries"][0]["Cidr"]), s(&s3["Cidrs"][0]));

    // Another Region has its own lists; an unknown id is an AWS error.
    let west = d.aws(&["describe-prefix-lists", "--region", "eu-west-1"]);
    assert_ne!(s(&west["PrefixLists"][0]["PrefixListId"]), id);
    d.aws_err(
        &["describe-prefix-lists", "--prefix-list-ids", "pl-00000000"],
        "InvalidPrefixListID.NotFound",
    );
}
