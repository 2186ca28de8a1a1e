//! Prefix lists seen through the real aws CLI. AWS-managed: each Region has
//! `com.amazonaws.REGION.s3` and `.dynamodb`, whose one CIDR is the address the world's
//! DNS gives the service's regional endpoint (the in-world S3 and DynamoDB).
//! Customer-managed: versions, quotas, routes and security-group rules that name them,
//! enforced in the fabric.

use crate::support::{Lab, Network, TestDaemon, have, s, stdout, vpc_with_internet_gateway};

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

/// Customer-managed prefix lists through the aws CLI. AWS rules (VPC User Guide,
/// "Customer-managed prefix lists"; EC2 API Reference, ModifyManagedPrefixList):
/// "Adding or removing entries in a prefix list creates a new version"; "If you specify
/// a current version number that does not match the true current version number, the
/// request fails"; restoring a version makes a new version with its entries; "You can't
/// add a prefix list to a security group rule if the number of rules plus the max
/// entries for the prefix list exceeds the quota for rules per security group"; a
/// resize that a referencing resource cannot support fails; a list in use stays.
#[test]
fn customer_managed_prefix_lists_keep_versions_and_count_against_the_rules_quota() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let created = d.aws(&[
        "create-managed-prefix-list",
        "--prefix-list-name",
        "office",
        "--max-entries",
        "3",
        "--address-family",
        "IPv4",
        "--entries",
        "Cidr=10.1.0.0/16,Description=hq",
        "--tag-specifications",
        "ResourceType=prefix-list,Tags=[{Key=team,Value=net}]",
    ]);
    let pl = &created["PrefixList"];
    let id = s(&pl["PrefixListId"]);
    assert_eq!(s(&pl["State"]), "create-complete", "{created}");
    assert_eq!(pl["Version"], 1, "{created}");
    assert_eq!(pl["MaxEntries"], 3, "{created}");
    assert_eq!(s(&pl["OwnerId"]), "000000000000", "{created}");
    assert_eq!(s(&pl["Tags"][0]["Value"]), "net", "{created}");

    let modified = d.aws(&[
        "modify-managed-prefix-list",
        "--prefix-list-id",
        &id,
        "--current-version",
        "1",
        "--add-entries",
        "Cidr=10.2.0.0/16,Description=branch",
    ]);
    assert_eq!(modified["PrefixList"]["Version"], 2, "{modified}");
    assert_eq!(s(&modified["PrefixList"]["State"]), "modify-complete");
    d.aws_err(
        &[
            "modify-managed-prefix-list",
            "--prefix-list-id",
            &id,
            "--current-version",
            "1",
            "--remove-entries",
            "Cidr=10.1.0.0/16",
        ],
        "PrefixListVersionMismatch",
    );
    let v1 = d.aws(&[
        "get-managed-prefix-list-entries",
        "--prefix-list-id",
        &id,
        "--target-version",
        "1",
    ]);
    assert_eq!(v1["Entries"].as_array().map(Vec::len), Some(1), "{v1}");
    assert_eq!(s(&v1["Entries"][0]["Description"]), "hq", "{v1}");
    let restored = d.aws(&[
        "restore-managed-prefix-list-version",
        "--prefix-list-id",
        &id,
        "--previous-version",
        "1",
        "--current-version",
        "2",
    ]);
    assert_eq!(restored["PrefixList"]["Version"], 3, "{restored}");
    assert_eq!(s(&restored["PrefixList"]["State"]), "restore-complete");
    let now = d.aws_text(&[
        "get-managed-prefix-list-entries",
        "--prefix-list-id",
        &id,
        "--query",
        "Entries[].Cidr",
    ]);
    assert_eq!(now, "10.1.0.0/16");
    let mine = d.aws_text(&[
        "describe-managed-prefix-lists",
        "--filters",
        "Name=owner-id,Values=000000000000",
        "--query",
        "PrefixLists[].PrefixListId",
    ]);
    assert_eq!(mine, id);

    // A route and a security-group rule name the list.
    let (vpc, igw) = vpc_with_internet_gateway(&d);
    let rt = d.aws_text(&[
        "create-route-table",
        "--vpc-id",
        &vpc,
        "--query",
        "RouteTable.RouteTableId",
    ]);
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        &rt,
        "--destination-prefix-list-id",
        &id,
        "--gateway-id",
        &igw,
    ]);
    let route = d.aws_text(&[
        "describe-route-tables",
        "--route-table-ids",
        &rt,
        "--query",
        "RouteTables[0].Routes[?DestinationPrefixListId].[DestinationPrefixListId,GatewayId,State]",
    ]);
    assert_eq!(route, format!("{id}\t{igw}\tactive"));
    let sg = d.aws_text(&[
        "create-security-group",
        "--group-name",
        "office-https",
        "--description",
        "https from the office",
        "--vpc-id",
        &vpc,
        "--query",
        "GroupId",
    ]);
    let rule = d.aws(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        &format!(
            "IpProtocol=tcp,FromPort=443,ToPort=443,PrefixListIds=[{{PrefixListId={id},Description=office}}]"
        ),
    ]);
    assert_eq!(
        s(&rule["SecurityGroupRules"][0]["PrefixListId"]),
        id,
        "{rule}"
    );
    let shown = d.aws_text(&[
        "describe-security-groups",
        "--filters",
        &format!("Name=ip-permission.prefix-list-id,Values={id}"),
        "--query",
        "SecurityGroups[].IpPermissions[].PrefixListIds[].[PrefixListId,Description]",
    ]);
    assert_eq!(shown, format!("{id}\toffice"));
    let users = d.aws_text(&[
        "get-managed-prefix-list-associations",
        "--prefix-list-id",
        &id,
        "--query",
        "PrefixListAssociations[].ResourceId",
    ]);
    let mut want = [rt.clone(), sg.clone()];
    want.sort();
    assert_eq!(users, want.join("\t"));
    d.aws_err(
        &["delete-managed-prefix-list", "--prefix-list-id", &id],
        "DependencyViolation",
    );

    // The group holds one rule that counts as 3 (the list's MaxEntries): a list of 58
    // more does not fit in the 60-rule quota, and neither does growing ours to 61.
    let big = d.aws_text(&[
        "create-managed-prefix-list",
        "--prefix-list-name",
        "big",
        "--max-entries",
        "58",
        "--address-family",
        "IPv4",
        "--query",
        "PrefixList.PrefixListId",
    ]);
    d.aws_err(
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--ip-permissions",
            &format!("IpProtocol=tcp,FromPort=80,ToPort=80,PrefixListIds=[{{PrefixListId={big}}}]"),
        ],
        "RulesPerSecurityGroupLimitExceeded",
    );
    d.aws_err(
        &[
            "modify-managed-prefix-list",
            "--prefix-list-id",
            &id,
            "--max-entries",
            "61",
        ],
        "PrefixListMaxEntriesExceeded",
    );
    let resized = d.aws(&[
        "modify-managed-prefix-list",
        "--prefix-list-id",
        &id,
        "--max-entries",
        "60",
    ]);
    assert_eq!(resized["PrefixList"]["MaxEntries"], 60, "{resized}");
    assert_eq!(
        resized["PrefixList"]["Version"], 3,
        "a resize is no new version"
    );

    // Once nothing names it, the list can go.
    d.aws_text(&[
        "revoke-security-group-ingress",
        "--group-id",
        &sg,
        "--security-group-rule-ids",
        &s(&rule["SecurityGroupRules"][0]["SecurityGroupRuleId"]),
    ]);
    d.aws_text(&[
        "delete-route",
        "--route-table-id",
        &rt,
        "--destination-prefix-list-id",
        &id,
    ]);
    let gone = d.aws(&["delete-managed-prefix-list", "--prefix-list-id", &id]);
    assert_eq!(s(&gone["PrefixList"]["State"]), "delete-complete", "{gone}");
    d.aws_err(
        &["get-managed-prefix-list-entries", "--prefix-list-id", &id],
        "InvalidPrefixListID.NotFound",
    );
}

