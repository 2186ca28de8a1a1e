//! VPC peering connections: Create/Accept/Reject/Delete/DescribeVpcPeeringConnections and
//! ModifyVpcPeeringConnectionOptions.
//!
//! AWS rules kept here (VPC Peering Guide, "VPC peering basics" and the
//! CreateVpcPeeringConnection reference): the requester owns the requesting VPC; the
//! accepter's owner accepts, in the accepter's Region; a request between VPCs whose IPv4
//! blocks overlap ends in status `failed`; a pending request expires after 7 days; only
//! one active or pending connection may join the same two VPCs; either owner may delete
//! an active connection; routes naming a connection that is not `active` are
//! blackholes; security-group rules may name the peer VPC's groups when both VPCs are in
//! one Region.
//!
//! What the data plane sees of a connection is only its two VPCs, and only while it is
//! active ([`super::compile`]); the fabric refuses what crosses it transitively.
//!
//! Both VPCs belong to this world's account: each account has its own world and fabric,
//! and a request naming another owner is refused (docs/fidelity.md).

use serde::{Deserialize, Serialize};

use crate::model::filter::b;
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, Timestamp, World, region};

/// A pending request expires after 7 days (CreateVpcPeeringConnection).
pub const PENDING_EXPIRY_MS: i64 = 7 * 24 * 3600 * 1000;

/// One side of a connection as `requesterVpcInfo` / `accepterVpcInfo` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeeringSide {
    pub vpc_id: String,
    pub owner_id: String,
    pub region: String,
    /// `AllowDnsResolutionFromRemoteVpc` of this side's options: this side's VPC
    /// resolves the other VPC's public DNS hostnames to private addresses.
    pub allow_dns_resolution_from_remote_vpc: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VpcPeeringConnection {
    pub id: String,
    /// The requester's Region (where the row is listed first).
    pub region: String,
    pub requester: PeeringSide,
    pub accepter: PeeringSide,
    /// `initiating-request`, `pending-acceptance`, `active`, `rejected`, `deleted`,
    /// `failed`, `expired`.
    pub status: String,
    pub message: String,
    pub expiration: Option<Timestamp>,
    pub created: Timestamp,
}

impl Resource for VpcPeeringConnection {
    const KIND: &'static str = "vpc_peering_connection";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl VpcPeeringConnection {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The VPC across the connection from `vpc`, if `vpc` is one end.
    pub fn other_side(&self, vpc: &str) -> Option<&PeeringSide> {
        if self.requester.vpc_id == vpc {
            Some(&self.accepter)
        } else if self.accepter.vpc_id == vpc {
            Some(&self.requester)
        } else {
            None
        }
    }

    /// Whether the connection is listed in `region` (AWS shows an inter-Region
    /// connection in both Regions).
    pub fn visible_in(&self, region: &str) -> bool {
        self.requester.region == region || self.accepter.region == region
    }
}

impl Filterable for VpcPeeringConnection {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        let cidrs = |vpc: &str| -> Vec<String> {
            world
                .vpcs
                .get(vpc)
                .map(|v| v.cidrs.iter().map(|c| c.cidr.to_string()).collect())
                .unwrap_or_default()
        };
        Some(match name {
            "vpc-peering-connection-id" => vec![self.id.clone()],
            "status-code" => vec![self.status.clone()],
            "status-message" => vec![self.message.clone()],
            "expiration-time" => self.expiration.iter().map(|t| t.iso()).collect(),
            "requester-vpc-info.vpc-id" => vec![self.requester.vpc_id.clone()],
            "requester-vpc-info.owner-id" => vec![self.requester.owner_id.clone()],
            "requester-vpc-info.cidr-block" => cidrs(&self.requester.vpc_id),
            "accepter-vpc-info.vpc-id" => vec![self.accepter.vpc_id.clone()],
            "accepter-vpc-info.owner-id" => vec![self.accepter.owner_id.clone()],
            "accepter-vpc-info.cidr-block" => cidrs(&self.accepter.vpc_id),
            "is-active" => vec![b(self.is_active())],
            _ => return None,
        })
    }
}

