//! Catalog actions: DescribeImages and DescribeInstanceTypes, answered from the static
//! catalog ([`crate::catalog`]) with EC2's filter semantics (AND across filters, OR
//! across values, `*`/`?` wildcards).

use crate::api::Call;
use crate::api::xml::Xml;
use crate::catalog::{self, IMAGES, INSTANCE_TYPES, Image, InstanceType};
use crate::model::filter::{Filter, wildcard};
use crate::model::{ApiError, ApiResult};

use super::{Handler, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("DescribeImages", describe_images),
    ("DescribeInstanceTypes", describe_instance_types),
];

/// Applies EC2 filters given a per-name value function (`None`: unknown filter name).
fn matches(filters: &[Filter], values: impl Fn(&str) -> Option<Vec<String>>) -> ApiResult<bool> {
    for f in filters {
        let have = values(&f.name).ok_or_else(|| {
            ApiError::invalid_value(format!("The filter '{}' is invalid", f.name))
        })?;
        if !f.values.iter().any(|w| have.iter().any(|h| wildcard(w, h))) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn image_values(i: &Image, name: &str) -> Option<Vec<String>> {
    let one = |s: &str| Some(vec![s.to_string()]);
    match name {
        "image-id" => one(i.image_id),
        "name" => one(i.name),
        "description" => one(i.description),
        "owner-id" => one(i.owner_id),
        "owner-alias" => one(i.owner_alias),
        "architecture" => one(i.architecture),
        "state" => one("available"),
        "is-public" => one("true"),
        "image-type" => one("machine"),
        "platform-details" => one("Linux/UNIX"),
        "usage-operation" => one("RunInstances"),
        "root-device-type" => one("ebs"),
        "root-device-name" => one(i.root_device_name),
        "virtualization-type" => one("hvm"),
        "hypervisor" => one("xen"),
        "ena-support" => one("true"),
        "sriov-net-support" => one("simple"),
        "creation-date" => one(i.creation_date),
        "boot-mode" => one(i.boot_mode),
        "imds-support" => Some(i.imds_support.map(str::to_string).into_iter().collect()),
        "block-device-mapping.device-name" => one(i.root_device_name),
        "block-device-mapping.snapshot-id" => one(i.root_snapshot_id),
        "block-device-mapping.volume-size" => Some(vec![i.root_volume_size_gib.to_string()]),
        "block-device-mapping.volume-type" => one("gp3"),
        "block-device-mapping.encrypted" => one("false"),
        "block-device-mapping.delete-on-termination" => one("true"),
        // The catalog's images carry no tags.
        n if n.starts_with("tag:") || n == "tag-key" || n == "tag-value" => Some(Vec::new()),
        _ => None,
    }
}

fn render_image(x: &mut Xml, i: &Image) {
    x.leaf("imageId", i.image_id)
        .leaf("imageLocation", i.location())
        .leaf("imageState", "available")
        .leaf("imageOwnerId", i.owner_id)
        .leaf("creationDate", i.creation_date)
        .leaf("isPublic", "true")
        .leaf("architecture", i.architecture)
        .leaf("imageType", "machine")
        .leaf("sriovNetSupport", "simple")
        .leaf("imageOwnerAlias", i.owner_alias)
        .leaf("name", i.name)
        .leaf("description", i.description)
        .leaf("rootDeviceType", "ebs")
        .leaf("rootDeviceName", i.root_device_name)
        .set("blockDeviceMapping", [()], |x, _| {
            x.leaf("deviceName", i.root_device_name).node("ebs", |x| {
                x.leaf("snapshotId", i.root_snapshot_id)
                    .leaf("volumeSize", i.root_volume_size_gib)
                    .leaf("deleteOnTermination", "true")
                    .leaf("volumeType", "gp3")
                    .leaf("iops", 3000)
                    .leaf("throughput", 125)
                    .leaf("encrypted", "false");
            });
        })
        .leaf("virtualizationType", "hvm")
        .leaf("hypervisor", "xen")
        .leaf("enaSupport", "true")
        .leaf("bootMode", i.boot_mode)
        .leaf("platformDetails", "Linux/UNIX")
        .leaf("usageOperation", "RunInstances")
        .opt("imdsSupport", i.imds_support)
        .leaf("deprecationTime", i.deprecation_time);
}

fn describe_images(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("ImageId");
    let owners = c.params.list("Owner");
    let executable_by = c.params.list("ExecutableBy");
    let filters = c.params.filters()?;
    // Every id asked for must exist (AWS names the missing ones).
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| catalog::image(id).is_none())
        .map(String::as_str)
        .collect();
    if let Some(bad) = missing.iter().find(|id| !id.starts_with("ami-")) {
        return Err(ApiError::new(
            "InvalidAMIID.Malformed",
            format!("Invalid id: \"{bad}\" (expecting \"ami-...\")"),
        ));
    }
    if !missing.is_empty() {
        return Err(ApiError::new(
            "InvalidAMIID.NotFound",
            format!("The image id '[{}]' does not exist", missing.join(", ")),
        ));
    }
    let account = c.account.clone();
    let mut out = Vec::new();
    for i in IMAGES {
        if !ids.is_empty() && !ids.iter().any(|id| id == i.image_id) {
            continue;
        }
        // `--owners`: an alias (`amazon`), an account id, or `self` (this account owns
        // no images in vpclab).
        if !owners.is_empty()
            && !owners.iter().any(|o| {
                o == i.owner_alias || o == i.owner_id || (o == "self" && account == i.owner_id)
            })
        {
            continue;
        }
        // `--executable-users all|self|<account>`: every catalog image is public.
        if !executable_by.is_empty()
            && !executable_by
                .iter()
                .any(|e| e == "all" || e == "self" || *e == account)
        {
            continue;
        }
        if !matches(&filters, |n| image_values(i, n))? {
            continue;
        }
        out.push(i);
    }
    let mut x = Xml::new();
    x.set("imagesSet", out, render_image);
    Ok(x)
}

fn type_values(t: &InstanceType, name: &str) -> Option<Vec<String>> {
    let one = |s: String| Some(vec![s]);
    match name {
        "instance-type" => one(t.name.to_string()),
        "current-generation" => one("true".into()),
        "free-tier-eligible" => one(tf(t.free_tier).into()),
        "bare-metal" => one("false".into()),
        "burstable-performance-supported" => one(tf(t.burstable).into()),
        "hypervisor" => one(t.hypervisor.into()),
        "vcpu-info.default-vcpus" => one(t.vcpus.to_string()),
        "vcpu-info.default-cores" => one(t.cores.to_string()),
        "vcpu-info.default-threads-per-core" => one(t.threads_per_core.to_string()),
        "memory-info.size-in-mib" => one(t.memory_mib.to_string()),
        "processor-info.supported-architecture" => {
            Some(t.architectures.iter().map(|a| a.to_string()).collect())
        }
        "processor-info.sustained-clock-speed-in-ghz" => one(t.clock_ghz.to_string()),
        "network-info.network-performance" => one(t.network_performance.into()),
        "network-info.maximum-network-interfaces" => one(t.max_network_interfaces.to_string()),
        "network-info.ipv4-addresses-per-interface" => one(t.ipv4_per_interface.to_string()),
        "network-info.ena-support" => one(t.ena_support.into()),
        "instance-storage-supported" => one("false".into()),
        "supported-usage-class" => Some(vec!["on-demand".into(), "spot".into()]),
        "supported-root-device-type" => one("ebs".into()),
        "supported-virtualization-type" => one("hvm".into()),
        "hibernation-supported" => one("false".into()),
        _ => None,
    }
}

fn render_type(x: &mut Xml, t: &InstanceType) {
    x.leaf("instanceType", t.name)
        .leaf("currentGeneration", "true")
        .leaf("freeTierEligible", tf(t.free_tier))
        .set("supportedUsageClasses", ["on-demand", "spot"], |x, v| {
            x.raw(v);
        })
        .set("supportedRootDeviceTypes", ["ebs"], |x, v| {
            x.raw(v);
        })
        .set("supportedVirtualizationTypes", ["hvm"], |x, v| {
            x.raw(v);
        })
        .leaf("bareMetal", "false")
        .leaf("hypervisor", t.hypervisor)
        .node("processorInfo", |x| {
            x.set("supportedArchitectures", t.architectures, |x, a| {
                x.raw(a);
            })
            .leaf("sustainedClockSpeedInGhz", t.clock_ghz)
            .leaf("manufacturer", "Intel");
        })
        .node("vCpuInfo", |x| {
            x.leaf("defaultVCpus", t.vcpus)
                .leaf("defaultCores", t.cores)
                .leaf("defaultThreadsPerCore", t.threads_per_core);
        })
        .node("memoryInfo", |x| {
            x.leaf("sizeInMiB", t.memory_mib);
        })
        .leaf("instanceStorageSupported", "false")
        .node("ebsInfo", |x| {
            x.leaf(
                "ebsOptimizedSupport",
                if t.hypervisor == "nitro" {
                    "default"
                } else {
                    "unsupported"
                },
            )
            .leaf("encryptionSupport", "supported")
            .leaf(
                "nvmeSupport",
                if t.hypervisor == "nitro" {
                    "required"
                } else {
                    "unsupported"
                },
            );
        })
        .node("networkInfo", |x| {
            x.leaf("networkPerformance", t.network_performance)
                .leaf("maximumNetworkInterfaces", t.max_network_interfaces)
                .leaf("maximumNetworkCards", 1)
                .leaf("defaultNetworkCardIndex", 0)
                .leaf("ipv4AddressesPerInterface", t.ipv4_per_interface)
                .leaf("ipv6AddressesPerInterface", t.ipv4_per_interface)
                .leaf("ipv6Supported", "true")
                .leaf("enaSupport", t.ena_support)
                .leaf("efaSupported", "false")
                .leaf("encryptionInTransitSupported", "false");
        })
        .node("placementGroupInfo", |x| {
            x.set("supportedStrategies", ["partition", "spread"], |x, s| {
                x.raw(s);
            });
        })
        .leaf("hibernationSupported", "false")
        .leaf("burstablePerformanceSupported", tf(t.burstable))
        .leaf("dedicatedHostsSupported", "false")
        .leaf("autoRecoverySupported", "true")
        .set("supportedBootModes", ["legacy-bios", "uefi"], |x, m| {
            x.raw(m);
        });
}

fn describe_instance_types(c: &mut Call) -> ApiResult<Xml> {
    let names = c.params.list("InstanceType");
    let filters = c.params.filters()?;
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| catalog::instance_type(n).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::new(
            "InvalidInstanceType",
            format!(
                "The following supplied instance types do not exist: [{}]",
                unknown.join(", ")
            ),
        ));
    }
    let mut rows = Vec::new();
    for t in INSTANCE_TYPES {
        if !names.is_empty() && !names.iter().any(|n| n == t.name) {
            continue;
        }
        if matches(&filters, |n| type_values(t, n))? {
            rows.push(t);
        }
    }
    // DescribeInstanceTypes pages at 5–100 per call; the token is the next type's name.
    let max = match c.params.int("MaxResults")? {
        None => 100,
        Some(n) if (5..=100).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid_value(format!(
                "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between 5 and 100."
            )));
        }
    };
    let start = match super::next_token(c)? {
        Some(name) => rows
            .iter()
            .position(|t| t.name == name)
            .unwrap_or(rows.len()),
        None => 0,
    };
    let rest: Vec<&InstanceType> = rows.into_iter().skip(start).collect();
    let next = rest
        .get(max)
        .map(|t| super::token::encode("DescribeInstanceTypes", t.name));
    let mut x = Xml::new();
    x.set("instanceTypeSet", rest.into_iter().take(max), render_type);
    x.opt("nextToken", next);
    Ok(x)
}
