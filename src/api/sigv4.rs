//! SigV4: parsing the credentials a request presents (access key, credential scope's
//! region and service) and, with `--auth strict`, checking them as AWS does, against the
//! keys of `access-keys.toml`, each mapped to its account. In the default open mode any
//! well-formed credentials are accepted as the one default account, and nothing below
//! "strict" applies.
//!
//! Strict mode (AWS "Signature Version 4 signing process" and "Authenticating requests"):
//!
//! - Credentials come from the `Authorization` header or, for a presigned URL, from the
//!   `X-Amz-*` query parameters (`X-Amz-Signature` itself left out of the canonical query).
//! - The payload hash of the canonical request is always computed from the body that
//!   arrived. EC2 and Route 53 take signed payloads only (`UNSIGNED-PAYLOAD` and the
//!   streaming forms are Amazon S3's), so an `x-amz-content-sha256` header is never
//!   trusted for the hash: a captured request cannot be replayed with another body, and a
//!   client that signed that header with the body's real hash still verifies.
//! - The request time `X-Amz-Date` must be within the service's window of the server clock
//!   (EC2 15 minutes, Route 53 5 minutes; [`skew_window_ms`]), and the credential scope's
//!   date must be its day. A presigned URL is good until `X-Amz-Date + X-Amz-Expires`
//!   (1 to 604,800 seconds) plus the same window.
//! - The signature is compared in constant time.
//!
//! - Keys come from a [`KeyRing`]: the fixed keys of `access-keys.toml` (each its
//!   account's root) and any [`KeyStore`] the daemon adds (IAM users' keys, temporary
//!   credentials, a course roster). Temporary credentials must present their session
//!   token (`X-Amz-Security-Token`) and stop working when they expire.

use crate::model::{ApiError, ApiResult, Timestamp};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

fn credential_failure() -> ApiError {
    ApiError::auth("AWS was not able to validate the provided access credentials")
}

/// Parses the credential scope `AKID/20240101/us-east-1/ec2/aws4_request`.
fn parse_credential(cred: &str) -> ApiResult<Credential> {
    let fields: Vec<&str> = cred.split('/').collect();
    if fields.len() != 5 || fields[4] != "aws4_request" || fields.iter().any(|f| f.is_empty()) {
        return Err(credential_failure());
    }
    Ok(Credential {
        access_key: fields[0].to_string(),
        date: fields[1].to_string(),
        region: fields[2].to_string(),
        service: fields[3].to_string(),
    })
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
struct AuthHeader<'a> {
    credential: &'a str,
    signed_headers: Option<&'a str>,
    signature: Option<&'a str>,
}

fn split_authorization(header: &str) -> ApiResult<AuthHeader<'_>> {
    let rest = header
        .trim()
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or_else(credential_failure)?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    Ok(AuthHeader {
        credential: credential.ok_or_else(credential_failure)?,
        signed_headers,
        signature,
    })
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ec2/aws4_request,
/// SignedHeaders=…, Signature=…`.
pub fn parse_authorization(header: &str) -> ApiResult<Credential> {
    let parts = split_authorization(header)?;
    if parts.signature.is_none() {
        return Err(credential_failure());
    }
    parse_credential(parts.credential)
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

    #[test]
    fn amz_dates_parse_only_in_the_basic_iso_form() {
        assert_eq!(
            parse_amz_date("20150830T123600Z"),
            Some(Timestamp(1_440_938_160_000))
        );
        for bad in [
            "",
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20151330T123600Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "20150830T126000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
        assert_eq!(
            amz_date(Timestamp(1_440_938_160_999)),
            "20150830T123600Z".to_string()
        );
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

    /// The decoded value of a query parameter (the first, if repeated).
    fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
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

/// Who made a request, within its account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Principal {
    /// The account's root user: the keys of `access-keys.toml`, and every request in open
    /// mode. Never subject to IAM policies.
    #[default]
    Root,
    /// An IAM user, by name.
    User(String),
    /// A session of an assumed role (STS AssumeRole): the role's name and the session's.
    AssumedRole { role: String, session: String },
    /// A course's instructor (classroom mode): may look into every learner's account.
    Instructor,
}

/// A key, as a [`KeyRing`] finds it by its access key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub secret_key: String,
    /// The 12-digit account whose world the key acts in.
    pub account: String,
    pub principal: Principal,
    /// For temporary credentials: the session token every request must carry.
    pub session_token: Option<String>,
    /// For temporary credentials: when they stop working.
    pub expires: Option<Timestamp>,
}

impl From<&AccessKey> for KeyRecord {
    fn from(k: &AccessKey) -> KeyRecord {
        KeyRecord {
            secret_key: k.secret_key.clone(),
            account: k.account.clone(),
            principal: Principal::Root,
            session_token: None,
            expires: None,
        }
    }
}

/// A source of keys beside the fixed ones: IAM users' access keys, STS sessions, a
/// course's roster. Looked up on every request, so it must be cheap (an index, not a scan).
pub trait KeyStore: Send + Sync {
    fn find(&self, access_key: &str) -> Option<KeyRecord>;
}

/// Every key strict mode accepts: the fixed keys first, then each store in order.
#[derive(Clone, Default)]
pub struct KeyRing {
    fixed: std::collections::BTreeMap<String, AccessKey>,
    stores: Vec<std::sync::Arc<dyn KeyStore>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("fixed", &self.fixed.keys().collect::<Vec<_>>())
            .field("stores", &self.stores.len())
            .finish()
    }
}

