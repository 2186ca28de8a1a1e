//! Amazon S3's REST-XML protocol: addressing, the operations, and their XML.
//!
//! A request names its bucket in the Host (`BUCKET.s3.localhost:PORT`,
//! `BUCKET.s3.REGION.amazonaws.com`: virtual-hosted style) or in the first path segment
//! (`/BUCKET/KEY`: path style, what the CLI uses with `--endpoint-url`). The operation is
//! the method plus the sub-resource in the query string (`?versioning`, `?uploads`,
//! `?tagging` …), as in the S3 API reference. Website endpoints
//! (`BUCKET.s3-website-REGION.localhost`) are served by [`website`].
//!
//! Bytes go to the [`blob::BlobStore`] before the metadata commit; blobs a commit frees
//! are deleted after it. An upload's body is written to its blob as it arrives, its
//! digests computed on the way (MD5 for the ETag, on a thread beside the receiving one
//! for large bodies; SHA-256 when a signature covers it; the `x-amz-checksum-*` the
//! client sent, in [`checksum`]), and an object
//! is sent from its file in large pieces: neither direction holds an object whole.
//! Requests are authenticated by the same SigV4 code as every service (`api::sigv4`,
//! which knows S3's unsigned and streaming payloads); `aws-chunked` bodies are decoded
//! here.
//!
//! Cross-origin requests follow the bucket's CORS rules ([`cors`]): a preflight
//! (`OPTIONS`) is answered before authentication, and an allowed `Origin` gets the
//! `Access-Control-*` headers on every answer.
//!
//! Replication (Put/Get/DeleteBucketReplication) is parsed in [`replication`]; the
//! replicas are made in the same commit as the write that a rule selects.
//!
//! Storage classes are kept per version (`x-amz-storage-class`); archived ones refuse
//! GetObject and CopyObject until a RestoreObject (`POST ?restore`) completes, which the
//! model times from the clock ([`crate::model::s3::class`]).
//!
//! What the clock makes due (lifecycle actions, the end of restores) is carried out by
//! the daemon's [`sweep`] every few seconds, and by a request naming the bucket before
//! it is answered.
//!
//! Not emulated (docs/fidelity.md): ACLs beyond `private`, encryption settings, object
//! lock, requester pays, SigV2.

pub mod blob;
mod checksum;
pub mod cors;
pub mod etag_md5;
mod lifecycle;
mod notify;
mod replication;
pub mod sweep;
pub mod website;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use md5::Digest as _;

use super::AppState;
use super::xml::{Xml, escape, read as xml_read};
use crate::model::s3::{self as m, NewVersion, S3Object, Version};
use crate::model::{ApiError, ApiResult, Env, Timestamp, World};

/// Largest body of one request (PutObject, UploadPart). AWS allows 5 GB in one PUT;
/// vpclab streams a plain upload to disk but gathers `aws-chunked` ones and every XML
/// body in memory, so one bound for all, and larger objects go through multipart
/// uploads (which `aws s3 cp` uses from 8 MiB on).
pub const MAX_OBJECT_BODY: usize = 256 * 1024 * 1024;

const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// How the Host header addresses S3.
#[derive(Debug, PartialEq, Eq)]
pub enum HostKind {
    /// `BUCKET.s3-website-REGION.…` or `BUCKET.s3-website.REGION.…`.
    Website { bucket: String, region: String },
    /// `BUCKET.s3.…`: virtual-hosted style.
    Bucket(String),
    /// Anything else: path style.
    Plain,
}

/// Classifies a Host header value (port ignored). Endpoint domains: `localhost` (the
/// learner's machine) and `amazonaws.com` (inside the world).
pub fn classify_host(host: &str) -> HostKind {
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host
        .strip_suffix(".localhost")
        .or_else(|| host.strip_suffix(".amazonaws.com"));
    let Some(rest) = rest else {
        return HostKind::Plain;
    };
    // Website: the label `s3-website-REGION` or `s3-website` followed by `.REGION`.
    if let Some(pos) = rest.find(".s3-website") {
        let bucket = &rest[..pos];
        let tail = &rest[pos + ".s3-website".len()..];
        let region = tail
            .strip_prefix('-')
            .or_else(|| tail.strip_prefix('.'))
            .unwrap_or("");
        if !bucket.is_empty() && !region.is_empty() && !region.contains('.') {
            return HostKind::Website {
                bucket: bucket.to_string(),
                region: region.to_string(),
            };
        }
    }
    if let Some(pos) = rest.rfind(".s3") {
        let tail = &rest[pos + 3..];
        // `.s3`, `.s3.REGION`, `.s3-REGION` (legacy).
        if tail.is_empty() || tail.starts_with('.') || tail.starts_with('-') {
            let bucket = &rest[..pos];
            if !bucket.is_empty() {
                return HostKind::Bucket(bucket.to_string());
            }
        }
    }
    HostKind::Plain
}

/// Whether a request is for S3 by its Host alone (virtual-hosted or website); the router
/// asks this before anything else.
pub fn is_s3_host(headers: &HeaderMap) -> bool {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| classify_host(h) != HostKind::Plain)
}

/// Whether a query string is an S3 presigned URL in the SigV2 form botocore still
/// generates by default (`AWSAccessKeyId`, `Signature`, `Expires`).
pub fn is_sigv2_presigned(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        let mut names = form_urlencoded::parse(q.as_bytes()).map(|(k, _)| k);
        let names: Vec<_> = names.by_ref().collect();
        ["AWSAccessKeyId", "Signature", "Expires"]
            .iter()
            .all(|n| names.iter().any(|k| k == n))
    })
}

/// Authenticates a SigV2 presigned URL (S3 "Authenticating requests: query string
/// alternative"): expired URLs are refused in every auth mode; in strict mode the
/// HMAC-SHA1 signature over `METHOD\n\n\nEXPIRES\n/BUCKET/KEY` is verified.
fn authenticate_sigv2(
    state: &AppState,
    parts: &axum::http::request::Parts,
    query: &BTreeMap<String, String>,
) -> ApiResult<String> {
    let denied = |m: &str| ApiError::new("AccessDenied", m.to_string()).with_status(403);
    let expires: i64 = query
        .get("Expires")
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| denied("Invalid date (should be seconds since epoch)"))?;
    if (state.clock)().0 > expires * 1000 {
        return Err(denied("Request has expired"));
    }
    match &state.auth {
        super::sigv4::AuthMode::Open => Ok(crate::model::DEFAULT_ACCOUNT.to_string()),
        super::sigv4::AuthMode::Strict(keys) => {
            use hmac::Mac;
            let key = query
                .get("AWSAccessKeyId")
                .and_then(|k| keys.find(k))
                .ok_or_else(|| {
                    ApiError::new(
                        "InvalidAccessKeyId",
                        "The AWS Access Key Id you provided does not exist in our records.",
                    )
                    .with_status(403)
                })?;
            // The canonical resource: the path as sent, plus the sub-resources and
            // response overrides that were signed.
            let mut resource = parts.uri.path().to_string();
            let signed: Vec<String> = query
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("response-")
                        || matches!(
                            k.as_str(),
                            "versionId" | "uploadId" | "partNumber" | "tagging" | "acl"
                        )
                })
                .map(|(k, v)| {
                    if v.is_empty() {
                        k.clone()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect();
            if !signed.is_empty() {
                resource.push('?');
                resource.push_str(&signed.join("&"));
            }
            let header = |n: &str| {
                parts
                    .headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let to_sign = format!(
                "{}\n{}\n{}\n{expires}\n{resource}",
                parts.method,
                header("content-md5"),
                header("content-type")
            );
            let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key.secret_key.as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(to_sign.as_bytes());
            let expected =
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            if query.get("Signature").map(String::as_str) != Some(expected.as_str()) {
                return Err(ApiError::new(
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
                )
                .with_status(403));
            }
            Ok(key.account.clone())
        }
    }
}

/// A SigV4 presigned URL past `X-Amz-Date + X-Amz-Expires` is refused in every auth
/// mode (strict mode's own check also covers the clock skew).
fn check_sigv4_expiry(state: &AppState, query: &BTreeMap<String, String>) -> ApiResult<()> {
    let (Some(date), Some(expires)) = (query.get("X-Amz-Date"), query.get("X-Amz-Expires")) else {
        return Ok(());
    };
    let signed = super::sigv4::parse_amz_date(date);
    let expires: Option<i64> = expires.parse().ok();
    if let (Some(signed), Some(expires)) = (signed, expires)
        && (state.clock)() > signed.plus_ms(expires * 1000)
    {
        return Err(ApiError::new("AccessDenied", "Request has expired").with_status(403));
    }
    Ok(())
}

/// One parsed S3 request.
struct S3Req {
    method: String,
    bucket: Option<String>,
    key: Option<String>,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
    body: Vec<u8>,
    /// An upload's body, already in a staged blob (then `body` is empty): see
    /// [`streams_to_blob`].
    upload: Option<blob::Received>,
}

impl S3Req {
    fn has(&self, sub: &str) -> bool {
        self.query.contains_key(sub)
    }
    fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn bucket(&self) -> &str {
        self.bucket.as_deref().unwrap_or("")
    }
    fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("")
    }
}

/// A response under construction.
struct Out {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// An object's bytes, sent from its blob instead of `body` (GetObject).
    blob: Option<blob::BlobReader>,
}

