//! AWS Lambda's REST-JSON API (`/2015-03-31/functions/…`, `/2021-10-31/functions/…/url`,
//! `/2017-03-31/tags/…`), and function URLs (`<id>.lambda-url.<region>.localhost`).
//!
//! Management calls parse the path and JSON body, call one `model::lambda` method
//! through the one door, and render botocore's shapes. Code arrives as a base64 zip
//! (`ZipFile`) or names an S3 object of vpclab's S3; it is checked, written to the code
//! store (`lambda/zips/` in the state directory, temp + fsync + rename) before the commit
//! that names it, and deleted after the commit that frees it. `Invoke` reads the
//! function under the lock, releases it, and waits on the `function` runtime; the
//! invocation's `START`/`END`/`REPORT` lines and the function's own output are then
//! written to CloudWatch Logs (`/aws/lambda/NAME`) in one commit.
//!
//! Errors are `x-amzn-ErrorType: <Code>` with `{"Type": "User", "message": …}` and the
//! status the Lambda API reference gives each error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::Digest as _;

pub mod url;

use super::json::Body;
use super::s3::blob::BlobStore;
use super::{AppState, sigv4};
use crate::function::{Outcome, RunError, Runtime, Spec, Status};
use crate::model::lambda::{self as m, Config, Function};
use crate::model::{ApiError, ApiResult, Env, Timestamp};

/// The largest request body: a 50 MB zip, base64-encoded, in JSON.
pub const MAX_BODY: usize = 70 << 20;
/// Synchronous invocation payload quota (6 MB), and the asynchronous one (1 MB).
pub(crate) const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;
/// Lambda's direct-upload quota for a zipped deployment package (50 MB).
const MAX_ZIP: usize = 50 * 1024 * 1024;

/// Lambda's state in the daemon: where zips live and the runtime that runs them.
pub struct Functions {
    pub code: BlobStore,
    pub runtime: Runtime,
}

impl Functions {
    /// Opens `dir` (`zips/` for packages, `run/` for unpacked code and bootstraps).
    pub fn open(dir: &std::path::Path, clock: crate::model::Clock) -> std::io::Result<Functions> {
        let runtime_dir = dir.join("run");
        // Unpacked copies are a cache: start from nothing so no stale copy survives.
        let _ = std::fs::remove_dir_all(runtime_dir.join("code"));
        Ok(Functions {
            code: BlobStore::open(dir.join("zips"))?,
            runtime: Runtime::new(runtime_dir, clock)?,
        })
    }
}

fn lambda_error(e: &ApiError, request_id: &str) -> Response {
    let body =
        json!({ "Type": if e.status >= 500 { "Service" } else { "User" }, "message": e.message });
    let mut r = json_response(e.status, &body, request_id);
    if let Ok(v) = HeaderValue::from_str(&e.code) {
        r.headers_mut().insert("x-amzn-ErrorType", v);
    }
    r
}

fn json_response(status: u16, body: &Value, request_id: &str) -> Response {
    let mut r = Response::new(HttpBody::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-RequestId", v);
    }
    r
}

/// `2019-10-26T19:47:41.703+0000`, Lambda's LastModified format.
fn lambda_time(ms: i64) -> String {
    Timestamp(ms).iso().replace('Z', "+0000")
}

fn render_config(f: &Function, c: &Config) -> Value {
    let arn = if c.version == "$LATEST" {
        f.arn.clone()
    } else {
        format!("{}:{}", f.arn, c.version)
    };
    let mut v = json!({
        "FunctionName": f.name,
        "FunctionArn": arn,
        "Runtime": c.runtime,
        "Role": c.role,
        "Handler": c.handler,
        "CodeSize": c.code_size,
        "Description": c.description,
        "Timeout": c.timeout,
        "MemorySize": c.memory,
        "LastModified": lambda_time(c.last_modified),
        "CodeSha256": c.code_sha256,
        "Version": c.version,
        "TracingConfig": { "Mode": "PassThrough" },
        "RevisionId": c.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "EphemeralStorage": { "Size": 512 },
        "SnapStart": { "ApplyOn": "None", "OptimizationStatus": "Off" },
        "LoggingConfig": { "LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", f.name) },
    });
    if !c.environment.is_empty() {
        v["Environment"] = json!({ "Variables": c.environment });
    }
    v
}

fn event_invoke_json(f: &Function, qualifier: &str, c: &m::EventInvoke) -> Value {
    let mut v = json!({
        "FunctionArn": format!("{}:{qualifier}", f.arn),
        "LastModified": c.modified.0 as f64 / 1000.0,
        "DestinationConfig": { "OnSuccess": {}, "OnFailure": {} },
    });
    if let Some(r) = c.max_retries {
        v["MaximumRetryAttempts"] = json!(r);
    }
    if let Some(a) = c.max_age_s {
        v["MaximumEventAgeInSeconds"] = json!(a);
    }
    v
}

fn render_alias(f: &Function, a: &m::Alias) -> Value {
    json!({
        "AliasArn": format!("{}:{}", f.arn, a.name),
        "Name": a.name,
        "FunctionVersion": a.version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    })
}

fn render_url(f: &Function, u: &m::UrlConfig, region: &str, host_port: &str) -> Value {
    json!({
        "FunctionUrl": url::public_url(&u.url_id, region, host_port),
        "FunctionArn": match &u.qualifier { Some(q) => format!("{}:{q}", f.arn), None => f.arn.clone() },
        "AuthType": u.auth_type,
        "CreationTime": Timestamp(u.created).iso(),
        "LastModifiedTime": Timestamp(u.last_modified).iso(),
        "InvokeMode": "BUFFERED",
    })
}

