//! S3 Replication (Amazon S3 User Guide, "Replicating objects within and across
//! Regions"): a bucket's replication configuration, its validation, which rule a new
//! object version or delete marker matches, and the replicas themselves.
//!
//! Live replication only: a version written after the configuration is put is
//! replicated in the same commit as the write (so `x-amz-replication-status` is never
//! seen as `PENDING`: it reads `COMPLETED`, or `FAILED` when a destination is gone or no
//! longer versioned). Objects that existed before are not replicated (AWS needs S3 Batch
//! Replication for them, which vpclab does not emulate). Destinations are buckets of the
//! same account, in any region (vpclab keeps each account's buckets in one world).
//!
//! The replica's bytes: the model names no files, so [`World::replicate_version`] asks
//! its caller for a new blob holding the source's bytes (the API layer hard-links the
//! source's file); every version keeps owning its own blob, so deleting one never
//! frees the other's bytes.
//!
//! Rules quoted from the user guide and API reference:
//! - "Both source and destination buckets must have versioning enabled."
//! - PutBucketReplication: with a `Filter` (the V2 schema), `DeleteMarkerReplication`
//!   must be given; with only a `Prefix` (V1), `Priority` and `DeleteMarkerReplication`
//!   cannot be used.
//! - "If there are two or more rules with the same destination bucket, objects will be
//!   replicated according to the rule with the highest priority. The higher the number,
//!   the higher the priority."
//! - "How delete operations affect replication": a DELETE without a version id adds a
//!   delete marker, replicated by V1 rules and by V2 rules whose
//!   `DeleteMarkerReplication` is `Enabled` (never for tag-based rules); a DELETE of a
//!   version is not replicated; delete markers added by S3 Lifecycle are not replicated.
//! - "What isn't replicated": objects that are themselves replicas of another rule.
//!
//! The role: under IAM enforcement (`vpclab up --iam enforce`, or the account's own
//! switch) S3 acts as the rule set's `Role` ([`ReplicationRole`]), as the user guide's
//! "Setting up permissions for live replication" describes: the role's trust policy
//! must let `s3.amazonaws.com` assume it, and its identity policies must allow what
//! replication does (read the configuration and the version on the source, write the
//! replica on the destination). A role that is missing, cannot be assumed or lacks a
//! permission makes the version `FAILED` (the replication failure reasons
//! `AssumeRoleNotPermitted` and `SrcGetObjectNotPermitted` / `DstPutObjectNotPermitted`).
//! Without enforcement the role is not looked at, as before.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Bucket, S3Object, Version, object_id};
use crate::model::iam::policy::{self, Context, Policy};
use crate::model::{ApiError, ApiResult, Env, World};

/// The replication role as S3 holds it once assumed: its ARN and parsed identity
/// policies, against which each step of a replication is evaluated.
pub struct ReplicationRole {
    account: String,
    arn: String,
    name: String,
    region: String,
    now: crate::model::Timestamp,
    tags: BTreeMap<String, String>,
    policies: Vec<(String, Policy)>,
}

impl ReplicationRole {
    /// Whether the role's identity policies allow `action` on `resource` (explicit
    /// deny, then any allow, else implicit deny). Bucket policies of the source and the
    /// destination are not consulted (docs/fidelity.md).
    pub fn may(&self, action: &str, resource: &str) -> bool {
        let principal = format!(
            "arn:aws:sts::{}:assumed-role/{}/s3-replication",
            self.account, self.name
        );
        let mut ctx = Context::new(&self.account, &principal, action, resource);
        ctx.role_arn = Some(self.arn.clone());
        ctx.at(self.now)
            .set("aws:PrincipalArn", self.arn.clone())
            .set("aws:PrincipalAccount", self.account.clone())
            .set("aws:PrincipalType", "AssumedRole")
            .set("aws:RequestedRegion", self.region.clone())
            .set("aws:SecureTransport", "true");
        for (k, v) in &self.tags {
            ctx.set(&format!("aws:PrincipalTag/{k}"), v.clone());
        }
        let refs: Vec<(&str, &Policy)> =
            self.policies.iter().map(|(l, p)| (l.as_str(), p)).collect();
        policy::evaluate(&ctx, &refs, None).allowed
    }

