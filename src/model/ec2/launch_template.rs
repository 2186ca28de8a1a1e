//! EC2 launch templates: CreateLaunchTemplate, CreateLaunchTemplateVersion,
//! DescribeLaunchTemplates, DescribeLaunchTemplateVersions, ModifyLaunchTemplate
//! (default version), DeleteLaunchTemplate, and how RunInstances and Auto Scaling turn
//! a template version into a launch request ([`World::launch_request`]).
//!
//! AWS rules kept: names are 3–128 characters of `[A-Za-z0-9()./_-]` and unique per
//! region; versions are numbered from 1; `$Latest` and `$Default` name the newest and
//! the default version; a version made with `SourceVersion` starts from that version's
//! data; what RunInstances itself gives overrides the template.

use serde::{Deserialize, Serialize};

use super::instance::{NicSpec, RunRequest};
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Resource, Timestamp, World};

/// The launch parameters a version holds (the subset vpclab honours).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LaunchData {
    pub image_id: Option<String>,
    pub instance_type: Option<String>,
    pub key_name: Option<String>,
    pub security_group_ids: Vec<String>,
    /// Base64, as given.
    pub user_data: Option<String>,
    /// `NetworkInterfaces.1`: (associate public IP, subnet, groups).
    pub associate_public_ip: Option<bool>,
    pub nic_subnet_id: Option<String>,
    pub nic_groups: Vec<String>,
    /// `TagSpecifications` with `ResourceType=instance`.
    pub instance_tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchTemplateVersion {
    pub number: u32,
    pub description: Option<String>,
    pub created: Timestamp,
    pub data: LaunchData,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchTemplate {
    /// `lt-…`.
    pub id: String,
    pub region: String,
    pub name: String,
    pub created: Timestamp,
    pub default_version: u32,
    pub versions: Vec<LaunchTemplateVersion>,
}

impl Resource for LaunchTemplate {
    const KIND: &'static str = "launch_template";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl LaunchTemplate {
    pub fn latest_version(&self) -> u32 {
        self.versions.iter().map(|v| v.number).max().unwrap_or(1)
    }

    /// A version by `$Latest`, `$Default` or number (none: the default).
    pub fn version(&self, which: Option<&str>) -> ApiResult<&LaunchTemplateVersion> {
        let n = match which.unwrap_or("$Default") {
            "$Latest" => self.latest_version(),
            "$Default" | "" => self.default_version,
            v => v.parse::<u32>().map_err(|_| {
                ApiError::new(
                    "InvalidLaunchTemplateId.VersionNotFound",
                    format!(
                        "Could not find launch template version {v} for template {}",
                        self.id
                    ),
                )
            })?,
        };
        self.versions.iter().find(|v| v.number == n).ok_or_else(|| {
            ApiError::new(
                "InvalidLaunchTemplateId.VersionNotFound",
                format!(
                    "Could not find launch template version {n} for template {}",
                    self.id
                ),
            )
        })
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "()./_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            "InvalidLaunchTemplateName.MalformedException",
            format!(
                "The launch template name '{name}' is not valid: use 3 to 128 letters, digits and ( ) . / _ -"
            ),
        ))
    }
}

impl World {
    /// A template by id or name.
    pub fn launch_template(
        &self,
        env: &Env,
        id: Option<&str>,
        name: Option<&str>,
    ) -> ApiResult<&LaunchTemplate> {
        match (id.filter(|s| !s.is_empty()), name.filter(|s| !s.is_empty())) {
            (Some(id), _) => self
                .launch_templates
                .get(id)
                .filter(|t| t.region == env.region)
                .ok_or_else(|| {
                    ApiError::new(
                        "InvalidLaunchTemplateId.NotFound",
                        format!("The specified launch template, with template ID {id}, does not exist."),
                    )
                }),
            (None, Some(name)) => self
                .launch_templates
                .in_region(&env.region)
                .find(|t| t.name == name)
                .ok_or_else(|| {
                    ApiError::new(
                        "InvalidLaunchTemplateName.NotFoundException",
                        format!("The specified launch template, with template name {name}, does not exist."),
                    )
                }),
            (None, None) => Err(ApiError::missing("LaunchTemplateId or LaunchTemplateName")),
        }
    }

    /// CreateLaunchTemplate: version 1, the default.
    pub fn create_launch_template(
        &mut self,
        env: &Env,
        name: &str,
        description: Option<String>,
        data: LaunchData,
    ) -> ApiResult<String> {
        check_name(name)?;
        if self
            .launch_templates
            .in_region(&env.region)
            .any(|t| t.name == name)
        {
            return Err(ApiError::new(
                "InvalidLaunchTemplateName.AlreadyExistsException",
                format!("Launch template name already in use: {name}"),
            ));
        }
        let id = self.alloc_id("lt");
        self.launch_templates.insert(LaunchTemplate {
            id: id.clone(),
            region: env.region.clone(),
            name: name.to_string(),
            created: env.now,
            default_version: 1,
            versions: vec![LaunchTemplateVersion {
                number: 1,
                description,
                created: env.now,
                data,
            }],
        });
        Ok(id)
    }