/// A parsed request: method, path segments after the API version, query, body.
struct Req {
    method: String,
    version: String,
    segs: Vec<String>,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    host_port: String,
}

impl Req {
    fn json(&self) -> ApiResult<Body> {
        Body::parse(&self.body, "InvalidParameterValueException").map_err(|_| {
            ApiError::new(
                "InvalidRequestContentException",
                "Could not parse request body into json: the body is not a JSON object",
            )
        })
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The IAM action of a request (for the authorization gate), from its method and path.
fn action(r: &Req) -> &'static str {
    let segs: Vec<&str> = r.segs.iter().map(String::as_str).collect();
    match (r.method.as_str(), r.version.as_str(), segs.as_slice()) {
        ("POST", _, ["functions"]) => "CreateFunction",
        ("GET", _, ["functions"]) => "ListFunctions",
        ("GET", _, ["functions", _]) => "GetFunction",
        ("DELETE", _, ["functions", _]) => "DeleteFunction",
        ("GET", _, ["functions", _, "configuration"]) => "GetFunctionConfiguration",
        ("PUT", _, ["functions", _, "configuration"]) => "UpdateFunctionConfiguration",
        ("PUT", _, ["functions", _, "code"]) => "UpdateFunctionCode",
        ("POST", _, ["functions", _, "invocations"]) => "InvokeFunction",
        ("POST", _, ["functions", _, "versions"]) => "PublishVersion",
        ("GET", _, ["functions", _, "versions"]) => "ListVersionsByFunction",
        ("POST", _, ["functions", _, "aliases"]) => "CreateAlias",
        ("GET", _, ["functions", _, "aliases"]) => "ListAliases",
        ("GET", _, ["functions", _, "aliases", _]) => "GetAlias",
        ("PUT", _, ["functions", _, "aliases", _]) => "UpdateAlias",
        ("DELETE", _, ["functions", _, "aliases", _]) => "DeleteAlias",
        ("POST", _, ["functions", _, "policy"]) => "AddPermission",
        ("GET", _, ["functions", _, "policy"]) => "GetPolicy",
        ("DELETE", _, ["functions", _, "policy", _]) => "RemovePermission",
        ("POST", "2021-10-31", ["functions", _, "url"]) => "CreateFunctionUrlConfig",
        ("GET", "2021-10-31", ["functions", _, "url"]) => "GetFunctionUrlConfig",
        ("PUT", "2021-10-31", ["functions", _, "url"]) => "UpdateFunctionUrlConfig",
        ("DELETE", "2021-10-31", ["functions", _, "url"]) => "DeleteFunctionUrlConfig",
        ("GET", _, ["tags", _]) => "ListTags",
        ("POST", _, ["tags", _]) => "TagResource",
        ("DELETE", _, ["tags", _]) => "UntagResource",
        ("GET", _, ["account-settings"]) => "GetAccountSettings",
        ("PUT", "2019-09-25", ["functions", _, "event-invoke-config"]) => {
            "PutFunctionEventInvokeConfig"
        }
        ("POST", "2019-09-25", ["functions", _, "event-invoke-config"]) => {
            "UpdateFunctionEventInvokeConfig"
        }
        ("GET", "2019-09-25", ["functions", _, "event-invoke-config"]) => {
            "GetFunctionEventInvokeConfig"
        }
        ("DELETE", "2019-09-25", ["functions", _, "event-invoke-config"]) => {
            "DeleteFunctionEventInvokeConfig"
        }
        ("GET", "2019-09-25", ["functions", _, "event-invoke-config", "list"]) => {
            "ListFunctionEventInvokeConfigs"
        }
        _ => "",
    }
}

/// Serves one Lambda API request (or a function URL's, by its Host).
pub async fn endpoint(state: AppState, req: Request) -> Response {
    if url::is_url_request(req.headers()) {
        return url::serve(state, req).await;
    }
    let request_id = state.request_id();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return lambda_error(
                &ApiError::new(
                    "RequestTooLargeException",
                    "Request must be smaller than 70167211 bytes for the CreateFunction operation",
                )
                .with_status(413),
                &request_id,
            );
        }
    };
    let signed = super::signed_request(&parts);
    let path = parts
        .uri
        .path()
        .trim_start_matches('/')
        .trim_end_matches('/');
    let mut segs: Vec<String> = path
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let version = if segs.is_empty() {
        String::new()
    } else {
        segs.remove(0)
    };
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    // The Host the call came to: function URLs are reported in the form its caller
    // can reach ([`url::public_url`]).
    let host_port = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let r = Req {
        method: parts.method.as_str().to_string(),
        version,
        segs,
        query,
        headers: parts.headers.clone(),
        body: bytes,
        host_port,
    };
    match handle(&state, &signed, r, &request_id).await {
        Ok(resp) => resp,
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(code = %e.code, message = %e.message, "lambda internal error");
            }
            lambda_error(&e, &request_id)
        }
    }
}

fn functions(state: &AppState) -> ApiResult<Arc<Functions>> {
    state.lambda.clone().ok_or_else(|| {
        ApiError::new("ServiceException", "Lambda's code store is not available.").with_status(500)
    })
}

/// Writes a zip to the code store after checking it unpacks.
fn store_zip(fs: &Functions, zip: &[u8]) -> ApiResult<m::Code> {
    if zip.len() > MAX_ZIP {
        return Err(ApiError::new(
            "RequestEntityTooLargeException",
            format!("Zipped size must be smaller than {MAX_ZIP} bytes"),
        )
        .with_status(413));
    }
    crate::function::zip::check(zip).map_err(|e| {
        m::invalid(format!(
            "Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"
        ))
    })?;
    let written = fs.code.write([zip])?;
    let digest = sha2::Sha256::digest(zip);
    Ok(m::Code {
        blob: written.name,
        sha256: base64::engine::general_purpose::STANDARD.encode(digest),
        size: written.size,
    })
}

