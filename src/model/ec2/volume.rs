//! EBS: volumes and snapshots (CreateVolume, DescribeVolumes, AttachVolume, DetachVolume,
//! ModifyVolume, DeleteVolume, CreateSnapshot, DescribeSnapshots, DeleteSnapshot), and the
//! root volume every instance gets at launch.
//!
//! The rows hold what the API shows; the bytes a learner writes on a volume are kept by
//! the instance runtime (`world::instances`), one file per volume and snapshot in the
//! state directory. Transitions that take time on AWS (`creating → available`,
//! `attaching → attached`, `detaching → available`, a snapshot's `pending → completed`)
//! are computed from the time they began ([`SETTLE_MS`]), like instance states, so a read
//! needs no commit; a mutation first settles the rows it touches.
//!
//! Limits are AWS's, from the CreateVolume and ModifyVolume API reference: sizes per
//! type (gp2 1–16,384 GiB, gp3 1–65,536, io1 4–16,384, io2 4–65,536, st1 and sc1
//! 125–16,384, standard 1–1,024), provisioned IOPS for gp3 (3,000–16,000, at most 500
//! per GiB), io1 (100–64,000, 50 per GiB) and io2 (100–256,000, 1,000 per GiB), gp3
//! throughput 125–1,000 MiB/s (at most 0.25 MiB/s per IOPS). gp2's IOPS are its baseline,
//! 3 per GiB between 100 and 16,000.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, Timestamp, World};

/// How long `creating`, `attaching`, `detaching` and a snapshot's `pending` last.
pub const SETTLE_MS: i64 = 500;

/// The volume types CreateVolume accepts.
pub const VOLUME_TYPES: &[&str] = &["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"];

/// One volume's attachment (EBS volumes attach to one instance here: no Multi-Attach).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub instance_id: String,
    /// As the caller named it (`/dev/sdf`, `/dev/xvdf`).
    pub device: String,
    pub attach_time: Timestamp,
    pub delete_on_termination: bool,
    /// When DetachVolume was called (the attachment is `detaching` until it settles).
    #[serde(default)]
    pub detach_time: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volume {
    /// `vol-…`.
    pub id: String,
    pub region: String,
    pub availability_zone: String,
    pub size_gib: u32,
    pub volume_type: String,
    /// Provisioned IOPS (gp3, io1, io2) or the baseline (gp2); none for st1/sc1/standard.
    pub iops: Option<u32>,
    /// gp3 only, MiB/s.
    pub throughput: Option<u32>,
    pub snapshot_id: Option<String>,
    pub encrypted: bool,
    pub create_time: Timestamp,
    pub attachment: Option<Attachment>,
    /// The last ModifyVolume (DescribeVolumesModifications).
    #[serde(default)]
    pub modification: Option<Modification>,
}

/// What ModifyVolume changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Modification {
    pub start_time: Timestamp,
    pub original_size: u32,
    pub original_type: String,
    pub original_iops: Option<u32>,
    pub original_throughput: Option<u32>,
}

impl Resource for Volume {
    const KIND: &'static str = "volume";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// A volume's state as the API shows it at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
}

impl VolumeState {
    pub fn name(self) -> &'static str {
        match self {
            VolumeState::Creating => "creating",
            VolumeState::Available => "available",
            VolumeState::InUse => "in-use",
        }
    }
}

impl Volume {
    /// The attachment still in effect at `now` (a detach that has settled is gone).
    pub fn attachment_at(&self, now: Timestamp) -> Option<&Attachment> {
        self.attachment
            .as_ref()
            .filter(|a| a.detach_time.is_none_or(|t| now < t.plus_ms(SETTLE_MS)))
    }

    pub fn state_at(&self, now: Timestamp) -> VolumeState {
        if self.attachment_at(now).is_some() {
            VolumeState::InUse
        } else if now < self.create_time.plus_ms(SETTLE_MS) {
            VolumeState::Creating
        } else {
            VolumeState::Available
        }
    }

    /// `attaching`, `attached` or `detaching` of the attachment at `now`.
    pub fn attachment_state(a: &Attachment, now: Timestamp) -> &'static str {
        if a.detach_time.is_some() {
            "detaching"
        } else if now < a.attach_time.plus_ms(SETTLE_MS) {
            "attaching"
        } else {
            "attached"
        }
    }
}

