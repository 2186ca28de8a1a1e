//! vpclab's data plane.
//!
//! This crate decides, packet by packet, what AWS would do with a packet, and
//! gives everything above it (the SSH server, the DNS resolver, the lab
//! grader, `vpclab connect`) real TCP/UDP/ICMP endpoints inside a VPC.
//!
//! It knows AWS *networking* semantics — route tables, network ACLs, security
//! groups, internet and NAT gateways — but nothing of HTTP, XML, SSH, DNS
//! message formats, labs or persistence.

#![forbid(unsafe_code)]

mod driver;
pub mod host;
pub mod internet;
pub mod port;

pub use port::{Port, ResId};
