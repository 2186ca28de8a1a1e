//! Security group actions: Create/Delete/DescribeSecurityGroups,
//! DescribeSecurityGroupRules, Authorize/RevokeSecurityGroupIngress/Egress, in both the
//! `IpPermissions.N` form and the legacy flat form (`IpProtocol`, `FromPort`, `ToPort`,
//! `CidrIp`, `SourceSecurityGroupName`). Rules by id: ModifySecurityGroupRules,
//! UpdateSecurityGroupRuleDescriptionsIngress/Egress; across peerings:
//! DescribeSecurityGroupReferences, DescribeStaleSecurityGroups.

use crate::api::Call;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::model::ec2::sg::{Peer, PermissionInput, SecurityGroup, SgRule, sg_not_found};
use crate::model::ec2::sg_rules::{StaleGroup, StaleRule};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateSecurityGroup", create_security_group),
    ("DeleteSecurityGroup", delete_security_group),
    ("DescribeSecurityGroups", describe_security_groups),
    ("DescribeSecurityGroupRules", describe_security_group_rules),
    ("AuthorizeSecurityGroupIngress", authorize_ingress),
    ("AuthorizeSecurityGroupEgress", authorize_egress),
    ("RevokeSecurityGroupIngress", revoke_ingress),
    ("RevokeSecurityGroupEgress", revoke_egress),
    ("ModifySecurityGroupRules", modify_rules),
    (
        "UpdateSecurityGroupRuleDescriptionsIngress",
        update_descriptions_ingress,
    ),
    (
        "UpdateSecurityGroupRuleDescriptionsEgress",
        update_descriptions_egress,
    ),
    (
        "DescribeSecurityGroupReferences",
        describe_security_group_references,
    ),
    (
        "DescribeStaleSecurityGroups",
        describe_stale_security_groups,
    ),
];

/// (protocol, from port, to port, the rules sharing them)
type PermissionGroup<'a> = (String, Option<i32>, Option<i32>, Vec<&'a SgRule>);

/// Renders rules grouped into `IpPermission`s the way DescribeSecurityGroups shows them:
/// one entry per (protocol, ports), listing its CIDR and group peers.
fn render_permissions(x: &mut Xml, w: &World, name: &str, rules: &[&SgRule]) {
    let mut groups: Vec<PermissionGroup> = Vec::new();
    for r in rules {
        match groups
            .iter_mut()
            .find(|g| g.0 == r.protocol && g.1 == r.from_port && g.2 == r.to_port)
        {
            Some(g) => g.3.push(r),
            None => groups.push((r.protocol.clone(), r.from_port, r.to_port, vec![r])),
        }
    }
    x.set(name, groups, |x, (proto, from, to, rules)| {
        x.leaf("ipProtocol", &proto)
            .opt("fromPort", from)
            .opt("toPort", to)
            .set(
                "groups",
                rules.iter().filter_map(|r| match &r.peer {
                    Peer::Group(g) => Some((g, r)),
                    _ => None,
                }),
                |x, (g, r)| {
                    x.opt("description", r.description.as_deref())
                        .leaf("userId", &w.account)
                        .leaf("groupId", g);
                },
            )
            .set(
                "ipRanges",
                rules.iter().filter_map(|r| match &r.peer {
                    Peer::Cidr(c) => Some((c, r)),
                    _ => None,
                }),
                |x, (c, r)| {
                    x.leaf("cidrIp", c)
                        .opt("description", r.description.as_deref());
                },
            )
            .set(
                "ipv6Ranges",
                rules.iter().filter_map(|r| match &r.peer {
                    Peer::Cidr6(c) => Some((c, r)),
                    _ => None,
                }),
                |x, (c, r)| {
                    x.leaf("cidrIpv6", c)
                        .opt("description", r.description.as_deref());
                },
            )
            .set(
                "prefixListIds",
                rules.iter().filter_map(|r| match &r.peer {
                    Peer::PrefixList(p) => Some((p, r)),
                    _ => None,
                }),
                |x, (p, r)| {
                    x.opt("description", r.description.as_deref())
                        .leaf("prefixListId", p);
                },
            );
    });
}

fn render_sg(x: &mut Xml, w: &World, g: &SecurityGroup) {
    let ingress: Vec<&SgRule> = g.rules.iter().filter(|r| !r.egress).collect();
    let egress: Vec<&SgRule> = g.rules.iter().filter(|r| r.egress).collect();
    x.leaf("ownerId", &w.account)
        .leaf("groupId", &g.id)
        .leaf("groupName", &g.group_name)
        .leaf("groupDescription", &g.description);
    render_permissions(x, w, "ipPermissions", &ingress);
    render_permissions(x, w, "ipPermissionsEgress", &egress);
    x.leaf("vpcId", &g.vpc_id)
        .leaf("securityGroupArn", g.arn(&w.account));
    tag_set(x, w, &g.id);
}

