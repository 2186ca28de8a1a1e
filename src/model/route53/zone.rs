//! Route 53 hosted zones and their record sets: the rules of CreateHostedZone,
//! ChangeResourceRecordSets (CREATE/DELETE/UPSERT, all-or-nothing, `InvalidChangeBatch`
//! with its list of messages), DeleteHostedZone (`HostedZoneNotEmpty`), VPC associations
//! of private zones, and change records for GetChange.
//!
//! Route 53 is a global service: its rows carry the region `"global"`. A zone is stored
//! as one row with all its record sets, so a change batch is one row write. What the
//! zones mean to DNS is compiled by `crate::dns::from_model`; HTTP and XML are `api`'s.

use std::cmp::Ordering;
use std::str::FromStr;

use hickory_proto::rr::{RData, RecordType};
use serde::{Deserialize, Serialize};

use super::rdata::parse_rdata;
pub use super::{bare_id, invalid_input};
use crate::model::{ApiError, ApiResult, Env, Resource, Timestamp, World};

/// The record types Route 53 accepts (botocore's `RRType`).
pub const RR_TYPES: &[&str] = &[
    "SOA", "A", "TXT", "NS", "CNAME", "MX", "NAPTR", "PTR", "SRV", "SPF", "AAAA", "CAA", "DS",
    "TLSA", "SSHFP", "SVCB", "HTTPS",
];

/// TTL of the SOA Route 53 creates with a zone.
pub const SOA_TTL: u32 = 900;
/// TTL of the NS set Route 53 creates with a zone.
pub const NS_TTL: u32 = 172_800;

/// A hosted zone, public or private.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostedZone {
    /// `Z…` (rendered as `/hostedzone/Z…`).
    pub id: String,
    /// Fully qualified, lower case, with the final dot (`example.com.`).
    pub name: String,
    pub caller_reference: String,
    pub comment: Option<String>,
    pub private: bool,
    /// VPC associations of a private zone.
    pub vpcs: Vec<ZoneVpc>,
    /// The delegation set (the name servers in the apex NS record).
    pub name_servers: Vec<String>,
    /// Record sets in Route 53's listing order (see [`rrset_order`]).
    pub record_sets: Vec<ResourceRecordSet>,
    pub created: Timestamp,
}

impl Resource for HostedZone {
    const KIND: &'static str = "route53_hosted_zone";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        "global"
    }
}

/// One VPC association of a private zone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ZoneVpc {
    pub region: String,
    pub vpc_id: String,
}

/// A resource record set as Route 53's API carries it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResourceRecordSet {
    /// Fully qualified, lower case, with the final dot; a wildcard label is `*`.
    pub name: String,
    /// The type as Route 53 spells it (`A`, `CNAME`, …).
    pub rtype: String,
    pub set_identifier: Option<String>,
    pub weight: Option<u8>,
    /// `PRIMARY` or `SECONDARY`.
    pub failover: Option<String>,
    pub multi_value_answer: Option<bool>,
    pub ttl: Option<u32>,
    /// Values in presentation format, as given.
    pub records: Vec<String>,
    pub alias: Option<AliasTarget>,
    pub health_check_id: Option<String>,
}

/// `AliasTarget` of a record set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AliasTarget {
    pub hosted_zone_id: String,
    pub dns_name: String,
    pub evaluate_target_health: bool,
}

/// A submitted change (for GetChange).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Change {
    /// `C…` (rendered as `/change/C…`).
    pub id: String,
    pub submitted_at: Timestamp,
    pub comment: Option<String>,
}

impl Resource for Change {
    const KIND: &'static str = "route53_change";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        "global"
    }
}

/// What CreateHostedZone asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateZoneInput {
    pub name: String,
    pub caller_reference: String,
    pub comment: Option<String>,
    pub private_zone: Option<bool>,
    pub vpc: Option<ZoneVpc>,
}

/// One `Change` of a ChangeBatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordChange {
    pub action: ChangeAction,
    pub set: ResourceRecordSet,
}

/// `CREATE`, `DELETE` or `UPSERT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeAction {
    Create,
    Delete,
    Upsert,
}

impl FromStr for ChangeAction {
    type Err = ApiError;
    fn from_str(s: &str) -> ApiResult<Self> {
        match s {
            "CREATE" => Ok(Self::Create),
            "DELETE" => Ok(Self::Delete),
            "UPSERT" => Ok(Self::Upsert),
            other => Err(invalid_input(format!(
                "Invalid XML ; cvc-enumeration-valid: Value '{other}' is not facet-valid with respect to enumeration '[CREATE, DELETE, UPSERT]'."
            ))),
        }
    }
}