/// Through the fabric: an instance's group admits SSH from a prefix list, and a change
/// to the list governs the next connection (`vpclab trace` from the learner names the
/// rule by its list; OpenSSH then connects or is refused).
#[test]
fn a_security_group_rule_naming_a_prefix_list_admits_what_the_list_holds() {
    if !have("aws") || !have("ssh") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let learner = format!("{}/32", vpclab_netstack::internet::LEARNER_ADDR);
    let pl = d.aws_text(&[
        "create-managed-prefix-list",
        "--prefix-list-name",
        "learners",
        "--max-entries",
        "5",
        "--address-family",
        "IPv4",
        "--entries",
        &format!("Cidr={learner}"),
        "--query",
        "PrefixList.PrefixListId",
    ]);
    let sg = net.security_group(&d, "from-list", &[]);
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        &format!("IpProtocol=tcp,FromPort=22,ToPort=22,PrefixListIds=[{{PrefixListId={pl}}}]"),
    ]);
    let key = d.key_pair("lab", "ed25519");
    let (instance, public_ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let reach = || {
        let out = d.vpclab(&["trace", "me", &format!("{instance}:22")], b"");
        stdout(&out)
    };
    let ssh_ok = || {
        d.ssh(&key, "ec2-user", &public_ip, "echo through")
            .status
            .success()
    };

    let text = reach();
    assert!(text.contains("result: reachable"), "{text}");
    assert!(
        text.contains(&format!("ports 22-22 from {pl}")),
        "the deciding rule is named by its list: {text}"
    );
    assert!(ssh_ok(), "the learner is in the list");

    // Version 2 holds another address only: the next connection is refused.
    d.aws_text(&[
        "modify-managed-prefix-list",
        "--prefix-list-id",
        &pl,
        "--current-version",
        "1",
        "--remove-entries",
        &format!("Cidr={learner}"),
        "--add-entries",
        "Cidr=192.0.2.0/24",
    ]);
    let text = reach();
    assert!(text.contains("[ENI_SG_RULES_MISMATCH]"), "{text}");
    assert!(!ssh_ok(), "the learner left the list");

    d.aws_text(&[
        "restore-managed-prefix-list-version",
        "--prefix-list-id",
        &pl,
        "--previous-version",
        "1",
        "--current-version",
        "2",
    ]);
    assert!(reach().contains("result: reachable"));
    assert!(ssh_ok(), "version 1 restored");

    // ModifySecurityGroupRules turns the same rule (same id) into a CIDR rule for
    // another network: the learner is refused at once.
    let rule = d.aws_text(&[
        "describe-security-group-rules",
        "--filters",
        &format!("Name=group-id,Values={sg}"),
        "--query",
        "SecurityGroupRules[?PrefixListId].SecurityGroupRuleId",
    ]);
    d.aws_text(&[
        "modify-security-group-rules",
        "--group-id",
        &sg,
        "--security-group-rules",
        &format!(
            "SecurityGroupRuleId={rule},SecurityGroupRule={{IpProtocol=tcp,FromPort=22,ToPort=22,CidrIpv4=192.0.2.0/24}}"
        ),
    ]);
    let text = reach();
    assert!(text.contains("[ENI_SG_RULES_MISMATCH]"), "{text}");
    assert!(!ssh_ok(), "the rule no longer names the list");
}
