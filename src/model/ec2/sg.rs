//! Security groups: Create/DeleteSecurityGroup, Authorize/Revoke ingress and egress
//! rules, DescribeSecurityGroups / DescribeSecurityGroupRules filters. AWS rules: names
//! are unique per VPC, `default` is reserved and the default group cannot be deleted; a
//! new group allows all outbound and no inbound; the default group also allows inbound
//! from its own members; a duplicate rule is `InvalidPermission.Duplicate`; a group in use
//! by an interface or referenced by another group cannot be deleted
//! (`DependencyViolation`); at most 60 rules per direction.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::model::filter::b;
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World, parse_cidr};

/// The other side of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Peer {
    Cidr(#[serde(with = "crate::model::cidr_serde")] Ipv4Net),
    /// Members of a security group (by id).
    Group(String),
    /// The CIDRs of a prefix list (by id), AWS-managed or customer-managed, as they are
    /// when the packet passes: the fabric sees one CIDR rule per entry.
    PrefixList(String),
    /// An IPv6 block (`Ipv6Ranges`, `cidrIpv6`).
    Cidr6(#[serde(with = "super::ipv6::cidr6_serde")] ipnet::Ipv6Net),
}

/// AWS quota: inbound (and, separately, outbound) rules per security group.
pub const RULES_PER_DIRECTION: usize = 60;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SgRule {
    /// `sgr-…`.
    pub id: String,
    pub egress: bool,
    /// `-1`, `tcp`, `udp`, `icmp`, or another IANA number as text.
    pub protocol: String,
    /// TCP/UDP port range, or ICMP type (from) and code (to); `None` for all traffic.
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub peer: Peer,
    pub description: Option<String>,
}

impl SgRule {
    /// Same traffic and peer (descriptions do not count), the duplicate test AWS applies.
    pub fn same_as(&self, o: &SgRule) -> bool {
        self.egress == o.egress
            && self.protocol == o.protocol
            && self.from_port == o.from_port
            && self.to_port == o.to_port
            && self.peer == o.peer
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub group_name: String,
    pub description: String,
    pub rules: Vec<SgRule>,
}

impl Resource for SecurityGroup {
    const KIND: &'static str = "security_group";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl SecurityGroup {
    pub(crate) fn new_default(world: &mut World, env: &Env, vpc_id: &str) -> SecurityGroup {
        let id = world.alloc_id("sg");
        let inbound = SgRule {
            id: world.alloc_id("sgr"),
            egress: false,
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            peer: Peer::Group(id.clone()),
            description: None,
        };
        let outbound = all_outbound(world);
        SecurityGroup {
            id,
            region: env.region.clone(),
            vpc_id: vpc_id.to_string(),
            group_name: "default".into(),
            description: "default VPC security group".into(),
            rules: vec![inbound, outbound],
        }
    }

    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:aws:ec2:{}:{}:security-group/{}",
            self.region, account, self.id
        )
    }

    pub fn is_default(&self) -> bool {
        self.group_name == "default"
    }
}

fn all_outbound(world: &mut World) -> SgRule {
    SgRule {
        id: world.alloc_id("sgr"),
        egress: true,
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        peer: Peer::Cidr(Ipv4Net::default()),
        description: None,
    }
}

