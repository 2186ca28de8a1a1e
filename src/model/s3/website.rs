//! Static website hosting: the configuration PutBucketWebsite stores, and what the
//! website endpoint answers for a path (sans I/O: the API layer reads the blob).
//!
//! Rules (Amazon S3 User Guide, "Hosting a static website using Amazon S3"):
//! - A request for the root or for a path ending in `/` gets the index document under
//!   that prefix; a path without the slash whose `PATH/INDEX` exists is redirected (302)
//!   to `PATH/`.
//! - Anonymous readers only: an object the bucket policy does not make public is 403.
//! - On 403/404 the error document is served (with the original status) when set and
//!   readable; otherwise an HTML error page naming the code.
//! - Routing rules are tried in order: a rule matches on a key prefix and/or the HTTP
//!   error the request would return; its redirect replaces the prefix or the whole key,
//!   and may name a host, protocol and status (301 by default).
//! - `RedirectAllRequestsTo` sends every request to another host (301).

use serde::{Deserialize, Serialize};

use super::{S3Object, Version, World, object_id};
use crate::model::{ApiError, ApiResult};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Redirect {
    pub host_name: Option<String>,
    pub protocol: Option<String>,
    pub http_redirect_code: Option<String>,
    pub replace_key_prefix_with: Option<String>,
    pub replace_key_with: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoutingRule {
    pub key_prefix_equals: Option<String>,
    pub http_error_code_returned_equals: Option<String>,
    pub redirect: Redirect,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebsiteConfig {
    pub index_suffix: Option<String>,
    pub error_key: Option<String>,
    /// `(host, protocol)` of RedirectAllRequestsTo.
    pub redirect_all: Option<(String, Option<String>)>,
    pub rules: Vec<RoutingRule>,
}

fn invalid(message: &str) -> ApiError {
    ApiError::new("InvalidArgument", message)
}

impl WebsiteConfig {
    /// PutBucketWebsite's checks.
    pub fn validate(&self) -> ApiResult<()> {
        if self.redirect_all.is_some() {
            if self.index_suffix.is_some() || self.error_key.is_some() || !self.rules.is_empty() {
                return Err(invalid(
                    "RedirectAllRequestsTo cannot be provided in conjunction with other Routing/Redirect configurations.",
                ));
            }
            return Ok(());
        }
        match self.index_suffix.as_deref() {
            None => {
                return Err(invalid(
                    "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty",
                ));
            }
            Some(s) if s.is_empty() || s.contains('/') => {
                return Err(invalid("The IndexDocument Suffix is not well formed"));
            }
            Some(_) => {}
        }
        for r in &self.rules {
            if let Some(p) = &r.redirect.protocol
                && p != "http"
                && p != "https"
            {
                return Err(invalid("Invalid protocol, protocol can be http or https."));
            }
            if r.redirect.replace_key_prefix_with.is_some() && r.redirect.replace_key_with.is_some()
            {
                return Err(invalid(
                    "You can only define ReplaceKeyPrefix or ReplaceKey but not both.",
                ));
            }
            if let Some(code) = &r.redirect.http_redirect_code
                && !matches!(code.as_str(), "301" | "302" | "303" | "307" | "308")
            {
                return Err(invalid("The provided HTTP redirect code is not valid."));
            }
        }
        Ok(())
    }
}

/// What the website endpoint answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebAnswer {
    /// Serve this version's bytes with this status (200, or 403/404 for an error
    /// document).
    Object {
        status: u16,
        key: String,
        version: Box<Version>,
    },
    Redirect {
        status: u16,
        location: String,
    },
    /// An HTML error page.
    Error {
        status: u16,
        code: &'static str,
        message: String,
        key: Option<String>,
    },
}

fn readable<'w>(world: &'w World, bucket: &str, key: &str) -> Result<&'w Version, u16> {
    let b = world.buckets.get(bucket).ok_or(404u16)?;
    let v = world
        .s3_objects
        .get(&object_id(bucket, key))
        .and_then(S3Object::live);
    let public = b.publicly_readable(key);
    match (v, public) {
        // Without permission to read, S3 cannot say whether the key exists: 403.
        (_, false) => Err(403),
        (None, true) => Err(404),
        (Some(v), true) => Ok(v),
    }
}