/// The zip of a CreateFunction `Code` / UpdateFunctionCode body: `ZipFile` or S3.
async fn code_bytes(
    state: &AppState,
    account: &str,
    env: &Env,
    body: &Body,
    code: Option<&Value>,
) -> ApiResult<Vec<u8>> {
    let get = |k: &str| -> Option<String> {
        match code {
            Some(c) => c.get(k).and_then(Value::as_str).map(str::to_string),
            None => body.str(k).ok().flatten().map(str::to_string),
        }
    };
    if let Some(z) = get("ZipFile") {
        return base64::engine::general_purpose::STANDARD
            .decode(z.as_bytes())
            .map_err(|_| m::invalid("Could not unzip uploaded file. Please check your file, then try to upload again."));
    }
    if let (Some(bucket), Some(key)) = (get("S3Bucket"), get("S3Key")) {
        let blob = {
            let mut control = state.lock();
            let w = control.read(account, env)?;
            let missing = || {
                m::invalid(format!(
                    "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does not exist. (bucket {bucket}, key {key})"
                ))
            };
            if w.bucket(&bucket).is_err() {
                return Err(m::invalid(format!(
                    "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: The specified bucket does not exist (bucket {bucket})"
                )));
            }
            let o = w
                .s3_objects
                .get(&crate::model::s3::object_id(&bucket, &key))
                .ok_or_else(missing)?;
            let v = match get("S3ObjectVersion") {
                Some(id) => o.versions.iter().find(|v| v.version_id == id),
                None => o.live(),
            }
            .filter(|v| !v.delete_marker)
            .ok_or_else(missing)?;
            v.blob.clone()
        };
        let objects = state.objects.clone().ok_or_else(ApiError::internal)?;
        return objects.read(&blob, None).await;
    }
    if get("ImageUri").is_some() {
        return Err(m::invalid(
            "vpclab runs zip packages only: container images are not supported (see docs/fidelity.md)",
        ));
    }
    Err(m::invalid(
        "Please provide a source for function code: ZipFile, or S3Bucket and S3Key.",
    ))
}

fn function_name(r: &Req) -> String {
    let name = r.segs.get(1).cloned().unwrap_or_default();
    match (r.query.get("Qualifier"), m::parse_function_name(&name)) {
        (Some(q), Ok((_, None))) => format!("{name}:{q}"),
        _ => name,
    }
}