impl Out {
    fn empty(status: u16) -> Out {
        Out {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            blob: None,
        }
    }
    fn xml(root: &str, f: impl FnOnce(&mut Xml)) -> Out {
        let mut x = Xml::new();
        f(&mut x);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{XMLNS}\">{}</{root}>",
            x.finish()
        );
        Out {
            status: 200,
            headers: vec![("content-type".into(), "application/xml".into())],
            body: body.into_bytes(),
            blob: None,
        }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Out {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

fn malformed_xml() -> ApiError {
    ApiError::new(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn parse_xml(body: &[u8]) -> ApiResult<xml_read::Element> {
    xml_read::parse(body).map_err(|_| malformed_xml())
}

/// The HTTP date of Last-Modified (`Tue, 01 Dec 2026 16:26:02 GMT`).
pub fn http_date(ms: i64) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

fn iso(ms: i64) -> String {
    Timestamp(ms).iso()
}

/// Percent-encodes a key for `encoding-type=url` listings.
fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// The trailing headers of an `aws-chunked` body: (lower-case name, value).
type Trailers = Vec<(String, String)>;

/// Decodes an `aws-chunked` body (`SIZE[;chunk-signature=…]\r\nDATA\r\n … 0\r\n
/// trailers\r\n\r\n`) into the data and its trailing headers (`name:value` lines, such
/// as the `x-amz-checksum-crc32` an SDK computed while sending). Chunk and trailer
/// signatures are not verified (docs/fidelity.md).
fn decode_aws_chunked(body: &[u8]) -> ApiResult<(Vec<u8>, Trailers)> {
    let bad = || {
        ApiError::new(
            "IncompleteBody",
            "The request body is not valid aws-chunked encoding.",
        )
    };
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad())?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad())?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            let trailers = String::from_utf8_lossy(rest)
                .split("\r\n")
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            return Ok((out, trailers));
        }
        if rest.len() < size + 2 {
            return Err(bad());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

impl AppState {
    fn blobs(&self) -> ApiResult<&Arc<blob::BlobStore>> {
        self.objects.as_ref().ok_or_else(|| {
            ApiError::new(
                "ServiceUnavailable",
                "This vpclab server has no object store.",
            )
            .with_status(503)
        })
    }
}

/// The router's entry point for S3 requests.
pub async fn endpoint(state: AppState, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let request_id = state.request_id();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let HostKind::Website { bucket, .. } = classify_host(&host) {
        return website::serve(&state, &bucket, &parts, &host, &request_id).await;
    }
    let is_head = parts.method == axum::http::Method::HEAD;
    let signed = super::signed_request(&parts);
    let (bucket, key) = match classify_host(&host) {
        HostKind::Bucket(b) => {
            let key = decode_path(parts.uri.path().trim_start_matches('/'));
            (Some(b), (!key.is_empty()).then_some(key))
        }
        _ => {
            let path = parts.uri.path().trim_start_matches('/');
            match path.split_once('/') {
                None if path.is_empty() => (None, None),
                None => (Some(decode_path(path)), None),
                Some((b, k)) => {
                    let k = decode_path(k);
                    (Some(decode_path(b)), (!k.is_empty()).then_some(k))
                }
            }
        }
    };
    // A CORS preflight is answered from the bucket's rules alone, before (and without)
    // authentication: browsers send it without credentials ("Appendix: OPTIONS object").
    if parts.method == axum::http::Method::OPTIONS {
        return cors::preflight(
            &state,
            bucket.as_deref(),
            key.as_deref(),
            &parts.headers,
            &request_id,
        );
    }
    // The bucket whose CORS rules decorate the answer, when the request has an Origin.
    let cors_bucket = bucket
        .clone()
        .filter(|_| parts.headers.contains_key(header::ORIGIN));
    // The account the request ran as, once authenticated.
    let mut served_as: Option<String> = None;
    let query: BTreeMap<String, String> = form_urlencoded::parse(
        parts
            .uri
            .query()
            .unwrap_or("")
            .replace('+', "%2B")
            .as_bytes(),
    )
    .map(|(k, v)| (k.into_owned(), v.into_owned()))
    .collect();
    let chunked = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"))
        || parts
            .headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("aws-chunked"));
    // An object's bytes go to its blob file as they arrive (hashed on the way); every
    // other body (XML configurations, `aws-chunked` uploads, which are decoded whole)
    // is gathered first.
    let (streamed, bytes) = match state.objects.as_ref() {
        Some(blobs) if !chunked && streams_to_blob(&parts, key.as_deref(), &query) => {
            let staged = checksum::claimed(&parts.headers).map(|claim| blob::StageOptions {
                sha256: needs_payload_hash(&state, &parts),
                // The claimed checksum, or the one S3 adds to an object uploaded without.
                checksum: Some(claim.map_or(checksum::DEFAULT, |c| c.algorithm)),
                md5_beside: declared_length(&parts).is_none_or(|n| n >= blob::MD5_BESIDE_MIN),
            });
            let received = match staged {
                Ok(opts) => receive_to_blob(blobs, &parts, body, opts).await,
                Err(e) => {
                    discard_body(body).await;
                    Err(e)
                }
            };
            match received {
                Ok(r) => (Some(r), bytes::Bytes::new()),
                Err(e) => return error_response(&e, None, &request_id, is_head),
            }
        }
        _ => match axum::body::to_bytes(body, MAX_OBJECT_BODY).await {
            Ok(b) => (None, b),
            Err(_) => return error_response(&too_large(), None, &request_id, is_head),
        },
    };
    let result = async {
        let (account, region) = if is_sigv2_presigned(parts.uri.query()) {
            // SigV2 carries no region: the bucket's own region applies.
            (
                authenticate_sigv2(&state, &parts, &query)?,
                "us-east-1".to_string(),
            )
        } else {
            check_sigv4_expiry(&state, &query)?;
            let unsigned = signed.authorization().is_none()
                && !query.contains_key("X-Amz-Algorithm")
                && !query.contains_key("X-Amz-Credential");
            let payload = match &streamed {
                Some(r) => super::sigv4::Payload::Sha256Hex(r.sha256_hex.as_deref()),
                None => super::sigv4::Payload::Bytes(&bytes),
            };
            let identity = match state.authenticate_payload(&signed, payload) {
                Ok(i) => Some(i),
                // A request without any signature is an anonymous one: only a bucket
                // policy can let it in (decided below).
                Err(e) if e.code == "AuthFailure" && unsigned => None,
                Err(e) if e.code == "AuthFailure" => {
                    return Err(ApiError::new("AccessDenied", "Access Denied").with_status(403));
                }
                Err(e) => return Err(e),
            };
            let (action, resource) = iam_action(
                parts.method.as_str(),
                bucket.as_deref(),
                key.as_deref(),
                &query,
            );
            let creating = action == "s3:CreateBucket";
            let target = {
                let control = state.lock();
                let found = match bucket.as_deref().filter(|_| !creating) {
                    Some(b) => {
                        bucket_owner(&control, identity.as_ref().map(|i| i.account.as_str()), b)
                    }
                    None => None,
                };
                let access = found.as_ref().map(|(owner, w)| {
                    let b = w.buckets.get(bucket.as_deref().unwrap_or_default());
                    (
                        owner.clone(),
                        b.and_then(|b| b.policy.clone()),
                        b.and_then(|b| b.public_access_block.as_ref())
                            .is_some_and(|p| p.restrict_public_buckets),
                        b.map(|b| b.region.clone()),
                    )
                });
                let bucket_access = access.as_ref().map(|(owner, policy, restrict, _)| {
                    crate::api::iam::authz::BucketAccess {
                        owner,
                        policy: policy.as_deref(),
                        restrict_public: *restrict,
                    }
                });
                if identity.is_none() && bucket_access.is_none() {
                    // Anonymous requests name a bucket that must exist somewhere.
                    return Err(match bucket {
                        Some(_) => {
                            ApiError::new("NoSuchBucket", "The specified bucket does not exist")
                                .with_status(404)
                        }
                        None => ApiError::new("AccessDenied", "Access Denied").with_status(403),
                    });
                }
                crate::api::iam::authz::authorize_s3(
                    &control,
                    state.iam_enforce,
                    identity.as_ref(),
                    bucket_access.as_ref(),
                    action,
                    &resource,
                    (state.clock)(),
                    crate::api::iam::source_ip(&signed).as_deref(),
                )
                .map_err(|d| d.query().with_status(403))?;
                if let Some(via) = parts
                    .extensions
                    .get::<crate::model::ec2::vpc_endpoint::ThroughEndpoint>()
                {
                    crate::api::iam::authz::authorize_endpoint(
                        &control,
                        via,
                        identity.as_ref(),
                        action,
                        &resource,
                        (state.clock)(),
                    )
                    .map_err(|d| d.query().with_status(403))?;
                }
                // PutBucketReplication hands the configuration's role to S3: the caller
                // needs iam:PassRole on it ("Setting up permissions for live
                // replication"). A body that does not parse is refused by the handler.
                if parts.method == axum::http::Method::PUT
                    && query.contains_key("replication")
                    && let Some(i) = identity.as_ref()
                    && let Ok(cfg) = replication::parse(&bytes)
                {
                    state
                        .authorize_pass_role(&control, i, &[cfg.role], "s3.amazonaws.com", &signed)
                        .map_err(|d| d.query().with_status(403))?;
                }
                access.map(|(owner, _, _, region)| (owner, region))
            };
            match (identity, target) {
                // Another account's bucket (allowed by both sides): the request runs
                // in the owner's world, in the bucket's region.
                (Some(i), Some((owner, region))) if owner != i.account => {
                    (owner, region.unwrap_or(i.credential.region))
                }
                (Some(i), _) => (i.account, i.credential.region),
                (None, Some((owner, region))) => {
                    (owner, region.unwrap_or_else(|| "us-east-1".to_string()))
                }
                (None, None) => {
                    return Err(ApiError::new("AccessDenied", "Access Denied").with_status(403));
                }
            }
        };
        served_as = Some(account.clone());
        let mut headers = parts.headers.clone();
        let body = if chunked {
            let (body, trailers) = decode_aws_chunked(&bytes)?;
            // A checksum sent as a trailer is checked as if it had been a header.
            for (name, value) in trailers {
                if name.starts_with("x-amz-checksum-")
                    && let (Ok(n), Ok(v)) = (
                        header::HeaderName::from_bytes(name.as_bytes()),
                        header::HeaderValue::from_str(&value),
                    )
                {
                    headers.insert(n, v);
                }
            }
            body
        } else {
            bytes.to_vec()
        };
        let req = S3Req {
            method: parts.method.as_str().to_string(),
            bucket,
            key,
            query,
            headers,
            body,
            upload: streamed,
        };
        let env = Env::new(region, (state.clock)()).with_iam_enforce(state.iam_enforce);
        handle(&state, &account, env, req).await
    }
    .await;
    let mut resp = match result {
        Ok(out) => render(out, &request_id, is_head),
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(code = %e.code, message = %e.message, "S3 internal error");
            }
            error_response(&e, None, &request_id, is_head)
        }
    };
    // An allowed Origin gets the CORS headers on errors too, as S3 answers them.
    if let Some(b) = cors_bucket {
        cors::decorate(
            &state,
            served_as.as_deref(),
            &b,
            &parts.headers,
            parts.method.as_str(),
            &mut resp,
        );
    }
    resp
}

fn too_large() -> ApiError {
    ApiError::new(
        "EntityTooLarge",
        format!(
            "Your proposed upload exceeds the maximum allowed size of one vpclab request ({MAX_OBJECT_BODY} bytes); use a multipart upload."
        ),
    )
}

/// Whether a request uploads object bytes (PutObject, UploadPart) whose body can go
/// straight to a blob: not a copy (its body is empty, its bytes come from the source),
/// not a sub-resource whose body is XML (`?tagging`, `?acl`).
fn streams_to_blob(
    parts: &axum::http::request::Parts,
    key: Option<&str>,
    query: &BTreeMap<String, String>,
) -> bool {
    parts.method == axum::http::Method::PUT
        && key.is_some()
        && !query.contains_key("tagging")
        && !query.contains_key("acl")
        && !parts.headers.contains_key("x-amz-copy-source")
}

/// Whether authentication will need the body's SHA-256: only strict mode verifies
/// payloads, and there only a payload the client hashed (a hex `x-amz-content-sha256`,
/// or none, when the signature covers the body's hash) is checked.
fn needs_payload_hash(state: &AppState, parts: &axum::http::request::Parts) -> bool {
    let claimed = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok());
    matches!(state.auth, super::sigv4::AuthMode::Strict(_))
        && !claimed.is_some_and(|c| c == "UNSIGNED-PAYLOAD" || c.starts_with("STREAMING-"))
}

/// The request's Content-Length, when it has a valid one.
fn declared_length(parts: &axum::http::request::Parts) -> Option<u64> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Receives an upload's body into a staged blob, hashing it on the way (MD5 for the
/// ETag and Content-MD5, and what `opts` asks for), without gathering it in memory.
/// Reads and drops the body of a request refused from its headers alone (at most
/// [`DISCARD_LIMIT`] bytes), so that the client, still sending, reads the error instead
/// of a connection closed under its upload (a broken pipe, or a reset that can lose the
/// answer).
async fn discard_body(mut body: Body) {
    use http_body_util::BodyExt as _;
    let mut seen = 0usize;
    while seen < DISCARD_LIMIT
        && let Some(Ok(frame)) = body.frame().await
    {
        seen += frame.data_ref().map_or(0, |d| d.len());
    }
}

/// How much of a refused upload [`discard_body`] reads before giving up on it.
const DISCARD_LIMIT: usize = 64 << 20;

async fn receive_to_blob(
    blobs: &blob::BlobStore,
    parts: &axum::http::request::Parts,
    mut body: Body,
    opts: blob::StageOptions,
) -> ApiResult<blob::Received> {
    use http_body_util::BodyExt as _;
    if declared_length(parts).is_some_and(|n| n > MAX_OBJECT_BODY as u64) {
        return Err(too_large());
    }
    let mut staged = blobs.stage(opts)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ApiError::new(
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if staged.size() + data.len() as u64 > MAX_OBJECT_BODY as u64 {
                return Err(too_large());
            }
            staged.push(data).await?;
        }
    }
    staged.finish().await
}

/// The account whose world holds `bucket`: the caller's own when it has one by that
/// name, otherwise the other account that has it, reached cross-account. Bucket names
/// are global ([`crate::model::Control::create_bucket`]); only state from before they
/// were can hold one name in several accounts, and then the caller's comes first, then
/// the first in account order.
fn bucket_owner(
    control: &crate::model::Control,
    caller: Option<&str>,
    bucket: &str,
) -> Option<(String, std::sync::Arc<crate::model::World>)> {
    if let Some(c) = caller
        && let Some(w) = control.snapshot(c).filter(|w| w.buckets.contains(bucket))
    {
        return Some((c.to_string(), w));
    }
    control
        .accounts()
        .into_iter()
        .filter(|a| Some(a.as_str()) != caller)
        .find_map(|a| {
            let w = control
                .snapshot(&a)
                .filter(|w| w.buckets.contains(bucket))?;
            Some((a, w))
        })
}

/// The IAM action and resource of an S3 request (Service Authorization Reference for
/// Amazon S3: bucket actions on `arn:aws:s3:::BUCKET`, object actions on
/// `arn:aws:s3:::BUCKET/KEY`), for [`crate::api::iam::authz::authorize_s3`].
fn iam_action(
    method: &str,
    bucket: Option<&str>,
    key: Option<&str>,
    query: &BTreeMap<String, String>,
) -> (&'static str, String) {
    let has = |q: &str| query.contains_key(q);
    let Some(bucket) = bucket else {
        return ("s3:ListAllMyBuckets", "*".to_string());
    };
    if let Some(key) = key {
        let action = match method {
            "GET" | "HEAD" if has("tagging") => "s3:GetObjectTagging",
            "GET" | "HEAD" if has("attributes") => "s3:GetObjectAttributes",
            "GET" | "HEAD" if has("versionId") => "s3:GetObjectVersion",
            "GET" | "HEAD" if has("uploadId") => "s3:ListMultipartUploadParts",
            "GET" | "HEAD" => "s3:GetObject",
            "PUT" if has("tagging") => "s3:PutObjectTagging",
            "DELETE" if has("tagging") => "s3:DeleteObjectTagging",
            "DELETE" if has("uploadId") => "s3:AbortMultipartUpload",
            "DELETE" if has("versionId") => "s3:DeleteObjectVersion",
            "DELETE" => "s3:DeleteObject",
            "POST" if has("restore") => "s3:RestoreObject",
            _ => "s3:PutObject",
        };
        return (action, format!("arn:aws:s3:::{bucket}/{key}"));
    }
    let action = match method {
        "GET" | "HEAD" if has("policy") => "s3:GetBucketPolicy",
        "GET" | "HEAD" if has("location") => "s3:GetBucketLocation",
        "GET" | "HEAD" if has("versioning") => "s3:GetBucketVersioning",
        "GET" | "HEAD" if has("versions") => "s3:ListBucketVersions",
        "GET" | "HEAD" if has("uploads") => "s3:ListBucketMultipartUploads",
        "GET" | "HEAD" if has("tagging") => "s3:GetBucketTagging",
        "GET" | "HEAD" if has("website") => "s3:GetBucketWebsite",
        "GET" | "HEAD" if has("cors") => "s3:GetBucketCORS",
        "GET" | "HEAD" if has("lifecycle") => "s3:GetLifecycleConfiguration",
        "GET" | "HEAD" if has("notification") => "s3:GetBucketNotification",
        "GET" | "HEAD" if has("replication") => "s3:GetReplicationConfiguration",
        "GET" | "HEAD" => "s3:ListBucket",
        "PUT" if has("policy") => "s3:PutBucketPolicy",
        "PUT" if has("versioning") => "s3:PutBucketVersioning",
        "PUT" if has("tagging") => "s3:PutBucketTagging",
        "PUT" if has("website") => "s3:PutBucketWebsite",
        "PUT" if has("cors") => "s3:PutBucketCORS",
        "PUT" if has("lifecycle") => "s3:PutLifecycleConfiguration",
        "PUT" if has("publicAccessBlock") => "s3:PutBucketPublicAccessBlock",
        "PUT" if has("notification") => "s3:PutBucketNotification",
        // DeleteBucketReplication needs s3:PutReplicationConfiguration too (API
        // reference, DeleteBucketReplication).
        "PUT" | "DELETE" if has("replication") => "s3:PutReplicationConfiguration",
        "PUT" => "s3:CreateBucket",
        "DELETE" if has("policy") => "s3:DeleteBucketPolicy",
        "DELETE" if has("website") => "s3:DeleteBucketWebsite",
        "DELETE" if has("tagging") => "s3:PutBucketTagging",
        "DELETE" if has("cors") => "s3:PutBucketCORS",
        "DELETE" if has("lifecycle") => "s3:PutLifecycleConfiguration",
        "DELETE" => "s3:DeleteBucket",
        // POST ?delete (multi-object delete) needs s3:DeleteObject on the objects.
        _ => "s3:DeleteObject",
    };
    let resource = if action == "s3:DeleteObject" {
        format!("arn:aws:s3:::{bucket}/*")
    } else {
        format!("arn:aws:s3:::{bucket}")
    };
    (action, resource)
}