fn render_rule(x: &mut Xml, w: &World, g: &SecurityGroup, r: &SgRule) {
    x.leaf("securityGroupRuleId", &r.id)
        .leaf("groupId", &g.id)
        .leaf("groupOwnerId", &w.account)
        .leaf("isEgress", tf(r.egress))
        .leaf("ipProtocol", &r.protocol)
        .leaf("fromPort", r.from_port.unwrap_or(-1))
        .leaf("toPort", r.to_port.unwrap_or(-1));
    match &r.peer {
        Peer::Cidr(c) => {
            x.leaf("cidrIpv4", c);
        }
        Peer::Cidr6(c) => {
            x.leaf("cidrIpv6", c);
        }
        Peer::Group(id) => {
            x.node("referencedGroupInfo", |x| {
                x.leaf("groupId", id).leaf("userId", &w.account);
            });
        }
        Peer::PrefixList(p) => {
            x.leaf("prefixListId", p);
        }
    }
    x.opt("description", r.description.as_deref()).leaf(
        "securityGroupRuleArn",
        format!(
            "arn:aws:ec2:{}:{}:security-group-rule/{}",
            g.region, w.account, r.id
        ),
    );
    tag_set(x, w, &r.id);
}

fn create_security_group(c: &mut Call) -> ApiResult<Xml> {
    let name = c.params.required("GroupName")?.to_string();
    let desc = c.params.required("GroupDescription")?.to_string();
    let vpc = c.params.get("VpcId").map(str::to_string);
    let specs = c.params.tag_specs()?;
    let id =
        c.mutate(|w, env| w.create_security_group(env, &name, &desc, vpc.as_deref(), &specs))?;
    let w = c.read()?;
    let g = w.security_groups.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.leaf("return", "true")
        .leaf("groupId", &g.id)
        .leaf("securityGroupArn", g.arn(&w.account));
    tag_set(&mut x, &w, &g.id);
    Ok(x)
}

/// The group a call addresses, by `GroupId` or (default VPC) `GroupName`.
fn group_id(c: &mut Call) -> ApiResult<String> {
    if let Some(id) = c.params.get("GroupId") {
        return Ok(id.to_string());
    }
    let name = c
        .params
        .get("GroupName")
        .ok_or_else(|| ApiError::missing("GroupId"))?
        .to_string();
    let w = c.read()?;
    Ok(w.resolve_group(&c.env.region, None, Some(&name), None)?
        .id
        .clone())
}

fn delete_security_group(c: &mut Call) -> ApiResult<Xml> {
    let id = group_id(c)?;
    c.mutate(|w, env| w.delete_security_group(env, &id))?;
    let mut x = return_true();
    x.leaf("groupId", id);
    Ok(x)
}

fn describe_security_groups(c: &mut Call) -> ApiResult<Xml> {
    let mut ids = c.params.list("GroupId");
    let names = c.params.list("GroupName");
    let filters = c.params.filters()?;
    let w = c.read()?;
    for n in &names {
        ids.push(
            w.resolve_group(&c.env.region, None, Some(n), None)?
                .id
                .clone(),
        );
    }
    let rows = w.select(
        &w.security_groups,
        &c.env.region,
        &ids,
        &filters,
        sg_not_found,
    )?;
    let (page, next) = paginate(c, rows, |g| &g.id)?;
    let mut x = Xml::new();
    x.set("securityGroupInfo", page, |x, g| render_sg(x, &w, g));
    x.opt("nextToken", next);
    Ok(x)
}