async fn handle(
    state: &AppState,
    signed: &sigv4::SignedRequest,
    r: Req,
    request_id: &str,
) -> ApiResult<Response> {
    let identity = state.authenticate(signed, &r.body)?;
    let op = action(&r);
    if op.is_empty() {
        return Err(ApiError::new(
            "UnknownOperationException",
            format!(
                "vpclab does not implement {} /{}/{} (see docs/api.md)",
                r.method,
                r.version,
                r.segs.join("/")
            ),
        )
        .with_status(404));
    }
    let account = identity.account.clone();
    let region = identity.credential.region.clone();
    let env = Env::new(region.clone(), (state.clock)()).with_action(op);
    {
        let control = state.lock();
        let resource = match r.segs.get(1) {
            Some(n) if r.segs[0] == "functions" => m::parse_function_name(n)
                .map(|(n, _)| m::function_arn(&region, &account, &n))
                .unwrap_or_else(|_| "*".into()),
            Some(arn) => arn.clone(),
            None => "*".into(),
        };
        state
            .authorize(
                &control,
                &identity,
                &format!("lambda:{op}"),
                &resource,
                signed,
            )
            .map_err(|d| d.json())?;
        // Handing Lambda an execution role needs `iam:PassRole` on it.
        if matches!(op, "CreateFunction" | "UpdateFunctionConfiguration")
            && let Some(role) = r
                .json()
                .ok()
                .and_then(|b| b.get("Role").and_then(Value::as_str).map(str::to_string))
        {
            state
                .authorize_pass_role(&control, &identity, &[role], "lambda.amazonaws.com", signed)
                .map_err(|d| d.json())?;
        }
    }
    let ok = |status: u16, v: Value| Ok(json_response(status, &v, request_id));
    let mutate = |f: &mut dyn FnMut(&mut crate::model::World, &Env) -> ApiResult<Value>| -> ApiResult<Value> {
        state.lock().mutate(&account, &env, false, |w, e| f(w, e))
    };
    let read = || state.lock().read(&account, &env);
    let name = function_name(&r);
    match op {
        "CreateFunction" => {
            let fs = functions(state)?;
            let b = r.json()?;
            let fname = b.required_str("FunctionName")?.to_string();
            let zip = code_bytes(state, &account, &env, &b, b.get("Code")).await?;
            let code = store_zip(&fs, &zip)?;
            let blob = code.blob.clone();
            let environment = match b.get("Environment") {
                Some(e) => Body::from_map(
                    e.as_object().cloned().unwrap_or_default(),
                    "InvalidParameterValueException",
                )
                .str_map("Variables")?,
                None => BTreeMap::new(),
            };
            let create = m::Create {
                name: fname.clone(),
                runtime: b.str("Runtime")?.map(str::to_string),
                handler: b.str("Handler")?.map(str::to_string),
                role: b.required_str("Role")?.to_string(),
                description: b.str("Description")?.unwrap_or("").to_string(),
                timeout: b.int("Timeout")?,
                memory: b.int("MemorySize")?,
                environment,
                code,
                publish: b.bool("Publish")?.unwrap_or(false),
                tags: b.str_map("Tags")?,
            };
            if b.str("PackageType")? == Some("Image") {
                fs.code.delete(std::slice::from_ref(&blob));
                return Err(m::invalid(
                    "vpclab runs zip packages only: container images are not supported (see docs/fidelity.md)",
                ));
            }
            let result = mutate(&mut |w, e| {
                let c = w.create_function(e, create.clone())?;
                let (f, _) = w.lambda_function(e, &fname)?;
                Ok(render_config(f, &c))
            });
            if result.is_err() {
                fs.code.delete(std::slice::from_ref(&blob));
            }
            ok(201, result?)
        }
        "ListFunctions" => {
            let w = read()?;
            let all: Vec<Value> = w
                .lambda_functions
                .in_region(&region)
                .map(|f| render_config(f, &f.latest))
                .collect();
            let max = r
                .query
                .get("MaxItems")
                .and_then(|m| m.parse::<usize>().ok())
                .unwrap_or(50)
                .clamp(1, 50);
            let start = r
                .query
                .get("Marker")
                .and_then(|m| m.parse::<usize>().ok())
                .unwrap_or(0);
            let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
            let mut out = json!({ "Functions": page });
            if start + max < all.len() {
                out["NextMarker"] = json!((start + max).to_string());
            }
            ok(200, out)
        }
        "GetFunction" | "GetFunctionConfiguration" => {
            let w = read()?;
            let (f, q) = w.lambda_function(&env, &name)?;
            let c = f.config(q.as_deref())?;
            let config = render_config(f, c);
            if op == "GetFunctionConfiguration" {
                return ok(200, config);
            }
            let mut out = json!({
                "Configuration": config,
                "Code": { "RepositoryType": "S3", "Location": "" },
            });
            if !f.tags.is_empty() {
                out["Tags"] = json!(f.tags);
            }
            ok(200, out)
        }
        "DeleteFunction" => {
            let fs = functions(state)?;
            let freed = {
                let mut control = state.lock();
                control.mutate(&account, &env, false, |w, e| {
                    w.delete_function(e, &name, None)
                })?
            };
            fs.code.delete(&freed);
            let (n, q) = m::parse_function_name(&name)?;
            if q.is_none() {
                fs.runtime.forget(&format!("{account}|{region}|{n}|"));
            }
            Ok(empty(204, request_id))
        }
        "UpdateFunctionCode" => {
            let fs = functions(state)?;
            let b = r.json()?;
            let zip = code_bytes(state, &account, &env, &b, None).await?;
            let code = store_zip(&fs, &zip)?;
            let blob = code.blob.clone();
            let publish = b.bool("Publish")?.unwrap_or(false);
            let revision = b.str("RevisionId")?.map(str::to_string);
            let mut freed = Vec::new();
            let result = mutate(&mut |w, e| {
                let (c, f) =
                    w.update_function_code(e, &name, code.clone(), publish, revision.as_deref())?;
                freed = f;
                let (func, _) = w.lambda_function(e, &name)?;
                Ok(render_config(func, &c))
            });
            match result {
                Ok(v) => {
                    fs.code.delete(&freed);
                    ok(200, v)
                }
                Err(e) => {
                    fs.code.delete(std::slice::from_ref(&blob));
                    Err(e)
                }
            }
        }
        "UpdateFunctionConfiguration" => {
            let b = r.json()?;
            let environment = match b.get("Environment") {
                Some(e) => Some(
                    Body::from_map(
                        e.as_object().cloned().unwrap_or_default(),
                        "InvalidParameterValueException",
                    )
                    .str_map("Variables")?,
                ),
                None => None,
            };
            let u = m::Update {
                runtime: b.str("Runtime")?.map(str::to_string),
                handler: b.str("Handler")?.map(str::to_string),
                role: b.str("Role")?.map(str::to_string),
                description: b.str("Description")?.map(str::to_string),
                timeout: b.int("Timeout")?,
                memory: b.int("MemorySize")?,
                environment,
                revision_id: b.str("RevisionId")?.map(str::to_string),
            };
            let v = mutate(&mut |w, e| {
                let c = w.update_function_configuration(e, &name, u.clone())?;
                let (f, _) = w.lambda_function(e, &name)?;
                Ok(render_config(f, &c))
            })?;
            ok(200, v)
        }
        "PublishVersion" => {
            let b = r.json()?;
            let description = b.str("Description")?.unwrap_or("").to_string();
            let sha = b.str("CodeSha256")?.map(str::to_string);
            let v = mutate(&mut |w, e| {
                let c = w.publish_version(e, &name, description.clone(), sha.as_deref())?;
                let (f, _) = w.lambda_function(e, &name)?;
                Ok(render_config(f, &c))
            })?;
            ok(201, v)
        }
        "ListVersionsByFunction" => {
            let w = read()?;
            let (f, _) = w.lambda_function(&env, &name)?;
            let versions: Vec<Value> = std::iter::once(&f.latest)
                .chain(&f.versions)
                .map(|c| render_config(f, c))
                .collect();
            ok(200, json!({ "Versions": versions }))
        }
        "CreateAlias" | "UpdateAlias" => {
            let b = r.json()?;
            let alias = if op == "CreateAlias" {
                b.required_str("Name")?.to_string()
            } else {
                r.segs.get(3).cloned().unwrap_or_default()
            };
            let version = if op == "CreateAlias" {
                Some(b.required_str("FunctionVersion")?.to_string())
            } else {
                b.str("FunctionVersion")?.map(str::to_string)
            };
            let description = b.str("Description")?.map(str::to_string);
            let create = op == "CreateAlias";
            let v = mutate(&mut |w, e| {
                let a = w.put_alias(
                    e,
                    &name,
                    &alias,
                    version.as_deref(),
                    description.clone(),
                    create,
                )?;
                let (f, _) = w.lambda_function(e, &name)?;
                Ok(render_alias(f, &a))
            })?;
            ok(if create { 201 } else { 200 }, v)
        }
        "GetAlias" | "ListAliases" => {
            let w = read()?;
            let (f, _) = w.lambda_function(&env, &name)?;
            if op == "ListAliases" {
                let list: Vec<Value> = f.aliases.values().map(|a| render_alias(f, a)).collect();
                return ok(200, json!({ "Aliases": list }));
            }
            let alias = r.segs.get(3).cloned().unwrap_or_default();
            let a = f.aliases.get(&alias).ok_or_else(|| {
                ApiError::new(
                    "ResourceNotFoundException",
                    format!("Alias not found: {}:{alias}", f.arn),
                )
                .with_status(404)
            })?;
            ok(200, render_alias(f, a))
        }
        "DeleteAlias" => {
            let alias = r.segs.get(3).cloned().unwrap_or_default();
            mutate(&mut |w, e| w.delete_alias(e, &name, &alias).map(|_| Value::Null))?;
            Ok(empty(204, request_id))
        }
        "AddPermission" => {
            let b = r.json()?;
            let p = m::Permission {
                statement_id: b.required_str("StatementId")?.to_string(),
                action: b.required_str("Action")?.to_string(),
                principal: b.required_str("Principal")?.to_string(),
                source_arn: b.str("SourceArn")?.map(str::to_string),
                source_account: b.str("SourceAccount")?.map(str::to_string),
                function_url_auth_type: b.str("FunctionUrlAuthType")?.map(str::to_string),
                invoked_via_function_url: b.bool("InvokedViaFunctionUrl")?.unwrap_or(false),
                revision_id: b.str("RevisionId")?.map(str::to_string),
            };
            let s = mutate(&mut |w, e| w.add_permission(e, &name, p.clone()))?;
            ok(201, json!({ "Statement": s.to_string() }))
        }
        "GetPolicy" => {
            let w = read()?;
            let (f, _) = w.lambda_function(&env, &name)?;
            if f.policy.is_empty() {
                return Err(ApiError::new(
                    "ResourceNotFoundException",
                    "The resource you requested does not exist.",
                )
                .with_status(404));
            }
            let doc = json!({ "Version": "2012-10-17", "Id": "default", "Statement": f.policy });
            ok(
                200,
                json!({ "Policy": doc.to_string(), "RevisionId": f.latest.revision_id }),
            )
        }
        "RemovePermission" => {
            let sid = r.segs.get(3).cloned().unwrap_or_default();
            mutate(&mut |w, e| w.remove_permission(e, &name, &sid).map(|_| Value::Null))?;
            Ok(empty(204, request_id))
        }
        "CreateFunctionUrlConfig" | "UpdateFunctionUrlConfig" => {
            let b = r.json()?;
            let auth = b.str("AuthType")?.map(str::to_string);
            let create = op == "CreateFunctionUrlConfig";
            let host_port = r.host_port.clone();
            let v = mutate(&mut |w, e| {
                let u = w.put_function_url(e, &name, auth.as_deref(), create)?;
                let (f, _) = w.lambda_function(e, &name)?;
                Ok(render_url(f, &u, &e.region, &host_port))
            })?;
            ok(if create { 201 } else { 200 }, v)
        }
        "GetFunctionUrlConfig" => {
            let w = read()?;
            let (f, _) = w.lambda_function(&env, &name)?;
            let u = f.url.as_ref().ok_or_else(|| {
                ApiError::new(
                    "ResourceNotFoundException",
                    "The resource you requested does not exist.",
                )
                .with_status(404)
            })?;
            ok(200, render_url(f, u, &region, &r.host_port))
        }
        "PutFunctionEventInvokeConfig" | "UpdateFunctionEventInvokeConfig" => {
            let b = r.json()?;
            if b.get("DestinationConfig").is_some_and(|d| {
                d.as_object()
                    .is_some_and(|o| o.values().any(|v| v.get("Destination").is_some()))
            }) {
                return Err(m::invalid(
                    "vpclab does not emulate asynchronous invocation destinations (see docs/fidelity.md)",
                ));
            }
            let retries = b.int("MaximumRetryAttempts")?;
            let age = b.int("MaximumEventAgeInSeconds")?;
            let qualifier = r.query.get("Qualifier").cloned();
            let merge = op == "UpdateFunctionEventInvokeConfig";
            let v = mutate(&mut |w, e| {
                let cfg =
                    w.put_event_invoke(e, &name, qualifier.as_deref(), retries, age, merge)?;
                let key = w.event_invoke_key(e, &name, qualifier.as_deref())?;
                let (f, _) = w.lambda_function(e, &name)?;
                Ok(event_invoke_json(f, &key, &cfg))
            })?;
            ok(200, v)
        }
        "GetFunctionEventInvokeConfig" => {
            let w = read()?;
            let qualifier = r.query.get("Qualifier").map(String::as_str);
            let key = w.event_invoke_key(&env, &name, qualifier)?;
            let (f, _) = w.lambda_function(&env, &name)?;
            let cfg = f.event_invoke.get(&key).ok_or_else(|| {
                ApiError::new(
                    "ResourceNotFoundException",
                    format!("The function {} doesn't have an EventInvokeConfig", f.arn),
                )
                .with_status(404)
            })?;
            ok(200, event_invoke_json(f, &key, cfg))
        }
        "DeleteFunctionEventInvokeConfig" => {
            let qualifier = r.query.get("Qualifier").cloned();
            mutate(&mut |w, e| {
                w.delete_event_invoke(e, &name, qualifier.as_deref())
                    .map(|_| Value::Null)
            })?;
            Ok(empty(204, request_id))
        }
        "ListFunctionEventInvokeConfigs" => {
            let w = read()?;
            let (f, _) = w.lambda_function(&env, &name)?;
            let all: Vec<Value> = f
                .event_invoke
                .iter()
                .map(|(k, c)| event_invoke_json(f, k, c))
                .collect();
            ok(200, json!({ "FunctionEventInvokeConfigs": all }))
        }
        "DeleteFunctionUrlConfig" => {
            mutate(&mut |w, e| w.delete_function_url(e, &name).map(|_| Value::Null))?;
            Ok(empty(204, request_id))
        }
        "ListTags" => {
            let w = read()?;
            let (f, _) = w.lambda_function(&env, &name)?;
            ok(200, json!({ "Tags": f.tags }))
        }
        "TagResource" => {
            let b = r.json()?;
            let tags = b.str_map("Tags")?;
            mutate(&mut |w, e| w.tag_function(e, &name, tags.clone()).map(|_| Value::Null))?;
            Ok(empty(204, request_id))
        }
        "UntagResource" => {
            let keys: Vec<String> = r
                .query
                .iter()
                .filter(|(k, _)| k.as_str() == "tagKeys")
                .map(|(_, v)| v.clone())
                .collect();
            // `tagKeys` repeats in the query: read every occurrence, not the map's last.
            let keys = if keys.len() <= 1 {
                form_urlencoded::parse(signed.query.as_deref().unwrap_or("").as_bytes())
                    .filter(|(k, _)| k == "tagKeys")
                    .map(|(_, v)| v.into_owned())
                    .collect()
            } else {
                keys
            };
            mutate(&mut |w, e| w.untag_function(e, &name, &keys).map(|_| Value::Null))?;
            Ok(empty(204, request_id))
        }
        "GetAccountSettings" => {
            let w = read()?;
            let count = w.lambda_functions.in_region(&region).count();
            let size: u64 = w
                .lambda_functions
                .in_region(&region)
                .map(|f| f.latest.code_size + f.versions.iter().map(|v| v.code_size).sum::<u64>())
                .sum();
            ok(
                200,
                json!({
                    "AccountLimit": {
                        "TotalCodeSize": 80_530_636_800u64,
                        "CodeSizeUnzipped": 262_144_000,
                        "CodeSizeZipped": 52_428_800,
                        "ConcurrentExecutions": 1000,
                        "UnreservedConcurrentExecutions": 1000,
                    },
                    "AccountUsage": { "TotalCodeSize": size, "FunctionCount": count },
                }),
            )
        }
        "InvokeFunction" => invoke(state, &account, &env, &name, &r, request_id).await,
        _ => Err(super::json::unknown_operation(op)),
    }
}