impl Filterable for Volume {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        let att = self.attachment.as_ref();
        Some(match name {
            "volume-id" => vec![self.id.clone()],
            "availability-zone" => vec![self.availability_zone.clone()],
            "size" => vec![self.size_gib.to_string()],
            "volume-type" => vec![self.volume_type.clone()],
            "snapshot-id" => self.snapshot_id.clone().into_iter().collect(),
            "encrypted" => vec![self.encrypted.to_string()],
            "create-time" => vec![self.create_time.iso()],
            // The stored state; DescribeVolumes filters `status` on the settled one.
            "status" => vec![if att.is_some() { "in-use" } else { "available" }.into()],
            "attachment.instance-id" => att.map(|a| a.instance_id.clone()).into_iter().collect(),
            "attachment.device" => att.map(|a| a.device.clone()).into_iter().collect(),
            "attachment.delete-on-termination" => att
                .map(|a| a.delete_on_termination.to_string())
                .into_iter()
                .collect(),
            "attachment.attach-time" => att.map(|a| a.attach_time.iso()).into_iter().collect(),
            "attachment.status" => att
                .map(|a| {
                    if a.detach_time.is_some() {
                        "detaching"
                    } else {
                        "attached"
                    }
                    .to_string()
                })
                .into_iter()
                .collect(),
            "multi-attach-enabled" => vec!["false".into()],
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// `snap-…`.
    pub id: String,
    pub region: String,
    pub volume_id: String,
    pub volume_size: u32,
    pub description: String,
    pub start_time: Timestamp,
    pub encrypted: bool,
}

impl Resource for Snapshot {
    const KIND: &'static str = "snapshot";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Snapshot {
    /// `pending` or `completed`, and the progress AWS shows with it.
    pub fn state_at(&self, now: Timestamp) -> (&'static str, &'static str) {
        if now < self.start_time.plus_ms(SETTLE_MS) {
            ("pending", "0%")
        } else {
            ("completed", "100%")
        }
    }
}

impl Filterable for Snapshot {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "snapshot-id" => vec![self.id.clone()],
            "volume-id" => vec![self.volume_id.clone()],
            "volume-size" => vec![self.volume_size.to_string()],
            "description" => vec![self.description.clone()],
            "owner-id" => vec![world.account.clone()],
            "encrypted" => vec![self.encrypted.to_string()],
            "start-time" => vec![self.start_time.iso()],
            _ => return None,
        })
    }
}

pub fn volume_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidVolume.NotFound",
        format!("The volume '{id}' does not exist."),
    )
}

pub fn snapshot_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidSnapshot.NotFound",
        format!("The snapshot '{id}' does not exist."),
    )
}

/// The parameters of CreateVolume (and of a `BlockDeviceMapping`'s `Ebs`).
#[derive(Clone, Debug, Default)]
pub struct VolumeSpec {
    pub size_gib: Option<i64>,
    pub volume_type: Option<String>,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
    pub snapshot_id: Option<String>,
    pub encrypted: Option<bool>,
}

/// The size range of a volume type in GiB.
fn size_range(volume_type: &str) -> (i64, i64) {
    match volume_type {
        "gp2" => (1, 16_384),
        "gp3" => (1, 65_536),
        "io1" => (4, 16_384),
        "io2" => (4, 65_536),
        "st1" | "sc1" => (125, 16_384),
        _ => (1, 1_024),
    }
}

/// gp2's baseline: 3 IOPS per GiB, at least 100, at most 16,000.
fn gp2_baseline(size: u32) -> u32 {
    (size.saturating_mul(3)).clamp(100, 16_000)
}