impl KeyRing {
    pub fn new(file: KeyFile) -> KeyRing {
        KeyRing {
            fixed: file
                .keys
                .into_iter()
                .map(|k| (k.access_key.clone(), k))
                .collect(),
            stores: Vec::new(),
        }
    }

    /// Adds a store, consulted after the fixed keys and the stores added before it.
    pub fn with_store(mut self, store: std::sync::Arc<dyn KeyStore>) -> KeyRing {
        self.stores.push(store);
        self
    }

    pub fn find(&self, access_key: &str) -> Option<KeyRecord> {
        if let Some(k) = self.fixed.get(access_key) {
            return Some(k.into());
        }
        self.stores.iter().find_map(|s| s.find(access_key))
    }

    /// The fixed keys (`access-keys.toml`), by access key id.
    pub fn fixed(&self) -> impl Iterator<Item = &AccessKey> {
        self.fixed.values()
    }
}

/// Who a request is, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub principal: Principal,
    pub credential: Credential,
}

/// How requests are authenticated.
#[derive(Clone, Debug, Default)]
pub enum AuthMode {
    /// Any well-formed credentials; every request is the root of
    /// [`crate::model::DEFAULT_ACCOUNT`].
    #[default]
    Open,
    /// Signatures verified against these keys (by access key id).
    Strict(std::sync::Arc<KeyRing>),
}

/// Longest lifetime of a presigned URL, in seconds (seven days, as on AWS).
pub const MAX_PRESIGN_EXPIRES: i64 = 604_800;

/// How far a request's `X-Amz-Date` may be from the server's clock, in milliseconds.
/// EC2's documented window is 15 minutes (its `RequestExpired` error); Route 53 answers
/// "Signature expired … - 5 min." beyond 5 minutes. Other callers (vpclab's own
/// `/_vpclab/*` endpoints sign as `ec2`) get EC2's window.
pub fn skew_window_ms(service: &str) -> i64 {
    match service {
        "route53" => 5 * 60_000,
        _ => 15 * 60_000,
    }
}

/// What a request presents to be checked: from the `Authorization` header, or from the
/// query string of a presigned URL.
struct Presented {
    credential: Credential,
    signed_headers: Option<String>,
    signature: Option<String>,
    amz_date: Option<String>,
    /// `X-Amz-Expires` of a presigned URL, as sent.
    expires: Option<String>,
    presigned: bool,
}

impl Presented {
    fn from_request(req: &SignedRequest) -> ApiResult<Presented> {
        if let Some(header) = req.authorization() {
            let parts = split_authorization(header)?;
            if parts.signature.is_none() {
                return Err(credential_failure());
            }
            return Ok(Presented {
                credential: parse_credential(parts.credential)?,
                signed_headers: parts.signed_headers.map(str::to_string),
                signature: parts.signature.map(str::to_string),
                amz_date: req
                    .header_values("x-amz-date")
                    .first()
                    .map(|s| s.to_string()),
                expires: None,
                presigned: false,
            });
        }
        if req.query_param("X-Amz-Algorithm").as_deref() == Some("AWS4-HMAC-SHA256") {
            let credential = req
                .query_param("X-Amz-Credential")
                .ok_or_else(credential_failure)?;
            return Ok(Presented {
                credential: parse_credential(&credential)?,
                signed_headers: req.query_param("X-Amz-SignedHeaders"),
                signature: req.query_param("X-Amz-Signature"),
                amz_date: req.query_param("X-Amz-Date"),
                expires: req.query_param("X-Amz-Expires"),
                presigned: true,
            });
        }
        Err(ApiError::auth(
            "AWS was not able to validate the provided access credentials (no Authorization header)",
        ))
    }
}

impl AuthMode {
    pub fn strict(keys: KeyFile) -> AuthMode {
        AuthMode::Strict(std::sync::Arc::new(KeyRing::new(keys)))
    }

    /// Authenticates a request at server time `now`: parses its credentials and, in
    /// strict mode, checks its time and verifies the signature over method, path, query,
    /// signed headers and the body.
    pub fn authenticate(
        &self,
        req: &SignedRequest,
        body: &[u8],
        now: Timestamp,
    ) -> ApiResult<Identity> {
        self.authenticate_payload(req, Payload::Bytes(body), now)
    }

