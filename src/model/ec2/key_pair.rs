//! Key pairs: CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair.
//!
//! AWS keeps only the public half of a key pair: the private key of a created pair is
//! returned once, in the CreateKeyPair response, and never stored. So a [`KeyPair`] row
//! holds the OpenSSH public key line, the type and AWS's fingerprint (which differs for
//! created and imported RSA keys, see [`crate::keys`]). Names are unique per region
//! (`InvalidKeyPair.Duplicate`); instances copy the public key at launch, so deleting a
//! key pair does not lock anyone out of a running instance (as on AWS).
//!
//! Key material is made outside the model (the API layer calls [`crate::keys`] with real
//! randomness before it enters [`super::Control::mutate`]): the model stays deterministic
//! and a slow RSA generation never holds the control lock.

use serde::{Deserialize, Serialize};

use crate::keys::{CreatedKey, ImportedKey};
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, Timestamp, World};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyPair {
    /// `key-…`.
    pub id: String,
    pub region: String,
    pub name: String,
    /// `rsa` or `ed25519`.
    pub key_type: String,
    /// AWS's `KeyFingerprint`.
    pub fingerprint: String,
    /// The OpenSSH public key line (`ssh-ed25519 AAAA…`), without a comment.
    pub public_key: String,
    /// For an imported key, the comment of the imported line (`user@laptop`).
    #[serde(default)]
    pub comment: String,
    pub create_time: Timestamp,
    /// Whether the pair came from ImportKeyPair.
    pub imported: bool,
}

impl Resource for KeyPair {
    const KIND: &'static str = "key_pair";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl KeyPair {
    /// `PublicKey` as DescribeKeyPairs `--include-public-key` shows it: the key line with
    /// the key name as comment for a created key, the imported comment for an imported one.
    pub fn public_key_with_comment(&self) -> String {
        let comment = if self.imported {
            self.comment.as_str()
        } else {
            self.name.as_str()
        };
        if comment.is_empty() {
            self.public_key.clone()
        } else {
            format!("{} {comment}", self.public_key)
        }
    }
}

impl Filterable for KeyPair {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "key-pair-id" => vec![self.id.clone()],
            "key-name" => vec![self.name.clone()],
            "fingerprint" => vec![self.fingerprint.clone()],
            "key-type" => vec![self.key_type.clone()],
            _ => return None,
        })
    }
}

/// `InvalidKeyPair.NotFound` for a name, as AWS words it.
pub fn key_pair_not_found(name: &str) -> ApiError {
    ApiError::new(
        "InvalidKeyPair.NotFound",
        format!("The key pair '{name}' does not exist"),
    )
}

/// `InvalidKeyPair.NotFound` for a key pair id.
pub fn key_pair_id_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidKeyPair.NotFound",
        format!("The key pair ID '{id}' does not exist"),
    )
}

/// AWS's rule for key names: 1–255 ASCII characters.
fn check_key_name(name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::missing("KeyName"));
    }
    if name.len() > 255 || !name.is_ascii() || name.chars().any(|c| c.is_ascii_control()) {
        return Err(ApiError::invalid_value(format!(
            "Value ({name}) for parameter KeyName is invalid. Key names may contain up to 255 ASCII characters and no control characters."
        )));
    }
    Ok(())
}

impl World {
    /// The key pair named `name` in `region`.
    pub fn key_pair_by_name(&self, region: &str, name: &str) -> Option<&KeyPair> {
        self.key_pairs.in_region(region).find(|k| k.name == name)
    }

    fn check_new_key_pair(&self, region: &str, name: &str, specs: &[TagSpec]) -> ApiResult<()> {
        check_key_name(name)?;
        World::check_tag_specs(specs, &["key-pair"])?;
        if self.key_pair_by_name(region, name).is_some() {
            return Err(ApiError::new(
                "InvalidKeyPair.Duplicate",
                format!("The keypair '{name}' already exists."),
            ));
        }
        Ok(())
    }

    /// Checks a CreateKeyPair request before key material is generated (so a duplicate
    /// name costs no RSA generation). [`World::create_key_pair`] checks again.
    pub fn precheck_create_key_pair(
        &self,
        region: &str,
        name: &str,
        specs: &[TagSpec],
    ) -> ApiResult<()> {
        self.check_new_key_pair(region, name, specs)
    }

    /// CreateKeyPair with material the caller generated. Returns the stored row.
    pub fn create_key_pair(
        &mut self,
        env: &Env,
        name: &str,
        key: &CreatedKey,
        specs: &[TagSpec],
    ) -> ApiResult<KeyPair> {
        self.check_new_key_pair(&env.region, name, specs)?;
        let row = KeyPair {
            id: self.alloc_id("key"),
            region: env.region.clone(),
            name: name.to_string(),
            key_type: key.key_type.as_str().to_string(),
            fingerprint: key.fingerprint.clone(),
            public_key: key.public_key.clone(),
            comment: String::new(),
            create_time: env.now,
            imported: false,
        };
        self.key_pairs.insert(row.clone());
        self.apply_tag_specs(env, &row.id, "key-pair", specs)?;
        Ok(row)
    }

