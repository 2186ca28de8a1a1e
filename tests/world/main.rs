//! The simulated world: instances reached with the real OpenSSH client (through
//! `vpclab connect`, or plain ssh over `--tun`), their services and the internet, the
//! DNS endpoints and Route 53 health checks seen by `dig`. One test binary (one link of
//! the crate); the daemons come from the shared harness in `tests/support`.

#[path = "../support/mod.rs"]
mod support;

mod alarms;
mod dhcp_options;
mod dns_health;
mod dns_server;
mod ecs;
mod ecs_alb;
mod elb;
mod elb_https;
mod flow_logs;
mod iam_profile;
mod instance_services;
mod instance_ssh;
mod internet;
mod ipv6;
mod monitoring;
mod observe;
mod peering;
mod prefix_lists;
mod sandbox;
mod sg_rules;
mod ssh;
mod transit_gateway;
mod tun;
mod vpc_endpoints;