    /// [`AuthMode::authenticate`] for a body that was hashed as it arrived instead of
    /// being held (S3 objects, streamed to disk).
    pub fn authenticate_payload(
        &self,
        req: &SignedRequest,
        body: Payload<'_>,
        now: Timestamp,
    ) -> ApiResult<Identity> {
        let presented = Presented::from_request(req)?;
        match self {
            AuthMode::Open => Ok(Identity {
                account: crate::model::DEFAULT_ACCOUNT.to_string(),
                principal: Principal::Root,
                credential: presented.credential,
            }),
            AuthMode::Strict(keys) => {
                let key = keys
                    .find(&presented.credential.access_key)
                    .ok_or_else(credential_failure)?;
                let signed_at = check_time(&presented, now)?;
                if presented.credential.service == "s3" {
                    check_s3_payload(req, body)?;
                }
                verify(req, body, &presented, &signed_at, &key.secret_key)?;
                check_session(req, &key, now)?;
                Ok(Identity {
                    account: key.account,
                    principal: key.principal,
                    credential: presented.credential,
                })
            }
        }
    }
}

/// Temporary credentials: the request carries the session token they were issued with
/// (header or, presigned, query parameter), and they have not expired.
fn check_session(req: &SignedRequest, key: &KeyRecord, now: Timestamp) -> ApiResult<()> {
    let Some(token) = &key.session_token else {
        return Ok(());
    };
    let presented = req
        .header_values("x-amz-security-token")
        .first()
        .map(|s| s.to_string())
        .or_else(|| req.query_param("X-Amz-Security-Token"));
    if !presented
        .as_deref()
        .is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes()))
    {
        return Err(ApiError::auth(
            "The security token included in the request is invalid.",
        ));
    }
    if key.expires.is_some_and(|e| now >= e) {
        return Err(ApiError::new(
            "ExpiredToken",
            "The security token included in the request is expired",
        )
        .with_status(400));
    }
    Ok(())
}

