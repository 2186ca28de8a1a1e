//! Amazon S3 in the model: buckets and the metadata of objects, versions and multipart
//! uploads, per account, durable in the store like every other resource.
//!
//! Object *bytes* are not in the model: each version names a blob (a file the API layer
//! writes, fsyncs and renames into the state directory before the metadata commit). The
//! model hands back the blobs a mutation stopped referencing ([`Freed`]) so the API layer
//! deletes them only after the commit: a crash between the two leaves an orphan file,
//! never a row without its bytes.
//!
//! Row ids: a [`Bucket`] is its name; an [`S3Object`] is `BUCKET/KEY` (bucket names
//! cannot contain `/`, so a bucket's objects are one contiguous id range in key order, the
//! order S3 lists them in); an [`Upload`] is its upload id.
//!
//! Rules follow the Amazon S3 User Guide ("General purpose bucket naming rules",
//! "Retaining multiple versions of objects with S3 Versioning", "Hosting a static
//! website using Amazon S3", "Blocking public access") and the API reference's errors.
//! Bucket names are unique per vpclab account (AWS makes them global): each account is
//! its own world.

pub mod class;
pub mod cors;
pub mod lifecycle;
pub mod notify;
pub mod policy;
pub mod replication;
pub mod website;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use class::{Restore, RestoreOutcome, RestoreState, RestoreTier, StorageClass};
pub use lifecycle::LifecycleRule;

use super::{ApiError, ApiResult, Control, Env, Resource, Timestamp, World};

/// The longest object key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// User-defined metadata (`x-amz-meta-*`): at most 2 KB, names and values counted.
pub const MAX_METADATA_BYTES: usize = 2048;
/// Tags per object and per bucket.
pub const MAX_OBJECT_TAGS: usize = 10;
pub const MAX_BUCKET_TAGS: usize = 50;
/// Multipart uploads: part numbers 1..=10,000; every part but the last at least 5 MiB.
pub const MAX_PART_NUMBER: u32 = 10_000;
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// What a new bucket gets since April 2023: everything blocked.
    pub fn all() -> PublicAccessBlock {
        PublicAccessBlock {
            block_public_acls: true,
            ignore_public_acls: true,
            block_public_policy: true,
            restrict_public_buckets: true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bucket {
    pub id: String,
    pub region: String,
    pub created: i64,
    /// `None` (never enabled), `Enabled` or `Suspended`.
    #[serde(default)]
    pub versioning: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The bucket policy as put (validated JSON).
    #[serde(default)]
    pub policy: Option<String>,
    /// CORS configuration as put (XML, what GetBucketCors answers), and the same
    /// parsed (what preflights and cross-origin requests are decided on). A bucket
    /// stored before the parsed form existed has only the XML, which the API layer
    /// parses when it needs the rules.
    #[serde(default)]
    pub cors_xml: Option<String>,
    #[serde(default)]
    pub cors: Option<cors::CorsConfig>,
    #[serde(default)]
    pub lifecycle_xml: Option<String>,
    #[serde(default)]
    pub lifecycle: Vec<LifecycleRule>,
    /// The lifecycle configuration's `x-amz-transition-default-minimum-object-size`.
    #[serde(
        default,
        skip_serializing_if = "lifecycle::TransitionMinimum::is_default"
    )]
    pub transition_minimum: lifecycle::TransitionMinimum,
    #[serde(default)]
    pub website: Option<website::WebsiteConfig>,
    /// `None`: no configuration (nothing blocked, as for buckets made before 2023).
    #[serde(default)]
    pub public_access_block: Option<PublicAccessBlock>,
    /// Event notifications (PutBucketNotificationConfiguration), `None` when none.
    #[serde(default)]
    pub notification: Option<notify::NotificationConfig>,
    /// Replication (PutBucketReplication), `None` when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<replication::ReplicationConfig>,
}

impl Resource for Bucket {
    const KIND: &'static str = "s3_bucket";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Bucket {
    pub fn name(&self) -> &str {
        &self.id
    }

    /// Versioning was ever enabled (new writes then get version ids).
    pub fn versioning_enabled(&self) -> bool {
        self.versioning.as_deref() == Some("Enabled")
    }

    /// Whether the bucket policy lets anyone read `key` (the website endpoint's test),
    /// honouring RestrictPublicBuckets.
    pub fn publicly_readable(&self, key: &str) -> bool {
        if self
            .public_access_block
            .as_ref()
            .is_some_and(|b| b.restrict_public_buckets)
        {
            return false;
        }
        self.policy
            .as_deref()
            .is_some_and(|p| policy::allows_public_get(p, &self.id, key))
    }
}

