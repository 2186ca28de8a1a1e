//! SigV4: parsing the `Authorization` header (access key, credential scope's region and
//! service) and, with `--auth strict`, verifying the signature (AWS "Signature Version 4
//! signing process": canonical request, string to sign, derived signing key, constant-time
//! comparison) against the keys of `access-keys.toml`, each mapped to its account. In the
//! default open mode any well-formed credentials are accepted as the one default account.
//! Not checked even in strict mode: request-time skew, session tokens, presigned URLs.

use crate::model::{ApiError, ApiResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ec2/aws4_request,
/// SignedHeaders=…, Signature=…`.
pub fn parse_authorization(header: &str) -> ApiResult<Credential> {
    let bad = || ApiError::auth("AWS was not able to validate the provided access credentials");
    let rest = header
        .trim()
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or_else(bad)?;
    let mut cred = None;
    let mut has_sig = false;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(c) = part.strip_prefix("Credential=") {
            cred = Some(c);
        } else if part.starts_with("Signature=") {
            has_sig = true;
        }
    }
    let cred = cred.ok_or_else(bad)?;
    let fields: Vec<&str> = cred.split('/').collect();
    if !has_sig
        || fields.len() != 5
        || fields[4] != "aws4_request"
        || fields.iter().any(|f| f.is_empty())
    {
        return Err(bad());
    }
    Ok(Credential {
        access_key: fields[0].to_string(),
        date: fields[1].to_string(),
        region: fields[2].to_string(),
        service: fields[3].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_scope_gives_access_key_region_and_service() {
        let c = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=test/20240101/eu-west-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(c.access_key, "test");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.service, "ec2");
    }

    #[test]
    fn malformed_authorization_is_auth_failure() {
        for h in [
            "",
            "Basic abc",
            "AWS4-HMAC-SHA256 Credential=a/b, Signature=x",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request",
        ] {
            assert_eq!(
                parse_authorization(h).unwrap_err().code,
                "AuthFailure",
                "{h}"
            );
        }
    }
}

/// What SigV4 verification needs from an HTTP request.
#[derive(Clone, Debug, Default)]
pub struct SignedRequest {
    pub method: String,
    /// The path as received (still percent-encoded).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Every header as (lower-case name, value); repeated names appear repeatedly.
    pub headers: Vec<(String, String)>,
}

impl SignedRequest {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn authorization(&self) -> Option<&str> {
        self.header_values("authorization").first().copied()
    }
}

/// One access key of `--auth strict`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub access_key: String,
    pub secret_key: String,
    /// The 12-digit account the key belongs to; each account is its own world.
    pub account: String,
}

/// The access keys file (`access-keys.toml` in the state directory).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    #[serde(default, rename = "key")]
    pub keys: Vec<AccessKey>,
}

/// Who a request is, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub credential: Credential,
}

/// How requests are authenticated.
#[derive(Clone, Debug, Default)]
pub enum AuthMode {
    /// Any well-formed credentials; every request is [`crate::model::DEFAULT_ACCOUNT`].
    #[default]
    Open,
    /// Signatures verified against these keys (by access key id).
    Strict(std::sync::Arc<std::collections::BTreeMap<String, AccessKey>>),
}

impl AuthMode {
    pub fn strict(keys: KeyFile) -> AuthMode {
        AuthMode::Strict(std::sync::Arc::new(
            keys.keys
                .into_iter()
                .map(|k| (k.access_key.clone(), k))
                .collect(),
        ))
    }