fn empty(status: u16, request_id: &str) -> Response {
    let mut r = Response::new(HttpBody::empty());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-RequestId", v);
    }
    r
}

/// What an invocation needs from the model, read under the lock.
fn spec_of(
    state: &AppState,
    fs: &Functions,
    account: &str,
    env: &Env,
    name: &str,
) -> ApiResult<(Spec, String)> {
    let w = state.lock().read(account, env)?;
    let (f, q) = w.lambda_function(env, name)?;
    let c = f.config(q.as_deref())?;
    let invoked_arn = match &q {
        Some(q) => format!("{}:{q}", f.arn),
        None => f.arn.clone(),
    };
    let code_id = hex::encode(
        base64::engine::general_purpose::STANDARD
            .decode(&c.code_sha256)
            .unwrap_or_default(),
    );
    let spec = Spec {
        key: format!("{account}|{}|{}|{}", env.region, f.name, c.version),
        revision: format!("{}|{}", c.revision_id, c.code_sha256),
        name: f.name.clone(),
        version: c.version.clone(),
        arn: invoked_arn,
        region: env.region.clone(),
        runtime: c.runtime.clone(),
        handler: c.handler.clone(),
        memory_mb: u64::try_from(c.memory).unwrap_or(128),
        timeout: std::time::Duration::from_secs(u64::try_from(c.timeout).unwrap_or(3)),
        environment: c.environment.clone(),
        zip: fs.code.dir().join(&c.code_blob),
        code_id,
        log_group: format!("/aws/lambda/{}", f.name),
    };
    Ok((spec, c.version.clone()))
}