impl Filterable for SecurityGroup {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        let dir = |egress: bool| self.rules.iter().filter(move |r| r.egress == egress);
        let proto = |r: &SgRule| r.protocol.clone();
        let cidr = |r: &SgRule| {
            if let Peer::Cidr(c) = &r.peer {
                Some(c.to_string())
            } else {
                None
            }
        };
        let cidr6 = |r: &SgRule| {
            if let Peer::Cidr6(c) = &r.peer {
                Some(c.to_string())
            } else {
                None
            }
        };
        let group = |r: &SgRule| {
            if let Peer::Group(g) = &r.peer {
                Some(g.clone())
            } else {
                None
            }
        };
        let gname = |r: &SgRule| {
            if let Peer::Group(g) = &r.peer {
                world.security_groups.get(g).map(|g| g.group_name.clone())
            } else {
                None
            }
        };
        let plist = |r: &SgRule| {
            if let Peer::PrefixList(p) = &r.peer {
                Some(p.clone())
            } else {
                None
            }
        };
        let from = |r: &SgRule| r.from_port.map(|p| p.to_string());
        let to = |r: &SgRule| r.to_port.map(|p| p.to_string());
        Some(match name {
            "group-id" => vec![self.id.clone()],
            "group-name" => vec![self.group_name.clone()],
            "description" => vec![self.description.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "owner-id" => vec![world.account.clone()],
            "ip-permission.protocol" => dir(false).map(proto).collect(),
            "ip-permission.cidr" => dir(false).filter_map(cidr).collect(),
            "ip-permission.ipv6-cidr" => dir(false).filter_map(cidr6).collect(),
            "egress.ip-permission.ipv6-cidr" => dir(true).filter_map(cidr6).collect(),
            "ip-permission.group-id" => dir(false).filter_map(group).collect(),
            "ip-permission.group-name" => dir(false).filter_map(gname).collect(),
            "ip-permission.prefix-list-id" => dir(false).filter_map(plist).collect(),
            "ip-permission.from-port" => dir(false).filter_map(from).collect(),
            "ip-permission.to-port" => dir(false).filter_map(to).collect(),
            "ip-permission.user-id" => dir(false)
                .filter_map(group)
                .map(|_| world.account.clone())
                .collect(),
            "egress.ip-permission.protocol" => dir(true).map(proto).collect(),
            "egress.ip-permission.cidr" => dir(true).filter_map(cidr).collect(),
            "egress.ip-permission.group-id" => dir(true).filter_map(group).collect(),
            "egress.ip-permission.group-name" => dir(true).filter_map(gname).collect(),
            "egress.ip-permission.prefix-list-id" => dir(true).filter_map(plist).collect(),
            "egress.ip-permission.from-port" => dir(true).filter_map(from).collect(),
            "egress.ip-permission.to-port" => dir(true).filter_map(to).collect(),
            _ => return None,
        })
    }
}

/// A rule together with the group that holds it, for DescribeSecurityGroupRules.
#[derive(Clone, Debug)]
pub struct RuleRow<'a> {
    pub group: &'a SecurityGroup,
    pub rule: &'a SgRule,
}

impl World {
    /// Filters for DescribeSecurityGroupRules (`group-id`, `security-group-rule-id`,
    /// `tag:`…: the rule's own tags).
    pub fn select_sg_rules<'a>(
        &'a self,
        region: &str,
        rule_ids: &[String],
        filters: &[crate::model::Filter],
    ) -> ApiResult<Vec<RuleRow<'a>>> {
        let rows: Vec<RuleRow<'a>> = self
            .security_groups
            .in_region(region)
            .flat_map(|g| g.rules.iter().map(move |r| RuleRow { group: g, rule: r }))
            .collect();
        for id in rule_ids {
            if !rows.iter().any(|r| &r.rule.id == id) {
                return Err(ApiError::new(
                    "InvalidSecurityGroupRuleId.NotFound",
                    format!("The security group rule ID '{id}' does not exist"),
                ));
            }
        }
        let mut out = Vec::new();
        'rows: for row in rows {
            if !rule_ids.is_empty() && !rule_ids.contains(&row.rule.id) {
                continue;
            }
            for f in filters {
                let have: Vec<String> = match f.name.as_str() {
                    "group-id" => vec![row.group.id.clone()],
                    "security-group-rule-id" => vec![row.rule.id.clone()],
                    "is-egress" => vec![b(row.rule.egress)],
                    n if n.starts_with("tag:") => self
                        .tags_of(&row.rule.id)
                        .and_then(|t| t.get(&n[4..]).cloned())
                        .into_iter()
                        .collect(),
                    "tag-key" => self
                        .tags_of(&row.rule.id)
                        .map(|t| t.keys().cloned().collect())
                        .unwrap_or_default(),
                    other => {
                        return Err(ApiError::invalid_value(format!(
                            "The filter '{other}' is invalid"
                        )));
                    }
                };
                if !f
                    .values
                    .iter()
                    .any(|w| have.iter().any(|h| crate::model::filter::wildcard(w, h)))
                {
                    continue 'rows;
                }
            }
            out.push(row);
        }
        Ok(out)
    }
}

pub fn sg_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
}

/// One `IpPermissions.N` entry (or the legacy flat parameters) as the API gives it.
#[derive(Clone, Debug, Default)]
pub struct PermissionInput {
    pub protocol: Option<String>,
    pub from_port: Option<String>,
    pub to_port: Option<String>,
    /// (cidr, description)
    pub cidrs: Vec<(String, Option<String>)>,
    /// (group id or None, group name or None, description)
    pub groups: Vec<(Option<String>, Option<String>, Option<String>)>,
    /// (IPv6 cidr, description)
    pub ipv6_cidrs: Vec<(String, Option<String>)>,
    /// (prefix list id, description)
    pub prefix_lists: Vec<(String, Option<String>)>,
}