impl ChangeAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Delete => "DELETE",
            Self::Upsert => "UPSERT",
        }
    }
}

// ---------------------------------------------------------------------------
// Errors, as Route 53 names them
// ---------------------------------------------------------------------------

/// `NoSuchHostedZone` (404).
pub fn no_such_zone(id: &str) -> ApiError {
    ApiError::new(
        "NoSuchHostedZone",
        format!("No hosted zone found with ID: {id}"),
    )
    .with_status(404)
}

/// `InvalidChangeBatch` (400): Route 53 lists every problem, as `[msg1, msg2]`.
pub fn invalid_change_batch(messages: &[String]) -> ApiError {
    ApiError::new("InvalidChangeBatch", format!("[{}]", messages.join(", ")))
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// Normalises a domain name as Route 53 stores it: lower case, final dot, `\052` → `*`.
/// `InvalidDomainName` for empty labels, labels over 63 or names over 255 octets.
pub fn normalize_name(name: &str) -> ApiResult<String> {
    let bad = || {
        ApiError::new(
            "InvalidDomainName",
            format!("{name} is not a valid domain name."),
        )
    };
    let key = super::rdata::name_key(name.trim());
    if key.is_empty() || key.len() > 253 {
        return Err(bad());
    }
    for label in key.split('.') {
        // Route 53 wants anything beyond ASCII as punycode (or octal escapes).
        if label.is_empty()
            || label.len() > 63
            || !label.is_ascii()
            || label
                .chars()
                .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err(bad());
        }
    }
    Ok(format!("{key}."))
}

/// Renders a stored name as Route 53 returns it: `*` octal-escaped as `\052`.
pub fn render_name(name: &str) -> String {
    name.replace('*', "\\052")
}

/// Route 53's listing order: names compared label by label from the right, then type,
/// then set identifier.
pub fn rrset_order(a: &ResourceRecordSet, b: &ResourceRecordSet) -> Ordering {
    let rev = |n: &str| -> Vec<String> {
        n.trim_end_matches('.')
            .rsplit('.')
            .map(str::to_owned)
            .collect()
    };
    rev(&a.name)
        .cmp(&rev(&b.name))
        .then_with(|| a.rtype.cmp(&b.rtype))
        .then_with(|| a.set_identifier.cmp(&b.set_identifier))
}

/// Names of zones in ListHostedZonesByName order (reversed labels).
pub fn zone_name_order(a: &str, b: &str) -> Ordering {
    let rev = |n: &str| -> Vec<String> {
        n.trim_end_matches('.')
            .rsplit('.')
            .map(str::to_owned)
            .collect()
    };
    rev(a).cmp(&rev(b))
}

fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

impl World {
    /// A Route 53 id: `prefix` + 20 upper-case base-36 characters, unique in this world.
    fn alloc_r53_id(&mut self, prefix: char) -> String {
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        loop {
            let mut id = String::with_capacity(21);
            id.push(prefix);
            let (mut a, mut b) = (self.alloc_bits(), self.alloc_bits());
            for i in 0..20 {
                let src = if i < 10 { &mut a } else { &mut b };
                id.push(char::from(DIGITS[(*src % 36) as usize]));
                *src /= 36;
            }
            if !self.hosted_zones.contains(&id) && !self.route53_changes.contains(&id) {
                return id;
            }
        }
    }

    /// Records a change for GetChange and returns it.
    fn record_change(&mut self, env: &Env, comment: Option<String>) -> Change {
        let change = Change {
            id: self.alloc_r53_id('C'),
            submitted_at: env.now,
            comment,
        };
        self.route53_changes.insert(change.clone());
        change
    }

