//! vpclab's data plane.
//!
//! This crate decides, packet by packet, what AWS would do with a packet, and
//! gives everything above it (the SSH server, the DNS resolver, the lab
//! grader, `vpclab connect`) real TCP/UDP/ICMP endpoints inside a VPC.
//!
//! It knows AWS *networking* semantics — route tables, network ACLs, security
//! groups, internet and NAT gateways — but nothing of HTTP, XML, SSH, DNS
//! message formats, labs or persistence.
//!
//! The forwarding pipeline is [`Fabric`]: a sans-IO core fed with a
//! [`Topology`] snapshot, raw IPv4 packets and the current time, answering
//! each with a [`Verdict`]. Its stages and their order are documented in
//! [`fabric`] and in `docs/networking.md`. [`fixture`] builds ready-made
//! topologies for tests.
//!
//! Above the fabric, [`host`] gives every attachment a smoltcp stack with async
//! TCP/UDP/ICMP sockets that implement tokio's `AsyncRead`/`AsyncWrite`, so any
//! protocol crate can run over them: vpclab runs hyper (HTTP), russh (SSH) and
//! hickory (DNS) there. [`internet`] holds the simulated internet's address plan and
//! the learner's computer; the services at those addresses are vpclab's.

#![forbid(unsafe_code)]

mod compiled;
pub mod conntrack;
mod driver;
pub mod fabric;
pub mod fixture;
pub mod flow;
pub mod flowlog;
mod hash;
pub mod host;
pub mod internet;
pub mod ipv6;
mod nat;
pub mod port;
pub mod topology;
pub mod tun;
pub mod verdict;

pub use conntrack::Timeouts;
pub use fabric::{Fabric, FabricConfig, FabricStats, InterfaceCounters, NatCounters};
pub use flow::{Flow, FlowProto, TcpFlags, parse_flow};
pub use port::{Port, ResId};
pub use topology::{
    EniOwner, IcmpMatch, InternetConfig, InternetGateway, NaclEntry, NatGateway, NetworkAcl,
    NetworkInterface, PortRange, Protocol, Route, RouteState, RouteTable, RouteTarget, RuleAction,
    SecurityGroup, SgPeer, SgRule, Subnet, TgwAttachment, TgwRoute, TgwRouteTable, Topology,
    TopologyBuilder, TopologyError, TransitGateway, Vpc, VpcEndpoint, VpcPeering,
};
pub use verdict::{Direction, DropReason, Hop, HopAction, Malformed, Outcome, RuleRef, Verdict};
