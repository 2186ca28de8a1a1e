//! Instance actions: RunInstances, DescribeInstances, DescribeInstanceStatus,
//! Start/Stop/Reboot/TerminateInstances, GetConsoleOutput, ModifyInstanceAttribute,
//! ModifyInstanceMetadataOptions, DescribeInstanceAttribute. Element names and order follow botocore's `Instance` shape
//! and what EC2 sends, so `--query` expressions written against AWS work unchanged.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::api::Call;
use crate::api::xml::Xml;
use crate::catalog;
use crate::model::ec2::instance::{
    BlockDeviceSpec, Instance, InstanceAttributeChange, InstanceAttributeValue, InstanceState,
    InstanceView, MetadataOptionsChange, NicSpec, RunRequest, StateChange, enabled_or_disabled,
};
use crate::model::ec2::volume::{Volume, VolumeSpec};
use crate::model::{ApiError, ApiResult, Timestamp, World};

use super::{Handler, return_true, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("RunInstances", run_instances),
    ("DescribeInstances", describe_instances),
    ("DescribeInstanceStatus", describe_instance_status),
    ("StartInstances", start_instances),
    ("StopInstances", stop_instances),
    ("RebootInstances", reboot_instances),
    ("TerminateInstances", terminate_instances),
    ("GetConsoleOutput", get_console_output),
    ("ModifyInstanceAttribute", modify_instance_attribute),
    (
        "ModifyInstanceMetadataOptions",
        modify_instance_metadata_options,
    ),
    ("DescribeInstanceAttribute", describe_instance_attribute),
    ("MonitorInstances", monitor_instances),
    ("UnmonitorInstances", unmonitor_instances),
];

/// `BlockDeviceMapping.N` (EBS mappings; `VirtualName` instance-store entries are ignored).
fn block_device_specs(c: &Call) -> ApiResult<Vec<BlockDeviceSpec>> {
    let mut out = Vec::new();
    for s in c.params.structs("BlockDeviceMapping") {
        out.push(BlockDeviceSpec {
            device_name: s.get("DeviceName").unwrap_or_default().to_string(),
            ebs: VolumeSpec {
                size_gib: s.int("Ebs.VolumeSize")?,
                volume_type: s
                    .get("Ebs.VolumeType")
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                iops: s.int("Ebs.Iops")?,
                throughput: s.int("Ebs.Throughput")?,
                snapshot_id: s
                    .get("Ebs.SnapshotId")
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                encrypted: s.bool("Ebs.Encrypted")?,
            },
            delete_on_termination: s.bool("Ebs.DeleteOnTermination")?,
            no_device: s.get("NoDevice").is_some(),
        });
    }
    Ok(out)
}

/// `blockDeviceMapping`: the instance's attached volumes, root first. An instance
/// launched before volumes were modelled shows its root volume as before.
pub fn render_block_devices(x: &mut Xml, w: &World, i: &crate::model::ec2::instance::Instance) {
    let vols = w.volumes_of_instance(&i.id, Timestamp(i64::MAX));
    render_volumes(x, i, &vols);
}

/// The `blockDeviceMapping` of `i`, whose attached volumes are `vols` (root first).
fn render_volumes(x: &mut Xml, i: &crate::model::ec2::instance::Instance, vols: &[&Volume]) {
    if vols.is_empty() {
        let root = i.image().map(|m| m.root_device_name).unwrap_or("/dev/xvda");
        x.set("blockDeviceMapping", [()], |x, _| {
            x.leaf("deviceName", root).node("ebs", |x| {
                x.leaf("volumeId", &i.root_volume_id)
                    .leaf("status", "attached")
                    .leaf("attachTime", i.created.iso())
                    .leaf("deleteOnTermination", "true");
            });
        });
        return;
    }
    x.set("blockDeviceMapping", vols, |x, v| {
        if let Some(a) = &v.attachment {
            x.leaf("deviceName", &a.device).node("ebs", |x| {
                x.leaf("volumeId", &v.id)
                    .leaf("status", "attached")
                    .leaf("attachTime", a.attach_time.iso())
                    .leaf("deleteOnTermination", tf(a.delete_on_termination));
            });
        }
    });
}

