//! Amazon ECR (AWS JSON 1.1, `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>`):
//! repositories, their settings and lifecycle policies, the images pushed to them, and
//! GetAuthorizationToken, whose password the registry endpoint (`registry.rs`, the OCI
//! distribution API) accepts with the user name `AWS`.

pub mod registry;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::json::{Body, JsonCall, JsonService, any_resource, unknown_operation};
use crate::model::ecr::{EcrImage, Repository, invalid};
use crate::model::{ApiError, ApiResult, Timestamp, World};

pub static SERVICE: JsonService = JsonService {
    content_type: "application/x-amz-json-1.1",
    validation_code: "InvalidParameterException",
    timestamps: &[],
    query_compatible: false,
    handler: dispatch,
    iam_prefix: "ecr",
    resource: any_resource,
    passed_roles: super::json::no_roles,
};

pub const OPERATIONS: &[&str] = &[
    "CreateRepository",
    "DescribeRepositories",
    "DeleteRepository",
    "ListImages",
    "DescribeImages",
    "BatchGetImage",
    "BatchDeleteImage",
    "GetAuthorizationToken",
    "PutLifecyclePolicy",
    "GetLifecyclePolicy",
    "DeleteLifecyclePolicy",
    "PutImageScanningConfiguration",
    "PutImageTagMutability",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// Authorization tokens are valid for 12 hours (GetAuthorizationToken).
pub const TOKEN_MS: i64 = 12 * 3600 * 1000;

/// The key registry passwords are signed with: random per daemon process, so a
/// password from before a restart must be fetched again (docs/fidelity.md).
fn token_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

fn sign(payload: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token_key()).expect("HMAC takes a key of any length");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The registry password for `account` in `region`, valid until `expires` (ms).
pub fn password(account: &str, region: &str, expires: i64) -> String {
    let payload = format!("{account}:{region}:{expires}");
    let token = format!("{payload}:{}", sign(&payload));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

/// The (account, region) a registry password was issued for, if it is genuine and
/// unexpired at `now`.
pub fn check_password(password: &str, now: i64) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(password.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (payload, sig) = text.rsplit_once(':')?;
    if sign(payload) != sig {
        return None;
    }
    let mut parts = payload.split(':');
    let (account, region, expires) = (parts.next()?, parts.next()?, parts.next()?);
    let expires: i64 = expires.parse().ok()?;
    (now < expires).then(|| (account.to_string(), region.to_string()))
}

fn secs(t: Timestamp) -> f64 {
    t.0 as f64 / 1000.0
}

fn render_repo(w: &World, r: &Repository) -> Value {
    json!({
        "repositoryArn": r.arn(&w.account),
        "registryId": w.account,
        "repositoryName": r.name,
        "repositoryUri": format!("{}.dkr.ecr.{}.amazonaws.com/{}", w.account, r.region, r.name),
        "createdAt": secs(r.created),
        "imageTagMutability": r.tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": r.scan_on_push},
        "encryptionConfiguration": {"encryptionType": "AES256"},
    })
}

fn image_id(i: &EcrImage, tag: Option<&str>) -> Value {
    let mut v = json!({ "imageDigest": i.digest });
    if let Some(t) = tag {
        v["imageTag"] = json!(t);
    }
    v
}

fn tags_of(body: &Body) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in body.list("tags")? {
        let k = t.get("Key").and_then(Value::as_str).unwrap_or("");
        let v = t.get("Value").and_then(Value::as_str).unwrap_or("");
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The `imageIds` of BatchGetImage/BatchDeleteImage/DescribeImages.
fn image_ids(body: &Body) -> ApiResult<Vec<(Option<String>, Option<String>)>> {
    body.list("imageIds")?
        .iter()
        .map(|v| {
            let d = v.get("imageDigest").and_then(Value::as_str).map(str::to_string);
            let t = v.get("imageTag").and_then(Value::as_str).map(str::to_string);
            if d.is_none() && t.is_none() {
                return Err(invalid(
                    "Invalid parameter at 'imageIds' failed to satisfy constraint: 'imageId must have either imageDigest or imageTag'",
                ));
            }
            Ok((d, t))
        })
        .collect()
}

fn failure(d: &Option<String>, t: &Option<String>, code: &str, reason: &str) -> Value {
    let mut id = json!({});
    if let Some(d) = d {
        id["imageDigest"] = json!(d);
    }
    if let Some(t) = t {
        id["imageTag"] = json!(t);
    }
    json!({"imageId": id, "failureCode": code, "failureReason": reason})
}

fn find<'r>(r: &'r Repository, d: &Option<String>, t: &Option<String>) -> Option<&'r EcrImage> {
    r.images.iter().find(|i| {
        d.as_ref().is_none_or(|d| i.digest == *d)
            && t.as_ref().is_none_or(|t| i.tags.iter().any(|x| x == t))
    })
}

fn repo_from_arn(arn: &str) -> ApiResult<String> {
    arn.split_once(":repository/")
        .map(|(_, n)| n.to_string())
        .ok_or_else(|| invalid(format!("Invalid parameter at 'resourceArn': {arn}")))
}

fn dispatch(c: &mut JsonCall, op: &str) -> ApiResult<Value> {
    match op {
        "CreateRepository" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let mutability = c.body.str("imageTagMutability")?.map(str::to_string);
            let scan = c
                .body
                .get("imageScanningConfiguration")
                .and_then(|v| v.get("scanOnPush"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let tags = tags_of(&c.body)?;
            let id = c.mutate(|w, env| {
                w.create_ecr_repository(env, &name, mutability.as_deref(), scan, tags)
            })?;
            let w = c.read()?;
            let r = w
                .ecr_repositories
                .get(&id)
                .ok_or_else(|| crate::model::ecr::repo_not_found(&name, &w.account))?;
            Ok(json!({ "repository": render_repo(&w, r) }))
        }
        "DescribeRepositories" => {
            let names = c.body.str_list("repositoryNames")?;
            let w = c.read()?;
            let repos: Vec<Value> = if names.is_empty() {
                w.ecr_repositories
                    .in_region(&c.env.region)
                    .map(|r| render_repo(&w, r))
                    .collect()
            } else {
                let mut out = Vec::new();
                for n in &names {
                    out.push(render_repo(&w, w.ecr_repository(&c.env, n)?));
                }
                out
            };
            Ok(json!({ "repositories": repos }))
        }
        "DeleteRepository" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let force = c.body.bool("force")?.unwrap_or(false);
            let r = c.mutate(|w, env| w.delete_ecr_repository(env, &name, force))?;
            let w = c.read()?;
            Ok(json!({ "repository": render_repo(&w, &r) }))
        }
        "ListImages" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let status = c
                .body
                .get("filter")
                .and_then(|f| f.get("tagStatus"))
                .and_then(Value::as_str)
                .unwrap_or("ANY")
                .to_string();
            let w = c.read()?;
            let r = w.ecr_repository(&c.env, &name)?;
            let mut ids = Vec::new();
            for i in &r.images {
                if i.tags.is_empty() {
                    if status != "TAGGED" {
                        ids.push(image_id(i, None));
                    }
                } else if status != "UNTAGGED" {
                    for t in &i.tags {
                        ids.push(image_id(i, Some(t)));
                    }
                }
            }
            Ok(json!({ "imageIds": ids }))
        }
        "DescribeImages" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let ids = image_ids(&c.body)?;
            let w = c.read()?;
            let r = w.ecr_repository(&c.env, &name)?;
            let mut chosen: Vec<&EcrImage> = Vec::new();
            if ids.is_empty() {
                chosen.extend(r.images.iter());
            } else {
                for (d, t) in &ids {
                    match find(r, d, t) {
                        Some(i) => chosen.push(i),
                        None => {
                            return Err(ApiError::new(
                                "ImageNotFoundException",
                                format!(
                                    "The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{name}' in the registry with id '{}'",
                                    d.as_deref().unwrap_or("null"),
                                    t.as_deref().unwrap_or("null"),
                                    w.account
                                ),
                            ));
                        }
                    }
                }
            }
            let details: Vec<Value> = chosen
                .iter()
                .map(|i| {
                    let mut v = json!({
                        "registryId": w.account,
                        "repositoryName": r.name,
                        "imageDigest": i.digest,
                        "imageSizeInBytes": i.size,
                        "imagePushedAt": secs(i.pushed),
                        "imageManifestMediaType": i.media_type,
                    });
                    if !i.tags.is_empty() {
                        v["imageTags"] = json!(i.tags);
                    }
                    if r.scan_on_push {
                        v["imageScanStatus"] = json!({"status": "COMPLETE", "description": "vpclab does not scan images: no findings."});
                    }
                    v
                })
                .collect();
            Ok(json!({ "imageDetails": details }))
        }
        "BatchGetImage" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let ids = image_ids(&c.body)?;
            let w = c.read()?;
            let r = w.ecr_repository(&c.env, &name)?;
            let mut images = Vec::new();
            let mut failures = Vec::new();
            for (d, t) in &ids {
                match find(r, d, t) {
                    Some(i) => images.push(json!({
                        "registryId": w.account,
                        "repositoryName": r.name,
                        "imageId": image_id(i, t.as_deref()),
                        "imageManifest": i.manifest,
                        "imageManifestMediaType": i.media_type,
                    })),
                    None => {
                        failures.push(failure(d, t, "ImageNotFound", "Requested image not found"))
                    }
                }
            }
            Ok(json!({ "images": images, "failures": failures }))
        }
        "BatchDeleteImage" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let ids = image_ids(&c.body)?;
            let (deleted, failures) = c.mutate(|w, env| {
                w.ecr_repository(env, &name)?;
                let (mut ok, mut bad) = (Vec::new(), Vec::new());
                for (d, t) in &ids {
                    match w.delete_ecr_image(env, &name, d.as_deref(), t.as_deref()) {
                        Ok((digest, tag)) => {
                            let mut v = json!({ "imageDigest": digest });
                            if let Some(t) = tag {
                                v["imageTag"] = json!(t);
                            }
                            ok.push(v);
                        }
                        Err(_) => {
                            bad.push(failure(d, t, "ImageNotFound", "Requested image not found"))
                        }
                    }
                }
                Ok((ok, bad))
            })?;
            Ok(json!({ "imageIds": deleted, "failures": failures }))
        }
        "GetAuthorizationToken" => {
            let expires = c.env.now.0 + TOKEN_MS;
            let pw = password(&c.account, &c.env.region, expires);
            let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{pw}"));
            Ok(json!({ "authorizationData": [{
                "authorizationToken": token,
                "expiresAt": expires as f64 / 1000.0,
                "proxyEndpoint": format!("https://{}.dkr.ecr.{}.amazonaws.com", c.account, c.env.region),
            }]}))
        }
        "PutLifecyclePolicy" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let text = c.body.required_str("lifecyclePolicyText")?.to_string();
            let doc: Value = serde_json::from_str(&text).map_err(|_| {
                ApiError::new(
                    "InvalidParameterException",
                    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: could not parse the policy as JSON'",
                )
            })?;
            if !doc.get("rules").is_some_and(Value::is_array) {
                return Err(invalid(
                    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: object has missing required properties ([\"rules\"])'",
                ));
            }
            c.mutate(|w, env| {
                w.ecr_repository_mut(env, &name)?.lifecycle_policy = Some(text.clone());
                Ok(())
            })?;
            Ok(
                json!({"registryId": c.account, "repositoryName": name, "lifecyclePolicyText": text}),
            )
        }
        "GetLifecyclePolicy" | "DeleteLifecyclePolicy" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let delete = op == "DeleteLifecyclePolicy";
            let (text, at) = c.mutate(|w, env| {
                let account = w.account.clone();
                let r = w.ecr_repository_mut(env, &name)?;
                let text = r.lifecycle_policy.clone().ok_or_else(|| {
                    ApiError::new(
                        "LifecyclePolicyNotFoundException",
                        format!("Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{account}'"),
                    )
                })?;
                if delete {
                    r.lifecycle_policy = None;
                }
                Ok((text, env.now))
            })?;
            Ok(json!({
                "registryId": c.account,
                "repositoryName": name,
                "lifecyclePolicyText": text,
                "lastEvaluatedAt": secs(at),
            }))
        }
        "PutImageScanningConfiguration" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let scan = c
                .body
                .get("imageScanningConfiguration")
                .and_then(|v| v.get("scanOnPush"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            c.mutate(|w, env| {
                w.ecr_repository_mut(env, &name)?.scan_on_push = scan;
                Ok(())
            })?;
            Ok(
                json!({"registryId": c.account, "repositoryName": name, "imageScanningConfiguration": {"scanOnPush": scan}}),
            )
        }
        "PutImageTagMutability" => {
            let name = c.body.required_str("repositoryName")?.to_string();
            let m = c.body.required_str("imageTagMutability")?.to_string();
            if !matches!(m.as_str(), "MUTABLE" | "IMMUTABLE") {
                return Err(invalid(
                    "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE]'",
                ));
            }
            c.mutate(|w, env| {
                w.ecr_repository_mut(env, &name)?.tag_mutability = m.clone();
                Ok(())
            })?;
            Ok(json!({"registryId": c.account, "repositoryName": name, "imageTagMutability": m}))
        }
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            let name = repo_from_arn(c.body.required_str("resourceArn")?)?;
            let add = tags_of(&c.body)?;
            let remove = c.body.str_list("tagKeys")?;
            let op = op.to_string();
            let tags = c.mutate(|w, env| {
                let r = w.ecr_repository_mut(env, &name)?;
                match op.as_str() {
                    "TagResource" => r.tags.extend(add),
                    "UntagResource" => r.tags.retain(|k, _| !remove.contains(k)),
                    _ => {}
                }
                Ok(r.tags.clone())
            })?;
            if op == "ListTagsForResource" {
                let list: Vec<Value> = tags
                    .iter()
                    .map(|(k, v)| json!({"Key": k, "Value": v}))
                    .collect();
                return Ok(json!({ "tags": list }));
            }
            Ok(json!({}))
        }
        _ => Err(unknown_operation(op)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_passwords_are_signed_and_expire() {
        let pw = password("123456789012", "eu-west-1", 1_000);
        assert_eq!(
            check_password(&pw, 999),
            Some(("123456789012".into(), "eu-west-1".into()))
        );
        assert_eq!(check_password(&pw, 1_000), None);
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode("123456789012:eu-west-1:99999999999999:00");
        assert_eq!(check_password(&forged, 0), None);
    }
}