/// One version of an object (or a delete marker).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Version {
    /// `null` for objects written while versioning was never enabled or suspended.
    pub version_id: String,
    pub delete_marker: bool,
    /// The blob holding the bytes (empty for a delete marker).
    pub blob: String,
    pub size: u64,
    /// Quoted, as S3 sends it.
    pub etag: String,
    pub last_modified: i64,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*`, names lower-cased without the prefix.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The additional checksum the object was uploaded with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
    /// The parts a multipart upload assembled this version from, in order; empty for
    /// an object written in one piece, and for multipart objects stored before part
    /// boundaries were kept (those still count their parts from the ETag's `-N`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<ObjectPart>,
    /// `x-amz-replication-status`: `COMPLETED` or `FAILED` on a source version a
    /// replication rule selected, `REPLICA` on the copy ([`replication`]); `None` for
    /// every other version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_status: Option<String>,
    /// STANDARD for rows stored before classes were kept.
    #[serde(default, skip_serializing_if = "StorageClass::is_standard")]
    pub storage_class: StorageClass,
    /// The last RestoreObject of an archived version (its state follows the clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
}

/// One part of a completed multipart object: enough to serve `GET ?partNumber=N`
/// (where its bytes start is the sum of the sizes before it) and GetObjectAttributes'
/// `ObjectParts`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectPart {
    pub number: u32,
    pub size: u64,
    /// Base64 of the part's digest in the object's checksum algorithm, when the upload
    /// had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// Where one part of a version lies: `start..end` in the object's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartSpan<'a> {
    pub start: u64,
    pub end: u64,
    /// `None` for an object written in one piece (its only part is the whole object).
    pub part: Option<&'a ObjectPart>,
}

impl Version {
    /// How many parts the object has: the kept parts, else the ETag's `-N` (objects
    /// completed before parts were kept), else 1.
    pub fn parts_count(&self) -> u32 {
        if !self.parts.is_empty() {
            return u32::try_from(self.parts.len()).unwrap_or(u32::MAX);
        }
        self.multipart_etag_count().unwrap_or(1)
    }

    /// The `N` of a multipart ETag (`"…-N"`), if this is one.
    pub fn multipart_etag_count(&self) -> Option<u32> {
        self.etag
            .trim_matches('"')
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse().ok())
    }

    /// The byte span of part `n`.
    pub fn part_span(&self, n: u32) -> Result<PartSpan<'_>, PartMiss> {
        if self.parts.is_empty() {
            if self.multipart_etag_count().is_some() {
                return Err(PartMiss::BoundariesUnknown);
            }
            return match n {
                1 => Ok(PartSpan {
                    start: 0,
                    end: self.size,
                    part: None,
                }),
                _ => Err(PartMiss::NoSuchPart),
            };
        }
        let mut start = 0;
        for p in &self.parts {
            if p.number == n {
                return Ok(PartSpan {
                    start,
                    end: start + p.size,
                    part: Some(p),
                });
            }
            start += p.size;
        }
        Err(PartMiss::NoSuchPart)
    }
}

/// Why [`Version::part_span`] found no part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartMiss {
    /// The object has no part with that number.
    NoSuchPart,
    /// The object is multipart but was stored by a vpclab that did not keep part
    /// boundaries, so no part can be located.
    BoundariesUnknown,
}

/// An object's additional checksum (S3 User Guide, "Checking object integrity"): kept
/// as uploaded and returned by GetObject / HeadObject when the request sets
/// `x-amz-checksum-mode: ENABLED`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectChecksum {
    /// S3's name of the algorithm: `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`,
    /// `SHA512`, `MD5`, `XXHASH64`, `XXHASH3`, `XXHASH128`.
    pub algorithm: String,
    /// Base64 of the digest; a composite multipart checksum ends in `-N` (N parts).
    pub value: String,
    /// `FULL_OBJECT` (a digest of the whole body) or `COMPOSITE` (a digest of the
    /// parts' digests).
    pub kind: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct S3Object {
    pub id: String,
    pub region: String,
    pub bucket: String,
    pub key: String,
    /// Oldest first; the last is the current version.
    pub versions: Vec<Version>,
}

impl Resource for S3Object {
    const KIND: &'static str = "s3_object";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl S3Object {
    pub fn current(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// The current version unless it is a delete marker.
    pub fn live(&self) -> Option<&Version> {
        self.current().filter(|v| !v.delete_marker)
    }
}

pub fn object_id(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    pub blob: String,
    pub size: u64,
    pub etag: String,
    /// The part's MD5 (binary, hex), for the multipart ETag.
    pub md5_hex: String,
    pub last_modified: i64,
    /// Base64 of the part's digest in the upload's checksum algorithm, when the upload
    /// has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    pub region: String,
    pub bucket: String,
    pub key: String,
    pub created: i64,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub parts: BTreeMap<u32, Part>,
    /// The checksum algorithm CreateMultipartUpload named (`x-amz-checksum-algorithm`)
    /// and how the object's checksum is formed from the parts' (`x-amz-checksum-type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<UploadChecksum>,
    /// The class CreateMultipartUpload named; the completed object gets it.
    #[serde(default, skip_serializing_if = "StorageClass::is_standard")]
    pub storage_class: StorageClass,
}

