//! VPC peering actions: Create/Accept/Reject/Delete/DescribeVpcPeeringConnections,
//! ModifyVpcPeeringConnectionOptions.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::peering::{
    PeeringSide, PeeringSideKind, VpcPeeringConnection, peering_not_found,
};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateVpcPeeringConnection", create),
    ("AcceptVpcPeeringConnection", accept),
    ("RejectVpcPeeringConnection", reject),
    ("DeleteVpcPeeringConnection", delete),
    ("DescribeVpcPeeringConnections", describe),
    ("ModifyVpcPeeringConnectionOptions", modify_options),
];

/// `requesterVpcInfo` / `accepterVpcInfo`. AWS shows a side's blocks and options only
/// once the connection is active (a pending accepter shows its owner, VPC and Region).
fn render_side(x: &mut Xml, w: &World, side: &PeeringSide, active_or_requester: bool) {
    x.leaf("ownerId", &side.owner_id)
        .leaf("vpcId", &side.vpc_id);
    if active_or_requester && let Some(v) = w.vpcs.get(&side.vpc_id) {
        x.leaf("cidrBlock", v.cidr())
            .set("cidrBlockSet", &v.cidrs, |x, c| {
                x.leaf("cidrBlock", c.cidr);
            })
            .node("peeringOptions", |x| {
                x.leaf(
                    "allowDnsResolutionFromRemoteVpc",
                    tf(side.allow_dns_resolution_from_remote_vpc),
                )
                .leaf("allowEgressFromLocalClassicLinkToRemoteVpc", "false")
                .leaf("allowEgressFromLocalVpcToRemoteClassicLink", "false");
            });
    }
    x.leaf("region", &side.region);
}

fn render(x: &mut Xml, w: &World, p: &VpcPeeringConnection, status: (&str, &str)) {
    let active = p.is_active();
    x.leaf("vpcPeeringConnectionId", &p.id)
        .node("requesterVpcInfo", |x| {
            render_side(x, w, &p.requester, true)
        })
        .node("accepterVpcInfo", |x| {
            render_side(x, w, &p.accepter, active)
        })
        .node("status", |x| {
            x.leaf("code", status.0).leaf("message", status.1);
        })
        .opt("expirationTime", p.expiration.map(|t| t.iso()));
    tag_set(x, w, &p.id);
}

fn one(c: &mut Call, id: &str, status: Option<(String, String)>) -> ApiResult<Xml> {
    let w = c.read()?;
    let p = w
        .vpc_peering_connections
        .get(id)
        .ok_or_else(ApiError::internal)?;
    let (code, message) = status.unwrap_or_else(|| (p.status.clone(), p.message.clone()));
    let mut x = Xml::new();
    x.node("vpcPeeringConnection", |x| {
        render(x, &w, p, (&code, &message))
    });
    Ok(x)
}

fn create(c: &mut Call) -> ApiResult<Xml> {
    let vpc = c.params.required("VpcId")?.to_string();
    let peer = c.params.required("PeerVpcId")?.to_string();
    let owner = c.params.get("PeerOwnerId").map(str::to_string);
    let region = c.params.get("PeerRegion").map(str::to_string);
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| {
        w.create_vpc_peering_connection(
            env,
            &vpc,
            &peer,
            owner.as_deref(),
            region.as_deref(),
            &specs,
        )
    })?;
    // AWS answers with the request still being initiated; DescribeVpcPeeringConnections
    // then shows pending-acceptance (or failed).
    let to = owner.unwrap_or_else(|| c.account.clone());
    one(
        c,
        &id,
        Some((
            "initiating-request".into(),
            format!("Initiating Request to {to}"),
        )),
    )
}

fn accept(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("VpcPeeringConnectionId")?.to_string();
    c.mutate(|w, env| w.accept_vpc_peering_connection(env, &id))?;
    one(c, &id, None)
}

fn reject(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("VpcPeeringConnectionId")?.to_string();
    c.mutate(|w, env| w.reject_vpc_peering_connection(env, &id))?;
    Ok(return_true())
}

fn delete(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("VpcPeeringConnectionId")?.to_string();
    c.mutate(|w, env| w.delete_vpc_peering_connection(env, &id))?;
    Ok(return_true())
}

fn describe(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("VpcPeeringConnectionId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let region = c.env.region.clone();
    for id in &ids {
        w.peering(&region, id)?;
    }
    let mut rows = Vec::new();
    for p in w.vpc_peering_connections.iter() {
        if !p.visible_in(&region) || (!ids.is_empty() && !ids.contains(&p.id)) {
            continue;
        }
        if crate::model::filter::matches_all(&w, p, &filters)? {
            rows.push(p);
        }
    }
    let (page, next) = paginate(c, rows, |p| &p.id)?;
    let mut x = Xml::new();
    x.set("vpcPeeringConnectionSet", page, |x, p| {
        render(x, &w, p, (&p.status, &p.message))
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn modify_options(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("VpcPeeringConnectionId")?.to_string();
    let mut changes = Vec::new();
    for (prefix, side) in [
        (
            "RequesterPeeringConnectionOptions",
            PeeringSideKind::Requester,
        ),
        (
            "AccepterPeeringConnectionOptions",
            PeeringSideKind::Accepter,
        ),
    ] {
        if let Some(v) = c
            .params
            .bool(&format!("{prefix}.AllowDnsResolutionFromRemoteVpc"))?
        {
            changes.push((side, v));
        }
        for classic in [
            "AllowEgressFromLocalClassicLinkToRemoteVpc",
            "AllowEgressFromLocalVpcToRemoteClassicLink",
        ] {
            if c.params.bool(&format!("{prefix}.{classic}"))? == Some(true) {
                return Err(ApiError::new(
                    "Unsupported",
                    "EC2-Classic (ClassicLink) was retired by AWS and is not emulated.",
                ));
            }
        }
    }
    if changes.is_empty() {
        return Err(ApiError::missing(
            "RequesterPeeringConnectionOptions or AccepterPeeringConnectionOptions",
        ));
    }
    c.mutate(|w, env| w.modify_vpc_peering_connection_options(env, &id, &changes))?;
    let w = c.read()?;
    let p = w
        .vpc_peering_connections
        .get(&id)
        .ok_or_else(|| peering_not_found(&id))?;
    let mut x = Xml::new();
    for (name, side, kind) in [
        (
            "requesterPeeringConnectionOptions",
            &p.requester,
            PeeringSideKind::Requester,
        ),
        (
            "accepterPeeringConnectionOptions",
            &p.accepter,
            PeeringSideKind::Accepter,
        ),
    ] {
        if changes.iter().any(|(k, _)| *k == kind) {
            x.node(name, |x| {
                x.leaf(
                    "allowDnsResolutionFromRemoteVpc",
                    tf(side.allow_dns_resolution_from_remote_vpc),
                );
            });
        }
    }
    Ok(x)
}
