//! Reachability Analyzer through the real `aws` CLI: paths and analyses computed on the
//! fabric's own decision path, with AWS's explanation codes ("Reachability Analyzer
//! explanation codes", VPC documentation): `SUBNET_ACL_RESTRICTION` with the rule for a
//! network ACL deny, `ENI_SG_RULES_MISMATCH` for a missing security-group rule,
//! `NO_ROUTE_TO_DESTINATION` for a missing route, and a path found for a good setup.

use serde_json::Value;

use crate::support::{Lab, Network, TestDaemon, have};

/// Creates a path and runs one analysis; returns the analysis as Describe shows it.
fn analyse(d: &TestDaemon, args: &[&str]) -> Value {
    let mut create = vec!["create-network-insights-path"];
    create.extend_from_slice(args);
    let path = d.aws(&create);
    let path_id = path["NetworkInsightsPath"]["NetworkInsightsPathId"]
        .as_str()
        .expect("a path id")
        .to_string();
    let started = d.aws(&[
        "start-network-insights-analysis",
        "--network-insights-path-id",
        &path_id,
    ]);
    let a = &started["NetworkInsightsAnalysis"];
    // AWS answers Start with the analysis as it begins.
    assert_eq!(a["Status"], "running", "{started}");
    let id = a["NetworkInsightsAnalysisId"]
        .as_str()
        .expect("an analysis id");
    let described = d.aws(&[
        "describe-network-insights-analyses",
        "--network-insights-analysis-ids",
        id,
    ]);
    let a = described["NetworkInsightsAnalyses"][0].clone();
    assert_eq!(a["Status"], "succeeded", "{described}");
    assert_eq!(a["NetworkInsightsPathId"], path_id.as_str());
    a
}