/// The volumes attached to every instance, read once per listing.
pub type VolumesByInstance<'a> = HashMap<&'a str, Vec<&'a Volume>>;

fn nic_specs(c: &Call) -> ApiResult<Vec<NicSpec>> {
    let mut out = Vec::new();
    for s in c.params.structs("NetworkInterface") {
        out.push(NicSpec {
            device_index: s.int("DeviceIndex")?,
            network_interface_id: s.get("NetworkInterfaceId").map(str::to_string),
            subnet_id: s
                .get("SubnetId")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            associate_public_ip: s.bool("AssociatePublicIpAddress")?,
            groups: s.list("SecurityGroupId"),
            private_ip: s
                .get("PrivateIpAddress")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            private_ips: s
                .structs("PrivateIpAddresses")
                .into_iter()
                .filter_map(|p| {
                    let ip = p.get("PrivateIpAddress")?.to_string();
                    let primary = p
                        .get("Primary")
                        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                    Some((ip, primary))
                })
                .collect(),
            delete_on_termination: s.bool("DeleteOnTermination")?,
            description: s.get("Description").map(str::to_string),
            ipv6_address_count: s.int("Ipv6AddressCount")?,
            secondary_private_ip_count: s.int("SecondaryPrivateIpAddressCount")?,
        });
    }
    Ok(out)
}

fn run_instances(c: &mut Call) -> ApiResult<Xml> {
    let p = c.params;
    let req = RunRequest {
        image_id: p.get("ImageId").map(str::to_string),
        instance_type: p
            .get("InstanceType")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        key_name: p
            .get("KeyName")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        min_count: p.int("MinCount")?,
        max_count: p.int("MaxCount")?,
        subnet_id: p
            .get("SubnetId")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        security_group_ids: p.list("SecurityGroupId"),
        security_group_names: p.list("SecurityGroup"),
        private_ip: p
            .get("PrivateIpAddress")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        ipv6_address_count: p.int("Ipv6AddressCount")?,
        network_interfaces: nic_specs(c)?,
        user_data: p.get("UserData").map(str::to_string),
        tag_specs: p.tag_specs()?,
        availability_zone: p
            .get("Placement.AvailabilityZone")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        client_token: p.get("ClientToken").map(str::to_string),
        disable_api_termination: p.bool("DisableApiTermination")?,
        disable_api_stop: p.bool("DisableApiStop")?,
        monitoring: p.bool("Monitoring.Enabled")?,
        shutdown_behavior: p
            .get("InstanceInitiatedShutdownBehavior")
            .map(str::to_string),
        http_tokens: p.get("MetadataOptions.HttpTokens").map(str::to_string),
        http_endpoint: p.get("MetadataOptions.HttpEndpoint").map(str::to_string),
        http_protocol_ipv6: p
            .get("MetadataOptions.HttpProtocolIpv6")
            .map(str::to_string),
        http_put_response_hop_limit: p.int("MetadataOptions.HttpPutResponseHopLimit")?,
        boot_delay_ms: c.boot_delay_ms,
        block_devices: block_device_specs(c)?,
    };
    // `LaunchTemplate.*`: the template version's parameters under the request's own.
    let lt_id = p.get("LaunchTemplate.LaunchTemplateId").map(str::to_string);
    let lt_name = p
        .get("LaunchTemplate.LaunchTemplateName")
        .map(str::to_string);
    let req = if lt_id.is_some() || lt_name.is_some() {
        let version = p.get("LaunchTemplate.Version").map(str::to_string);
        let w = c.read()?;
        w.launch_request(
            &c.env,
            lt_id.as_deref(),
            lt_name.as_deref(),
            version.as_deref(),
            req,
        )?
    } else {
        req
    };
    let profile = super::iam_profile::profile_spec(c);
    let (reservation_id, ids) = c.mutate(|w, env| {
        // The profile is checked before anything launches (one commit either way).
        if !profile.is_empty() {
            w.resolve_instance_profile(&profile)?;
        }
        let (rid, ids) = w.run_instances(env, &req)?;
        if !profile.is_empty() {
            // A repeated client token returns the first call's instances, already
            // associated.
            for id in &ids {
                if w.profile_association_of(id).is_none() {
                    w.associate_iam_instance_profile(env, id, &profile)?;
                }
            }
        }
        Ok((rid, ids))
    })?;
    let w = c.read()?;
    let now = c.env.now;
    let views: Vec<InstanceView<'_>> = ids
        .iter()
        .filter_map(|id| w.instances.get(id))
        .map(|i| w.instance_view(i, now))
        .collect();
    let vols = w.volumes_by_instance(Timestamp(i64::MAX));
    let mut x = Xml::new();
    x.leaf("reservationId", &reservation_id)
        .leaf("ownerId", &w.account)
        .set("groupSet", std::iter::empty::<()>(), |_, _| {})
        .set("instancesSet", &views, |x, v| {
            render_instance(x, &w, &vols, v)
        });
    Ok(x)
}

