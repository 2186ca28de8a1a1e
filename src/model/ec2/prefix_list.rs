//! Prefix lists. AWS-managed ones: `com.amazonaws.REGION.s3` and
//! `com.amazonaws.REGION.dynamodb`, the lists a gateway VPC endpoint's route names
//! (DescribePrefixLists, DescribeManagedPrefixLists, GetManagedPrefixListEntries); and
//! customer-managed ones ([`PrefixList`], stored): Create/Modify/Delete, versions,
//! RestoreManagedPrefixListVersion, GetManagedPrefixListAssociations.
//!
//! They are not stored: each Region has them from the start, and their CIDRs are the
//! service's endpoint address inside the world (the address plan's 198.51.100.0/26, as
//! the in-world resolver answers `s3.REGION.amazonaws.com`; [`service_address`], which
//! a test in `dns::public_names` holds equal to the resolver's answer). Their ids are
//! derived from the Region and service, so they are stable across restarts and differ by
//! Region as AWS's do.
//!
//! Gateway VPC endpoints route to these lists ([`super::vpc_endpoint`]).
//!
//! A route or a security-group rule may name either kind ([`World::prefix_list_cidrs`]);
//! `compile` expands it into one fabric route or rule per CIDR, so a modified list
//! governs the next packet. AWS rules kept here (VPC User Guide, "Customer-managed
//! prefix lists"): MaxEntries is fixed at creation but can be resized, never below the
//! entries the list holds, and not together with an entry change; adding or removing
//! entries makes a new version, renaming does not; a request naming a `CurrentVersion`
//! that is not the current one fails; restoring a version makes a new version with the
//! old entries; "the maximum number of entries for the prefix list counts as the same
//! number of rules" of a security group that references it, so a resize that would
//! push a referencing group over its quota fails; a list in use cannot be deleted.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World, parse_cidr};

/// The services with an AWS-managed prefix list (those with gateway endpoints).
pub const MANAGED_SERVICES: &[&str] = &["s3", "dynamodb"];

/// The address of a gateway service's endpoint inside every world (its offset inside
/// the address plan's `SERVICE_ENDPOINTS` block, as `dns::public_names` assigns it).
pub fn service_address(service: &str) -> Option<Ipv4Addr> {
    let offset = match service {
        "s3" => 2,
        "dynamodb" => 5,
        _ => return None,
    };
    let base = vpclab_netstack::internet::SERVICE_ENDPOINTS.network();
    Some(Ipv4Addr::from(u32::from(base) + offset))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManagedPrefixList {
    pub id: String,
    pub region: String,
    /// `com.amazonaws.REGION.SERVICE`.
    pub name: String,
    pub cidrs: Vec<Ipv4Net>,
}

impl Resource for ManagedPrefixList {
    // Never stored: the kind only satisfies the trait that filtering uses.
    const KIND: &'static str = "aws_managed_prefix_list";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for ManagedPrefixList {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "prefix-list-id" => vec![self.id.clone()],
            "prefix-list-name" => vec![self.name.clone()],
            "owner-id" => vec!["AWS".to_string()],
            _ => return None,
        })
    }
}

/// `pl-` and 8 hex digits from the Region and service name (FNV-1a).
fn derived_id(region: &str, service: &str) -> String {
    let h = format!("{region}/{service}")
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    format!("pl-{h:08x}")
}

/// The AWS-managed lists of `region`.
pub fn managed_prefix_lists(region: &str) -> Vec<ManagedPrefixList> {
    MANAGED_SERVICES
        .iter()
        .map(|service| ManagedPrefixList {
            id: derived_id(region, service),
            region: region.to_string(),
            name: format!("com.amazonaws.{region}.{service}"),
            cidrs: service_address(service)
                .map(|a| Ipv4Net::new(a, 32).expect("/32 is a valid prefix length"))
                .into_iter()
                .collect(),
        })
        .collect()
}