/// A multipart upload's checksum settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadChecksum {
    pub algorithm: String,
    /// `COMPOSITE` or `FULL_OBJECT`.
    pub kind: String,
}

impl Resource for Upload {
    const KIND: &'static str = "s3_upload";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// Blobs a mutation stopped referencing: delete them after the commit.
pub type Freed = Vec<String>;

/// What a new object version is made of (its bytes are already in `blob`).
#[derive(Clone, Debug, Default)]
pub struct NewVersion {
    pub blob: String,
    pub size: u64,
    pub etag: String,
    pub headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub checksum: Option<ObjectChecksum>,
    /// The parts of a completed multipart upload; empty for any other write.
    pub parts: Vec<ObjectPart>,
    pub storage_class: StorageClass,
}

pub fn no_such_bucket(name: &str) -> ApiError {
    ApiError::new(
        "NoSuchBucket",
        format!("The specified bucket does not exist: {name}"),
    )
    .with_status(404)
}

pub fn no_such_key() -> ApiError {
    ApiError::new("NoSuchKey", "The specified key does not exist.").with_status(404)
}

pub fn no_such_version() -> ApiError {
    ApiError::new("NoSuchVersion", "The specified version does not exist.").with_status(404)
}

pub fn no_such_upload() -> ApiError {
    ApiError::new(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
    .with_status(404)
}

pub fn invalid_argument(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidArgument", message)
}

pub fn invalid_bucket_name(name: &str) -> ApiError {
    ApiError::new(
        "InvalidBucketName",
        format!("The specified bucket is not valid: {name:?}"),
    )
}

/// AWS's general purpose bucket naming rules. Returns why a name is refused.
pub fn bucket_name_problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Some("bucket names must be between 3 and 63 characters long");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
    {
        return Some(
            "bucket names can consist only of lowercase letters, numbers, periods and hyphens",
        );
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Some("bucket names must begin and end with a letter or number");
    }
    if name.contains("..") {
        return Some("bucket names must not contain two adjacent periods");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("bucket names must not be formatted as an IP address");
    }
    for p in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(p) {
            return Some("bucket names must not start with xn--, sthree- or amzn-s3-demo-");
        }
    }
    for s in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(s) {
            return Some(
                "bucket names must not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3",
            );
        }
    }
    None
}

/// Checks an object key (length; S3 takes any UTF-8).
pub fn check_key(key: &str) -> ApiResult<()> {
    if key.is_empty() {
        return Err(invalid_argument("An object key must not be empty."));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::new("KeyTooLongError", "Your key is too long"));
    }
    Ok(())
}

