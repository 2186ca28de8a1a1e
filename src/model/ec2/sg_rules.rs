//! Security-group rules by id: ModifySecurityGroupRules,
//! UpdateSecurityGroupRuleDescriptionsIngress/Egress, and the two views of groups
//! referenced across VPC peering connections, DescribeSecurityGroupReferences and
//! DescribeStaleSecurityGroups.
//!
//! AWS rules kept here (EC2 API Reference and the VPC Peering Guide, "Update your
//! security groups to reference peer security groups"): a modified rule keeps its id,
//! direction and tags, and must not duplicate another rule of the group; a rule is
//! *stale* when it names a group of another VPC and no active peering connection joins
//! the two VPCs any more (the connection was deleted); references are listed from the
//! referenced group's side, one per VPC across a peering whose groups name it.

use super::sg::{Peer, PermissionInput, RULES_PER_DIRECTION, SecurityGroup, SgRule, describe_rule};
use crate::model::{ApiError, ApiResult, Env, World};

/// One rule of a group that names a group of another VPC no peering joins any more.
#[derive(Clone, Debug)]
pub struct StaleRule {
    pub rule: SgRule,
    /// The referenced group's VPC (if the group still exists).
    pub vpc_id: Option<String>,
    /// The last connection that joined the two VPCs, and its status.
    pub peering: Option<(String, String)>,
}

/// A group of the VPC with its stale rules.
#[derive(Clone, Debug)]
pub struct StaleGroup {
    pub group: SecurityGroup,
    pub rules: Vec<StaleRule>,
}

/// A VPC across a peering whose groups reference one of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupReference {
    pub group_id: String,
    pub referencing_vpc_id: String,
    pub vpc_peering_connection_id: String,
}

fn rule_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidSecurityGroupRuleId.NotFound",
        format!("The security group rule ID '{id}' does not exist"),
    )
}

impl World {
    /// ModifySecurityGroupRules: each rule (by id, of this group) is replaced by the
    /// one described, keeping its id, direction and tags.
    pub fn modify_security_group_rules(
        &mut self,
        env: &Env,
        group_id: &str,
        updates: &[(String, PermissionInput)],
    ) -> ApiResult<()> {
        if updates.is_empty() {
            return Err(ApiError::missing("SecurityGroupRule"));
        }
        let group = self.security_group(&env.region, group_id)?.clone();
        let mut rules = group.rules.clone();
        for (id, perm) in updates {
            let pos = rules
                .iter()
                .position(|r| &r.id == id)
                .ok_or_else(|| rule_not_found(id))?;
            let egress = rules[pos].egress;
            let mut made =
                self.expand_permissions(env, &group, egress, std::slice::from_ref(perm), false)?;
            if made.len() != 1 {
                return Err(ApiError::invalid_value(
                    "A security group rule update names exactly one of CidrIpv4, PrefixListId or ReferencedGroupId.",
                ));
            }
            let mut new = made.remove(0);
            new.id = id.clone();
            if rules.iter().any(|o| o.id != new.id && o.same_as(&new)) {
                return Err(ApiError::new(
                    "InvalidPermission.Duplicate",
                    format!(
                        "the specified rule \"{}\" already exists",
                        describe_rule(self, &new)
                    ),
                ));
            }
            rules[pos] = new;
        }
        for egress in [false, true] {
            let count: usize = rules
                .iter()
                .filter(|r| r.egress == egress)
                .map(|r| self.rule_weight(&env.region, r))
                .sum();
            if count > RULES_PER_DIRECTION {
                return Err(ApiError::new(
                    "RulesPerSecurityGroupLimitExceeded",
                    "The maximum number of rules per security group has been reached.",
                ));
            }
        }
        if let Some(g) = self.security_groups.get_mut(group_id) {
            g.rules = rules;
        }
        Ok(())
    }