/// AWS quota: entries per customer-managed prefix list.
pub const MAX_ENTRIES_LIMIT: i64 = 1000;
/// AWS quota: customer-managed prefix lists per Region.
pub const LISTS_PER_REGION: usize = 100;
/// How many versions a list keeps for GetManagedPrefixListEntries and
/// RestoreManagedPrefixListVersion (the oldest are forgotten; AWS documents no bound).
pub const VERSIONS_KEPT: usize = 100;

/// One CIDR of a customer-managed list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixListEntry {
    #[serde(with = "crate::model::cidr_serde")]
    pub cidr: Ipv4Net,
    pub description: Option<String>,
}

/// A customer-managed prefix list (IPv4).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrefixList {
    pub id: String,
    pub region: String,
    pub name: String,
    pub max_entries: u32,
    /// `create-complete`, `modify-complete` or `restore-complete`: every change is
    /// complete when its call returns.
    pub state: String,
    /// (version, entries), oldest first; the last is the current version. At most
    /// [`VERSIONS_KEPT`].
    pub versions: Vec<(u64, Vec<PrefixListEntry>)>,
}

impl Resource for PrefixList {
    const KIND: &'static str = "prefix_list";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl PrefixList {
    pub fn version(&self) -> u64 {
        self.versions.last().map(|v| v.0).unwrap_or(1)
    }

    pub fn entries(&self) -> &[PrefixListEntry] {
        self.versions.last().map(|v| v.1.as_slice()).unwrap_or(&[])
    }

    /// The entries of `version`, if the list still keeps it.
    pub fn entries_at(&self, version: u64) -> Option<&[PrefixListEntry]> {
        self.versions
            .iter()
            .find(|v| v.0 == version)
            .map(|v| v.1.as_slice())
    }

    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:aws:ec2:{}:{account}:prefix-list/{}",
            self.region, self.id
        )
    }

    fn push_version(&mut self, entries: Vec<PrefixListEntry>) {
        let next = self.version() + 1;
        self.versions.push((next, entries));
        if self.versions.len() > VERSIONS_KEPT {
            self.versions.remove(0);
        }
    }
}

impl Filterable for PrefixList {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "prefix-list-id" => vec![self.id.clone()],
            "prefix-list-name" => vec![self.name.clone()],
            "owner-id" => vec![world.account.clone()],
            _ => return None,
        })
    }
}

pub fn prefix_list_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidPrefixListID.NotFound",
        format!("The prefix list ID '{id}' does not exist"),
    )
}

/// What a modification asks for (ModifyManagedPrefixList).
#[derive(Clone, Debug, Default)]
pub struct PrefixListChange {
    pub current_version: Option<i64>,
    pub name: Option<String>,
    pub add: Vec<(String, Option<String>)>,
    pub remove: Vec<String>,
    pub max_entries: Option<i64>,
}

/// A resource that names a prefix list (GetManagedPrefixListAssociations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixListAssociation {
    pub resource_id: String,
    pub resource_owner: String,
}

fn check_max_entries(n: i64) -> ApiResult<u32> {
    if !(1..=MAX_ENTRIES_LIMIT).contains(&n) {
        return Err(ApiError::invalid_value(format!(
            "The maximum number of entries ({n}) must be between 1 and {MAX_ENTRIES_LIMIT}."
        )));
    }
    Ok(n as u32)
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(ApiError::bad_param("prefixListName", name));
    }
    // AWS: "The name cannot start with com.amazonaws."
    if name.starts_with("com.amazonaws") {
        return Err(ApiError::invalid_value(
            "The prefix list name cannot start with 'com.amazonaws'.",
        ));
    }
    Ok(())
}

fn entry(cidr: &str, description: Option<String>) -> ApiResult<PrefixListEntry> {
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 255)
    {
        return Err(ApiError::invalid_value(
            "The description of a prefix list entry must be at most 255 characters.",
        ));
    }
    Ok(PrefixListEntry {
        cidr: parse_cidr("cidr", cidr)?,
        description,
    })
}