/// The invocation's log as CloudWatch gets it: the runtime's START/END/REPORT lines
/// around the function's own output.
pub fn log_lines(
    spec: &Spec,
    request_id: &str,
    start_ms: i64,
    out: &Outcome,
) -> Vec<(i64, String)> {
    let mut lines = vec![(
        start_ms,
        format!("START RequestId: {request_id} Version: {}", spec.version),
    )];
    lines.extend(out.logs.iter().cloned());
    let end_ms = start_ms + i64::try_from(out.duration.as_millis()).unwrap_or(0);
    if matches!(out.status, Status::TimedOut) {
        lines.push((end_ms, timeout_message(spec, request_id, end_ms)));
    }
    lines.push((end_ms, format!("END RequestId: {request_id}")));
    let ms = out.duration.as_secs_f64() * 1000.0;
    let mut report = format!(
        "REPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
        (ms.ceil() as u64).max(1),
        spec.memory_mb,
        out.max_memory_mb,
    );
    if let Some(init) = out.init {
        report.push_str(&format!(
            "Init Duration: {:.2} ms\t",
            init.as_secs_f64() * 1000.0
        ));
    }
    if matches!(out.status, Status::TimedOut) {
        report.push_str("Status: timeout");
    }
    lines.push((end_ms, report));
    // CloudWatch wants a batch in time order.
    let mut last = i64::MIN;
    for (t, _) in lines.iter_mut() {
        *t = (*t).max(last);
        last = *t;
    }
    lines
}

