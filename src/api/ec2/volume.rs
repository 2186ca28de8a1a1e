//! EBS actions: CreateVolume, DescribeVolumes, AttachVolume, DetachVolume, DeleteVolume,
//! ModifyVolume, DescribeVolumesModifications, CreateSnapshot, DescribeSnapshots,
//! DeleteSnapshot. Element names follow botocore's `Volume`, `VolumeAttachment`,
//! `VolumeModification` and `Snapshot` shapes.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::volume::{Attachment, Snapshot, Volume, VolumeSpec};
use crate::model::{ApiResult, Timestamp, World};

use super::{Handler, paginate, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateVolume", create_volume),
    ("DescribeVolumes", describe_volumes),
    ("AttachVolume", attach_volume),
    ("DetachVolume", detach_volume),
    ("DeleteVolume", delete_volume),
    ("ModifyVolume", modify_volume),
    (
        "DescribeVolumesModifications",
        describe_volumes_modifications,
    ),
    ("CreateSnapshot", create_snapshot),
    ("DescribeSnapshots", describe_snapshots),
    ("DeleteSnapshot", delete_snapshot),
];

fn render_attachment(x: &mut Xml, v: &Volume, a: &Attachment, now: Timestamp) {
    x.leaf("attachTime", a.attach_time.iso())
        .leaf("device", &a.device)
        .leaf("instanceId", &a.instance_id)
        .leaf("status", Volume::attachment_state(a, now))
        .leaf("volumeId", &v.id)
        .leaf("deleteOnTermination", tf(a.delete_on_termination));
}

fn render_volume(x: &mut Xml, w: &World, v: &Volume, now: Timestamp) {
    x.leaf("volumeId", &v.id)
        .leaf("size", v.size_gib)
        .leaf("snapshotId", v.snapshot_id.as_deref().unwrap_or(""))
        .leaf("availabilityZone", &v.availability_zone)
        .leaf("status", v.state_at(now).name())
        .leaf("createTime", v.create_time.iso());
    x.set("attachmentSet", v.attachment_at(now), |x, a| {
        render_attachment(x, v, a, now)
    });
    x.leaf("volumeType", &v.volume_type)
        .opt("iops", v.iops)
        .leaf("encrypted", tf(v.encrypted))
        .leaf("multiAttachEnabled", "false")
        .opt("throughput", v.throughput);
    tag_set(x, w, &v.id);
}

fn spec_of(c: &Call) -> ApiResult<VolumeSpec> {
    let p = &c.params;
    Ok(VolumeSpec {
        size_gib: p.int("Size")?,
        volume_type: p
            .get("VolumeType")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        iops: p.int("Iops")?,
        throughput: p.int("Throughput")?,
        snapshot_id: p
            .get("SnapshotId")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        encrypted: p.bool("Encrypted")?,
    })
}

fn create_volume(c: &mut Call) -> ApiResult<Xml> {
    let zone = c
        .params
        .get("AvailabilityZone")
        .unwrap_or_default()
        .to_string();
    let spec = spec_of(c)?;
    let specs = c.params.tag_specs()?;
    let v = c.mutate(|w, env| w.create_volume(env, &zone, &spec, &specs))?;
    let w = c.read()?;
    let mut x = Xml::new();
    render_volume(&mut x, &w, &v, c.env.now);
    Ok(x)
}