fn decode_path(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn render(out: Out, request_id: &str, is_head: bool) -> Response {
    let (len, body) = match out.blob {
        _ if is_head => (out.body.len() as u64, Body::empty()),
        Some(b) => (b.size(), b.into_body()),
        None => (out.body.len() as u64, Body::from(out.body)),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(out.status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    for (k, v) in out.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    if !is_head && !h.contains_key(header::CONTENT_LENGTH) {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amz-request-id", v.clone());
        h.insert("x-amz-id-2", v);
    }
    resp
}

/// S3's error document (`<Error><Code>…`); HEAD answers carry no body.
fn error_response(
    e: &ApiError,
    resource: Option<&str>,
    request_id: &str,
    is_head: bool,
) -> Response {
    let mut x = Xml::new();
    x.leaf("Code", &e.code).leaf("Message", &e.message);
    for (name, value) in &e.elements {
        x.leaf(name, value);
    }
    x.opt("Resource", resource);
    x.leaf("RequestId", request_id).leaf("HostId", request_id);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>{}</Error>",
        x.finish()
    );
    let out = Out {
        status: e.status,
        headers: vec![("content-type".into(), "application/xml".into())],
        body: body.into_bytes(),
        blob: None,
    };
    render(out, request_id, is_head)
}

/// Runs `f` as one commit of the account's world, then deletes the blobs it freed.
fn mutate<R>(
    state: &AppState,
    account: &str,
    env: &Env,
    f: impl FnOnce(&mut World, &Env) -> ApiResult<(R, m::Freed)>,
) -> ApiResult<R> {
    let (r, freed) = state.lock().mutate(account, env, false, f)?;
    if !freed.is_empty()
        && let Ok(blobs) = state.blobs()
    {
        blobs.delete(&freed);
    }
    Ok(r)
}

fn read(state: &AppState, account: &str, env: &Env) -> ApiResult<Arc<World>> {
    state.lock().read(account, env)
}

/// S3's answer to a method a resource does not take (and to reading a delete marker).
fn method_not_allowed() -> ApiError {
    ApiError::new(
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
    )
    .with_status(405)
}

/// The version a GET, HEAD or GetObjectAttributes reads (`MethodNotAllowed` when it is a
/// delete marker), and whether the bucket has versioning.
fn readable_version(
    w: &World,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> ApiResult<(bool, Version)> {
    let versioned = w.bucket(bucket)?.versioning.is_some();
    let v = w.object_version(bucket, key, version_id)?.clone();
    if v.delete_marker {
        return Err(method_not_allowed());
    }
    Ok((versioned, v))
}

/// `x-amz-expiration` on a write's response: the version just written, read back, when
/// a lifecycle rule will expire it.
fn with_expiration(
    state: &AppState,
    account: &str,
    env: &Env,
    bucket: &str,
    key: &str,
    version_id: &str,
    out: Out,
) -> Out {
    let Ok(w) = read(state, account, env) else {
        return out;
    };
    match (
        w.bucket(bucket),
        w.object_version(bucket, key, Some(version_id)),
    ) {
        (Ok(b), Ok(v)) => lifecycle::expiration_header(out, b, key, v),
        _ => out,
    }
}

/// Applies what is due in a bucket (lifecycle expirations, transitions, noncurrent
/// versions, expired delete markers, incomplete multipart uploads; restore completions
/// and expiries) before a request looks at it. The daemon's sweep ([`sweep`]) does the
/// same every few seconds for every bucket; doing it here too means a request never
/// sees a state the clock has moved past, even between two sweeps.
fn settle_bucket(state: &AppState, account: &str, env: &Env, bucket: &str) -> ApiResult<()> {
    let due = read(state, account, env)?.bucket_due(bucket, env.now);
    if due {
        let env = env.clone().with_action(sweep::ACTION);
        mutate(state, account, &env, |w, env| {
            Ok(((), w.settle_bucket(env, bucket)?))
        })?;
    }
    Ok(())
}

async fn handle(state: &AppState, account: &str, env: Env, req: S3Req) -> ApiResult<Out> {
    let Some(bucket) = req.bucket.clone() else {
        return match req.method.as_str() {
            "GET" => list_buckets(state, account, &env.with_action("ListBuckets")),
            _ => Err(method_not_allowed()),
        };
    };
    if req.key.is_none() {
        settle_bucket(state, account, &env, &bucket)?;
        return bucket_op(state, account, env, &req);
    }
    settle_bucket(state, account, &env, &bucket)?;
    object_op(state, account, env, &req).await
}

fn list_buckets(state: &AppState, account: &str, env: &Env) -> ApiResult<Out> {
    let w = read(state, account, env)?;
    Ok(Out::xml("ListAllMyBucketsResult", |x| {
        x.node("Owner", |x| {
            x.leaf("ID", account).leaf("DisplayName", "vpclab");
        });
        x.node("Buckets", |x| {
            for b in w.buckets.iter() {
                x.node("Bucket", |x| {
                    x.leaf("Name", b.name())
                        .leaf("CreationDate", iso(b.created))
                        .leaf("BucketRegion", &b.region);
                });
            }
        });
    }))
}

const BUCKET_SUBRESOURCES: &[&str] = &[
    "versioning",
    "tagging",
    "policy",
    "cors",
    "lifecycle",
    "website",
    "publicAccessBlock",
    "location",
    "versions",
    "uploads",
    "acl",
    "delete",
    "ownershipControls",
    "encryption",
    "policyStatus",
    "notification",
    "replication",
];

fn bucket_op(state: &AppState, account: &str, env: Env, req: &S3Req) -> ApiResult<Out> {
    let bucket = req.bucket();
    let sub = BUCKET_SUBRESOURCES
        .iter()
        .copied()
        .find(|s| req.has(s))
        .unwrap_or("");
    let action = match (req.method.as_str(), sub) {
        ("PUT", "") => "CreateBucket",
        ("HEAD", "") => "HeadBucket",
        ("DELETE", "") => "DeleteBucket",
        ("GET", "") if req.q("list-type") == Some("2") => "ListObjectsV2",
        ("GET", "") => "ListObjects",
        ("POST", "delete") => "DeleteObjects",
        ("GET", "versions") => "ListObjectVersions",
        ("GET", "uploads") => "ListMultipartUploads",
        ("GET", "location") => "GetBucketLocation",
        ("PUT", "versioning") => "PutBucketVersioning",
        ("GET", "versioning") => "GetBucketVersioning",
        ("PUT", "tagging") => "PutBucketTagging",
        ("GET", "tagging") => "GetBucketTagging",
        ("DELETE", "tagging") => "DeleteBucketTagging",
        ("PUT", "policy") => "PutBucketPolicy",
        ("GET", "policy") => "GetBucketPolicy",
        ("DELETE", "policy") => "DeleteBucketPolicy",
        ("GET", "policyStatus") => "GetBucketPolicyStatus",
        ("PUT", "cors") => "PutBucketCors",
        ("GET", "cors") => "GetBucketCors",
        ("DELETE", "cors") => "DeleteBucketCors",
        ("PUT", "lifecycle") => "PutBucketLifecycleConfiguration",
        ("GET", "lifecycle") => "GetBucketLifecycleConfiguration",
        ("DELETE", "lifecycle") => "DeleteBucketLifecycle",
        ("PUT", "website") => "PutBucketWebsite",
        ("GET", "website") => "GetBucketWebsite",
        ("DELETE", "website") => "DeleteBucketWebsite",
        ("PUT", "publicAccessBlock") => "PutPublicAccessBlock",
        ("GET", "publicAccessBlock") => "GetPublicAccessBlock",
        ("DELETE", "publicAccessBlock") => "DeletePublicAccessBlock",
        ("GET", "acl") => "GetBucketAcl",
        ("PUT", "acl") => "PutBucketAcl",
        ("GET", "ownershipControls") => "GetBucketOwnershipControls",
        ("GET", "encryption") => "GetBucketEncryption",
        ("PUT", "notification") => "PutBucketNotificationConfiguration",
        ("GET", "notification") => "GetBucketNotificationConfiguration",
        ("PUT", "replication") => "PutBucketReplication",
        ("GET", "replication") => "GetBucketReplication",
        ("DELETE", "replication") => "DeleteBucketReplication",
        _ => {
            return Err(ApiError::new(
                "NotImplemented",
                format!(
                    "vpclab does not implement {} on a bucket with ?{sub} (see docs/api.md)",
                    req.method
                ),
            )
            .with_status(501));
        }
    };
    let env = env.with_action(action);
    if action != "CreateBucket" {
        // Every other bucket operation needs the bucket.
        read(state, account, &env)?.bucket(bucket)?;
    }
    let simple = |f: &dyn Fn(&mut m::Bucket) -> ApiResult<()>| -> ApiResult<Out> {
        mutate(state, account, &env, |w, _| {
            w.update_bucket(bucket, f)?;
            Ok(((), Vec::new()))
        })?;
        Ok(Out::empty(204))
    };
    match action {
        "CreateBucket" => {
            if let Some(acl) = req.header("x-amz-acl")
                && acl != "private"
            {
                return Err(acl_not_supported());
            }
            let constraint = if req.body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                let doc = parse_xml(&req.body)?;
                doc.text_of("LocationConstraint").map(str::to_string)
            };
            // Bucket names are global: the whole daemon's namespace is checked.
            state
                .lock()
                .create_bucket(account, &env, bucket, constraint.as_deref())?;
            Ok(Out::empty(200).header("location", format!("/{bucket}")))
        }
        "HeadBucket" => {
            let w = read(state, account, &env)?;
            let b = w.bucket(bucket)?;
            Ok(Out::empty(200).header("x-amz-bucket-region", b.region.clone()))
        }
        "DeleteBucket" => {
            mutate(state, account, &env, |w, _| {
                w.delete_bucket(bucket)?;
                Ok(((), Vec::new()))
            })?;
            Ok(Out::empty(204))
        }
        "ListObjectsV2" | "ListObjects" => {
            list_objects(state, account, &env, req, action == "ListObjectsV2")
        }
        "ListObjectVersions" => list_versions(state, account, &env, req),
        "ListMultipartUploads" => {
            let w = read(state, account, &env)?;
            Ok(Out::xml("ListMultipartUploadsResult", |x| {
                x.leaf("Bucket", bucket)
                    .leaf("KeyMarker", "")
                    .leaf("UploadIdMarker", "");
                x.leaf("MaxUploads", 1000).leaf("IsTruncated", false);
                for u in w.s3_uploads.iter().filter(|u| u.bucket == bucket) {
                    x.node("Upload", |x| {
                        x.leaf("Key", &u.key)
                            .leaf("UploadId", &u.id)
                            .leaf("Initiated", iso(u.created))
                            .leaf("StorageClass", u.storage_class.name());
                    });
                }
            }))
        }
        "DeleteObjects" => delete_objects(state, account, &env, req),
        "GetBucketLocation" => {
            let w = read(state, account, &env)?;
            let region = w.bucket(bucket)?.region.clone();
            let body = if region == "us-east-1" {
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"{XMLNS}\"/>"
                )
            } else {
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"{XMLNS}\">{}</LocationConstraint>",
                    escape(&region)
                )
            };
            Ok(Out {
                status: 200,
                headers: vec![("content-type".into(), "application/xml".into())],
                body: body.into_bytes(),
                blob: None,
            })
        }
        "PutBucketVersioning" => {
            let doc = parse_xml(&req.body)?;
            let status = doc.text_of("Status").unwrap_or("").to_string();
            mutate(state, account, &env, |w, _| {
                w.put_bucket_versioning(bucket, &status)?;
                Ok(((), Vec::new()))
            })?;
            Ok(Out::empty(200))
        }
        "GetBucketVersioning" => {
            let w = read(state, account, &env)?;
            let v = w.bucket(bucket)?.versioning.clone();
            Ok(Out::xml("VersioningConfiguration", |x| {
                x.opt("Status", v);
            }))
        }
        "PutBucketTagging" => {
            let tags = parse_tagging(&req.body)?;
            m::check_tags(&tags, m::MAX_BUCKET_TAGS)?;
            simple(&|b| {
                b.tags = tags.clone();
                Ok(())
            })
        }
        "GetBucketTagging" => {
            let w = read(state, account, &env)?;
            let b = w.bucket(bucket)?;
            if b.tags.is_empty() {
                return Err(
                    ApiError::new("NoSuchTagSet", "The TagSet does not exist").with_status(404)
                );
            }
            Ok(tagging_xml(&b.tags))
        }
        "DeleteBucketTagging" => simple(&|b| {
            b.tags.clear();
            Ok(())
        }),
        "PutBucketPolicy" => {
            let text = String::from_utf8(req.body.clone()).map_err(|_| {
                ApiError::new("MalformedPolicy", "Policies must be valid UTF-8 JSON")
            })?;
            mutate(state, account, &env, |w, _| {
                w.put_bucket_policy(bucket, &text)?;
                Ok(((), Vec::new()))
            })?;
            Ok(Out::empty(204))
        }
        "GetBucketPolicy" => {
            let w = read(state, account, &env)?;
            let p = w.bucket(bucket)?.policy.clone().ok_or_else(|| {
                ApiError::new("NoSuchBucketPolicy", "The bucket policy does not exist")
                    .with_status(404)
            })?;
            Ok(Out {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: p.into_bytes(),
                blob: None,
            })
        }
        "GetBucketPolicyStatus" => {
            let w = read(state, account, &env)?;
            let public = w
                .bucket(bucket)?
                .policy
                .as_deref()
                .is_some_and(m::policy::is_public);
            Ok(Out::xml("PolicyStatus", |x| {
                x.leaf("IsPublic", public);
            }))
        }
        "DeleteBucketPolicy" => simple(&|b| {
            b.policy = None;
            Ok(())
        }),
        "PutBucketCors" => {
            let cfg = cors::parse_config(&req.body)?;
            let xml = String::from_utf8_lossy(&req.body).into_owned();
            simple(&|b| {
                b.cors_xml = Some(xml.clone());
                b.cors = Some(cfg.clone());
                Ok(())
            })
        }
        "PutBucketNotificationConfiguration" => {
            let cfg = notify::parse(&req.body)?;
            mutate(state, account, &env, |w, env| {
                w.put_bucket_notification(env, bucket, cfg)?;
                Ok(((), Vec::new()))
            })?;
            Ok(Out::empty(200))
        }
        "GetBucketNotificationConfiguration" => {
            let w = read(state, account, &env)?;
            Ok(notify::render(w.bucket(bucket)?.notification.as_ref()))
        }
        "PutBucketReplication" => {
            let cfg = replication::parse(&req.body)?;
            mutate(state, account, &env, |w, _| {
                w.put_bucket_replication(bucket, cfg)?;
                Ok(((), Vec::new()))
            })?;
            Ok(Out::empty(200))
        }
        "GetBucketReplication" => {
            let w = read(state, account, &env)?;
            let b = w.bucket(bucket)?;
            let cfg = b
                .replication
                .as_ref()
                .ok_or_else(m::replication::not_found)?;
            Ok(replication::render(cfg))
        }
        "DeleteBucketReplication" => simple(&|b| {
            b.replication = None;
            Ok(())
        }),
        "GetBucketCors" => {
            let w = read(state, account, &env)?;
            stored_xml(
                w.bucket(bucket)?.cors_xml.clone(),
                "NoSuchCORSConfiguration",
                "The CORS configuration does not exist",
            )
        }
        "DeleteBucketCors" => simple(&|b| {
            b.cors_xml = None;
            b.cors = None;
            Ok(())
        }),
        "PutBucketLifecycleConfiguration" => {
            let minimum = lifecycle::transition_minimum(req)?;
            let rules = lifecycle::parse(&req.body)?;
            let xml = String::from_utf8_lossy(&req.body).into_owned();
            mutate(state, account, &env, |w, _| {
                w.put_bucket_lifecycle(bucket, rules, xml, minimum)?;
                Ok(((), Vec::new()))
            })?;
            Ok(lifecycle::with_transition_minimum(Out::empty(200), minimum))
        }
        "GetBucketLifecycleConfiguration" => {
            let w = read(state, account, &env)?;
            let b = w.bucket(bucket)?;
            let out = stored_xml(
                b.lifecycle_xml.clone(),
                "NoSuchLifecycleConfiguration",
                "The lifecycle configuration does not exist",
            )?;
            Ok(lifecycle::with_transition_minimum(
                out,
                b.transition_minimum,
            ))
        }
        "DeleteBucketLifecycle" => simple(&|b| {
            b.lifecycle.clear();
            b.lifecycle_xml = None;
            b.transition_minimum = Default::default();
            Ok(())
        }),
        "PutBucketWebsite" => {
            let cfg = website::parse_config(&req.body)?;
            cfg.validate()?;
            simple(&|b| {
                b.website = Some(cfg.clone());
                Ok(())
            })
            .map(|_| Out::empty(200))
        }
        "GetBucketWebsite" => {
            let w = read(state, account, &env)?;
            let cfg = w.bucket(bucket)?.website.clone().ok_or_else(|| {
                ApiError::new(
                    "NoSuchWebsiteConfiguration",
                    "The specified bucket does not have a website configuration",
                )
                .with_status(404)
            })?;
            Ok(website::config_xml(&cfg))
        }
        "DeleteBucketWebsite" => simple(&|b| {
            b.website = None;
            Ok(())
        }),
        "PutPublicAccessBlock" => {
            let doc = parse_xml(&req.body)?;
            let flag = |n: &str| doc.text_of(n) == Some("true");
            let pab = m::PublicAccessBlock {
                block_public_acls: flag("BlockPublicAcls"),
                ignore_public_acls: flag("IgnorePublicAcls"),
                block_public_policy: flag("BlockPublicPolicy"),
                restrict_public_buckets: flag("RestrictPublicBuckets"),
            };
            simple(&|b| {
                b.public_access_block = Some(pab.clone());
                Ok(())
            })
            .map(|_| Out::empty(200))
        }
        "GetPublicAccessBlock" => {
            let w = read(state, account, &env)?;
            let p = w
                .bucket(bucket)?
                .public_access_block
                .clone()
                .ok_or_else(|| {
                    ApiError::new(
                        "NoSuchPublicAccessBlockConfiguration",
                        "The public access block configuration was not found",
                    )
                    .with_status(404)
                })?;
            Ok(Out::xml("PublicAccessBlockConfiguration", |x| {
                x.leaf("BlockPublicAcls", p.block_public_acls)
                    .leaf("IgnorePublicAcls", p.ignore_public_acls)
                    .leaf("BlockPublicPolicy", p.block_public_policy)
                    .leaf("RestrictPublicBuckets", p.restrict_public_buckets);
            }))
        }
        "DeletePublicAccessBlock" => simple(&|b| {
            b.public_access_block = None;
            Ok(())
        }),
        "GetBucketAcl" => Ok(owner_acl(account)),
        "PutBucketAcl" => match req.header("x-amz-acl") {
            Some("private") | None if req.body.is_empty() || req.header("x-amz-acl").is_some() => {
                Ok(Out::empty(200))
            }
            _ => Err(acl_not_supported()),
        },
        "GetBucketOwnershipControls" => Ok(Out::xml("OwnershipControls", |x| {
            x.node("Rule", |x| {
                x.leaf("ObjectOwnership", "BucketOwnerEnforced");
            });
        })),
        "GetBucketEncryption" => Ok(Out::xml("ServerSideEncryptionConfiguration", |x| {
            x.node("Rule", |x| {
                x.node("ApplyServerSideEncryptionByDefault", |x| {
                    x.leaf("SSEAlgorithm", "AES256");
                });
                x.leaf("BucketKeyEnabled", false);
            });
        })),
        _ => Err(ApiError::internal()),
    }
}