/// S3's `x-amz-content-sha256`: a hex hash must be the body's (`XAmzContentSHA256Mismatch`
/// otherwise); `UNSIGNED-PAYLOAD` and the `STREAMING-…` forms are taken as sent (chunk
/// signatures are not checked: docs/fidelity.md).
fn check_s3_payload(req: &SignedRequest, body: Payload<'_>) -> ApiResult<()> {
    let Some(claimed) = req.header_values("x-amz-content-sha256").first().copied() else {
        return Ok(());
    };
    if claimed == "UNSIGNED-PAYLOAD" || claimed.starts_with("STREAMING-") {
        return Ok(());
    }
    if body.sha256_hex().as_deref() != Some(claimed) {
        return Err(ApiError::new(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    Ok(())
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new("IncompleteSignature", message).with_status(400)
}

/// Parses SigV4's basic ISO 8601 time (`20150830T123600Z`, UTC).
pub fn parse_amz_date(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    if !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        return None;
    }
    let num = |from: usize, to: usize| s[from..to].parse::<u16>().ok();
    let month = time::Month::try_from(u8::try_from(num(4, 6)?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::from(num(0, 4)?), month, num(6, 8)? as u8).ok()?;
    let clock =
        time::Time::from_hms(num(9, 11)? as u8, num(11, 13)? as u8, num(13, 15)? as u8).ok()?;
    let secs = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    Some(Timestamp(secs.saturating_mul(1000)))
}

/// A time in SigV4's basic ISO 8601 form, as AWS's messages print it.
pub fn amz_date(t: Timestamp) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t.0.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "19700101T000000Z".to_string(),
    }
}

/// The error a request signed too long ago (or too far ahead) earns. EC2 answers
/// `RequestExpired` (its Common Errors: more than 15 minutes after the date stamp or
/// after a presigned URL's expiry, or more than 15 minutes in the future); the REST
/// services answer `SignatureDoesNotMatch` saying which bound was crossed.
fn time_error(service: &str, late: bool, signed: Timestamp, now: Timestamp) -> ApiError {
    if service == "ec2" {
        return ApiError::new("RequestExpired", "Request has expired.");
    }
    let window = skew_window_ms(service);
    let minutes = window / 60_000;
    let message = if late {
        format!(
            "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
            amz_date(signed),
            amz_date(now.plus_ms(-window)),
            amz_date(now)
        )
    } else {
        format!(
            "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
            amz_date(signed),
            amz_date(now.plus_ms(window)),
            amz_date(now)
        )
    };
    ApiError::new("SignatureDoesNotMatch", message).with_status(403)
}

/// Checks the request time against `now`; returns `X-Amz-Date` as sent.
fn check_time(p: &Presented, now: Timestamp) -> ApiResult<String> {
    let sent = p
        .amz_date
        .clone()
        .ok_or_else(|| incomplete("X-Amz-Date is missing."))?;
    let signed = parse_amz_date(&sent).ok_or_else(|| {
        incomplete(format!(
            "X-Amz-Date '{sent}' must be in the ISO 8601 basic format YYYYMMDD'T'HHMMSS'Z'."
        ))
    })?;
    if !sent.starts_with(&p.credential.date) || p.credential.date.len() != 8 {
        return Err(ApiError::new(
            "SignatureDoesNotMatch",
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{sent}'.",
                p.credential.date,
                &sent[..8]
            ),
        )
        .with_status(403));
    }
    let service = p.credential.service.as_str();
    let window = skew_window_ms(service);
    if signed > now.plus_ms(window) {
        return Err(time_error(service, false, signed, now));
    }
    // How long the signature lives: the window, or a presigned URL's own lifetime.
    let lifetime_ms = if p.presigned {
        let expires = p
            .expires
            .as_deref()
            .and_then(|e| e.parse::<i64>().ok())
            .filter(|e| (1..=MAX_PRESIGN_EXPIRES).contains(e))
            .ok_or_else(|| {
                ApiError::new(
                    "AuthorizationQueryParametersError",
                    format!(
                        "X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGN_EXPIRES}."
                    ),
                )
            })?;
        expires * 1000 + window
    } else {
        window
    };
    if now > signed.plus_ms(lifetime_ms) {
        return Err(time_error(service, true, signed, now));
    }
    Ok(sent)
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

/// The body a signature covers.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// The bytes as received.
    Bytes(&'a [u8]),
    /// Only the hex SHA-256 of a body that was hashed while it streamed to disk; `None`
    /// when the receiver knew the hash would not be needed (open mode, or an S3
    /// `UNSIGNED-PAYLOAD` or `STREAMING-…` request). A hash that is needed but missing
    /// fails verification rather than being skipped.
    Sha256Hex(Option<&'a str>),
}

impl Payload<'_> {
    fn sha256_hex(self) -> Option<String> {
        match self {
            Payload::Bytes(b) => Some(sha256_hex(b)),
            Payload::Sha256Hex(h) => h.map(str::to_string),
        }
    }
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
/// `X-Amz-Signature` is left out when `presigned` (the signature cannot sign itself).
fn canonical_query(query: Option<&str>, presigned: bool) -> String {
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
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The signature a request should carry (AWS "Signature Version 4 signing process":
/// canonical request, string to sign, derived signing key).
fn expected_signature(
    req: &SignedRequest,
    body: Payload<'_>,
    signed_headers: &str,
    presigned: bool,
    cred: &Credential,
    amz_date: &str,
    secret: &str,
) -> String {
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
    let path = if req.path.is_empty() {
        "/"
    } else {
        req.path.as_str()
    };
    let s3 = cred.service == "s3";
    // Always the hash of the body received (see the module documentation), except for
    // S3, whose clients may sign `UNSIGNED-PAYLOAD` or a streaming form: there the
    // header's value is what was signed (a hex hash was already checked against the
    // body by `check_s3_payload`), and a presigned URL signs `UNSIGNED-PAYLOAD`.
    let payload_hash = if s3 && presigned {
        "UNSIGNED-PAYLOAD".to_string()
    } else if s3 {
        req.header_values("x-amz-content-sha256")
            .first()
            .map_or_else(|| body.sha256_hex().unwrap_or_default(), |v| v.to_string())
    } else {
        body.sha256_hex().unwrap_or_default()
    };
    // Non-S3 services encode the (already encoded) path once more; S3 signs it as sent.
    let canonical_uri = if s3 {
        path.to_string()
    } else {
        uri_encode(path.as_bytes(), true)
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri,
        canonical_query(req.query.as_deref(), presigned),
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
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// Verifies a SigV4 signature.
fn verify(
    req: &SignedRequest,
    body: Payload<'_>,
    p: &Presented,
    amz_date: &str,
    secret: &str,
) -> ApiResult<()> {
    let (Some(signed_headers), Some(signature)) = (&p.signed_headers, &p.signature) else {
        return Err(incomplete("The request signature is incomplete."));
    };
    let expected = expected_signature(
        req,
        body,
        signed_headers,
        p.presigned,
        &p.credential,
        amz_date,
        secret,
    );
    if constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        )
        .with_status(403))
    }
}

/// Compares without an early exit, so timing does not reveal how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs a request the way the aws CLI does (an `Authorization` header over every header
/// present plus `x-amz-date`, payload hash of `body`). The client side of this module,
/// for tests of strict mode and for fuzzing the verifier.
pub fn sign(
    req: &mut SignedRequest,
    body: &[u8],
    key: &AccessKey,
    region: &str,
    service: &str,
    now: Timestamp,
) {
    let amz = amz_date(now);
    req.headers
        .retain(|(k, _)| k != "authorization" && k != "x-amz-date");
    req.headers.push(("x-amz-date".into(), amz.clone()));
    let mut names: Vec<String> = req.headers.iter().map(|(k, _)| k.clone()).collect();
    names.sort();
    names.dedup();
    let signed_headers = names.join(";");
    let cred = Credential {
        access_key: key.access_key.clone(),
        date: amz[..8].to_string(),
        region: region.to_string(),
        service: service.to_string(),
    };
    let signature = expected_signature(
        req,
        Payload::Bytes(body),
        &signed_headers,
        false,
        &cred,
        &amz,
        &key.secret_key,
    );
    req.headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{}/{region}/{service}/aws4_request, SignedHeaders={signed_headers}, Signature={signature}",
            key.access_key, cred.date
        ),
    ));
}

