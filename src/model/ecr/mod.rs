//! Amazon ECR in the model: repositories (settings, lifecycle policy, tags) and the
//! images pushed to them (manifest digest, tags, manifest bytes, size), per account and
//! region, durable in the store. Layer and config blobs are content-addressed files the
//! registry endpoint (`api::ecr::registry`) keeps beside the state; rows name them by
//! digest. Rules and messages follow the Amazon ECR API reference and the OCI
//! distribution specification.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Env, Resource, Timestamp, World};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EcrImage {
    /// `sha256:…` of the manifest bytes.
    pub digest: String,
    pub tags: Vec<String>,
    pub media_type: String,
    pub manifest: String,
    /// The sum of the layer and config sizes the manifest lists.
    pub size: u64,
    /// Digests of the blobs the manifest references.
    pub blobs: Vec<String>,
    pub pushed: Timestamp,
    /// The image config's labels (`config.Labels`), read at push time.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Repository {
    /// `REGION|NAME`.
    pub id: String,
    pub region: String,
    pub name: String,
    pub created: Timestamp,
    /// `MUTABLE` or `IMMUTABLE`.
    pub tag_mutability: String,
    pub scan_on_push: bool,
    pub lifecycle_policy: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub images: Vec<EcrImage>,
}

impl Resource for Repository {
    const KIND: &'static str = "ecr_repository";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Repository {
    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:aws:ecr:{}:{account}:repository/{}",
            self.region, self.name
        )
    }

    /// The image a reference (tag or `sha256:` digest) names.
    pub fn image(&self, reference: &str) -> Option<&EcrImage> {
        if reference.starts_with("sha256:") {
            self.images.iter().find(|i| i.digest == reference)
        } else {
            self.images
                .iter()
                .find(|i| i.tags.iter().any(|t| t == reference))
        }
    }
}

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidParameterException", message)
}

pub fn repo_not_found(name: &str, account: &str) -> ApiError {
    ApiError::new(
        "RepositoryNotFoundException",
        format!(
            "The repository with name '{name}' does not exist in the registry with id '{account}'"
        ),
    )
}

/// Repository names: 2–256 characters, lower-case letters, digits and `._-/`
/// separators, starting with a letter or digit (CreateRepository's pattern).
pub fn check_name(name: &str) -> ApiResult<()> {
    let ok = (2..=256).contains(&name.len())
        && name.split('/').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''",
        ))
    }
}

/// What PutImage (the registry's manifest PUT) stores.
#[derive(Clone, Debug)]
pub struct PutImage {
    pub digest: String,
    pub tag: Option<String>,
    pub media_type: String,
    pub manifest: String,
    pub size: u64,
    pub blobs: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

impl World {
    pub fn ecr_repository(&self, env: &Env, name: &str) -> ApiResult<&Repository> {
        self.ecr_repositories
            .get(&format!("{}|{name}", env.region))
            .ok_or_else(|| repo_not_found(name, &self.account))
    }

