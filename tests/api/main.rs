//! The API as clients see it: the EC2 Query API and Route 53 driven by the real `aws`
//! CLI, boto3 and raw HTTP, key pairs loaded by OpenSSH and PuTTY, and the `vpclab` CLI
//! itself (`up`, `status`). One test binary (one link of the crate); the daemons come
//! from the shared harness in `tests/support`.

#[path = "../support/mod.rs"]
mod support;

mod autoscaling;
mod blackbox;
mod class;
mod class_pg;
mod cli;
mod cloudwatch;
mod console;
mod console_browser;
mod data;
mod ebs;
mod ecr;
mod ecs;
mod elb;
mod iam;
mod insights;
mod instances;
mod ipv6;
mod keys;
mod lambda;
mod logs;
mod route53;
mod route53_cli;
mod s3;
mod s3_classes;
mod s3_corners;
mod s3_events;
mod s3_replication;
mod s3_sweep;
mod secondary_ips;
mod services;
mod sns;
mod transit_gateway;
