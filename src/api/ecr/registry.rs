//! The ECR registry endpoint: the OCI distribution API (Docker Registry HTTP API v2)
//! that `docker push`, `skopeo copy` and `crane` speak, on the daemon's port. Requests
//! reach it by Host (`ACCOUNT.dkr.ecr.REGION.localhost[:PORT]`) or by a `/v2/` path.
//!
//! Authentication is HTTP Basic with the user `AWS` and the password of
//! `aws ecr get-login-password` (a token naming the account and region, signed by this
//! daemon). Blobs (layers, configs) are content-addressed files under the state
//! directory's `ecr/blobs/sha256/`, written temp + rename and verified against their
//! digest; manifests live in the model (`model::ecr`), so DescribeImages shows what was
//! pushed. Uploads: monolithic (`POST …?digest=`) or chunked (`POST`, `PATCH`s, `PUT
//! ?digest=`), held in `ecr/uploads/` until they complete.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::AppState;
use crate::model::Env;
use crate::model::ecr::PutImage;

/// The largest blob or chunk accepted in one request.
const MAX_BLOB: usize = 512 * 1024 * 1024;
/// The largest manifest (the distribution spec suggests registries accept 4 MiB).
const MAX_MANIFEST: usize = 4 * 1024 * 1024;

struct Upload {
    account: String,
    region: String,
    repo: String,
    size: u64,
}

/// The registry's files and the uploads in progress.
pub struct Registry {
    dir: PathBuf,
    uploads: Mutex<HashMap<String, Upload>>,
}

impl Registry {
    /// Opens (creating) the registry's folder.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Registry> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("blobs").join("sha256"))?;
        std::fs::create_dir_all(dir.join("uploads"))?;
        // Uploads do not survive a restart (clients start them again).
        if let Ok(rd) = std::fs::read_dir(dir.join("uploads")) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Registry {
            dir,
            uploads: Mutex::new(HashMap::new()),
        })
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
        .then(|| self.dir.join("blobs").join("sha256").join(hex))
    }

    fn upload_path(&self, id: &str) -> PathBuf {
        self.dir.join("uploads").join(id)
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_some_and(|p| p.is_file())
    }

    /// Moves a finished upload into place if its bytes hash to `digest`; the error is
    /// the registry's answer.
    fn commit(&self, file: &Path, digest: &str) -> Result<u64, Box<Response>> {
        let bad_digest = || {
            Box::new(error(
                400,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
            ))
        };
        let Some(dst) = self.blob_path(digest) else {
            return Err(bad_digest());
        };
        let bytes = std::fs::read(file).map_err(|_| Box::new(internal()))?;
        let got = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if got != digest {
            let _ = std::fs::remove_file(file);
            return Err(bad_digest());
        }
        std::fs::rename(file, &dst).map_err(|_| Box::new(internal()))?;
        Ok(bytes.len() as u64)
    }
}

/// Whether a request is for the registry: its Host is a registry host, or its path is
/// under `/v2/`.
pub fn is_registry_request(req: &Request) -> bool {
    let path = req.uri().path();
    path == "/v2" || path.starts_with("/v2/") || registry_host(req.headers()).is_some()
}

/// (account, region) of `ACCOUNT.dkr.ecr.REGION.localhost[:PORT]` (or `.amazonaws.com`).
fn registry_host(headers: &HeaderMap) -> Option<(String, String)> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let rest = host
        .strip_suffix(".localhost")
        .or_else(|| host.strip_suffix(".amazonaws.com"))?;
    let (account, region) = rest.split_once(".dkr.ecr.")?;
    (account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()))
        .then(|| (account.to_string(), region.to_string()))
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message, "detail": {}}]}).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    r
}

fn internal() -> Response {
    error(500, "UNKNOWN", "unknown error")
}

fn respond(status: u16, headers: &[(&str, String)], body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(name, value);
        }
    }
    r
}

fn unauthorized(account: &str, region: &str) -> Response {
    let mut r = error(
        401,
        "DENIED",
        "Your authorization token has expired or is not valid. Reauthenticate with aws ecr get-login-password.",
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "Basic realm=\"https://{account}.dkr.ecr.{region}.amazonaws.com/\",service=\"ecr.amazonaws.com\""
    )) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The caller's (account, region) from `Authorization: Basic AWS:<password>`.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Option<(String, String)> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = h.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pw) = text.split_once(':')?;
    if user != "AWS" {
        return None;
    }
    super::check_password(pw, (state.clock)().0)
}

