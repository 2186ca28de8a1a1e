//! Storage classes and the restore of archived objects.
//!
//! Every object version has a storage class (Amazon S3 User Guide, "Understanding and
//! managing Amazon S3 storage classes"). vpclab keeps the bytes of every class the same
//! way; what the class changes is what S3 lets a client do: an object in an *archived*
//! class (`GLACIER`, S3 Glacier Flexible Retrieval, and `DEEP_ARCHIVE`) cannot be read or
//! copied until a RestoreObject has made a temporary copy of it ("Working with archived
//! objects", "Restoring an archived object").
//!
//! A restore is kept as the time it was asked for, the time it completes and the days
//! the copy lives; its state (in progress, restored, expired) is computed from the
//! clock, so it survives a daemon restart and what a client sees needs no timer. Real
//! restores take minutes (Expedited) to hours (Standard, Bulk); vpclab compresses them
//! to [`restore_delay_ms`] so a learner can watch one complete (docs/fidelity.md). The
//! events of a restore's end (`s3:ObjectRestore:Completed`, `:Delete`) are sent by
//! [`World::settle_restores`], which the daemon's sweep runs when they are due.
//!
//! What lifecycle rules do with classes (Transition actions) is left to the lifecycle
//! code, which changes a version's class through [`World::transition_version`].

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Timestamp, World, no_such_key, object_id};

const DAY_MS: i64 = 86_400_000;

/// The storage classes S3 accepts for objects in general purpose buckets (PutObject
/// API reference, `x-amz-storage-class`). `OUTPOSTS`, `EXPRESS_ONEZONE`, `SNOW` and the
/// FSx classes exist in the API's enumeration but belong to Outposts, directory buckets,
/// Snow devices and FSx; a general purpose bucket refuses them with
/// `InvalidStorageClass`, like any unknown name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageClass {
    #[default]
    #[serde(rename = "STANDARD")]
    Standard,
    #[serde(rename = "REDUCED_REDUNDANCY")]
    ReducedRedundancy,
    #[serde(rename = "STANDARD_IA")]
    StandardIa,
    #[serde(rename = "ONEZONE_IA")]
    OnezoneIa,
    #[serde(rename = "INTELLIGENT_TIERING")]
    IntelligentTiering,
    #[serde(rename = "GLACIER")]
    Glacier,
    #[serde(rename = "DEEP_ARCHIVE")]
    DeepArchive,
    #[serde(rename = "GLACIER_IR")]
    GlacierIr,
}

impl StorageClass {
    pub const ALL: [StorageClass; 8] = [
        StorageClass::Standard,
        StorageClass::ReducedRedundancy,
        StorageClass::StandardIa,
        StorageClass::OnezoneIa,
        StorageClass::IntelligentTiering,
        StorageClass::Glacier,
        StorageClass::DeepArchive,
        StorageClass::GlacierIr,
    ];

    /// The name S3 uses on the wire.
    pub fn name(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::ReducedRedundancy => "REDUCED_REDUNDANCY",
            StorageClass::StandardIa => "STANDARD_IA",
            StorageClass::OnezoneIa => "ONEZONE_IA",
            StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            StorageClass::Glacier => "GLACIER",
            StorageClass::DeepArchive => "DEEP_ARCHIVE",
            StorageClass::GlacierIr => "GLACIER_IR",
        }
    }

    /// Parses an `x-amz-storage-class` value (case-sensitive, as S3 reads it).
    pub fn parse(name: &str) -> ApiResult<StorageClass> {
        StorageClass::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(invalid_storage_class)
    }

    /// `GLACIER` and `DEEP_ARCHIVE`: not readable in real time, restored first.
    /// (`GLACIER_IR` is read in milliseconds, like `STANDARD_IA`.)
    pub fn is_archived(self) -> bool {
        matches!(self, StorageClass::Glacier | StorageClass::DeepArchive)
    }

    /// For `skip_serializing_if`: rows of STANDARD objects stay as they were.
    pub fn is_standard(&self) -> bool {
        *self == StorageClass::Standard
    }
}