fn codes(a: &Value) -> Vec<String> {
    a["Explanations"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|e| e["ExplanationCode"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn analyses_name_the_acl_rule_the_missing_sg_rule_and_the_missing_route() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    d.key_pair("lab", "ed25519");
    let (instance, _ip, _private) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);

    // A good setup: the internet reaches SSH on the instance, and the reply gets back.
    let ok = analyse(
        &d,
        &[
            "--source",
            &net.igw,
            "--destination",
            &instance,
            "--protocol",
            "tcp",
            "--destination-port",
            "22",
            "--tag-specifications",
            "ResourceType=network-insights-path,Tags=[{Key=Name,Value=ssh-in}]",
        ],
    );
    assert_eq!(ok["NetworkPathFound"], true, "{ok}");
    assert!(codes(&ok).is_empty(), "{ok}");
    let fwd = ok["ForwardPathComponents"]
        .as_array()
        .expect("forward path");
    assert_eq!(fwd[0]["SequenceNumber"], 1);
    assert_eq!(fwd[0]["Component"]["Id"], net.igw.as_str());
    assert!(
        fwd.iter()
            .any(|c| c["SecurityGroupRule"]["PortRange"]["From"] == 22
                && c["SecurityGroupRule"]["Direction"] == "ingress"
                && c["SecurityGroupRule"]["SecurityGroupId"] == sg.as_str()),
        "the security group rule that let SSH in: {ok}"
    );
    assert!(
        fwd.iter()
            .any(|c| c["Component"]["Id"] == instance.as_str()),
        "the path ends at the instance: {ok}"
    );
    let back = ok["ReturnPathComponents"].as_array().expect("return path");
    assert!(
        back.iter()
            .any(|c| c["RouteTableRoute"]["DestinationCidr"] == "0.0.0.0/0"
                && c["RouteTableRoute"]["GatewayId"] == net.igw.as_str()),
        "the reply leaves by the default route: {ok}"
    );

    // A missing security-group rule: nothing allows port 80.
    let sg_miss = analyse(
        &d,
        &[
            "--source",
            &net.igw,
            "--destination",
            &instance,
            "--protocol",
            "tcp",
            "--destination-port",
            "80",
        ],
    );
    assert_eq!(sg_miss["NetworkPathFound"], false);
    assert_eq!(codes(&sg_miss), ["ENI_SG_RULES_MISMATCH"], "{sg_miss}");
    let e = &sg_miss["Explanations"][0];
    assert_eq!(e["Direction"], "ingress");
    assert_eq!(e["SecurityGroups"][0]["Id"], sg.as_str(), "{sg_miss}");

    // A network ACL that denies SSH with rule 90 before allowing everything with 100.
    let acl = d.aws_text(&[
        "create-network-acl",
        "--vpc-id",
        &net.vpc,
        "--query",
        "NetworkAcl.NetworkAclId",
    ]);
    for (n, egress, action, ports) in [
        ("90", false, "deny", Some("22")),
        ("100", false, "allow", None),
        ("100", true, "allow", None),
    ] {
        let mut args = vec![
            "create-network-acl-entry",
            "--network-acl-id",
            &acl,
            "--rule-number",
            n,
            "--rule-action",
            action,
            "--cidr-block",
            "0.0.0.0/0",
            if egress { "--egress" } else { "--ingress" },
        ];
        let range;
        match ports {
            Some(p) => {
                range = format!("From={p},To={p}");
                args.extend(["--protocol", "tcp", "--port-range", &range]);
            }
            None => args.extend(["--protocol", "-1"]),
        }
        d.aws(&args);
    }
    let assoc = d.aws_text(&[
        "describe-network-acls",
        "--filters",
        &format!("Name=association.subnet-id,Values={}", net.public_subnet),
        "--query",
        &format!(
            "NetworkAcls[0].Associations[?SubnetId=='{}'].NetworkAclAssociationId | [0]",
            net.public_subnet
        ),
    ]);
    d.aws(&[
        "replace-network-acl-association",
        "--association-id",
        &assoc,
        "--network-acl-id",
        &acl,
    ]);
    let denied = analyse(
        &d,
        &[
            "--source",
            &net.igw,
            "--destination",
            &instance,
            "--protocol",
            "tcp",
            "--destination-port",
            "22",
        ],
    );
    assert_eq!(denied["NetworkPathFound"], false);
    assert_eq!(codes(&denied), ["SUBNET_ACL_RESTRICTION"], "{denied}");
    let e = &denied["Explanations"][0];
    assert_eq!(e["Acl"]["Id"], acl.as_str());
    assert_eq!(e["AclRule"]["RuleNumber"], 90, "{denied}");
    assert_eq!(e["AclRule"]["RuleAction"], "deny");
    assert_eq!(e["AclRule"]["Egress"], false);
    assert_eq!(e["Subnet"]["Id"], net.public_subnet.as_str());
    assert_eq!(e["Direction"], "ingress");

    // No route: an interface in the private subnet (no default route) to the internet.
    let eni = d.aws_text(&[
        "create-network-interface",
        "--subnet-id",
        &net.private_subnet,
        "--query",
        "NetworkInterface.NetworkInterfaceId",
    ]);
    let no_route = analyse(
        &d,
        &[
            "--source",
            &eni,
            "--destination-ip",
            "192.0.2.10",
            "--protocol",
            "tcp",
            "--destination-port",
            "443",
        ],
    );
    assert_eq!(codes(&no_route), ["NO_ROUTE_TO_DESTINATION"], "{no_route}");
    assert_eq!(
        no_route["Explanations"][0]["RouteTable"]["Id"],
        net.private_rt.as_str()
    );

    // Filters and tags on Describe.
    let found = d.aws(&[
        "describe-network-insights-analyses",
        "--filters",
        "Name=path-found,Values=true",
    ]);
    assert_eq!(
        found["NetworkInsightsAnalyses"].as_array().map(Vec::len),
        Some(1),
        "{found}"
    );
    let named = d.aws(&[
        "describe-network-insights-paths",
        "--filters",
        "Name=tag:Name,Values=ssh-in",
    ]);
    let paths = named["NetworkInsightsPaths"].as_array().expect("paths");
    assert_eq!(paths.len(), 1, "{named}");
    assert_eq!(paths[0]["Source"], net.igw.as_str());
    assert_eq!(paths[0]["DestinationPort"], 22);
    assert!(
        paths[0]["NetworkInsightsPathArn"].as_str().is_some_and(
            |a| a.starts_with("arn:aws:ec2:us-east-1:000000000000:network-insights-path/nip-")
        ),
        "{named}"
    );

    // Deleting a path deletes its analyses; unknown ids are AWS's NotFound errors.
    let path_id = paths[0]["NetworkInsightsPathId"].as_str().expect("id");
    d.aws(&[
        "delete-network-insights-path",
        "--network-insights-path-id",
        path_id,
    ]);
    d.aws_err(
        &[
            "describe-network-insights-paths",
            "--network-insights-path-ids",
            path_id,
        ],
        "InvalidNetworkInsightsPathId.NotFound",
    );
    let left = d.aws(&[
        "describe-network-insights-analyses",
        "--filters",
        "Name=path-found,Values=true",
    ]);
    assert_eq!(
        left["NetworkInsightsAnalyses"].as_array().map(Vec::len),
        Some(0),
        "{left}"
    );
    d.aws_err(
        &[
            "delete-network-insights-analysis",
            "--network-insights-analysis-id",
            "nia-0123456789abcdef0",
        ],
        "InvalidNetworkInsightsAnalysisId.NotFound",
    );
}

#[test]
fn bad_paths_are_refused_with_aws_codes() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    d.aws_err(
        &[
            "create-network-insights-path",
            "--source",
            "i-0123456789abcdef0",
            "--destination-ip",
            "10.0.0.1",
            "--protocol",
            "tcp",
        ],
        "InvalidInstanceID.NotFound",
    );
    d.aws_err(
        &[
            "create-network-insights-path",
            "--source",
            "i-0123456789abcdef0",
            "--destination-ip",
            "10.0.0.1",
            "--protocol",
            "icmp",
        ],
        "InvalidParameterValue",
    );
    // The analyzer's addresses are IPv4 ("DestinationIp … Pattern: dotted quad", EC2 API
    // reference); IPv6 is `vpclab trace -6`'s.
    d.aws_err(
        &[
            "create-network-insights-path",
            "--source",
            "i-0123456789abcdef0",
            "--destination-ip",
            "2001:db8::1",
            "--protocol",
            "tcp",
        ],
        "InvalidParameterValue",
    );
    d.aws_err(
        &[
            "start-network-insights-analysis",
            "--network-insights-path-id",
            "nip-0123456789abcdef0",
        ],
        "InvalidNetworkInsightsPathId.NotFound",
    );
}
