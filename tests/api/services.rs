//! The service router as the real `aws` CLI meets it: a service vpclab does not emulate
//! answers with one line that names it (issue 9), in that service's own protocol, and
//! EC2 keeps working beside it.

use crate::support::{Lab, TestDaemon};

#[test]
fn unemulated_services_print_one_line_naming_the_service() {
    let d = TestDaemon::start();
    let cases: &[(&[&str], &str)] = &[
        (&["kms", "list-keys"], "AWS KMS"),
        (&["cloudfront", "list-distributions"], "Amazon CloudFront"),
        (&["cloudformation", "list-stacks"], "AWS CloudFormation"),
        (&["secretsmanager", "list-secrets"], "AWS Secrets Manager"),
    ];
    for (args, title) in cases {
        let err = d.aws_cli_err(args);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "aws {args:?}: one line, got {err:?}");
        assert!(
            lines[0].contains("(NotImplemented)")
                && lines[0].contains(&format!("vpclab does not emulate {title} yet")),
            "aws {args:?}: {err}"
        );
    }
    // EC2 is still answered on the same port.
    let vpcs = d.aws(&["describe-vpcs"]);
    assert_eq!(vpcs["Vpcs"].as_array().map(Vec::len), Some(1));
}
