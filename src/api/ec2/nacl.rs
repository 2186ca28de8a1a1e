//! Network ACL actions: Create/Delete/DescribeNetworkAcls, Create/Replace/
//! DeleteNetworkAclEntry, ReplaceNetworkAclAssociation.

use crate::api::Call;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::model::ec2::nacl::{NaclEntryInput, NetworkAcl, nacl_not_found};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateNetworkAcl", create_network_acl),
    ("DeleteNetworkAcl", delete_network_acl),
    ("DescribeNetworkAcls", describe_network_acls),
    ("CreateNetworkAclEntry", create_network_acl_entry),
    ("ReplaceNetworkAclEntry", replace_network_acl_entry),
    ("DeleteNetworkAclEntry", delete_network_acl_entry),
    (
        "ReplaceNetworkAclAssociation",
        replace_network_acl_association,
    ),
];

fn render_acl(x: &mut Xml, w: &World, a: &NetworkAcl) {
    x.leaf("networkAclId", &a.id)
        .leaf("vpcId", &a.vpc_id)
        .leaf("default", tf(a.is_default))
        .set("entrySet", a.effective_entries(), |x, e| {
            x.leaf("ruleNumber", e.rule_number)
                .leaf("protocol", &e.protocol)
                .leaf("ruleAction", &e.rule_action)
                .leaf("egress", tf(e.egress));
            match e.cidr {
                ipnet::IpNet::V4(c) => x.leaf("cidrBlock", c),
                ipnet::IpNet::V6(c) => x.leaf("ipv6CidrBlock", c),
            };
            if let Some((t, c)) = e.icmp {
                x.node("icmpTypeCode", |x| {
                    x.leaf("code", c).leaf("type", t);
                });
            }
            if let Some((f, t)) = e.port_range {
                x.node("portRange", |x| {
                    x.leaf("from", f).leaf("to", t);
                });
            }
        })
        .set("associationSet", &a.associations, |x, s| {
            x.leaf("networkAclAssociationId", &s.id)
                .leaf("networkAclId", &a.id)
                .leaf("subnetId", &s.subnet_id);
        })
        .leaf("ownerId", &w.account);
    tag_set(x, w, &a.id);
}

fn create_network_acl(c: &mut Call) -> ApiResult<Xml> {
    let vpc = c.params.required("VpcId")?.to_string();
    let specs = c.params.tag_specs()?;
    let id = c.mutate(|w, env| w.create_network_acl(env, &vpc, &specs))?;
    let w = c.read()?;
    let a = w.network_acls.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("networkAcl", |x| render_acl(x, &w, a));
    Ok(x)
}

fn delete_network_acl(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkAclId")?.to_string();
    c.mutate(|w, env| w.delete_network_acl(env, &id))?;
    Ok(return_true())
}

fn describe_network_acls(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("NetworkAclId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.network_acls,
        &c.env.region,
        &ids,
        &filters,
        nacl_not_found,
    )?;
    let (page, next) = paginate(c, rows, |a| &a.id)?;
    let mut x = Xml::new();
    x.set("networkAclSet", page, |x, a| render_acl(x, &w, a));
    x.opt("nextToken", next);
    Ok(x)
}

fn entry_input(p: &Params) -> ApiResult<NaclEntryInput> {
    Ok(NaclEntryInput {
        rule_number: p.get("RuleNumber").map(str::to_string),
        egress: p.bool("Egress")?.unwrap_or(false),
        protocol: p.get("Protocol").map(str::to_string),
        rule_action: p.get("RuleAction").map(str::to_string),
        cidr_block: p.get("CidrBlock").map(str::to_string),
        ipv6_cidr_block: p.get("Ipv6CidrBlock").map(str::to_string),
        port_from: p.get("PortRange.From").map(str::to_string),
        port_to: p.get("PortRange.To").map(str::to_string),
        icmp_type: p.get("Icmp.Type").map(str::to_string),
        icmp_code: p.get("Icmp.Code").map(str::to_string),
    })
}

fn create_network_acl_entry(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkAclId")?.to_string();
    let input = entry_input(c.params)?;
    c.mutate(|w, env| w.create_network_acl_entry(env, &id, &input))?;
    Ok(return_true())
}

fn replace_network_acl_entry(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkAclId")?.to_string();
    let input = entry_input(c.params)?;
    c.mutate(|w, env| w.replace_network_acl_entry(env, &id, &input))?;
    Ok(return_true())
}

fn delete_network_acl_entry(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("NetworkAclId")?.to_string();
    let n = c.params.required("RuleNumber")?.to_string();
    let egress = c
        .params
        .bool("Egress")?
        .ok_or_else(|| ApiError::missing("Egress"))?;
    c.mutate(|w, env| w.delete_network_acl_entry(env, &id, &n, egress))?;
    Ok(return_true())
}

fn replace_network_acl_association(c: &mut Call) -> ApiResult<Xml> {
    let assoc = c.params.required("AssociationId")?.to_string();
    let acl = c.params.required("NetworkAclId")?.to_string();
    let new = c.mutate(|w, env| w.replace_network_acl_association(env, &assoc, &acl))?;
    let mut x = Xml::new();
    x.leaf("newAssociationId", new);
    Ok(x)
}
