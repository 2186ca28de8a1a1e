//! Security-group rules by id, through the real aws CLI: ModifySecurityGroupRules,
//! UpdateSecurityGroupRuleDescriptions*, tags on rules, and the two peering views
//! (DescribeSecurityGroupReferences, DescribeStaleSecurityGroups).
//!
//! AWS rules (EC2 API Reference; VPC Peering Guide, "Identify your referenced security
//! groups" and "Work with stale security groups"): a rule keeps its `sgr-` id when it is
//! modified; a modification may not duplicate another rule; references are reported to
//! the referenced group's owner with the peer VPC and connection; "a stale security
//! group rule is a rule that references a security group in a peer VPC where the VPC
//! peering connection has been deleted".

use crate::support::{Lab, TestDaemon, have, s, security_group, vpc_with_internet_gateway};

#[test]
fn rules_keep_their_ids_and_tags_when_modified_or_redescribed() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc, _) = vpc_with_internet_gateway(&d);
    let sg = security_group(&d, &vpc, "web", &[]);
    let made = d.aws(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=80,ToPort=80,IpRanges=[{CidrIp=0.0.0.0/0}]",
        "IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=0.0.0.0/0}]",
        "--tag-specifications",
        "ResourceType=security-group-rule,Tags=[{Key=purpose,Value=web}]",
    ]);
    let http = s(&made["SecurityGroupRules"][0]["SecurityGroupRuleId"]);
    let https = s(&made["SecurityGroupRules"][1]["SecurityGroupRuleId"]);
    assert!(http.starts_with("sgr-"), "{made}");

    d.aws_text(&[
        "modify-security-group-rules",
        "--group-id",
        &sg,
        "--security-group-rules",
        &format!(
            "SecurityGroupRuleId={http},SecurityGroupRule={{IpProtocol=tcp,FromPort=8080,ToPort=8080,CidrIpv4=10.0.0.0/16,Description=alt}}"
        ),
    ]);
    let after = d.aws(&[
        "describe-security-group-rules",
        "--filters",
        "Name=tag:purpose,Values=web",
        &format!("Name=group-id,Values={sg}"),
    ]);
    let rules = after["SecurityGroupRules"].as_array().expect("rules");
    let changed = rules
        .iter()
        .find(|r| s(&r["SecurityGroupRuleId"]) == http)
        .expect("same id, tags kept");
    assert_eq!(changed["FromPort"], 8080, "{after}");
    assert_eq!(s(&changed["CidrIpv4"]), "10.0.0.0/16", "{after}");
    assert_eq!(s(&changed["Description"]), "alt", "{after}");

    // Turning the HTTPS rule into a copy of the other one is a duplicate.
    d.aws_err(
        &[
            "modify-security-group-rules",
            "--group-id",
            &sg,
            "--security-group-rules",
            &format!(
                "SecurityGroupRuleId={https},SecurityGroupRule={{IpProtocol=tcp,FromPort=8080,ToPort=8080,CidrIpv4=10.0.0.0/16}}"
            ),
        ],
        "InvalidPermission.Duplicate",
    );
    d.aws_err(
        &[
            "modify-security-group-rules",
            "--group-id",
            &sg,
            "--security-group-rules",
            "SecurityGroupRuleId=sgr-0123456789abcdef0,SecurityGroupRule={IpProtocol=-1,CidrIpv4=10.0.0.0/8}",
        ],
        "InvalidSecurityGroupRuleId.NotFound",
    );

    // Descriptions: by rule id, and by the permission that matches the rule.
    d.aws_text(&[
        "update-security-group-rule-descriptions-ingress",
        "--group-id",
        &sg,
        "--security-group-rule-descriptions",
        &format!("SecurityGroupRuleId={https},Description=tls"),
    ]);
    d.aws_text(&[
        "update-security-group-rule-descriptions-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=8080,ToPort=8080,IpRanges=[{CidrIp=10.0.0.0/16,Description=proxy}]",
    ]);
    let descriptions = d.aws_text(&[
        "describe-security-group-rules",
        "--security-group-rule-ids",
        &http,
        &https,
        "--query",
        "sort_by(SecurityGroupRules,&FromPort)[].Description",
    ]);
    assert_eq!(descriptions, "tls\tproxy");
    d.aws_err(
        &[
            "update-security-group-rule-descriptions-egress",
            "--group-id",
            &sg,
            "--security-group-rule-descriptions",
            &format!("SecurityGroupRuleId={https},Description=wrong-direction"),
        ],
        "InvalidSecurityGroupRuleId.NotFound",
    );
}

#[test]
fn references_across_a_peering_and_stale_rules_once_it_is_deleted() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let (vpc_a, _) = vpc_with_internet_gateway(&d);
    let vpc_b = d.aws_text(&[
        "create-vpc",
        "--cidr-block",
        "10.1.0.0/16",
        "--query",
        "Vpc.VpcId",
    ]);
    let pcx = d.aws_text(&[
        "create-vpc-peering-connection",
        "--vpc-id",
        &vpc_a,
        "--peer-vpc-id",
        &vpc_b,
        "--query",
        "VpcPeeringConnection.VpcPeeringConnectionId",
    ]);
    d.aws_text(&[
        "accept-vpc-peering-connection",
        "--vpc-peering-connection-id",
        &pcx,
    ]);
    let app = security_group(&d, &vpc_a, "app", &[]);
    let db = security_group(&d, &vpc_b, "db", &[]);
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &db,
        "--protocol",
        "tcp",
        "--port",
        "5432",
        "--source-group",
        &app,
    ]);

    let refs = d.aws(&["describe-security-group-references", "--group-id", &app]);
    let r = &refs["SecurityGroupReferenceSet"][0];
    assert_eq!(s(&r["GroupId"]), app, "{refs}");
    assert_eq!(s(&r["ReferencingVpcId"]), vpc_b, "{refs}");
    assert_eq!(s(&r["VpcPeeringConnectionId"]), pcx, "{refs}");
    let none = d.aws_text(&[
        "describe-stale-security-groups",
        "--vpc-id",
        &vpc_b,
        "--query",
        "length(StaleSecurityGroupSet)",
    ]);
    assert_eq!(none, "0", "nothing is stale while the peering is active");

    d.aws_text(&[
        "delete-vpc-peering-connection",
        "--vpc-peering-connection-id",
        &pcx,
    ]);
    let stale = d.aws(&["describe-stale-security-groups", "--vpc-id", &vpc_b]);
    let g = &stale["StaleSecurityGroupSet"][0];
    assert_eq!(s(&g["GroupId"]), db, "{stale}");
    let p = &g["StaleIpPermissions"][0];
    assert_eq!(p["FromPort"], 5432, "{stale}");
    let pair = &p["UserIdGroupPairs"][0];
    assert_eq!(s(&pair["GroupId"]), app, "{stale}");
    assert_eq!(s(&pair["VpcId"]), vpc_a, "{stale}");
    assert_eq!(s(&pair["VpcPeeringConnectionId"]), pcx, "{stale}");
    assert_eq!(s(&pair["PeeringStatus"]), "deleted", "{stale}");
    let refs = d.aws_text(&[
        "describe-security-group-references",
        "--group-id",
        &app,
        "--query",
        "length(SecurityGroupReferenceSet)",
    ]);
    assert_eq!(refs, "0", "no reference across a deleted peering");
}