    /// UpdateSecurityGroupRuleDescriptionsIngress/Egress, by rule id or by
    /// permissions (each names existing rules, whose descriptions it sets).
    pub fn update_rule_descriptions(
        &mut self,
        env: &Env,
        group_id: &str,
        egress: bool,
        by_id: &[(String, Option<String>)],
        perms: &[PermissionInput],
    ) -> ApiResult<()> {
        let group = self.security_group(&env.region, group_id)?.clone();
        let mut rules = group.rules.clone();
        for (id, description) in by_id {
            let r = rules
                .iter_mut()
                .find(|r| &r.id == id && r.egress == egress)
                .ok_or_else(|| rule_not_found(id))?;
            r.description = description.clone();
        }
        if !perms.is_empty() {
            for want in self.expand_permissions(env, &group, egress, perms, false)? {
                let r = rules.iter_mut().find(|r| r.same_as(&want)).ok_or_else(|| {
                    ApiError::new(
                        "InvalidPermission.NotFound",
                        "The specified rule does not exist in this security group.",
                    )
                })?;
                r.description = want.description.clone();
            }
        }
        if by_id.is_empty() && perms.is_empty() {
            return Err(ApiError::missing("IpPermissions"));
        }
        for d in rules.iter().filter_map(|r| r.description.as_ref()) {
            if d.chars().count() > 255 {
                return Err(ApiError::invalid_value(
                    "A rule description must be at most 255 characters.",
                ));
            }
        }
        if let Some(g) = self.security_groups.get_mut(group_id) {
            g.rules = rules;
        }
        Ok(())
    }

    /// DescribeSecurityGroupReferences: for each of `ids`, the VPCs across a peering
    /// connection whose groups have a rule naming it.
    pub fn security_group_references(
        &self,
        region: &str,
        ids: &[String],
    ) -> ApiResult<Vec<GroupReference>> {
        if ids.is_empty() {
            return Err(ApiError::missing("GroupId"));
        }
        let mut out = Vec::new();
        for id in ids {
            let g = self.security_group(region, id)?;
            for other in self.security_groups.iter() {
                if other.vpc_id == g.vpc_id
                    || !other
                        .rules
                        .iter()
                        .any(|r| r.peer == Peer::Group(id.clone()))
                {
                    continue;
                }
                let Some(pcx) = self.active_peering_between(&g.vpc_id, &other.vpc_id) else {
                    continue;
                };
                let reference = GroupReference {
                    group_id: id.clone(),
                    referencing_vpc_id: other.vpc_id.clone(),
                    vpc_peering_connection_id: pcx.id.clone(),
                };
                if !out.contains(&reference) {
                    out.push(reference);
                }
            }
        }
        Ok(out)
    }

    /// DescribeStaleSecurityGroups: the groups of `vpc_id` with rules naming a group of
    /// another VPC that no active peering connection joins to this one.
    pub fn stale_security_groups(&self, region: &str, vpc_id: &str) -> ApiResult<Vec<StaleGroup>> {
        self.vpc(region, vpc_id)?;
        let mut out = Vec::new();
        for g in self
            .security_groups
            .in_region(region)
            .filter(|g| g.vpc_id == vpc_id)
        {
            let mut stale = Vec::new();
            for r in &g.rules {
                let Peer::Group(other) = &r.peer else {
                    continue;
                };
                let other_vpc = self.security_groups.get(other).map(|o| o.vpc_id.clone());
                if other_vpc.as_deref() == Some(vpc_id) {
                    continue;
                }
                if other_vpc
                    .as_deref()
                    .is_some_and(|o| self.active_peering_between(vpc_id, o).is_some())
                {
                    continue;
                }
                // The newest connection that joined the two VPCs, whatever became of it.
                let peering = other_vpc.as_deref().and_then(|o| {
                    self.vpc_peering_connections
                        .iter()
                        .filter(|p| p.other_side(vpc_id).is_some_and(|s| s.vpc_id == o))
                        .max_by_key(|p| p.created)
                        .map(|p| (p.id.clone(), p.status.clone()))
                });
                stale.push(StaleRule {
                    rule: r.clone(),
                    vpc_id: other_vpc,
                    peering,
                });
            }
            if !stale.is_empty() {
                out.push(StaleGroup {
                    group: g.clone(),
                    rules: stale,
                });
            }
        }
        Ok(out)
    }
}