fn describe_security_group_rules(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("SecurityGroupRuleId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select_sg_rules(&c.env.region, &ids, &filters)?;
    let refs: Vec<&_> = rows.iter().collect();
    let (page, next) = paginate(c, refs, |r| &r.rule.id)?;
    let mut x = Xml::new();
    x.set("securityGroupRuleSet", page, |x, r| {
        render_rule(x, &w, r.group, r.rule)
    });
    x.opt("nextToken", next);
    Ok(x)
}

/// `IpPermissions.N.*` entries, or the legacy flat parameters as one permission.
fn permissions(p: &Params) -> ApiResult<Vec<PermissionInput>> {
    let mut out = Vec::new();
    for s in p.structs("IpPermissions") {
        out.push(PermissionInput {
            protocol: s.get("IpProtocol").map(str::to_string),
            from_port: s.get("FromPort").map(str::to_string),
            to_port: s.get("ToPort").map(str::to_string),
            cidrs: s
                .structs("IpRanges")
                .iter()
                .map(|r| {
                    Ok((
                        r.required("CidrIp")
                            .map_err(|_| ApiError::missing("IpPermissions.N.IpRanges.M.CidrIp"))?
                            .to_string(),
                        r.get("Description").map(str::to_string),
                    ))
                })
                .collect::<ApiResult<_>>()?,
            groups: s
                .structs("Groups")
                .iter()
                .map(|g| {
                    (
                        g.get("GroupId").map(str::to_string),
                        g.get("GroupName").map(str::to_string),
                        g.get("Description").map(str::to_string),
                    )
                })
                .collect(),
            ipv6_cidrs: s
                .structs("Ipv6Ranges")
                .iter()
                .map(|r| {
                    Ok((
                        r.required("CidrIpv6")
                            .map_err(|_| {
                                ApiError::missing("IpPermissions.N.Ipv6Ranges.M.CidrIpv6")
                            })?
                            .to_string(),
                        r.get("Description").map(str::to_string),
                    ))
                })
                .collect::<ApiResult<_>>()?,
            prefix_lists: s
                .structs("PrefixListIds")
                .iter()
                .map(|r| {
                    Ok((
                        r.required("PrefixListId")
                            .map_err(|_| {
                                ApiError::missing("IpPermissions.N.PrefixListIds.M.PrefixListId")
                            })?
                            .to_string(),
                        r.get("Description").map(str::to_string),
                    ))
                })
                .collect::<ApiResult<_>>()?,
        });
    }
    let flat = [
        "IpProtocol",
        "FromPort",
        "ToPort",
        "CidrIp",
        "SourceSecurityGroupName",
    ];
    if flat.iter().any(|k| p.get(k).is_some()) {
        let source = p.get("SourceSecurityGroupName").map(str::to_string);
        let protocol = p
            .get("IpProtocol")
            .map(str::to_string)
            .or_else(|| source.as_ref().map(|_| "-1".to_string()));
        out.push(PermissionInput {
            protocol,
            from_port: p.get("FromPort").map(str::to_string),
            to_port: p.get("ToPort").map(str::to_string),
            cidrs: p
                .get("CidrIp")
                .map(|c| vec![(c.to_string(), None)])
                .unwrap_or_default(),
            groups: source
                .map(|n| vec![(None, Some(n), None)])
                .unwrap_or_default(),
            ipv6_cidrs: Vec::new(),
            prefix_lists: Vec::new(),
        });
    }
    Ok(out)
}

fn authorize(c: &mut Call, egress: bool) -> ApiResult<Xml> {
    let id = group_id(c)?;
    let perms = permissions(c.params)?;
    if perms.is_empty() {
        return Err(ApiError::missing("IpPermissions"));
    }
    let specs = c.params.tag_specs()?;
    let rules = c.mutate(|w, env| w.authorize_security_group(env, &id, egress, &perms, &specs))?;
    let w = c.read()?;
    let g = w.security_groups.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = return_true();
    x.set("securityGroupRuleSet", &rules, |x, r| {
        render_rule(x, &w, g, r)
    });
    Ok(x)
}

fn revoke(c: &mut Call, egress: bool) -> ApiResult<Xml> {
    let id = group_id(c)?;
    let perms = permissions(c.params)?;
    let rule_ids = c.params.list("SecurityGroupRuleId");
    if perms.is_empty() && rule_ids.is_empty() {
        return Err(ApiError::missing("IpPermissions"));
    }
    c.mutate(|w, env| w.revoke_security_group(env, &id, egress, &perms, &rule_ids))?;
    Ok(return_true())
}

fn authorize_ingress(c: &mut Call) -> ApiResult<Xml> {
    authorize(c, false)
}

fn authorize_egress(c: &mut Call) -> ApiResult<Xml> {
    authorize(c, true)
}

fn revoke_ingress(c: &mut Call) -> ApiResult<Xml> {
    revoke(c, false)
}

fn revoke_egress(c: &mut Call) -> ApiResult<Xml> {
    revoke(c, true)
}

/// `SecurityGroupRule.N`: (rule id, the rule it becomes).
fn rule_updates(p: &Params) -> ApiResult<Vec<(String, PermissionInput)>> {
    p.structs("SecurityGroupRule")
        .iter()
        .map(|u| {
            let id = u
                .required("SecurityGroupRuleId")
                .map_err(|_| ApiError::missing("SecurityGroupRule.N.SecurityGroupRuleId"))?
                .to_string();
            let get = |k: &str| u.get(&format!("SecurityGroupRule.{k}")).map(str::to_string);
            let description = get("Description");
            let perm = PermissionInput {
                protocol: get("IpProtocol"),
                from_port: get("FromPort"),
                to_port: get("ToPort"),
                cidrs: get("CidrIpv4")
                    .map(|c| vec![(c, description.clone())])
                    .unwrap_or_default(),
                groups: get("ReferencedGroupId")
                    .map(|g| vec![(Some(g), None, description.clone())])
                    .unwrap_or_default(),
                prefix_lists: get("PrefixListId")
                    .map(|pl| vec![(pl, description.clone())])
                    .unwrap_or_default(),
                ipv6_cidrs: get("CidrIpv6")
                    .map(|c| vec![(c, description.clone())])
                    .unwrap_or_default(),
            };
            Ok((id, perm))
        })
        .collect()
}

fn modify_rules(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("GroupId")?.to_string();
    let updates = rule_updates(c.params)?;
    c.mutate(|w, env| w.modify_security_group_rules(env, &id, &updates))?;
    Ok(return_true())
}

fn update_descriptions(c: &mut Call, egress: bool) -> ApiResult<Xml> {
    let id = group_id(c)?;
    let perms = permissions(c.params)?;
    let by_id: Vec<(String, Option<String>)> = c
        .params
        .structs("SecurityGroupRuleDescription")
        .iter()
        .map(|d| {
            Ok((
                d.required("SecurityGroupRuleId")
                    .map_err(|_| {
                        ApiError::missing("SecurityGroupRuleDescription.N.SecurityGroupRuleId")
                    })?
                    .to_string(),
                d.get("Description").map(str::to_string),
            ))
        })
        .collect::<ApiResult<_>>()?;
    c.mutate(|w, env| w.update_rule_descriptions(env, &id, egress, &by_id, &perms))?;
    Ok(return_true())
}

fn update_descriptions_ingress(c: &mut Call) -> ApiResult<Xml> {
    update_descriptions(c, false)
}

fn update_descriptions_egress(c: &mut Call) -> ApiResult<Xml> {
    update_descriptions(c, true)
}

fn describe_security_group_references(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("GroupId");
    let w = c.read()?;
    let refs = w.security_group_references(&c.env.region, &ids)?;
    let mut x = Xml::new();
    x.set("securityGroupReferenceSet", &refs, |x, r| {
        x.leaf("groupId", &r.group_id)
            .leaf("referencingVpcId", &r.referencing_vpc_id)
            .leaf("vpcPeeringConnectionId", &r.vpc_peering_connection_id);
    });
    Ok(x)
}

fn render_stale(x: &mut Xml, w: &World, name: &str, rules: &[&StaleRule]) {
    x.set(name, rules, |x, s| {
        let r = &s.rule;
        x.leaf("ipProtocol", &r.protocol)
            .opt("fromPort", r.from_port)
            .opt("toPort", r.to_port)
            .set("groups", [s], |x, s| {
                let Peer::Group(g) = &s.rule.peer else {
                    return;
                };
                x.opt("description", s.rule.description.as_deref())
                    .leaf("groupId", g)
                    .opt(
                        "groupName",
                        w.security_groups.get(g).map(|g| g.group_name.clone()),
                    )
                    .opt("peeringStatus", s.peering.as_ref().map(|p| p.1.clone()))
                    .leaf("userId", &w.account)
                    .opt("vpcId", s.vpc_id.as_deref())
                    .opt(
                        "vpcPeeringConnectionId",
                        s.peering.as_ref().map(|p| p.0.clone()),
                    );
            });
    });
}

fn describe_stale_security_groups(c: &mut Call) -> ApiResult<Xml> {
    let vpc = c.params.required("VpcId")?.to_string();
    let w = c.read()?;
    let groups = w.stale_security_groups(&c.env.region, &vpc)?;
    let refs: Vec<&StaleGroup> = groups.iter().collect();
    let (page, next) = paginate(c, refs, |g| &g.group.id)?;
    let mut x = Xml::new();
    x.set("staleSecurityGroupSet", page, |x, g| {
        x.leaf("description", &g.group.description)
            .leaf("groupId", &g.group.id)
            .leaf("groupName", &g.group.group_name);
        let ingress: Vec<&StaleRule> = g.rules.iter().filter(|r| !r.rule.egress).collect();
        let egress: Vec<&StaleRule> = g.rules.iter().filter(|r| r.rule.egress).collect();
        render_stale(x, &w, "staleIpPermissions", &ingress);
        render_stale(x, &w, "staleIpPermissionsEgress", &egress);
        x.leaf("vpcId", &g.group.vpc_id);
    });
    x.opt("nextToken", next);
    Ok(x)
}