    /// CreateHostedZone: a public zone, or a private one when a VPC is given; the SOA and
    /// NS record sets are created with it.
    pub fn create_hosted_zone(
        &mut self,
        env: &Env,
        input: CreateZoneInput,
    ) -> ApiResult<(HostedZone, Change)> {
        let name = normalize_name(&input.name)?;
        if input.caller_reference.is_empty() {
            return Err(invalid_input(
                "1 validation error detected: Value null at 'callerReference' failed to satisfy constraint: Member must not be null",
            ));
        }
        if self
            .hosted_zones
            .iter()
            .any(|z| z.caller_reference == input.caller_reference)
        {
            return Err(ApiError::new(
                "HostedZoneAlreadyExists",
                format!(
                    "A hosted zone has already been created with the specified caller reference: {}",
                    input.caller_reference
                ),
            )
            .with_status(409));
        }
        let private = input.vpc.is_some() || input.private_zone == Some(true);
        if private && input.vpc.is_none() {
            return Err(invalid_input(
                "When you're creating a private hosted zone (when you specify true for PrivateZone), you must also specify values for VPCId and VPCRegion.",
            ));
        }
        if let Some(vpc) = &input.vpc {
            self.check_vpc(vpc)?;
        }
        let id = self.alloc_r53_id('Z');
        let name_servers = if private {
            // Private zones get the same placeholder name servers in every account.
            vec![
                "ns-0.awsdns-00.com.".to_owned(),
                "ns-512.awsdns-00.net.".to_owned(),
                "ns-1024.awsdns-00.org.".to_owned(),
                "ns-1536.awsdns-00.co.uk.".to_owned(),
            ]
        } else {
            let bits = self.alloc_bits();
            let ns = |i: u64, tld: &str| {
                let n = (bits >> (i * 16)) % 512 + 512 * i;
                let m = (bits >> (i * 16 + 9)) % 64;
                format!("ns-{n}.awsdns-{m:02}.{tld}.")
            };
            vec![ns(0, "com"), ns(1, "net"), ns(2, "org"), ns(3, "co.uk")]
        };
        let soa = format!(
            "{} awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",
            name_servers[0]
        );
        let mut zone = HostedZone {
            id,
            name: name.clone(),
            caller_reference: input.caller_reference,
            comment: input.comment,
            private,
            vpcs: input.vpc.into_iter().collect(),
            name_servers: name_servers.clone(),
            record_sets: vec![
                ResourceRecordSet {
                    name: name.clone(),
                    rtype: "NS".into(),
                    ttl: Some(NS_TTL),
                    records: name_servers,
                    ..ResourceRecordSet::default()
                },
                ResourceRecordSet {
                    name,
                    rtype: "SOA".into(),
                    ttl: Some(SOA_TTL),
                    records: vec![soa],
                    ..ResourceRecordSet::default()
                },
            ],
            created: env.now,
        };
        zone.record_sets.sort_by(rrset_order);
        let change = self.record_change(env, None);
        self.hosted_zones.insert(zone.clone());
        Ok((zone, change))
    }

    fn check_vpc(&self, vpc: &ZoneVpc) -> ApiResult<()> {
        match self.vpcs.get(&vpc.vpc_id) {
            Some(v) if v.region == vpc.region => Ok(()),
            _ => Err(ApiError::new(
                "InvalidVPCId",
                format!(
                    "The VPC ID '{}' is not valid in region {}, or you don't have permission to use it.",
                    vpc.vpc_id, vpc.region
                ),
            )),
        }
    }

    /// A zone by id (`Z…` or `/hostedzone/Z…`).
    pub fn hosted_zone(&self, id: &str) -> ApiResult<&HostedZone> {
        let id = bare_id(id, "/hostedzone/");
        self.hosted_zones.get(id).ok_or_else(|| no_such_zone(id))
    }

    /// DeleteHostedZone: only when nothing but the apex SOA and NS remain.
    pub fn delete_hosted_zone(&mut self, env: &Env, id: &str) -> ApiResult<Change> {
        let zone = self.hosted_zone(id)?;
        let apex = zone.name.clone();
        let busy = zone
            .record_sets
            .iter()
            .any(|s| !(s.name == apex && (s.rtype == "SOA" || s.rtype == "NS")));
        if busy {
            return Err(ApiError::new(
                "HostedZoneNotEmpty",
                "The specified hosted zone contains non-required resource record sets and so cannot be deleted.",
            ));
        }
        let zone_id = zone.id.clone();
        self.hosted_zones.remove(&zone_id);
        Ok(self.record_change(env, None))
    }