/// Checks type, size, IOPS and throughput together as AWS does, returning the stored
/// (iops, throughput).
fn check_performance(
    volume_type: &str,
    size: i64,
    iops: Option<i64>,
    throughput: Option<i64>,
) -> ApiResult<(Option<u32>, Option<u32>)> {
    if !VOLUME_TYPES.contains(&volume_type) {
        return Err(ApiError::invalid_value(format!(
            "Value ({volume_type}) for parameter volumeType is invalid. Valid values are: standard, io1, io2, gp2, sc1, st1, gp3"
        )));
    }
    let (lo, hi) = size_range(volume_type);
    if size < lo {
        return Err(ApiError::invalid_value(format!(
            "Volume of {size}GiB is too small; minimum is {lo}GiB."
        )));
    }
    if size > hi {
        return Err(ApiError::invalid_value(format!(
            "Volume of {size}GiB is too large; maximum is {hi}GiB."
        )));
    }
    let size_u = size as u32;
    if throughput.is_some() && volume_type != "gp3" {
        return Err(ApiError::invalid_value(format!(
            "The parameter throughput is not supported for {volume_type} volumes."
        )));
    }
    let iops = match volume_type {
        "gp3" | "io1" | "io2" => {
            let (min, max, per_gib) = match volume_type {
                "gp3" => (3_000, 16_000, 500),
                "io1" => (100, 64_000, 50),
                _ => (100, 256_000, 1_000),
            };
            let v = match iops {
                Some(v) => v,
                None if volume_type == "gp3" => 3_000,
                None => {
                    return Err(ApiError::new(
                        "MissingParameter",
                        format!("The parameter iops must be specified for {volume_type} volumes."),
                    ));
                }
            };
            if !(min..=max).contains(&v) {
                return Err(ApiError::invalid_value(format!(
                    "Volume iops of {v} is invalid for {volume_type} volumes; the valid range is {min}-{max}."
                )));
            }
            // gp3's baseline 3,000 is allowed on any size; beyond it the ratio applies.
            let limit = if volume_type == "gp3" {
                3_000.max(per_gib * size)
            } else {
                per_gib * size
            };
            if v > limit {
                return Err(ApiError::invalid_value(format!(
                    "Iops to volume size ratio of {:.3} is too high; maximum is {per_gib}.000.",
                    v as f64 / size as f64
                )));
            }
            Some(v as u32)
        }
        _ => {
            if iops.is_some() {
                return Err(ApiError::invalid_value(format!(
                    "The parameter iops is not supported for {volume_type} volumes."
                )));
            }
            (volume_type == "gp2").then(|| gp2_baseline(size_u))
        }
    };
    let throughput = if volume_type == "gp3" {
        let t = throughput.unwrap_or(125);
        if !(125..=1_000).contains(&t) {
            return Err(ApiError::invalid_value(format!(
                "Throughput of {t}MiB/s is invalid; the valid range is 125-1000."
            )));
        }
        let io = i64::from(iops.unwrap_or(3_000));
        if t * 4 > io {
            return Err(ApiError::invalid_value(format!(
                "Throughput to IOPS ratio of {:.3} is too high; maximum is 0.250.",
                t as f64 / io as f64
            )));
        }
        Some(t as u32)
    } else {
        None
    };
    Ok((iops, throughput))
}

/// Device names AWS accepts for a data volume on Linux: `/dev/sd[b-z]`, `/dev/xvd[b-z]`,
/// optionally with a trailing digit (`/dev/sdf1`) or a second letter (`/dev/xvdba`).
pub fn check_device_name(device: &str) -> ApiResult<()> {
    let rest = device
        .strip_prefix("/dev/sd")
        .or_else(|| device.strip_prefix("/dev/xvd"));
    let ok = rest.is_some_and(|r| {
        let b = r.as_bytes();
        !b.is_empty()
            && b.len() <= 2
            && b[0].is_ascii_lowercase()
            && b.get(1)
                .is_none_or(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_value(format!(
            "Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name."
        )))
    }
}

/// The letter that names a device slot whatever its prefix: `/dev/sdf` and `/dev/xvdf`
/// are the same slot, as AWS treats them.
pub fn device_slot(device: &str) -> &str {
    device
        .strip_prefix("/dev/sd")
        .or_else(|| device.strip_prefix("/dev/xvd"))
        .unwrap_or(device)
}

/// A data volume as the instance runtime sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeVolume {
    pub volume_id: String,
    /// The attachment's name in the API (`/dev/sdf`).
    pub device: String,
    pub size_gib: u32,
    /// Where a never-written volume's contents come from.
    pub snapshot_id: Option<String>,
}

