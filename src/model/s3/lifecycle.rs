//! S3 Lifecycle in the model: the rules of a bucket's lifecycle configuration, which
//! objects, versions and multipart uploads each rule selects, and what is due at a given
//! time. The API layer parses the XML into [`LifecycleRule`]s and renders the
//! `x-amz-expiration` / `x-amz-abort-date` headers from [`Bucket::expiration_of`] and
//! [`Bucket::abort_date_of`]; applying a due rule is one commit ([`World::apply_lifecycle`]).
//!
//! Rules follow the Amazon S3 User Guide: "Lifecycle configuration elements", "Adding
//! filters to Lifecycle rules", "Expiring objects" and "Managing delete markers", and
//! the API reference's `LifecycleExpiration`, `NoncurrentVersionExpiration` and
//! `AbortIncompleteMultipartUpload`.
//!
//! S3 runs lifecycle asynchronously, once a day. vpclab applies what is due when the
//! bucket is next used, and dates each effect at the moment it became due (a delete
//! marker made by an expiration carries the expiry time, not the time of the request
//! that noticed it), so the outcome is the one S3 would have reached. Transitions
//! (`Transition`, `NoncurrentVersionTransition`) change a version's storage class in
//! place ([`World::transition_version`]), following the waterfall of "Transitioning
//! objects using Amazon S3 Lifecycle" ("Supported lifecycle transitions"): a version
//! only moves down, never back up. No `s3:LifecycleTransition` event is sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Bucket, Freed, S3Object, StorageClass, Version, object_id};
use crate::model::{ApiError, ApiResult, Env, Timestamp, World};

/// At most 1,000 rules per configuration ("Lifecycle configuration elements").
pub const MAX_RULES: usize = 1000;
/// A rule ID is at most 255 characters.
pub const MAX_RULE_ID: usize = 255;
/// The largest value an object-size filter takes (S3's answer names it).
pub const MAX_SIZE_FILTER: u64 = 1_099_511_627_776_000;

const DAY_MS: i64 = 86_400_000;

/// One lifecycle rule: its filter and the actions vpclab applies. The configuration as
/// sent is kept beside the rules ([`Bucket::lifecycle_xml`]), so
/// GetBucketLifecycleConfiguration returns what was put, transitions included.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LifecycleRule {
    /// Given, or generated when the rule was put without one (S3 does the same).
    pub id: Option<String>,
    pub enabled: bool,
    /// The key prefix (the legacy rule-level `Prefix`, `Filter/Prefix` or
    /// `Filter/And/Prefix`); empty selects every key.
    pub prefix: String,
    /// Tags an object must all carry, key and value exactly (a tag given with no
    /// `Value` selects objects whose tag has an empty value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// `ObjectSizeGreaterThan` / `ObjectSizeLessThan`: exclusive bounds, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<u64>,
    /// `Expiration/Days`.
    pub expiration_days: Option<u32>,
    /// `Expiration/Date`, milliseconds since the epoch (always a midnight UTC).
    pub expiration_date: Option<i64>,
    /// `Expiration/ExpiredObjectDeleteMarker`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired_object_delete_marker: bool,
    /// `NoncurrentVersionExpiration/NoncurrentDays`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_days: Option<u32>,
    /// `NoncurrentVersionExpiration/NewerNoncurrentVersions`: how many newer noncurrent
    /// versions are kept whatever their age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<u32>,
    /// `AbortIncompleteMultipartUpload/DaysAfterInitiation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_days: Option<u32>,
    /// `Transition`s of current versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<Transition>,
    /// `NoncurrentVersionTransition`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noncurrent_transitions: Vec<NoncurrentTransition>,
}

/// A `Transition`: `Days` after creation or a `Date` (midnight UTC), and the class.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Transition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<i64>,
    pub class: StorageClass,
}

/// A `NoncurrentVersionTransition`: `NoncurrentDays` after the version became
/// noncurrent, `NewerNoncurrentVersions` kept in their class whatever their age.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NoncurrentTransition {
    pub days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer: Option<u32>,
    pub class: StorageClass,
}

