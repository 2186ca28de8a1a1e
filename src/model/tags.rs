//! Tags: one `TagSet` row per tagged resource, keyed by the resource id, so CreateTags,
//! DeleteTags and DescribeTags work on every kind the same way. Deleting a resource must
//! drop its tag set (`World::drop_tags`). AWS's limits: 50 tags per resource, keys up to
//! 128 characters, values up to 256, and the `aws:` prefix is reserved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Env, Resource, World};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TagSet {
    /// The tagged resource's id.
    pub id: String,
    pub region: String,
    pub tags: BTreeMap<String, String>,
}

impl Resource for TagSet {
    const KIND: &'static str = "tags";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// One `TagSpecification.N` of a create call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagSpec {
    pub resource_type: String,
    pub tags: Vec<(String, String)>,
}

/// The EC2 resource type of an id, from its prefix (DescribeTags' `resourceType`).
pub fn resource_type_of(id: &str) -> &'static str {
    match id.split_once('-').map(|(p, _)| p).unwrap_or("") {
        "vpc" => "vpc",
        "subnet" => "subnet",
        "rtb" => "route-table",
        "igw" => "internet-gateway",
        "eipalloc" => "elastic-ip",
        "nat" => "natgateway",
        "acl" => "network-acl",
        "sg" => "security-group",
        "eni" => "network-interface",
        "i" => "instance",
        "key" => "key-pair",
        "dopt" => "dhcp-options",
        "ami" => "image",
        "vol" => "volume",
        "sgr" => "security-group-rule",
        "nip" => "network-insights-path",
        "nia" => "network-insights-analysis",
        "pl" => "prefix-list",
        _ => "unknown",
    }
}

const MAX_TAGS: usize = 50;

fn validate_tag(key: &str, value: &str) -> ApiResult<()> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!("Tag key '{key}' must be between 1 and 128 characters."),
        ));
    }
    if value.chars().count() > 256 {
        return Err(ApiError::invalid_value(format!(
            "Tag value for key '{key}' exceeds 256 characters."
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(ApiError::invalid_value(
            "Tag keys starting with 'aws:' are reserved for internal use",
        ));
    }
    Ok(())
}

impl World {
    pub fn tags_of(&self, id: &str) -> Option<&BTreeMap<String, String>> {
        self.tags.get(id).map(|t| &t.tags)
    }

    /// Sets tags on a resource (CreateTags semantics: overwrite values of existing keys).
    pub fn set_tags(&mut self, region: &str, id: &str, tags: &[(String, String)]) -> ApiResult<()> {
        for (k, v) in tags {
            validate_tag(k, v)?;
        }
        let mut set = self
            .tags
            .get(id)
            .map(|t| t.tags.clone())
            .unwrap_or_default();
        for (k, v) in tags {
            set.insert(k.clone(), v.clone());
        }
        if set.len() > MAX_TAGS {
            return Err(ApiError::new(
                "TagLimitExceeded",
                format!("The maximum number of Tags for a resource has been reached ({MAX_TAGS})."),
            ));
        }
        self.tags.insert(TagSet {
            id: id.to_string(),
            region: region.to_string(),
            tags: set,
        });
        Ok(())
    }

    /// DeleteTags semantics: a tag with a value is removed only if the value matches; a
    /// tag given without a value is removed whatever its value.
    pub fn remove_tags(&mut self, id: &str, tags: &[(String, Option<String>)]) {
        let Some(set) = self.tags.get(id) else { return };
        let mut set = set.clone();
        if tags.is_empty() {
            set.tags.clear();
        }
        for (k, v) in tags {
            match v {
                Some(v) if set.tags.get(k) != Some(v) => {}
                _ => {
                    set.tags.remove(k);
                }
            }
        }
        if set.tags.is_empty() {
            self.tags.remove(id);
        } else {
            self.tags.insert(set);
        }
    }

    /// Drops all tags of a deleted resource.
    pub fn drop_tags(&mut self, id: &str) {
        self.tags.remove(id);
    }

    /// Validates `TagSpecification.N` against the resource type a create call makes
    /// (`vpc`, `subnet`, …). Call before creating anything, then [`World::apply_tag_specs`].
    pub fn check_tag_specs(specs: &[TagSpec], allowed: &[&str]) -> ApiResult<()> {
        for s in specs {
            if !allowed.contains(&s.resource_type.as_str()) {
                return Err(ApiError::invalid_value(format!(
                    "'{}' is not a valid taggable resource type for this operation.",
                    s.resource_type
                )));
            }
            for (k, v) in &s.tags {
                validate_tag(k, v)?;
            }
        }
        Ok(())
    }

    /// Applies the tag specifications of type `resource_type` to the new resource `id`.
    pub fn apply_tag_specs(
        &mut self,
        env: &Env,
        id: &str,
        resource_type: &str,
        specs: &[TagSpec],
    ) -> ApiResult<()> {
        for s in specs.iter().filter(|s| s.resource_type == resource_type) {
            self.set_tags(&env.region, id, &s.tags)?;
        }
        Ok(())
    }

    /// CreateTags: every id must exist (`InvalidID` style errors per kind).
    pub fn create_tags(
        &mut self,
        env: &Env,
        ids: &[String],
        tags: &[(String, String)],
    ) -> ApiResult<()> {
        if ids.is_empty() {
            return Err(ApiError::missing("ResourceId"));
        }
        for id in ids {
            if !self.resource_exists(id) {
                return Err(not_found_any(id));
            }
        }
        for id in ids {
            self.set_tags(&env.region, id, tags)?;
        }
        Ok(())
    }

    /// DeleteTags.
    pub fn delete_tags(
        &mut self,
        ids: &[String],
        tags: &[(String, Option<String>)],
    ) -> ApiResult<()> {
        if ids.is_empty() {
            return Err(ApiError::missing("ResourceId"));
        }
        for id in ids {
            if !self.resource_exists(id) {
                return Err(not_found_any(id));
            }
        }
        for id in ids {
            self.remove_tags(id, tags);
        }
        Ok(())
    }
}

/// The `.NotFound` error AWS gives for a missing id of any kind, by its prefix.
pub fn not_found_any(id: &str) -> ApiError {
    let (code, what) = match resource_type_of(id) {
        "vpc" => ("InvalidVpcID.NotFound", "vpc ID"),
        "subnet" => ("InvalidSubnetID.NotFound", "subnet ID"),
        "route-table" => ("InvalidRouteTableID.NotFound", "routeTable ID"),
        "internet-gateway" => ("InvalidInternetGatewayID.NotFound", "internetGateway ID"),
        "elastic-ip" => ("InvalidAllocationID.NotFound", "allocation ID"),
        "natgateway" => ("NatGatewayNotFound", "nat gateway ID"),
        "network-acl" => ("InvalidNetworkAclID.NotFound", "networkAcl ID"),
        "security-group" => ("InvalidGroup.NotFound", "security group"),
        "network-interface" => ("InvalidNetworkInterfaceID.NotFound", "networkInterface ID"),
        "instance" => ("InvalidInstanceID.NotFound", "instance ID"),
        "key-pair" => ("InvalidKeyPair.NotFound", "key pair"),
        "network-insights-path" => (
            "InvalidNetworkInsightsPathId.NotFound",
            "network insights path",
        ),
        "network-insights-analysis" => (
            "InvalidNetworkInsightsAnalysisId.NotFound",
            "network insights analysis",
        ),
        _ => ("InvalidID", "ID"),
    };
    if code == "InvalidID" {
        return ApiError::new("InvalidID", format!("The ID '{id}' is not valid"));
    }
    ApiError::not_found(code, what, id)
}