/// Protocol as security groups show it: names for tcp/udp/icmp, `-1` for all.
pub fn sg_protocol(p: &str) -> ApiResult<String> {
    Ok(match p.to_ascii_lowercase().as_str() {
        "-1" | "all" => "-1".into(),
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "58".into(),
        other => {
            let n: u8 = other.parse().map_err(|_| {
                ApiError::invalid_value(format!(
                    "Invalid value '{p}' for IP protocol. Unknown protocol."
                ))
            })?;
            n.to_string()
        }
    })
}

impl World {
    /// How many rules `r` counts as against the quota (a prefix list's weight, else 1).
    pub fn rule_weight(&self, region: &str, r: &SgRule) -> usize {
        match &r.peer {
            Peer::PrefixList(p) => self.prefix_list_weight(region, p),
            _ => 1,
        }
    }

    pub fn security_group(&self, region: &str, id: &str) -> ApiResult<&SecurityGroup> {
        match self.security_groups.get(id) {
            Some(g) if g.region == region => Ok(g),
            _ => Err(sg_not_found(id)),
        }
    }

    pub fn default_sg(&self, vpc_id: &str) -> Option<&SecurityGroup> {
        self.security_groups
            .iter()
            .find(|g| g.vpc_id == vpc_id && g.is_default())
    }

    /// Resolves a group given by id or, as the default VPC allows, by name.
    pub fn resolve_group(
        &self,
        region: &str,
        id: Option<&str>,
        name: Option<&str>,
        vpc_hint: Option<&str>,
    ) -> ApiResult<&SecurityGroup> {
        if let Some(id) = id {
            return self.security_group(region, id);
        }
        let Some(name) = name else {
            return Err(ApiError::missing("GroupId"));
        };
        let vpc = match vpc_hint {
            Some(v) => Some(v.to_string()),
            None => self.default_vpc(region).map(|v| v.id.clone()),
        };
        self.security_groups
            .in_region(region)
            .find(|g| g.group_name == name && Some(&g.vpc_id) == vpc.as_ref())
            .ok_or_else(|| {
                ApiError::new(
                    "InvalidGroup.NotFound",
                    format!(
                        "The security group '{name}' does not exist in default VPC '{}'",
                        vpc.unwrap_or_default()
                    ),
                )
            })
    }