impl World {
    /// The data volumes attached to `instance_id` at `now` (root excluded), for its runtime.
    pub fn runtime_volumes(&self, instance_id: &str, now: Timestamp) -> Vec<RuntimeVolume> {
        let root = self
            .instances
            .get(instance_id)
            .map(|i| i.root_volume_id.as_str());
        self.volumes_of_instance(instance_id, now)
            .into_iter()
            .filter(|v| Some(v.id.as_str()) != root)
            .filter_map(|v| {
                let a = v.attachment_at(now).filter(|a| a.detach_time.is_none())?;
                Some(RuntimeVolume {
                    volume_id: v.id.clone(),
                    device: a.device.clone(),
                    size_gib: v.size_gib,
                    snapshot_id: v.snapshot_id.clone(),
                })
            })
            .collect()
    }

    pub fn volume(&self, region: &str, id: &str) -> ApiResult<&Volume> {
        self.volumes
            .get(id)
            .filter(|v| v.region == region)
            .ok_or_else(|| volume_not_found(id))
    }

    /// Folds a settled detach into the row (the attachment disappears).
    fn settle_volume(&mut self, id: &str, now: Timestamp) {
        let done = self.volumes.get(id).is_some_and(|v| {
            v.attachment
                .as_ref()
                .and_then(|a| a.detach_time)
                .is_some_and(|t| now >= t.plus_ms(SETTLE_MS))
        });
        if done && let Some(v) = self.volumes.get_mut(id) {
            v.attachment = None;
        }
    }

    /// Creates a volume row (CreateVolume, and root volumes at launch).
    pub(crate) fn new_volume(
        &mut self,
        env: &Env,
        zone: &str,
        spec: &VolumeSpec,
        default_size: Option<i64>,
        id: Option<String>,
    ) -> ApiResult<Volume> {
        let snapshot = match spec.snapshot_id.as_deref().filter(|s| !s.is_empty()) {
            Some(sid) => Some(
                self.snapshots
                    .get(sid)
                    .filter(|s| s.region == env.region)
                    .cloned()
                    .ok_or_else(|| snapshot_not_found(sid))?,
            ),
            None => None,
        };
        let volume_type = spec.volume_type.clone().unwrap_or_else(|| "gp2".into());
        let size = match (spec.size_gib, &snapshot, default_size) {
            (Some(s), Some(snap), _) if s < i64::from(snap.volume_size) => {
                return Err(ApiError::invalid_value(format!(
                    "Volume of {s}GiB is too small; minimum is {}GiB.",
                    snap.volume_size
                )));
            }
            (Some(s), _, _) => s,
            (None, Some(snap), _) => i64::from(snap.volume_size),
            (None, None, Some(d)) => d,
            (None, None, None) => {
                return Err(ApiError::new(
                    "MissingParameter",
                    "The request must contain either a snapshot ID or a volume size.",
                ));
            }
        };
        let (iops, throughput) = check_performance(&volume_type, size, spec.iops, spec.throughput)?;
        let id = match id {
            Some(id) => id,
            None => self.alloc_id("vol"),
        };
        let v = Volume {
            id,
            region: env.region.clone(),
            availability_zone: zone.to_string(),
            size_gib: size as u32,
            volume_type,
            iops,
            throughput,
            snapshot_id: snapshot.as_ref().map(|s| s.id.clone()),
            encrypted: spec.encrypted.unwrap_or(false) || snapshot.is_some_and(|s| s.encrypted),
            create_time: env.now,
            attachment: None,
            modification: None,
        };
        self.volumes.insert(v.clone());
        Ok(v)
    }