/// A class's place in the lifecycle waterfall ("Supported lifecycle transitions"):
/// STANDARD (and REDUCED_REDUNDANCY) → STANDARD_IA → INTELLIGENT_TIERING → ONEZONE_IA →
/// GLACIER_IR → GLACIER → DEEP_ARCHIVE.
fn waterfall_rank(class: StorageClass) -> u8 {
    match class {
        StorageClass::Standard | StorageClass::ReducedRedundancy => 0,
        StorageClass::StandardIa => 1,
        StorageClass::IntelligentTiering => 2,
        StorageClass::OnezoneIa => 3,
        StorageClass::GlacierIr => 4,
        StorageClass::Glacier => 5,
        StorageClass::DeepArchive => 6,
    }
}

/// Whether lifecycle may move a version from `from` to `to`: only down the waterfall,
/// and not from ONEZONE_IA to GLACIER_IR (the one downward step the guide lists as
/// unsupported).
pub fn can_transition(from: StorageClass, to: StorageClass) -> bool {
    waterfall_rank(to) > waterfall_rank(from)
        && !(from == StorageClass::OnezoneIa && to == StorageClass::GlacierIr)
}

/// Of the transitions `due` (time due, class), the one a version in `from` takes: the
/// latest due among those it may take (deeper class on a tie).
fn pick_transition(
    from: StorageClass,
    due: impl Iterator<Item = (i64, StorageClass)>,
) -> Option<StorageClass> {
    due.filter(|(_, c)| can_transition(from, *c))
        .max_by_key(|(at, c)| (*at, waterfall_rank(*c)))
        .map(|(_, c)| c)
}

/// The first midnight UTC after `t` plus `days` days: S3 counts lifecycle days from
/// the event (creation, becoming noncurrent, initiation) rounded up to the next midnight
/// UTC ("Lifecycle configuration elements", "Days").
pub fn after_days(t: i64, days: u32) -> i64 {
    (t.div_euclid(DAY_MS) + 1) * DAY_MS + i64::from(days) * DAY_MS
}

impl LifecycleRule {
    /// The rule's ID (empty only for a rule stored before IDs were generated).
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }

    /// Whether the rule's filter selects an object version: a logical AND of the key
    /// prefix, every tag, and the (exclusive) size bounds ("Adding filters to Lifecycle
    /// rules").
    pub fn selects(&self, key: &str, size: u64, tags: &BTreeMap<String, String>) -> bool {
        key.starts_with(&self.prefix)
            && self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
            && self.size_greater_than.is_none_or(|min| size > min)
            && self.size_less_than.is_none_or(|max| size < max)
    }

    /// When a current version written at `created` expires under this rule, if the rule
    /// expires current versions.
    pub fn expiry(&self, created: i64) -> Option<i64> {
        match (self.expiration_days, self.expiration_date) {
            (Some(days), _) => Some(after_days(created, days)),
            (None, Some(date)) => Some(date),
            (None, None) => None,
        }
    }

    /// When a version that became noncurrent at `since` may be removed (the time its
    /// successor was written: "How Amazon S3 calculates when an object became
    /// noncurrent").
    pub fn noncurrent_expiry(&self, since: i64) -> Option<i64> {
        self.noncurrent_days.map(|d| after_days(since, d))
    }

    /// The transitions of a current version written at `created`: (time due, class).
    pub fn transition_times(&self, created: i64) -> impl Iterator<Item = (i64, StorageClass)> {
        self.transitions.iter().filter_map(move |t| {
            let at = match (t.days, t.date) {
                (Some(days), _) => after_days(created, days),
                (None, Some(date)) => date,
                (None, None) => return None,
            };
            Some((at, t.class))
        })
    }

    /// When a multipart upload initiated at `initiated` becomes eligible for abort.
    pub fn abort_date(&self, initiated: i64) -> Option<i64> {
        self.abort_days.map(|d| after_days(initiated, d))
    }
}

fn invalid_request(message: &str) -> ApiError {
    ApiError::new("InvalidRequest", message)
}

fn invalid_argument(message: &str) -> ApiError {
    ApiError::new("InvalidArgument", message)
}