fn timeout_message(spec: &Spec, request_id: &str, at_ms: i64) -> String {
    format!(
        "{} {request_id} Task timed out after {:.2} seconds",
        Timestamp(at_ms).iso(),
        spec.timeout.as_secs_f64()
    )
}

/// Writes an invocation's lines to `/aws/lambda/NAME` (creating the group and stream
/// on first use, as Lambda does with the basic execution role's permissions).
fn write_logs(
    state: &AppState,
    account: &str,
    region: &str,
    stream: &str,
    group: &str,
    lines: &[(i64, String)],
) {
    let events: Vec<crate::model::logs::InputEvent> = lines
        .iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(t, m)| crate::model::logs::InputEvent {
            timestamp: *t,
            message: m.clone(),
        })
        .collect();
    if events.is_empty() {
        return;
    }
    let env = Env::new(region, (state.clock)()).with_action("vpclab:LambdaLogs");
    let result = state.lock().mutate(account, &env, false, |w, e| {
        if w.log_group(e, group).is_err() {
            w.create_log_group(e, group, None, BTreeMap::new())?;
        }
        for chunk in events.chunks(1000) {
            w.put_log_events(e, group, stream, chunk, true)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!(code = %e.code, message = %e.message, "could not write a function's log");
    }
}

fn run_error(e: RunError) -> ApiError {
    match e {
        RunError::Code(m) => ApiError::new(
            "InvalidZipFileException",
            format!("Lambda was unable to unzip the deployment package: {m}"),
        )
        .with_status(502),
        other => ApiError::new("ServiceException", other.to_string()).with_status(500),
    }
}

/// Runs one invocation to its end and records its log. Returns the outcome and the
/// log lines (for `LogType: Tail`).
pub async fn run_invocation(
    state: &AppState,
    fs: &Functions,
    account: &str,
    region: &str,
    spec: &Spec,
    payload: Bytes,
    request_id: &str,
) -> Result<(Outcome, Vec<(i64, String)>), RunError> {
    let start_ms = (state.clock)().0;
    let out = fs.runtime.invoke(spec, payload, request_id).await?;
    let lines = log_lines(spec, request_id, start_ms, &out);
    write_logs(
        state,
        account,
        region,
        &out.log_stream,
        &spec.log_group,
        &lines,
    );
    Ok((out, lines))
}

/// Waits before the first and second retry of a failed asynchronous invocation (Lambda
/// developer guide, "How Lambda handles errors and retries with asynchronous
/// invocation": one minute, then two).
pub const ASYNC_RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(120)];

/// Invokes a function asynchronously (the `Event` type, S3 and SNS triggers): the
/// caller does not wait; the log records what happened.
pub fn invoke_async(
    state: &AppState,
    account: &str,
    region: &str,
    name: &str,
    payload: Bytes,
) -> ApiResult<()> {
    let fs = functions(state)?;
    let env = Env::new(region, (state.clock)());
    let (spec, _) = spec_of(state, &fs, account, &env, name)?;
    let request_id = state.request_id();
    spawn_async(state, fs, account, region, name, spec, payload, request_id);
    Ok(())
}