/// The retrieval tier a restore asks for (`GlacierJobParameters/Tier`; `Standard` when
/// absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestoreTier {
    Expedited,
    Standard,
    Bulk,
}

impl RestoreTier {
    pub fn parse(name: &str) -> Option<RestoreTier> {
        match name {
            "Expedited" => Some(RestoreTier::Expedited),
            "Standard" => Some(RestoreTier::Standard),
            "Bulk" => Some(RestoreTier::Bulk),
            _ => None,
        }
    }
}

/// How long a restore takes in vpclab: AWS's minutes-to-hours compressed to seconds, in
/// the same order (Expedited 1–5 minutes, Standard 3–5 hours, Bulk 5–12 hours for
/// S3 Glacier Flexible Retrieval; Deep Archive's are longer, and compressed the same).
pub fn restore_delay_ms(tier: RestoreTier) -> i64 {
    match tier {
        RestoreTier::Expedited => 1_000,
        RestoreTier::Standard => 5_000,
        RestoreTier::Bulk => 10_000,
    }
}

/// A restore of an archived version: asked for at `requested`, its temporary copy
/// available from `ready`, living `days` counted from `since` (the completion, or the
/// later RestoreObject that extended it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Restore {
    pub tier: RestoreTier,
    pub requested: i64,
    pub ready: i64,
    pub days: u32,
    pub since: i64,
    /// `s3:ObjectRestore:Completed` has been sent (by the sweep, or by the request
    /// that first named the bucket after `ready`). A restore stored before events were
    /// sent for completions has `false`, and gets its event late.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub announced: bool,
}

/// Where a restore stands at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreState {
    InProgress,
    /// Readable until `expiry` (milliseconds since the epoch).
    Restored {
        expiry: i64,
    },
    /// The temporary copy is gone; the object is archived again.
    Expired,
}

impl Restore {
    /// When the temporary copy is deleted: S3 adds the days to the completion time and
    /// rounds up to the next midnight UTC ("Restoring an archived object": "Amazon S3
    /// calculates the expiry date by adding the number of days specified in the
    /// restoration request to the time when the requested restoration is completed, and
    /// then rounding to the next day at midnight UTC").
    pub fn expiry(&self) -> i64 {
        let end = self.since + i64::from(self.days) * DAY_MS;
        (end.div_euclid(DAY_MS) + 1) * DAY_MS
    }

    /// Whether the sweep has something to do with this restore at `now`: announce its
    /// completion, or remove its expired copy.
    pub fn due(&self, now: Timestamp) -> bool {
        (!self.announced && now.0 >= self.ready) || now.0 >= self.expiry()
    }

    /// The next moment the sweep has something to do with this restore.
    pub fn next_moment(&self) -> i64 {
        if self.announced {
            self.expiry()
        } else {
            self.ready
        }
    }

    pub fn state(&self, now: Timestamp) -> RestoreState {
        if now.0 < self.ready {
            RestoreState::InProgress
        } else if now.0 < self.expiry() {
            RestoreState::Restored {
                expiry: self.expiry(),
            }
        } else {
            RestoreState::Expired
        }
    }
}

/// What a RestoreObject did: started a restore (202 Accepted) or extended the life of a
/// completed one (200 OK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreOutcome {
    Started,
    Extended,
}

pub fn invalid_storage_class() -> ApiError {
    ApiError::new(
        "InvalidStorageClass",
        "The storage class you specified is not valid",
    )
}

/// GetObject of an archived object that is not restored: 403 with the object's class
/// (the `InvalidObjectState` error shape has `StorageClass` and `AccessTier`).
pub fn not_restored(class: StorageClass) -> ApiError {
    ApiError::new(
        "InvalidObjectState",
        "The operation is not valid for the object's storage class",
    )
    .with_status(403)
    .with_element("StorageClass", class.name())
}

