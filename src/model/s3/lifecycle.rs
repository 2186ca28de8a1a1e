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
//! S3 runs lifecycle asynchronously, once a day. vpclab applies what is due within
//! seconds (below), and dates each effect at the moment it became due (a delete
//! marker made by an expiration carries the expiry time, not the time of the sweep or
//! request that noticed it), so the outcome is the one S3 would have reached. Transitions
//! (`Transition`, `NoncurrentVersionTransition`) change a version's storage class in
//! place ([`World::transition_version`]), following the waterfall of "Transitioning
//! objects using Amazon S3 Lifecycle" ("Supported lifecycle transitions"): a version
//! only moves down, never back up, and sends `s3:LifecycleTransition`. Objects smaller
//! than 128 KB stay where they are unless the configuration's
//! [`TransitionMinimum`] or the rule's own size filter lets them move.
//!
//! The daemon's sweep (`api::s3::sweep`) applies what is due in every bucket every few
//! seconds; a request naming a bucket applies it first as well, so a request never sees
//! a state the rules have already moved past. [`World::s3_next_due`] tells the sweep
//! when to look again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Bucket, Freed, S3Object, StorageClass, Version, object_id};
use crate::model::{ApiError, ApiResult, Env, Timestamp, World};

/// At most 1,000 rules per configuration ("Lifecycle configuration elements").
pub const MAX_RULES: usize = 1000;
/// A rule ID is at most 255 characters.
pub const MAX_RULE_ID: usize = 255;
/// The largest value an object-size filter takes (S3's answer names it).
pub const MAX_SIZE_FILTER: u64 = 1_099_511_627_776_000;

const DAY_MS: i64 = 86_400_000;

/// "Objects smaller than 128 KB will not transition ... by default": the size, in
/// bytes, below which the default transition minimum holds an object back.
pub const MIN_TRANSITION_SIZE: u64 = 128 * 1024;

/// The configuration's `x-amz-transition-default-minimum-object-size` (the API
/// reference's PutBucketLifecycleConfiguration, `TransitionDefaultMinimumObjectSize`):
/// `all_storage_classes_128K` (the default since September 2024) keeps objects under
/// 128 KB out of every transition; `varies_by_storage_class` lets them go to GLACIER
/// and DEEP_ARCHIVE only. "Custom filters always take precedence over the default
/// transition behavior": a rule with an `ObjectSizeGreaterThan` or `ObjectSizeLessThan`
/// filter transitions what its filter selects, whatever the size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransitionMinimum {
    #[default]
    #[serde(rename = "all_storage_classes_128K")]
    AllStorageClasses128K,
    #[serde(rename = "varies_by_storage_class")]
    VariesByStorageClass,
}