    /// ChangeResourceRecordSets: applies the changes in order, all or nothing. Every
    /// problem is reported in one `InvalidChangeBatch`.
    pub fn change_record_sets(
        &mut self,
        env: &Env,
        id: &str,
        comment: Option<String>,
        changes: Vec<RecordChange>,
    ) -> ApiResult<Change> {
        let mut zone = self.hosted_zone(id)?.clone();
        if changes.is_empty() {
            return Err(invalid_input(
                "1 validation error detected: Value '[]' at 'changeBatch.changes' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        let mut messages = Vec::new();
        for change in changes {
            if let Err(e) = self.apply_change(&mut zone, change) {
                match e {
                    ChangeError::Batch(m) => messages.push(m),
                    ChangeError::Api(e) => return Err(e),
                }
            }
        }
        if !messages.is_empty() {
            return Err(invalid_change_batch(&messages));
        }
        zone.record_sets.sort_by(rrset_order);
        self.hosted_zones.insert(zone);
        Ok(self.record_change(env, comment))
    }

    fn apply_change(&self, zone: &mut HostedZone, change: RecordChange) -> Result<(), ChangeError> {
        let RecordChange { action, mut set } = change;
        set.name = normalize_name(&set.name).map_err(ChangeError::Api)?;
        validate_shape(action, &set)?;
        let label = describe(&set);
        if !in_zone(&set.name, &zone.name) {
            return Err(ChangeError::Batch(format!(
                "RRSet with DNS name {} is not permitted in zone {}",
                set.name, zone.name
            )));
        }
        let same = |s: &ResourceRecordSet| {
            s.name == set.name && s.rtype == set.rtype && s.set_identifier == set.set_identifier
        };
        let existing = zone.record_sets.iter().position(same);
        match action {
            ChangeAction::Delete => {
                let Some(at) = existing else {
                    return Err(ChangeError::Batch(format!(
                        "Tried to delete resource record set {label} but it was not found"
                    )));
                };
                if !same_content(&zone.record_sets[at], &set) {
                    return Err(ChangeError::Batch(format!(
                        "Tried to delete resource record set {label} but the values provided do not match the current values"
                    )));
                }
                if set.name == zone.name && (set.rtype == "SOA" || set.rtype == "NS") {
                    return Err(ChangeError::Batch(format!(
                        "A HostedZone must contain at least one NS record for the zone itself and exactly one SOA record; {label} cannot be deleted"
                    )));
                }
                zone.record_sets.remove(at);
                Ok(())
            }
            ChangeAction::Create | ChangeAction::Upsert => {
                if action == ChangeAction::Create && existing.is_some() {
                    return Err(ChangeError::Batch(format!(
                        "Tried to create resource record set {label} but it already exists"
                    )));
                }
                self.validate_content(zone, &set)?;
                match existing {
                    Some(at) => zone.record_sets[at] = set,
                    None => zone.record_sets.push(set),
                }
                Ok(())
            }
        }
    }

    /// The checks Route 53 makes on a set's content before creating it.
    fn validate_content(
        &self,
        zone: &HostedZone,
        set: &ResourceRecordSet,
    ) -> Result<(), ChangeError> {
        let batch = |m: String| Err(ChangeError::Batch(m));
        let is_apex = set.name == zone.name;
        if set.rtype == "CNAME" && is_apex {
            return batch(format!(
                "RRSet of type CNAME with DNS name {} is not permitted at apex in zone {}",
                set.name, zone.name
            ));
        }
        if (set.rtype == "SOA") && !is_apex {
            return batch(format!(
                "RRSet of type SOA with DNS name {} is not permitted because SOA records are only allowed at the zone apex",
                set.name
            ));
        }
        // RFC 1034 §3.6.2 as Route 53 enforces it: a CNAME owns its name alone.
        let others = zone.record_sets.iter().filter(|s| {
            s.name == set.name && !(s.rtype == set.rtype && s.set_identifier == set.set_identifier)
        });
        for other in others {
            if (other.rtype == "CNAME") != (set.rtype == "CNAME") {
                return batch(format!(
                    "RRSet of type CNAME with DNS name {} is not permitted as it conflicts with other records with the same DNS name in zone {}",
                    set.name, zone.name
                ));
            }
            if other.rtype == set.rtype && policy_of(other) != policy_of(set) {
                return batch(format!(
                    "RRSet with DNS name {}, type {}{} cannot be created as other RRSets exist with the same name and type but a different routing policy.",
                    set.name,
                    set.rtype,
                    set.set_identifier
                        .as_deref()
                        .map(|s| format!(", SetIdentifier {s}"))
                        .unwrap_or_default()
                ));
            }
        }
        if set.rtype == "CNAME" && set.records.len() > 1 {
            return batch(format!(
                "RRSet of type CNAME with DNS name {} contains more than one value",
                set.name
            ));
        }
        if let Some(alias) = &set.alias {
            let target_zone = bare_id(&alias.hosted_zone_id, "/hostedzone/");
            let target = normalize_name(&alias.dns_name).map_err(ChangeError::Api)?;
            if target_zone != zone.id {
                return batch(format!(
                    "Tried to create an alias that targets {target}, type {} in zone {target_zone}, but vpclab only supports alias targets in the same hosted zone",
                    set.rtype
                ));
            }
            if !in_zone(&target, &zone.name) {
                return batch(format!(
                    "Tried to create an alias that targets {target}, type {} in zone {target_zone}, but the alias target name does not lie within the target zone",
                    set.rtype
                ));
            }
            let found = zone
                .record_sets
                .iter()
                .any(|s| s.name == target && s.rtype == set.rtype);
            if !found {
                return batch(format!(
                    "Tried to create an alias that targets {target}, type {} in zone {target_zone}, but that target was not found",
                    set.rtype
                ));
            }
        }
        let rtype = RecordType::from_str(&set.rtype).ok();
        for value in &set.records {
            let parsed = rtype
                .ok_or(())
                .and_then(|t| parse_rdata(t, value).map_err(|_| ()));
            if let Err(()) = parsed {
                return batch(format!(
                    "Invalid Resource Record: 'FATAL problem: {} (Value is not a valid {} value) encountered with '{value}''",
                    illegal_code(&set.rtype),
                    set.rtype
                ));
            }
        }
        if let Some(id) = &set.health_check_id
            && !self.health_checks.contains(id)
        {
            return Err(ChangeError::Api(super::health::no_such_health_check(id)));
        }
        Ok(())
    }

    /// AssociateVPCWithHostedZone: private zones only.
    pub fn associate_vpc(&mut self, env: &Env, id: &str, vpc: ZoneVpc) -> ApiResult<Change> {
        let zone = self.hosted_zone(id)?;
        if !zone.private {
            return Err(ApiError::new(
                "PublicZoneVPCAssociation",
                "You're trying to associate a VPC with a public hosted zone. Amazon Route 53 doesn't support associating a VPC with a public hosted zone.",
            ));
        }
        self.check_vpc(&vpc)?;
        if zone.vpcs.iter().any(|v| v.vpc_id == vpc.vpc_id) {
            return Err(ApiError::new(
                "ConflictingDomainExists",
                format!(
                    "The VPC {} is already associated with the hosted zone {} with the same domain name.",
                    vpc.vpc_id, zone.id
                ),
            ));
        }
        let zone_id = zone.id.clone();
        if let Some(z) = self.hosted_zones.get_mut(&zone_id) {
            z.vpcs.push(vpc);
        }
        Ok(self.record_change(env, None))
    }

    /// DisassociateVPCFromHostedZone: never the last VPC.
    pub fn disassociate_vpc(&mut self, env: &Env, id: &str, vpc: ZoneVpc) -> ApiResult<Change> {
        let zone = self.hosted_zone(id)?;
        let Some(at) = zone.vpcs.iter().position(|v| v.vpc_id == vpc.vpc_id) else {
            return Err(ApiError::new(
                "VPCAssociationNotFound",
                format!(
                    "The specified VPC {} is not associated with the hosted zone {}.",
                    vpc.vpc_id, zone.id
                ),
            )
            .with_status(404));
        };
        if zone.vpcs.len() == 1 {
            return Err(ApiError::new(
                "LastVPCAssociation",
                "The VPC that you're trying to disassociate from the private hosted zone is the last VPC that is associated with the hosted zone. Amazon Route 53 doesn't support disassociating the last VPC from a hosted zone.",
            ));
        }
        let zone_id = zone.id.clone();
        if let Some(z) = self.hosted_zones.get_mut(&zone_id) {
            z.vpcs.remove(at);
        }
        Ok(self.record_change(env, None))
    }

    /// GetChange: every change is in sync as soon as it is acknowledged (vpclab answers
    /// DNS from the new state at once).
    pub fn route53_change(&self, id: &str) -> ApiResult<&Change> {
        let id = bare_id(id, "/change/");
        self.route53_changes.get(id).ok_or_else(|| {
            ApiError::new(
                "NoSuchChange",
                format!("A change with the specified change ID does not exist: {id}"),
            )
            .with_status(404)
        })
    }
}

enum ChangeError {
    /// One message of an `InvalidChangeBatch`.
    Batch(String),
    /// Any other error ends the request at once.
    Api(ApiError),
}

/// `[name='www.example.com.', type='A']` (with `set-identifier` when there is one), as
/// Route 53 names a record set in its messages.
fn describe(set: &ResourceRecordSet) -> String {
    match &set.set_identifier {
        Some(id) => format!(
            "[name='{}', type='{}', set-identifier='{id}']",
            set.name, set.rtype
        ),
        None => format!("[name='{}', type='{}']", set.name, set.rtype),
    }
}

fn illegal_code(rtype: &str) -> String {
    match rtype {
        "A" => "ARRDATAIllegalIPv4Address".to_owned(),
        "AAAA" => "AAAARRDATAIllegalIPv6Address".to_owned(),
        other => format!("{other}RRDATAIllegal"),
    }
}

/// Which routing policy a set belongs to, for Route 53's "same name and type, different
/// policy" rule.
fn policy_of(set: &ResourceRecordSet) -> &'static str {
    if set.weight.is_some() {
        "weighted"
    } else if set.failover.is_some() {
        "failover"
    } else if set.multi_value_answer.is_some() {
        "multivalue"
    } else {
        "simple"
    }
}

/// The request-shape rules (Route 53 answers them with `InvalidInput`).
fn validate_shape(action: ChangeAction, set: &ResourceRecordSet) -> Result<(), ChangeError> {
    let what = || {
        format!(
            "Change with [Action={}, Name={}, Type={}, SetIdentifier={}]",
            action.as_str(),
            set.name,
            set.rtype,
            set.set_identifier.as_deref().unwrap_or("null")
        )
    };
    let input = |m: String| Err(ChangeError::Api(invalid_input(m)));
    if !RR_TYPES.contains(&set.rtype.as_str()) {
        return input(format!(
            "Invalid XML ; cvc-enumeration-valid: Value '{}' is not facet-valid with respect to enumeration '{RR_TYPES:?}'.",
            set.rtype
        ));
    }
    let has_values = set.ttl.is_some() && !set.records.is_empty();
    match (&set.alias, has_values) {
        (Some(_), false) if set.ttl.is_none() && set.records.is_empty() => {}
        (None, true) => {}
        (None, false) if set.ttl.is_none() && set.records.is_empty() => {
            return input(format!(
                "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in {}",
                what()
            ));
        }
        _ => {
            return input(format!(
                "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found more than one in {}",
                what()
            ));
        }
    }
    let policies = [
        set.weight.is_some(),
        set.failover.is_some(),
        set.multi_value_answer.is_some(),
    ]
    .iter()
    .filter(|p| **p)
    .count();
    if policies > 1 {
        return input(format!(
            "Invalid request: Expected at most one of [Weight, Failover, MultiValueAnswer] in {}",
            what()
        ));
    }
    if policies == 1 && set.set_identifier.is_none() {
        return input(format!(
            "Invalid request: Missing field 'SetIdentifier' in {}",
            what()
        ));
    }
    if policies == 0 && set.set_identifier.is_some() {
        return input(format!(
            "Invalid request: Missing field 'Weight, Failover, or MultiValueAnswer' in {}",
            what()
        ));
    }
    if let Some(f) = &set.failover
        && f != "PRIMARY"
        && f != "SECONDARY"
    {
        return input(format!(
            "Invalid XML ; cvc-enumeration-valid: Value '{f}' is not facet-valid with respect to enumeration '[PRIMARY, SECONDARY]'."
        ));
    }
    if set.multi_value_answer.is_some() && set.alias.is_some() {
        return input(format!(
            "Invalid request: multivalue answer records cannot be alias records in {}",
            what()
        ));
    }
    Ok(())
}

/// Whether a DELETE names the stored set exactly (TTL, values, routing, alias).
fn same_content(stored: &ResourceRecordSet, given: &ResourceRecordSet) -> bool {
    let values_equal = || {
        if stored.records.len() != given.records.len() {
            return false;
        }
        let rtype = RecordType::from_str(&stored.rtype).ok();
        let parse = |v: &str| -> Option<RData> { rtype.and_then(|t| parse_rdata(t, v).ok()) };
        let mut a: Vec<String> = stored
            .records
            .iter()
            .map(|v| parse(v).map_or_else(|| v.clone(), |r| r.to_string()))
            .collect();
        let mut b: Vec<String> = given
            .records
            .iter()
            .map(|v| parse(v).map_or_else(|| v.clone(), |r| r.to_string()))
            .collect();
        a.sort();
        b.sort();
        a == b
    };
    let alias_equal = match (&stored.alias, &given.alias) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            super::rdata::name_key(&a.dns_name) == super::rdata::name_key(&b.dns_name)
                && a.evaluate_target_health == b.evaluate_target_health
        }
        _ => false,
    };
    stored.ttl == given.ttl
        && stored.weight == given.weight
        && stored.failover == given.failover
        && stored.multi_value_answer == given.multi_value_answer
        && stored.health_check_id == given.health_check_id
        && alias_equal
        && values_equal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_700_000_000_000))
    }

    fn world() -> World {
        let mut w = World::new("000000000000");
        w.ensure_region(&env()).expect("region");
        w
    }

    fn zone(w: &mut World, name: &str) -> String {
        let (z, _) = w
            .create_hosted_zone(
                &env(),
                CreateZoneInput {
                    name: name.into(),
                    caller_reference: format!("ref-{name}"),
                    ..CreateZoneInput::default()
                },
            )
            .expect("zone");
        z.id
    }

    fn a(name: &str, ttl: u32, values: &[&str]) -> ResourceRecordSet {
        ResourceRecordSet {
            name: name.into(),
            rtype: "A".into(),
            ttl: Some(ttl),
            records: values.iter().map(|v| (*v).to_owned()).collect(),
            ..ResourceRecordSet::default()
        }
    }

    fn change(action: ChangeAction, set: ResourceRecordSet) -> RecordChange {
        RecordChange { action, set }
    }

    #[test]
    fn a_new_zone_has_its_soa_and_ns() {
        let mut w = world();
        let id = zone(&mut w, "Example.COM");
        let z = w.hosted_zone(&id).expect("zone");
        assert_eq!(z.name, "example.com.");
        let types: Vec<&str> = z.record_sets.iter().map(|s| s.rtype.as_str()).collect();
        assert_eq!(types, vec!["NS", "SOA"]);
        assert_eq!(z.name_servers.len(), 4);
        assert!(id.starts_with('Z') && id.len() == 21);
    }

    #[test]
    fn the_same_caller_reference_twice_is_hosted_zone_already_exists() {
        let mut w = world();
        zone(&mut w, "example.com");
        let err = w
            .create_hosted_zone(
                &env(),
                CreateZoneInput {
                    name: "other.com".into(),
                    caller_reference: "ref-example.com".into(),
                    ..CreateZoneInput::default()
                },
            )
            .expect_err("duplicate reference");
        assert_eq!(err.code, "HostedZoneAlreadyExists");
        assert_eq!(err.status, 409);
    }

    #[test]
    fn create_twice_is_an_invalid_change_batch_naming_the_set() {
        let mut w = world();
        let id = zone(&mut w, "example.com");
        let www = a("www.example.com", 300, &["192.0.2.1"]);
        w.change_record_sets(
            &env(),
            &id,
            None,
            vec![change(ChangeAction::Create, www.clone())],
        )
        .expect("create");
        let err = w
            .change_record_sets(&env(), &id, None, vec![change(ChangeAction::Create, www)])
            .expect_err("duplicate");
        assert_eq!(err.code, "InvalidChangeBatch");
        assert_eq!(
            err.message,
            "[Tried to create resource record set [name='www.example.com.', type='A'] but it already exists]"
        );
    }

    #[test]
    fn a_failing_batch_changes_nothing() {
        let mut w = world();
        let id = zone(&mut w, "example.com");
        let err = w
            .change_record_sets(
                &env(),
                &id,
                None,
                vec![
                    change(
                        ChangeAction::Create,
                        a("ok.example.com", 60, &["192.0.2.1"]),
                    ),
                    change(
                        ChangeAction::Delete,
                        a("nope.example.com", 60, &["192.0.2.2"]),
                    ),
                ],
            )
            .expect_err("second change fails");
        assert!(
            err.message.contains("but it was not found"),
            "{}",
            err.message
        );
        assert_eq!(w.hosted_zone(&id).expect("zone").record_sets.len(), 2);
    }

    #[test]
    fn delete_must_match_the_current_values() {
        let mut w = world();
        let id = zone(&mut w, "example.com");
        w.change_record_sets(
            &env(),
            &id,
            None,
            vec![change(
                ChangeAction::Create,
                a("www.example.com", 300, &["192.0.2.1"]),
            )],
        )
        .expect("create");
        let err = w
            .change_record_sets(
                &env(),
                &id,
                None,
                vec![change(
                    ChangeAction::Delete,
                    a("www.example.com", 300, &["192.0.2.9"]),
                )],
            )
            .expect_err("mismatch");
        assert!(err.message.contains("do not match the current values"));
        w.change_record_sets(
            &env(),
            &id,
            None,
            vec![change(
                ChangeAction::Delete,
                a("WWW.example.com.", 300, &["192.0.2.1"]),
            )],
        )
        .expect("exact delete");
    }

    #[test]
    fn upsert_replaces() {
        let mut w = world();
        let id = zone(&mut w, "example.com");
        for v in ["192.0.2.1", "192.0.2.2"] {
            w.change_record_sets(
                &env(),
                &id,
                None,
                vec![change(
                    ChangeAction::Upsert,
                    a("www.example.com", 300, &[v]),
                )],
            )
            .expect("upsert");
        }
        let z = w.hosted_zone(&id).expect("zone");
        let www: Vec<_> = z.record_sets.iter().filter(|s| s.rtype == "A").collect();
        assert_eq!(www.len(), 1);
        assert_eq!(www[0].records, vec!["192.0.2.2"]);
    }

    #[test]
    fn cname_conflicts_and_apex_cname_are_refused() {
        let mut w = world();
        let id = zone(&mut w, "example.com");
        w.change_record_sets(
            &env(),
            &id,
            None,
            vec![change(
                ChangeAction::Create,
                a("www.example.com", 300, &["192.0.2.1"]),
            )],
        )
        .expect("a");
        let cname = |name: &str| ResourceRecordSet {
            name: name.into(),
            rtype: "CNAME".into(),
            ttl: Some(60),
            records: vec!["elsewhere.example.net".into()],
            ..ResourceRecordSet::default()
        };
        let err = w
            .change_record_sets(
                &env(),
                &id,
                None,
                vec![change(ChangeAction::Create, cname("www.example.com"))],
            )
            .expect_err("conflict");
        assert!(
            err.message.contains("conflicts with other records"),
            "{}",
            err.message
        );
        let err = w
            .change_record_sets(
                &env(),
                &id,
                None,
                vec![change(ChangeAction::Create, cname("example.com"))],
            )
            .expect_err("apex");
        assert!(
            err.message.contains("not permitted at apex"),
            "{}",
            err.message
        );
    }

    #[test]
    fn names_outside_the_zone_and_bad_values_are_refused() {
        let mut w = world();
        let id = zone(&mut w, "example.com");
        let err = w
            .change_record_sets(
                &env(),
                &id,
                None,
                vec![
                    change(
                        ChangeAction::Create,
                        a("www.example.org", 300, &["192.0.2.1"]),
                    ),
                    change(
                        ChangeAction::Create,
                        a("bad.example.com", 300, &["300.1.1.1"]),
                    ),
                ],
            )
            .expect_err("two problems");
        assert_eq!(err.code, "InvalidChangeBatch");
        assert!(
            err.message
                .contains("is not permitted in zone example.com.")
        );
        assert!(err.message.contains("ARRDATAIllegalIPv4Address"));
    }

    #[test]
    fn a_zone_with_records_cannot_be_deleted() {
        let mut w = world();
        let id = zone(&mut w, "example.com");
        let www = a("www.example.com", 300, &["192.0.2.1"]);
        w.change_record_sets(
            &env(),
            &id,
            None,
            vec![change(ChangeAction::Create, www.clone())],
        )
        .expect("create");
        let err = w.delete_hosted_zone(&env(), &id).expect_err("not empty");
        assert_eq!(err.code, "HostedZoneNotEmpty");
        w.change_record_sets(&env(), &id, None, vec![change(ChangeAction::Delete, www)])
            .expect("delete");
        w.delete_hosted_zone(&env(), &id).expect("now empty");
        assert_eq!(
            w.hosted_zone(&id).expect_err("gone").code,
            "NoSuchHostedZone"
        );
    }

    #[test]
    fn weighted_sets_need_a_set_identifier() {
        let mut w = world();
        let id = zone(&mut w, "example.com");
        let mut set = a("w.example.com", 60, &["192.0.2.1"]);
        set.weight = Some(10);
        let err = w
            .change_record_sets(&env(), &id, None, vec![change(ChangeAction::Create, set)])
            .expect_err("no identifier");
        assert_eq!(err.code, "InvalidInput");
    }

    #[test]
    fn private_zones_need_an_existing_vpc_and_keep_one() {
        let mut w = world();
        let vpc_id = w
            .vpcs
            .iter()
            .next()
            .map(|v| v.id.clone())
            .expect("default vpc");
        let vpc = ZoneVpc {
            region: "us-east-1".into(),
            vpc_id: vpc_id.clone(),
        };
        let (z, _) = w
            .create_hosted_zone(
                &env(),
                CreateZoneInput {
                    name: "corp.internal".into(),
                    caller_reference: "r1".into(),
                    vpc: Some(vpc.clone()),
                    ..CreateZoneInput::default()
                },
            )
            .expect("private zone");
        assert!(z.private);
        let err = w
            .disassociate_vpc(&env(), &z.id, vpc.clone())
            .expect_err("last");
        assert_eq!(err.code, "LastVPCAssociation");
        let bad = ZoneVpc {
            region: "us-east-1".into(),
            vpc_id: "vpc-00000000000000000".into(),
        };
        let err = w
            .associate_vpc(&env(), &z.id, bad)
            .expect_err("no such vpc");
        assert_eq!(err.code, "InvalidVPCId");
    }
}