impl World {
    /// The CIDRs of prefix list `id` of `region` (what a route or rule naming it
    /// matches), AWS-managed or the account's own, or `None` when the Region has no
    /// such list.
    pub fn prefix_list_cidrs(&self, region: &str, id: &str) -> Option<Vec<Ipv4Net>> {
        if let Some(p) = self.prefix_lists.get(id).filter(|p| p.region == region) {
            return Some(p.entries().iter().map(|e| e.cidr).collect());
        }
        managed_prefix_lists(region)
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.cidrs)
    }

    /// How many rules a security-group rule naming list `id` counts as: a
    /// customer-managed list's MaxEntries (AWS: "counts as the same number of rules"),
    /// an AWS-managed list's number of CIDRs.
    pub fn prefix_list_weight(&self, region: &str, id: &str) -> usize {
        match self.prefix_lists.get(id) {
            Some(p) => p.max_entries as usize,
            None => self
                .prefix_list_cidrs(region, id)
                .map_or(1, |c| c.len().max(1)),
        }
    }

    pub fn prefix_list(&self, region: &str, id: &str) -> ApiResult<&PrefixList> {
        match self.prefix_lists.get(id) {
            Some(p) if p.region == region => Ok(p),
            _ => Err(prefix_list_not_found(id)),
        }
    }

    /// The route tables and security groups that name list `id`, in id order.
    pub fn prefix_list_associations(&self, id: &str) -> Vec<PrefixListAssociation> {
        let mut out: Vec<PrefixListAssociation> = self
            .security_groups
            .iter()
            .filter(|g| {
                g.rules
                    .iter()
                    .any(|r| r.peer == super::sg::Peer::PrefixList(id.to_string()))
            })
            .map(|g| g.id.clone())
            .chain(
                self.route_tables
                    .iter()
                    .filter(|t| {
                        t.routes.iter().any(|r| {
                            r.destination
                                == super::route_table::Destination::PrefixList(id.to_string())
                        })
                    })
                    .map(|t| t.id.clone()),
            )
            .map(|resource_id| PrefixListAssociation {
                resource_id,
                resource_owner: self.account.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
        out
    }

    /// CreateManagedPrefixList (IPv4 only).
    pub fn create_prefix_list(
        &mut self,
        env: &Env,
        name: &str,
        max_entries: i64,
        address_family: &str,
        entries: &[(String, Option<String>)],
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["prefix-list"])?;
        check_name(name)?;
        match address_family {
            "IPv4" => {}
            "IPv6" => {
                return Err(ApiError::new(
                    "Unsupported",
                    "IPv6 prefix lists are not supported by vpclab.",
                ));
            }
            other => return Err(ApiError::bad_param("addressFamily", other)),
        }
        let max = check_max_entries(max_entries)?;
        if self.prefix_lists.in_region(&env.region).count() >= LISTS_PER_REGION {
            return Err(ApiError::new(
                "PrefixListLimitExceeded",
                format!(
                    "You have reached the maximum of {LISTS_PER_REGION} prefix lists in this Region."
                ),
            ));
        }
        let mut list = Vec::new();
        for (cidr, d) in entries {
            let e = entry(cidr, d.clone())?;
            if list.iter().any(|o: &PrefixListEntry| o.cidr == e.cidr) {
                return Err(ApiError::invalid_value(format!(
                    "The prefix list entry {} is given more than once.",
                    e.cidr
                )));
            }
            list.push(e);
        }
        if list.len() > max as usize {
            return Err(too_many(list.len(), max));
        }
        let id = self.alloc_id("pl");
        self.prefix_lists.insert(PrefixList {
            id: id.clone(),
            region: env.region.clone(),
            name: name.to_string(),
            max_entries: max,
            state: "create-complete".into(),
            versions: vec![(1, list)],
        });
        self.apply_tag_specs(env, &id, "prefix-list", specs)?;
        Ok(id)
    }

    /// ModifyManagedPrefixList: rename, add/remove entries (a new version), or resize.
    pub fn modify_prefix_list(
        &mut self,
        env: &Env,
        id: &str,
        change: &PrefixListChange,
    ) -> ApiResult<()> {
        let list = self.prefix_list(&env.region, id)?.clone();
        check_version(&list, change.current_version)?;
        let entries_change = !change.add.is_empty() || !change.remove.is_empty();
        if entries_change && change.max_entries.is_some() {
            // AWS: "You cannot modify the entries of a prefix list and modify the size
            // of a prefix list at the same time."
            return Err(ApiError::combination(
                "You cannot modify the entries of a prefix list and modify the size of a prefix list at the same time.",
            ));
        }
        if let Some(n) = &change.name {
            check_name(n)?;
        }
        let mut next = list.clone();
        if let Some(n) = &change.name {
            next.name = n.clone();
        }
        if let Some(m) = change.max_entries {
            let max = check_max_entries(m)?;
            if (max as usize) < list.entries().len() {
                return Err(ApiError::invalid_value(format!(
                    "The prefix list {id} has {} entries: its maximum cannot be smaller.",
                    list.entries().len()
                )));
            }
            next.max_entries = max;
            self.check_resize(&env.region, id, max)?;
        }
        if entries_change {
            let mut entries = list.entries().to_vec();
            for c in &change.remove {
                let cidr = parse_cidr("cidr", c)?;
                let before = entries.len();
                entries.retain(|e| e.cidr != cidr);
                if entries.len() == before {
                    return Err(ApiError::invalid_value(format!(
                        "The prefix list {id} has no entry {cidr} to remove."
                    )));
                }
            }
            for (c, d) in &change.add {
                let e = entry(c, d.clone())?;
                if entries.iter().any(|o| o.cidr == e.cidr) {
                    return Err(ApiError::invalid_value(format!(
                        "The prefix list {id} already has an entry {}.",
                        e.cidr
                    )));
                }
                entries.push(e);
            }
            if entries.len() > list.max_entries as usize {
                return Err(too_many(entries.len(), list.max_entries));
            }
            next.push_version(entries);
        }
        next.state = "modify-complete".into();
        self.prefix_lists.insert(next);
        Ok(())
    }

    /// A resize to `max` fails when a group that references the list would then hold
    /// more than the rules quota in one direction.
    fn check_resize(&self, region: &str, id: &str, max: u32) -> ApiResult<()> {
        let mut over = Vec::new();
        for g in self.security_groups.in_region(region) {
            for egress in [false, true] {
                let names_it = g.rules.iter().any(|r| {
                    r.egress == egress && r.peer == super::sg::Peer::PrefixList(id.to_string())
                });
                if !names_it {
                    continue;
                }
                let count: usize = g
                    .rules
                    .iter()
                    .filter(|r| r.egress == egress)
                    .map(|r| match &r.peer {
                        super::sg::Peer::PrefixList(p) if p == id => max as usize,
                        _ => self.rule_weight(region, r),
                    })
                    .sum();
                if count > super::sg::RULES_PER_DIRECTION && !over.contains(&g.id) {
                    over.push(g.id.clone());
                }
            }
        }
        if over.is_empty() {
            return Ok(());
        }
        over.truncate(10);
        Err(ApiError::new(
            "PrefixListMaxEntriesExceeded",
            format!(
                "The new maximum size of prefix list {id} does not fit in the rules quota of: {}",
                over.join(", ")
            ),
        ))
    }

    /// RestoreManagedPrefixListVersion: the entries of `previous` become a new version.
    pub fn restore_prefix_list_version(
        &mut self,
        env: &Env,
        id: &str,
        previous: i64,
        current: i64,
    ) -> ApiResult<()> {
        let list = self.prefix_list(&env.region, id)?.clone();
        check_version(&list, Some(current))?;
        let old = u64::try_from(previous)
            .ok()
            .filter(|v| *v < list.version())
            .and_then(|v| list.entries_at(v))
            .ok_or_else(|| {
                ApiError::invalid_value(format!(
                    "The prefix list {id} has no previous version {previous}."
                ))
            })?
            .to_vec();
        if old.len() > list.max_entries as usize {
            return Err(too_many(old.len(), list.max_entries));
        }
        let mut next = list;
        next.push_version(old);
        next.state = "restore-complete".into();
        self.prefix_lists.insert(next);
        Ok(())
    }

    /// DeleteManagedPrefixList: not while a route or a security-group rule names it.
    pub fn delete_prefix_list(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        self.prefix_list(&env.region, id)?;
        let users = self.prefix_list_associations(id);
        if !users.is_empty() {
            let ids: Vec<&str> = users.iter().map(|a| a.resource_id.as_str()).collect();
            return Err(ApiError::dependency(format!(
                "The prefix list {id} is referenced by {}",
                ids.join(", ")
            )));
        }
        self.prefix_lists.remove(id);
        self.drop_tags(id);
        Ok(())
    }
}

