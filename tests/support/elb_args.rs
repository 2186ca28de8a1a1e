//! Arguments of `aws elbv2` calls that tests and benchmarks both make. Benchmarks have
//! their own harness (`benches/common`), so this file holds plain argument lists and
//! nothing of either harness; `benches/compute.rs` includes it by path.

/// `create-target-group NAME`: HTTP on port 80 in `vpc`, targets of `target_type`
/// (`instance` or `ip`), with health checks fast enough for a test (every 5 s, 2 s
/// timeout, 2 results to turn healthy or unhealthy).
pub fn fast_target_group(name: &str, vpc: &str, target_type: &str) -> Vec<String> {
    [
        "create-target-group",
        "--name",
        name,
        "--protocol",
        "HTTP",
        "--port",
        "80",
        "--target-type",
        target_type,
        "--vpc-id",
        vpc,
        "--health-check-interval-seconds",
        "5",
        "--health-check-timeout-seconds",
        "2",
        "--healthy-threshold-count",
        "2",
        "--unhealthy-threshold-count",
        "2",
    ]
    .map(str::to_string)
    .to_vec()
}

/// `create-listener`: HTTP on port 80 of `lb_arn`, forwarding to the target group `tg`.
pub fn http_forward_listener(lb_arn: &str, tg: &str) -> Vec<String> {
    let action = format!("Type=forward,TargetGroupArn={tg}");
    [
        "create-listener",
        "--load-balancer-arn",
        lb_arn,
        "--protocol",
        "HTTP",
        "--port",
        "80",
        "--default-actions",
        &action,
    ]
    .map(str::to_string)
    .to_vec()
}

/// The arguments as the harnesses take them.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
