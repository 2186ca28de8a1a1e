//! Cross-origin resource sharing: the rules PutBucketCors stores, their checks, and the
//! decision S3 takes for a preflight (`OPTIONS`) or an actual request that carries an
//! `Origin` (sans I/O: the API layer reads the headers and writes the answer).
//!
//! Rules (Amazon S3 API Reference, "PutBucketCors", "CORSRule", "Appendix: OPTIONS
//! object", "Common Response Headers"; User Guide, "Elements of a CORS configuration",
//! "Troubleshooting CORS"):
//! - "Amazon S3 … uses the first `CORSRule` rule that matches the incoming browser
//!   request": the `Origin` matches an `AllowedOrigin`; the method (the
//!   `Access-Control-Request-Method` of a preflight) is one of the `AllowedMethod`s; every
//!   header named in `Access-Control-Request-Headers` matches an `AllowedHeader`.
//! - An origin or allowed header "can contain only one `*` wildcard character", which
//!   stands for any run of characters (also none); header names match without regard to
//!   case.
//! - Up to 100 rules; methods are `GET`, `PUT`, `HEAD`, `POST` and `DELETE`.
//! - `Access-Control-Allow-Origin` is `*` "if the request origin matches `'*'` in the CORS
//!   configuration's allowed origins", and then `Access-Control-Allow-Credentials` is
//!   left out; otherwise it is the origin sent, and credentials are `true`.
//! - A preflight is answered with the requested headers that are allowed, lower case, in
//!   the order asked; an actual request's own headers are not checked.
//! - A request no rule allows is served without any CORS header (only a preflight is
//!   refused, with 403).

use serde::{Deserialize, Serialize};

use crate::model::{ApiError, ApiResult};

/// At most this many rules in one configuration ("You can add up to 100 rules").
pub const MAX_RULES: usize = 100;
/// The methods a rule may allow.
pub const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];
/// `Vary` of every answer a rule allowed: what the decision depended on.
pub const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// One `CORSRule`, its lists in the order sent.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i64>,
}

/// A bucket's `CORSConfiguration`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CorsConfig {
    pub rules: Vec<CorsRule>,
}

fn invalid_request(message: String) -> ApiError {
    ApiError::new("InvalidRequest", message)
}