fn state_node(x: &mut Xml, name: &str, s: InstanceState) {
    x.node(name, |x| {
        x.leaf("code", s.code()).leaf("name", s.name());
    });
}

/// The children of one `instancesSet` item.
pub fn render_instance(x: &mut Xml, w: &World, vols: &VolumesByInstance<'_>, v: &InstanceView<'_>) {
    let i = v.instance;
    let terminated = v.state == InstanceState::Terminated;
    let itype = catalog::instance_type(&i.instance_type);
    x.leaf("instanceId", &i.id).leaf("imageId", &i.image_id);
    state_node(x, "instanceState", v.state);
    x.leaf("privateDnsName", &v.private_dns_name)
        .leaf("dnsName", &v.public_dns_name)
        .leaf("reason", &i.state_transition_reason)
        .opt("keyName", i.key_name.as_deref())
        .leaf("amiLaunchIndex", i.ami_launch_index)
        .set("productCodes", std::iter::empty::<()>(), |_, _| {})
        .leaf("instanceType", &i.instance_type)
        .leaf("launchTime", i.launch_time.iso())
        .node("placement", |x| {
            x.leaf("availabilityZone", &i.availability_zone)
                .leaf("groupName", "")
                .leaf("tenancy", "default");
        })
        .node("monitoring", |x| {
            x.leaf("state", i.monitoring_state());
        });
    if !terminated {
        x.leaf("subnetId", &i.subnet_id).leaf("vpcId", &i.vpc_id);
        // None in an IPv6-only subnet: AWS shows no private IPv4 address at all.
        x.opt("privateIpAddress", v.eni.and_then(|e| e.ipv4()));
        x.opt("ipAddress", v.public_ip);
        x.opt(
            "ipv6Address",
            v.eni.and_then(|e| e.ipv6_addresses.first().copied()),
        );
        x.opt("sourceDestCheck", v.eni.map(|e| tf(e.source_dest_check)));
    }
    x.set("groupSet", &v.groups, |x, (id, name)| {
        x.leaf("groupId", id).leaf("groupName", name);
    });
    if let Some(r) = &i.state_reason {
        x.node("stateReason", |x| {
            x.leaf("code", &r.code).leaf("message", &r.message);
        });
    }
    x.leaf(
        "architecture",
        v.image.map(|m| m.architecture).unwrap_or("x86_64"),
    )
    .leaf("rootDeviceType", "ebs")
    .opt("rootDeviceName", v.image.map(|m| m.root_device_name));
    if terminated {
        x.set("blockDeviceMapping", std::iter::empty::<()>(), |_, _| {});
    } else {
        render_volumes(x, i, vols.get(i.id.as_str()).map_or(&[], Vec::as_slice));
    }
    x.leaf("virtualizationType", "hvm");
    x.opt("clientToken", i.client_token.as_deref());
    if let Some(a) = w.profile_association_of(&i.id).filter(|_| !terminated) {
        x.node("iamInstanceProfile", |x| {
            x.leaf("arn", &a.profile_arn)
                .leaf("id", &a.profile_unique_id);
        });
    }
    if !v.tags.is_empty() {
        x.set("tagSet", &v.tags, |x, (k, val)| {
            x.leaf("key", k).leaf("value", val);
        });
    }
    x.leaf("hypervisor", "xen");
    x.set("networkInterfaceSet", v.eni, |x, e| {
        let assoc = |x: &mut Xml| {
            if let (Some(ip), Some(owner)) = (v.public_ip, v.public_ip_owner.as_deref()) {
                x.node("association", |x| {
                    x.leaf("publicIp", ip)
                        .leaf("publicDnsName", &v.public_dns_name)
                        .leaf("ipOwnerId", owner);
                });
            }
        };
        x.leaf("networkInterfaceId", &e.id)
            .leaf("subnetId", &e.subnet_id)
            .leaf("vpcId", &e.vpc_id)
            .leaf("description", &e.description)
            .leaf("ownerId", &w.account)
            .leaf("status", &e.status)
            .leaf("macAddress", &e.mac)
            .opt("privateIpAddress", e.ipv4())
            .leaf("privateDnsName", &v.private_dns_name)
            .leaf("sourceDestCheck", tf(e.source_dest_check))
            .set("groupSet", &v.groups, |x, (id, name)| {
                x.leaf("groupId", id).leaf("groupName", name);
            });
        if let Some(a) = &e.attachment {
            x.node("attachment", |x| {
                x.leaf("attachmentId", &a.id)
                    .leaf("deviceIndex", a.device_index)
                    .leaf("status", &a.status)
                    .leaf("attachTime", a.attach_time.iso())
                    .leaf("deleteOnTermination", tf(a.delete_on_termination))
                    .leaf("networkCardIndex", 0);
            });
        }
        assoc(x);
        // Secondary addresses follow the primary one, as AWS lists them.
        x.set(
            "privateIpAddressesSet",
            e.ipv4()
                .into_iter()
                .chain(e.secondary_ips.iter().copied())
                .enumerate(),
            |x, (i, ip)| {
                if i == 0 {
                    x.leaf("privateIpAddress", ip)
                        .leaf("privateDnsName", &v.private_dns_name)
                        .leaf("primary", "true");
                    assoc(x);
                } else {
                    x.leaf("privateIpAddress", ip)
                        .leaf(
                            "privateDnsName",
                            crate::model::ec2::eni::private_dns_name(&e.region, ip),
                        )
                        .leaf("primary", "false");
                }
            },
        );
        x.set(
            "ipv6AddressesSet",
            e.ipv6_addresses.iter().enumerate(),
            |x, (i, a)| {
                x.leaf("ipv6Address", a).leaf("isPrimaryIpv6", tf(i == 0));
            },
        )
        .leaf("interfaceType", &e.interface_type);
    });
    x.leaf("ebsOptimized", "false")
        .leaf(
            "enaSupport",
            tf(itype.is_some_and(|t| t.ena_support != "unsupported")),
        )
        .node("cpuOptions", |x| {
            x.leaf("coreCount", itype.map(|t| t.cores).unwrap_or(1))
                .leaf(
                    "threadsPerCore",
                    itype.map(|t| t.threads_per_core).unwrap_or(1),
                );
        })
        .node("capacityReservationSpecification", |x| {
            x.leaf("capacityReservationPreference", "open");
        })
        .node("hibernationOptions", |x| {
            x.leaf("configured", "false");
        })
        .node("metadataOptions", |x| metadata_options(x, i))
        .node("enclaveOptions", |x| {
            x.leaf("enabled", "false");
        })
        .opt("bootMode", v.image.map(|m| m.boot_mode))
        .leaf("platformDetails", "Linux/UNIX")
        .leaf("usageOperation", "RunInstances")
        .leaf("usageOperationUpdateTime", i.created.iso())
        .node("privateDnsNameOptions", |x| {
            let o = &i.dns_name_options;
            x.leaf("hostnameType", o.hostname_type())
                .leaf("enableResourceNameDnsARecord", tf(o.a_record))
                .leaf("enableResourceNameDnsAAAARecord", tf(o.aaaa_record));
        })
        .node("maintenanceOptions", |x| {
            x.leaf("autoRecovery", "default");
        })
        .leaf("currentInstanceBootMode", "uefi");
}

