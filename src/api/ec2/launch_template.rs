//! Launch template actions: CreateLaunchTemplate, CreateLaunchTemplateVersion,
//! DescribeLaunchTemplates, DescribeLaunchTemplateVersions, ModifyLaunchTemplate,
//! DeleteLaunchTemplate. RunInstances' `LaunchTemplate` is resolved in `instance.rs`
//! through `World::launch_request`.

use crate::api::Call;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::model::ec2::launch_template::{LaunchData, LaunchTemplate, LaunchTemplateVersion};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, tag_set};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateLaunchTemplate", create_launch_template),
    (
        "CreateLaunchTemplateVersion",
        create_launch_template_version,
    ),
    ("DescribeLaunchTemplates", describe_launch_templates),
    (
        "DescribeLaunchTemplateVersions",
        describe_launch_template_versions,
    ),
    ("ModifyLaunchTemplate", modify_launch_template),
    ("DeleteLaunchTemplate", delete_launch_template),
];

/// `LaunchTemplateData.*` as vpclab keeps it.
fn launch_data(p: &Params) -> ApiResult<LaunchData> {
    let get = |k: &str| {
        p.get(&format!("LaunchTemplateData.{k}"))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let nic = p
        .structs("LaunchTemplateData.NetworkInterface")
        .into_iter()
        .next();
    let mut instance_tags = Vec::new();
    for s in p.structs("LaunchTemplateData.TagSpecification") {
        if s.get("ResourceType") == Some("instance") {
            instance_tags.extend(s.tags("Tag")?);
        }
    }
    Ok(LaunchData {
        image_id: get("ImageId"),
        instance_type: get("InstanceType"),
        key_name: get("KeyName"),
        security_group_ids: p.list("LaunchTemplateData.SecurityGroupId"),
        user_data: get("UserData"),
        associate_public_ip: match &nic {
            Some(n) => n.bool("AssociatePublicIpAddress")?,
            None => None,
        },
        nic_subnet_id: nic.as_ref().and_then(|n| {
            n.get("SubnetId")
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        }),
        nic_groups: nic
            .as_ref()
            .map(|n| n.list("SecurityGroupId"))
            .unwrap_or_default(),
        instance_tags,
    })
}

fn render_template(x: &mut Xml, w: &World, t: &LaunchTemplate) {
    x.leaf("launchTemplateId", &t.id)
        .leaf("launchTemplateName", &t.name)
        .leaf("createTime", t.created.iso())
        .leaf("createdBy", format!("arn:aws:iam::{}:root", w.account))
        .leaf("defaultVersionNumber", t.default_version)
        .leaf("latestVersionNumber", t.latest_version());
    tag_set(x, w, &t.id);
}

fn render_version(x: &mut Xml, w: &World, t: &LaunchTemplate, v: &LaunchTemplateVersion) {
    let d = &v.data;
    x.leaf("launchTemplateId", &t.id)
        .leaf("launchTemplateName", &t.name)
        .leaf("versionNumber", v.number)
        .opt("versionDescription", v.description.as_deref())
        .leaf("createTime", v.created.iso())
        .leaf("createdBy", format!("arn:aws:iam::{}:root", w.account))
        .leaf("defaultVersion", v.number == t.default_version)
        .node("launchTemplateData", |x| {
            x.opt("imageId", d.image_id.as_deref())
                .opt("instanceType", d.instance_type.as_deref())
                .opt("keyName", d.key_name.as_deref())
                .opt("userData", d.user_data.as_deref());
            if !d.security_group_ids.is_empty() {
                x.set("securityGroupIdSet", &d.security_group_ids, |x, g| {
                    x.raw(&crate::api::xml::escape(g));
                });
            }
            if d.associate_public_ip.is_some() || d.nic_subnet_id.is_some() {
                x.set("networkInterfaceSet", [()], |x, _| {
                    x.opt("associatePublicIpAddress", d.associate_public_ip)
                        .leaf("deviceIndex", 0)
                        .opt("subnetId", d.nic_subnet_id.as_deref());
                    if !d.nic_groups.is_empty() {
                        x.set("groupSet", &d.nic_groups, |x, g| {
                            x.raw(&crate::api::xml::escape(g));
                        });
                    }
                });
            }
            if !d.instance_tags.is_empty() {
                x.set("tagSpecificationSet", [()], |x, _| {
                    x.leaf("resourceType", "instance").set(
                        "tagSet",
                        &d.instance_tags,
                        |x, (k, v)| {
                            x.leaf("key", k).leaf("value", v);
                        },
                    );
                });
            }
        });
}

fn create_launch_template(c: &mut Call) -> ApiResult<Xml> {
    let name = c.params.required("LaunchTemplateName")?.to_string();
    let description = c.params.get("VersionDescription").map(str::to_string);
    let data = launch_data(c.params)?;
    let specs = c.params.tag_specs()?;
    World::check_tag_specs(&specs, &["launch-template"])?;
    let id = c.mutate(|w, env| {
        let id = w.create_launch_template(env, &name, description, data)?;
        w.apply_tag_specs(env, &id, "launch-template", &specs)?;
        Ok(id)
    })?;
    let w = c.read()?;
    let t = w.launch_templates.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("launchTemplate", |x| render_template(x, &w, t));
    Ok(x)
}

fn create_launch_template_version(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.get("LaunchTemplateId").map(str::to_string);
    let name = c.params.get("LaunchTemplateName").map(str::to_string);
    let source = c.params.get("SourceVersion").map(str::to_string);
    let description = c.params.get("VersionDescription").map(str::to_string);
    let data = launch_data(c.params)?;
    let (id, n) = c.mutate(|w, env| {
        w.create_launch_template_version(
            env,
            id.as_deref(),
            name.as_deref(),
            source.as_deref(),
            description,
            data,
        )
    })?;
    let w = c.read()?;
    let t = w.launch_templates.get(&id).ok_or_else(ApiError::internal)?;
    let v = t.version(Some(&n.to_string()))?;
    let mut x = Xml::new();
    x.node("launchTemplateVersion", |x| render_version(x, &w, t, v));
    Ok(x)
}

fn describe_launch_templates(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("LaunchTemplateId");
    let names = c.params.list("LaunchTemplateName");
    let w = c.read()?;
    let mut rows: Vec<&LaunchTemplate> = Vec::new();
    for id in &ids {
        rows.push(w.launch_template(&c.env, Some(id), None)?);
    }
    for n in &names {
        rows.push(w.launch_template(&c.env, None, Some(n))?);
    }
    if ids.is_empty() && names.is_empty() {
        rows = w.launch_templates.in_region(&c.env.region).collect();
    }
    let mut x = Xml::new();
    x.set("launchTemplates", rows, |x, t| render_template(x, &w, t));
    Ok(x)
}

fn describe_launch_template_versions(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.get("LaunchTemplateId").map(str::to_string);
    let name = c.params.get("LaunchTemplateName").map(str::to_string);
    let asked = c.params.list("LaunchTemplateVersion");
    let w = c.read()?;
    let t = w.launch_template(&c.env, id.as_deref(), name.as_deref())?;
    let versions: Vec<&LaunchTemplateVersion> = if asked.is_empty() {
        t.versions.iter().collect()
    } else {
        asked
            .iter()
            .map(|v| t.version(Some(v)))
            .collect::<ApiResult<_>>()?
    };
    let mut x = Xml::new();
    x.set("launchTemplateVersionSet", versions, |x, v| {
        render_version(x, &w, t, v)
    });
    Ok(x)
}

fn modify_launch_template(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.get("LaunchTemplateId").map(str::to_string);
    let name = c.params.get("LaunchTemplateName").map(str::to_string);
    let version = c
        .params
        .get("SetDefaultVersion")
        .ok_or_else(|| ApiError::missing("SetDefaultVersion"))?
        .to_string();
    let id = c.mutate(|w, env| {
        w.set_default_launch_template_version(env, id.as_deref(), name.as_deref(), &version)
    })?;
    let w = c.read()?;
    let t = w.launch_templates.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("launchTemplate", |x| render_template(x, &w, t));
    Ok(x)
}

fn delete_launch_template(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.get("LaunchTemplateId").map(str::to_string);
    let name = c.params.get("LaunchTemplateName").map(str::to_string);
    let t = c.mutate(|w, env| w.delete_launch_template(env, id.as_deref(), name.as_deref()))?;
    let w = c.read()?;
    let mut x = Xml::new();
    x.node("launchTemplate", |x| render_template(x, &w, &t));
    Ok(x)
}