fn malformed_xml() -> ApiError {
    ApiError::new(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

impl CorsConfig {
    /// PutBucketCors's checks, in the codes S3 answers: a configuration without rules or
    /// with more than 100, or a rule without an origin or a method, does not validate
    /// against the schema (`MalformedXML`); a method outside the five, a second `*` in an
    /// origin or allowed header, or a `*` in an exposed header is `InvalidRequest`.
    pub fn validate(&self) -> ApiResult<()> {
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return Err(malformed_xml());
        }
        for r in &self.rules {
            if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
                return Err(malformed_xml());
            }
            if r.id.as_ref().is_some_and(|id| id.chars().count() > 255) {
                return Err(malformed_xml());
            }
            for m in &r.allowed_methods {
                if !METHODS.contains(&m.as_str()) {
                    return Err(invalid_request(format!(
                        "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                    )));
                }
            }
            for o in &r.allowed_origins {
                if o.matches('*').count() > 1 {
                    return Err(invalid_request(format!(
                        "AllowedOrigin \"{o}\" can not have more than one wildcard."
                    )));
                }
            }
            for h in &r.allowed_headers {
                if h.matches('*').count() > 1 {
                    return Err(invalid_request(format!(
                        "AllowedHeader \"{h}\" can not have more than one wildcard."
                    )));
                }
            }
            for h in &r.expose_headers {
                if h.contains('*') {
                    return Err(invalid_request(format!(
                        "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
                    )));
                }
            }
        }
        Ok(())
    }

    /// The first rule that allows `origin` to use `method` with every header of
    /// `requested` (empty for an actual request), and what it grants.
    pub fn evaluate(&self, origin: &str, method: &str, requested: &[String]) -> Option<Grant> {
        self.rules
            .iter()
            .find_map(|r| r.grant(origin, method, requested))
    }
}

/// Whether `value` matches `pattern`, which holds at most one `*` standing for any run
/// of characters (validated on PutBucketCors; a pattern with more never matches).
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((_, rest)) if rest.contains('*') => false,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

impl CorsRule {
    fn grant(&self, origin: &str, method: &str, requested: &[String]) -> Option<Grant> {
        let matched = self
            .allowed_origins
            .iter()
            .find(|o| wildcard_match(o, origin))?;
        if !self.allowed_methods.iter().any(|m| m == method) {
            return None;
        }
        let allowed_headers: Vec<String> = self
            .allowed_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let all_allowed = requested.iter().all(|h| {
            let h = h.to_ascii_lowercase();
            allowed_headers.iter().any(|a| wildcard_match(a, &h))
        });
        if !all_allowed {
            return None;
        }
        let any = matched == "*";
        Some(Grant {
            allow_origin: if any { "*".into() } else { origin.into() },
            allow_methods: self.allowed_methods.join(", "),
            allow_headers: requested.iter().map(|h| h.to_ascii_lowercase()).collect(),
            expose_headers: self.expose_headers.clone(),
            max_age_seconds: self.max_age_seconds,
            credentials: !any,
        })
    }
}

/// What a matching rule lets the browser do: the `Access-Control-*` headers of the
/// answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub allow_origin: String,
    pub allow_methods: String,
    /// The requested headers (lower case, in the order asked); empty for an actual
    /// request, and then no `Access-Control-Allow-Headers` is sent.
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i64>,
    /// `Access-Control-Allow-Credentials: true`, unless the origin granted is `*`.
    pub credentials: bool,
}

impl Grant {
    /// The response headers, as (lower-case name, value).
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (
                "access-control-allow-origin".to_string(),
                self.allow_origin.clone(),
            ),
            (
                "access-control-allow-methods".to_string(),
                self.allow_methods.clone(),
            ),
        ];
        if !self.allow_headers.is_empty() {
            out.push((
                "access-control-allow-headers".into(),
                self.allow_headers.join(", "),
            ));
        }
        if !self.expose_headers.is_empty() {
            out.push((
                "access-control-expose-headers".into(),
                self.expose_headers.join(", "),
            ));
        }
        if let Some(age) = self.max_age_seconds {
            out.push(("access-control-max-age".into(), age.to_string()));
        }
        if self.credentials {
            out.push(("access-control-allow-credentials".into(), "true".into()));
        }
        out.push(("vary".into(), VARY.into()));
        out
    }
}

/// Why a preflight is refused (each is S3's own answer, see [`Refusal::error`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Origin` header: 400.
    MissingOrigin,
    /// The bucket does not exist: 403.
    NoSuchBucket,
    /// The bucket has no CORS configuration: 403.
    NotEnabled,
    /// An `Origin` but no `Access-Control-Request-Method`: 400.
    MissingMethod,
    /// No rule allows the origin, method and headers: 403.
    NotAllowed,
}

impl Refusal {
    /// S3's error for the refusal (code `AccessForbidden` for the 403s, a code S3's
    /// error table does not list but its answers carry).
    pub fn error(&self) -> ApiError {
        let forbidden = |m: &str| ApiError::new("AccessForbidden", m.to_string()).with_status(403);
        match self {
            Refusal::MissingOrigin => ApiError::new(
                "BadRequest",
                "Insufficient information. Origin request header needed.",
            ),
            Refusal::MissingMethod => {
                ApiError::new("BadRequest", "Invalid Access-Control-Request-Method: null")
            }
            Refusal::NoSuchBucket => forbidden("CORSResponse: Bucket not found"),
            Refusal::NotEnabled => forbidden("CORSResponse: CORS is not enabled for this bucket."),
            Refusal::NotAllowed => forbidden(
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            ),
        }
    }
}