fn redirect_to(r: &Redirect, key: &str, matched_prefix: &str, this_host: &str) -> WebAnswer {
    let new_key = if let Some(k) = &r.replace_key_with {
        k.clone()
    } else if let Some(p) = &r.replace_key_prefix_with {
        format!("{p}{}", &key[matched_prefix.len().min(key.len())..])
    } else {
        key.to_string()
    };
    let host = r.host_name.clone().unwrap_or_else(|| this_host.to_string());
    let proto = r.protocol.clone().unwrap_or_else(|| "http".into());
    let status = r
        .http_redirect_code
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(301);
    WebAnswer::Redirect {
        status,
        location: format!("{proto}://{host}/{new_key}"),
    }
}

/// The answer for `GET path` on the website of `bucket` (`path` without the leading
/// `/`, percent-decoded). `this_host` is the Host the request came to (for redirects
/// that keep it).
pub fn answer(world: &World, bucket: &str, path: &str, this_host: &str) -> WebAnswer {
    let Some(b) = world.buckets.get(bucket) else {
        return WebAnswer::Error {
            status: 404,
            code: "NoSuchBucket",
            message: "The specified bucket does not exist".into(),
            key: None,
        };
    };
    let Some(cfg) = &b.website else {
        return WebAnswer::Error {
            status: 404,
            code: "NoSuchWebsiteConfiguration",
            message: "The specified bucket does not have a website configuration".into(),
            key: None,
        };
    };
    if let Some((host, proto)) = &cfg.redirect_all {
        let proto = proto.clone().unwrap_or_else(|| "http".into());
        return WebAnswer::Redirect {
            status: 301,
            location: format!("{proto}://{host}/{path}"),
        };
    }
    let index = cfg.index_suffix.clone().unwrap_or_default();
    // Routing rules that match on the key alone apply before the lookup.
    for r in &cfg.rules {
        if r.http_error_code_returned_equals.is_none()
            && let Some(p) = &r.key_prefix_equals
            && path.starts_with(p.as_str())
        {
            return redirect_to(&r.redirect, path, p, this_host);
        }
    }
    let key = if path.is_empty() || path.ends_with('/') {
        format!("{path}{index}")
    } else {
        path.to_string()
    };
    let status = match readable(world, bucket, &key) {
        Ok(v) => {
            return WebAnswer::Object {
                status: 200,
                key,
                version: Box::new(v.clone()),
            };
        }
        Err(s) => s,
    };
    // `docs` → `docs/` when `docs/index.html` is there.
    if status == 404 && !key.ends_with('/') && !index.is_empty() {
        let dir_index = format!("{key}/{index}");
        if readable(world, bucket, &dir_index).is_ok() {
            return WebAnswer::Redirect {
                status: 302,
                location: format!("/{key}/"),
            };
        }
    }
    for r in &cfg.rules {
        let code_ok = r
            .http_error_code_returned_equals
            .as_deref()
            .is_some_and(|c| c == status.to_string());
        let prefix = r.key_prefix_equals.as_deref().unwrap_or("");
        if code_ok && path.starts_with(prefix) {
            return redirect_to(&r.redirect, path, prefix, this_host);
        }
    }
    if let Some(err_key) = &cfg.error_key
        && let Ok(v) = readable(world, bucket, err_key)
    {
        return WebAnswer::Object {
            status,
            key: err_key.clone(),
            version: Box::new(v.clone()),
        };
    }
    if status == 403 {
        WebAnswer::Error {
            status,
            code: "AccessDenied",
            message: "Access Denied".into(),
            key: None,
        }
    } else {
        WebAnswer::Error {
            status,
            code: "NoSuchKey",
            message: "The specified key does not exist.".into(),
            key: Some(key),
        }
    }
}
