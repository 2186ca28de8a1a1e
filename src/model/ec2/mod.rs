//! EC2 in the model: the networking resources of a VPC (VPCs, subnets, route tables,
//! gateways, Elastic IPs, network ACLs, security groups, interfaces), key pairs and
//! instances, with the rules AWS applies to each, and [`compile`], which turns an
//! account's EC2 state into the netstack `Topology` the fabric enforces.
//!
//! One file per resource family: the resource struct(s) and the `impl World` methods of
//! its actions. The shared core (ids, tags, filters, the store) is in [`crate::model`].

pub mod address;
pub mod compile;
pub mod dhcp;
pub mod eni;
pub mod flow_log;
pub mod iam_profile;
pub mod igw;
pub mod insights;
pub mod instance;
pub mod ipv6;
pub mod key_pair;
pub mod launch_template;
pub mod nacl;
pub mod nat;
pub mod peering;
pub mod prefix_list;
pub mod route_table;
#[cfg(test)]
mod rules_tests;
pub mod sg;
pub mod sg_rules;
pub mod subnet;
pub mod tgw;
pub mod volume;
pub mod vpc;
pub mod vpc_endpoint;