    /// ImportKeyPair with a public key the caller parsed ([`crate::keys::decode_public_key_material`]).
    pub fn import_key_pair(
        &mut self,
        env: &Env,
        name: &str,
        key: &ImportedKey,
        specs: &[TagSpec],
    ) -> ApiResult<KeyPair> {
        self.check_new_key_pair(&env.region, name, specs)?;
        let row = KeyPair {
            id: self.alloc_id("key"),
            region: env.region.clone(),
            name: name.to_string(),
            key_type: key.key_type.as_str().to_string(),
            fingerprint: key.fingerprint.clone(),
            public_key: key.public_key.clone(),
            comment: key.comment.clone(),
            create_time: env.now,
            imported: true,
        };
        self.key_pairs.insert(row.clone());
        self.apply_tag_specs(env, &row.id, "key-pair", specs)?;
        Ok(row)
    }

    /// DescribeKeyPairs: by names and/or ids (each must exist), then filters.
    pub fn describe_key_pairs(
        &self,
        env: &Env,
        names: &[String],
        ids: &[String],
        filters: &[crate::model::Filter],
    ) -> ApiResult<Vec<&KeyPair>> {
        for name in names {
            if self.key_pair_by_name(&env.region, name).is_none() {
                return Err(key_pair_not_found(name));
            }
        }
        let mut rows = self.select(
            &self.key_pairs,
            &env.region,
            ids,
            filters,
            key_pair_id_not_found,
        )?;
        if !names.is_empty() {
            rows.retain(|k| names.contains(&k.name));
        }
        // By name: ids are random-looking, names are what a learner scans for.
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rows)
    }

    /// DeleteKeyPair by name or id. Like AWS, deleting a key pair that does not exist
    /// succeeds; returns the id that was deleted, if any.
    pub fn delete_key_pair(
        &mut self,
        env: &Env,
        name: Option<&str>,
        id: Option<&str>,
    ) -> ApiResult<Option<String>> {
        let target = match (name, id) {
            (None, None) => return Err(ApiError::missing("KeyName")),
            (_, Some(id)) => self
                .key_pairs
                .get(id)
                .filter(|k| k.region == env.region)
                .map(|k| k.id.clone()),
            (Some(name), None) => self
                .key_pair_by_name(&env.region, name)
                .map(|k| k.id.clone()),
        };
        if let Some(id) = &target {
            self.key_pairs.remove(id);
            self.drop_tags(id);
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    fn env(region: &str) -> Env {
        Env::new(region, Timestamp(1_800_000_000_000))
    }

    fn key(seed: u64) -> CreatedKey {
        crate::keys::generate_ed25519(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
            .expect("key")
    }

    #[test]
    fn key_names_are_unique_per_region_not_per_account() {
        let mut w = World::new("000000000000");
        for r in ["us-east-1", "eu-west-1"] {
            w.ensure_region(&env(r)).expect("region");
        }
        w.create_key_pair(&env("us-east-1"), "lab", &key(1), &[])
            .expect("first");
        let dup = w
            .create_key_pair(&env("us-east-1"), "lab", &key(2), &[])
            .expect_err("dup");
        assert_eq!(dup.code, "InvalidKeyPair.Duplicate");
        w.create_key_pair(&env("eu-west-1"), "lab", &key(3), &[])
            .expect("other region");
        let listed = w
            .describe_key_pairs(&env("eu-west-1"), &[], &[], &[])
            .expect("list");
        assert_eq!(listed.len(), 1);
    }

    #[test]
    fn delete_by_id_removes_the_pair_and_its_tags() {
        let mut w = World::new("000000000000");
        w.ensure_region(&env("us-east-1")).expect("region");
        let spec = TagSpec {
            resource_type: "key-pair".into(),
            tags: vec![("Owner".into(), "me".into())],
        };
        let row = w
            .create_key_pair(
                &env("us-east-1"),
                "lab",
                &key(4),
                std::slice::from_ref(&spec),
            )
            .expect("create");
        assert!(w.tags_of(&row.id).is_some());
        let deleted = w
            .delete_key_pair(&env("us-east-1"), None, Some(&row.id))
            .expect("delete");
        assert_eq!(deleted.as_deref(), Some(row.id.as_str()));
        assert!(w.tags_of(&row.id).is_none());
        let err = w
            .describe_key_pairs(&env("us-east-1"), &["lab".into()], &[], &[])
            .expect_err("gone");
        assert_eq!(err.code, "InvalidKeyPair.NotFound");
        // A tag specification for another resource type is refused, as on AWS.
        let bad = TagSpec {
            resource_type: "instance".into(),
            tags: vec![],
        };
        let err = w
            .create_key_pair(&env("us-east-1"), "x", &key(5), &[bad])
            .expect_err("bad spec");
        assert_eq!(err.code, "InvalidParameterValue");
    }
}