/// Checks a tag set (object or bucket limits; keys up to 128, values up to 256 chars).
pub fn check_tags(tags: &BTreeMap<String, String>, max: usize) -> ApiResult<()> {
    if tags.len() > max {
        return Err(ApiError::new(
            if max == MAX_OBJECT_TAGS {
                "BadRequest"
            } else {
                "InvalidTag"
            },
            format!("Object tags cannot be greater than {max}"),
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(ApiError::new(
                "InvalidTag",
                "The TagKey you have provided is invalid",
            ));
        }
        if v.chars().count() > 256 {
            return Err(ApiError::new(
                "InvalidTag",
                "The TagValue you have provided is invalid",
            ));
        }
        if k.starts_with("aws:") {
            return Err(ApiError::new(
                "InvalidTag",
                "System tags cannot be added/updated by requester",
            ));
        }
    }
    Ok(())
}

/// CreateBucket's answer for a name another account holds (409).
pub fn bucket_already_exists() -> ApiError {
    ApiError::new(
        "BucketAlreadyExists",
        "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
    )
    .with_status(409)
}

/// Bucket names are global, as on AWS ("Bucket naming rules": a name is unique across
/// all accounts in a partition): the namespace is every world of the daemon, so it is
/// derived from the stored buckets and needs no table of its own, and survives a
/// restart as they do. State from before names were global may hold one name in
/// several accounts; each keeps its bucket (its owner reaches it first, others find the
/// first account in account order), and the name is free again only once every one of
/// them is deleted.
impl Control {
    /// The accounts whose worlds hold a bucket named `name`, in account order.
    pub fn bucket_holders(&self, name: &str) -> Vec<String> {
        self.accounts()
            .into_iter()
            .filter(|a| self.snapshot(a).is_some_and(|w| w.buckets.contains(name)))
            .collect()
    }

    /// CreateBucket for `account`: [`World::create_bucket_in_namespace`] with the
    /// daemon-wide namespace, looked at and changed under the one lock, so two accounts
    /// racing for a name cannot both get it.
    pub fn create_bucket(
        &mut self,
        account: &str,
        env: &Env,
        name: &str,
        constraint: Option<&str>,
    ) -> ApiResult<bool> {
        let elsewhere = self.bucket_holders(name).iter().any(|a| a != account);
        self.mutate(account, env, false, |w, env| {
            w.create_bucket_in_namespace(env, name, constraint, elsewhere)
        })
    }
}

impl World {
    pub fn bucket(&self, name: &str) -> ApiResult<&Bucket> {
        self.buckets.get(name).ok_or_else(|| no_such_bucket(name))
    }

    fn bucket_mut(&mut self, name: &str) -> ApiResult<&mut Bucket> {
        self.buckets
            .get_mut(name)
            .ok_or_else(|| no_such_bucket(name))
    }

    /// CreateBucket in this account alone, as if no other account held a bucket (see
    /// [`World::create_bucket_in_namespace`]; the daemon's CreateBucket goes through
    /// [`Control::create_bucket`]).
    pub fn create_bucket(
        &mut self,
        env: &Env,
        name: &str,
        constraint: Option<&str>,
    ) -> ApiResult<bool> {
        self.create_bucket_in_namespace(env, name, constraint, false)
    }

    /// CreateBucket. `env.region` is the credential scope's region, `constraint` the
    /// body's LocationConstraint, `held_elsewhere` whether another account of the daemon
    /// has a bucket of that name. Returns `false` when the bucket already existed in
    /// us-east-1 (AWS answers 200 there for a bucket you own). The checks run in the
    /// order of the request: the name, the location, then whether the name is free.
    pub fn create_bucket_in_namespace(
        &mut self,
        env: &Env,
        name: &str,
        constraint: Option<&str>,
        held_elsewhere: bool,
    ) -> ApiResult<bool> {
        if let Some(problem) = bucket_name_problem(name) {
            return Err(ApiError::new(
                "InvalidBucketName",
                format!("The specified bucket is not valid ({problem})."),
            ));
        }
        let endpoint = env.region.as_str();
        let region = match constraint.filter(|c| !c.is_empty()) {
            None if endpoint == "us-east-1" => "us-east-1".to_string(),
            None => {
                return Err(ApiError::new(
                    "IllegalLocationConstraintException",
                    "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.",
                ));
            }
            Some("us-east-1") => {
                return Err(ApiError::new(
                    "InvalidLocationConstraint",
                    "The specified location-constraint is not valid",
                ));
            }
            Some(c) if super::region::region(c).is_none() => {
                return Err(ApiError::new(
                    "InvalidLocationConstraint",
                    "The specified location-constraint is not valid",
                ));
            }
            Some(c) if endpoint != "us-east-1" && c != endpoint => {
                return Err(ApiError::new(
                    "IllegalLocationConstraintException",
                    format!(
                        "The {c} location constraint is incompatible for the region specific endpoint this request was sent to."
                    ),
                ));
            }
            Some(c) => c.to_string(),
        };
        // "The bucket you tried to create already exists, and you own it. Amazon S3
        // returns this error in all Amazon Web Services Regions except in the North
        // Virginia Region. For legacy compatibility, if you re-create an existing bucket
        // that you already own in the North Virginia Region, Amazon S3 returns 200 OK"
        // (API reference, CreateBucket, BucketAlreadyOwnedByYou).
        if let Some(existing) = self.buckets.get(name) {
            if existing.region == "us-east-1" && region == "us-east-1" {
                return Ok(false);
            }
            return Err(ApiError::new(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            )
            .with_status(409));
        }
        // "The requested bucket name is not available. The bucket namespace is shared by
        // all users of the system." (BucketAlreadyExists): another account's name.
        if held_elsewhere {
            return Err(bucket_already_exists());
        }
        self.buckets.insert(Bucket {
            id: name.to_string(),
            region,
            created: env.now.0,
            versioning: None,
            tags: BTreeMap::new(),
            policy: None,
            cors_xml: None,
            cors: None,
            lifecycle_xml: None,
            lifecycle: Vec::new(),
            transition_minimum: Default::default(),
            website: None,
            public_access_block: Some(PublicAccessBlock::all()),
            notification: None,
            replication: None,
        });
        Ok(true)
    }

    /// The objects of a bucket, in key order, starting at the first key `>= from`.
    pub fn objects_from<'a>(
        &'a self,
        bucket: &str,
        from: &str,
    ) -> impl Iterator<Item = &'a S3Object> + use<'a> {
        let start = object_id(bucket, from);
        let prefix = format!("{bucket}/");
        self.s3_objects
            .range_from(&start)
            .take_while(move |o| o.id.starts_with(&prefix))
    }

    /// DeleteBucket: only when no object, version or upload is left.
    pub fn delete_bucket(&mut self, name: &str) -> ApiResult<()> {
        self.bucket(name)?;
        if self.objects_from(name, "").next().is_some() {
            return Err(ApiError::new(
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
            )
            .with_status(409));
        }
        for id in self.s3_uploads.ids_where(|u| u.bucket == name) {
            self.s3_uploads.remove(&id);
        }
        self.buckets.remove(name);
        Ok(())
    }

    /// PutObject (and the end of CopyObject / CompleteMultipartUpload): a new current
    /// version. Returns its version id and the blobs it replaced.
    pub fn put_object(
        &mut self,
        env: &Env,
        bucket: &str,
        key: &str,
        new: NewVersion,
    ) -> ApiResult<(String, Freed)> {
        check_key(key)?;
        check_tags(&new.tags, MAX_OBJECT_TAGS)?;
        let b = self.bucket(bucket)?.clone();
        let version_id = if b.versioning_enabled() {
            self.new_version_id()
        } else {
            "null".to_string()
        };
        let version = Version {
            version_id: version_id.clone(),
            delete_marker: false,
            blob: new.blob,
            size: new.size,
            etag: new.etag,
            last_modified: env.now.0,
            headers: new.headers,
            metadata: new.metadata,
            tags: new.tags,
            checksum: new.checksum,
            parts: new.parts,
            replication_status: None,
            storage_class: new.storage_class,
            restore: None,
        };
        let (size, etag) = (version.size, version.etag.clone());
        let freed = self.push_version(&b, key, version);
        // The event type follows the API call that wrote the object.
        let event = match env.action.as_str() {
            "CopyObject" => "ObjectCreated:Copy",
            "CompleteMultipartUpload" => "ObjectCreated:CompleteMultipartUpload",
            "PostObject" => "ObjectCreated:Post",
            _ => "ObjectCreated:Put",
        };
        let vid = (version_id != "null").then_some(version_id.as_str());
        self.s3_notify(env, bucket, event, key, size, &etag, vid);
        Ok((version_id, freed))
    }

    /// Adds a version: replaces the `null` version unless versioning is enabled.
    fn push_version(&mut self, b: &Bucket, key: &str, version: Version) -> Freed {
        let id = object_id(&b.id, key);
        let mut obj = self.s3_objects.get(&id).cloned().unwrap_or(S3Object {
            id: id.clone(),
            region: b.region.clone(),
            bucket: b.id.clone(),
            key: key.to_string(),
            versions: Vec::new(),
        });
        let mut freed = Vec::new();
        if version.version_id == "null" {
            obj.versions.retain(|v| {
                if v.version_id == "null" {
                    if !v.blob.is_empty() {
                        freed.push(v.blob.clone());
                    }
                    false
                } else {
                    true
                }
            });
        }
        obj.versions.push(version);
        self.s3_objects.insert(obj);
        freed
    }

    fn new_version_id(&mut self) -> String {
        let (a, b) = (self.alloc_bits(), self.alloc_bits());
        // 32 URL-safe characters, like S3's opaque version ids.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
        let mut out = String::with_capacity(32);
        let mut bits = (u128::from(a) << 64) | u128::from(b);
        for _ in 0..21 {
            out.push(ALPHABET[(bits & 63) as usize] as char);
            bits >>= 6;
        }
        out
    }

    /// The version a GET or HEAD reads: the given one, or the current one.
    pub fn object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> ApiResult<&Version> {
        self.bucket(bucket)?;
        let obj = self.s3_objects.get(&object_id(bucket, key));
        match version_id {
            None => obj.and_then(S3Object::live).ok_or_else(no_such_key),
            Some(v) => obj
                .and_then(|o| o.versions.iter().find(|x| x.version_id == v))
                .ok_or_else(|| {
                    if v != "null"
                        && !v
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
                    {
                        invalid_argument("Invalid version id specified")
                    } else {
                        no_such_version()
                    }
                }),
        }
    }

    /// DeleteObject. Without a version id: removes the object (unversioned) or adds a
    /// delete marker (versioning enabled or suspended). With one: removes that version
    /// for good. Returns (version id deleted or created, whether it is a delete marker,
    /// freed blobs).
    pub fn delete_object(
        &mut self,
        env: &Env,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> ApiResult<(Option<String>, bool, Freed)> {
        let existed = self.s3_objects.contains(&object_id(bucket, key));
        let (vid, marker, freed) = self.remove_object(env, bucket, key, version_id)?;
        // ObjectRemoved: a delete marker made, or something actually removed.
        let created_marker = marker && version_id.is_none();
        if created_marker && let Some(v) = &vid {
            self.replicate_delete_marker(env, bucket, key, v);
        }
        if created_marker || existed {
            let event = if created_marker {
                "ObjectRemoved:DeleteMarkerCreated"
            } else {
                "ObjectRemoved:Delete"
            };
            self.s3_notify(env, bucket, event, key, 0, "", vid.as_deref());
        }
        Ok((vid, marker, freed))
    }

    fn remove_object(
        &mut self,
        env: &Env,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> ApiResult<(Option<String>, bool, Freed)> {
        let b = self.bucket(bucket)?.clone();
        let id = object_id(bucket, key);
        let Some(mut obj) = self.s3_objects.get(&id).cloned() else {
            if b.versioning.is_none() || version_id.is_some() {
                // Deleting what is not there succeeds (204), as on S3.
                return Ok((version_id.map(str::to_string), false, Vec::new()));
            }
            let marker = self.marker(env, &b);
            let vid = marker.version_id.clone();
            self.push_version(&b, key, marker);
            return Ok((Some(vid), true, Vec::new()));
        };
        match version_id {
            Some(v) => {
                let Some(pos) = obj.versions.iter().position(|x| x.version_id == v) else {
                    return Ok((Some(v.to_string()), false, Vec::new()));
                };
                let gone = obj.versions.remove(pos);
                let freed = if gone.blob.is_empty() {
                    Vec::new()
                } else {
                    vec![gone.blob]
                };
                if obj.versions.is_empty() {
                    self.s3_objects.remove(&id);
                } else {
                    self.s3_objects.insert(obj);
                }
                Ok((Some(v.to_string()), gone.delete_marker, freed))
            }
            None if b.versioning.is_none() => {
                let freed = obj
                    .versions
                    .iter()
                    .filter(|v| !v.blob.is_empty())
                    .map(|v| v.blob.clone())
                    .collect();
                self.s3_objects.remove(&id);
                Ok((None, false, freed))
            }
            None => {
                let marker = self.marker(env, &b);
                let vid = marker.version_id.clone();
                let freed = self.push_version(&b, key, marker);
                Ok((Some(vid), true, freed))
            }
        }
    }

    fn marker(&mut self, env: &Env, b: &Bucket) -> Version {
        let version_id = if b.versioning_enabled() {
            self.new_version_id()
        } else {
            "null".to_string()
        };
        Version {
            version_id,
            delete_marker: true,
            blob: String::new(),
            size: 0,
            etag: String::new(),
            last_modified: env.now.0,
            headers: BTreeMap::new(),
            metadata: BTreeMap::new(),
            tags: BTreeMap::new(),
            checksum: None,
            parts: Vec::new(),
            replication_status: None,
            storage_class: StorageClass::Standard,
            restore: None,
        }
    }

    /// PutBucketVersioning (`Enabled` or `Suspended`; a bucket never goes back to
    /// unversioned).
    pub fn put_bucket_versioning(&mut self, bucket: &str, status: &str) -> ApiResult<()> {
        if status != "Enabled" && status != "Suspended" {
            return Err(ApiError::new(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
        let b = self.bucket_mut(bucket)?;
        // "A replication configuration is present on this bucket, so you cannot change
        // the versioning state": replication needs versioning enabled.
        if status == "Suspended" && b.replication.is_some() {
            return Err(replication::versioning_locked());
        }
        b.versioning = Some(status.to_string());
        Ok(())
    }

    /// Changes a bucket's tags, policy, CORS, website … through one function.
    pub fn update_bucket(
        &mut self,
        bucket: &str,
        f: impl FnOnce(&mut Bucket) -> ApiResult<()>,
    ) -> ApiResult<()> {
        let mut b = self.bucket(bucket)?.clone();
        f(&mut b)?;
        self.buckets.insert(b);
        Ok(())
    }

    /// PutBucketPolicy: validated, refused when public and BlockPublicPolicy is on.
    pub fn put_bucket_policy(&mut self, bucket: &str, text: &str) -> ApiResult<()> {
        policy::validate(text, bucket)?;
        let b = self.bucket(bucket)?;
        if b.public_access_block
            .as_ref()
            .is_some_and(|p| p.block_public_policy)
            && policy::is_public(text)
        {
            return Err(ApiError::new(
                "AccessDenied",
                "User is not authorized to perform: s3:PutBucketPolicy on resource because public policies are blocked by the BlockPublicPolicy block public access setting.",
            )
            .with_status(403));
        }
        self.update_bucket(bucket, |b| {
            b.policy = Some(text.to_string());
            Ok(())
        })
    }

    /// PutObjectTagging: replaces a version's tags and sends `s3:ObjectTagging:Put`.
    pub fn set_object_tags(
        &mut self,
        env: &Env,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<String> {
        check_tags(&tags, MAX_OBJECT_TAGS)?;
        self.replace_object_tags(env, bucket, key, version_id, tags, "ObjectTagging:Put")
    }

    /// DeleteObjectTagging: removes a version's tags and sends
    /// `s3:ObjectTagging:Delete`.
    pub fn delete_object_tags(
        &mut self,
        env: &Env,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> ApiResult<String> {
        self.replace_object_tags(
            env,
            bucket,
            key,
            version_id,
            BTreeMap::new(),
            "ObjectTagging:Delete",
        )
    }

    fn replace_object_tags(
        &mut self,
        env: &Env,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
        event: &str,
    ) -> ApiResult<String> {
        let v = self.object_version(bucket, key, version_id)?;
        let (vid, size, etag) = (v.version_id.clone(), v.size, v.etag.clone());
        let id = object_id(bucket, key);
        let obj = self.s3_objects.get_mut(&id).ok_or_else(no_such_key)?;
        if let Some(v) = obj.versions.iter_mut().find(|v| v.version_id == vid) {
            v.tags = tags;
        }
        // "Supported event types": s3:ObjectTagging:Put "when a tag is PUT on an
        // object or an existing tag is updated", :Delete "when all tags are removed".
        self.s3_notify(env, bucket, event, key, size, &etag, Some(&vid));
        Ok(vid)
    }

    /// CreateMultipartUpload.
    pub fn create_upload(
        &mut self,
        env: &Env,
        bucket: &str,
        key: &str,
        headers: BTreeMap<String, String>,
        metadata: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<String> {
        check_key(key)?;
        check_tags(&tags, MAX_OBJECT_TAGS)?;
        let region = self.bucket(bucket)?.region.clone();
        let (a, b) = (self.alloc_bits(), self.alloc_bits());
        let id = format!("{a:016x}{b:016x}");
        self.s3_uploads.insert(Upload {
            id: id.clone(),
            region,
            bucket: bucket.to_string(),
            key: key.to_string(),
            created: env.now.0,
            headers,
            metadata,
            tags,
            parts: BTreeMap::new(),
            checksum: None,
            storage_class: StorageClass::Standard,
        });
        Ok(id)
    }

    /// Gives a new upload the checksum settings its CreateMultipartUpload named (in
    /// the same commit).
    pub fn set_upload_checksum(&mut self, upload_id: &str, checksum: Option<UploadChecksum>) {
        if let Some(u) = self.s3_uploads.get_mut(upload_id) {
            u.checksum = checksum;
        }
    }

    /// Gives a new upload the storage class its CreateMultipartUpload named (in the
    /// same commit).
    pub fn set_upload_class(&mut self, upload_id: &str, class: StorageClass) {
        if let Some(u) = self.s3_uploads.get_mut(upload_id) {
            u.storage_class = class;
        }
    }

    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> ApiResult<&Upload> {
        self.bucket(bucket)?;
        self.s3_uploads
            .get(upload_id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .ok_or_else(no_such_upload)
    }

    /// UploadPart: records a part (replacing one with the same number).
    pub fn put_part(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        part: Part,
    ) -> ApiResult<Freed> {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            ));
        }
        self.upload(bucket, key, upload_id)?;
        let u = self
            .s3_uploads
            .get_mut(upload_id)
            .ok_or_else(no_such_upload)?;
        Ok(u.parts
            .insert(number, part)
            .map(|old| vec![old.blob])
            .unwrap_or_default())
    }

    /// AbortMultipartUpload: the upload and its parts go.
    pub fn abort_upload(&mut self, bucket: &str, key: &str, upload_id: &str) -> ApiResult<Freed> {
        self.upload(bucket, key, upload_id)?;
        let u = self
            .s3_uploads
            .remove(upload_id)
            .ok_or_else(no_such_upload)?;
        Ok(u.parts.into_values().map(|p| p.blob).collect())
    }

    /// The parts CompleteMultipartUpload names, checked as S3 checks them: ascending
    /// numbers, each uploaded with that ETag, every part but the last at least 5 MiB.
    pub fn parts_to_complete(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        wanted: &[(u32, String)],
    ) -> ApiResult<Vec<Part>> {
        let u = self.upload(bucket, key, upload_id)?;
        if wanted.is_empty() {
            return Err(ApiError::new(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
        let mut out = Vec::new();
        let mut last = 0;
        for (i, (n, etag)) in wanted.iter().enumerate() {
            if *n <= last {
                return Err(ApiError::new(
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order. Parts must be ordered by part number.",
                ));
            }
            last = *n;
            let part = u
                .parts
                .get(n)
                .filter(|p| p.etag.trim_matches('"') == etag.trim().trim_matches('"'));
            let Some(part) = part else {
                return Err(ApiError::new(
                    "InvalidPart",
                    "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.",
                ));
            };
            if i + 1 < wanted.len() && part.size < MIN_PART_SIZE {
                return Err(ApiError::new(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                ));
            }
            out.push(part.clone());
        }
        Ok(out)
    }

    /// CompleteMultipartUpload's commit: the assembled blob becomes the new version; the
    /// upload and every part blob are freed.
    pub fn complete_upload(
        &mut self,
        env: &Env,
        upload_id: &str,
        new: NewVersion,
    ) -> ApiResult<(String, Freed)> {
        let u = self
            .s3_uploads
            .remove(upload_id)
            .ok_or_else(no_such_upload)?;
        let mut freed: Freed = u.parts.values().map(|p| p.blob.clone()).collect();
        let new = NewVersion {
            headers: u.headers,
            metadata: u.metadata,
            tags: u.tags,
            storage_class: u.storage_class,
            ..new
        };
        let (vid, more) = self.put_object(env, &u.bucket, &u.key, new)?;
        freed.extend(more);
        Ok((vid, freed))
    }

    /// Every blob any row references (for sweeping orphans at start-up).
    pub fn s3_blobs(&self) -> impl Iterator<Item = &str> {
        self.s3_objects
            .iter()
            .flat_map(|o| o.versions.iter().map(|v| v.blob.as_str()))
            .chain(
                self.s3_uploads
                    .iter()
                    .flat_map(|u| u.parts.values().map(|p| p.blob.as_str())),
            )
            .filter(|b| !b.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_the_general_purpose_rules() {
        for ok in ["my-bucket", "abc", "a.b.c", "docexamplebucket1", "123"] {
            assert_eq!(bucket_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "my_bucket",
            "-bucket",
            "bucket-",
            "my..bucket",
            "192.168.5.4",
            "xn--bucket",
            "sthree-x",
            "bucket-s3alias",
            "bucket--ol-s3",
        ] {
            assert!(bucket_name_problem(bad).is_some(), "{bad}");
        }
    }

    /// Issue s15: bucket names are one namespace across the daemon's accounts ("Bucket
    /// naming rules"): another account's name is `BucketAlreadyExists` in every region,
    /// your own is 200 in us-east-1 and `BucketAlreadyOwnedByYou` elsewhere, bad names
    /// and locations are judged first, and the namespace is read back from the store.
    #[test]
    fn s15_bucket_names_are_one_namespace_across_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::model::store::StorePaths {
            dir: dir.path().to_path_buf(),
            db: dir.path().join("t.db"),
            lock: dir.path().join("t.lock"),
        };
        let us = Env::new("us-east-1", Timestamp(1));
        let eu = Env::new("eu-west-1", Timestamp(1));
        let code = |r: ApiResult<bool>| r.err().map(|e| (e.code.into_owned(), e.status));
        {
            let mut c = Control::open(&paths).unwrap();
            assert_eq!(
                c.create_bucket("111111111111", &us, "shared", None),
                Ok(true)
            );
            assert_eq!(
                c.create_bucket("111111111111", &us, "shared", None),
                Ok(false)
            );
            assert_eq!(
                code(c.create_bucket("222222222222", &us, "shared", None)),
                Some(("BucketAlreadyExists".to_string(), 409))
            );
            assert_eq!(
                code(c.create_bucket("222222222222", &eu, "shared", Some("eu-west-1"))),
                Some(("BucketAlreadyExists".to_string(), 409))
            );
            assert_eq!(
                code(c.create_bucket("222222222222", &us, "Shared", None)),
                Some(("InvalidBucketName".to_string(), 400))
            );
            assert_eq!(
                code(c.create_bucket("222222222222", &eu, "shared", None)),
                Some(("IllegalLocationConstraintException".to_string(), 400))
            );
            assert_eq!(
                c.create_bucket("111111111111", &eu, "mine-eu", Some("eu-west-1")),
                Ok(true)
            );
            assert_eq!(
                code(c.create_bucket("111111111111", &eu, "mine-eu", Some("eu-west-1"))),
                Some(("BucketAlreadyOwnedByYou".to_string(), 409))
            );
            assert!(
                c.snapshot("222222222222")
                    .is_none_or(|w| w.buckets.is_empty()),
                "a refused CreateBucket leaves nothing behind"
            );
        }
        let mut c = Control::open(&paths).unwrap();
        assert_eq!(c.bucket_holders("shared"), ["111111111111"]);
        assert_eq!(
            code(c.create_bucket("222222222222", &us, "shared", None)),
            Some(("BucketAlreadyExists".to_string(), 409))
        );
        c.mutate("111111111111", &us, false, |w, _| w.delete_bucket("shared"))
            .unwrap();
        assert_eq!(
            c.create_bucket("222222222222", &us, "shared", None),
            Ok(true)
        );
    }

    /// Issue 15: a completed multipart object keeps its parts, and a row stored before
    /// parts were kept still loads (it counts its parts from the ETag).
    #[test]
    fn issue15_parts_locate_their_bytes_and_old_rows_load() {
        let old = r#"{"version_id":"null","delete_marker":false,"blob":"b","size":12,
            "etag":"\"0123456789abcdef0123456789abcdef-3\"","last_modified":0}"#;
        let mut v: Version = serde_json::from_str(old).expect("an old row loads");
        assert!(v.parts.is_empty());
        assert_eq!(v.parts_count(), 3);
        assert_eq!(v.part_span(1), Err(PartMiss::BoundariesUnknown));

        let part = |number, size| ObjectPart {
            number,
            size,
            checksum: None,
        };
        v.parts = vec![part(1, 5), part(2, 5), part(4, 2)];
        let span = v.part_span(2).expect("part 2");
        assert_eq!((span.start, span.end), (5, 10));
        let span = v.part_span(4).expect("part 4");
        assert_eq!((span.start, span.end), (10, 12));
        assert_eq!(v.part_span(3), Err(PartMiss::NoSuchPart));
        let back: Version =
            serde_json::from_str(&serde_json::to_string(&v).expect("serialise")).expect("load");
        assert_eq!(back, v);

        // An object written in one piece is its own part 1.
        v.parts.clear();
        v.etag = "\"0123456789abcdef0123456789abcdef\"".into();
        let span = v.part_span(1).expect("part 1");
        assert_eq!((span.start, span.end, span.part), (0, 12, None));
        assert_eq!(v.part_span(2), Err(PartMiss::NoSuchPart));
        assert_eq!(v.parts_count(), 1);
    }
}