/// What a `/v2/…` path asks for.
enum Target<'a> {
    Base,
    Uploads(&'a str, Option<&'a str>),
    Blob(&'a str, &'a str),
    Manifest(&'a str, &'a str),
    Tags(&'a str),
}

fn parse(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Target::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some(i) = rest.rfind("/blobs/uploads") {
        let id = rest[i + "/blobs/uploads".len()..].trim_start_matches('/');
        return Some(Target::Uploads(&rest[..i], (!id.is_empty()).then_some(id)));
    }
    if let Some(i) = rest.rfind("/blobs/") {
        return Some(Target::Blob(&rest[..i], &rest[i + "/blobs/".len()..]));
    }
    if let Some(i) = rest.rfind("/manifests/") {
        return Some(Target::Manifest(
            &rest[..i],
            &rest[i + "/manifests/".len()..],
        ));
    }
    None
}

fn query(req_query: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(req_query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Serves one registry request.
pub async fn endpoint(state: AppState, req: Request) -> Response {
    let Some(reg) = state.ecr.clone() else {
        return error(503, "UNAVAILABLE", "the registry is not configured");
    };
    let (parts, body) = req.into_parts();
    let host = registry_host(&parts.headers);
    let Some((account, region)) = authenticate(&state, &parts.headers) else {
        let (a, r) = host.unwrap_or(("000000000000".into(), "us-east-1".into()));
        return unauthorized(&a, &r);
    };
    if let Some((a, _)) = &host
        && *a != account
    {
        return error(403, "DENIED", "The token was issued for another account.");
    }
    let Some(target) = parse(parts.uri.path()) else {
        return error(404, "NAME_UNKNOWN", "repository name not known to registry");
    };
    let q = query(parts.uri.query());
    let env = Env::new(region.clone(), (state.clock)());
    let repo_of = |name: &str| {
        let control = state.lock();
        control
            .snapshot(&account)
            .and_then(|w| w.ecr_repository(&env, name).ok().cloned())
    };
    let name_unknown = |name: &str| {
        error(
            404,
            "NAME_UNKNOWN",
            &format!(
                "The repository with name '{name}' does not exist in the registry with id '{account}'"
            ),
        )
    };
    match (&parts.method, target) {
        (_, Target::Base) => respond(
            200,
            &[("Content-Type", "application/json".into())],
            b"{}".to_vec(),
        ),
        (&Method::GET, Target::Tags(name)) => {
            let Some(r) = repo_of(name) else {
                return name_unknown(name);
            };
            let tags: Vec<&String> = r.images.iter().flat_map(|i| i.tags.iter()).collect();
            respond(
                200,
                &[("Content-Type", "application/json".into())],
                json!({"name": name, "tags": tags}).to_string().into_bytes(),
            )
        }
        (m, Target::Blob(name, digest)) if m == Method::GET || m == Method::HEAD => {
            if repo_of(name).is_none() {
                return name_unknown(name);
            }
            let Some(path) = reg.blob_path(digest).filter(|p| p.is_file()) else {
                return error(404, "BLOB_UNKNOWN", "blob unknown to registry");
            };
            let Ok(bytes) = std::fs::read(&path) else {
                return internal();
            };
            let headers = [
                ("Content-Type", "application/octet-stream".to_string()),
                ("Docker-Content-Digest", digest.to_string()),
                ("Content-Length", bytes.len().to_string()),
            ];
            respond(
                200,
                &headers,
                if m == Method::HEAD { Vec::new() } else { bytes },
            )
        }
        (&Method::POST, Target::Uploads(name, None)) => {
            if repo_of(name).is_none() {
                return name_unknown(name);
            }
            let Ok(bytes) = axum::body::to_bytes(body, MAX_BLOB).await else {
                return error(413, "SIZE_INVALID", "blob too large");
            };
            // Cross-repository mount: the blob is already here.
            if let Some(d) = q.get("mount")
                && reg.has_blob(d)
            {
                return respond(
                    201,
                    &[
                        ("Location", format!("/v2/{name}/blobs/{d}")),
                        ("Docker-Content-Digest", d.clone()),
                        ("Content-Length", "0".into()),
                    ],
                    Vec::new(),
                );
            }
            let id = uuid_like();
            let file = reg.upload_path(&id);
            if std::fs::write(&file, &bytes).is_err() {
                return internal();
            }
            if let Some(d) = q.get("digest") {
                return match reg.commit(&file, d) {
                    Ok(_) => respond(
                        201,
                        &[
                            ("Location", format!("/v2/{name}/blobs/{d}")),
                            ("Docker-Content-Digest", d.clone()),
                            ("Content-Length", "0".into()),
                        ],
                        Vec::new(),
                    ),
                    Err(r) => *r,
                };
            }
            reg.uploads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    id.clone(),
                    Upload {
                        account: account.clone(),
                        region: region.clone(),
                        repo: name.to_string(),
                        size: bytes.len() as u64,
                    },
                );
            respond(
                202,
                &[
                    ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
                    ("Docker-Upload-UUID", id.clone()),
                    (
                        "Range",
                        format!("0-{}", (bytes.len() as u64).saturating_sub(1)),
                    ),
                    ("Content-Length", "0".into()),
                ],
                Vec::new(),
            )
        }
        (m, Target::Uploads(name, Some(id)))
            if m == Method::PATCH
                || m == Method::PUT
                || m == Method::GET
                || m == Method::DELETE =>
        {
            let known = reg
                .uploads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .map(|u| (u.account.clone(), u.region.clone(), u.repo.clone(), u.size));
            let Some((u_account, u_region, u_repo, size)) = known else {
                return error(
                    404,
                    "BLOB_UPLOAD_UNKNOWN",
                    "blob upload unknown to registry",
                );
            };
            if u_account != account || u_region != region || u_repo != name {
                return error(
                    404,
                    "BLOB_UPLOAD_UNKNOWN",
                    "blob upload unknown to registry",
                );
            }
            let file = reg.upload_path(id);
            if m == Method::DELETE {
                reg.uploads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
                let _ = std::fs::remove_file(&file);
                return respond(204, &[], Vec::new());
            }
            if m == Method::GET {
                return respond(
                    204,
                    &[
                        ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
                        ("Range", format!("0-{}", size.saturating_sub(1))),
                        ("Docker-Upload-UUID", id.to_string()),
                    ],
                    Vec::new(),
                );
            }
            let Ok(bytes) = axum::body::to_bytes(body, MAX_BLOB).await else {
                return error(413, "SIZE_INVALID", "chunk too large");
            };
            let appended = std::fs::OpenOptions::new()
                .append(true)
                .open(&file)
                .and_then(|mut f| f.write_all(&bytes));
            if appended.is_err() {
                return internal();
            }
            let size = size + bytes.len() as u64;
            if m == Method::PATCH {
                if let Some(u) = reg
                    .uploads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(id)
                {
                    u.size = size;
                }
                return respond(
                    202,
                    &[
                        ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
                        ("Range", format!("0-{}", size.saturating_sub(1))),
                        ("Docker-Upload-UUID", id.to_string()),
                        ("Content-Length", "0".into()),
                    ],
                    Vec::new(),
                );
            }
            let Some(d) = q.get("digest") else {
                return error(400, "DIGEST_INVALID", "digest parameter missing");
            };
            reg.uploads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            match reg.commit(&file, d) {
                Ok(_) => respond(
                    201,
                    &[
                        ("Location", format!("/v2/{name}/blobs/{d}")),
                        ("Docker-Content-Digest", d.clone()),
                        ("Content-Length", "0".into()),
                    ],
                    Vec::new(),
                ),
                Err(r) => *r,
            }
        }
        (&Method::PUT, Target::Manifest(name, reference)) => {
            if repo_of(name).is_none() {
                return name_unknown(name);
            }
            let media_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_MANIFEST).await else {
                return error(413, "MANIFEST_INVALID", "manifest too large");
            };
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            if reference.starts_with("sha256:") && reference != digest {
                return error(
                    400,
                    "DIGEST_INVALID",
                    "provided digest did not match uploaded content",
                );
            }
            let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
                return error(400, "MANIFEST_INVALID", "manifest invalid");
            };
            let media_type = if media_type.is_empty() || media_type == "application/json" {
                doc.get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or("application/vnd.oci.image.manifest.v1+json")
                    .to_string()
            } else {
                media_type
            };
            // The blobs an image manifest references must be here already.
            let mut blobs = Vec::new();
            let mut size = 0u64;
            let refs = doc.get("config").into_iter().chain(
                doc.get("layers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            );
            for r in refs {
                let d = r.get("digest").and_then(Value::as_str).unwrap_or("");
                if !reg.has_blob(d) {
                    return error(
                        400,
                        "MANIFEST_BLOB_UNKNOWN",
                        &format!("blob unknown to registry: {d}"),
                    );
                }
                size += r.get("size").and_then(Value::as_u64).unwrap_or(0);
                blobs.push(d.to_string());
            }
            let labels = doc
                .get("config")
                .and_then(|c| c.get("digest"))
                .and_then(Value::as_str)
                .and_then(|d| reg.blob_path(d))
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|c| c.pointer("/config/Labels").cloned())
                .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l).ok())
                .unwrap_or_default();
            let put = PutImage {
                digest: digest.clone(),
                tag: (!reference.starts_with("sha256:")).then(|| reference.to_string()),
                media_type,
                manifest: String::from_utf8_lossy(&bytes).into_owned(),
                size,
                blobs,
                labels,
            };
            let env = env.clone().with_action("PutImage");
            let r = state.lock().mutate(&account, &env, false, |w, env| {
                w.put_ecr_image(env, name, put)
            });
            match r {
                Ok(()) => respond(
                    201,
                    &[
                        ("Location", format!("/v2/{name}/manifests/{digest}")),
                        ("Docker-Content-Digest", digest),
                        ("Content-Length", "0".into()),
                    ],
                    Vec::new(),
                ),
                Err(e) if e.code == "ImageTagAlreadyExistsException" => {
                    error(400, "TAG_INVALID", &e.message)
                }
                Err(e) => error(400, "MANIFEST_INVALID", &e.message),
            }
        }
        (m, Target::Manifest(name, reference)) if m == Method::GET || m == Method::HEAD => {
            let Some(r) = repo_of(name) else {
                return name_unknown(name);
            };
            let Some(i) = r.image(reference) else {
                return error(
                    404,
                    "MANIFEST_UNKNOWN",
                    &format!("Requested image not found: {reference}"),
                );
            };
            let headers = [
                ("Content-Type", i.media_type.clone()),
                ("Docker-Content-Digest", i.digest.clone()),
                ("Content-Length", i.manifest.len().to_string()),
            ];
            respond(
                200,
                &headers,
                if m == Method::HEAD {
                    Vec::new()
                } else {
                    i.manifest.clone().into_bytes()
                },
            )
        }
        (&Method::DELETE, Target::Manifest(name, reference)) => {
            let env = env.clone().with_action("BatchDeleteImage");
            let r = state.lock().mutate(&account, &env, false, |w, env| {
                w.delete_ecr_image(env, name, Some(reference), None)
            });
            match r {
                Ok(_) => respond(202, &[], Vec::new()),
                Err(_) => error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
            }
        }
        _ => error(405, "UNSUPPORTED", "The operation is unsupported."),
    }
}

/// An upload id: 32 random hex digits in the UUID layout.
fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_repositories_with_slashes() {
        assert!(matches!(parse("/v2/"), Some(Target::Base)));
        assert!(matches!(
            parse("/v2/team/app/blobs/uploads/"),
            Some(Target::Uploads("team/app", None))
        ));
        assert!(matches!(
            parse("/v2/app/blobs/uploads/abc"),
            Some(Target::Uploads("app", Some("abc")))
        ));
        assert!(matches!(
            parse("/v2/app/blobs/sha256:00"),
            Some(Target::Blob("app", "sha256:00"))
        ));
        assert!(matches!(
            parse("/v2/a/b/manifests/latest"),
            Some(Target::Manifest("a/b", "latest"))
        ));
        assert!(matches!(
            parse("/v2/app/tags/list"),
            Some(Target::Tags("app"))
        ));
    }

    #[test]
    fn registry_hosts_name_account_and_region() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("123456789012.dkr.ecr.eu-west-1.localhost:4566"),
        );
        assert_eq!(
            registry_host(&h),
            Some(("123456789012".into(), "eu-west-1".into()))
        );
        h.insert(header::HOST, HeaderValue::from_static("localhost:4566"));
        assert_eq!(registry_host(&h), None);
    }
}