    /// What S3 needs on the source before it replicates anything of `bucket`: its
    /// configuration and the listing ("s3:GetReplicationConfiguration and
    /// s3:ListBucket on the source bucket").
    fn may_read_source(&self, bucket: &str) -> bool {
        let arn = format!("arn:aws:s3:::{bucket}");
        self.may("s3:GetReplicationConfiguration", &arn) && self.may("s3:ListBucket", &arn)
    }
}

/// The S3 service principal that assumes replication roles.
const S3_SERVICE: &str = "s3.amazonaws.com";

/// `x-amz-replication-status` values (HeadObject API reference, "ReplicationStatus").
pub const PENDING: &str = "PENDING";
pub const COMPLETED: &str = "COMPLETED";
pub const FAILED: &str = "FAILED";
pub const REPLICA: &str = "REPLICA";

/// Whether a destination may name this storage class (API reference, Destination): the
/// classes of general purpose buckets, and `OUTPOSTS`.
fn destination_class(name: &str) -> bool {
    name == "OUTPOSTS" || super::StorageClass::parse(name).is_ok()
}

/// A bucket's replication configuration, as put (`Role` and rules).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// The IAM role S3 assumes to replicate (evaluated under IAM enforcement only,
    /// [`ReplicationRole`]).
    pub role: String,
    pub rules: Vec<Rule>,
}

/// Which objects a rule selects.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Filter {
    /// The V1 schema: `<Prefix>` directly under `<Rule>`.
    V1Prefix(String),
    /// The V2 schema: `<Filter>` with a `Prefix`, a `Tag`, or an `And` of a prefix and
    /// tags (an empty `<Filter/>` is a prefix of "").
    Prefix(String),
    Tag(String, String),
    And {
        prefix: String,
        tags: BTreeMap<String, String>,
    },
}

impl Filter {
    pub fn is_v1(&self) -> bool {
        matches!(self, Filter::V1Prefix(_))
    }

    /// Whether the filter looks at tags (delete markers have none to match).
    pub fn has_tags(&self) -> bool {
        match self {
            Filter::Tag(..) => true,
            Filter::And { tags, .. } => !tags.is_empty(),
            _ => false,
        }
    }

    pub fn matches(&self, key: &str, tags: &BTreeMap<String, String>) -> bool {
        match self {
            Filter::V1Prefix(p) | Filter::Prefix(p) => key.starts_with(p.as_str()),
            Filter::Tag(k, v) => tags.get(k) == Some(v),
            Filter::And { prefix, tags: want } => {
                key.starts_with(prefix.as_str()) && want.iter().all(|(k, v)| tags.get(k) == Some(v))
            }
        }
    }
}

/// One `<Rule>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    /// V2 only; absent means 0.
    pub priority: Option<i64>,
    pub enabled: bool,
    pub filter: Filter,
    /// V2 only: `Some(true)` when `DeleteMarkerReplication` is `Enabled`.
    pub delete_marker_replication: Option<bool>,
    /// Stored and returned; vpclab does not replicate existing objects either way.
    pub existing_object_replication: Option<bool>,
    pub destination: Destination,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Destination {
    /// The ARN as put (`arn:aws:s3:::NAME`).
    pub bucket_arn: String,
    pub storage_class: Option<String>,
    pub account: Option<String>,
}

impl Destination {
    /// The bucket name of the ARN (`None` when it is not an S3 bucket ARN).
    pub fn bucket(&self) -> Option<&str> {
        let name = self.bucket_arn.strip_prefix("arn:aws:s3:::")?;
        (!name.is_empty() && !name.contains(['/', ':'])).then_some(name)
    }
}