fn acl_not_supported() -> ApiError {
    ApiError::new(
        "AccessControlListNotSupported",
        "The bucket does not allow ACLs",
    )
}

fn invalid_request(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidRequest", message)
}

fn owner_acl(account: &str) -> Out {
    Out::xml("AccessControlPolicy", |x| {
        x.node("Owner", |x| {
            x.leaf("ID", account).leaf("DisplayName", "vpclab");
        });
        x.node("AccessControlList", |x| {
            x.raw("<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\">");
            x.leaf("ID", account).leaf("DisplayName", "vpclab");
            x.raw("</Grantee><Permission>FULL_CONTROL</Permission></Grant>");
        });
    })
}

fn stored_xml(xml: Option<String>, code: &'static str, message: &str) -> ApiResult<Out> {
    let xml = xml.ok_or_else(|| ApiError::new(code, message).with_status(404))?;
    Ok(Out {
        status: 200,
        headers: vec![("content-type".into(), "application/xml".into())],
        body: xml.into_bytes(),
        blob: None,
    })
}

fn parse_tagging(body: &[u8]) -> ApiResult<BTreeMap<String, String>> {
    let doc = parse_xml(body)?;
    let set = doc.child("TagSet").ok_or_else(malformed_xml)?;
    let mut tags = BTreeMap::new();
    for t in set.children_named("Tag") {
        let k = t.child("Key").ok_or_else(malformed_xml)?.text.clone();
        let v = t.child("Value").map(|v| v.text.clone()).unwrap_or_default();
        if tags.insert(k, v).is_some() {
            return Err(ApiError::new(
                "InvalidTag",
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(tags)
}

fn tagging_xml(tags: &BTreeMap<String, String>) -> Out {
    Out::xml("Tagging", |x| {
        x.node("TagSet", |x| {
            for (k, v) in tags {
                x.node("Tag", |x| {
                    x.leaf("Key", k).leaf("Value", v);
                });
            }
        });
    })
}

/// `x-amz-tagging: k1=v1&k2=v2`.
fn header_tags(req: &S3Req) -> BTreeMap<String, String> {
    req.header("x-amz-tagging")
        .map(|t| {
            form_urlencoded::parse(t.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A `partNumber` query parameter: an integer from 1 to 10,000.
fn part_number_param(raw: &str) -> ApiResult<u32> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=m::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            invalid_argument_xml("Part number must be an integer between 1 and 10000, inclusive")
        })
}

fn invalid_argument_xml(message: &str) -> ApiError {
    ApiError::new("InvalidArgument", message)
}

/// `2026-01-01T00:00:00Z` or `…00.000Z` → milliseconds.
fn parse_iso_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp() * 1000)
}

/// Where a listing resumes: after a key, or after every key under a common prefix.
enum After {
    Start,
    Key(String),
    Prefix(String),
}

struct Page<'w> {
    objects: Vec<&'w S3Object>,
    prefixes: Vec<String>,
    truncated: bool,
    next: Option<After>,
}

fn list_page<'w>(
    w: &'w World,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    after: After,
    max: usize,
) -> Page<'w> {
    let start = match &after {
        After::Start => prefix.to_string(),
        After::Key(k) | After::Prefix(k) => k.clone().max(prefix.to_string()),
    };
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        next: None,
    };
    let mut count = 0;
    for o in w.objects_from(bucket, &start) {
        if !o.key.starts_with(prefix) {
            if o.key.as_str() > prefix {
                break;
            }
            continue;
        }
        match &after {
            After::Key(k) if o.key <= *k => continue,
            After::Prefix(p) if o.key.starts_with(p.as_str()) => continue,
            _ => {}
        }
        if o.live().is_none() {
            continue;
        }
        let rest = &o.key[prefix.len()..];
        let common = (!delimiter.is_empty())
            .then(|| rest.find(delimiter))
            .flatten()
            .map(|i| format!("{prefix}{}", &rest[..i + delimiter.len()]));
        if let Some(cp) = &common
            && page.prefixes.last() == Some(cp)
        {
            continue;
        }
        if count == max {
            page.truncated = true;
            break;
        }
        count += 1;
        match common {
            Some(cp) => {
                page.next = Some(After::Prefix(cp.clone()));
                page.prefixes.push(cp);
            }
            None => {
                page.next = Some(After::Key(o.key.clone()));
                page.objects.push(o);
            }
        }
    }
    if !page.truncated {
        page.next = None;
    }
    page
}

fn max_keys(req: &S3Req, name: &str) -> ApiResult<usize> {
    match req.q(name) {
        None => Ok(1000),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| usize::try_from(n.min(1000)).unwrap_or(1000))
            .ok_or_else(|| {
                invalid_argument_xml("Provided max-keys not an integer or within integer range")
            }),
    }
}

