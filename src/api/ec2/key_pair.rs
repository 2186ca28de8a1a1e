//! Key-pair actions: CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair.
//!
//! Key material is made here, before the model is entered, with real randomness (RSA keys
//! come from [`crate::keys::pooled_rsa`], so a request does not wait for a generation):
//! the model only validates and stores the public half.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::keys::{self, KeyError, KeyType};
use crate::model::ec2::key_pair::KeyPair;
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateKeyPair", create_key_pair),
    ("ImportKeyPair", import_key_pair),
    ("DescribeKeyPairs", describe_key_pairs),
    ("DeleteKeyPair", delete_key_pair),
];

fn key_error(e: KeyError) -> ApiError {
    match e {
        KeyError::Internal(detail) => {
            tracing::error!(%detail, "key generation failed");
            ApiError::internal()
        }
        other => ApiError::new("InvalidKeyPair.Format", other.to_string()),
    }
}

fn create_key_pair(c: &mut Call) -> ApiResult<Xml> {
    let name = c.params.required("KeyName")?.to_string();
    let key_type = match c.params.get("KeyType") {
        None | Some("") => KeyType::Rsa,
        Some(t) => KeyType::parse(t).ok_or_else(|| {
            ApiError::invalid_value(format!(
                "Value ({t}) for parameter KeyType is invalid. Valid values are: rsa, ed25519"
            ))
        })?,
    };
    let ppk = match c.params.get("KeyFormat") {
        None | Some("") | Some("pem") => false,
        Some("ppk") => true,
        Some(f) => {
            return Err(ApiError::invalid_value(format!(
                "Value ({f}) for parameter KeyFormat is invalid. Valid values are: pem, ppk"
            )));
        }
    };
    let specs = c.params.tag_specs()?;
    // Validate before spending randomness on a key the request cannot keep.
    {
        let w = c.read()?;
        w.precheck_create_key_pair(&c.env.region, &name, &specs)?;
    }
    if c.dry_run {
        return Err(ApiError::dry_run_ok());
    }
    let created = match key_type {
        KeyType::Rsa => keys::pooled_rsa(),
        KeyType::Ed25519 => keys::generate_ed25519(&mut rand::rng()),
    }
    .map_err(key_error)?;
    // PuTTY users ask for `.ppk`; the key (and so the fingerprint) is the same.
    let material = if ppk {
        keys::to_ppk(&created, &name).map_err(key_error)?
    } else {
        created.private_key.clone()
    };
    let row = c.mutate(|w, env| w.create_key_pair(env, &name, &created, &specs))?;
    let w = c.read()?;
    let mut x = Xml::new();
    x.leaf("keyName", &row.name)
        .leaf("keyFingerprint", &row.fingerprint)
        .leaf("keyMaterial", &material)
        .leaf("keyPairId", &row.id);
    tag_set(&mut x, &w, &row.id);
    Ok(x)
}

fn import_key_pair(c: &mut Call) -> ApiResult<Xml> {
    let name = c.params.required("KeyName")?.to_string();
    let material = c.params.required("PublicKeyMaterial")?;
    let imported = keys::decode_public_key_material(material).map_err(key_error)?;
    let specs = c.params.tag_specs()?;
    let row = c.mutate(|w, env| w.import_key_pair(env, &name, &imported, &specs))?;
    let w = c.read()?;
    let mut x = Xml::new();
    x.leaf("keyFingerprint", &row.fingerprint)
        .leaf("keyName", &row.name)
        .leaf("keyPairId", &row.id);
    tag_set(&mut x, &w, &row.id);
    Ok(x)
}

fn render_key_pair(x: &mut Xml, w: &World, k: &KeyPair, include_public_key: bool) {
    x.leaf("keyPairId", &k.id).leaf("keyType", &k.key_type);
    tag_set(x, w, &k.id);
    if include_public_key {
        x.leaf("publicKey", k.public_key_with_comment());
    }
    x.leaf("createTime", k.create_time.iso())
        .leaf("keyName", &k.name)
        .leaf("keyFingerprint", &k.fingerprint);
}

fn describe_key_pairs(c: &mut Call) -> ApiResult<Xml> {
    let names = c.params.list("KeyName");
    let ids = c.params.list("KeyPairId");
    let filters = c.params.filters()?;
    let include = c.params.bool("IncludePublicKey")?.unwrap_or(false);
    let w = c.read()?;
    let rows = w.describe_key_pairs(&c.env, &names, &ids, &filters)?;
    let mut x = Xml::new();
    x.set("keySet", rows, |x, k| render_key_pair(x, &w, k, include));
    Ok(x)
}

fn delete_key_pair(c: &mut Call) -> ApiResult<Xml> {
    let name = c
        .params
        .get("KeyName")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let id = c
        .params
        .get("KeyPairId")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let deleted = c.mutate(|w, env| w.delete_key_pair(env, name.as_deref(), id.as_deref()))?;
    let mut x = Xml::new();
    x.leaf("return", tf(true));
    x.opt("keyPairId", deleted);
    Ok(x)
}