    /// The volumes of a new instance: its root volume (id already chosen, the AMI's size
    /// unless a mapping of the root device overrides it) and one volume per other
    /// `BlockDeviceMapping`, attached from launch. `DeleteOnTermination` defaults to true
    /// for launch volumes, as AWS does.
    pub(crate) fn create_launch_volumes(
        &mut self,
        env: &Env,
        instance_id: &str,
        req: &crate::model::ec2::instance::RunRequest,
        image: &crate::catalog::Image,
    ) -> ApiResult<()> {
        let inst = self
            .instances
            .get(instance_id)
            .cloned()
            .ok_or_else(ApiError::internal)?;
        let root_dev = image.root_device_name;
        let is_root = |d: &str| d == root_dev;
        let root = req.block_devices.iter().find(|b| is_root(&b.device_name));
        let min = i64::from(image.root_volume_size_gib);
        if let Some(s) = root.and_then(|b| b.ebs.size_gib)
            && s < min
        {
            return Err(ApiError::new(
                "InvalidBlockDeviceMapping",
                format!(
                    "Volume of size {s}GB is smaller than the image's root volume, expect size >= {min}GB"
                ),
            ));
        }
        let mut wanted = vec![(
            root_dev.to_string(),
            root.map(|b| b.ebs.clone()).unwrap_or_default(),
            root.and_then(|b| b.delete_on_termination).unwrap_or(true),
            Some(inst.root_volume_id.clone()),
            Some(min),
        )];
        for b in req
            .block_devices
            .iter()
            .filter(|b| !is_root(&b.device_name))
        {
            if b.no_device {
                continue;
            }
            check_device_name(&b.device_name).map_err(|_| {
                ApiError::new(
                    "InvalidBlockDeviceMapping",
                    format!("Invalid device name {}", b.device_name),
                )
            })?;
            if wanted
                .iter()
                .any(|(d, ..)| device_slot(d) == device_slot(&b.device_name))
            {
                return Err(ApiError::new(
                    "InvalidBlockDeviceMapping",
                    format!(
                        "The device '{}' is used in more than one block-device mapping",
                        b.device_name
                    ),
                ));
            }
            wanted.push((
                b.device_name.clone(),
                b.ebs.clone(),
                b.delete_on_termination.unwrap_or(true),
                None,
                None,
            ));
        }
        for (device, spec, delete, id, default) in wanted {
            let v = self.new_volume(env, &inst.availability_zone, &spec, default, id)?;
            if let Some(row) = self.volumes.get_mut(&v.id) {
                row.attachment = Some(Attachment {
                    instance_id: instance_id.to_string(),
                    device,
                    attach_time: env.now,
                    delete_on_termination: delete,
                    detach_time: None,
                });
            }
            self.apply_tag_specs(env, &v.id, "volume", &req.tag_specs)?;
        }
        Ok(())
    }

    /// CreateVolume.
    pub fn create_volume(
        &mut self,
        env: &Env,
        zone: &str,
        spec: &VolumeSpec,
        specs: &[TagSpec],
    ) -> ApiResult<Volume> {
        World::check_tag_specs(specs, &["volume"])?;
        if zone.is_empty() {
            return Err(ApiError::missing("AvailabilityZone"));
        }
        if !crate::model::region::zones(&env.region)
            .iter()
            .any(|z| z.name == zone)
        {
            return Err(ApiError::new(
                "InvalidZone.NotFound",
                format!("The zone '{zone}' does not exist."),
            ));
        }
        let v = self.new_volume(env, zone, spec, None, None)?;
        self.apply_tag_specs(env, &v.id, "volume", specs)?;
        Ok(v)
    }

    /// DescribeVolumes: rows settled at `env.now`; `status` and `attachment.status`
    /// filters see the settled states.
    pub fn describe_volumes(
        &self,
        env: &Env,
        ids: &[String],
        filters: &[crate::model::Filter],
    ) -> ApiResult<Vec<&Volume>> {
        let (state_filters, rest): (Vec<_>, Vec<_>) = filters
            .iter()
            .cloned()
            .partition(|f| f.name == "status" || f.name == "attachment.status");
        let rows = self.select(&self.volumes, &env.region, ids, &rest, volume_not_found)?;
        Ok(rows
            .into_iter()
            .filter(|v| {
                state_filters.iter().all(|f| {
                    let value = if f.name == "status" {
                        v.state_at(env.now).name().to_string()
                    } else {
                        v.attachment_at(env.now)
                            .map(|a| Volume::attachment_state(a, env.now).to_string())
                            .unwrap_or_default()
                    };
                    f.values
                        .iter()
                        .any(|x| crate::model::filter::wildcard(x, &value))
                })
            })
            .collect())
    }