    /// CreateSecurityGroup. Without a VPC, the group goes in the default VPC.
    pub fn create_security_group(
        &mut self,
        env: &Env,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["security-group"])?;
        let vpc_id = match vpc_id {
            Some(v) => self.vpc(&env.region, v)?.id.clone(),
            None => self
                .default_vpc(&env.region)
                .map(|v| v.id.clone())
                .ok_or_else(|| {
                    ApiError::new("VPCIdNotSpecified", "No default VPC for this user")
                })?,
        };
        if name.is_empty() || name.chars().count() > 255 {
            return Err(ApiError::bad_param("groupName", name));
        }
        if name.to_ascii_lowercase().starts_with("sg-") {
            return Err(ApiError::invalid_value(
                "Group names may not be in the format sg-*.",
            ));
        }
        if name == "default" {
            return Err(ApiError::new(
                "InvalidGroup.Reserved",
                "The security group 'default' is reserved",
            ));
        }
        if description.chars().count() > 255 {
            return Err(ApiError::bad_param("groupDescription", description));
        }
        if self
            .security_groups
            .iter()
            .any(|g| g.vpc_id == vpc_id && g.group_name == name)
        {
            return Err(ApiError::new(
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
            ));
        }
        let id = self.alloc_id("sg");
        let mut rules = vec![all_outbound(self)];
        // AWS: a new group of a VPC with IPv6 also allows all outbound IPv6 traffic.
        if self.vpc_has_ipv6(&vpc_id) {
            let rid = self.alloc_id("sgr");
            rules.push(super::ipv6::all_ipv6_outbound(rid));
        }
        self.security_groups.insert(SecurityGroup {
            id: id.clone(),
            region: env.region.clone(),
            vpc_id,
            group_name: name.to_string(),
            description: description.to_string(),
            rules,
        });
        self.apply_tag_specs(env, &id, "security-group", specs)?;
        Ok(id)
    }

    /// DeleteSecurityGroup.
    pub fn delete_security_group(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let g = self.security_group(&env.region, id)?;
        if g.is_default() {
            return Err(ApiError::new(
                "CannotDelete",
                format!(
                    "the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"
                ),
            ));
        }
        if self
            .network_interfaces
            .iter()
            .any(|e| e.groups.iter().any(|x| x == id))
        {
            return Err(ApiError::dependency(format!(
                "resource {id} has a dependent object"
            )));
        }
        if self.security_groups.iter().any(|o| {
            o.id != id
                && o.rules
                    .iter()
                    .any(|r| r.peer == Peer::Group(id.to_string()))
        }) {
            return Err(ApiError::dependency(format!(
                "resource {id} has a dependent object"
            )));
        }
        if let Some(g) = self.security_groups.get(id) {
            for r in g.rules.clone() {
                self.drop_tags(&r.id);
            }
        }
        self.security_groups.remove(id);
        self.drop_tags(id);
        Ok(())
    }

    /// Expands permission inputs into rules (one per peer), validated.
    pub(super) fn expand_permissions(
        &mut self,
        env: &Env,
        group: &SecurityGroup,
        egress: bool,
        perms: &[PermissionInput],
        with_ids: bool,
    ) -> ApiResult<Vec<SgRule>> {
        let mut out = Vec::new();
        for p in perms {
            let protocol = sg_protocol(
                p.protocol
                    .as_deref()
                    .ok_or_else(|| ApiError::missing("IpProtocol"))?,
            )?;
            let num = |name: &str, v: &Option<String>| -> ApiResult<Option<i32>> {
                v.as_deref()
                    .map(|s| {
                        s.trim()
                            .parse::<i32>()
                            .map_err(|_| ApiError::bad_param(name, s))
                    })
                    .transpose()
            };
            let (mut from, mut to) = (num("fromPort", &p.from_port)?, num("toPort", &p.to_port)?);
            match protocol.as_str() {
                "tcp" | "udp" => {
                    let (Some(f), Some(t)) = (from, to) else {
                        return Err(ApiError::new(
                            "InvalidParameterValue",
                            format!(
                                "Invalid value 'null' for fromPort/toPort. Ports must be given for protocol {protocol}."
                            ),
                        ));
                    };
                    // AWS treats -1 to -1 on TCP/UDP as all ports.
                    if f == -1 && t == -1 {
                        from = Some(0);
                        to = Some(65535);
                    } else if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                        return Err(ApiError::new(
                            "InvalidParameterValue",
                            format!(
                                "Invalid port range {f}-{t}: ports must be 0-65535 and from <= to."
                            ),
                        ));
                    }
                }
                "icmp" | "58" => {
                    let f = from.unwrap_or(-1);
                    let t = to.unwrap_or(-1);
                    if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                        return Err(ApiError::invalid_value(format!(
                            "Invalid ICMP type {f} or code {t}."
                        )));
                    }
                    from = Some(f);
                    to = Some(t);
                }
                _ => {
                    from = None;
                    to = None;
                }
            }
            let mut peers: Vec<(Peer, Option<String>)> = Vec::new();
            for (c, d) in &p.ipv6_cidrs {
                peers.push((
                    Peer::Cidr6(super::ipv6::parse_cidr6("cidrIpv6", c).map_err(|_| {
                        ApiError::invalid_value(format!("CIDR block {c} is malformed"))
                    })?),
                    d.clone(),
                ));
            }
            for (c, d) in &p.cidrs {
                peers.push((
                    Peer::Cidr(parse_cidr("cidrIp", c).map_err(|_| {
                        ApiError::invalid_value(format!("CIDR block {c} is malformed"))
                    })?),
                    d.clone(),
                ));
            }
            for (gid, gname, d) in &p.groups {
                let g = self.resolve_group(
                    &env.region,
                    gid.as_deref(),
                    gname.as_deref(),
                    Some(&group.vpc_id),
                )?;
                // AWS: a rule may name a group of a VPC peered with this one (same
                // Region, active connection).
                let peered = g.region == group.region
                    && self
                        .active_peering_between(&group.vpc_id, &g.vpc_id)
                        .is_some();
                if g.vpc_id != group.vpc_id && !peered {
                    return Err(ApiError::invalid_value(format!(
                        "You have specified two resources that belong to different networks ({} and {}).",
                        g.id, group.id
                    )));
                }
                peers.push((Peer::Group(g.id.clone()), d.clone()));
            }
            for (pl, d) in &p.prefix_lists {
                if self.prefix_list_cidrs(&env.region, pl).is_none() {
                    return Err(super::prefix_list::prefix_list_not_found(pl));
                }
                peers.push((Peer::PrefixList(pl.clone()), d.clone()));
            }
            if peers.is_empty() {
                // AWS: a permission with no source/destination is invalid.
                return Err(ApiError::missing(
                    "IpPermissions.N.IpRanges or IpPermissions.N.UserIdGroupPairs",
                ));
            }
            for (peer, description) in peers {
                let id = if with_ids {
                    self.alloc_id("sgr")
                } else {
                    String::new()
                };
                out.push(SgRule {
                    id,
                    egress,
                    protocol: protocol.clone(),
                    from_port: from,
                    to_port: to,
                    peer,
                    description,
                });
            }
        }
        if out.is_empty() {
            return Err(ApiError::missing("IpPermissions"));
        }
        Ok(out)
    }

    /// AuthorizeSecurityGroupIngress/Egress. Returns the new rules (with their `sgr-` ids).
    pub fn authorize_security_group(
        &mut self,
        env: &Env,
        group_id: &str,
        egress: bool,
        perms: &[PermissionInput],
        specs: &[TagSpec],
    ) -> ApiResult<Vec<SgRule>> {
        World::check_tag_specs(specs, &["security-group-rule"])?;
        let group = self.security_group(&env.region, group_id)?.clone();
        let new = self.expand_permissions(env, &group, egress, perms, true)?;
        for (i, r) in new.iter().enumerate() {
            if group
                .rules
                .iter()
                .chain(new[..i].iter())
                .any(|o| o.same_as(r))
            {
                return Err(ApiError::new(
                    "InvalidPermission.Duplicate",
                    format!(
                        "the specified rule \"{}\" already exists",
                        describe_rule(self, r)
                    ),
                ));
            }
        }
        // AWS: a rule naming a prefix list counts as the list's MaxEntries rules.
        let count: usize = group
            .rules
            .iter()
            .chain(new.iter())
            .filter(|r| r.egress == egress)
            .map(|r| self.rule_weight(&env.region, r))
            .sum();
        if count > RULES_PER_DIRECTION {
            return Err(ApiError::new(
                "RulesPerSecurityGroupLimitExceeded",
                "The maximum number of rules per security group has been reached.",
            ));
        }
        for r in &new {
            self.apply_tag_specs(env, &r.id, "security-group-rule", specs)?;
        }
        if let Some(g) = self.security_groups.get_mut(group_id) {
            g.rules.extend(new.iter().cloned());
        }
        Ok(new)
    }

    /// RevokeSecurityGroupIngress/Egress by permissions or by rule ids.
    pub fn revoke_security_group(
        &mut self,
        env: &Env,
        group_id: &str,
        egress: bool,
        perms: &[PermissionInput],
        rule_ids: &[String],
    ) -> ApiResult<()> {
        let group = self.security_group(&env.region, group_id)?.clone();
        let mut remove: Vec<String> = Vec::new();
        for id in rule_ids {
            match group
                .rules
                .iter()
                .find(|r| &r.id == id && r.egress == egress)
            {
                Some(r) => remove.push(r.id.clone()),
                None => {
                    return Err(ApiError::new(
                        "InvalidSecurityGroupRuleId.NotFound",
                        format!("The security group rule ID '{id}' does not exist"),
                    ));
                }
            }
        }
        if !perms.is_empty() {
            for want in self.expand_permissions(env, &group, egress, perms, false)? {
                match group.rules.iter().find(|r| r.same_as(&want)) {
                    Some(r) => remove.push(r.id.clone()),
                    None => {
                        return Err(ApiError::new(
                            "InvalidPermission.NotFound",
                            "The specified rule does not exist in this security group.",
                        ));
                    }
                }
            }
        }
        if remove.is_empty() {
            return Err(ApiError::missing("IpPermissions"));
        }
        for id in &remove {
            self.drop_tags(id);
        }
        if let Some(g) = self.security_groups.get_mut(group_id) {
            g.rules.retain(|r| !remove.contains(&r.id));
        }
        Ok(())
    }
}

pub(super) fn describe_rule(world: &World, r: &SgRule) -> String {
    let peer = match &r.peer {
        Peer::Cidr(c) => c.to_string(),
        Peer::Cidr6(c) => c.to_string(),
        Peer::Group(g) => world
            .security_groups
            .get(g)
            .map(|x| format!("{} ({})", x.id, x.group_name))
            .unwrap_or(g.clone()),
        Peer::PrefixList(p) => p.clone(),
    };
    let proto = match r.protocol.as_str() {
        "-1" => "ALL".to_string(),
        p => p.to_ascii_uppercase(),
    };
    match (r.from_port, r.to_port) {
        (Some(f), Some(t)) => format!("peer: {peer}, {proto}, from port: {f}, to port: {t}, ALLOW"),
        _ => format!("peer: {peer}, {proto}, ALLOW"),
    }
}
