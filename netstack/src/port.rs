//! Where packets enter and leave the fabric.
//!
//! The fabric (the VPC forwarding pipeline) and the host stacks (instances,
//! services, the simulated internet) meet at *ports*. A host hands the fabric
//! a raw IPv4 packet together with the port it was sent from; the fabric
//! answers with the port the (possibly rewritten) packet must be delivered
//! to, or a drop with its reason. This module holds only those shared names,
//! so that the pipeline and the host layer can grow independently.

use std::sync::Arc;

/// An AWS-style resource id such as `eni-0a1b2c3d4e5f60718` or `vpc-…`.
///
/// The data plane names resources by the ids learners see, so that a drop
/// reason ("blocked by network ACL acl-… inbound rule 100") can be shown to
/// them as is. `Arc<str>` keeps clones cheap on the packet path.
pub type ResId = Arc<str>;

/// An attachment point of the fabric.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// A network interface (an instance's, a NAT gateway's, …) by its ENI id.
    Eni(ResId),
    /// The simulated internet: every host outside the world's VPCs (internet
    /// services in 192.0.2.0/24, the learner in 203.0.113.0/24, health
    /// checkers). Packets delivered here are demultiplexed by destination
    /// address by the host layer.
    Internet,
    /// The Route 53 Resolver of a VPC (VPC base + 2, 169.254.169.253 and fd00:ec2::253), by
    /// VPC id. Exempt from network ACLs and security groups, as on AWS.
    Resolver(ResId),
    /// The instance metadata service (169.254.169.254, fd00:ec2::254) as seen from one
    /// network interface. Exempt from network ACLs and security groups.
    Metadata(ResId),
    /// A gateway VPC endpoint (`vpce-…`) by its id: the AWS service (S3,
    /// DynamoDB) reached from the VPC without an internet gateway or NAT. Its
    /// replies come back through the same port into the endpoint's VPC.
    Endpoint(ResId),
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Eni(id) => write!(f, "{id}"),
            Port::Internet => f.write_str("internet"),
            Port::Resolver(vpc) => write!(f, "resolver of {vpc}"),
            Port::Metadata(eni) => write!(f, "metadata service of {eni}"),
            Port::Endpoint(vpce) => write!(f, "the service behind {vpce}"),
        }
    }
}