impl Rule {
    fn priority(&self) -> i64 {
        self.priority.unwrap_or(0)
    }

    /// Whether a delete marker on a key this rule selects is replicated by it.
    fn replicates_delete_markers(&self) -> bool {
        if self.filter.is_v1() {
            return true;
        }
        self.delete_marker_replication == Some(true) && !self.filter.has_tags()
    }
}

impl ReplicationConfig {
    /// The destination buckets a new version (`delete_marker` false) or a delete marker
    /// goes to, each with the rule that sends it there: among the enabled rules that
    /// select the key and tags, the one of highest priority per destination (ties go to
    /// the first rule).
    pub fn destinations(
        &self,
        key: &str,
        tags: &BTreeMap<String, String>,
        delete_marker: bool,
    ) -> Vec<(String, &Rule)> {
        let mut best: BTreeMap<String, &Rule> = BTreeMap::new();
        for r in &self.rules {
            let Some(dest) = r.destination.bucket() else {
                continue;
            };
            if !r.enabled || !r.filter.matches(key, tags) {
                continue;
            }
            match best.get(dest) {
                Some(prev) if prev.priority() >= r.priority() => {}
                _ => {
                    best.insert(dest.to_string(), r);
                }
            }
        }
        best.into_iter()
            .filter(|(_, r)| !delete_marker || r.replicates_delete_markers())
            .collect()
    }