/// CopyObject / UploadPartCopy from an archived source that is not restored. The SDKs
/// model this as `ObjectNotInActiveTierError`; S3 answers it on the wire as
/// `InvalidObjectState` (403), which is what clients match on.
pub fn source_not_restored(class: StorageClass) -> ApiError {
    ApiError::new(
        "InvalidObjectState",
        "Operation is not valid for the source object's storage class",
    )
    .with_status(403)
    .with_element("StorageClass", class.name())
}

impl super::Version {
    /// Whether the bytes can be read at `now`: any class but an archived one, or an
    /// archived one with a completed, unexpired restore.
    pub fn readable_at(&self, now: Timestamp) -> bool {
        !self.storage_class.is_archived()
            || self
                .restore
                .as_ref()
                .is_some_and(|r| matches!(r.state(now), RestoreState::Restored { .. }))
    }

    /// The restore that still shows (in progress or restored), for `x-amz-restore`.
    pub fn restore_state(&self, now: Timestamp) -> Option<RestoreState> {
        self.restore
            .as_ref()
            .map(|r| r.state(now))
            .filter(|s| *s != RestoreState::Expired)
    }
}

impl World {
    /// RestoreObject of a version (the current one when `version_id` is `None`).
    ///
    /// Rules (RestoreObject API reference): only archived objects are restored
    /// (`InvalidObjectState` otherwise); a second request while one is in progress is
    /// `RestoreAlreadyInProgress` (409); a request for an object already restored
    /// changes how long the copy lives, counted from now (200 OK). Deep Archive has no
    /// Expedited tier.
    pub fn restore_object(
        &mut self,
        env: &super::Env,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        days: u32,
        tier: RestoreTier,
    ) -> ApiResult<RestoreOutcome> {
        let v = self.object_version(bucket, key, version_id)?;
        if v.delete_marker {
            return Err(super::no_such_key());
        }
        if !v.storage_class.is_archived() {
            return Err(ApiError::new(
                "InvalidObjectState",
                "Restore is not allowed for the object's current storage class",
            )
            .with_status(403)
            .with_element("StorageClass", v.storage_class.name()));
        }
        if v.storage_class == StorageClass::DeepArchive && tier == RestoreTier::Expedited {
            return Err(ApiError::new(
                "InvalidArgument",
                "Expedited retrieval is not supported for the DEEP_ARCHIVE storage class",
            ));
        }
        if days == 0 {
            return Err(ApiError::new(
                "InvalidArgument",
                "The Days element must be a positive integer",
            ));
        }
        let now = env.now.0;
        let (outcome, restore) = match v.restore.as_ref().map(|r| (r, r.state(env.now))) {
            Some((_, RestoreState::InProgress)) => {
                return Err(ApiError::new(
                    "RestoreAlreadyInProgress",
                    "Object restore is already in progress",
                )
                .with_status(409));
            }
            Some((r, RestoreState::Restored { .. })) => (
                RestoreOutcome::Extended,
                Restore {
                    days,
                    since: now,
                    ..r.clone()
                },
            ),
            None | Some((_, RestoreState::Expired)) => {
                let ready = now + restore_delay_ms(tier);
                (
                    RestoreOutcome::Started,
                    Restore {
                        tier,
                        requested: now,
                        ready,
                        days,
                        since: ready,
                        announced: false,
                    },
                )
            }
        };
        let (vid, size, etag) = (v.version_id.clone(), v.size, v.etag.clone());
        self.update_version(bucket, key, &vid, |v| v.restore = Some(restore))?;
        if outcome == RestoreOutcome::Started {
            // The completion and the expiry are announced when they come, by
            // `settle_restores` (the daemon's sweep, or the next request on the bucket).
            let shown = (vid != "null").then_some(vid.as_str());
            self.s3_notify(env, bucket, "ObjectRestore:Post", key, size, &etag, shown);
        }
        Ok(outcome)
    }