    /// AttachVolume.
    pub fn attach_volume(
        &mut self,
        env: &Env,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> ApiResult<Attachment> {
        check_device_name(device)?;
        self.settle_volume(volume_id, env.now);
        let v = self.volume(&env.region, volume_id)?.clone();
        let inst = self.instance(&env.region, instance_id)?.clone();
        let (istate, _) = inst.settled(env.now);
        use crate::model::ec2::instance::InstanceState as S;
        if !matches!(istate, S::Running | S::Stopped | S::Pending) {
            return Err(ApiError::new(
                "IncorrectState",
                format!("Instance '{instance_id}' is not 'running' or 'stopped'."),
            ));
        }
        if v.attachment.is_some() {
            return Err(ApiError::new(
                "VolumeInUse",
                format!("{volume_id} is already attached to an instance"),
            ));
        }
        if v.state_at(env.now) == VolumeState::Creating {
            return Err(ApiError::new(
                "IncorrectState",
                format!("The volume '{volume_id}' is not 'available'."),
            ));
        }
        if v.availability_zone != inst.availability_zone {
            return Err(ApiError::new(
                "InvalidVolume.ZoneMismatch",
                format!(
                    "The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'"
                ),
            ));
        }
        let slot = device_slot(device).to_string();
        let root = inst
            .image()
            .map(|i| i.root_device_name)
            .unwrap_or("/dev/xvda");
        let taken = device_slot(root).trim_end_matches(|c: char| c.is_ascii_digit()) == slot
            || self.volumes.iter().any(|o| {
                o.attachment
                    .as_ref()
                    .is_some_and(|a| a.instance_id == instance_id && device_slot(&a.device) == slot)
            });
        if taken {
            return Err(ApiError::invalid_value(format!(
                "Invalid value '{device}' for unixDevice. Attachment point {device} is already in use"
            )));
        }
        let a = Attachment {
            instance_id: instance_id.to_string(),
            device: device.to_string(),
            attach_time: env.now,
            delete_on_termination: false,
            detach_time: None,
        };
        if let Some(row) = self.volumes.get_mut(volume_id) {
            row.attachment = Some(a.clone());
        }
        Ok(a)
    }

    /// DetachVolume. The root volume of an instance that is not stopped cannot be
    /// detached (`OperationNotPermitted`), as on AWS.
    pub fn detach_volume(
        &mut self,
        env: &Env,
        volume_id: &str,
        instance_id: Option<&str>,
        device: Option<&str>,
    ) -> ApiResult<Attachment> {
        self.settle_volume(volume_id, env.now);
        let v = self.volume(&env.region, volume_id)?.clone();
        let Some(a) = v.attachment.clone().filter(|a| a.detach_time.is_none()) else {
            return Err(ApiError::new(
                "IncorrectState",
                format!("Volume '{volume_id}' is in the 'available' state."),
            ));
        };
        if let Some(i) = instance_id
            && i != a.instance_id
        {
            return Err(ApiError::new(
                "InvalidAttachment.NotFound",
                format!("The volume '{volume_id}' is not attached to instance '{i}'."),
            ));
        }
        if let Some(d) = device
            && device_slot(d) != device_slot(&a.device)
        {
            return Err(ApiError::new(
                "InvalidAttachment.NotFound",
                format!("The volume '{volume_id}' is not attached at '{d}'."),
            ));
        }
        let inst = self.instances.get(&a.instance_id).cloned();
        if let Some(inst) = inst
            && inst.root_volume_id == volume_id
            && inst.settled(env.now).0 != crate::model::ec2::instance::InstanceState::Stopped
        {
            return Err(ApiError::new(
                "OperationNotPermitted",
                format!(
                    "Unable to detach root volume '{volume_id}' from instance '{}'",
                    a.instance_id
                ),
            ));
        }
        let mut out = a.clone();
        out.detach_time = Some(env.now);
        if let Some(row) = self.volumes.get_mut(volume_id) {
            row.attachment = Some(out.clone());
        }
        Ok(out)
    }

    /// DeleteVolume: only an `available` volume.
    pub fn delete_volume(&mut self, env: &Env, volume_id: &str) -> ApiResult<()> {
        self.settle_volume(volume_id, env.now);
        let v = self.volume(&env.region, volume_id)?;
        if let Some(a) = &v.attachment {
            return Err(ApiError::new(
                "VolumeInUse",
                format!(
                    "Volume {volume_id} is currently attached to {}",
                    a.instance_id
                ),
            ));
        }
        self.volumes.remove(volume_id);
        self.drop_tags(volume_id);
        Ok(())
    }

    /// ModifyVolume: size may only grow; type, IOPS and throughput are checked as at
    /// creation. Applied at once (AWS goes `modifying → optimizing → completed`).
    pub fn modify_volume(
        &mut self,
        env: &Env,
        volume_id: &str,
        size: Option<i64>,
        volume_type: Option<&str>,
        iops: Option<i64>,
        throughput: Option<i64>,
    ) -> ApiResult<Volume> {
        self.settle_volume(volume_id, env.now);
        let v = self.volume(&env.region, volume_id)?.clone();
        if size.is_none() && volume_type.is_none() && iops.is_none() && throughput.is_none() {
            return Err(ApiError::new(
                "MissingParameter",
                "At least one of the parameters size, volumeType, iops or throughput must be specified.",
            ));
        }
        let new_size = size.unwrap_or(i64::from(v.size_gib));
        if new_size < i64::from(v.size_gib) {
            return Err(ApiError::invalid_value(format!(
                "New size cannot be smaller than existing size. Requested size {new_size}GiB is less than existing size {}GiB.",
                v.size_gib
            )));
        }
        let new_type = volume_type.unwrap_or(&v.volume_type).to_string();
        let same_type = new_type == v.volume_type;
        let keep_iops = iops.or(if same_type && new_type != "gp2" {
            v.iops.map(i64::from)
        } else {
            None
        });
        let keep_iops = match (new_type.as_str(), keep_iops) {
            ("io1" | "io2", None) => Some(3_000),
            (_, i) => i,
        };
        let keep_tp = throughput.or(if same_type {
            v.throughput.map(i64::from)
        } else {
            None
        });
        let (new_iops, new_tp) = check_performance(&new_type, new_size, keep_iops, keep_tp)?;
        let modification = Modification {
            start_time: env.now,
            original_size: v.size_gib,
            original_type: v.volume_type.clone(),
            original_iops: v.iops,
            original_throughput: v.throughput,
        };
        let row = self
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| volume_not_found(volume_id))?;
        row.size_gib = new_size as u32;
        row.volume_type = new_type;
        row.iops = new_iops;
        row.throughput = new_tp;
        row.modification = Some(modification);
        Ok(row.clone())
    }