/// Checks a configuration's rules as PutBucketLifecycleConfiguration does (the XML's
/// shape was checked by the parser): the number of rules, IDs, size bounds, and the
/// actions S3 refuses beside tag or size filters (ExpiredObjectDeleteMarker and
/// AbortIncompleteMultipartUpload apply to keys alone).
pub fn check_rules(rules: &[LifecycleRule]) -> ApiResult<()> {
    if rules.len() > MAX_RULES {
        return Err(invalid_request(
            "The number of lifecycle rules must not exceed the allowed limit of 1000 rules.",
        ));
    }
    let mut ids = std::collections::BTreeSet::new();
    for r in rules {
        if let Some(id) = r.id.as_deref() {
            if id.chars().count() > MAX_RULE_ID {
                return Err(invalid_argument(
                    "ID length should not exceed allowed limit of 255",
                ));
            }
            if !ids.insert(id) {
                return Err(invalid_argument(
                    "Rule ID must be unique. Found same ID for more than one rule",
                ));
            }
        }
    }
    for r in rules {
        if r.size_greater_than.is_some_and(|n| n > MAX_SIZE_FILTER) {
            return Err(invalid_request(
                "'ObjectSizeGreaterThan' should be between 0 and 1099511627776000.",
            ));
        }
        if r.size_less_than
            .is_some_and(|n| n == 0 || n > MAX_SIZE_FILTER)
        {
            return Err(invalid_request(
                "'ObjectSizeLessThan' should be between 1 and 1099511627776000.",
            ));
        }
        if let (Some(min), Some(max)) = (r.size_greater_than, r.size_less_than)
            && max <= min
        {
            return Err(invalid_request(
                "'ObjectSizeLessThan' has to be a value greater than 'ObjectSizeGreaterThan'.",
            ));
        }
        let sized = r.size_greater_than.is_some() || r.size_less_than.is_some();
        let tagged = !r.tags.is_empty();
        for (on, name) in [
            (r.expired_object_delete_marker, "ExpiredObjectDeleteMarker"),
            (r.abort_days.is_some(), "AbortIncompleteMultipartUpload"),
        ] {
            if on && tagged {
                return Err(invalid_request(&format!(
                    "{name} cannot be specified with Tags."
                )));
            }
            if on && sized {
                return Err(invalid_request(&format!(
                    "{name} cannot be specified with Object Size."
                )));
            }
        }
    }
    Ok(())
}

/// One thing the lifecycle does to an object's versions, in the order it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The current version expired at `at`: removed in an unversioned bucket; in a
    /// versioned one a delete marker made at `at` becomes current ("Expiring objects").
    ExpireCurrent { at: i64 },
    /// A noncurrent version (or noncurrent delete marker) is removed for good.
    RemoveNoncurrent { version_id: String },
    /// The current version is a delete marker with no version left behind it: an
    /// expired object delete marker, removed ("Managing delete markers").
    RemoveExpiredMarker,
    /// A version (current or noncurrent) moves to a storage class further down the
    /// waterfall ("Transitioning objects using Amazon S3 Lifecycle").
    Transition {
        version_id: String,
        class: StorageClass,
    },
}

/// A version as the steps of one pass leave it.
#[derive(Clone)]
struct Sim<'a> {
    id: String,
    marker: bool,
    size: u64,
    tags: &'a BTreeMap<String, String>,
    written: i64,
    class: StorageClass,
}