    /// Authenticates a request: parses its `Authorization` and, in strict mode, verifies
    /// the signature over method, path, query, signed headers and body.
    pub fn authenticate(&self, req: &SignedRequest, body: &[u8]) -> ApiResult<Identity> {
        let header = req.authorization().ok_or_else(|| {
            ApiError::auth("AWS was not able to validate the provided access credentials (no Authorization header)")
        })?;
        let credential = parse_authorization(header)?;
        match self {
            AuthMode::Open => Ok(Identity {
                account: crate::model::DEFAULT_ACCOUNT.to_string(),
                credential,
            }),
            AuthMode::Strict(keys) => {
                let key = keys.get(&credential.access_key).ok_or_else(|| {
                    ApiError::auth("AWS was not able to validate the provided access credentials")
                })?;
                verify(req, body, header, &credential, &key.secret_key)?;
                Ok(Identity {
                    account: key.account.clone(),
                    credential,
                })
            }
        }
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, everything else
/// `%XX` upper-case; `/` kept when `keep_slash`.
fn uri_encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// The canonical query string: each name and value decoded then re-encoded, sorted.
fn canonical_query(query: Option<&str>) -> String {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            // `+` in a query string means space for form encoding; SigV4 clients encode
            // spaces as %20, so a literal `+` is taken as `+`.
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Verifies a SigV4 signature (AWS "Signature Version 4 signing process").
fn verify(
    req: &SignedRequest,
    body: &[u8],
    header: &str,
    cred: &Credential,
    secret: &str,
) -> ApiResult<()> {
    let mismatch = || {
        ApiError::new(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        )
        .with_status(403)
    };
    let mut signed_headers = None;
    let mut signature = None;
    for part in header
        .trim()
        .trim_start_matches("AWS4-HMAC-SHA256")
        .split(',')
    {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(signed_headers), Some(signature)) = (signed_headers, signature) else {
        return Err(ApiError::new(
            "IncompleteSignature",
            "The request signature is incomplete.",
        )
        .with_status(400));
    };
    let amz_date = req
        .header_values("x-amz-date")
        .first()
        .map(|s| s.to_string())
        .ok_or_else(|| {
            ApiError::new("IncompleteSignature", "X-Amz-Date is missing.").with_status(400)
        })?;
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values = req.header_values(name);
        let joined = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(",");
        canonical_headers.push_str(&format!("{name}:{joined}\n"));
    }
    let payload_hash = req
        .header_values("x-amz-content-sha256")
        .first()
        .map(|s| s.to_string())
        .unwrap_or_else(|| sha256_hex(body));
    let path = if req.path.is_empty() {
        "/"
    } else {
        req.path.as_str()
    };
    // Non-S3 services encode the (already encoded) path once more.
    let canonical_uri = uri_encode(path.as_bytes(), true);
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri,
        canonical_query(req.query.as_deref()),
        canonical_headers,
        signed_headers,
        payload_hash
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        cred.date, cred.region, cred.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), cred.date.as_bytes());
    let k_region = hmac(&k_date, cred.region.as_bytes());
    let k_service = hmac(&k_region, cred.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let expected = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    if constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// Compares without an early exit, so timing does not reveal how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod verify_tests {
    use super::*;

    /// AWS's documented example ("Create a signature", IAM ListUsers GET request) with
    /// its published signature.
    #[test]
    fn aws_documented_example_signature_verifies() {
        let req = SignedRequest {
            method: "GET".into(),
            path: "/".into(),
            query: Some("Action=ListUsers&Version=2010-05-08".into()),
            headers: vec![
                ("content-type".into(), "application/x-www-form-urlencoded; charset=utf-8".into()),
                ("host".into(), "iam.amazonaws.com".into()),
                ("x-amz-date".into(), "20150830T123600Z".into()),
                (
                    "authorization".into(),
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7".into(),
                ),
            ],
        };
        let keys = KeyFile {
            keys: vec![AccessKey {
                access_key: "AKIDEXAMPLE".into(),
                secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                account: "111122223333".into(),
            }],
        };
        let auth = AuthMode::strict(keys);
        let id = auth
            .authenticate(&req, b"")
            .expect("the documented signature verifies");
        assert_eq!(id.account, "111122223333");

        let mut tampered = req.clone();
        tampered.query = Some("Action=ListUsers&Version=2010-05-09".into());
        assert_eq!(
            auth.authenticate(&tampered, b"").unwrap_err().code,
            "SignatureDoesNotMatch"
        );

        let mut unknown = req;
        unknown.headers[3].1 = unknown.headers[3].1.replace("AKIDEXAMPLE", "AKIDOTHER");
        assert_eq!(
            auth.authenticate(&unknown, b"").unwrap_err().code,
            "AuthFailure"
        );
    }
}