pub fn peering_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidVpcPeeringConnectionID.NotFound",
        format!("The vpcPeeringConnection ID '{id}' does not exist"),
    )
}

fn bad_state(id: &str, status: &str, wanted: &str) -> ApiError {
    ApiError::new(
        "InvalidStateTransition",
        format!(
            "Invalid state transition for {id}, attempted to transition from {status} to {wanted}"
        ),
    )
}

/// Which side's options ModifyVpcPeeringConnectionOptions changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeeringSideKind {
    Requester,
    Accepter,
}

impl World {
    /// The connection `id`, visible from `region`, in any status.
    pub fn peering(&self, region: &str, id: &str) -> ApiResult<&VpcPeeringConnection> {
        match self.vpc_peering_connections.get(id) {
            Some(p) if p.visible_in(region) => Ok(p),
            _ => Err(peering_not_found(id)),
        }
    }

    /// The active connection joining the VPCs `a` and `b`, if any.
    pub fn active_peering_between(&self, a: &str, b: &str) -> Option<&VpcPeeringConnection> {
        self.vpc_peering_connections
            .iter()
            .find(|p| p.is_active() && p.other_side(a).is_some_and(|s| s.vpc_id == b))
    }

    /// CreateVpcPeeringConnection. Answers with the connection in
    /// `initiating-request` (as AWS's response shows it); the row is stored as
    /// `pending-acceptance`, or `failed` when the blocks overlap.
    pub fn create_vpc_peering_connection(
        &mut self,
        env: &Env,
        vpc_id: &str,
        peer_vpc_id: &str,
        peer_owner_id: Option<&str>,
        peer_region: Option<&str>,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["vpc-peering-connection"])?;
        let requester = self.vpc(&env.region, vpc_id)?.clone();
        let owner = peer_owner_id.unwrap_or(&self.account).to_string();
        if owner != self.account {
            return Err(ApiError::new(
                "Unsupported",
                format!(
                    "vpclab peers VPCs of one account only: {owner} is another account's world (see docs/fidelity.md)."
                ),
            ));
        }
        let peer_region = peer_region.unwrap_or(&env.region).to_string();
        if region::region(&peer_region).is_none() {
            return Err(ApiError::invalid_value(format!(
                "The specified peer region '{peer_region}' is not valid."
            )));
        }
        let accepter = self
            .vpcs
            .get(peer_vpc_id)
            .filter(|v| v.region == peer_region)
            .cloned()
            .ok_or_else(|| crate::model::ec2::vpc::vpc_not_found(peer_vpc_id))?;
        if accepter.id == requester.id {
            return Err(ApiError::invalid_value(format!(
                "A VPC peering connection cannot join {vpc_id} to itself."
            )));
        }
        if self.vpc_peering_connections.iter().any(|p| {
            matches!(p.status.as_str(), "active" | "pending-acceptance")
                && p.other_side(vpc_id)
                    .is_some_and(|s| s.vpc_id == accepter.id)
        }) {
            return Err(ApiError::new(
                "VpcPeeringConnectionAlreadyExists",
                format!(
                    "A VPC peering connection between {vpc_id} and {} already exists.",
                    accepter.id
                ),
            ));
        }
        // AWS: "If you create a VPC peering connection request between VPCs with
        // overlapping CIDR blocks, the VPC peering connection has a status of failed."
        let overlap = requester.cidrs.iter().any(|a| {
            accepter
                .cidrs
                .iter()
                .any(|b| a.cidr.contains(&b.cidr.network()) || b.cidr.contains(&a.cidr.network()))
        });
        let (status, message, expiration) = if overlap {
            (
                "failed",
                "Failed due to incorrect VPC-ID, Account ID, or overlapping CIDR range".to_string(),
                None,
            )
        } else {
            (
                "pending-acceptance",
                format!("Pending Acceptance by {owner}"),
                Some(env.now.plus_ms(PENDING_EXPIRY_MS)),
            )
        };
        let id = self.alloc_id("pcx");
        let side = |vpc: &str, region: &str| PeeringSide {
            vpc_id: vpc.to_string(),
            owner_id: owner.clone(),
            region: region.to_string(),
            allow_dns_resolution_from_remote_vpc: false,
        };
        self.vpc_peering_connections.insert(VpcPeeringConnection {
            id: id.clone(),
            region: env.region.clone(),
            requester: side(vpc_id, &env.region),
            accepter: side(&accepter.id, &peer_region),
            status: status.to_string(),
            message,
            expiration,
            created: env.now,
        });
        self.apply_tag_specs(env, &id, "vpc-peering-connection", specs)?;
        Ok(id)
    }

    /// Loads a connection for a state change and turns an expired pending request into
    /// `expired` first (AWS: it can then no longer be accepted or rejected).
    fn peering_for_change(&mut self, env: &Env, id: &str) -> ApiResult<VpcPeeringConnection> {
        let mut p = self.peering(&env.region, id)?.clone();
        if p.status == "pending-acceptance" && p.expiration.is_some_and(|t| env.now >= t) {
            p.status = "expired".into();
            p.message = "Expired".into();
            self.vpc_peering_connections.insert(p.clone());
        }
        Ok(p)
    }

    /// AcceptVpcPeeringConnection: pending-acceptance → active, called in the accepter's
    /// Region.
    pub fn accept_vpc_peering_connection(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let mut p = self.peering_for_change(env, id)?;
        if p.status != "pending-acceptance" {
            return Err(bad_state(id, &p.status, "active"));
        }
        if p.accepter.region != env.region {
            return Err(ApiError::new(
                "OperationNotPermitted",
                format!(
                    "Peering {id} must be accepted in the accepter's region {}.",
                    p.accepter.region
                ),
            ));
        }
        p.status = "active".into();
        p.message = "Active".into();
        p.expiration = None;
        self.vpc_peering_connections.insert(p);
        Ok(())
    }

    /// RejectVpcPeeringConnection: only a pending request, by the accepter.
    pub fn reject_vpc_peering_connection(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let mut p = self.peering_for_change(env, id)?;
        if p.status != "pending-acceptance" {
            return Err(bad_state(id, &p.status, "rejected"));
        }
        p.status = "rejected".into();
        p.message = format!("Rejected by {}", self.account);
        p.expiration = None;
        self.vpc_peering_connections.insert(p);
        Ok(())
    }

    /// DeleteVpcPeeringConnection: an active connection (either owner) or a pending
    /// request (its requester). The row stays, `deleted`, as AWS keeps showing it for a
    /// while; routes naming it become blackholes.
    pub fn delete_vpc_peering_connection(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let mut p = self.peering_for_change(env, id)?;
        if !matches!(p.status.as_str(), "active" | "pending-acceptance") {
            return Err(bad_state(id, &p.status, "deleted"));
        }
        p.status = "deleted".into();
        p.message = format!("Deleted by {}", self.account);
        p.expiration = None;
        self.vpc_peering_connections.insert(p);
        Ok(())
    }

    /// ModifyVpcPeeringConnectionOptions: `AllowDnsResolutionFromRemoteVpc` per side, on
    /// an active connection.
    pub fn modify_vpc_peering_connection_options(
        &mut self,
        env: &Env,
        id: &str,
        changes: &[(PeeringSideKind, bool)],
    ) -> ApiResult<()> {
        let mut p = self.peering(&env.region, id)?.clone();
        if !p.is_active() {
            return Err(ApiError::new(
                "OperationNotPermitted",
                format!(
                    "Peering {id} is not active: its options can change only while it is active."
                ),
            ));
        }
        for (side, allow) in changes {
            match side {
                PeeringSideKind::Requester => {
                    p.requester.allow_dns_resolution_from_remote_vpc = *allow
                }
                PeeringSideKind::Accepter => {
                    p.accepter.allow_dns_resolution_from_remote_vpc = *allow
                }
            }
        }
        self.vpc_peering_connections.insert(p);
        Ok(())
    }
}