/// What the enabled `rules` do at `now` to the versions of the object `key` (oldest
/// first, the last current) in a bucket whose versioning is `versioning` (`None`:
/// never enabled). Pure: [`World::apply_lifecycle`] carries the steps out.
pub fn object_steps(
    rules: &[LifecycleRule],
    versioning: Option<&str>,
    key: &str,
    versions: &[Version],
    now: i64,
) -> Vec<Step> {
    let rules: Vec<&LifecycleRule> = rules.iter().filter(|r| r.enabled).collect();
    let mut steps = Vec::new();
    if rules.is_empty() {
        return steps;
    }
    let no_tags = BTreeMap::new();
    // The versions as the steps leave them. A marker this pass makes has no id yet ("").
    let mut vs: Vec<Sim<'_>> = versions
        .iter()
        .map(|v| Sim {
            id: v.version_id.clone(),
            marker: v.delete_marker,
            size: v.size,
            tags: &v.tags,
            written: v.last_modified,
            class: v.storage_class,
        })
        .collect();

    // 1. Expiration and Transition apply to the current version. A transition due
    // before the expiry happened first; a removal takes precedence over it ("Lifecycle
    // and other bucket configurations": permanent deletion over transition).
    if let Some(Sim {
        marker: false,
        id,
        size,
        tags,
        written,
        class,
    }) = vs.last().cloned()
    {
        let selecting: Vec<&&LifecycleRule> = rules
            .iter()
            .filter(|r| r.selects(key, size, tags))
            .collect();
        let due = selecting
            .iter()
            .filter_map(|r| r.expiry(written))
            .min()
            .filter(|at| *at <= now);
        // Expiry removes the version itself in an unversioned bucket, and replaces the
        // `null` version in a suspended one.
        let removed = match versioning {
            None => true,
            Some("Enabled") => false,
            Some(_) => id == "null",
        };
        if due.is_none() || !removed {
            let until = due.unwrap_or(now);
            let target = pick_transition(
                class,
                selecting
                    .iter()
                    .flat_map(|r| r.transition_times(written))
                    .filter(|(at, _)| *at <= until),
            );
            if let Some(class) = target {
                steps.push(Step::Transition {
                    version_id: id.clone(),
                    class,
                });
                if let Some(last) = vs.last_mut() {
                    last.class = class;
                }
            }
        }
        if let Some(at) = due {
            steps.push(Step::ExpireCurrent { at });
            match versioning {
                None => return steps,
                // A suspended bucket's marker is the `null` version, which replaces
                // any other `null` version.
                Some(status) => {
                    let id = if status == "Enabled" { "" } else { "null" };
                    if status != "Enabled" {
                        vs.retain(|v| v.id != "null");
                    }
                    vs.push(Sim {
                        id: id.to_string(),
                        marker: true,
                        size: 0,
                        tags: &no_tags,
                        written: at,
                        class: StorageClass::Standard,
                    });
                }
            }
        }
    }

    // 2. NoncurrentVersionExpiration: a version is noncurrent from the moment its
    // successor was written; NewerNoncurrentVersions keeps that many newer noncurrent
    // versions whatever their age.
    let n = vs.len();
    let mut removed = Vec::new();
    for i in 0..n.saturating_sub(1) {
        let Sim { id, size, tags, .. } = &vs[i];
        let since = vs[i + 1].written;
        let newer = n - 2 - i;
        let due = rules.iter().any(|r| {
            r.selects(key, *size, tags)
                && r.noncurrent_expiry(since).is_some_and(|t| t <= now)
                && r.newer_noncurrent_versions
                    .is_none_or(|keep| newer >= keep as usize)
        });
        if due {
            steps.push(Step::RemoveNoncurrent {
                version_id: id.clone(),
            });
            removed.push(i);
        }
    }
    for i in removed.into_iter().rev() {
        vs.remove(i);
    }

    // NoncurrentVersionTransition, for what is left: days count from when the version
    // became noncurrent; NewerNoncurrentVersions keeps that many newer noncurrent
    // versions in their class.
    let n = vs.len();
    for i in 0..n.saturating_sub(1) {
        let Sim {
            id,
            marker,
            size,
            tags,
            class,
            ..
        } = &vs[i];
        if *marker {
            continue;
        }
        let since = vs[i + 1].written;
        let newer = n - 2 - i;
        let target = pick_transition(
            *class,
            rules
                .iter()
                .filter(|r| r.selects(key, *size, tags))
                .flat_map(|r| r.noncurrent_transitions.iter())
                .filter(|t| t.newer.is_none_or(|keep| newer >= keep as usize))
                .map(|t| (after_days(since, t.days), t.class))
                .filter(|(at, _)| *at <= now),
        );
        if let Some(class) = target {
            steps.push(Step::Transition {
                version_id: id.clone(),
                class,
            });
        }
    }

    // 3. An expired object delete marker goes under ExpiredObjectDeleteMarker, or when
    // a rule that expires current versions would expire it ("Expiring objects").
    if let [
        Sim {
            marker: true,
            written,
            ..
        },
    ] = vs.as_slice()
    {
        let due = rules.iter().any(|r| {
            r.selects(key, 0, &no_tags)
                && (r.expired_object_delete_marker || r.expiry(*written).is_some_and(|t| t <= now))
        });
        if due {
            steps.push(Step::RemoveExpiredMarker);
        }
    }
    steps
}

/// Everything due in a bucket: per object key its steps, and the multipart uploads to
/// abort.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub objects: Vec<(String, Vec<Step>)>,
    pub uploads: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.uploads.is_empty()
    }
}