/// Runs an asynchronous invocation in the background, retrying it when the function
/// fails (an error, a timeout, a crash) as the function's event invoke configuration
/// says (else twice), while the event is younger than its maximum age. Each attempt
/// has its own `START`/`END`/`REPORT` lines under the same request id. A failure of
/// vpclab itself (the runtime could not start) is not retried.
#[allow(clippy::too_many_arguments)]
fn spawn_async(
    state: &AppState,
    fs: Arc<Functions>,
    account: &str,
    region: &str,
    name: &str,
    spec: Spec,
    payload: Bytes,
    request_id: String,
) {
    let state = state.clone();
    let account = account.to_string();
    let region = region.to_string();
    let name = name.to_string();
    tokio::spawn(async move {
        let queued = (state.clock)().0;
        let env = Env::new(&region, Timestamp(queued));
        let (retries, max_age_s) = {
            let mut control = state.lock();
            control
                .read(&account, &env)
                .ok()
                .and_then(|w| {
                    let key = w.event_invoke_key(&env, &name, None).ok()?;
                    let (f, _) = w.lambda_function(&env, &name).ok()?;
                    Some(m::EventInvoke::effective(f.event_invoke.get(&key)))
                })
                .unwrap_or((m::DEFAULT_ASYNC_RETRIES, m::DEFAULT_EVENT_AGE_S))
        };
        let mut attempt = 0usize;
        loop {
            let failed = match run_invocation(
                &state,
                &fs,
                &account,
                &region,
                &spec,
                payload.clone(),
                &request_id,
            )
            .await
            {
                Ok((out, _)) => !matches!(out.status, Status::Ok(_)),
                Err(e) => {
                    tracing::warn!(error = %e, function = %spec.name, "asynchronous invocation failed");
                    return;
                }
            };
            if !failed {
                return;
            }
            let Some(delay) = ASYNC_RETRY_DELAYS.get(attempt).copied() else {
                return;
            };
            if attempt as i64 >= retries {
                return;
            }
            let age_then = (state.clock)().0 + delay.as_millis() as i64 - queued;
            if age_then > max_age_s * 1000 {
                tracing::info!(function = %spec.name, request_id, "event too old to retry: discarded");
                return;
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    });
}

async fn invoke(
    state: &AppState,
    account: &str,
    env: &Env,
    name: &str,
    r: &Req,
    request_id: &str,
) -> ApiResult<Response> {
    let fs = functions(state)?;
    let kind = r
        .header("x-amz-invocation-type")
        .unwrap_or("RequestResponse")
        .to_string();
    let log_type = r.header("x-amz-log-type").unwrap_or("None").to_string();
    if !matches!(kind.as_str(), "RequestResponse" | "Event" | "DryRun") {
        return Err(m::validation(format!(
            "1 validation error detected: Value '{kind}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
        )));
    }
    if !matches!(log_type.as_str(), "None" | "Tail") {
        return Err(m::validation(format!(
            "1 validation error detected: Value '{log_type}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]"
        )));
    }
    let limit = if kind == "Event" {
        MAX_ASYNC_PAYLOAD
    } else {
        MAX_SYNC_PAYLOAD
    };
    if r.body.len() > limit {
        return Err(ApiError::new(
            "RequestTooLargeException",
            format!("Request must be smaller than {limit} bytes for the InvokeFunction operation"),
        )
        .with_status(413));
    }
    let payload = if r.body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        if let Err(e) = serde_json::from_slice::<Value>(&r.body) {
            return Err(ApiError::new(
                "InvalidRequestContentException",
                format!(
                    "Could not parse request body into json: Could not parse payload into json: {e}"
                ),
            ));
        }
        r.body.clone()
    };
    let (spec, version) = spec_of(state, &fs, account, env, name)?;
    let with_version = |mut resp: Response| {
        if let Ok(v) = HeaderValue::from_str(&version) {
            resp.headers_mut().insert("X-Amz-Executed-Version", v);
        }
        resp
    };
    match kind.as_str() {
        "DryRun" => return Ok(with_version(empty(204, request_id))),
        "Event" => {
            spawn_async(
                state,
                fs,
                account,
                &env.region,
                name,
                spec,
                payload,
                request_id.to_string(),
            );
            return Ok(empty(202, request_id));
        }
        _ => {}
    }
    let (out, lines) = run_invocation(state, &fs, account, &env.region, &spec, payload, request_id)
        .await
        .map_err(run_error)?;
    let end_ms = (state.clock)().0;
    let (body, error) = match &out.status {
        Status::Ok(b) => (b.clone(), None),
        Status::Error(b) | Status::InitError(b) => (b.clone(), Some("Unhandled")),
        Status::TimedOut => (
            Bytes::from(
                json!({ "errorMessage": timeout_message(&spec, request_id, end_ms) }).to_string(),
            ),
            Some("Unhandled"),
        ),
        Status::Exited(reason) => (
            Bytes::from(
                json!({
                    "errorType": "Runtime.ExitError",
                    "errorMessage": format!("RequestId: {request_id} Error: {reason}"),
                })
                .to_string(),
            ),
            Some("Unhandled"),
        ),
    };
    let mut resp = Response::new(HttpBody::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    if let Some(e) = error {
        resp.headers_mut()
            .insert("X-Amz-Function-Error", HeaderValue::from_static(e));
    }
    if log_type == "Tail" {
        let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        let tail = &text.as_bytes()[text.len().saturating_sub(4096)..];
        let b64 = base64::engine::general_purpose::STANDARD.encode(tail);
        if let Ok(v) = HeaderValue::from_str(&b64) {
            resp.headers_mut().insert("X-Amz-Log-Result", v);
        }
    }
    Ok(with_version(resp))
}

/// Deletes zips no function configuration names (a crash between writing a zip and its
/// commit, or between a commit and the deletes it freed). Returns how many.
pub fn sweep_orphans(control: &crate::model::Control, fs: &Functions) -> usize {
    let mut live = std::collections::HashSet::new();
    for account in control.accounts() {
        if let Some(w) = control.snapshot(&account) {
            for f in w.lambda_functions.iter() {
                live.insert(f.latest.code_blob.clone());
                live.extend(f.versions.iter().map(|v| v.code_blob.clone()));
            }
        }
    }
    fs.code.sweep(&live)
}

/// Event sources: a control subscriber that sees SNS deliveries to `lambda`
/// subscriptions and queued S3 event notifications (`lambda_event` rows), and the task that invokes those functions asynchronously (the
/// `Event` type, as SNS does), outside the model's lock. The daemon aborts the task at
/// stop (it holds the state).
pub fn triggers(state: AppState) -> (crate::model::Subscriber, tokio::task::JoinHandle<()>) {
    type Delivery = (String, String, String, Bytes);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
    let task = tokio::spawn(async move {
        while let Some((account, region, arn, payload)) = rx.recv().await {
            if let Err(e) = invoke_async(&state, &account, &region, &arn, payload) {
                tracing::warn!(function = %arn, code = %e.code, message = %e.message, "an event source could not invoke its function");
            }
        }
    });
    let sub: crate::model::Subscriber = Box::new(move |commit, world| {
        if commit.seq == 0 {
            return; // start-up announcements: those deliveries happened before
        }
        for c in &commit.changes {
            if c.op != crate::model::ChangeOp::Created {
                continue;
            }
            if c.kind == "lambda_event"
                && let Some(e) = world.lambda_events.get(&c.id)
            {
                let _ = tx.send((
                    commit.account.clone(),
                    e.region.clone(),
                    e.function.clone(),
                    Bytes::from(e.payload.clone()),
                ));
                continue;
            }
            if c.kind != "sns_mail" {
                continue;
            }
            if let Some(m) = world.sns_mail.get(&c.id)
                && m.protocol == "lambda"
                && m.kind == "Notification"
            {
                let _ = tx.send((
                    commit.account.clone(),
                    m.region.clone(),
                    m.to.clone(),
                    Bytes::from(m.body.clone()),
                ));
            }
        }
    });
    (sub, task)
}
