//! AWS Systems Manager Parameter Store in the model: parameters with their version
//! history, per account and region, durable in the store; and AWS's public parameters
//! (`/aws/service/…`), which name vpclab's images (`crate::catalog`) the way tutorials
//! look AMIs up.
//!
//! A [`Parameter`] row's id is `REGION|NAME`. Rules follow the Parameter Store
//! documentation ("Requirements and constraints for parameter names", "Working with
//! parameter versions") and the API reference's errors. SecureString values are stored
//! as given (no KMS): docs/fidelity.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Env, Resource, World};

/// Standard tier: values up to 4 KB; 100 versions kept.
pub const MAX_VALUE_STANDARD: usize = 4096;
pub const MAX_VALUE_ADVANCED: usize = 8192;
pub const MAX_VERSIONS: usize = 100;
const MAX_NAME: usize = 2048;
const MAX_DEPTH: usize = 15;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ParamVersion {
    pub version: u64,
    pub value: String,
    pub kind: String,
    pub description: Option<String>,
    pub modified: i64,
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Parameter {
    pub id: String,
    pub region: String,
    pub name: String,
    pub tier: String,
    pub data_type: String,
    pub allowed_pattern: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Oldest first; the last is current.
    pub versions: Vec<ParamVersion>,
}

impl Resource for Parameter {
    const KIND: &'static str = "ssm_parameter";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Parameter {
    pub fn current(&self) -> &ParamVersion {
        self.versions
            .last()
            .expect("a parameter always has at least one version")
    }
}

pub fn param_id(region: &str, name: &str) -> String {
    format!("{region}|{name}")
}

pub fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationException", message)
}

pub fn not_found(_name: &str) -> ApiError {
    ApiError::new("ParameterNotFound", "")
}

/// Checks a parameter name (AWS "Requirements and constraints for parameter names").
pub fn check_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(validation(
            "Parameter name must be between 1 and 2048 characters.",
        ));
    }
    let bare = name.trim_start_matches('/');
    let lower = bare.to_ascii_lowercase();
    if lower.starts_with("aws") || lower.starts_with("ssm") {
        return Err(validation(
            "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
    {
        return Err(validation(
            "Parameter name: can only contain letters, numbers and the symbols .-_/",
        ));
    }
    if name.contains('/') && !name.starts_with('/') {
        return Err(validation(
            "Parameter name must be a fully qualified name (begin with /) when it contains a hierarchy.",
        ));
    }
    if name.ends_with('/') || name.contains("//") {
        return Err(validation("Parameter name is not valid."));
    }
    if name.matches('/').count() > MAX_DEPTH {
        return Err(ApiError::new(
            "HierarchyLevelLimitExceededException",
            "A hierarchy can have a maximum of 15 levels.",
        ));
    }
    Ok(())
}

/// What PutParameter was asked to do.
#[derive(Clone, Debug, Default)]
pub struct Put {
    pub name: String,
    pub value: String,
    pub kind: Option<String>,
    pub description: Option<String>,
    pub overwrite: bool,
    pub allowed_pattern: Option<String>,
    pub tier: Option<String>,
    pub data_type: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl World {
    /// PutParameter. Returns (version, tier).
    pub fn put_parameter(&mut self, env: &Env, p: Put) -> ApiResult<(u64, String)> {
        check_name(&p.name)?;
        if let Some(k) = &p.kind
            && !matches!(k.as_str(), "String" | "StringList" | "SecureString")
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{k}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]"
            )));
        }
        let tier = p.tier.clone().unwrap_or_else(|| "Standard".into());
        let max = match tier.as_str() {
            "Standard" => MAX_VALUE_STANDARD,
            "Advanced" | "Intelligent-Tiering" => MAX_VALUE_ADVANCED,
            other => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{other}' at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Standard, Advanced, Intelligent-Tiering]"
                )));
            }
        };
        if p.value.is_empty() {
            return Err(validation(
                "1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if p.value.len() > max {
            return Err(validation(format!(
                "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length less than or equal to {max}"
            )));
        }
        let data_type = p.data_type.clone().unwrap_or_else(|| "text".into());
        if !matches!(
            data_type.as_str(),
            "text" | "aws:ec2:image" | "aws:ssm:integration"
        ) {
            return Err(validation(format!(
                "The following data type is not supported: {data_type} (Data type names are all lowercase.)"
            )));
        }
        if data_type == "aws:ec2:image" && crate::catalog::image(&p.value).is_none() {
            return Err(validation(format!(
                "Parameter value, {}, is not a valid image id.",
                p.value
            )));
        }
        let id = param_id(&env.region, &p.name);
        let existing = self.ssm_parameters.get(&id).cloned();
        let pattern = p
            .allowed_pattern
            .clone()
            .or_else(|| existing.as_ref().and_then(|e| e.allowed_pattern.clone()));
        if let Some(pat) = &pattern {
            let re = regex::Regex::new(&format!("^(?:{pat})$"))
                .map_err(|_| validation(format!("The AllowedPattern {pat} is not valid.")))?;
            if !re.is_match(&p.value) {
                return Err(ApiError::new(
                    "ParameterPatternMismatchException",
                    format!("Parameter value, cannot be validated against allowedPattern: {pat}"),
                ));
            }
        }
        match existing {
            Some(_) if !p.overwrite => Err(ApiError::new(
                "ParameterAlreadyExists",
                "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
            )),
            Some(_) if !p.tags.is_empty() => Err(validation(
                "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.",
            )),
            Some(mut e) => {
                let cur = e.current().clone();
                if e.versions.len() >= MAX_VERSIONS {
                    // The oldest version goes (AWS refuses only when it has a label).
                    e.versions.remove(0);
                }
                let version = cur.version + 1;
                e.versions.push(ParamVersion {
                    version,
                    value: p.value,
                    kind: p.kind.unwrap_or(cur.kind),
                    description: p.description.or(cur.description),
                    modified: env.now.0,
                    labels: Vec::new(),
                });
                e.allowed_pattern = pattern;
                e.data_type = data_type;
                if p.tier.is_some() {
                    e.tier = tier.clone();
                }
                let tier = e.tier.clone();
                self.ssm_parameters.insert(e);
                Ok((version, tier))
            }
            None => {
                let kind = p.kind.ok_or_else(|| {
                    validation("A parameter type is required when you create a parameter.")
                })?;
                self.ssm_parameters.insert(Parameter {
                    id,
                    region: env.region.clone(),
                    name: p.name,
                    tier: tier.clone(),
                    data_type,
                    allowed_pattern: pattern,
                    tags: p.tags,
                    versions: vec![ParamVersion {
                        version: 1,
                        value: p.value,
                        kind,
                        description: p.description,
                        modified: env.now.0,
                        labels: Vec::new(),
                    }],
                });
                Ok((1, tier))
            }
        }
    }

    /// DeleteParameter.
    pub fn delete_parameter(&mut self, env: &Env, name: &str) -> ApiResult<()> {
        self.ssm_parameters
            .remove(&param_id(&env.region, name))
            .map(|_| ())
            .ok_or_else(|| not_found(name))
    }

    /// The parameters of a region, in name order.
    pub fn parameters_in<'a>(
        &'a self,
        region: &str,
    ) -> impl Iterator<Item = &'a Parameter> + use<'a> {
        let start = format!("{region}|");
        self.ssm_parameters
            .range_from(&start)
            .take_while(move |p| p.id.starts_with(&start))
    }
}