/// The names of an `Access-Control-Request-Headers` value (a comma-separated list;
/// empty elements ignored, as RFC 9110's list syntax allows).
pub fn requested_headers(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

/// A preflight's answer. `config` is `None` when the bucket does not exist, `Some(None)`
/// when it has no CORS configuration. The order of the checks is S3's: the `Origin`
/// first (even for a bucket that does not exist), then the bucket and its configuration,
/// then the requested method.
pub fn preflight(
    config: Option<Option<&CorsConfig>>,
    origin: Option<&str>,
    method: Option<&str>,
    requested: &[String],
) -> Result<Grant, Refusal> {
    let origin = origin.ok_or(Refusal::MissingOrigin)?;
    let config = config.ok_or(Refusal::NoSuchBucket)?;
    let config = config.ok_or(Refusal::NotEnabled)?;
    let method = method.ok_or(Refusal::MissingMethod)?;
    config
        .evaluate(origin, method, requested)
        .ok_or(Refusal::NotAllowed)
}

/// An actual request's grant: the rule matching its `Origin` and method (the
/// `Access-Control-Request-Method` it carries, if any, as S3 does), its headers not
/// checked. `None`: the answer carries no CORS header.
pub fn actual(config: Option<&CorsConfig>, origin: &str, method: &str) -> Option<Grant> {
    config?.evaluate(origin, method, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..CorsRule::default()
        }
    }

    fn config(rules: Vec<CorsRule>) -> CorsConfig {
        CorsConfig { rules }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// "The origin string can contain only one `*` wildcard character, such as
    /// `http://*.example.com`": the star stands for any run, also an empty one, and the
    /// pattern is anchored at both ends.
    #[test]
    fn an_origin_wildcard_matches_any_run_of_characters_anchored_at_both_ends() {
        assert!(wildcard_match(
            "http://*.example.com",
            "http://a.example.com"
        ));
        assert!(wildcard_match(
            "http://*.example.com",
            "http://a.b.example.com"
        ));
        assert!(!wildcard_match(
            "http://*.example.com",
            "http://example.com"
        ));
        assert!(!wildcard_match(
            "http://*.example.com",
            "http://a.example.com.evil"
        ));
        assert!(wildcard_match("start*end", "startend"));
        assert!(!wildcard_match("start*end", "0start12end"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a*b*c", "abc"));
        // "http://www.example.com:80 … don't match the allowed origin" http://www.example.com.
        assert!(!wildcard_match(
            "http://www.example.com",
            "http://www.example.com:80"
        ));
    }

    /// "uses the first CORSRule rule that matches": a later rule is not consulted once
    /// an earlier one matched.
    #[test]
    fn the_first_matching_rule_answers() {
        let mut first = rule(&["http://a.test"], &["GET"], &[]);
        first.max_age_seconds = Some(10);
        let mut second = rule(&["*"], &["GET", "PUT"], &["*"]);
        second.max_age_seconds = Some(20);
        let c = config(vec![first, second]);
        let g = c.evaluate("http://a.test", "GET", &[]).unwrap();
        assert_eq!(g.max_age_seconds, Some(10));
        assert_eq!(g.allow_origin, "http://a.test");
        assert!(g.credentials);
        // A header the first rule does not allow: the second answers, with `*`.
        let g = c
            .evaluate("http://a.test", "GET", &names(&["X-Custom"]))
            .unwrap();
        assert_eq!(g.max_age_seconds, Some(20));
        assert_eq!(g.allow_origin, "*");
        assert!(!g.credentials);
        assert_eq!(g.allow_headers, names(&["x-custom"]));
        assert_eq!(g.allow_methods, "GET, PUT");
    }

    /// "Every header specified in the Access-Control-Request-Headers request header of
    /// a pre-flight request must match an AllowedHeader element", without regard to
    /// case; a rule without AllowedHeader allows none.
    #[test]
    fn every_requested_header_must_match_an_allowed_header() {
        let c = config(vec![rule(&["*"], &["PUT"], &["x-amz-*", "Content-Type"])]);
        assert!(
            c.evaluate("o", "PUT", &names(&["X-Amz-Meta-A", "content-type"]))
                .is_some()
        );
        assert!(
            c.evaluate("o", "PUT", &names(&["x-amz-meta-a", "authorization"]))
                .is_none()
        );
        let bare = config(vec![rule(&["*"], &["GET"], &[])]);
        assert!(bare.evaluate("o", "GET", &[]).is_some());
        assert!(bare.evaluate("o", "GET", &names(&["x-a"])).is_none());
    }

    /// The preflight's refusals come in S3's order: the Origin, the bucket, its
    /// configuration, the requested method, the rules.
    #[test]
    fn a_preflight_is_refused_in_s3s_order() {
        let c = config(vec![rule(&["http://a.test"], &["GET"], &[])]);
        assert_eq!(
            preflight(None, None, Some("GET"), &[]),
            Err(Refusal::MissingOrigin)
        );
        assert_eq!(
            preflight(None, Some("http://a.test"), Some("GET"), &[]),
            Err(Refusal::NoSuchBucket)
        );
        assert_eq!(
            preflight(Some(None), Some("http://a.test"), None, &[]),
            Err(Refusal::NotEnabled)
        );
        assert_eq!(
            preflight(Some(Some(&c)), Some("http://a.test"), None, &[]),
            Err(Refusal::MissingMethod)
        );
        assert_eq!(
            preflight(Some(Some(&c)), Some("http://b.test"), Some("GET"), &[]),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            preflight(Some(Some(&c)), Some("http://a.test"), Some("PUT"), &[]),
            Err(Refusal::NotAllowed)
        );
        assert!(preflight(Some(Some(&c)), Some("http://a.test"), Some("GET"), &[]).is_ok());
        assert_eq!(Refusal::NotEnabled.error().status, 403);
        assert_eq!(Refusal::MissingOrigin.error().status, 400);
    }

    /// The answer's headers: `*` carries no credentials; Allow-Headers only when asked;
    /// Vary always.
    #[test]
    fn a_grant_writes_s3s_headers() {
        let mut r = rule(&["http://a.test"], &["GET", "PUT"], &["*"]);
        r.expose_headers = names(&["ETag", "x-amz-meta-custom"]);
        r.max_age_seconds = Some(3000);
        let g = config(vec![r])
            .evaluate("http://a.test", "PUT", &names(&["Content-Type"]))
            .unwrap();
        let h = g.headers();
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("access-control-allow-origin"), Some("http://a.test"));
        assert_eq!(get("access-control-allow-methods"), Some("GET, PUT"));
        assert_eq!(get("access-control-allow-headers"), Some("content-type"));
        assert_eq!(
            get("access-control-expose-headers"),
            Some("ETag, x-amz-meta-custom")
        );
        assert_eq!(get("access-control-max-age"), Some("3000"));
        assert_eq!(get("access-control-allow-credentials"), Some("true"));
        assert_eq!(get("vary"), Some(VARY));
        let any = config(vec![rule(&["*"], &["GET"], &[])])
            .evaluate("http://x", "GET", &[])
            .unwrap()
            .headers();
        assert!(
            !any.iter()
                .any(|(k, _)| k == "access-control-allow-credentials")
        );
        assert!(!any.iter().any(|(k, _)| k == "access-control-allow-headers"));
    }

    /// PutBucketCors's checks and their codes.
    #[test]
    fn put_bucket_cors_refuses_what_s3_refuses() {
        let code = |c: CorsConfig| c.validate().err().map(|e| e.code.to_string());
        assert_eq!(code(config(vec![])), Some("MalformedXML".into()));
        assert_eq!(
            code(config(vec![rule(&["*"], &["GET"], &[]); 101])),
            Some("MalformedXML".into())
        );
        assert_eq!(code(config(vec![rule(&["*"], &["GET"], &[]); 100])), None);
        assert_eq!(
            code(config(vec![rule(&[], &["GET"], &[])])),
            Some("MalformedXML".into())
        );
        assert_eq!(
            code(config(vec![rule(&["*"], &[], &[])])),
            Some("MalformedXML".into())
        );
        let e = config(vec![rule(&["*"], &["OPTIONS"], &[])])
            .validate()
            .unwrap_err();
        assert_eq!(e.code, "InvalidRequest");
        assert!(e.message.ends_with("Unsupported method is OPTIONS"));
        let e = config(vec![rule(&["*example*.com"], &["GET"], &[])])
            .validate()
            .unwrap_err();
        assert_eq!(
            e.message,
            "AllowedOrigin \"*example*.com\" can not have more than one wildcard."
        );
        assert_eq!(
            code(config(vec![rule(&["*"], &["GET"], &["x-*-*"])])),
            Some("InvalidRequest".into())
        );
        let mut r = rule(&["*"], &["GET"], &[]);
        r.expose_headers = names(&["*"]);
        assert_eq!(code(config(vec![r])), Some("InvalidRequest".into()));
    }
}