impl Bucket {
    /// `x-amz-expiration` for a current version: the earliest time an enabled rule that
    /// selects it will expire it, and that rule's ID.
    pub fn expiration_of(&self, key: &str, v: &Version) -> Option<(i64, &str)> {
        if v.delete_marker {
            return None;
        }
        self.lifecycle
            .iter()
            .filter(|r| r.enabled && r.selects(key, v.size, &v.tags))
            .filter_map(|r| r.expiry(v.last_modified).map(|t| (t, r.id())))
            .min_by_key(|(t, _)| *t)
    }

    /// `x-amz-abort-date` / `x-amz-abort-rule-id` for an upload of `key` initiated at
    /// `initiated`.
    pub fn abort_date_of(&self, key: &str, initiated: i64) -> Option<(i64, &str)> {
        self.lifecycle
            .iter()
            .filter(|r| r.enabled && key.starts_with(&r.prefix))
            .filter_map(|r| r.abort_date(initiated).map(|t| (t, r.id())))
            .min_by_key(|(t, _)| *t)
    }
}

impl World {
    /// PutBucketLifecycleConfiguration: checked rules replace the bucket's; a rule
    /// without an ID gets one.
    pub fn put_bucket_lifecycle(
        &mut self,
        bucket: &str,
        mut rules: Vec<LifecycleRule>,
        xml: String,
    ) -> ApiResult<()> {
        self.bucket(bucket)?;
        check_rules(&rules)?;
        for r in rules.iter_mut().filter(|r| r.id.is_none()) {
            let (a, b) = (self.alloc_bits(), self.alloc_bits());
            r.id = Some(format!("{a:016x}{b:016x}"));
        }
        self.update_bucket(bucket, |b| {
            b.lifecycle = rules;
            b.lifecycle_xml = Some(xml);
            Ok(())
        })
    }

    /// What the bucket's lifecycle rules have made due by `now`.
    pub fn lifecycle_plan(&self, bucket: &str, now: Timestamp) -> Plan {
        let mut plan = Plan::default();
        let Some(b) = self.buckets.get(bucket) else {
            return plan;
        };
        if !b.lifecycle.iter().any(|r| r.enabled) {
            return plan;
        }
        for o in self.objects_from(bucket, "") {
            let steps = object_steps(
                &b.lifecycle,
                b.versioning.as_deref(),
                &o.key,
                &o.versions,
                now.0,
            );
            if !steps.is_empty() {
                plan.objects.push((o.key.clone(), steps));
            }
        }
        plan.uploads = self
            .s3_uploads
            .iter()
            .filter(|u| u.bucket == bucket)
            .filter(|u| {
                b.abort_date_of(&u.key, u.created)
                    .is_some_and(|(t, _)| t <= now.0)
            })
            .map(|u| u.id.clone())
            .collect();
        plan
    }

    /// Whether any rule of the bucket has something due now (the cheap test before a
    /// lifecycle commit).
    pub fn lifecycle_due(&self, bucket: &str, now: Timestamp) -> bool {
        !self.lifecycle_plan(bucket, now).is_empty()
    }

    /// Carries out what is due in the bucket at `env.now`, sending the
    /// `s3:LifecycleExpiration:*` events. Returns freed blobs.
    pub fn apply_lifecycle(&mut self, env: &Env, bucket: &str) -> ApiResult<Freed> {
        let plan = self.lifecycle_plan(bucket, env.now);
        let b = self.bucket(bucket)?.clone();
        let mut freed = Vec::new();
        for (key, steps) in plan.objects {
            for step in steps {
                match step {
                    Step::ExpireCurrent { .. } if b.versioning.is_none() => {
                        let id = object_id(bucket, &key);
                        if let Some(o) = self.s3_objects.remove(&id) {
                            freed.extend(blobs_of(&o));
                        }
                        self.s3_notify(
                            env,
                            bucket,
                            "LifecycleExpiration:Delete",
                            &key,
                            0,
                            "",
                            None,
                        );
                    }
                    Step::ExpireCurrent { at } => {
                        let mut marker = self.marker(env, &b);
                        marker.last_modified = at;
                        let vid = marker.version_id.clone();
                        freed.extend(self.push_version(&b, &key, marker));
                        self.s3_notify(
                            env,
                            bucket,
                            "LifecycleExpiration:DeleteMarkerCreated",
                            &key,
                            0,
                            "",
                            Some(&vid),
                        );
                    }
                    Step::RemoveNoncurrent { version_id } => {
                        let (_, _, f) = self.remove_object(env, bucket, &key, Some(&version_id))?;
                        freed.extend(f);
                        self.s3_notify(
                            env,
                            bucket,
                            "LifecycleExpiration:Delete",
                            &key,
                            0,
                            "",
                            Some(&version_id),
                        );
                    }
                    Step::Transition { version_id, class } => {
                        self.transition_version(bucket, &key, &version_id, class)?;
                    }
                    Step::RemoveExpiredMarker => {
                        let current = self
                            .s3_objects
                            .get(&object_id(bucket, &key))
                            .and_then(S3Object::current)
                            .map(|v| v.version_id.clone());
                        if let Some(vid) = current {
                            let (_, _, f) = self.remove_object(env, bucket, &key, Some(&vid))?;
                            freed.extend(f);
                            self.s3_notify(
                                env,
                                bucket,
                                "LifecycleExpiration:Delete",
                                &key,
                                0,
                                "",
                                Some(&vid),
                            );
                        }
                    }
                }
            }
        }
        for id in plan.uploads {
            if let Some(u) = self.s3_uploads.remove(&id) {
                freed.extend(u.parts.into_values().map(|p| p.blob));
            }
        }
        Ok(freed)
    }
}