/// AWS's public parameters that vpclab answers: name → image id of the catalog.
/// Amazon Linux 2023 (x86_64) and Ubuntu 24.04 (amd64) only: the catalog has no
/// Amazon Linux 2 or arm64 image (docs/fidelity.md).
pub fn public_parameters() -> Vec<(String, &'static str)> {
    let newest = |prefix: &str| {
        crate::catalog::IMAGES
            .iter()
            .filter(|i| i.name.starts_with(prefix))
            .max_by_key(|i| i.creation_date)
            .map(|i| i.image_id)
    };
    let mut out = Vec::new();
    if let Some(al2023) = newest("al2023-ami-") {
        for n in [
            "al2023-ami-kernel-default-x86_64",
            "al2023-ami-kernel-6.1-x86_64",
            "al2023-ami-minimal-kernel-default-x86_64",
            "al2023-ami-minimal-kernel-6.1-x86_64",
        ] {
            out.push((format!("/aws/service/ami-amazon-linux-latest/{n}"), al2023));
        }
    }
    if let Some(noble) = newest("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64") {
        for release in ["24.04", "noble"] {
            for channel in ["stable/current", "stable/20241206"] {
                out.push((
                    format!(
                        "/aws/service/canonical/ubuntu/server/{release}/{channel}/amd64/hvm/ebs-gp3/ami-id"
                    ),
                    noble,
                ));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_parameter_store_rules() {
        for ok in ["db-password", "/prod/db/password", "a.b_c-d"] {
            check_name(ok).unwrap();
        }
        for bad in [
            "aws-thing",
            "/ssm/x",
            "with space",
            "no/leading",
            "/trailing/",
            "/a//b",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let deep = "/a".repeat(16);
        assert_eq!(
            check_name(&deep).unwrap_err().code,
            "HierarchyLevelLimitExceededException"
        );
    }

    #[test]
    fn the_public_al2023_parameter_names_a_catalog_image() {
        let params = public_parameters();
        let (_, id) = params
            .iter()
            .find(|(n, _)| {
                n == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
            })
            .expect("listed");
        assert!(crate::catalog::image(id).is_some());
    }
}