fn list_objects(
    state: &AppState,
    account: &str,
    env: &Env,
    req: &S3Req,
    v2: bool,
) -> ApiResult<Out> {
    let bucket = req.bucket();
    let w = read(state, account, env)?;
    w.bucket(bucket)?;
    let prefix = req.q("prefix").unwrap_or("");
    let delimiter = req.q("delimiter").unwrap_or("");
    let url = req.q("encoding-type") == Some("url");
    if let Some(e) = req.q("encoding-type")
        && e != "url"
    {
        return Err(invalid_argument_xml(
            "Invalid Encoding Method specified in Request",
        ));
    }
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let max = max_keys(req, "max-keys")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let after = if v2 {
        match req.q("continuation-token") {
            Some(t) => {
                let raw = b64
                    .decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        invalid_argument_xml("The continuation token provided is incorrect")
                    })?;
                match raw.split_at_checked(2) {
                    Some(("k:", k)) => After::Key(k.to_string()),
                    Some(("p:", p)) => After::Prefix(p.to_string()),
                    _ => {
                        return Err(invalid_argument_xml(
                            "The continuation token provided is incorrect",
                        ));
                    }
                }
            }
            None => req
                .q("start-after")
                .map_or(After::Start, |s| After::Key(s.to_string())),
        }
    } else {
        match req.q("marker").filter(|m| !m.is_empty()) {
            Some(mk)
                if !delimiter.is_empty() && mk.ends_with(delimiter) && mk.starts_with(prefix) =>
            {
                After::Prefix(mk.to_string())
            }
            Some(mk) => After::Key(mk.to_string()),
            None => After::Start,
        }
    };
    let page = list_page(&w, bucket, prefix, delimiter, after, max);
    let root = "ListBucketResult";
    Ok(Out::xml(root, |x| {
        x.leaf("Name", bucket).leaf("Prefix", enc(prefix));
        if v2 {
            x.opt("StartAfter", req.q("start-after").map(enc));
            x.opt("ContinuationToken", req.q("continuation-token"));
            x.leaf("KeyCount", page.objects.len() + page.prefixes.len());
        } else {
            x.leaf("Marker", enc(req.q("marker").unwrap_or("")));
        }
        x.leaf("MaxKeys", max);
        if !delimiter.is_empty() {
            x.leaf("Delimiter", enc(delimiter));
        }
        if url {
            x.leaf("EncodingType", "url");
        }
        x.leaf("IsTruncated", page.truncated);
        match (&page.next, v2) {
            (Some(After::Key(k)), true) => {
                x.leaf("NextContinuationToken", b64.encode(format!("k:{k}")));
            }
            (Some(After::Prefix(p)), true) => {
                x.leaf("NextContinuationToken", b64.encode(format!("p:{p}")));
            }
            (Some(After::Key(k) | After::Prefix(k)), false) if !delimiter.is_empty() => {
                x.leaf("NextMarker", enc(k));
            }
            _ => {}
        }
        for o in &page.objects {
            let v = o.live().expect("listed objects are live");
            x.node("Contents", |x| {
                x.leaf("Key", enc(&o.key))
                    .leaf("LastModified", iso(v.last_modified))
                    .leaf("ETag", &v.etag)
                    .leaf("Size", v.size)
                    .leaf("StorageClass", v.storage_class.name());
                if !v2 {
                    x.node("Owner", |x| {
                        x.leaf("ID", account).leaf("DisplayName", "vpclab");
                    });
                }
            });
        }
        for p in &page.prefixes {
            x.node("CommonPrefixes", |x| {
                x.leaf("Prefix", enc(p));
            });
        }
    }))
}

fn list_versions(state: &AppState, account: &str, env: &Env, req: &S3Req) -> ApiResult<Out> {
    let bucket = req.bucket();
    let w = read(state, account, env)?;
    w.bucket(bucket)?;
    let prefix = req.q("prefix").unwrap_or("");
    let max = max_keys(req, "max-keys")?;
    let key_marker = req.q("key-marker").unwrap_or("");
    let vid_marker = req.q("version-id-marker").unwrap_or("");
    let url = req.q("encoding-type") == Some("url");
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    // (key, version, is latest), newest first within a key.
    let mut rows: Vec<(&str, &Version, bool)> = Vec::new();
    let mut truncated = false;
    'outer: for o in w.objects_from(bucket, key_marker) {
        if !o.key.starts_with(prefix) {
            if o.key.as_str() > prefix {
                break;
            }
            continue;
        }
        if !key_marker.is_empty() && o.key.as_str() == key_marker && vid_marker.is_empty() {
            continue;
        }
        let mut skipping = !vid_marker.is_empty() && o.key.as_str() == key_marker;
        let n = o.versions.len();
        for (i, v) in o.versions.iter().enumerate().rev() {
            if skipping {
                if v.version_id == vid_marker {
                    skipping = false;
                }
                continue;
            }
            if rows.len() == max {
                truncated = true;
                break 'outer;
            }
            rows.push((&o.key, v, i + 1 == n));
        }
    }
    Ok(Out::xml("ListVersionsResult", |x| {
        x.leaf("Name", bucket).leaf("Prefix", enc(prefix));
        x.leaf("KeyMarker", enc(key_marker))
            .leaf("VersionIdMarker", vid_marker);
        x.leaf("MaxKeys", max).leaf("IsTruncated", truncated);
        if truncated && let Some((k, v, _)) = rows.last() {
            x.leaf("NextKeyMarker", enc(k))
                .leaf("NextVersionIdMarker", &v.version_id);
        }
        if url {
            x.leaf("EncodingType", "url");
        }
        for (k, v, latest) in &rows {
            let name = if v.delete_marker {
                "DeleteMarker"
            } else {
                "Version"
            };
            x.node(name, |x| {
                x.leaf("Key", enc(k))
                    .leaf("VersionId", &v.version_id)
                    .leaf("IsLatest", latest)
                    .leaf("LastModified", iso(v.last_modified));
                if !v.delete_marker {
                    x.leaf("ETag", &v.etag)
                        .leaf("Size", v.size)
                        .leaf("StorageClass", v.storage_class.name());
                }
                x.node("Owner", |x| {
                    x.leaf("ID", account).leaf("DisplayName", "vpclab");
                });
            });
        }
    }))
}

fn delete_objects(state: &AppState, account: &str, env: &Env, req: &S3Req) -> ApiResult<Out> {
    let bucket = req.bucket();
    let doc = parse_xml(&req.body)?;
    let quiet = doc.text_of("Quiet") == Some("true");
    let wanted: Vec<(String, Option<String>)> = doc
        .children_named("Object")
        .map(|o| {
            (
                o.child("Key").map(|k| k.text.clone()).unwrap_or_default(),
                o.text_of("VersionId").map(str::to_string),
            )
        })
        .collect();
    if wanted.is_empty() || wanted.len() > 1000 {
        return Err(malformed_xml());
    }
    let results = mutate(state, account, env, |w, env| {
        let mut freed = Vec::new();
        let mut results = Vec::new();
        for (key, vid) in &wanted {
            match w.delete_object(env, bucket, key, vid.as_deref()) {
                Ok((v, marker, f)) => {
                    freed.extend(f);
                    results.push((key.clone(), Ok((v, marker))));
                }
                Err(e) => results.push((key.clone(), Err(e))),
            }
        }
        Ok((results, freed))
    })?;
    Ok(Out::xml("DeleteResult", |x| {
        for (key, r) in &results {
            match r {
                Ok((v, marker)) => {
                    if !quiet {
                        x.node("Deleted", |x| {
                            x.leaf("Key", key);
                            if *marker {
                                x.leaf("DeleteMarker", true);
                                x.opt("DeleteMarkerVersionId", v.as_deref());
                            } else {
                                x.opt("VersionId", v.as_deref());
                            }
                        });
                    }
                }
                Err(e) => {
                    x.node("Error", |x| {
                        x.leaf("Key", key)
                            .leaf("Code", &e.code)
                            .leaf("Message", &e.message);
                    });
                }
            }
        }
    }))
}

/// Headers S3 stores with an object and returns on GET/HEAD.
const STORED_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
    "x-amz-website-redirect-location",
];

fn stored_headers(req: &S3Req) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut headers = BTreeMap::new();
    let mut meta = BTreeMap::new();
    for (k, v) in &req.headers {
        let Ok(v) = v.to_str() else { continue };
        let k = k.as_str();
        if let Some(name) = k.strip_prefix("x-amz-meta-") {
            meta.insert(name.to_string(), v.to_string());
        } else if STORED_HEADERS.contains(&k) {
            // `aws-chunked` is transfer framing, not the object's encoding.
            if k == "content-encoding" {
                let rest: Vec<&str> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|e| *e != "aws-chunked" && !e.is_empty())
                    .collect();
                if !rest.is_empty() {
                    headers.insert(k.to_string(), rest.join(","));
                }
                continue;
            }
            headers.insert(k.to_string(), v.to_string());
        }
    }
    headers
        .entry("content-type".into())
        .or_insert_with(|| "binary/octet-stream".into());
    (headers, meta)
}

fn check_metadata(meta: &BTreeMap<String, String>) -> ApiResult<()> {
    let size: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > m::MAX_METADATA_BYTES {
        return Err(ApiError::new(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size",
        ));
    }
    Ok(())
}

fn etag_of(md5: &[u8; 16]) -> String {
    format!("\"{}\"", hex::encode(md5))
}

