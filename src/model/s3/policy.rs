//! Bucket policies: stored as the learner wrote them, validated on PutBucketPolicy the
//! way S3 validates them (JSON object, `Version`, `Statement` with `Effect`, `Principal`,
//! `Action`, `Resource` naming this bucket), answered with `MalformedPolicy` otherwise.
//!
//! Evaluating policies for callers is IAM's business (the IAM engine reads
//! [`bucket_policy`]); this module only answers the two questions S3 itself asks: is the
//! policy public (Block Public Access), and does it let anyone GET a key (the website
//! endpoint, which serves anonymous requests).

use serde_json::Value;

use crate::model::iam::policy::glob;
use crate::model::{ApiError, ApiResult, World};

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::new("MalformedPolicy", message)
}

/// The stored policy of a bucket, for the IAM evaluator: `None` when the bucket has none
/// (or does not exist).
pub fn bucket_policy<'w>(world: &'w World, bucket: &str) -> Option<&'w str> {
    world.buckets.get(bucket)?.policy.as_deref()
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

/// Validates a bucket policy for `bucket`.
pub fn validate(text: &str, bucket: &str) -> ApiResult<()> {
    if !text.trim_start().starts_with('{') {
        return Err(malformed(
            "Policies must be valid JSON and the first byte must be '{'",
        ));
    }
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| malformed(format!("This policy contains invalid Json: {e}")))?;
    let Value::Object(map) = &doc else {
        return Err(malformed(
            "Policies must be valid JSON and the first byte must be '{'",
        ));
    };
    match map.get("Version").and_then(Value::as_str) {
        Some("2012-10-17") | Some("2008-10-17") => {}
        Some(v) => {
            return Err(malformed(format!(
                "The policy must contain a valid version string (2012-10-17 or 2008-10-17), not {v:?}"
            )));
        }
        None => {
            return Err(malformed("The policy must contain a valid version string"));
        }
    }
    for key in map.keys() {
        if !matches!(key.as_str(), "Version" | "Statement" | "Id") {
            return Err(malformed(format!("Unknown field {key}")));
        }
    }
    let statements = map
        .get("Statement")
        .ok_or_else(|| malformed("Missing required field Statement"))?;
    let statements = as_list(statements);
    if statements.is_empty() {
        return Err(malformed("Could not parse the policy: Statement is empty!"));
    }
    for s in statements {
        let Value::Object(s) = s else {
            return Err(malformed("Statement is not an object"));
        };
        match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") | Some("Deny") => {}
            Some(e) => return Err(malformed(format!("Invalid effect: {e}"))),
            None => return Err(malformed("Missing required field Effect")),
        }
        if !s.contains_key("Principal") && !s.contains_key("NotPrincipal") {
            return Err(malformed("Missing required field Principal"));
        }
        let actions = s
            .get("Action")
            .or_else(|| s.get("NotAction"))
            .ok_or_else(|| malformed("Missing required field Action"))?;
        for a in as_list(actions) {
            let a = a
                .as_str()
                .ok_or_else(|| malformed("Action must be a string or a list of strings"))?;
            if a != "*" && !a.to_ascii_lowercase().starts_with("s3:") {
                return Err(malformed(format!("Policy has invalid action: {a}")));
            }
        }
        let resources = s
            .get("Resource")
            .or_else(|| s.get("NotResource"))
            .ok_or_else(|| malformed("Missing required field Resource"))?;
        for r in as_list(resources) {
            let r = r
                .as_str()
                .ok_or_else(|| malformed("Resource must be a string or a list of strings"))?;
            let ours = r == "*"
                || r.strip_prefix("arn:aws:s3:::").is_some_and(|rest| {
                    let name = rest.split('/').next().unwrap_or("");
                    glob(name, bucket, false)
                });
            if !ours {
                return Err(malformed("Policy has invalid resource"));
            }
        }
    }
    Ok(())
}

fn principal_is_everyone(p: Option<&Value>) -> bool {
    match p {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(m)) => m
            .get("AWS")
            .is_some_and(|v| as_list(v).iter().any(|x| x.as_str() == Some("*"))),
        _ => false,
    }
}

/// A policy is public when an Allow statement names everyone without a condition
/// (S3's "The meaning of public", simplified: any condition counts as restricting).
pub fn is_public(text: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    doc.get("Statement").is_some_and(|s| {
        as_list(s).iter().any(|s| {
            s.get("Effect").and_then(Value::as_str) == Some("Allow")
                && principal_is_everyone(s.get("Principal"))
                && s.get("Condition").is_none()
        })
    })
}

fn action_matches(actions: Option<&Value>, wanted: &str) -> bool {
    actions.is_some_and(|a| {
        as_list(a)
            .iter()
            .any(|a| a.as_str().is_some_and(|a| glob(a, wanted, true)))
    })
}

fn resource_matches(resources: Option<&Value>, arn: &str) -> bool {
    resources.is_some_and(|r| {
        as_list(r)
            .iter()
            .any(|r| r.as_str().is_some_and(|r| glob(r, arn, false)))
    })
}

/// Whether an anonymous `s3:GetObject` of `key` is allowed: some Allow statement for
/// everyone covers it and no Deny for everyone does.
pub fn allows_public_get(text: &str, bucket: &str, key: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let arn = format!("arn:aws:s3:::{bucket}/{key}");
    let Some(statements) = doc.get("Statement") else {
        return false;
    };
    let covers = |s: &Value| {
        principal_is_everyone(s.get("Principal"))
            && s.get("Condition").is_none()
            && action_matches(s.get("Action"), "s3:GetObject")
            && resource_matches(s.get("Resource"), &arn)
    };
    let list = as_list(statements);
    let denied = list
        .iter()
        .any(|s| s.get("Effect").and_then(Value::as_str) == Some("Deny") && covers(s));
    let allowed = list
        .iter()
        .any(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow") && covers(s));
    allowed && !denied
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicReadGetObject","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#;

    #[test]
    fn the_public_read_policy_of_the_website_guide_validates_and_is_public() {
        validate(PUBLIC, "site").unwrap();
        assert!(is_public(PUBLIC));
        assert!(allows_public_get(PUBLIC, "site", "index.html"));
        assert!(!allows_public_get(PUBLIC, "other", "index.html"));
    }

    #[test]
    fn malformed_policies_name_what_is_wrong() {
        for (text, needle) in [
            ("not json", "first byte"),
            ("{", "invalid Json"),
            (r#"{"Statement":[]}"#, "version"),
            (r#"{"Version":"2012-10-17"}"#, "Statement"),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}}"#,
                "Principal",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::elsewhere/*"}}"#,
                "resource",
            ),
        ] {
            let e = validate(text, "site").unwrap_err();
            assert_eq!(e.code, "MalformedPolicy");
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }

    #[test]
    fn a_deny_for_everyone_beats_the_allow() {
        let p = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::site/*"},{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::site/private/*"}]}"#;
        assert!(allows_public_get(p, "site", "index.html"));
        assert!(!allows_public_get(p, "site", "private/x"));
    }
}