fn too_many(n: usize, max: u32) -> ApiError {
    ApiError::new(
        "PrefixListMaxEntriesExceeded",
        format!("The prefix list would hold {n} entries; its maximum is {max}."),
    )
}

/// AWS: "If you specify a current version number that does not match the true current
/// version number, the request fails."
fn check_version(list: &PrefixList, given: Option<i64>) -> ApiResult<()> {
    match given {
        Some(v) if u64::try_from(v).ok() != Some(list.version()) => Err(ApiError::new(
            "PrefixListVersionMismatch",
            format!(
                "The prefix list {} is at version {}, not {v}.",
                list.id,
                list.version()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_per_region_with_stable_distinct_ids() {
        let east = managed_prefix_lists("us-east-1");
        let west = managed_prefix_lists("eu-west-1");
        assert_eq!(east[0].name, "com.amazonaws.us-east-1.s3");
        assert_eq!(east[1].name, "com.amazonaws.us-east-1.dynamodb");
        assert_ne!(east[0].id, west[0].id);
        assert_ne!(east[0].id, east[1].id);
        assert_eq!(east[0].id, managed_prefix_lists("us-east-1")[0].id);
        assert_eq!(east[0].cidrs[0].to_string(), "198.51.100.2/32");
    }

    use crate::model::Timestamp;
    use crate::model::ec2::sg::PermissionInput;

    fn world() -> (World, Env, String) {
        let e = Env::new("us-east-1", Timestamp(1_700_000_000_000));
        let mut w = World::new("000000000000");
        w.ensure_region(&e).unwrap();
        let vpc = w.default_vpc("us-east-1").unwrap().id.clone();
        let sg = w
            .create_security_group(&e, "web", "web", Some(&vpc), &[])
            .unwrap();
        (w, e, sg)
    }

    fn from_list(pl: &str) -> PermissionInput {
        PermissionInput {
            protocol: Some("tcp".into()),
            from_port: Some("443".into()),
            to_port: Some("443".into()),
            prefix_lists: vec![(pl.to_string(), None)],
            ..Default::default()
        }
    }

    fn code<T: std::fmt::Debug>(r: ApiResult<T>) -> String {
        r.unwrap_err().code.to_string()
    }

    #[test]
    fn versions_follow_entry_changes_and_a_stale_version_fails() {
        let (mut w, e, _) = world();
        let pl = w
            .create_prefix_list(
                &e,
                "office",
                3,
                "IPv4",
                &[("10.1.0.0/16".into(), None)],
                &[],
            )
            .unwrap();
        // A rename is not a new version.
        let rename = PrefixListChange {
            name: Some("offices".into()),
            ..Default::default()
        };
        w.modify_prefix_list(&e, &pl, &rename).unwrap();
        assert_eq!(w.prefix_lists.get(&pl).unwrap().version(), 1);
        let add = PrefixListChange {
            current_version: Some(1),
            add: vec![("10.2.0.0/16".into(), Some("branch".into()))],
            ..Default::default()
        };
        w.modify_prefix_list(&e, &pl, &add).unwrap();
        assert_eq!(w.prefix_lists.get(&pl).unwrap().version(), 2);
        // The same request again names version 1, which is no longer current.
        assert_eq!(
            code(w.modify_prefix_list(&e, &pl, &add)),
            "PrefixListVersionMismatch"
        );
        let full = PrefixListChange {
            add: vec![("10.3.0.0/16".into(), None), ("10.4.0.0/16".into(), None)],
            ..Default::default()
        };
        assert_eq!(
            code(w.modify_prefix_list(&e, &pl, &full)),
            "PrefixListMaxEntriesExceeded"
        );
        let both = PrefixListChange {
            add: vec![("10.3.0.0/16".into(), None)],
            max_entries: Some(10),
            ..Default::default()
        };
        assert_eq!(
            code(w.modify_prefix_list(&e, &pl, &both)),
            "InvalidParameterCombination"
        );
        let shrink = PrefixListChange {
            max_entries: Some(1),
            ..Default::default()
        };
        assert_eq!(
            code(w.modify_prefix_list(&e, &pl, &shrink)),
            "InvalidParameterValue"
        );
        assert_eq!(
            w.prefix_list_cidrs("us-east-1", &pl).unwrap().len(),
            2,
            "failed calls changed nothing"
        );
        let list = w.prefix_lists.get(&pl).unwrap();
        assert_eq!(list.entries_at(1).unwrap().len(), 1);
        assert_eq!(list.name, "offices");
    }

    #[test]
    fn max_entries_counts_against_the_rules_quota_and_a_list_in_use_stays() {
        let (mut w, e, sg) = world();
        let big = w
            .create_prefix_list(&e, "big", 60, "IPv4", &[], &[])
            .unwrap();
        // The group already has its one outbound rule; ingress is empty: 60 fits.
        w.authorize_security_group(&e, &sg, false, &[from_list(&big)], &[])
            .unwrap();
        let one = PermissionInput {
            protocol: Some("tcp".into()),
            from_port: Some("22".into()),
            to_port: Some("22".into()),
            cidrs: vec![("10.0.0.0/8".into(), None)],
            ..Default::default()
        };
        assert_eq!(
            code(w.authorize_security_group(&e, &sg, false, &[one], &[])),
            "RulesPerSecurityGroupLimitExceeded"
        );
        // Egress holds one rule, so a 60-entry list does not fit there.
        assert_eq!(
            code(w.authorize_security_group(&e, &sg, true, &[from_list(&big)], &[])),
            "RulesPerSecurityGroupLimitExceeded"
        );
        // Growing the list past the quota of a group that references it fails.
        let grow = PrefixListChange {
            max_entries: Some(61),
            ..Default::default()
        };
        assert_eq!(
            code(w.modify_prefix_list(&e, &big, &grow)),
            "PrefixListMaxEntriesExceeded"
        );
        assert_eq!(code(w.delete_prefix_list(&e, &big)), "DependencyViolation");
        assert_eq!(
            w.prefix_list_associations(&big),
            vec![PrefixListAssociation {
                resource_id: sg.clone(),
                resource_owner: "000000000000".into()
            }]
        );
        w.revoke_security_group(&e, &sg, false, &[from_list(&big)], &[])
            .unwrap();
        w.delete_prefix_list(&e, &big).unwrap();
        assert_eq!(
            code(w.authorize_security_group(&e, &sg, false, &[from_list(&big)], &[])),
            "InvalidPrefixListID.NotFound"
        );
    }

    #[test]
    fn names_and_sizes_are_checked() {
        let (mut w, e, _) = world();
        for (name, max, family, want) in [
            ("com.amazonaws.mine", 5, "IPv4", "InvalidParameterValue"),
            ("ok", 0, "IPv4", "InvalidParameterValue"),
            ("ok", 1001, "IPv4", "InvalidParameterValue"),
            ("ok", 5, "IPv6", "Unsupported"),
        ] {
            assert_eq!(
                code(w.create_prefix_list(&e, name, max, family, &[], &[])),
                want,
                "{name} {max} {family}"
            );
        }
        let two = [
            ("10.0.0.0/8".to_string(), None),
            ("10.0.0.0/8".to_string(), None),
        ];
        assert_eq!(
            code(w.create_prefix_list(&e, "dup", 5, "IPv4", &two, &[])),
            "InvalidParameterValue"
        );
        assert!(w.prefix_lists.is_empty());
    }
}