impl TransitionMinimum {
    /// The header's value on the wire.
    pub fn name(self) -> &'static str {
        match self {
            TransitionMinimum::AllStorageClasses128K => "all_storage_classes_128K",
            TransitionMinimum::VariesByStorageClass => "varies_by_storage_class",
        }
    }

    /// Parses the header's value (case-sensitive, as the API's enumeration is). S3 does
    /// not document the error for another value; vpclab answers `InvalidArgument`.
    pub fn parse(value: &str) -> ApiResult<TransitionMinimum> {
        match value {
            "all_storage_classes_128K" => Ok(TransitionMinimum::AllStorageClasses128K),
            "varies_by_storage_class" => Ok(TransitionMinimum::VariesByStorageClass),
            _ => Err(invalid_argument(&format!(
                "Invalid value for x-amz-transition-default-minimum-object-size: {value}; \
                 valid values are all_storage_classes_128K and varies_by_storage_class"
            ))),
        }
    }

    /// For `skip_serializing_if`: buckets with the default store nothing.
    pub fn is_default(&self) -> bool {
        *self == TransitionMinimum::default()
    }

    /// Whether an object of `size` bytes may move to `to` under a rule with (`sized`)
    /// or without a size filter of its own.
    pub fn allows(self, sized: bool, size: u64, to: StorageClass) -> bool {
        sized
            || size >= MIN_TRANSITION_SIZE
            || (self == TransitionMinimum::VariesByStorageClass && to.is_archived())
    }
}

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

    /// Whether the rule has a size filter of its own (which takes precedence over the
    /// configuration's default transition minimum).
    pub fn sized(&self) -> bool {
        self.size_greater_than.is_some() || self.size_less_than.is_some()
    }

    /// Every moment at which this rule may make something due for a version written at
    /// `written` that became noncurrent at `since` (if it did): expiries and transitions.
    /// A superset is fine: the sweep only uses these to know when to look again.
    fn moments(&self, written: i64, since: Option<i64>) -> impl Iterator<Item = i64> + '_ {
        let current = self
            .expiry(written)
            .into_iter()
            .chain(self.transition_times(written).map(|(at, _)| at));
        let noncurrent = since.into_iter().flat_map(move |s| {
            self.noncurrent_expiry(s).into_iter().chain(
                self.noncurrent_transitions
                    .iter()
                    .map(move |t| after_days(s, t.days)),
            )
        });
        current.chain(noncurrent)
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
/// never enabled) and whose configuration's default transition minimum is `minimum`.
/// Pure: [`World::apply_lifecycle`] carries the steps out.
pub fn object_steps(
    rules: &[LifecycleRule],
    minimum: TransitionMinimum,
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
                    .flat_map(|r| {
                        r.transition_times(written)
                            .filter(|(_, to)| minimum.allows(r.sized(), size, *to))
                    })
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
                .flat_map(|r| {
                    r.noncurrent_transitions
                        .iter()
                        .filter(|t| minimum.allows(r.sized(), *size, t.class))
                })
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
        minimum: TransitionMinimum,
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
            b.transition_minimum = minimum;
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
                b.transition_minimum,
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
                        // "Messages that Amazon S3 sends to publish an
                        // s3:LifecycleTransition event also include" the destination
                        // class ("Configuring S3 Lifecycle event notifications").
                        let data = json!({
                            "transitionEventData": {"destinationStorageClass": class.name()}
                        });
                        self.s3_notify_with(
                            env,
                            bucket,
                            "LifecycleTransition",
                            &key,
                            0,
                            "",
                            Some(&version_id),
                            Some(("lifecycleEventData", data)),
                        );
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

impl World {
    /// Whether anything is due in the bucket at `now`: a lifecycle action, or a
    /// restore whose completion or expiry has not been carried out.
    pub fn bucket_due(&self, bucket: &str, now: Timestamp) -> bool {
        self.restores_due(bucket, now) || self.lifecycle_due(bucket, now)
    }

    /// Carries out everything due in the bucket at `env.now`: restores first (they
    /// complete within seconds of their request, before any rule's day comes), then
    /// the lifecycle. One commit's worth; returns the freed blobs.
    /// The events name the bucket's region (`awsRegion`), whatever region the commit
    /// runs in.
    pub fn settle_bucket(&mut self, env: &Env, bucket: &str) -> ApiResult<Freed> {
        let mut env = env.clone();
        env.region = self.bucket(bucket)?.region.clone();
        self.settle_restores(&env, bucket)?;
        self.apply_lifecycle(&env, bucket)
    }

    /// The buckets with something due at `now`, in name order, each with the region its
    /// commit should run in: the bucket's, or, when the account has never used that
    /// region itself (a bucket made there from another region's endpoint), one it has
    /// used, so that settling the bucket does not create a default VPC as a side effect.
    pub fn s3_due_buckets(&self, now: Timestamp) -> Vec<(String, String)> {
        let used = self.meta().map(|m| &m.regions);
        self.buckets
            .iter()
            .filter(|b| self.bucket_due(&b.id, now))
            .map(|b| {
                let region = match used {
                    Some(r) if !r.contains(&b.region) => r.first().unwrap_or(&b.region),
                    _ => &b.region,
                };
                (b.id.clone(), region.clone())
            })
            .collect()
    }

    /// The first moment after `now` at which something may become due in any bucket
    /// (a rule's day for some version or upload, a restore's completion or expiry), or
    /// `None` when nothing ever will. Until the world changes or that moment passes,
    /// [`World::s3_due_buckets`] stays as it is, so the sweep need not look again. The
    /// moments are a superset (a rule's day counts even where its filter does not
    /// select the version): an early look costs a scan, never a missed action.
    pub fn s3_next_due(&self, now: Timestamp) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut consider = |t: i64| {
            if t > now.0 && next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        for b in self.buckets.iter() {
            let rules: Vec<&LifecycleRule> = b.lifecycle.iter().filter(|r| r.enabled).collect();
            for o in self.objects_from(&b.id, "") {
                for (i, v) in o.versions.iter().enumerate() {
                    if let Some(r) = &v.restore {
                        consider(r.next_moment());
                    }
                    let since = o.versions.get(i + 1).map(|n| n.last_modified);
                    for r in &rules {
                        r.moments(v.last_modified, since).for_each(&mut consider);
                    }
                }
            }
        }
        for u in self.s3_uploads.iter() {
            if let Some((t, _)) = self
                .buckets
                .get(&u.bucket)
                .and_then(|b| b.abort_date_of(&u.key, u.created))
            {
                consider(t);
            }
        }
        next
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
    const M: TransitionMinimum = TransitionMinimum::AllStorageClasses128K;
    /// Large enough for any transition under the default minimum.
    const BIG: u64 = MIN_TRANSITION_SIZE;

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
        assert!(object_steps(&r, M, None, "k", &v, 2 * D - 1).is_empty());
        assert_eq!(
            object_steps(&r, M, None, "k", &v, 2 * D),
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
            object_steps(&r, M, Some("Enabled"), "k", &v, 3 * D),
            vec![Step::ExpireCurrent { at: 2 * D }]
        );
        // Nothing more to do once the marker is current and versions remain behind it.
        let v = [version("a", false, 1, 0), version("m", true, 0, 2 * D)];
        assert!(object_steps(&r, M, Some("Enabled"), "k", &v, 3 * D).is_empty());
        // A marker with nothing behind it is expired once the rule's days pass again.
        let v = [version("m", true, 0, 2 * D)];
        assert!(object_steps(&r, M, Some("Enabled"), "k", &v, 3 * D).is_empty());
        assert_eq!(
            object_steps(&r, M, Some("Enabled"), "k", &v, 4 * D),
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
            object_steps(&r, M, Some("Enabled"), "k", &v, 7 * D),
            vec![Step::RemoveNoncurrent {
                version_id: "a".into()
            }]
        );
        // Day 20: a and b are due; c is kept as the one newer noncurrent version.
        assert_eq!(
            object_steps(&r, M, Some("Enabled"), "k", &v, 20 * D),
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
        assert!(object_steps(&r, M, Some("Enabled"), "k", &v, 2 * D).is_empty());
        assert_eq!(
            object_steps(&r, M, Some("Enabled"), "k", &v, 3 * D),
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
        assert!(object_steps(&off, M, Some("Enabled"), "k", &v, 30 * D).is_empty());
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
        let v = [version("null", false, BIG, 0)];
        assert!(object_steps(&r, M, None, "logs/a", &v, 30 * D).is_empty());
        assert_eq!(
            object_steps(&r, M, None, "logs/a", &v, 31 * D),
            vec![step("null", C::StandardIa)]
        );
        // Both due: the later (GLACIER) wins, skipping STANDARD_IA.
        assert_eq!(
            object_steps(&r, M, None, "logs/a", &v, 200 * D),
            vec![step("null", C::Glacier)]
        );
        assert!(object_steps(&r, M, None, "data/a", &v, 200 * D).is_empty());
        // Never back up: a DEEP_ARCHIVE version stays; a GLACIER one has nothing to do.
        let mut deep = version("null", false, BIG, 0);
        deep.storage_class = C::DeepArchive;
        assert!(object_steps(&r, M, None, "logs/a", &[deep.clone()], 200 * D).is_empty());
        deep.storage_class = C::Glacier;
        assert!(object_steps(&r, M, None, "logs/a", &[deep], 200 * D).is_empty());
        assert!(!can_transition(C::OnezoneIa, C::GlacierIr));
        assert!(can_transition(C::StandardIa, C::IntelligentTiering));
        // Expiry in an unversioned bucket removes the object: no transition.
        let r2 = [LifecycleRule {
            expiration_days: Some(10),
            transitions: vec![to(0, C::Glacier)],
            ..rule()
        }];
        assert_eq!(
            object_steps(&r2, M, None, "k", &v, 20 * D),
            vec![Step::ExpireCurrent { at: 11 * D }]
        );
        // In a versioned bucket the transition happened before the marker came.
        let v2 = [version("a", false, BIG, 0)];
        assert_eq!(
            object_steps(&r2, M, Some("Enabled"), "k", &v2, 20 * D),
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
            version("a", false, BIG, 0),
            version("b", false, BIG, 10 * D),
            version("c", false, BIG, 20 * D),
        ];
        assert!(object_steps(&r3, M, Some("Enabled"), "k", &v3, 40 * D).is_empty());
        assert_eq!(
            object_steps(&r3, M, Some("Enabled"), "k", &v3, 41 * D),
            vec![step("a", C::GlacierIr)]
        );
        // b stays: it is the one newer noncurrent version kept.
        assert_eq!(
            object_steps(&r3, M, Some("Enabled"), "k", &v3, 100 * D),
            vec![step("a", C::GlacierIr)]
        );
    }

    /// PutBucketLifecycleConfiguration's `TransitionDefaultMinimumObjectSize`:
    /// "all_storage_classes_128K - Objects smaller than 128 KB will not transition to
    /// any storage class by default. varies_by_storage_class - Objects smaller than
    /// 128 KB will transition to Glacier Flexible Retrieval or Glacier Deep Archive
    /// storage classes ... Custom filters always take precedence over the default
    /// transition behavior."
    #[test]
    fn small_objects_transition_only_as_the_minimum_or_a_size_filter_allows() {
        use super::super::StorageClass as C;
        use TransitionMinimum as T;
        let to = |class: C| Transition {
            days: Some(0),
            date: None,
            class,
        };
        let ia = [LifecycleRule {
            transitions: vec![to(C::GlacierIr)],
            ..rule()
        }];
        let glacier = [LifecycleRule {
            transitions: vec![to(C::Glacier)],
            ..rule()
        }];
        let step = |class: C| {
            vec![Step::Transition {
                version_id: "null".into(),
                class,
            }]
        };
        let small = [version("null", false, MIN_TRANSITION_SIZE - 1, 0)];
        let big = [version("null", false, MIN_TRANSITION_SIZE, 0)];
        let at = 2 * D;
        for t in [T::AllStorageClasses128K, T::VariesByStorageClass] {
            assert_eq!(
                object_steps(&ia, t, None, "k", &big, at),
                step(C::GlacierIr)
            );
            assert!(object_steps(&ia, t, None, "k", &small, at).is_empty());
        }
        assert!(object_steps(&glacier, T::AllStorageClasses128K, None, "k", &small, at).is_empty());
        assert_eq!(
            object_steps(&glacier, T::VariesByStorageClass, None, "k", &small, at),
            step(C::Glacier)
        );
        // A size filter of the rule's own decides instead.
        let sized = [LifecycleRule {
            size_greater_than: Some(10),
            ..ia[0].clone()
        }];
        assert_eq!(
            object_steps(&sized, T::AllStorageClasses128K, None, "k", &small, at),
            step(C::GlacierIr)
        );
        // Noncurrent transitions follow the same rule.
        let nc = [LifecycleRule {
            noncurrent_transitions: vec![NoncurrentTransition {
                days: 0,
                newer: None,
                class: C::Glacier,
            }],
            ..rule()
        }];
        let v = [
            version("a", false, 1, 0),
            version("b", false, MIN_TRANSITION_SIZE, 0),
        ];
        assert!(
            object_steps(&nc, T::AllStorageClasses128K, Some("Enabled"), "k", &v, at).is_empty()
        );
        assert_eq!(
            object_steps(&nc, T::VariesByStorageClass, Some("Enabled"), "k", &v, at),
            vec![Step::Transition {
                version_id: "a".into(),
                class: C::Glacier
            }]
        );
        assert_eq!(
            T::parse("varies_by_storage_class"),
            Ok(T::VariesByStorageClass)
        );
        assert_eq!(
            T::parse("all_storage_classes_128k").map_err(|e| e.code),
            Err("InvalidArgument".into())
        );
    }

    /// The sweep's cheap test: the next moment anything may become due, and which
    /// buckets have something due now.
    #[test]
    fn the_next_due_moment_is_the_earliest_rule_day_or_restore_step() {
        let mut w = World::new("000000000000");
        let env = Env::new("us-east-1", Timestamp(D / 2));
        w.create_bucket(&env, "bkt", None).expect("bucket");
        w.put_object(&env, "bkt", "k", super::super::NewVersion::default())
            .expect("put");
        assert_eq!(w.s3_next_due(env.now), None, "no rule, no restore");
        let rules = vec![LifecycleRule {
            expiration_days: Some(3),
            ..rule()
        }];
        w.put_bucket_lifecycle("bkt", rules, String::new(), M)
            .expect("rules");
        // Written on day 0: expires at the start of day 4.
        assert_eq!(w.s3_next_due(env.now), Some(4 * D));
        assert!(w.s3_due_buckets(Timestamp(4 * D - 1)).is_empty());
        assert_eq!(
            w.s3_due_buckets(Timestamp(4 * D)),
            vec![("bkt".to_string(), "us-east-1".to_string())]
        );
        w.settle_bucket(&Env::new("us-east-1", Timestamp(4 * D)), "bkt")
            .expect("settle");
        assert!(w.object_version("bkt", "k", None).is_err(), "expired");
        assert_eq!(w.s3_next_due(Timestamp(4 * D)), None);

        // A bucket in a region the account never used itself is settled in one it
        // has used: the sweep's commit must not create a default VPC there.
        w.ensure_region(&env).expect("region");
        w.create_bucket(&env, "far", Some("eu-west-1"))
            .expect("bucket");
        w.put_object(&env, "far", "k", super::super::NewVersion::default())
            .expect("put");
        let rules = vec![LifecycleRule {
            expiration_days: Some(1),
            ..rule()
        }];
        w.put_bucket_lifecycle("far", rules, String::new(), M)
            .expect("rules");
        assert_eq!(
            w.s3_due_buckets(Timestamp(10 * D)),
            vec![("far".to_string(), "us-east-1".to_string())]
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