    /// Whether a version of the bucket has a restore due at `now` (see
    /// [`Restore::due`]).
    pub fn restores_due(&self, bucket: &str, now: Timestamp) -> bool {
        self.objects_from(bucket, "").any(|o| {
            o.versions
                .iter()
                .any(|v| v.restore.as_ref().is_some_and(|r| r.due(now)))
        })
    }

    /// Announces the restores of the bucket that completed (`s3:ObjectRestore:Completed`,
    /// with the `glacierEventData` of "Event message structure": the copy's expiry and
    /// the class it was restored from) and removes the copies that expired
    /// (`s3:ObjectRestore:Delete`), at `env.now`. The state a client sees was already
    /// computed from the clock; this only records and announces it.
    pub fn settle_restores(&mut self, env: &super::Env, bucket: &str) -> ApiResult<()> {
        let now = env.now;
        let due: Vec<(String, String)> = self
            .objects_from(bucket, "")
            .flat_map(|o| {
                o.versions
                    .iter()
                    .filter(|v| v.restore.as_ref().is_some_and(|r| r.due(now)))
                    .map(|v| (o.key.clone(), v.version_id.clone()))
            })
            .collect();
        for (key, vid) in due {
            let v = self.object_version(bucket, &key, Some(&vid))?;
            let Some(r) = v.restore.clone() else {
                continue;
            };
            let (class, size, etag) = (v.storage_class, v.size, v.etag.clone());
            let shown = (vid != "null").then_some(vid.as_str());
            if !r.announced && now.0 >= r.ready {
                self.update_version(bucket, &key, &vid, |v| {
                    if let Some(r) = v.restore.as_mut() {
                        r.announced = true;
                    }
                })?;
                let data = serde_json::json!({
                    "restoreEventData": {
                        "lifecycleRestorationExpiryTime": Timestamp(r.expiry()).iso(),
                        "lifecycleRestoreStorageClass": class.name(),
                    }
                });
                self.s3_notify_with(
                    env,
                    bucket,
                    "ObjectRestore:Completed",
                    &key,
                    size,
                    &etag,
                    shown,
                    Some(("glacierEventData", data)),
                );
            }
            if now.0 >= r.expiry() {
                self.update_version(bucket, &key, &vid, |v| v.restore = None)?;
                self.s3_notify(
                    env,
                    bucket,
                    "ObjectRestore:Delete",
                    &key,
                    size,
                    &etag,
                    shown,
                );
            }
        }
        Ok(())
    }

    /// Changes the storage class of one stored version in place, as a lifecycle
    /// Transition action does (no new version, same bytes, same Last-Modified). A
    /// version leaving the archived classes drops its restore; one entering them starts
    /// archived. Delete markers have no class and are refused with `NoSuchVersion`.
    pub fn transition_version(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        class: StorageClass,
    ) -> ApiResult<()> {
        self.update_version(bucket, key, version_id, |v| {
            if v.storage_class.is_archived() != class.is_archived() {
                v.restore = None;
            }
            v.storage_class = class;
        })
    }