fn blobs_of(o: &S3Object) -> impl Iterator<Item = String> + '_ {
    o.versions
        .iter()
        .filter(|v| !v.blob.is_empty())
        .map(|v| v.blob.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: &str, marker: bool, size: u64, written: i64) -> Version {
        Version {
            version_id: id.into(),
            delete_marker: marker,
            blob: if marker {
                String::new()
            } else {
                format!("b-{id}")
            },
            size,
            etag: String::new(),
            last_modified: written,
            headers: BTreeMap::new(),
            metadata: BTreeMap::new(),
            tags: BTreeMap::new(),
            checksum: None,
            parts: Vec::new(),
            replication_status: None,
            storage_class: super::super::StorageClass::Standard,
            restore: None,
        }
    }

    fn rule() -> LifecycleRule {
        LifecycleRule {
            id: Some("r".into()),
            enabled: true,
            ..LifecycleRule::default()
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const D: i64 = DAY_MS;

    /// "Lifecycle configuration elements": days are added to the creation time rounded
    /// up to the next midnight UTC.
    #[test]
    fn lifecycle_days_count_from_the_next_midnight() {
        let r = LifecycleRule {
            expiration_days: Some(1),
            ..rule()
        };
        // Created at 23:00 on day 0: the next midnight is day 1 00:00, expiry day 2 00:00.
        assert_eq!(r.expiry(D - 3_600_000), Some(2 * D));
        let v = [version("null", false, 1, D - 3_600_000)];
        let r = [r];
        assert!(object_steps(&r, None, "k", &v, 2 * D - 1).is_empty());
        assert_eq!(
            object_steps(&r, None, "k", &v, 2 * D),
            vec![Step::ExpireCurrent { at: 2 * D }]
        );
    }

    /// "Adding filters to Lifecycle rules": prefix, every tag (key and value exactly,
    /// extra tags allowed) and exclusive size bounds, combined with a logical AND.
    #[test]
    fn filters_combine_prefix_tags_and_exclusive_sizes() {
        let r = LifecycleRule {
            prefix: "logs/".into(),
            tags: tags(&[("class", "tmp"), ("flag", "")]),
            size_greater_than: Some(10),
            size_less_than: Some(100),
            ..rule()
        };
        let t = tags(&[("class", "tmp"), ("flag", ""), ("other", "x")]);
        assert!(r.selects("logs/a", 50, &t));
        assert!(!r.selects("data/a", 50, &t), "prefix");
        assert!(!r.selects("logs/a", 10, &t), "greater than is exclusive");
        assert!(!r.selects("logs/a", 100, &t), "less than is exclusive");
        assert!(
            !r.selects("logs/a", 50, &tags(&[("class", "tmp"), ("flag", "set")])),
            "a tag given without a value selects only an empty value"
        );
        assert!(
            !r.selects("logs/a", 50, &tags(&[("class", "tmp")])),
            "all tags"
        );
        assert!(
            rule().selects("anything", 0, &BTreeMap::new()),
            "empty filter"
        );
    }

    /// "Expiring objects": in a versioning-enabled bucket the current version gets a
    /// delete marker; noncurrent versions stay until NoncurrentVersionExpiration.
    #[test]
    fn expiration_in_a_versioned_bucket_makes_a_delete_marker() {
        let r = [LifecycleRule {
            expiration_days: Some(1),
            ..rule()
        }];
        let v = [version("a", false, 1, 0), version("b", false, 1, D / 2)];
        assert_eq!(
            object_steps(&r, Some("Enabled"), "k", &v, 3 * D),
            vec![Step::ExpireCurrent { at: 2 * D }]
        );
        // Nothing more to do once the marker is current and versions remain behind it.
        let v = [version("a", false, 1, 0), version("m", true, 0, 2 * D)];
        assert!(object_steps(&r, Some("Enabled"), "k", &v, 3 * D).is_empty());
        // A marker with nothing behind it is expired once the rule's days pass again.
        let v = [version("m", true, 0, 2 * D)];
        assert!(object_steps(&r, Some("Enabled"), "k", &v, 3 * D).is_empty());
        assert_eq!(
            object_steps(&r, Some("Enabled"), "k", &v, 4 * D),
            vec![Step::RemoveExpiredMarker]
        );
    }

    /// NoncurrentDays count from when the successor was written; NewerNoncurrentVersions
    /// keeps the newest noncurrent versions whatever their age.
    #[test]
    fn noncurrent_versions_expire_by_age_beyond_the_newest_kept() {
        let r = [LifecycleRule {
            noncurrent_days: Some(1),
            newer_noncurrent_versions: Some(1),
            ..rule()
        }];
        // a became noncurrent at day 5 (when b was written), b at day 6, c at day 7.
        let v = [
            version("a", false, 1, 0),
            version("b", false, 1, 5 * D),
            version("c", false, 1, 6 * D),
            version("d", false, 1, 7 * D),
        ];
        // Day 7: a is due (noncurrent since day 5, +1 day after the next midnight).
        assert_eq!(
            object_steps(&r, Some("Enabled"), "k", &v, 7 * D),
            vec![Step::RemoveNoncurrent {
                version_id: "a".into()
            }]
        );
        // Day 20: a and b are due; c is kept as the one newer noncurrent version.
        assert_eq!(
            object_steps(&r, Some("Enabled"), "k", &v, 20 * D),
            vec![
                Step::RemoveNoncurrent {
                    version_id: "a".into()
                },
                Step::RemoveNoncurrent {
                    version_id: "b".into()
                },
            ]
        );
    }

    /// ExpiredObjectDeleteMarker removes a marker once no version is left behind it, in
    /// the same pass that removed the last noncurrent version.
    #[test]
    fn an_expired_object_delete_marker_goes_after_its_versions() {
        let r = [
            LifecycleRule {
                noncurrent_days: Some(1),
                ..rule()
            },
            LifecycleRule {
                id: Some("m".into()),
                expired_object_delete_marker: true,
                ..rule()
            },
        ];
        let v = [version("a", false, 1, 0), version("m", true, 0, D)];
        assert!(object_steps(&r, Some("Enabled"), "k", &v, 2 * D).is_empty());
        assert_eq!(
            object_steps(&r, Some("Enabled"), "k", &v, 3 * D),
            vec![
                Step::RemoveNoncurrent {
                    version_id: "a".into()
                },
                Step::RemoveExpiredMarker
            ]
        );
        // A disabled rule does nothing.
        let off: Vec<LifecycleRule> = r
            .iter()
            .cloned()
            .map(|r| LifecycleRule {
                enabled: false,
                ..r
            })
            .collect();
        assert!(object_steps(&off, Some("Enabled"), "k", &v, 30 * D).is_empty());
    }

    /// "Transitioning objects using Amazon S3 Lifecycle": the latest due transition
    /// wins, a version only moves down the waterfall, noncurrent versions count from
    /// when they became noncurrent, and an expiry in an unversioned bucket removes
    /// rather than transitions.
    #[test]
    fn transitions_move_versions_down_the_waterfall() {
        use super::super::StorageClass as C;
        let to = |days: u32, class: C| Transition {
            days: Some(days),
            date: None,
            class,
        };
        let r = [LifecycleRule {
            prefix: "logs/".into(),
            transitions: vec![to(90, C::Glacier), to(30, C::StandardIa)],
            ..rule()
        }];
        let step = |id: &str, class: C| Step::Transition {
            version_id: id.into(),
            class,
        };
        let v = [version("null", false, 1, 0)];
        assert!(object_steps(&r, None, "logs/a", &v, 30 * D).is_empty());
        assert_eq!(
            object_steps(&r, None, "logs/a", &v, 31 * D),
            vec![step("null", C::StandardIa)]
        );
        // Both due: the later (GLACIER) wins, skipping STANDARD_IA.
        assert_eq!(
            object_steps(&r, None, "logs/a", &v, 200 * D),
            vec![step("null", C::Glacier)]
        );
        assert!(object_steps(&r, None, "data/a", &v, 200 * D).is_empty());
        // Never back up: a DEEP_ARCHIVE version stays; a GLACIER one has nothing to do.
        let mut deep = version("null", false, 1, 0);
        deep.storage_class = C::DeepArchive;
        assert!(object_steps(&r, None, "logs/a", &[deep.clone()], 200 * D).is_empty());
        deep.storage_class = C::Glacier;
        assert!(object_steps(&r, None, "logs/a", &[deep], 200 * D).is_empty());
        assert!(!can_transition(C::OnezoneIa, C::GlacierIr));
        assert!(can_transition(C::StandardIa, C::IntelligentTiering));
        // Expiry in an unversioned bucket removes the object: no transition.
        let r2 = [LifecycleRule {
            expiration_days: Some(10),
            transitions: vec![to(0, C::Glacier)],
            ..rule()
        }];
        assert_eq!(
            object_steps(&r2, None, "k", &v, 20 * D),
            vec![Step::ExpireCurrent { at: 11 * D }]
        );
        // In a versioned bucket the transition happened before the marker came.
        let v2 = [version("a", false, 1, 0)];
        assert_eq!(
            object_steps(&r2, Some("Enabled"), "k", &v2, 20 * D),
            vec![step("a", C::Glacier), Step::ExpireCurrent { at: 11 * D }]
        );
        // NoncurrentVersionTransition: from the successor's write, beyond the newest kept.
        let r3 = [LifecycleRule {
            noncurrent_transitions: vec![NoncurrentTransition {
                days: 30,
                newer: Some(1),
                class: C::GlacierIr,
            }],
            ..rule()
        }];
        let v3 = [
            version("a", false, 1, 0),
            version("b", false, 1, 10 * D),
            version("c", false, 1, 20 * D),
        ];
        assert!(object_steps(&r3, Some("Enabled"), "k", &v3, 40 * D).is_empty());
        assert_eq!(
            object_steps(&r3, Some("Enabled"), "k", &v3, 41 * D),
            vec![step("a", C::GlacierIr)]
        );
        // b stays: it is the one newer noncurrent version kept.
        assert_eq!(
            object_steps(&r3, Some("Enabled"), "k", &v3, 100 * D),
            vec![step("a", C::GlacierIr)]
        );
    }

    /// S3's answers to configurations it refuses.
    #[test]
    fn configurations_are_checked_as_s3_checks_them() {
        let code = |rules: &[LifecycleRule]| check_rules(rules).err().map(|e| e.code);
        let named = |id: &str| LifecycleRule {
            id: Some(id.into()),
            ..rule()
        };
        assert_eq!(code(&[named("a"), named("b")]), None);
        assert_eq!(
            code(&[named("a"), named("a")]).as_deref(),
            Some("InvalidArgument")
        );
        assert_eq!(
            code(&[named(&"x".repeat(256))]).as_deref(),
            Some("InvalidArgument")
        );
        let many: Vec<LifecycleRule> = (0..1001).map(|i| named(&i.to_string())).collect();
        assert_eq!(code(&many).as_deref(), Some("InvalidRequest"));
        let abort_tags = LifecycleRule {
            abort_days: Some(1),
            tags: tags(&[("a", "b")]),
            ..rule()
        };
        assert_eq!(code(&[abort_tags]).as_deref(), Some("InvalidRequest"));
        let marker_size = LifecycleRule {
            expired_object_delete_marker: true,
            size_greater_than: Some(1),
            ..rule()
        };
        assert_eq!(code(&[marker_size]).as_deref(), Some("InvalidRequest"));
        let sizes = LifecycleRule {
            size_greater_than: Some(10),
            size_less_than: Some(10),
            ..rule()
        };
        assert_eq!(code(&[sizes]).as_deref(), Some("InvalidRequest"));
    }
}