    /// The volumes attached to `instance_id` at `now`, root first, then by device.
    pub fn volumes_of_instance(&self, instance_id: &str, now: Timestamp) -> Vec<&Volume> {
        let mut out: Vec<&Volume> = self
            .volumes
            .iter()
            .filter(|v| {
                v.attachment_at(now)
                    .is_some_and(|a| a.instance_id == instance_id)
            })
            .collect();
        self.order_attached(instance_id, &mut out);
        out
    }

    /// The volumes attached at `now` by instance, each list ordered as
    /// [`World::volumes_of_instance`] orders it: one pass over the volumes for a listing
    /// of many instances (DescribeInstances), instead of one pass per instance.
    pub fn volumes_by_instance(&self, now: Timestamp) -> HashMap<&str, Vec<&Volume>> {
        let mut by: HashMap<&str, Vec<&Volume>> = HashMap::new();
        for v in self.volumes.iter() {
            if let Some(a) = v.attachment_at(now) {
                by.entry(a.instance_id.as_str()).or_default().push(v);
            }
        }
        for (instance_id, list) in by.iter_mut() {
            self.order_attached(instance_id, list);
        }
        by
    }

    /// Root volume first, then by device slot.
    fn order_attached(&self, instance_id: &str, out: &mut [&Volume]) {
        let root = self
            .instances
            .get(instance_id)
            .map(|i| i.root_volume_id.as_str());
        out.sort_by_key(|v| {
            (
                Some(v.id.as_str()) != root,
                v.attachment
                    .as_ref()
                    .map(|a| device_slot(&a.device).to_string()),
            )
        });
    }

    /// At termination: volumes with `DeleteOnTermination` go, the others are detached.
    pub(crate) fn release_instance_volumes(&mut self, instance_id: &str) {
        let ids = self.volumes.ids_where(|v| {
            v.attachment
                .as_ref()
                .is_some_and(|a| a.instance_id == instance_id)
        });
        for id in ids {
            let delete = self
                .volumes
                .get(&id)
                .and_then(|v| v.attachment.as_ref())
                .is_some_and(|a| a.delete_on_termination);
            if delete {
                self.volumes.remove(&id);
                self.drop_tags(&id);
            } else if let Some(v) = self.volumes.get_mut(&id) {
                v.attachment = None;
            }
        }
    }