/// Presigns a GET the way botocore's `generate_presigned_url` does for a Query service:
/// the `X-Amz-*` parameters appended to the query, `host` the one signed header.
pub fn presign(
    req: &mut SignedRequest,
    key: &AccessKey,
    region: &str,
    service: &str,
    now: Timestamp,
    expires_secs: i64,
) {
    let amz = amz_date(now);
    let cred = Credential {
        access_key: key.access_key.clone(),
        date: amz[..8].to_string(),
        region: region.to_string(),
        service: service.to_string(),
    };
    let scope = format!(
        "{}/{}/{}/{}/aws4_request",
        cred.access_key, cred.date, region, service
    );
    let extra = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={amz}&X-Amz-Expires={expires_secs}&X-Amz-SignedHeaders=host",
        uri_encode(scope.as_bytes(), false)
    );
    req.query = Some(match req.query.take().filter(|q| !q.is_empty()) {
        Some(q) => format!("{q}&{extra}"),
        None => extra,
    });
    let signature = expected_signature(
        req,
        Payload::Bytes(b""),
        "host",
        true,
        &cred,
        &amz,
        &key.secret_key,
    );
    if let Some(q) = req.query.as_mut() {
        q.push_str(&format!("&X-Amz-Signature={signature}"));
    }
}

#[cfg(test)]
mod verify_tests {
    use super::*;

    /// 2015-08-30T12:36:00Z, the time of AWS's documented example.
    const EXAMPLE_NOW: Timestamp = Timestamp(1_440_938_160_000);
    const MINUTE: i64 = 60_000;

    fn example_request() -> SignedRequest {
        SignedRequest {
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
        }
    }

    fn alice() -> AccessKey {
        AccessKey {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            account: "111122223333".into(),
        }
    }

    fn strict() -> AuthMode {
        AuthMode::strict(KeyFile {
            keys: vec![alice()],
        })
    }