    fn update_version(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        f: impl FnOnce(&mut super::Version),
    ) -> ApiResult<()> {
        self.bucket(bucket)?;
        let id = object_id(bucket, key);
        let obj = self.s3_objects.get_mut(&id).ok_or_else(no_such_key)?;
        let v = obj
            .versions
            .iter_mut()
            .find(|v| v.version_id == version_id && !v.delete_marker)
            .ok_or_else(super::no_such_version)?;
        f(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_parse_by_their_wire_names_only() {
        for c in StorageClass::ALL {
            assert_eq!(StorageClass::parse(c.name()), Ok(c));
        }
        for bad in [
            "standard",
            "OUTPOSTS",
            "EXPRESS_ONEZONE",
            "SNOW",
            "FSX_OPENZFS",
            "",
        ] {
            let e = StorageClass::parse(bad).expect_err(bad);
            assert_eq!(e.code, "InvalidStorageClass");
        }
        assert!(StorageClass::Glacier.is_archived() && StorageClass::DeepArchive.is_archived());
        assert!(!StorageClass::GlacierIr.is_archived());
    }

    /// "Restoring an archived object": the expiry is the completion plus the days,
    /// rounded up to the next midnight UTC.
    #[test]
    fn a_restore_runs_then_lives_its_days_to_the_next_midnight() {
        let requested = 10 * DAY_MS + 3_600_000; // day 10, 01:00
        let ready = requested + restore_delay_ms(RestoreTier::Standard);
        let r = Restore {
            tier: RestoreTier::Standard,
            requested,
            ready,
            days: 2,
            since: ready,
            announced: false,
        };
        assert_eq!(r.state(Timestamp(ready - 1)), RestoreState::InProgress);
        assert_eq!(r.expiry(), 13 * DAY_MS);
        assert_eq!(
            r.state(Timestamp(ready)),
            RestoreState::Restored {
                expiry: 13 * DAY_MS
            }
        );
        assert_eq!(r.state(Timestamp(13 * DAY_MS)), RestoreState::Expired);
    }

    #[test]
    fn old_rows_load_as_standard_and_new_fields_round_trip() {
        let old = r#"{"version_id":"null","delete_marker":false,"blob":"b","size":1,
            "etag":"\"x\"","last_modified":0}"#;
        let mut v: super::super::Version = serde_json::from_str(old).expect("an old row loads");
        assert_eq!(v.storage_class, StorageClass::Standard);
        assert!(v.restore.is_none());
        // A STANDARD row is written as before.
        assert!(
            !serde_json::to_string(&v)
                .expect("serialise")
                .contains("storage_class")
        );
        assert!(v.readable_at(Timestamp(0)));
        v.storage_class = StorageClass::DeepArchive;
        assert!(!v.readable_at(Timestamp(0)));
        v.restore = Some(Restore {
            tier: RestoreTier::Bulk,
            requested: 0,
            ready: 10_000,
            days: 1,
            since: 10_000,
            announced: false,
        });
        assert!(!v.readable_at(Timestamp(9_999)));
        assert!(v.readable_at(Timestamp(10_000)));
        let text = serde_json::to_string(&v).expect("serialise");
        assert!(text.contains(r#""storage_class":"DEEP_ARCHIVE""#), "{text}");
        let back: super::super::Version = serde_json::from_str(&text).expect("load");
        assert_eq!(back, v);
    }

    /// RestoreObject API reference: 202 for a new restore, 409
    /// `RestoreAlreadyInProgress` while it runs, 200 once restored (the days counted
    /// again from now), `InvalidObjectState` for an object that is not archived.
    #[test]
    fn restore_object_follows_the_api_reference() {
        use crate::model::Env;
        let mut w = World::new("000000000000");
        let at = |ms| Env::new("us-east-1", Timestamp(ms));
        let t0 = 100 * DAY_MS;
        w.create_bucket(&at(t0), "bkt", None).expect("bucket");
        let put = |w: &mut World, key: &str, class| {
            let new = super::super::NewVersion {
                blob: format!("blob-{key}"),
                storage_class: class,
                ..Default::default()
            };
            w.put_object(&at(t0), "bkt", key, new).expect("put");
        };
        put(&mut w, "cold", StorageClass::Glacier);
        put(&mut w, "warm", StorageClass::StandardIa);
        put(&mut w, "deep", StorageClass::DeepArchive);

        let e = w
            .restore_object(&at(t0), "bkt", "warm", None, 1, RestoreTier::Standard)
            .expect_err("not archived");
        assert_eq!((e.code.as_ref(), e.status), ("InvalidObjectState", 403));
        let e = w
            .restore_object(&at(t0), "bkt", "deep", None, 1, RestoreTier::Expedited)
            .expect_err("no Expedited for Deep Archive");
        assert_eq!(e.code, "InvalidArgument");

        let started = w.restore_object(&at(t0), "bkt", "cold", None, 1, RestoreTier::Standard);
        assert_eq!(started, Ok(RestoreOutcome::Started));
        let again = w
            .restore_object(&at(t0 + 1), "bkt", "cold", None, 1, RestoreTier::Standard)
            .expect_err("in progress");
        assert_eq!(
            (again.code.as_ref(), again.status),
            ("RestoreAlreadyInProgress", 409)
        );
        let v = w
            .object_version("bkt", "cold", None)
            .expect("version")
            .clone();
        assert!(!v.readable_at(Timestamp(t0 + 1)));
        let done = t0 + restore_delay_ms(RestoreTier::Standard);
        assert!(v.readable_at(Timestamp(done)));
        assert_eq!(
            v.restore_state(Timestamp(done)),
            Some(RestoreState::Restored {
                expiry: 102 * DAY_MS
            })
        );

        let later = t0 + 3 * DAY_MS / 2; // day 101, 12:00
        let extended = w.restore_object(&at(later), "bkt", "cold", None, 3, RestoreTier::Bulk);
        assert_eq!(extended, Ok(RestoreOutcome::Extended));
        let v = w.object_version("bkt", "cold", None).expect("version");
        assert_eq!(v.restore.as_ref().map(Restore::expiry), Some(105 * DAY_MS));

        // A lifecycle Transition changes the class in place and drops the restore when
        // the version leaves the archive.
        let vid = v.version_id.clone();
        w.transition_version("bkt", "cold", &vid, StorageClass::Standard)
            .expect("transition");
        let v = w.object_version("bkt", "cold", None).expect("version");
        assert_eq!(
            (v.storage_class, v.restore.is_none()),
            (StorageClass::Standard, true)
        );
        assert!(
            w.transition_version("bkt", "nope", "null", StorageClass::Glacier)
                .is_err()
        );
    }

    /// The sweep's part of a restore: nothing to do while it runs; at completion it is
    /// announced once; at expiry the copy is removed ("Restoring an archived object").
    #[test]
    fn a_restore_is_settled_at_completion_then_at_expiry() {
        use crate::model::Env;
        let mut w = World::new("000000000000");
        let at = |ms| Env::new("us-east-1", Timestamp(ms));
        let t0 = 100 * DAY_MS;
        w.create_bucket(&at(t0), "bkt", None).expect("bucket");
        let new = super::super::NewVersion {
            blob: "blob".into(),
            storage_class: StorageClass::Glacier,
            ..Default::default()
        };
        w.put_object(&at(t0), "bkt", "cold", new).expect("put");
        w.restore_object(&at(t0), "bkt", "cold", None, 1, RestoreTier::Expedited)
            .expect("restore");
        let ready = t0 + restore_delay_ms(RestoreTier::Expedited);
        assert!(!w.restores_due("bkt", Timestamp(ready - 1)));
        assert_eq!(w.s3_next_due(Timestamp(t0)), Some(ready));
        assert!(w.restores_due("bkt", Timestamp(ready)));
        w.settle_restores(&at(ready), "bkt").expect("settle");
        let r = |w: &World| {
            w.object_version("bkt", "cold", None)
                .expect("version")
                .restore
                .clone()
        };
        assert!(r(&w).is_some_and(|r| r.announced));
        assert!(!w.restores_due("bkt", Timestamp(ready + 1)));
        // Completed on day 100 with 1 day: expires at the start of day 102.
        assert_eq!(w.s3_next_due(Timestamp(ready)), Some(102 * DAY_MS));
        w.settle_restores(&at(102 * DAY_MS), "bkt").expect("settle");
        assert_eq!(r(&w), None);
        assert_eq!(w.s3_next_due(Timestamp(102 * DAY_MS)), None);
    }
}