fn describe_volumes(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("VolumeId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.describe_volumes(&c.env, &ids, &filters)?;
    let (page, next) = paginate(c, rows, |v| v.id.as_str())?;
    let mut x = Xml::new();
    x.set("volumeSet", page, |x, v| render_volume(x, &w, v, c.env.now));
    x.opt("nextToken", next);
    Ok(x)
}

fn attach_volume(c: &mut Call) -> ApiResult<Xml> {
    let volume = c.params.required("VolumeId")?.to_string();
    let instance = c.params.required("InstanceId")?.to_string();
    let device = c.params.required("Device")?.to_string();
    let a = c.mutate(|w, env| w.attach_volume(env, &volume, &instance, &device))?;
    let mut x = Xml::new();
    x.leaf("attachTime", a.attach_time.iso())
        .leaf("device", &a.device)
        .leaf("instanceId", &a.instance_id)
        .leaf("status", "attaching")
        .leaf("volumeId", &volume)
        .leaf("deleteOnTermination", tf(a.delete_on_termination));
    Ok(x)
}

fn detach_volume(c: &mut Call) -> ApiResult<Xml> {
    let volume = c.params.required("VolumeId")?.to_string();
    let instance = c
        .params
        .get("InstanceId")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let device = c
        .params
        .get("Device")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let a =
        c.mutate(|w, env| w.detach_volume(env, &volume, instance.as_deref(), device.as_deref()))?;
    let mut x = Xml::new();
    x.leaf("attachTime", a.attach_time.iso())
        .leaf("device", &a.device)
        .leaf("instanceId", &a.instance_id)
        .leaf("status", "detaching")
        .leaf("volumeId", &volume)
        .leaf("deleteOnTermination", tf(a.delete_on_termination));
    Ok(x)
}

fn delete_volume(c: &mut Call) -> ApiResult<Xml> {
    let volume = c.params.required("VolumeId")?.to_string();
    c.mutate(|w, env| w.delete_volume(env, &volume))?;
    Ok(super::return_true())
}

fn render_modification(x: &mut Xml, v: &Volume) {
    let Some(m) = &v.modification else {
        return;
    };
    x.leaf("volumeId", &v.id)
        .leaf("modificationState", "completed")
        .leaf("targetSize", v.size_gib)
        .opt("targetIops", v.iops)
        .leaf("targetVolumeType", &v.volume_type)
        .opt("targetThroughput", v.throughput)
        .leaf("targetMultiAttachEnabled", "false")
        .leaf("originalSize", m.original_size)
        .opt("originalIops", m.original_iops)
        .leaf("originalVolumeType", &m.original_type)
        .opt("originalThroughput", m.original_throughput)
        .leaf("originalMultiAttachEnabled", "false")
        .leaf("progress", 100)
        .leaf("startTime", m.start_time.iso())
        .leaf("endTime", m.start_time.iso());
}

fn modify_volume(c: &mut Call) -> ApiResult<Xml> {
    let volume = c.params.required("VolumeId")?.to_string();
    let size = c.params.int("Size")?;
    let vtype = c
        .params
        .get("VolumeType")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let iops = c.params.int("Iops")?;
    let throughput = c.params.int("Throughput")?;
    let v =
        c.mutate(|w, env| w.modify_volume(env, &volume, size, vtype.as_deref(), iops, throughput))?;
    let mut x = Xml::new();
    x.node("volumeModification", |x| render_modification(x, &v));
    Ok(x)
}

fn describe_volumes_modifications(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("VolumeId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.describe_volumes(&c.env, &ids, &filters)?;
    let mut x = Xml::new();
    x.set(
        "volumeModificationSet",
        rows.into_iter().filter(|v| v.modification.is_some()),
        render_modification,
    );
    Ok(x)
}

fn render_snapshot(x: &mut Xml, w: &World, s: &Snapshot, now: Timestamp) {
    let (state, progress) = s.state_at(now);
    x.leaf("snapshotId", &s.id)
        .leaf("volumeId", &s.volume_id)
        .leaf("status", state)
        .leaf("startTime", s.start_time.iso())
        .leaf("progress", progress)
        .leaf("ownerId", &w.account)
        .leaf("volumeSize", s.volume_size)
        .leaf("description", &s.description)
        .leaf("encrypted", tf(s.encrypted))
        .leaf("storageTier", "standard");
    tag_set(x, w, &s.id);
}

fn create_snapshot(c: &mut Call) -> ApiResult<Xml> {
    let volume = c.params.required("VolumeId")?.to_string();
    let description = c.params.get("Description").unwrap_or_default().to_string();
    let specs = c.params.tag_specs()?;
    let s = c.mutate(|w, env| w.create_snapshot(env, &volume, &description, &specs))?;
    let w = c.read()?;
    let mut x = Xml::new();
    render_snapshot(&mut x, &w, &s, c.env.now);
    Ok(x)
}

fn describe_snapshots(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("SnapshotId");
    let filters = c.params.filters()?;
    // `--owner-ids self` or the account's id: every snapshot here is the account's own.
    let owners = c.params.list("Owner");
    let w = c.read()?;
    let mine = owners.is_empty() || owners.iter().any(|o| o == "self" || *o == w.account);
    let rows = if mine {
        w.describe_snapshots(&c.env, &ids, &filters)?
    } else {
        Vec::new()
    };
    let (page, next) = paginate(c, rows, |s| s.id.as_str())?;
    let mut x = Xml::new();
    x.set("snapshotSet", page, |x, s| {
        render_snapshot(x, &w, s, c.env.now)
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn delete_snapshot(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("SnapshotId")?.to_string();
    c.mutate(|w, env| w.delete_snapshot(env, &id))?;
    Ok(super::return_true())
}