    /// The checks that need no other bucket (schema rules of PutBucketReplication).
    pub fn check(&self) -> ApiResult<()> {
        if self.role.trim().is_empty() || self.rules.is_empty() || self.rules.len() > 1000 {
            return Err(malformed_xml());
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut priorities = std::collections::BTreeSet::new();
        for r in &self.rules {
            if r.id.chars().count() > 255 {
                return Err(ApiError::new(
                    "InvalidArgument",
                    "ID length should not exceed allowed limit of 255",
                ));
            }
            if !ids.insert(r.id.clone()) {
                return Err(ApiError::new("InvalidArgument", "Rule Id must be unique"));
            }
            if r.filter.is_v1() {
                if r.priority.is_some() {
                    return Err(schema_error("Priority", false));
                }
                if r.delete_marker_replication.is_some() {
                    return Err(schema_error("DeleteMarkerReplication", false));
                }
            } else {
                if r.delete_marker_replication.is_none() {
                    return Err(schema_error("DeleteMarkerReplication", true));
                }
                if r.delete_marker_replication == Some(true) && r.filter.has_tags() {
                    return Err(invalid_request(
                        "Delete marker replication is not supported if any Tag filter is specified.",
                    ));
                }
                if let Some(p) = r.priority {
                    if p < 0 {
                        return Err(malformed_xml());
                    }
                    if !priorities.insert(p) {
                        return Err(invalid_request(format!(
                            "Found overlapping priority {p} in the replication configuration: each rule needs its own priority."
                        )));
                    }
                }
            }
            if r.destination.bucket().is_none() {
                return Err(ApiError::new(
                    "InvalidArgument",
                    format!("Invalid bucket ARN: {}", r.destination.bucket_arn),
                ));
            }
            if let Some(c) = &r.destination.storage_class
                && !destination_class(c)
            {
                return Err(malformed_xml());
            }
        }
        Ok(())
    }
}

fn malformed_xml() -> ApiError {
    ApiError::new(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn invalid_request(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidRequest", message)
}

/// What S3 answers for an element the rule's schema version requires or forbids.
fn schema_error(element: &str, required: bool) -> ApiError {
    let rule = if required {
        "must be specified"
    } else {
        "cannot be used"
    };
    invalid_request(format!(
        "{element} {rule} for this version of Cross Region Replication configuration schema. Please refer to S3 Developer Guide for more information."
    ))
}

/// Refusal of PutBucketVersioning `Suspended` on a bucket that has a replication
/// configuration.
pub fn versioning_locked() -> ApiError {
    ApiError::new(
        "InvalidBucketState",
        "A replication configuration is present on this bucket, so you cannot change the versioning state. To change the versioning state, first delete the replication configuration.",
    )
    .with_status(409)
}

pub fn not_found() -> ApiError {
    ApiError::new(
        "ReplicationConfigurationNotFoundError",
        "The replication configuration was not found",
    )
    .with_status(404)
}

impl World {
    /// Whether S3 evaluates replication roles in this world: the daemon's `--iam
    /// enforce` or the account's own enforcement switch.
    fn replication_role_enforced(&self, env: &Env) -> bool {
        env.iam_enforce || self.iam_account().enforce
    }

    /// S3 assuming the replication role of `bucket`'s configuration: `None` when the
    /// ARN names no role of this account, or the role's trust policy does not allow
    /// `s3.amazonaws.com` to `sts:AssumeRole` (with `aws:SourceAccount` and
    /// `aws:SourceArn` naming the source bucket, the keys S3 sets when it assumes a
    /// role for a bucket).
    pub fn assume_replication_role(
        &self,
        env: &Env,
        role_arn: &str,
        bucket: &str,
    ) -> Option<ReplicationRole> {
        let name = role_arn
            .strip_prefix(&format!("arn:aws:iam::{}:role/", self.account))?
            .rsplit('/')
            .next()?;
        let role = self.role(name).ok().filter(|r| r.arn == role_arn)?;
        let trust = policy::parse(&role.trust, policy::Kind::Trust).ok()?;
        let mut ctx = Context::service(S3_SERVICE, "sts:AssumeRole", &role.arn);
        ctx.at(env.now)
            .set("aws:SourceAccount", self.account.clone())
            .set("aws:SourceArn", format!("arn:aws:s3:::{bucket}"));
        if !policy::evaluate(&ctx, &[], Some(("trust", &trust))).allowed {
            return None;
        }
        let policies = self
            .role_policy_documents(name)
            .into_iter()
            .filter_map(|(label, doc)| {
                Some((label, policy::parse(&doc, policy::Kind::Identity).ok()?))
            })
            .collect();
        let region = self
            .buckets
            .get(bucket)
            .map_or_else(|| env.region.clone(), |b| b.region.clone());
        Some(ReplicationRole {
            account: self.account.clone(),
            arn: role.arn.clone(),
            name: role.name.clone(),
            region,
            now: env.now,
            tags: role.tags.clone(),
            policies,
        })
    }

    /// PutBucketReplication: the source must have versioning enabled, and every
    /// destination must exist (in this account) with versioning enabled.
    pub fn put_bucket_replication(
        &mut self,
        bucket: &str,
        config: ReplicationConfig,
    ) -> ApiResult<()> {
        let b = self.bucket(bucket)?;
        config.check()?;
        if !b.versioning_enabled() {
            return Err(invalid_request(
                "Versioning must be 'Enabled' on the bucket to apply a replication configuration",
            ));
        }
        for r in &config.rules {
            if let Some(a) = &r.destination.account
                && *a != self.account
            {
                return Err(invalid_request(format!(
                    "vpclab replicates only between buckets of one account; the destination account {a} is not this account ({}).",
                    self.account
                )));
            }
            let name = r.destination.bucket().unwrap_or_default();
            if name == bucket {
                return Err(invalid_request(
                    "Destination bucket cannot be the same as the source bucket.",
                ));
            }
            match self.buckets.get(name) {
                None => return Err(invalid_request("Destination bucket must exist.")),
                Some(d) if !d.versioning_enabled() => {
                    return Err(invalid_request(
                        "Destination bucket must have versioning enabled.",
                    ));
                }
                Some(_) => {}
            }
        }
        self.update_bucket(bucket, |b| {
            b.replication = Some(config);
            Ok(())
        })
    }

    /// Replicates a version just written to `bucket` (PutObject, CopyObject,
    /// CompleteMultipartUpload), in the caller's commit. For every destination a rule
    /// sends it to, `copy_blob` is asked for a new blob holding the source blob's bytes
    /// (`None` when that failed); the replica is the same version (id, ETag, metadata,
    /// tags, checksum, parts) with status `REPLICA`, and the source's status becomes
    /// `COMPLETED`, or `FAILED` when a destination could not take it. Versions that
    /// match no rule are left without a status.
    pub fn replicate_version(
        &mut self,
        env: &Env,
        bucket: &str,
        key: &str,
        version_id: &str,
        copy_blob: &mut dyn FnMut(&str) -> Option<String>,
    ) {
        let Some(config) = self.buckets.get(bucket).and_then(|b| b.replication.clone()) else {
            return;
        };
        let id = object_id(bucket, key);
        let Some(source) = self
            .s3_objects
            .get(&id)
            .and_then(|o| o.versions.iter().find(|v| v.version_id == version_id))
            .filter(|v| !v.delete_marker && v.version_id != "null")
            // A replica is never replicated again.
            .filter(|v| v.replication_status.as_deref() != Some(REPLICA))
            .cloned()
        else {
            return;
        };
        let targets = config.destinations(key, &source.tags, false);
        if targets.is_empty() {
            return;
        }
        // Under enforcement S3 acts as the role: it must be assumable and allowed to
        // read the configuration and this version (its tags too when it has any); else
        // nothing is replicated and the version is FAILED.
        let role = if self.replication_role_enforced(env) {
            let object = format!("arn:aws:s3:::{bucket}/{key}");
            let readable = self
                .assume_replication_role(env, &config.role, bucket)
                .filter(|r| r.may_read_source(bucket))
                .filter(|r| r.may("s3:GetObjectVersionForReplication", &object))
                .filter(|r| source.tags.is_empty() || r.may("s3:GetObjectVersionTagging", &object));
            match readable {
                Some(r) => Some(r),
                None => {
                    self.set_replication_status(bucket, key, version_id, FAILED);
                    return;
                }
            }
        } else {
            None
        };
        let mut failed = false;
        for (dest, rule) in targets {
            // The role writes the replica (and its tags) into the destination.
            let replica_arn = format!("arn:aws:s3:::{dest}/{key}");
            if let Some(r) = &role
                && !(r.may("s3:ReplicateObject", &replica_arn)
                    && (source.tags.is_empty() || r.may("s3:ReplicateTags", &replica_arn)))
            {
                failed = true;
                continue;
            }
            let Some(d) = self
                .buckets
                .get(&dest)
                .filter(|d| d.versioning_enabled())
                .cloned()
            else {
                failed = true;
                continue;
            };
            let Some(blob) = copy_blob(&source.blob) else {
                failed = true;
                continue;
            };
            // The rule's `Destination/StorageClass`, else the source's class ("By
            // default, Amazon S3 uses the storage class of the source object").
            let storage_class = rule
                .destination
                .storage_class
                .as_deref()
                .and_then(|c| super::StorageClass::parse(c).ok())
                .unwrap_or(source.storage_class);
            let replica = Version {
                blob,
                replication_status: Some(REPLICA.to_string()),
                storage_class,
                restore: None,
                ..source.clone()
            };
            self.push_replica(&d, key, replica);
        }
        let status = if failed { FAILED } else { COMPLETED };
        self.set_replication_status(bucket, key, version_id, status);
    }

    /// Replicates a delete marker just added to `bucket` by a DELETE without a version
    /// id: to every destination whose rule replicates delete markers, as a marker with
    /// the same version id. A destination that cannot take it is skipped (S3 reports no
    /// status for delete markers).
    pub(super) fn replicate_delete_marker(
        &mut self,
        env: &Env,
        bucket: &str,
        key: &str,
        vid: &str,
    ) {
        // Delete markers added by S3 Lifecycle are not replicated.
        if env.action == "vpclab:S3Lifecycle" {
            return;
        }
        let Some(config) = self.buckets.get(bucket).and_then(|b| b.replication.clone()) else {
            return;
        };
        let Some(marker) = self
            .s3_objects
            .get(&object_id(bucket, key))
            .and_then(|o| o.versions.iter().find(|v| v.version_id == vid))
            .filter(|v| v.delete_marker && v.version_id != "null")
            .cloned()
        else {
            return;
        };
        let targets = config.destinations(key, &BTreeMap::new(), true);
        if targets.is_empty() {
            return;
        }
        // Under enforcement the role must be assumable, read the source's
        // configuration and hold s3:ReplicateDelete on the destination.
        let role = if self.replication_role_enforced(env) {
            match self
                .assume_replication_role(env, &config.role, bucket)
                .filter(|r| r.may_read_source(bucket))
            {
                Some(r) => Some(r),
                None => return,
            }
        } else {
            None
        };
        for (dest, _rule) in targets {
            if let Some(r) = &role
                && !r.may("s3:ReplicateDelete", &format!("arn:aws:s3:::{dest}/{key}"))
            {
                continue;
            }
            if let Some(d) = self
                .buckets
                .get(&dest)
                .filter(|d| d.versioning_enabled())
                .cloned()
            {
                let replica = Version {
                    replication_status: Some(REPLICA.to_string()),
                    ..marker.clone()
                };
                self.push_replica(&d, key, replica);
            }
        }
    }

    /// Adds a replica as the destination key's current version.
    fn push_replica(&mut self, dest: &Bucket, key: &str, version: Version) {
        let id = object_id(&dest.id, key);
        let mut obj = self.s3_objects.get(&id).cloned().unwrap_or(S3Object {
            id: id.clone(),
            region: dest.region.clone(),
            bucket: dest.id.clone(),
            key: key.to_string(),
            versions: Vec::new(),
        });
        // The same version id cannot be there twice (a retried replication).
        obj.versions.retain(|v| v.version_id != version.version_id);
        obj.versions.push(version);
        self.s3_objects.insert(obj);
    }

    fn set_replication_status(&mut self, bucket: &str, key: &str, vid: &str, status: &str) {
        if let Some(obj) = self.s3_objects.get_mut(&object_id(bucket, key))
            && let Some(v) = obj.versions.iter_mut().find(|v| v.version_id == vid)
        {
            v.replication_status = Some(status.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, priority: Option<i64>, filter: Filter, dest: &str) -> Rule {
        Rule {
            id: id.into(),
            priority,
            enabled: true,
            delete_marker_replication: (!filter.is_v1()).then_some(false),
            existing_object_replication: None,
            filter,
            destination: Destination {
                bucket_arn: format!("arn:aws:s3:::{dest}"),
                storage_class: None,
                account: None,
            },
        }
    }

    fn config(rules: Vec<Rule>) -> ReplicationConfig {
        ReplicationConfig {
            role: "arn:aws:iam::000000000000:role/replication".into(),
            rules,
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// "If there are two or more rules with the same destination bucket, objects will be
    /// replicated according to the rule with the highest priority. The higher the
    /// number, the higher the priority."
    #[test]
    fn the_highest_priority_rule_per_destination_wins() {
        let mut low = rule("low", Some(1), Filter::Prefix("logs/".into()), "dst");
        low.delete_marker_replication = Some(true);
        let high = rule("high", Some(5), Filter::Prefix("".into()), "dst");
        let other = rule("other", Some(2), Filter::Prefix("logs/".into()), "dst2");
        let c = config(vec![low, high, other]);
        c.check().expect("valid");
        let d = c.destinations("logs/a", &BTreeMap::new(), false);
        let got: Vec<(&str, &str)> = d.iter().map(|(b, r)| (b.as_str(), r.id.as_str())).collect();
        assert_eq!(got, vec![("dst", "high"), ("dst2", "other")]);
        // The winning rule for dst does not replicate delete markers, so none go there.
        assert!(c.destinations("logs/a", &BTreeMap::new(), true).is_empty());
        // Outside the prefix only the catch-all rule applies.
        let d = c.destinations("img/a", &BTreeMap::new(), false);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].1.id, "high");
    }

    #[test]
    fn filters_select_by_prefix_tag_and_both() {
        let t = tags(&[("team", "blue"), ("env", "prod")]);
        assert!(Filter::Prefix("a/".into()).matches("a/x", &t));
        assert!(!Filter::Prefix("a/".into()).matches("b/x", &t));
        assert!(Filter::Tag("team".into(), "blue".into()).matches("any", &t));
        assert!(!Filter::Tag("team".into(), "red".into()).matches("any", &t));
        let and = Filter::And {
            prefix: "a/".into(),
            tags: tags(&[("team", "blue"), ("env", "prod")]),
        };
        assert!(and.matches("a/x", &t));
        assert!(!and.matches("b/x", &t));
        assert!(!and.matches("a/x", &tags(&[("team", "blue")])));
        assert!(Filter::V1Prefix(String::new()).matches("anything", &t));
    }

    #[test]
    fn disabled_rules_select_nothing() {
        let mut r = rule("r", None, Filter::V1Prefix(String::new()), "dst");
        r.enabled = false;
        assert!(
            config(vec![r])
                .destinations("k", &BTreeMap::new(), false)
                .is_empty()
        );
    }

    /// "How delete operations affect replication": V1 rules replicate delete markers,
    /// V2 rules only with DeleteMarkerReplication Enabled, never tag-based ones.
    #[test]
    fn delete_markers_follow_the_schema_version() {
        let v1 = config(vec![rule("v1", None, Filter::V1Prefix("".into()), "dst")]);
        assert_eq!(v1.destinations("k", &BTreeMap::new(), true).len(), 1);
        let mut on = rule("on", Some(1), Filter::Prefix("".into()), "dst");
        on.delete_marker_replication = Some(true);
        assert_eq!(
            config(vec![on])
                .destinations("k", &BTreeMap::new(), true)
                .len(),
            1
        );
        let off = rule("off", Some(1), Filter::Prefix("".into()), "dst");
        assert!(
            config(vec![off])
                .destinations("k", &BTreeMap::new(), true)
                .is_empty()
        );
    }

    #[test]
    fn schema_rules_are_checked_as_s3_checks_them() {
        let code = |c: ReplicationConfig| c.check().expect_err("refused").code;
        // V2 without DeleteMarkerReplication.
        let mut r = rule("a", Some(1), Filter::Prefix("".into()), "dst");
        r.delete_marker_replication = None;
        assert_eq!(code(config(vec![r])), "InvalidRequest");
        // V1 with a priority.
        let r = rule("a", Some(1), Filter::V1Prefix("".into()), "dst");
        assert_eq!(code(config(vec![r])), "InvalidRequest");
        // Delete marker replication on a tag rule.
        let mut r = rule("a", Some(1), Filter::Tag("k".into(), "v".into()), "dst");
        r.delete_marker_replication = Some(true);
        assert_eq!(code(config(vec![r])), "InvalidRequest");
        // Duplicate ids; a destination that is not a bucket ARN; no rules.
        let a = rule("a", Some(1), Filter::Prefix("".into()), "dst");
        let b = rule("a", Some(2), Filter::Prefix("".into()), "dst");
        assert_eq!(code(config(vec![a, b])), "InvalidArgument");
        let mut r = rule("a", Some(1), Filter::Prefix("".into()), "dst");
        r.destination.bucket_arn = "dst".into();
        assert_eq!(code(config(vec![r])), "InvalidArgument");
        assert_eq!(code(config(vec![])), "MalformedXML");
    }
}