/// Sort key of a view, and the `NextToken` spelling of it.
fn page_key(v: &InstanceView<'_>) -> String {
    format!(
        "{:016x}.{}.{:04}",
        v.instance.created.0, v.instance.reservation_id, v.instance.ami_launch_index
    )
}

fn describe_instances(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("InstanceId");
    let filters = c.params.filters()?;
    let max = match c.params.int("MaxResults")? {
        None => None,
        Some(_) if !ids.is_empty() => {
            return Err(ApiError::combination(
                "The parameter instancesSet cannot be used with the parameter maxResults",
            ));
        }
        Some(n) if (5..=1000).contains(&n) => Some(n as usize),
        Some(n) => {
            return Err(ApiError::invalid_value(format!(
                "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."
            )));
        }
    };
    let token = super::next_token(c)?;
    let w = c.read()?;
    let reservations = w.describe_instances(&c.env, &ids, &filters)?;
    let mut flat: Vec<InstanceView<'_>> = reservations.into_iter().flat_map(|(_, v)| v).collect();
    if let Some(t) = &token {
        flat.retain(|v| page_key(v).as_str() >= t.as_str());
    }
    let next = match max {
        Some(m) if flat.len() > m => {
            let n = super::token::encode("DescribeInstances", &page_key(&flat[m]));
            flat.truncate(m);
            Some(n)
        }
        _ => None,
    };
    // Regroup the page by reservation (views are in launch order, so groups are runs).
    let mut groups: Vec<(String, Vec<InstanceView<'_>>)> = Vec::new();
    for v in flat {
        match groups.last_mut() {
            Some((rid, list)) if *rid == v.instance.reservation_id => list.push(v),
            _ => groups.push((v.instance.reservation_id.clone(), vec![v])),
        }
    }
    let vols = w.volumes_by_instance(Timestamp(i64::MAX));
    let mut x = Xml::new();
    x.set("reservationSet", &groups, |x, (rid, views)| {
        x.leaf("reservationId", rid)
            .leaf("ownerId", &w.account)
            .set("groupSet", std::iter::empty::<()>(), |_, _| {})
            .set("instancesSet", views, |x, v| {
                render_instance(x, &w, &vols, v)
            });
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn describe_instance_status(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("InstanceId");
    let filters = c.params.filters()?;
    let include_all = c.params.bool("IncludeAllInstances")?.unwrap_or(false);
    let w = c.read()?;
    let rows = w.describe_instance_status(&c.env, &ids, &filters, include_all)?;
    let zone_id = |az: &str| {
        crate::model::region::region(&c.env.region)
            .and_then(|r| r.zone(az))
            .map(|z| z.zone_id)
    };
    let mut x = Xml::new();
    x.set("instanceStatusSet", &rows, |x, s| {
        let reach = match s.instance_status {
            "ok" => "passed",
            "initializing" => "initializing",
            _ => "insufficient-data",
        };
        x.leaf("instanceId", &s.instance.id)
            .leaf("availabilityZone", &s.instance.availability_zone)
            .opt("availabilityZoneId", zone_id(&s.instance.availability_zone));
        state_node(x, "instanceState", s.state);
        for (name, status) in [
            ("systemStatus", s.system_status),
            ("instanceStatus", s.instance_status),
        ] {
            x.node(name, |x| {
                x.leaf("status", status);
                if status != "not-applicable" {
                    x.set("details", [()], |x, _| {
                        x.leaf("name", "reachability").leaf("status", reach);
                    });
                }
            });
        }
        x.node("attachedEbsStatus", |x| {
            x.leaf(
                "status",
                if s.state == InstanceState::Running {
                    "ok"
                } else {
                    "not-applicable"
                },
            );
        });
    });
    Ok(x)
}

fn instance_ids(c: &Call) -> ApiResult<Vec<String>> {
    let ids = c.params.list("InstanceId");
    if ids.is_empty() {
        return Err(ApiError::missing("InstanceId"));
    }
    Ok(ids)
}

fn render_changes(changes: &[StateChange]) -> Xml {
    let mut x = Xml::new();
    x.set("instancesSet", changes, |x, ch| {
        x.leaf("instanceId", &ch.instance_id);
        state_node(x, "currentState", ch.current);
        state_node(x, "previousState", ch.previous);
    });
    x
}

fn start_instances(c: &mut Call) -> ApiResult<Xml> {
    let ids = instance_ids(c)?;
    let delay = c.boot_delay_ms;
    let changes = c.mutate(|w, env| w.start_instances(env, &ids, delay))?;
    Ok(render_changes(&changes))
}

fn stop_instances(c: &mut Call) -> ApiResult<Xml> {
    let ids = instance_ids(c)?;
    let changes = c.mutate(|w, env| w.stop_instances(env, &ids))?;
    Ok(render_changes(&changes))
}

fn terminate_instances(c: &mut Call) -> ApiResult<Xml> {
    let ids = instance_ids(c)?;
    let changes = c.mutate(|w, env| w.terminate_instances(env, &ids))?;
    Ok(render_changes(&changes))
}

fn reboot_instances(c: &mut Call) -> ApiResult<Xml> {
    let ids = instance_ids(c)?;
    c.mutate(|w, env| w.reboot_instances(env, &ids))?;
    Ok(return_true())
}

/// MonitorInstances / UnmonitorInstances: `instancesSet` of `instanceId` and
/// `monitoring.state` (`pending` / `disabling` while the change takes effect).
fn set_monitoring(c: &mut Call, enabled: bool) -> ApiResult<Xml> {
    let ids = instance_ids(c)?;
    let changed = c.mutate(|w, env| w.set_instance_monitoring(env, &ids, enabled))?;
    let mut x = Xml::new();
    x.set("instancesSet", &changed, |x, (id, state)| {
        x.leaf("instanceId", id).node("monitoring", |x| {
            x.leaf("state", *state);
        });
    });
    Ok(x)
}

fn monitor_instances(c: &mut Call) -> ApiResult<Xml> {
    set_monitoring(c, true)
}

fn unmonitor_instances(c: &mut Call) -> ApiResult<Xml> {
    set_monitoring(c, false)
}

fn get_console_output(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("InstanceId")?.to_string();
    let w = c.read()?;
    let (text, at): (Option<String>, Timestamp) = w.console_output(&c.env, &id)?;
    let mut x = Xml::new();
    x.leaf("instanceId", &id).leaf("timestamp", at.iso());
    x.opt("output", text.map(|t| BASE64.encode(t.as_bytes())));
    Ok(x)
}

fn modify_instance_attribute(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("InstanceId")?.to_string();
    let p = c.params;
    let mut changes: Vec<(&str, InstanceAttributeChange)> = Vec::new();
    if let Some(v) = p.bool_value("SourceDestCheck")? {
        changes.push((
            "sourceDestCheck",
            InstanceAttributeChange::SourceDestCheck(v),
        ));
    }
    if let Some(v) = p.bool_value("DisableApiTermination")? {
        changes.push((
            "disableApiTermination",
            InstanceAttributeChange::DisableApiTermination(v),
        ));
    }
    if let Some(v) = p.bool_value("DisableApiStop")? {
        changes.push(("disableApiStop", InstanceAttributeChange::DisableApiStop(v)));
    }
    if let Some(v) = p.get("InstanceType.Value") {
        changes.push((
            "instanceType",
            InstanceAttributeChange::InstanceType(v.to_string()),
        ));
    }
    if let Some(v) = p.get("UserData.Value") {
        changes.push(("userData", InstanceAttributeChange::UserData(v.to_string())));
    }
    if let Some(v) = p.get("InstanceInitiatedShutdownBehavior.Value") {
        changes.push((
            "instanceInitiatedShutdownBehavior",
            InstanceAttributeChange::ShutdownBehavior(v.to_string()),
        ));
    }
    let groups = p.list("GroupId");
    if !groups.is_empty() {
        changes.push(("groupSet", InstanceAttributeChange::Groups(groups)));
    }
    if let Some(attr) = p.get("Attribute") {
        let value = p.get("Value").unwrap_or("").to_string();
        let flag = |v: &str| -> ApiResult<bool> {
            match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ApiError::bad_param("Value", v)),
            }
        };
        let change = match attr {
            "instanceType" => InstanceAttributeChange::InstanceType(value),
            "userData" => InstanceAttributeChange::UserData(value),
            "sourceDestCheck" => InstanceAttributeChange::SourceDestCheck(flag(&value)?),
            "disableApiTermination" => {
                InstanceAttributeChange::DisableApiTermination(flag(&value)?)
            }
            "disableApiStop" => InstanceAttributeChange::DisableApiStop(flag(&value)?),
            "instanceInitiatedShutdownBehavior" => InstanceAttributeChange::ShutdownBehavior(value),
            "groupSet" => InstanceAttributeChange::Groups(
                value.split(',').map(|s| s.trim().to_string()).collect(),
            ),
            other => {
                return Err(ApiError::new(
                    "InvalidParameterValue",
                    format!(
                        "Value ({other}) for parameter attribute is invalid. Modifying it is not supported by vpclab."
                    ),
                ));
            }
        };
        changes.push((attr, change));
    }
    let change = match changes.len() {
        0 => return Err(ApiError::missing("Attribute")),
        1 => changes.remove(0).1,
        _ => {
            let names: Vec<&str> = changes.iter().map(|(n, _)| *n).collect();
            return Err(ApiError::combination(format!(
                "Fields for multiple attribute types specified: {}",
                names.join(", ")
            )));
        }
    };
    c.mutate(|w, env| w.modify_instance_attribute(env, &id, change))?;
    Ok(return_true())
}

/// ModifyInstanceMetadataOptions. The response shows the options as they now are, with
/// `state` `applied`: vpclab applies them before it answers (AWS answers `pending`
/// first, then `applied` in later DescribeInstances).
fn modify_instance_metadata_options(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("InstanceId")?.to_string();
    let p = c.params;
    let change = MetadataOptionsChange {
        http_tokens: p.get("HttpTokens").map(str::to_string),
        http_put_response_hop_limit: p.int("HttpPutResponseHopLimit")?,
        http_endpoint: p.get("HttpEndpoint").map(str::to_string),
        http_protocol_ipv6: p.get("HttpProtocolIpv6").map(str::to_string),
        instance_metadata_tags: p.get("InstanceMetadataTags").map(str::to_string),
    };
    c.mutate(|w, env| w.modify_instance_metadata_options(env, &id, change))?;
    let w = c.read()?;
    let i = w.instance(&c.env.region, &id)?;
    let mut x = Xml::new();
    x.leaf("instanceId", &id)
        .node("instanceMetadataOptions", |x| metadata_options(x, i));
    Ok(x)
}

/// `metadataOptions` as DescribeInstances and RunInstances show it, and
/// ModifyInstanceMetadataOptions answers it (the change applies at once: `applied`).
fn metadata_options(x: &mut Xml, i: &Instance) {
    x.leaf("state", "applied")
        .leaf("httpTokens", &i.http_tokens)
        .leaf("httpPutResponseHopLimit", i.http_put_response_hop_limit)
        .leaf("httpEndpoint", &i.http_endpoint)
        .leaf(
            "httpProtocolIpv6",
            enabled_or_disabled(i.http_protocol_ipv6),
        )
        .leaf("instanceMetadataTags", "disabled");
}

fn describe_instance_attribute(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("InstanceId")?.to_string();
    let attr = c.params.required("Attribute")?.to_string();
    let w = c.read()?;
    let value = w.describe_instance_attribute(&c.env, &id, &attr)?;
    let inst = w.instance(&c.env.region, &id)?;
    let mut x = Xml::new();
    x.leaf("instanceId", &id);
    // The response element is named after the attribute.
    let element = attr.as_str();
    match value {
        InstanceAttributeValue::Text(Some(v)) => {
            x.node(element, |x| {
                x.leaf("value", v);
            });
        }
        InstanceAttributeValue::Text(None) => {
            x.node(element, |_| {});
        }
        InstanceAttributeValue::Bool(v) => {
            x.node(element, |x| {
                x.leaf("value", tf(v));
            });
        }
        InstanceAttributeValue::Groups(groups) => {
            x.set("groupSet", &groups, |x, (gid, name)| {
                x.leaf("groupId", gid).leaf("groupName", name);
            });
        }
        InstanceAttributeValue::ProductCodes => {
            x.set("productCodes", std::iter::empty::<()>(), |_, _| {});
        }
        InstanceAttributeValue::BlockDevices => {
            render_block_devices(&mut x, &w, inst);
        }
    }
    Ok(x)
}