/// Checks `Content-MD5` against the body, as S3 does (BadDigest).
fn check_content_md5(req: &S3Req) -> ApiResult<()> {
    if let Some(sent) = req.header("content-md5") {
        let b64 = base64::engine::general_purpose::STANDARD;
        let want = b64.decode(sent.trim()).map_err(|_| {
            ApiError::new(
                "InvalidDigest",
                "The Content-MD5 you specified was invalid.",
            )
        })?;
        let got: [u8; 16] = match &req.upload {
            Some(r) => r.md5,
            None => etag_md5::Md5::digest(&req.body),
        };
        if want.as_slice() != got.as_slice() {
            return Err(ApiError::new(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    check_checksum(req)
}

/// Checks the `x-amz-checksum-*` header, if any, against the body (BadDigest). A
/// streamed upload computed it on the way in; a gathered body is checksummed here.
fn check_checksum(req: &S3Req) -> ApiResult<()> {
    let Some(claim) = checksum::claimed(&req.headers)? else {
        return Ok(());
    };
    match req.upload.as_ref().and_then(|r| r.checksum.as_deref()) {
        Some(computed) => claim.verify(computed),
        None => claim.verify(&checksum::digest(claim.algorithm, &req.body)),
    }
}

/// The request's body as a new blob: the staged upload given its name, or the
/// gathered body written out.
fn store_body(blobs: &blob::BlobStore, req: &S3Req) -> ApiResult<blob::Written> {
    match &req.upload {
        Some(r) => r.persist(),
        None => blobs.write([req.body.as_slice()]),
    }
}

/// The checksum an upload keeps: the one it claimed, which [`check_content_md5`] has
/// compared with the body by the time this is asked, or else S3's default
/// ([`checksum::DEFAULT`]), computed while the body arrived (or here, over a gathered
/// body).
fn uploaded_checksum(req: &S3Req) -> ApiResult<m::ObjectChecksum> {
    let (algorithm, digest) = match checksum::claimed(&req.headers)? {
        Some(c) => (c.algorithm, c.digest),
        None => {
            let computed = req.upload.as_ref().and_then(|r| r.checksum.clone());
            let digest = computed.unwrap_or_else(|| checksum::digest(checksum::DEFAULT, &req.body));
            (checksum::DEFAULT, digest)
        }
    };
    Ok(m::ObjectChecksum {
        algorithm: algorithm.name().to_string(),
        value: checksum::encode(&digest),
        kind: "FULL_OBJECT".to_string(),
    })
}

/// `x-amz-checksum-<algorithm>` and `x-amz-checksum-type`, as PutObject answers and as
/// GetObject / HeadObject answer in checksum mode.
fn checksum_headers(out: Out, c: &m::ObjectChecksum) -> Out {
    match checksum::Algorithm::from_name(&c.algorithm) {
        Some(a) => out
            .header(a.header(), c.value.clone())
            .header("x-amz-checksum-type", c.kind.clone()),
        None => out,
    }
}

/// CreateMultipartUpload's `x-amz-checksum-algorithm` and `x-amz-checksum-type`. As on
/// S3 (S3 User Guide, "Checking object integrity", multipart uploads): CRC64NVME
/// supports only `FULL_OBJECT`, SHA-1 and SHA-256 only `COMPOSITE`, CRC32 and CRC32C
/// either, `COMPOSITE` by default. The guide's table predates SHA-512, MD5 and the
/// XXHASH algorithms; like SHA-1 and SHA-256 they are hashes whose values for the parts
/// cannot be combined into the whole object's, so here they are `COMPOSITE` only
/// (docs/fidelity.md).
fn upload_checksum(req: &S3Req) -> ApiResult<Option<m::UploadChecksum>> {
    use checksum::Algorithm;
    let kind = req
        .header("x-amz-checksum-type")
        .map(|k| k.trim().to_ascii_uppercase());
    let Some(name) = req.header("x-amz-checksum-algorithm") else {
        return match kind {
            Some(_) => Err(invalid_request(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
            )),
            None => Ok(None),
        };
    };
    let a = Algorithm::from_name(name)
        .ok_or_else(|| invalid_request(checksum::unsupported_algorithm()))?;
    let kind = match kind.as_deref() {
        None if a == Algorithm::Crc64Nvme => "FULL_OBJECT",
        None => "COMPOSITE",
        Some("COMPOSITE") if a != Algorithm::Crc64Nvme => "COMPOSITE",
        Some("FULL_OBJECT") if a.is_crc() => "FULL_OBJECT",
        Some(k @ ("COMPOSITE" | "FULL_OBJECT")) => {
            return Err(invalid_request(format!(
                "The {k} checksum type cannot be used with the {} checksum algorithm.",
                a.name().to_ascii_lowercase()
            )));
        }
        Some(_) => {
            return Err(invalid_request(
                "Value for x-amz-checksum-type header is invalid.",
            ));
        }
    };
    Ok(Some(m::UploadChecksum {
        algorithm: a.name().to_string(),
        kind: kind.to_string(),
    }))
}

/// CompleteMultipartUpload's `x-amz-checksum-type`, when sent, must be the type the
/// upload was created with: "If the checksum type doesn't match the checksum type that
/// was specified for the object during the CreateMultipartUpload request, it'll result
/// in a BadDigest error" (API reference, CompleteMultipartUpload). An upload created
/// without an algorithm gets S3's default, a full-object CRC64NVME, so its type is
/// `FULL_OBJECT`. A value that is neither type is refused as CreateMultipartUpload
/// refuses it (S3 documents no code for it here).
fn check_completion_type(req: &S3Req, created: Option<&m::UploadChecksum>) -> ApiResult<()> {
    let Some(sent) = req.header("x-amz-checksum-type") else {
        return Ok(());
    };
    let sent = sent.trim().to_ascii_uppercase();
    if sent != "COMPOSITE" && sent != "FULL_OBJECT" {
        return Err(invalid_request(
            "Value for x-amz-checksum-type header is invalid.",
        ));
    }
    let kind = created.map_or("FULL_OBJECT", |c| c.kind.as_str());
    if sent != kind {
        return Err(ApiError::new(
            "BadDigest",
            format!(
                "The checksum type you specified ({sent}) does not match the checksum type of the multipart upload ({kind})."
            ),
        ));
    }
    Ok(())
}

/// Whether a GET or HEAD asks for the object's checksum (`x-amz-checksum-mode: ENABLED`).
fn checksum_mode(req: &S3Req) -> bool {
    req.header("x-amz-checksum-mode")
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("ENABLED"))
}

fn no_self_acl(req: &S3Req) -> ApiResult<()> {
    match req.header("x-amz-acl") {
        None | Some("private") | Some("bucket-owner-full-control") => Ok(()),
        Some(_) => Err(acl_not_supported()),
    }
}

/// The source of a copy: `x-amz-copy-source: /bucket/key?versionId=…` (URL-encoded).
fn copy_source(req: &S3Req) -> ApiResult<Option<(String, String, Option<String>)>> {
    let Some(src) = req.header("x-amz-copy-source") else {
        return Ok(None);
    };
    let (path, q) = src.split_once('?').unwrap_or((src, ""));
    let path = decode_path(path.trim_start_matches('/'));
    let Some((b, k)) = path.split_once('/') else {
        return Err(invalid_argument_xml(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        ));
    };
    let version = form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "versionId")
        .map(|(_, v)| v.into_owned());
    Ok(Some((b.to_string(), k.to_string(), version)))
}

/// A byte range `bytes=a-b` / `bytes=a-` / `bytes=-n` against `size`: `Ok(None)` when
/// absent (or not a single byte range, which S3 ignores), `Err` when unsatisfiable.
fn parse_range(header: Option<&str>, size: u64) -> ApiResult<Option<(u64, u64)>> {
    let Some(h) = header else { return Ok(None) };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable =
        || ApiError::new("InvalidRange", "The requested range is not satisfiable").with_status(416);
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| unsatisfiable())?;
            if n == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().map_err(|_| unsatisfiable())?, size),
        (a, b) => {
            let a: u64 = a.parse().map_err(|_| unsatisfiable())?;
            let b: u64 = b.parse().map_err(|_| unsatisfiable())?;
            if b < a {
                return Ok(None);
            }
            (a, (b + 1).min(size))
        }
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

fn version_headers(out: Out, v: &Version, versioned: bool) -> Out {
    let mut out = out
        .header("etag", v.etag.clone())
        .header("last-modified", http_date(v.last_modified))
        .header("accept-ranges", "bytes");
    for (k, val) in &v.headers {
        out = out.header(k, val.clone());
    }
    for (k, val) in &v.metadata {
        out = out.header(&format!("x-amz-meta-{k}"), val.clone());
    }
    if versioned || v.version_id != "null" {
        out = out.header("x-amz-version-id", v.version_id.clone());
    }
    if !v.tags.is_empty() {
        out = out.header("x-amz-tagging-count", v.tags.len().to_string());
    }
    if let Some(s) = &v.replication_status {
        out = out.header("x-amz-replication-status", s.clone());
    }
    out
}

/// `x-amz-storage-class` (sent for every class but STANDARD, as S3 does) and
/// `x-amz-restore` (while a restore is in progress or its copy lives).
fn class_headers(mut out: Out, v: &Version, now: Timestamp) -> Out {
    if !v.storage_class.is_standard() {
        out = out.header("x-amz-storage-class", v.storage_class.name());
    }
    match v.restore_state(now) {
        Some(m::RestoreState::InProgress) => {
            out = out.header("x-amz-restore", "ongoing-request=\"true\"");
        }
        Some(m::RestoreState::Restored { expiry }) => {
            out = out.header(
                "x-amz-restore",
                format!(
                    "ongoing-request=\"false\", expiry-date=\"{}\"",
                    http_date(expiry)
                ),
            );
        }
        _ => {}
    }
    out
}

/// The class a PutObject, CopyObject or CreateMultipartUpload names, if any.
fn storage_class_header(req: &S3Req) -> ApiResult<Option<m::StorageClass>> {
    req.header("x-amz-storage-class")
        .map(|c| m::StorageClass::parse(c.trim()))
        .transpose()
}

/// RestoreObject's body: `<RestoreRequest><Days>N</Days><GlacierJobParameters><Tier>…`.
/// The Tier defaults to Standard. SELECT restores and an OutputLocation are not
/// emulated.
fn parse_restore_request(body: &[u8]) -> ApiResult<(u32, m::RestoreTier)> {
    let doc = parse_xml(body)?;
    if doc.text_of("Type").is_some() || doc.child("OutputLocation").is_some() {
        return Err(ApiError::new(
            "NotImplemented",
            "vpclab does not emulate SELECT restores or restore output locations.",
        )
        .with_status(501));
    }
    let days = doc
        .text_of("Days")
        .ok_or_else(malformed_xml)?
        .trim()
        .parse::<u32>()
        .map_err(|_| malformed_xml())?;
    let tier = match doc
        .child("GlacierJobParameters")
        .and_then(|g| g.text_of("Tier"))
        .or_else(|| doc.text_of("Tier"))
    {
        None => m::RestoreTier::Standard,
        Some(t) => m::RestoreTier::parse(t.trim()).ok_or_else(malformed_xml)?,
    };
    Ok((days, tier))
}

/// If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since, in S3's order.
fn preconditions(req: &S3Req, v: &Version) -> ApiResult<Option<Out>> {
    let etag = v.etag.trim_matches('"');
    let matches = |h: &str| {
        h.split(',')
            .any(|e| e.trim() == "*" || e.trim().trim_matches('"') == etag)
    };
    if let Some(h) = req.header("if-match")
        && !matches(h)
    {
        return Err(ApiError::new(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
        .with_status(412));
    }
    if let Some(h) = req.header("if-none-match")
        && matches(h)
    {
        return Ok(Some(Out::empty(304).header("etag", v.etag.clone())));
    }
    let date = |h: &str| {
        time::OffsetDateTime::parse(h, &time::format_description::well_known::Rfc2822)
            .ok()
            .map(|t| t.unix_timestamp() * 1000)
    };
    let modified_s = v.last_modified.div_euclid(1000) * 1000;
    if req.header("if-match").is_none()
        && let Some(t) = req.header("if-unmodified-since").and_then(date)
        && modified_s > t
    {
        return Err(ApiError::new(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
        .with_status(412));
    }
    if req.header("if-none-match").is_none()
        && let Some(t) = req.header("if-modified-since").and_then(date)
        && modified_s <= t
    {
        return Ok(Some(Out::empty(304).header("etag", v.etag.clone())));
    }
    Ok(None)
}

async fn object_op(state: &AppState, account: &str, env: Env, req: &S3Req) -> ApiResult<Out> {
    let bucket = req.bucket().to_string();
    let key = req.key().to_string();
    let method = req.method.as_str();
    let upload_id = req.q("uploadId").map(str::to_string);
    let version_id = req.q("versionId").map(str::to_string);
    match method {
        "PUT" if upload_id.is_some() => {
            let env = env.with_action("UploadPart");
            let upload_id = upload_id.unwrap_or_default();
            let number: u32 = req
                .q("partNumber")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    invalid_argument_xml(
                        "Part number must be an integer between 1 and 10000, inclusive",
                    )
                })?;
            let upload_sum = read(state, account, &env)?
                .upload(&bucket, &key, &upload_id)?
                .checksum
                .clone();
            let upload_alg = upload_sum
                .as_ref()
                .and_then(|c| checksum::Algorithm::from_name(&c.algorithm));
            let blobs = state.blobs()?.clone();
            // The part's checksum in the upload's algorithm: the one the request sent
            // (verified against the body), or computed here when it sent none. A part
            // of an upload created without an algorithm keeps S3's default one, like
            // the object it will be part of (a checksum it sent in another algorithm
            // is verified, not kept).
            let part_sum: Option<(checksum::Algorithm, Vec<u8>)>;
            let written = if let Some((sb, sk, sv)) = copy_source(req)? {
                let w = read(state, account, &env)?;
                let v = w.object_version(&sb, &sk, sv.as_deref())?.clone();
                if !v.readable_at(env.now) {
                    return Err(m::class::source_not_restored(v.storage_class));
                }
                let range = match req.header("x-amz-copy-source-range") {
                    None => None,
                    Some(r) => Some(parse_range(Some(r), v.size)?.ok_or_else(|| {
                        invalid_argument_xml("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
                    })?),
                };
                let bytes = blobs.read(&v.blob, range).await?;
                let a = upload_alg.unwrap_or(checksum::DEFAULT);
                part_sum = Some((a, checksum::digest(a, &bytes)));
                blobs.write([bytes.as_slice()])?
            } else {
                check_content_md5(req)?;
                let claim = checksum::claimed(&req.headers)?;
                if let (Some(want), Some(c)) = (upload_alg, &claim)
                    && want != c.algorithm
                {
                    return Err(invalid_request(format!(
                        "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                        want.name().to_ascii_lowercase(),
                        c.algorithm.name().to_ascii_lowercase()
                    )));
                }
                let written = store_body(&blobs, req)?;
                // Computed while the body arrived (the claimed algorithm's, or the
                // default when there was no claim), or over a gathered body.
                let computed = match &req.upload {
                    Some(r) => r
                        .checksum
                        .clone()
                        .map(|d| (claim.as_ref().map_or(checksum::DEFAULT, |c| c.algorithm), d)),
                    None => Some((
                        checksum::DEFAULT,
                        checksum::digest(checksum::DEFAULT, &req.body),
                    ))
                    .filter(|_| claim.is_none()),
                };
                let want = upload_alg.unwrap_or(checksum::DEFAULT);
                part_sum = match (claim, computed) {
                    (Some(c), _) if c.algorithm == want => Some((c.algorithm, c.digest)),
                    (_, Some((a, d))) if a == want => Some((a, d)),
                    // An MD5 checksum is the part's ETag digest, already computed.
                    _ if want == checksum::Algorithm::Md5 => Some((want, written.md5.to_vec())),
                    _ => {
                        let bytes = blobs.read(&written.name, None).await;
                        match bytes {
                            Ok(b) => Some((want, checksum::digest(want, &b))),
                            Err(e) => {
                                blobs.delete(&[written.name]);
                                return Err(e);
                            }
                        }
                    }
                };
                written
            };
            let etag = etag_of(&written.md5);
            let part = m::Part {
                checksum: part_sum.as_ref().map(|(_, d)| checksum::encode(d)),
                blob: written.name.clone(),
                size: written.size,
                etag: etag.clone(),
                md5_hex: hex::encode(written.md5),
                last_modified: env.now.0,
            };
            let copy = req.header("x-amz-copy-source").is_some();
            let r = mutate(state, account, &env, |w, _| {
                let freed = w.put_part(&bucket, &key, &upload_id, number, part)?;
                Ok(((), freed))
            });
            if let Err(e) = r {
                blobs.delete(&[written.name]);
                return Err(e);
            }
            let part_sum = part_sum.map(|(a, d)| (a, checksum::encode(&d)));
            if copy {
                return Ok(Out::xml("CopyPartResult", |x| {
                    x.leaf("ETag", &etag).leaf("LastModified", iso(env.now.0));
                    if let Some((a, v)) = &part_sum {
                        x.leaf(a.element(), v);
                    }
                }));
            }
            let mut out = Out::empty(200).header("etag", etag);
            if let Some((a, v)) = part_sum {
                out = out.header(a.header(), v);
            }
            Ok(out)
        }
        "PUT" if req.has("tagging") => {
            let env = env.with_action("PutObjectTagging");
            let tags = parse_tagging(&req.body)?;
            let vid = mutate(state, account, &env, |w, env| {
                Ok((
                    w.set_object_tags(env, &bucket, &key, version_id.as_deref(), tags)?,
                    Vec::new(),
                ))
            })?;
            Ok(Out::empty(200).header("x-amz-version-id", vid))
        }
        "PUT" if req.has("acl") => {
            no_self_acl(req)?;
            read(state, account, &env)?.object_version(&bucket, &key, version_id.as_deref())?;
            Ok(Out::empty(200))
        }
        "PUT" => {
            no_self_acl(req)?;
            let copy = copy_source(req)?;
            let env = env.with_action(if copy.is_some() {
                "CopyObject"
            } else {
                "PutObject"
            });
            let w = read(state, account, &env)?;
            w.bucket(&bucket)?;
            m::check_key(&key)?;
            let blobs = state.blobs()?.clone();
            let (mut headers, mut meta) = stored_headers(req);
            let mut tags = header_tags(req);
            let mut source_version = None;
            // A new object, and a copy, is STANDARD unless the request names a class
            // (CopyObject API reference, `x-amz-storage-class`: the class is not copied).
            let asked_class = storage_class_header(req)?;
            let class = asked_class.unwrap_or_default();
            let sum;
            let written = if let Some((sb, sk, sv)) = &copy {
                let v = w.object_version(sb, sk, sv.as_deref())?.clone();
                // An archived source must be restored first (CopyObject API reference).
                if !v.readable_at(env.now) {
                    return Err(m::class::source_not_restored(v.storage_class));
                }
                let replace = req.header("x-amz-metadata-directive") == Some("REPLACE");
                // Copying an object onto itself is how its class is changed; it is
                // refused only when nothing would change.
                let new_class = asked_class.is_some_and(|c| c != v.storage_class);
                if !replace {
                    if *sb == bucket && *sk == key && sv.is_none() && !new_class {
                        return Err(invalid_request(
                            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
                        ));
                    }
                    headers = v.headers.clone();
                    meta = v.metadata.clone();
                }
                if req.header("x-amz-tagging-directive") != Some("REPLACE") {
                    tags = v.tags.clone();
                }
                if let Some(p) = preconditions_copy(req, &v)? {
                    return Err(p);
                }
                source_version = Some(v.version_id.clone());
                let bytes = blobs.read(&v.blob, None).await?;
                // The copy keeps a checksum in the source's algorithm, or the one the
                // request names; computed over the copy's bytes, so a multipart
                // source's composite value becomes a full-object one.
                let algorithm = match req.header("x-amz-checksum-algorithm") {
                    Some(name) => checksum::Algorithm::from_name(name)
                        .ok_or_else(|| invalid_request(checksum::unsupported_algorithm()))?,
                    // A source without one gets S3's default, as any new object.
                    None => v
                        .checksum
                        .as_ref()
                        .and_then(|c| checksum::Algorithm::from_name(&c.algorithm))
                        .unwrap_or(checksum::DEFAULT),
                };
                sum = Some(m::ObjectChecksum {
                    algorithm: algorithm.name().to_string(),
                    value: checksum::encode(&checksum::digest(algorithm, &bytes)),
                    kind: "FULL_OBJECT".to_string(),
                });
                blobs.write([bytes.as_slice()])?
            } else {
                check_content_md5(req)?;
                sum = Some(uploaded_checksum(req)?);
                store_body(&blobs, req)?
            };
            check_metadata(&meta)?;
            let etag = etag_of(&written.md5);
            let new = NewVersion {
                checksum: sum.clone(),
                blob: written.name.clone(),
                size: written.size,
                etag: etag.clone(),
                headers,
                metadata: meta,
                tags,
                parts: Vec::new(),
                storage_class: class,
            };
            let mut linked = Vec::new();
            let r = mutate(state, account, &env, |w, env| {
                let (vid, freed) = w.put_object(env, &bucket, &key, new)?;
                replication::replicate(w, env, &blobs, &bucket, &key, &vid, &mut linked);
                Ok((vid, freed))
            });
            let vid = match r {
                Ok(v) => v,
                Err(e) => {
                    blobs.delete(&[written.name]);
                    blobs.delete(&linked);
                    return Err(e);
                }
            };
            let versioned = vid != "null";
            if let Some((_, _, _)) = copy {
                let mut out = Out::xml("CopyObjectResult", |x| {
                    x.leaf("ETag", &etag).leaf("LastModified", iso(env.now.0));
                    if let Some(c) = &sum
                        && let Some(a) = checksum::Algorithm::from_name(&c.algorithm)
                    {
                        x.leaf(a.element(), &c.value).leaf("ChecksumType", &c.kind);
                    }
                });
                if versioned {
                    out = out.header("x-amz-version-id", vid.clone());
                }
                if let Some(sv) = source_version.filter(|v| v != "null") {
                    out = out.header("x-amz-copy-source-version-id", sv);
                }
                return Ok(with_expiration(
                    state, account, &env, &bucket, &key, &vid, out,
                ));
            }
            let mut out = Out::empty(200).header("etag", etag);
            if let Some(c) = &sum {
                out = checksum_headers(out, c);
            }
            out = with_expiration(state, account, &env, &bucket, &key, &vid, out);
            if versioned {
                out = out.header("x-amz-version-id", vid);
            }
            Ok(out)
        }
        "GET" | "HEAD" if upload_id.is_some() && method == "GET" => {
            let env = env.with_action("ListParts");
            let w = read(state, account, &env)?;
            let u = w.upload(&bucket, &key, upload_id.as_deref().unwrap_or(""))?;
            let out = Out::xml("ListPartsResult", |x| {
                x.leaf("Bucket", &bucket)
                    .leaf("Key", &key)
                    .leaf("UploadId", &u.id);
                x.leaf("PartNumberMarker", 0)
                    .leaf("MaxParts", 1000)
                    .leaf("IsTruncated", false);
                x.leaf("StorageClass", u.storage_class.name());
                let alg = u.checksum.as_ref().and_then(|c| {
                    checksum::Algorithm::from_name(&c.algorithm).map(|a| (a, c.kind.as_str()))
                });
                if let Some((a, kind)) = alg {
                    x.leaf("ChecksumAlgorithm", a.name())
                        .leaf("ChecksumType", kind);
                }
                for (n, p) in &u.parts {
                    x.node("Part", |x| {
                        x.leaf("PartNumber", n)
                            .leaf("LastModified", iso(p.last_modified))
                            .leaf("ETag", &p.etag)
                            .leaf("Size", p.size);
                        if let (Some((a, _)), Some(v)) = (alg, &p.checksum) {
                            x.leaf(a.element(), v);
                        }
                    });
                }
            });
            Ok(lifecycle::abort_headers(
                out,
                w.bucket(&bucket)?,
                &key,
                u.created,
            ))
        }
        "GET" if req.has("tagging") => {
            let w = read(state, account, &env.with_action("GetObjectTagging"))?;
            let v = w.object_version(&bucket, &key, version_id.as_deref())?;
            let vid = v.version_id.clone();
            Ok(tagging_xml(&v.tags).header("x-amz-version-id", vid))
        }
        "GET" if req.has("acl") => {
            read(state, account, &env)?.object_version(&bucket, &key, version_id.as_deref())?;
            Ok(owner_acl(account))
        }
        "GET" if req.has("attributes") => {
            let env = env.with_action("GetObjectAttributes");
            object_attributes(state, account, &env, req, version_id.as_deref())
        }
        "GET" | "HEAD" => {
            let env = env.with_action(if method == "GET" {
                "GetObject"
            } else {
                "HeadObject"
            });
            // `?partNumber=N` reads one part as if it were a range (GetObject and
            // HeadObject API reference, "partNumber"); it cannot be combined with a
            // Range header.
            let part_number = req.q("partNumber").map(part_number_param).transpose()?;
            if part_number.is_some() && req.header("range").is_some() {
                return Err(invalid_request(
                    "Cannot specify both Range header and partNumber query parameter",
                ));
            }
            let w = read(state, account, &env)?;
            let (versioned, v) = readable_version(&w, &bucket, &key, version_id.as_deref())?;
            // HeadObject reads an archived object's metadata; GetObject needs its bytes,
            // which only a completed restore makes available (GetObject API reference,
            // InvalidObjectState).
            if method == "GET" && !v.readable_at(env.now) {
                return Err(m::class::not_restored(v.storage_class));
            }
            if let Some(out) = preconditions(req, &v)? {
                return Ok(out);
            }
            let span = match part_number.map(|n| v.part_span(n)) {
                None => None,
                Some(Ok(span)) => Some(span),
                Some(Err(m::PartMiss::NoSuchPart)) => {
                    // S3 names the part asked for and how many the object has, after
                    // the message. The API reference documents the code and its 416,
                    // not these two elements: they are what S3 is observed to send
                    // (docs/fidelity.md).
                    return Err(ApiError::new(
                        "InvalidPartNumber",
                        "The requested partnumber is not satisfiable",
                    )
                    .with_status(416)
                    .with_element(
                        "PartNumberRequested",
                        part_number.unwrap_or_default().to_string(),
                    )
                    .with_element("ActualPartCount", v.parts_count().to_string()));
                }
                Some(Err(m::PartMiss::BoundariesUnknown)) => {
                    return Err(ApiError::new(
                        "NotImplemented",
                        "This multipart object was stored before vpclab kept part boundaries, so its parts cannot be read one by one.",
                    )
                    .with_status(501));
                }
            };
            // A part is answered like a range of the whole object (206 with a
            // Content-Range), except that an empty object has no byte to range over.
            let range = match &span {
                Some(s) => (s.end > s.start).then_some((s.start, s.end)),
                None => parse_range(req.header("range"), v.size)?,
            };
            let blobs = state.blobs()?;
            let (start, end) = range.unwrap_or((0, v.size));
            let mut out = Out::empty(if range.is_some() { 206 } else { 200 });
            if method == "GET" {
                out.blob = Some(blobs.open_range(&v.blob, start, end)?);
            }
            if range.is_some() {
                out = out.header(
                    "content-range",
                    format!("bytes {start}-{}/{}", end - 1, v.size),
                );
            }
            out = out.header("content-length", (end - start).to_string());
            // `response-content-type` & co. override stored headers on GET (presigned
            // URLs use them).
            for (q, h) in [
                ("response-content-type", "content-type"),
                ("response-content-disposition", "content-disposition"),
                ("response-cache-control", "cache-control"),
                ("response-content-encoding", "content-encoding"),
            ] {
                if let Some(val) = req.q(q) {
                    out.headers.push((h.to_string(), val.to_string()));
                }
            }
            let overridden: Vec<String> = out.headers.iter().map(|(k, _)| k.clone()).collect();
            let mut v2 = v.clone();
            v2.headers.retain(|k, _| !overridden.contains(k));
            out = version_headers(out, &v2, versioned);
            if version_id.is_none() {
                out = lifecycle::expiration_header(out, w.bucket(&bucket)?, &key, &v);
            }
            out = class_headers(out, &v, env.now);
            // `x-amz-mp-parts-count` is sent only for a part of a multipart object
            // (HeadObject API reference, "PartsCount").
            if span.is_some() && v.multipart_etag_count().is_some() {
                out = out.header("x-amz-mp-parts-count", v.parts_count().to_string());
            }
            // The stored checksum describes the whole object, so a range is answered
            // without it, and a part of a multipart object with the part's own.
            if checksum_mode(req) {
                match (&span, &v.checksum) {
                    (Some(m::PartSpan { part: Some(p), .. }), Some(c)) => {
                        if let (Some(a), Some(value)) =
                            (checksum::Algorithm::from_name(&c.algorithm), &p.checksum)
                        {
                            out = out.header(a.header(), value.clone());
                        }
                    }
                    (Some(m::PartSpan { part: None, .. }), Some(c)) => {
                        out = checksum_headers(out, c);
                    }
                    (None, Some(c)) if range.is_none() => {
                        out = checksum_headers(out, c);
                    }
                    _ => {}
                }
            }
            Ok(out)
        }
        "DELETE" if upload_id.is_some() => {
            let env = env.with_action("AbortMultipartUpload");
            let id = upload_id.unwrap_or_default();
            mutate(state, account, &env, |w, _| {
                Ok(((), w.abort_upload(&bucket, &key, &id)?))
            })?;
            Ok(Out::empty(204))
        }
        "DELETE" if req.has("tagging") => {
            let env = env.with_action("DeleteObjectTagging");
            let vid = mutate(state, account, &env, |w, env| {
                Ok((
                    w.delete_object_tags(env, &bucket, &key, version_id.as_deref())?,
                    Vec::new(),
                ))
            })?;
            Ok(Out::empty(204).header("x-amz-version-id", vid))
        }
        "DELETE" => {
            let env = env.with_action("DeleteObject");
            let (vid, marker) = mutate(state, account, &env, |w, env| {
                let (vid, marker, freed) =
                    w.delete_object(env, &bucket, &key, version_id.as_deref())?;
                Ok(((vid, marker), freed))
            })?;
            let mut out = Out::empty(204);
            if let Some(v) = vid {
                out = out.header("x-amz-version-id", v);
            }
            if marker {
                out = out.header("x-amz-delete-marker", "true");
            }
            Ok(out)
        }
        "POST" if req.has("restore") => {
            let env = env.with_action("RestoreObject");
            let (days, tier) = parse_restore_request(&req.body)?;
            let outcome = mutate(state, account, &env, |w, env| {
                let o = w.restore_object(env, &bucket, &key, version_id.as_deref(), days, tier)?;
                Ok((o, Vec::new()))
            })?;
            // 202 Accepted for a restore started, 200 OK for one already done (its
            // expiry moved).
            Ok(Out::empty(match outcome {
                m::RestoreOutcome::Started => 202,
                m::RestoreOutcome::Extended => 200,
            }))
        }
        "POST" if req.has("uploads") => {
            no_self_acl(req)?;
            let env = env.with_action("CreateMultipartUpload");
            let (headers, meta) = stored_headers(req);
            check_metadata(&meta)?;
            let tags = header_tags(req);
            let sum = upload_checksum(req)?;
            let class = storage_class_header(req)?.unwrap_or_default();
            let settings = sum.clone();
            let id = mutate(state, account, &env, |w, env| {
                let id = w.create_upload(env, &bucket, &key, headers, meta, tags)?;
                w.set_upload_checksum(&id, settings);
                w.set_upload_class(&id, class);
                Ok((id, Vec::new()))
            })?;
            let mut out = Out::xml("InitiateMultipartUploadResult", |x| {
                x.leaf("Bucket", &bucket)
                    .leaf("Key", &key)
                    .leaf("UploadId", &id);
            });
            if let Some(c) = sum {
                out = out
                    .header("x-amz-checksum-algorithm", c.algorithm)
                    .header("x-amz-checksum-type", c.kind);
            }
            let w = read(state, account, &env)?;
            if let Ok(u) = w.upload(&bucket, &key, &id) {
                out = lifecycle::abort_headers(out, w.bucket(&bucket)?, &key, u.created);
            }
            Ok(out)
        }
        "POST" if upload_id.is_some() => {
            let env = env.with_action("CompleteMultipartUpload");
            let id = upload_id.unwrap_or_default();
            let doc = parse_xml(&req.body)?;
            let mut wanted = Vec::new();
            let mut claimed_sums = Vec::new();
            for p in doc.children_named("Part") {
                let n = p
                    .text_of("PartNumber")
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(malformed_xml)?;
                let etag = p.text_of("ETag").unwrap_or("").to_string();
                wanted.push((n, etag));
                claimed_sums.push(
                    checksum::Algorithm::ALL
                        .into_iter()
                        .find_map(|a| p.text_of(a.element()).map(|v| v.trim().to_string())),
                );
            }
            let w = read(state, account, &env)?;
            let settings = w.upload(&bucket, &key, &id)?.checksum.clone();
            check_completion_type(req, settings.as_ref())?;
            let parts = w.parts_to_complete(&bucket, &key, &id, &wanted)?;
            drop(w);
            let alg = settings
                .as_ref()
                .and_then(|c| checksum::Algorithm::from_name(&c.algorithm));
            // A part's checksum named in the request must be the one it was uploaded
            // with, like its ETag.
            for (p, claimed) in parts.iter().zip(&claimed_sums) {
                if let Some(c) = claimed
                    && alg.is_some()
                    && p.checksum.as_deref() != Some(c.as_str())
                {
                    return Err(ApiError::new(
                        "InvalidPart",
                        "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.",
                    ));
                }
            }
            let full = alg.filter(|_| settings.as_ref().is_some_and(|c| c.kind == "FULL_OBJECT"));
            let blobs = state.blobs()?.clone();
            let names: Vec<String> = parts.iter().map(|p| p.blob.clone()).collect();
            // An upload created without an algorithm gets S3's default checksum, over the
            // whole object.
            let written =
                blobs.concat(&names, full.or(alg.is_none().then_some(checksum::DEFAULT)))?;
            let sum = match (alg, full, &written.checksum) {
                (Some(_), Some(_), Some(d)) => Some(checksum::encode(d)),
                (Some(a), _, _) => {
                    let digests: Option<Vec<Vec<u8>>> = parts
                        .iter()
                        .map(|p| p.checksum.as_deref().and_then(|v| checksum::decode(a, v)))
                        .collect();
                    digests.map(|d| checksum::composite(a, d.iter().map(Vec::as_slice)))
                }
                _ => None,
            };
            // A full-object value sent with the request is checked like a PutObject's.
            if let (Some(a), Some(_), Some(v)) = (alg, full, &sum)
                && let Some(sent) = req.header(a.header())
                && sent.trim() != v
            {
                blobs.delete(&[written.name]);
                return Err(ApiError::new(
                    "BadDigest",
                    format!(
                        "The {} you specified did not match the calculated checksum.",
                        a.name()
                    ),
                ));
            }
            let sum = sum
                .zip(alg)
                .zip(settings)
                .map(|((value, a), c)| m::ObjectChecksum {
                    algorithm: a.name().to_string(),
                    value,
                    kind: c.kind,
                })
                .or_else(|| {
                    let d = written.checksum.as_ref().filter(|_| alg.is_none())?;
                    Some(m::ObjectChecksum {
                        algorithm: checksum::DEFAULT.name().to_string(),
                        value: checksum::encode(d),
                        kind: "FULL_OBJECT".to_string(),
                    })
                });
            // S3's multipart ETag: MD5 of the concatenated binary part MD5s, then `-N`.
            let mut h = md5::Md5::new();
            for p in &parts {
                h.update(hex::decode(&p.md5_hex).unwrap_or_default());
            }
            let etag = format!("\"{}-{}\"", hex::encode(h.finalize()), parts.len());
            // The object keeps its parts' numbers, sizes and checksums, for
            // `GET ?partNumber=N` and GetObjectAttributes' `ObjectParts`.
            let kept = wanted
                .iter()
                .zip(&parts)
                .map(|((n, _), p)| m::ObjectPart {
                    number: *n,
                    size: p.size,
                    // In the upload's algorithm, or S3's default without one.
                    checksum: p.checksum.clone(),
                })
                .collect();
            let new = NewVersion {
                blob: written.name.clone(),
                size: written.size,
                etag: etag.clone(),
                checksum: sum.clone(),
                parts: kept,
                ..NewVersion::default()
            };
            let mut linked = Vec::new();
            let r = mutate(state, account, &env, |w, env| {
                let (vid, freed) = w.complete_upload(env, &id, new)?;
                replication::replicate(w, env, &blobs, &bucket, &key, &vid, &mut linked);
                Ok((vid, freed))
            });
            let vid = match r {
                Ok(v) => v,
                Err(e) => {
                    blobs.delete(&[written.name]);
                    blobs.delete(&linked);
                    return Err(e);
                }
            };
            let mut out = Out::xml("CompleteMultipartUploadResult", |x| {
                x.leaf("Location", format!("/{bucket}/{key}"))
                    .leaf("Bucket", &bucket)
                    .leaf("Key", &key)
                    .leaf("ETag", &etag);
                if let Some(c) = &sum
                    && let Some(a) = checksum::Algorithm::from_name(&c.algorithm)
                {
                    x.leaf(a.element(), &c.value).leaf("ChecksumType", &c.kind);
                }
            });
            out = with_expiration(state, account, &env, &bucket, &key, &vid, out);
            if vid != "null" {
                out = out.header("x-amz-version-id", vid);
            }
            Ok(out)
        }
        _ => Err(method_not_allowed()),
    }
}

/// GetObjectAttributes: the attributes `x-amz-object-attributes` names (`ETag`,
/// `Checksum`, `ObjectParts`, `StorageClass`, `ObjectSize`) in one XML document.
/// `ObjectParts` is given for multipart objects only. As on general purpose buckets
/// (API reference, GetObjectAttributesParts, "Parts"), the page of `Part` entries (with
/// its markers, `MaxParts` and `IsTruncated`) comes only when the object has an
/// additional checksum; otherwise just `PartsCount`. The page honours
/// `x-amz-max-parts` (default 1,000) and `x-amz-part-number-marker`.
fn object_attributes(
    state: &AppState,
    account: &str,
    env: &Env,
    req: &S3Req,
    version_id: Option<&str>,
) -> ApiResult<Out> {
    const NAMES: [&str; 5] = [
        "ETag",
        "Checksum",
        "ObjectParts",
        "StorageClass",
        "ObjectSize",
    ];
    let asked: Vec<&str> = req
        .header("x-amz-object-attributes")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if asked.is_empty() || asked.iter().any(|a| !NAMES.contains(a)) {
        return Err(ApiError::new(
            "InvalidArgument",
            "Invalid attribute name specified.",
        ));
    }
    let int_header = |name: &str, default: u32| -> ApiResult<u32> {
        match req.header(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse::<u32>().map_err(|_| {
                invalid_argument_xml(&format!("Provided {name} header must be an integer."))
            }),
        }
    };
    let max_parts = int_header("x-amz-max-parts", 1000)?.min(1000);
    let marker = int_header("x-amz-part-number-marker", 0)?;
    let w = read(state, account, env)?;
    let (versioned, v) = readable_version(&w, req.bucket(), req.key(), version_id)?;
    let parts: Option<u32> = v.multipart_etag_count().map(|_| v.parts_count());
    let alg = v
        .checksum
        .as_ref()
        .and_then(|c| checksum::Algorithm::from_name(&c.algorithm));
    // The page of parts after the marker, one more than asked to tell truncation.
    let page: Vec<&m::ObjectPart> = v
        .parts
        .iter()
        .filter(|p| p.number > marker)
        .take(max_parts as usize + 1)
        .collect();
    let truncated = page.len() > max_parts as usize;
    let page = &page[..page.len().min(max_parts as usize)];
    let mut out = Out::xml("GetObjectAttributesOutput", |x| {
        if asked.contains(&"ETag") {
            x.leaf("ETag", v.etag.trim_matches('"'));
        }
        if asked.contains(&"Checksum")
            && let Some(c) = &v.checksum
            && let Some(a) = checksum::Algorithm::from_name(&c.algorithm)
        {
            x.node("Checksum", |x| {
                x.leaf(a.element(), &c.value).leaf("ChecksumType", &c.kind);
            });
        }
        if asked.contains(&"ObjectParts")
            && let Some(n) = parts
        {
            x.node("ObjectParts", |x| {
                if let Some(a) = alg.filter(|_| !v.parts.is_empty()) {
                    x.leaf("PartNumberMarker", marker);
                    if let Some(last) = page.last() {
                        x.leaf("NextPartNumberMarker", last.number);
                    }
                    x.leaf("MaxParts", max_parts).leaf("IsTruncated", truncated);
                    for p in page {
                        x.node("Part", |x| {
                            if let Some(sum) = &p.checksum {
                                x.leaf(a.element(), sum);
                            }
                            x.leaf("PartNumber", p.number).leaf("Size", p.size);
                        });
                    }
                }
                x.leaf("PartsCount", n);
            });
        }
        if asked.contains(&"StorageClass") {
            x.leaf("StorageClass", v.storage_class.name());
        }
        if asked.contains(&"ObjectSize") {
            x.leaf("ObjectSize", v.size);
        }
    })
    .header("last-modified", http_date(v.last_modified));
    if versioned || v.version_id != "null" {
        out = out.header("x-amz-version-id", v.version_id.clone());
    }
    Ok(out)
}

/// `x-amz-copy-source-if-match` / `-if-none-match`.
fn preconditions_copy(req: &S3Req, v: &Version) -> ApiResult<Option<ApiError>> {
    let etag = v.etag.trim_matches('"');
    let failed = || {
        ApiError::new(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
        .with_status(412)
    };
    if let Some(h) = req.header("x-amz-copy-source-if-match")
        && h.trim().trim_matches('"') != etag
    {
        return Ok(Some(failed()));
    }
    if let Some(h) = req.header("x-amz-copy-source-if-none-match")
        && h.trim().trim_matches('"') == etag
    {
        return Ok(Some(failed()));
    }
    Ok(None)
}

/// Sweeps blobs no stored row names (crash leftovers). Called once at start-up.
pub fn sweep_orphans(control: &crate::model::Control, blobs: &blob::BlobStore) -> usize {
    let mut live = std::collections::HashSet::new();
    for account in control.accounts() {
        if let Some(w) = control.snapshot(&account) {
            live.extend(w.s3_blobs().map(str::to_string));
        }
    }
    blobs.sweep(&live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_buckets_and_websites() {
        assert_eq!(classify_host("localhost:4566"), HostKind::Plain);
        assert_eq!(classify_host("127.0.0.1:4566"), HostKind::Plain);
        assert_eq!(
            classify_host("photos.s3.localhost:4566"),
            HostKind::Bucket("photos".into())
        );
        assert_eq!(
            classify_host("my.dotted.bucket.s3.us-west-2.amazonaws.com"),
            HostKind::Bucket("my.dotted.bucket".into())
        );
        assert_eq!(
            classify_host("site.s3-website-us-east-1.localhost:8080"),
            HostKind::Website {
                bucket: "site".into(),
                region: "us-east-1".into()
            }
        );
        assert_eq!(
            classify_host("site.s3-website.eu-central-1.amazonaws.com"),
            HostKind::Website {
                bucket: "site".into(),
                region: "eu-central-1".into()
            }
        );
        assert_eq!(classify_host("s3.us-east-1.amazonaws.com"), HostKind::Plain);
    }

    #[test]
    fn ranges_follow_rfc_7233_as_s3_reads_them() {
        assert_eq!(parse_range(Some("bytes=0-4"), 10).unwrap(), Some((0, 5)));
        assert_eq!(parse_range(Some("bytes=5-"), 10).unwrap(), Some((5, 10)));
        assert_eq!(parse_range(Some("bytes=-3"), 10).unwrap(), Some((7, 10)));
        assert_eq!(parse_range(Some("bytes=8-100"), 10).unwrap(), Some((8, 10)));
        assert_eq!(parse_range(Some("bytes=10-"), 10).unwrap_err().status, 416);
        assert_eq!(parse_range(None, 10).unwrap(), None);
    }

    #[test]
    fn aws_chunked_bodies_decode() {
        let body = b"5;chunk-signature=abc\r\nhello\r\n3\r\n!!!\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        let (data, trailers) = decode_aws_chunked(body).unwrap();
        assert_eq!(data, b"hello!!!");
        assert_eq!(
            trailers,
            [("x-amz-checksum-crc32".to_string(), "AAAAAA==".to_string())]
        );
        assert!(decode_aws_chunked(b"zz\r\n").is_err());
    }
}