    pub fn create_ecr_repository(
        &mut self,
        env: &Env,
        name: &str,
        tag_mutability: Option<&str>,
        scan_on_push: bool,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<String> {
        check_name(name)?;
        let id = format!("{}|{name}", env.region);
        if self.ecr_repositories.contains(&id) {
            return Err(ApiError::new(
                "RepositoryAlreadyExistsException",
                format!(
                    "The repository with name '{name}' already exists in the registry with id '{}'",
                    self.account
                ),
            ));
        }
        let mutability = tag_mutability.unwrap_or("MUTABLE");
        if !matches!(mutability, "MUTABLE" | "IMMUTABLE") {
            return Err(invalid(format!(
                "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE]' (got {mutability})"
            )));
        }
        self.ecr_repositories.insert(Repository {
            id: id.clone(),
            region: env.region.clone(),
            name: name.to_string(),
            created: env.now,
            tag_mutability: mutability.to_string(),
            scan_on_push,
            lifecycle_policy: None,
            tags,
            images: Vec::new(),
        });
        Ok(id)
    }

    /// DeleteRepository: refused while it holds images unless `force`. Returns the
    /// deleted row.
    pub fn delete_ecr_repository(
        &mut self,
        env: &Env,
        name: &str,
        force: bool,
    ) -> ApiResult<Repository> {
        let r = self.ecr_repository(env, name)?.clone();
        if !r.images.is_empty() && !force {
            return Err(ApiError::new(
                "RepositoryNotEmptyException",
                format!(
                    "The repository with name '{name}' in registry with id '{}' cannot be deleted because it still contains images",
                    self.account
                ),
            ));
        }
        self.ecr_repositories.remove(&r.id);
        Ok(r)
    }

    pub fn ecr_repository_mut(&mut self, env: &Env, name: &str) -> ApiResult<&mut Repository> {
        let account = self.account.clone();
        self.ecr_repositories
            .get_mut(&format!("{}|{name}", env.region))
            .ok_or_else(|| repo_not_found(name, &account))
    }

    /// A pushed manifest: a new image, or a new tag on an existing digest (the tag moves
    /// from any other image, unless the repository's tags are immutable).
    pub fn put_ecr_image(&mut self, env: &Env, repo: &str, p: PutImage) -> ApiResult<()> {
        let r = self.ecr_repository_mut(env, repo)?;
        if let Some(tag) = &p.tag
            && r.tag_mutability == "IMMUTABLE"
            && r.images
                .iter()
                .any(|i| i.digest != p.digest && i.tags.contains(tag))
        {
            return Err(ApiError::new(
                "ImageTagAlreadyExistsException",
                format!(
                    "The image tag '{tag}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable."
                ),
            ));
        }
        if let Some(tag) = &p.tag {
            for i in &mut r.images {
                i.tags.retain(|t| t != tag);
            }
        }
        match r.images.iter_mut().find(|i| i.digest == p.digest) {
            Some(i) => {
                if let Some(tag) = p.tag {
                    i.tags.push(tag);
                }
            }
            None => r.images.push(EcrImage {
                digest: p.digest,
                tags: p.tag.into_iter().collect(),
                media_type: p.media_type,
                manifest: p.manifest,
                size: p.size,
                blobs: p.blobs,
                pushed: env.now,
                labels: p.labels,
            }),
        }
        Ok(())
    }

    /// BatchDeleteImage's one id: by digest (the image and all its tags) or by tag (the
    /// tag; the image goes with its last tag). Returns the (digest, tag) removed.
    pub fn delete_ecr_image(
        &mut self,
        env: &Env,
        repo: &str,
        digest: Option<&str>,
        tag: Option<&str>,
    ) -> ApiResult<(String, Option<String>)> {
        let r = self.ecr_repository_mut(env, repo)?;
        let pos = r.images.iter().position(|i| {
            digest.is_none_or(|d| i.digest == d)
                && tag.is_none_or(|t| i.tags.iter().any(|x| x == t))
        });
        let Some(pos) = pos else {
            return Err(ApiError::new("ImageNotFound", "Requested image not found"));
        };
        let d = r.images[pos].digest.clone();
        match (digest, tag) {
            (None, Some(t)) => {
                r.images[pos].tags.retain(|x| x != t);
                if r.images[pos].tags.is_empty() {
                    r.images.remove(pos);
                }
                Ok((d, Some(t.to_string())))
            }
            _ => {
                r.images.remove(pos);
                Ok((d, tag.map(str::to_string)))
            }
        }
    }

    /// Every blob digest any image of the account references (what the registry keeps).
    pub fn ecr_live_blobs(&self) -> std::collections::HashSet<String> {
        self.ecr_repositories
            .iter()
            .flat_map(|r| r.images.iter())
            .flat_map(|i| i.blobs.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_ecr_pattern() {
        assert!(check_name("myimage").is_ok());
        assert!(check_name("team/web-app_1.0").is_ok());
        assert!(check_name("MyImage").is_err());
        assert!(check_name("a").is_err());
        assert!(check_name("team//x").is_err());
        assert!(check_name("-x").is_err());
    }

    #[test]
    fn a_tag_moves_to_the_newest_push_unless_immutable() {
        let mut w = World::new("000000000000");
        let env = Env::new("us-east-1", Timestamp(1));
        w.create_ecr_repository(&env, "app", None, false, BTreeMap::new())
            .unwrap();
        let put = |d: &str| PutImage {
            digest: d.into(),
            tag: Some("latest".into()),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            manifest: "{}".into(),
            size: 1,
            blobs: vec![],
            labels: BTreeMap::new(),
        };
        w.put_ecr_image(&env, "app", put("sha256:a")).unwrap();
        w.put_ecr_image(&env, "app", put("sha256:b")).unwrap();
        let r = w.ecr_repository(&env, "app").unwrap();
        assert_eq!(r.image("latest").unwrap().digest, "sha256:b");
        assert!(r.image("sha256:a").unwrap().tags.is_empty());
        w.create_ecr_repository(&env, "fixed", Some("IMMUTABLE"), false, BTreeMap::new())
            .unwrap();
        w.put_ecr_image(&env, "fixed", put("sha256:a")).unwrap();
        let e = w.put_ecr_image(&env, "fixed", put("sha256:b")).unwrap_err();
        assert_eq!(e.code, "ImageTagAlreadyExistsException");
    }
}
