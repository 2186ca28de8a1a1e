//! Route 53 DNS for vpclab: what resolves where, per VPC, and the host-side endpoint.
//!
//! - [`view`]: [`DnsView`], the snapshot of a world that resolution depends on (VPCs and
//!   their DNS attributes, instance addresses, hosted zones, health-check results). The
//!   control plane builds it from its model; nothing here reads the model directly.
//! - [`engine`]: [`answer`], the sans-IO answer engine: query bytes and a vantage point
//!   (inside VPC X, or the internet) in, response bytes out (or nothing, when the VPC's
//!   `enableDnsSupport` is off).
//! - [`names`]: EC2's instance DNS names (`ip-10-0-1-5.ec2.internal`,
//!   `ec2-198-18-0-7.compute-1.amazonaws.com`), shared with the API.
//! - [`public_names`]: the simulated internet's own names: well-known sites and AWS
//!   service endpoints, with their addresses in the fabric.
//! - [`health`]: Route 53 health-check results (per checker, Route 53's rules for
//!   combining them) published into the view's `health` map.
//! - [`server`]: the host-side endpoint (`vpclab up --dns-listen`), which answers as the
//!   world's internet would: UDP served by `hickory-server`, TCP by a bounded loop of
//!   its own ([`TcpLimits`]).
//!
//! Left to others: the resolver inside each VPC (base+2 and 169.254.169.253) is a
//! socket in the fabric that calls [`answer`] with [`Vantage::Vpc`]; the Route 53 API
//! owns the hosted zones and compiles them into the view.

pub mod engine;
pub mod from_model;
pub mod health;
pub mod names;
pub mod public_names;
pub mod server;
pub mod view;

pub use engine::{
    DEFAULT_UDP_PAYLOAD, EC2_NAME_TTL, Transport, Vantage, answer, resolver_answers, respond,
};
pub use server::{
    ServeError, SharedView, TcpLimits, Views, serve_public_dns, serve_public_dns_with,
};
pub use view::{
    AliasTarget, DnsView, FailoverRole, HostedZone, InstanceDns, LINK_LOCAL_RESOLVER, Policy,
    RdataError, RecordSet, VpcDns, name_key, parse_rdata,
};