    /// CreateSnapshot.
    pub fn create_snapshot(
        &mut self,
        env: &Env,
        volume_id: &str,
        description: &str,
        specs: &[TagSpec],
    ) -> ApiResult<Snapshot> {
        World::check_tag_specs(specs, &["snapshot"])?;
        let v = self.volume(&env.region, volume_id)?.clone();
        let s = Snapshot {
            id: self.alloc_id("snap"),
            region: env.region.clone(),
            volume_id: v.id.clone(),
            volume_size: v.size_gib,
            description: description.to_string(),
            start_time: env.now,
            encrypted: v.encrypted,
        };
        self.snapshots.insert(s.clone());
        self.apply_tag_specs(env, &s.id, "snapshot", specs)?;
        Ok(s)
    }

    /// DescribeSnapshots (the account's own snapshots; no public ones exist here).
    pub fn describe_snapshots(
        &self,
        env: &Env,
        ids: &[String],
        filters: &[crate::model::Filter],
    ) -> ApiResult<Vec<&Snapshot>> {
        let (state_filters, rest): (Vec<_>, Vec<_>) = filters
            .iter()
            .cloned()
            .partition(|f| f.name == "status" || f.name == "progress");
        let rows = self.select(&self.snapshots, &env.region, ids, &rest, snapshot_not_found)?;
        Ok(rows
            .into_iter()
            .filter(|s| {
                let (state, progress) = s.state_at(env.now);
                state_filters.iter().all(|f| {
                    let value = if f.name == "status" { state } else { progress };
                    f.values
                        .iter()
                        .any(|x| crate::model::filter::wildcard(x, value))
                })
            })
            .collect())
    }

    /// DeleteSnapshot.
    pub fn delete_snapshot(&mut self, env: &Env, snapshot_id: &str) -> ApiResult<()> {
        if self
            .snapshots
            .get(snapshot_id)
            .is_none_or(|s| s.region != env.region)
        {
            return Err(snapshot_not_found(snapshot_id));
        }
        self.snapshots.remove(snapshot_id);
        self.drop_tags(snapshot_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_iops_follow_the_create_volume_reference() {
        assert!(check_performance("gp2", 1, None, None).is_ok());
        assert_eq!(
            check_performance("gp2", 10, None, None).unwrap().0,
            Some(100)
        );
        assert_eq!(
            check_performance("gp2", 1000, None, None).unwrap().0,
            Some(3000)
        );
        assert!(check_performance("gp2", 16_385, None, None).is_err());
        assert_eq!(
            check_performance("gp3", 8, None, None).unwrap(),
            (Some(3000), Some(125))
        );
        assert!(check_performance("gp3", 8, Some(4000), None).is_ok());
        assert!(
            check_performance("gp3", 8, Some(5000), None).is_err(),
            "500 per GiB"
        );
        assert!(check_performance("gp3", 8, Some(3000), Some(751)).is_err());
        assert!(
            check_performance("io1", 4, None, None).is_err(),
            "io1 needs Iops"
        );
        assert!(check_performance("io1", 3, Some(100), None).is_err());
        assert!(
            check_performance("io1", 10, Some(600), None).is_err(),
            "50 per GiB"
        );
        assert!(check_performance("io2", 100, Some(64_000), None).is_ok());
        assert!(check_performance("st1", 124, None, None).is_err());
        assert!(check_performance("st1", 500, Some(100), None).is_err());
        assert!(check_performance("standard", 1025, None, None).is_err());
        assert!(check_performance("gp4", 10, None, None).is_err());
    }

    #[test]
    fn device_names_are_sd_or_xvd_slots() {
        assert!(check_device_name("/dev/sdf").is_ok());
        assert!(check_device_name("/dev/xvdf").is_ok());
        assert!(check_device_name("/dev/nvme1n1").is_err());
        assert!(check_device_name("sdf").is_err());
        assert_eq!(device_slot("/dev/sdf"), device_slot("/dev/xvdf"));
    }
}