    /// An EC2 Query POST as the aws CLI sends it, signed at `at`.
    fn ec2_post(body: &[u8], at: Timestamp) -> SignedRequest {
        let mut req = SignedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: None,
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                ),
                ("host".into(), "127.0.0.1:4566".into()),
            ],
        };
        sign(&mut req, body, &alice(), "us-east-1", "ec2", at);
        req
    }

    /// AWS's documented example ("Create a signature", IAM ListUsers GET request) with
    /// its published signature.
    #[test]
    fn aws_documented_example_signature_verifies() {
        let auth = strict();
        let req = example_request();
        let id = auth
            .authenticate(&req, b"", EXAMPLE_NOW)
            .expect("the documented signature verifies");
        assert_eq!(id.account, "111122223333");

        let mut tampered = req.clone();
        tampered.query = Some("Action=ListUsers&Version=2010-05-09".into());
        assert_eq!(
            auth.authenticate(&tampered, b"", EXAMPLE_NOW)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );

        let mut unknown = req;
        unknown.headers[3].1 = unknown.headers[3].1.replace("AKIDEXAMPLE", "AKIDOTHER");
        assert_eq!(
            auth.authenticate(&unknown, b"", EXAMPLE_NOW)
                .unwrap_err()
                .code,
            "AuthFailure"
        );
    }

    /// A store of temporary credentials, as STS issues them.
    struct Sessions(AccessKey, Timestamp);

    impl KeyStore for Sessions {
        fn find(&self, access_key: &str) -> Option<KeyRecord> {
            (access_key == self.0.access_key).then(|| KeyRecord {
                secret_key: self.0.secret_key.clone(),
                account: self.0.account.clone(),
                principal: Principal::AssumedRole {
                    role: "auditor".into(),
                    session: "s1".into(),
                },
                session_token: Some("TOKEN-1".into()),
                expires: Some(self.1),
            })
        }
    }

    /// Keys from a store work like fixed ones, carry their principal, need their session
    /// token, and stop at expiry; the fixed keys still work beside them.
    #[test]
    fn stored_temporary_credentials_need_their_token_and_expire() {
        let temp = AccessKey {
            access_key: "ASIATEMP".into(),
            secret_key: "temporary-secret".into(),
            account: "444455556666".into(),
        };
        let expires = Timestamp(EXAMPLE_NOW.0 + 60 * MINUTE);
        let auth = AuthMode::Strict(std::sync::Arc::new(
            KeyRing::new(KeyFile {
                keys: vec![alice()],
            })
            .with_store(std::sync::Arc::new(Sessions(temp.clone(), expires))),
        ));
        let body = b"Action=DescribeVpcs&Version=2016-11-15";
        let request = |token: Option<&str>, at: Timestamp| {
            let mut req = ec2_post(body, at);
            req.headers.retain(|(k, _)| k != "authorization");
            if let Some(t) = token {
                req.headers.push(("x-amz-security-token".into(), t.into()));
            }
            sign(&mut req, body, &temp, "us-east-1", "ec2", at);
            req
        };
        let id = auth
            .authenticate(&request(Some("TOKEN-1"), EXAMPLE_NOW), body, EXAMPLE_NOW)
            .expect("a session with its token");
        assert_eq!(id.account, "444455556666");
        assert_eq!(
            id.principal,
            Principal::AssumedRole {
                role: "auditor".into(),
                session: "s1".into()
            }
        );
        for token in [None, Some("TOKEN-2")] {
            let err = auth
                .authenticate(&request(token, EXAMPLE_NOW), body, EXAMPLE_NOW)
                .unwrap_err();
            assert_eq!(err.code, "AuthFailure", "token {token:?}");
        }
        let later = Timestamp(expires.0 + MINUTE);
        let err = auth
            .authenticate(&request(Some("TOKEN-1"), later), body, later)
            .unwrap_err();
        assert_eq!(err.code, "ExpiredToken");
        let root = auth
            .authenticate(&ec2_post(body, EXAMPLE_NOW), body, EXAMPLE_NOW)
            .expect("the fixed key");
        assert_eq!(
            (root.account.as_str(), root.principal),
            ("111122223333", Principal::Root)
        );
    }

    #[test]
    fn the_signer_agrees_with_the_documented_example() {
        let mut req = example_request();
        req.headers.truncate(2);
        sign(&mut req, b"", &alice(), "us-east-1", "iam", EXAMPLE_NOW);
        assert_eq!(req.authorization(), example_request().authorization());
    }

    /// Issue 10: a header outside SignedHeaders must not stand in for the body's hash,
    /// or a captured request replays with any body.
    #[test]
    fn issue10_unsigned_payload_hash_header_cannot_swap_the_body() {
        let auth = strict();
        let body = b"Action=DescribeVpcs&Version=2016-11-15";
        let req = ec2_post(body, EXAMPLE_NOW);
        auth.authenticate(&req, body, EXAMPLE_NOW)
            .expect("the request as signed verifies");

        let evil = b"Action=DeleteVpc&VpcId=vpc-1&Version=2016-11-15";
        let mut replay = req.clone();
        replay
            .headers
            .push(("x-amz-content-sha256".into(), sha256_hex(body)));
        assert_eq!(
            auth.authenticate(&replay, evil, EXAMPLE_NOW)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            auth.authenticate(&replay, body, EXAMPLE_NOW)
                .expect("an unsigned header is just a header")
                .account,
            "111122223333"
        );
    }

    /// Issue 10: a signed `x-amz-content-sha256` binds the body it names, and only that
    /// body; `UNSIGNED-PAYLOAD` is S3's, not EC2's or Route 53's.
    #[test]
    fn issue10_signed_payload_hash_header_binds_the_body() {
        let auth = strict();
        let body = b"Action=DescribeVpcs&Version=2016-11-15";
        let signed_with = |hash: String| {
            let mut req = SignedRequest {
                method: "POST".into(),
                path: "/".into(),
                query: None,
                headers: vec![
                    ("host".into(), "127.0.0.1:4566".into()),
                    ("x-amz-content-sha256".into(), hash.clone()),
                ],
            };
            // Sign the way a client trusting the header would: the header's value as the
            // canonical payload hash.
            let amz = amz_date(EXAMPLE_NOW);
            req.headers.push(("x-amz-date".into(), amz.clone()));
            let cred = Credential {
                access_key: "AKIDEXAMPLE".into(),
                date: amz[..8].into(),
                region: "us-east-1".into(),
                service: "ec2".into(),
            };
            let names = "host;x-amz-content-sha256;x-amz-date";
            let canonical = format!(
                "POST\n/\n\nhost:127.0.0.1:4566\nx-amz-content-sha256:{hash}\nx-amz-date:{amz}\n\n{names}\n{hash}"
            );
            let to_sign = format!(
                "AWS4-HMAC-SHA256\n{amz}\n{}/us-east-1/ec2/aws4_request\n{}",
                cred.date,
                sha256_hex(canonical.as_bytes())
            );
            let k = hmac(
                format!("AWS4{}", alice().secret_key).as_bytes(),
                cred.date.as_bytes(),
            );
            let k = hmac(&hmac(&hmac(&k, b"us-east-1"), b"ec2"), b"aws4_request");
            let sig = hex::encode(hmac(&k, to_sign.as_bytes()));
            req.headers.push((
                "authorization".into(),
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{}/us-east-1/ec2/aws4_request, SignedHeaders={names}, Signature={sig}", cred.date),
            ));
            req
        };
        let honest = signed_with(sha256_hex(body));
        auth.authenticate(&honest, body, EXAMPLE_NOW)
            .expect("a signed header naming the real body's hash verifies");
        assert_eq!(
            auth.authenticate(&honest, b"Action=DeleteVpc", EXAMPLE_NOW)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch",
            "another body than the signed hash names"
        );
        let unsigned = signed_with("UNSIGNED-PAYLOAD".into());
        assert_eq!(
            auth.authenticate(&unsigned, body, EXAMPLE_NOW)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch",
            "UNSIGNED-PAYLOAD is not accepted for EC2"
        );
    }

    /// Issue 10: requests outside the service's window of the server clock are refused
    /// as AWS refuses them (EC2: RequestExpired; Route 53: SignatureDoesNotMatch with
    /// "Signature expired" or "Signature not yet current").
    #[test]
    fn issue10_requests_signed_outside_the_time_window_are_refused() {
        let auth = strict();
        let body = b"Action=DescribeVpcs&Version=2016-11-15";
        let at = |offset_min: i64| EXAMPLE_NOW.plus_ms(offset_min * MINUTE);
        for ok in [-14, 0, 14] {
            auth.authenticate(&ec2_post(body, at(ok)), body, EXAMPLE_NOW)
                .unwrap_or_else(|e| panic!("{ok} minutes is inside EC2's window: {e}"));
        }
        for late in [-16, 16, -60 * 24 * 365 * 5] {
            let e = auth
                .authenticate(&ec2_post(body, at(late)), body, EXAMPLE_NOW)
                .unwrap_err();
            assert_eq!(
                (e.code.as_ref(), e.message.as_str(), e.status),
                ("RequestExpired", "Request has expired.", 400),
                "{late} minutes"
            );
        }

        let route53 = |offset_min: i64| {
            let mut req = SignedRequest {
                method: "GET".into(),
                path: "/2013-04-01/hostedzone".into(),
                query: None,
                headers: vec![("host".into(), "127.0.0.1:4566".into())],
            };
            sign(
                &mut req,
                b"",
                &alice(),
                "us-east-1",
                "route53",
                at(offset_min),
            );
            auth.authenticate(&req, b"", EXAMPLE_NOW)
        };
        route53(-4).expect("inside Route 53's five minutes");
        let e = route53(-6).unwrap_err();
        assert_eq!((e.code.as_ref(), e.status), ("SignatureDoesNotMatch", 403));
        assert_eq!(
            e.message,
            "Signature expired: 20150830T123000Z is now earlier than 20150830T123100Z (20150830T123600Z - 5 min.)"
        );
        let e = route53(6).unwrap_err();
        assert!(
            e.message
                .starts_with("Signature not yet current: 20150830T124200Z"),
            "{}",
            e.message
        );
    }

    #[test]
    fn issue10_credential_scope_must_name_the_day_of_x_amz_date() {
        let auth = strict();
        let mut req = ec2_post(b"", EXAMPLE_NOW);
        for (k, v) in req.headers.iter_mut() {
            if k == "authorization" {
                *v = v.replace("/20150830/", "/20150829/");
            }
        }
        let e = auth.authenticate(&req, b"", EXAMPLE_NOW).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        assert!(e.message.contains("Credential scope"), "{}", e.message);
    }

    /// Issue 10: presigned URLs are verified, and honour X-Amz-Expires.
    #[test]
    fn issue10_presigned_urls_honour_x_amz_expires() {
        let auth = strict();
        let url = |expires: i64| {
            let mut req = SignedRequest {
                method: "GET".into(),
                path: "/".into(),
                query: Some("Action=DescribeVpcs&Version=2016-11-15".into()),
                headers: vec![("host".into(), "127.0.0.1:4566".into())],
            };
            presign(&mut req, &alice(), "us-east-1", "ec2", EXAMPLE_NOW, expires);
            req
        };
        let req = url(3600);
        let id = auth
            .authenticate(&req, b"", EXAMPLE_NOW.plus_ms(30 * MINUTE))
            .expect("a presigned URL inside its lifetime verifies");
        assert_eq!(id.credential.service, "ec2");
        // EC2's Common Errors: expired once more than 15 minutes past its expiry.
        auth.authenticate(&req, b"", EXAMPLE_NOW.plus_ms(74 * MINUTE))
            .expect("inside the 15-minute allowance after expiry");
        assert_eq!(
            auth.authenticate(&req, b"", EXAMPLE_NOW.plus_ms(76 * MINUTE))
                .unwrap_err()
                .code,
            "RequestExpired"
        );
        assert_eq!(
            auth.authenticate(&req, b"", EXAMPLE_NOW.plus_ms(-16 * MINUTE))
                .unwrap_err()
                .code,
            "RequestExpired",
            "not yet valid"
        );

        let mut tampered = req.clone();
        tampered.query = tampered
            .query
            .map(|q| q.replace("X-Amz-Expires=3600", "X-Amz-Expires=604800"));
        assert_eq!(
            auth.authenticate(&tampered, b"", EXAMPLE_NOW.plus_ms(76 * MINUTE))
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch",
            "the lifetime is signed"
        );
        for bad in [0, 604_801] {
            assert_eq!(
                auth.authenticate(&url(bad), b"", EXAMPLE_NOW)
                    .unwrap_err()
                    .code,
                "AuthorizationQueryParametersError",
                "{bad}"
            );
        }
    }

    #[test]
    fn open_mode_takes_any_well_formed_credentials_at_any_time() {
        let req = ec2_post(b"", Timestamp(0));
        let id = AuthMode::Open
            .authenticate(&req, b"", EXAMPLE_NOW)
            .expect("open mode checks no time");
        assert_eq!(id.account, crate::model::DEFAULT_ACCOUNT);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        /// `Authorization` values near the real shape, so parsing goes past the prefix.
        fn authorization() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                (
                    "[A-Z0-9]{0,20}",
                    "[0-9]{0,9}",
                    "[a-z0-9-]{0,12}",
                    "(ec2|route53|iam|s3|)",
                    "(aws4_request|x|)",
                    "[a-z;-]{0,30}",
                    "[0-9a-f]{0,64}",
                )
                    .prop_map(|(k, d, r, s, t, h, sig)| format!(
                        "AWS4-HMAC-SHA256 Credential={k}/{d}/{r}/{s}/{t}, SignedHeaders={h}, Signature={sig}"
                    )),
            ]
        }

        fn request() -> impl Strategy<Value = SignedRequest> {
            (
                "(GET|POST|DELETE|)",
                any::<String>(),
                proptest::option::of(prop_oneof![
                    any::<String>(),
                    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F[0-9]{8}%2Fus-east-1%2Fec2%2Faws4_request&X-Amz-Date=[0-9T]{0,17}Z?&X-Amz-Expires=-?[0-9]{0,12}&X-Amz-SignedHeaders=host&X-Amz-Signature=[0-9a-f]{0,64}",
                ]),
                proptest::collection::vec(
                    (
                        "(authorization|x-amz-date|host|x-amz-content-sha256|[a-z-]{1,8})",
                        prop_oneof![any::<String>(), authorization(), "[0-9]{8}T[0-9]{6}Z"],
                    ),
                    0..6,
                ),
            )
                .prop_map(|(method, path, query, headers)| SignedRequest {
                    method,
                    path,
                    query,
                    headers,
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn header_parsing_never_panics(h in authorization(), d in any::<String>()) {
                let _ = parse_authorization(&h);
                if let Some(t) = parse_amz_date(&d) {
                    prop_assert_eq!(amz_date(t), d);
                }
            }

            /// Any request, at any server time, in either mode: an answer, never a panic.
            #[test]
            fn authentication_never_panics(
                req in request(),
                body in proptest::collection::vec(any::<u8>(), 0..64),
                now in any::<i64>(),
            ) {
                let _ = strict().authenticate(&req, &body, Timestamp(now));
                let _ = AuthMode::Open.authenticate(&req, &body, Timestamp(now));
            }

            /// What the signer signs, the verifier accepts; any other body it refuses.
            #[test]
            fn signed_requests_verify_and_only_with_their_body(
                method in "(GET|POST|DELETE)",
                path in "(/[a-zA-Z0-9%._~-]{0,12}){1,3}",
                query in proptest::option::of("[a-zA-Z0-9=&%+._~-]{0,40}"),
                headers in proptest::collection::vec(("[a-z][a-z-]{0,8}", "[ -~]{0,20}"), 0..4),
                body in proptest::collection::vec(any::<u8>(), 0..64),
                offset_ms in -14 * MINUTE..14 * MINUTE,
            ) {
                let mut req = SignedRequest { method, path, query, headers };
                sign(&mut req, &body, &alice(), "us-east-1", "ec2", EXAMPLE_NOW.plus_ms(offset_ms));
                let auth = strict();
                prop_assert!(auth.authenticate(&req, &body, EXAMPLE_NOW).is_ok());
                let mut other = body.clone();
                other.push(b'!');
                prop_assert!(auth.authenticate(&req, &other, EXAMPLE_NOW).is_err());
            }
        }
    }
}