    /// CreateLaunchTemplateVersion: the next number; `source` starts from that
    /// version's data, overridden by every field `data` sets.
    pub fn create_launch_template_version(
        &mut self,
        env: &Env,
        id: Option<&str>,
        name: Option<&str>,
        source: Option<&str>,
        description: Option<String>,
        data: LaunchData,
    ) -> ApiResult<(String, u32)> {
        let t = self.launch_template(env, id, name)?.clone();
        let data = match source {
            Some(s) => {
                let mut base = t.version(Some(s))?.data.clone();
                merge(&mut base, data);
                base
            }
            None => data,
        };
        let number = t.latest_version() + 1;
        if let Some(x) = self.launch_templates.get_mut(&t.id) {
            x.versions.push(LaunchTemplateVersion {
                number,
                description,
                created: env.now,
                data,
            });
        }
        Ok((t.id, number))
    }

    /// ModifyLaunchTemplate: the default version.
    pub fn set_default_launch_template_version(
        &mut self,
        env: &Env,
        id: Option<&str>,
        name: Option<&str>,
        version: &str,
    ) -> ApiResult<String> {
        let t = self.launch_template(env, id, name)?.clone();
        let n = t.version(Some(version))?.number;
        if let Some(x) = self.launch_templates.get_mut(&t.id) {
            x.default_version = n;
        }
        Ok(t.id)
    }

    pub fn delete_launch_template(
        &mut self,
        env: &Env,
        id: Option<&str>,
        name: Option<&str>,
    ) -> ApiResult<LaunchTemplate> {
        let t = self.launch_template(env, id, name)?.clone();
        self.launch_templates.remove(&t.id);
        self.drop_tags(&t.id);
        Ok(t)
    }

    /// The launch request a template version makes, with `req`'s own fields winning
    /// (RunInstances: "parameters you specify override the template's").
    pub fn launch_request(
        &self,
        env: &Env,
        id: Option<&str>,
        name: Option<&str>,
        version: Option<&str>,
        mut req: RunRequest,
    ) -> ApiResult<RunRequest> {
        let t = self.launch_template(env, id, name)?;
        let d = &t.version(version)?.data;
        if req.image_id.as_deref().is_none_or(str::is_empty) {
            req.image_id = d.image_id.clone();
        }
        if req.instance_type.is_none() {
            req.instance_type = d.instance_type.clone();
        }
        if req.key_name.is_none() {
            req.key_name = d.key_name.clone();
        }
        if req.user_data.is_none() {
            req.user_data = d.user_data.clone();
        }
        let has_nic = d.associate_public_ip.is_some() || d.nic_subnet_id.is_some();
        if req.network_interfaces.is_empty() && has_nic {
            let groups = if req.security_group_ids.is_empty() {
                if d.nic_groups.is_empty() {
                    d.security_group_ids.clone()
                } else {
                    d.nic_groups.clone()
                }
            } else {
                std::mem::take(&mut req.security_group_ids)
            };
            req.network_interfaces.push(NicSpec {
                device_index: Some(0),
                subnet_id: req.subnet_id.take().or_else(|| d.nic_subnet_id.clone()),
                associate_public_ip: d.associate_public_ip,
                groups,
                ..NicSpec::default()
            });
        } else if req.security_group_ids.is_empty() && req.security_group_names.is_empty() {
            req.security_group_ids = d.security_group_ids.clone();
        }
        if !d.instance_tags.is_empty()
            && !req.tag_specs.iter().any(|s| s.resource_type == "instance")
        {
            req.tag_specs.push(TagSpec {
                resource_type: "instance".into(),
                tags: d.instance_tags.clone(),
            });
        }
        Ok(req)
    }
}

/// `data`'s fields over `base`.
fn merge(base: &mut LaunchData, data: LaunchData) {
    macro_rules! take {
        ($($f:ident),*) => {$(
            if data.$f.is_some() {
                base.$f = data.$f;
            }
        )*};
    }
    take!(
        image_id,
        instance_type,
        key_name,
        user_data,
        associate_public_ip,
        nic_subnet_id
    );
    if !data.security_group_ids.is_empty() {
        base.security_group_ids = data.security_group_ids;
    }
    if !data.nic_groups.is_empty() {
        base.nic_groups = data.nic_groups;
    }
    if !data.instance_tags.is_empty() {
        base.instance_tags = data.instance_tags;
    }
}
