//! AWS Lambda in the model: functions with their `$LATEST` configuration, published
//! versions, aliases, resource-based policy statements and tags, per account and region,
//! durable in the store.
//!
//! A [`Function`] row's id is `REGION|NAME`. The function's code is a zip file the API
//! layer wrote to disk before the commit; rows only name it ([`Config::code_blob`]), and
//! a mutation returns the blobs no configuration names any more, for the caller to delete
//! after the commit (as S3 does with object bytes). Running code is the `function`
//! runtime's business, not the model's.
//!
//! Rules follow the Lambda API reference (CreateFunction, PublishVersion, CreateAlias,
//! AddPermission: their parameter constraints and errors) and the "Lambda quotas" page
//! (timeout 1–900 s, memory 128–10,240 MB).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, ApiResult, Env, Resource, Timestamp, World};

/// The runtimes vpclab runs (as local `python3` / `node` processes).
pub const RUNTIMES: &[&str] = &[
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
];

/// Runtimes AWS has deprecated for creation and updates (the error AWS gives them).
const DEPRECATED: &[&str] = &[
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "nodejs",
    "nodejs4.3",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
];

pub const MIN_TIMEOUT: i64 = 1;
pub const MAX_TIMEOUT: i64 = 900;
pub const MIN_MEMORY: i64 = 128;
pub const MAX_MEMORY: i64 = 10240;
/// Environment variables: 4 KB in total (keys and values), the Lambda quota.
pub const MAX_ENV_BYTES: usize = 4096;

/// One configuration of a function: `$LATEST` or a published version's snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// `$LATEST` or `1`, `2` …
    pub version: String,
    pub runtime: String,
    pub handler: String,
    pub role: String,
    pub description: String,
    pub timeout: i64,
    pub memory: i64,
    pub environment: BTreeMap<String, String>,
    /// The zip's file name in the function code store.
    pub code_blob: String,
    /// Base64 SHA-256 of the zip, as `CodeSha256`.
    pub code_sha256: String,
    pub code_size: u64,
    pub last_modified: i64,
    pub revision_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Alias {
    pub name: String,
    pub version: String,
    pub description: String,
    pub revision_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UrlConfig {
    /// The id in the URL's host (`<id>.lambda-url.<region>.localhost`).
    pub url_id: String,
    /// `None` or `AWS_IAM`.
    pub auth_type: String,
    pub qualifier: Option<String>,
    pub created: i64,
    pub last_modified: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Function {
    pub id: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub latest: Config,
    /// Published versions, oldest first.
    #[serde(default)]
    pub versions: Vec<Config>,
    #[serde(default)]
    pub next_version: u64,
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
    /// Resource-based policy statements, in the order they were added.
    #[serde(default)]
    pub policy: Vec<Value>,
    #[serde(default)]
    pub url: Option<UrlConfig>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Asynchronous invocation settings per qualifier (`$LATEST`, a version, an alias).
    #[serde(default)]
    pub event_invoke: BTreeMap<String, EventInvoke>,
}

/// PutFunctionEventInvokeConfig's settings (Lambda developer guide, "Configuring error
/// handling settings for Lambda asynchronous invocations"): retries 0–2 (default 2),
/// event age 60–21600 s (default 6 hours).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventInvoke {
    pub max_retries: Option<i64>,
    pub max_age_s: Option<i64>,
    pub modified: Timestamp,
}

/// Retries of a failed asynchronous invocation when none are configured.
pub const DEFAULT_ASYNC_RETRIES: i64 = 2;
/// How long an asynchronous event may wait when no age is configured (6 hours).
pub const DEFAULT_EVENT_AGE_S: i64 = 21_600;

impl EventInvoke {
    /// (retries, maximum age in seconds) with Lambda's defaults.
    pub fn effective(this: Option<&EventInvoke>) -> (i64, i64) {
        (
            this.and_then(|e| e.max_retries)
                .unwrap_or(DEFAULT_ASYNC_RETRIES),
            this.and_then(|e| e.max_age_s)
                .unwrap_or(DEFAULT_EVENT_AGE_S),
        )
    }
}

impl Resource for Function {
    const KIND: &'static str = "lambda_function";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Function {
    /// The configuration a qualifier names: none or `$LATEST`, a version number, or an
    /// alias (whose version is then returned).
    pub fn config(&self, qualifier: Option<&str>) -> ApiResult<&Config> {
        match qualifier {
            None | Some("$LATEST") => Ok(&self.latest),
            Some(q) => {
                let version = match self.aliases.get(q) {
                    Some(a) => a.version.as_str(),
                    None => q,
                };
                if version == "$LATEST" {
                    return Ok(&self.latest);
                }
                self.versions
                    .iter()
                    .find(|v| v.version == version)
                    .ok_or_else(|| not_found(&format!("{}:{q}", self.arn)))
            }
        }
    }

    /// Every code blob a configuration of this function names.
    fn blobs(&self) -> Vec<String> {
        let mut out: Vec<String> = std::iter::once(&self.latest)
            .chain(&self.versions)
            .map(|c| c.code_blob.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

pub fn function_id(region: &str, name: &str) -> String {
    format!("{region}|{name}")
}

pub fn function_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

pub fn not_found(arn: &str) -> ApiError {
    ApiError::new(
        "ResourceNotFoundException",
        format!("Function not found: {arn}"),
    )
    .with_status(404)
}

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidParameterValueException", message)
}

/// A constraint of the API model, as Lambda's front end words it.
pub fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationException", message)
}

pub fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new("ResourceConflictException", message).with_status(409)
}

fn revision(now: i64, salt: u64) -> String {
    let a =
        (now as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let b = a.rotate_left(29) ^ 0x94D0_49BB_1331_11EB;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (a >> 32) as u32,
        (a & 0xffff) as u16,
        (b >> 52) & 0xfff,
        (b >> 40) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// Splits a `FunctionName` parameter (a name, a partial ARN `ACCOUNT:function:NAME`, or
/// a full ARN, each optionally with `:QUALIFIER`) into (name, qualifier).
pub fn parse_function_name(input: &str) -> ApiResult<(String, Option<String>)> {
    let bad = || {
        validation(format!(
            "1 validation error detected: Value '{input}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{{2}}(-gov)?-[a-z]+-\\d{{1}}:)?(\\d{{12}}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
        ))
    };
    if input.is_empty() || input.len() > 170 {
        return Err(bad());
    }
    let parts: Vec<&str> = input.split(':').collect();
    let (name, qualifier) = if input.starts_with("arn:") {
        // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        if parts.len() < 7 || parts[2] != "lambda" || parts[5] != "function" {
            return Err(bad());
        }
        (parts[6], parts.get(7).copied())
    } else if parts.len() >= 3 && parts[1] == "function" {
        (parts[2], parts.get(3).copied())
    } else {
        (parts[0], parts.get(1).copied())
    };
    if parts.len() > 8 || !valid_name(name) {
        return Err(bad());
    }
    if let Some(q) = qualifier
        && (q.is_empty()
            || !(q == "$LATEST"
                || q.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')))
    {
        return Err(bad());
    }
    Ok((name.to_string(), qualifier.map(str::to_string)))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks a runtime: supported, deprecated (AWS's InvalidParameterValueException), or
/// not a runtime at all.
pub fn check_runtime(runtime: &str) -> ApiResult<()> {
    if RUNTIMES.contains(&runtime) {
        return Ok(());
    }
    if DEPRECATED.contains(&runtime) {
        return Err(invalid(format!(
            "The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions."
        )));
    }
    Err(invalid(format!(
        "Value {runtime} at 'runtime' failed to satisfy constraint: vpclab runs these runtimes: {}",
        RUNTIMES.join(", ")
    )))
}

/// The role must look like an IAM role ARN (the API's pattern) and name a role of this
/// account that Lambda may assume (its trust policy names `lambda.amazonaws.com`).
fn check_role(w: &World, role: &str) -> ApiResult<()> {
    let pattern =
        regex::Regex::new(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
            .expect("the role pattern is a valid regex");
    if !pattern.is_match(role) {
        return Err(validation(format!(
            "1 validation error detected: Value '{role}' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{{12}}:role/?[a-zA-Z_0-9+=,.@\\-_/]+"
        )));
    }
    let cannot = || invalid("The role defined for the function cannot be assumed by Lambda.");
    let account = role.split(':').nth(4).unwrap_or("");
    if account != w.account {
        return Err(cannot());
    }
    let name = role.rsplit('/').next().unwrap_or("");
    let r = w.role(name).map_err(|_| cannot())?;
    if r.arn != role || !r.trust.contains("lambda.amazonaws.com") {
        return Err(cannot());
    }
    Ok(())
}

fn check_limits(timeout: i64, memory: i64) -> ApiResult<()> {
    if timeout < MIN_TIMEOUT {
        return Err(validation(format!(
            "1 validation error detected: Value '{timeout}' at 'timeout' failed to satisfy constraint: Member must have value greater than or equal to {MIN_TIMEOUT}"
        )));
    }
    if timeout > MAX_TIMEOUT {
        return Err(invalid(format!(
            "Timeout value must be less than or equal to {MAX_TIMEOUT} seconds, but was {timeout}."
        )));
    }
    if memory < MIN_MEMORY {
        return Err(validation(format!(
            "1 validation error detected: Value '{memory}' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to {MIN_MEMORY}"
        )));
    }
    if memory > MAX_MEMORY {
        return Err(validation(format!(
            "1 validation error detected: Value '{memory}' at 'memorySize' failed to satisfy constraint: Member must have value less than or equal to {MAX_MEMORY}"
        )));
    }
    Ok(())
}

fn check_environment(env: &BTreeMap<String, String>) -> ApiResult<()> {
    let key = regex::Regex::new(r"^[a-zA-Z]([a-zA-Z0-9_])+$").expect("a valid regex");
    for k in env.keys() {
        if !key.is_match(k) {
            return Err(validation(format!(
                "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+] (key '{k}')"
            )));
        }
    }
    // The runtime's reserved variables (AWS: "Defined runtime environment variables").
    const RESERVED: &[&str] = &[
        "_HANDLER",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    ];
    let reserved: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED.contains(k))
        .collect();
    if !reserved.is_empty() {
        return Err(invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_ENV_BYTES {
        return Err(invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {size}"
        )));
    }
    Ok(())
}

fn check_handler(handler: &str) -> ApiResult<()> {
    if handler.is_empty() || handler.len() > 128 || handler.chars().any(char::is_whitespace) {
        return Err(validation(format!(
            "1 validation error detected: Value '{handler}' at 'handler' failed to satisfy constraint: Member must satisfy regular expression pattern: [^\\s]+"
        )));
    }
    Ok(())
}

/// The code of a CreateFunction/UpdateFunctionCode call, already stored by the caller.
#[derive(Clone, Debug)]
pub struct Code {
    pub blob: String,
    pub sha256: String,
    pub size: u64,
}

/// CreateFunction's parameters.
#[derive(Clone, Debug)]
pub struct Create {
    pub name: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub role: String,
    pub description: String,
    pub timeout: Option<i64>,
    pub memory: Option<i64>,
    pub environment: BTreeMap<String, String>,
    pub code: Code,
    pub publish: bool,
    pub tags: BTreeMap<String, String>,
}

/// UpdateFunctionConfiguration's parameters: `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct Update {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub role: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory: Option<i64>,
    pub environment: Option<BTreeMap<String, String>>,
    pub revision_id: Option<String>,
}

/// AddPermission's parameters.
#[derive(Clone, Debug, Default)]
pub struct Permission {
    pub statement_id: String,
    pub action: String,
    pub principal: String,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub function_url_auth_type: Option<String>,
    /// `--invoked-via-function-url`: the statement holds only for calls through a
    /// function URL (the `lambda:InvokedViaFunctionUrl` condition key).
    pub invoked_via_function_url: bool,
    pub revision_id: Option<String>,
}

impl World {
    /// The function a `FunctionName` parameter names, and the qualifier it carried.
    pub fn lambda_function(
        &self,
        env: &Env,
        input: &str,
    ) -> ApiResult<(&Function, Option<String>)> {
        let (name, qualifier) = parse_function_name(input)?;
        let f = self
            .lambda_functions
            .get(&function_id(&env.region, &name))
            .ok_or_else(|| not_found(&function_arn(&env.region, &self.account, &name)))?;
        Ok((f, qualifier))
    }

    fn lambda_function_mut(&mut self, env: &Env, input: &str) -> ApiResult<&mut Function> {
        let (name, _) = parse_function_name(input)?;
        let arn = function_arn(&env.region, &self.account, &name);
        self.lambda_functions
            .get_mut(&function_id(&env.region, &name))
            .ok_or_else(|| not_found(&arn))
    }

    /// CreateFunction. Returns the new function's `$LATEST` (or version 1 with Publish).
    pub fn create_function(&mut self, env: &Env, c: Create) -> ApiResult<Config> {
        let (name, qualifier) = parse_function_name(&c.name)?;
        if qualifier.is_some() {
            return Err(invalid(
                "Function name cannot contain a version or alias qualifier when creating a function.",
            ));
        }
        let Some(runtime) = c.runtime else {
            return Err(invalid(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            ));
        };
        let Some(handler) = c.handler else {
            return Err(invalid(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            ));
        };
        check_runtime(&runtime)?;
        check_handler(&handler)?;
        let timeout = c.timeout.unwrap_or(3);
        let memory = c.memory.unwrap_or(128);
        check_limits(timeout, memory)?;
        check_environment(&c.environment)?;
        check_role(self, &c.role)?;
        let id = function_id(&env.region, &name);
        let arn = function_arn(&env.region, &self.account, &name);
        if self.lambda_functions.contains(&id) {
            return Err(conflict(format!("Function already exist: {name}")));
        }
        let latest = Config {
            version: "$LATEST".into(),
            runtime,
            handler,
            role: c.role,
            description: c.description,
            timeout,
            memory,
            environment: c.environment,
            code_blob: c.code.blob,
            code_sha256: c.code.sha256,
            code_size: c.code.size,
            last_modified: env.now.0,
            revision_id: revision(env.now.0, self.lambda_functions.len() as u64),
        };
        self.lambda_functions.insert(Function {
            id: id.clone(),
            region: env.region.clone(),
            name: name.clone(),
            arn,
            latest: latest.clone(),
            versions: Vec::new(),
            next_version: 1,
            aliases: BTreeMap::new(),
            policy: Vec::new(),
            url: None,
            tags: c.tags,
            event_invoke: BTreeMap::new(),
        });
        if c.publish {
            return self.publish_version(env, &name, String::new(), None);
        }
        Ok(latest)
    }

    /// DeleteFunction: the whole function, or one published version. Returns the code
    /// blobs no configuration names any more.
    pub fn delete_function(
        &mut self,
        env: &Env,
        input: &str,
        qualifier: Option<&str>,
    ) -> ApiResult<Vec<String>> {
        let (f, q) = self.lambda_function(env, input)?;
        let qualifier = qualifier.map(str::to_string).or(q);
        let before = f.blobs();
        let id = f.id.clone();
        match qualifier.as_deref() {
            None => {
                self.lambda_functions.remove(&id);
                Ok(before)
            }
            Some("$LATEST") => Err(invalid(
                "$LATEST version cannot be deleted without deleting the function.",
            )),
            Some(q) => {
                if f.aliases.values().any(|a| a.version == q) {
                    return Err(conflict(format!(
                        "Unable to delete version because the following aliases reference it: {:?}",
                        f.aliases
                            .values()
                            .filter(|a| a.version == q)
                            .map(|a| a.name.clone())
                            .collect::<Vec<_>>()
                    )));
                }
                f.config(Some(q))?;
                let f = self
                    .lambda_functions
                    .get_mut(&id)
                    .expect("the function was just read");
                f.versions.retain(|v| v.version != q);
                let after = f.blobs();
                Ok(before.into_iter().filter(|b| !after.contains(b)).collect())
            }
        }
    }

    /// UpdateFunctionCode. Returns the new `$LATEST` (or the published version) and the
    /// blobs no configuration names any more.
    pub fn update_function_code(
        &mut self,
        env: &Env,
        input: &str,
        code: Code,
        publish: bool,
        revision_id: Option<&str>,
    ) -> ApiResult<(Config, Vec<String>)> {
        let salt = self.lambda_functions.len() as u64 + 7;
        let f = self.lambda_function_mut(env, input)?;
        check_revision(f, revision_id)?;
        let before = f.blobs();
        f.latest.code_blob = code.blob;
        f.latest.code_sha256 = code.sha256;
        f.latest.code_size = code.size;
        f.latest.last_modified = env.now.0;
        f.latest.revision_id = revision(env.now.0, salt);
        let after = f.blobs();
        let name = f.name.clone();
        let mut out = f.latest.clone();
        if publish {
            out = self.publish_version(env, &name, String::new(), None)?;
        }
        Ok((
            out,
            before.into_iter().filter(|b| !after.contains(b)).collect(),
        ))
    }

    /// UpdateFunctionConfiguration.
    pub fn update_function_configuration(
        &mut self,
        env: &Env,
        input: &str,
        u: Update,
    ) -> ApiResult<Config> {
        if let Some(r) = &u.runtime {
            check_runtime(r)?;
        }
        if let Some(h) = &u.handler {
            check_handler(h)?;
        }
        if let Some(e) = &u.environment {
            check_environment(e)?;
        }
        if let Some(role) = &u.role {
            check_role(self, role)?;
        }
        let salt = self.lambda_functions.len() as u64 + 13;
        let f = self.lambda_function_mut(env, input)?;
        check_revision(f, u.revision_id.as_deref())?;
        let timeout = u.timeout.unwrap_or(f.latest.timeout);
        let memory = u.memory.unwrap_or(f.latest.memory);
        check_limits(timeout, memory)?;
        let c = &mut f.latest;
        c.timeout = timeout;
        c.memory = memory;
        if let Some(v) = u.runtime {
            c.runtime = v;
        }
        if let Some(v) = u.handler {
            c.handler = v;
        }
        if let Some(v) = u.role {
            c.role = v;
        }
        if let Some(v) = u.description {
            c.description = v;
        }
        if let Some(v) = u.environment {
            c.environment = v;
        }
        c.last_modified = env.now.0;
        c.revision_id = revision(env.now.0, salt);
        Ok(c.clone())
    }

    /// PublishVersion: a snapshot of `$LATEST`. If `$LATEST` has not changed since the
    /// last published version, that version is returned (AWS does not publish twice).
    pub fn publish_version(
        &mut self,
        env: &Env,
        input: &str,
        description: String,
        code_sha256: Option<&str>,
    ) -> ApiResult<Config> {
        let f = self.lambda_function_mut(env, input)?;
        if let Some(sha) = code_sha256
            && sha != f.latest.code_sha256
        {
            return Err(invalid(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                f.latest.code_sha256
            )));
        }
        if let Some(last) = f.versions.last() {
            let same = Config {
                version: last.version.clone(),
                description: last.description.clone(),
                last_modified: last.last_modified,
                revision_id: last.revision_id.clone(),
                ..f.latest.clone()
            };
            if &same == last {
                return Ok(last.clone());
            }
        }
        let n = f.next_version.max(1);
        f.next_version = n + 1;
        let mut v = f.latest.clone();
        v.version = n.to_string();
        if !description.is_empty() {
            v.description = description;
        }
        v.last_modified = env.now.0;
        v.revision_id = revision(env.now.0, n);
        f.versions.push(v.clone());
        Ok(v)
    }

    /// CreateAlias / UpdateAlias (`create` tells which).
    pub fn put_alias(
        &mut self,
        env: &Env,
        input: &str,
        name: &str,
        version: Option<&str>,
        description: Option<String>,
        create: bool,
    ) -> ApiResult<Alias> {
        let alias_ok = !name.is_empty()
            && name.len() <= 128
            && !name.chars().all(|c| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !alias_ok {
            return Err(validation(format!(
                "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
            )));
        }
        let salt = self.lambda_functions.len() as u64 + 17;
        let f = self.lambda_function_mut(env, input)?;
        let existing = f.aliases.get(name).cloned();
        if create && existing.is_some() {
            return Err(conflict(format!("Alias already exists: {}:{name}", f.arn)));
        }
        let Some(existing) = existing.or_else(|| {
            create.then(|| Alias {
                name: name.to_string(),
                version: String::new(),
                description: String::new(),
                revision_id: String::new(),
            })
        }) else {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                format!("Alias not found: {}:{name}", f.arn),
            )
            .with_status(404));
        };
        let version = version.map(str::to_string).unwrap_or(existing.version);
        if version != "$LATEST" && !f.versions.iter().any(|v| v.version == version) {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                format!("Function not found: {}:{version}", f.arn),
            )
            .with_status(404));
        }
        let alias = Alias {
            name: name.to_string(),
            version,
            description: description.unwrap_or(existing.description),
            revision_id: revision(env.now.0, salt),
        };
        f.aliases.insert(name.to_string(), alias.clone());
        Ok(alias)
    }

    pub fn delete_alias(&mut self, env: &Env, input: &str, name: &str) -> ApiResult<()> {
        let f = self.lambda_function_mut(env, input)?;
        // DeleteAlias is idempotent on AWS only for existing functions.
        f.aliases.remove(name);
        Ok(())
    }

    /// AddPermission. Returns the statement added.
    pub fn add_permission(&mut self, env: &Env, input: &str, p: Permission) -> ApiResult<Value> {
        let sid_ok = !p.statement_id.is_empty()
            && p.statement_id.len() <= 100
            && p.statement_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !sid_ok {
            return Err(validation(format!(
                "1 validation error detected: Value '{}' at 'statementId' failed to satisfy constraint: Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
                p.statement_id
            )));
        }
        let action_ok = p.action == "lambda:*"
            || p.action.strip_prefix("lambda:").is_some_and(|a| {
                !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '*')
            });
        if !action_ok {
            return Err(validation(format!(
                "1 validation error detected: Value '{}' at 'action' failed to satisfy constraint: Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])",
                p.action
            )));
        }
        if p.principal.is_empty() {
            return Err(validation(
                "1 validation error detected: Value null at 'principal' failed to satisfy constraint: Member must not be null",
            ));
        }
        let (_, qualifier) = parse_function_name(input)?;
        let f = self.lambda_function_mut(env, input)?;
        check_revision(f, p.revision_id.as_deref())?;
        if f.policy.iter().any(|s| s["Sid"] == p.statement_id.as_str()) {
            return Err(conflict(format!(
                "The statement id ({}) provided already exists. Please provide a new statement id, or remove the existing statement.",
                p.statement_id
            )));
        }
        let principal = if p.principal.ends_with(".amazonaws.com") {
            json!({ "Service": p.principal })
        } else if p.principal == "*" {
            json!("*")
        } else if p.principal.chars().all(|c| c.is_ascii_digit()) {
            json!({ "AWS": format!("arn:aws:iam::{}:root", p.principal) })
        } else {
            json!({ "AWS": p.principal })
        };
        let resource = match qualifier {
            Some(q) => format!("{}:{q}", f.arn),
            None => f.arn.clone(),
        };
        let mut condition = serde_json::Map::new();
        if let Some(a) = &p.source_arn {
            condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": a }));
        }
        if let Some(a) = &p.source_account {
            condition.insert("StringEquals".into(), json!({ "AWS:SourceAccount": a }));
        }
        if let Some(t) = &p.function_url_auth_type {
            condition.insert(
                "StringEquals".into(),
                json!({ "lambda:FunctionUrlAuthType": t }),
            );
        }
        let mut statement = json!({
            "Sid": p.statement_id,
            "Effect": "Allow",
            "Principal": principal,
            "Action": p.action,
            "Resource": resource,
        });
        if p.invoked_via_function_url {
            condition.insert(
                "Bool".into(),
                json!({ "lambda:InvokedViaFunctionUrl": "true" }),
            );
        }
        if !condition.is_empty() {
            statement["Condition"] = Value::Object(condition);
        }
        f.policy.push(statement.clone());
        Ok(statement)
    }

    pub fn remove_permission(&mut self, env: &Env, input: &str, sid: &str) -> ApiResult<()> {
        let f = self.lambda_function_mut(env, input)?;
        let before = f.policy.len();
        f.policy.retain(|s| s["Sid"] != sid);
        if f.policy.len() == before {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                "The resource you requested does not exist.",
            )
            .with_status(404));
        }
        Ok(())
    }

    /// CreateFunctionUrlConfig / UpdateFunctionUrlConfig.
    pub fn put_function_url(
        &mut self,
        env: &Env,
        input: &str,
        auth_type: Option<&str>,
        create: bool,
    ) -> ApiResult<UrlConfig> {
        if let Some(t) = auth_type
            && t != "NONE"
            && t != "AWS_IAM"
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{t}' at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [NONE, AWS_IAM]"
            )));
        }
        let (_, qualifier) = parse_function_name(input)?;
        let salt = self.lambda_functions.len() as u64;
        let f = self.lambda_function_mut(env, input)?;
        match (&f.url, create) {
            (Some(_), true) => {
                return Err(conflict(format!(
                    "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
                    f.arn
                )));
            }
            (None, false) => {
                return Err(ApiError::new(
                    "ResourceNotFoundException",
                    "The resource you requested does not exist.",
                )
                .with_status(404));
            }
            _ => {}
        }
        let url = match f.url.take() {
            Some(mut u) => {
                if let Some(t) = auth_type {
                    u.auth_type = t.to_string();
                }
                u.last_modified = env.now.0;
                u
            }
            None => {
                let Some(t) = auth_type else {
                    return Err(validation(
                        "1 validation error detected: Value null at 'authType' failed to satisfy constraint: Member must not be null",
                    ));
                };
                let seed = revision(env.now.0, salt ^ 0x55).replace('-', "");
                UrlConfig {
                    // AWS's url ids are 32 lowercase letters and digits.
                    url_id: seed.chars().take(32).collect(),
                    auth_type: t.to_string(),
                    qualifier,
                    created: env.now.0,
                    last_modified: env.now.0,
                }
            }
        };
        f.url = Some(url.clone());
        Ok(url)
    }

    /// Put (replace) or update (merge) a function's asynchronous invocation settings
    /// for a qualifier; returns the result.
    pub fn put_event_invoke(
        &mut self,
        env: &Env,
        input: &str,
        qualifier: Option<&str>,
        max_retries: Option<i64>,
        max_age_s: Option<i64>,
        merge: bool,
    ) -> ApiResult<EventInvoke> {
        if let Some(r) = max_retries
            && !(0..=2).contains(&r)
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{r}' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to 2"
            )));
        }
        if let Some(a) = max_age_s
            && !(60..=21_600).contains(&a)
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{a}' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value between 60 and 21600"
            )));
        }
        let key = self.event_invoke_key(env, input, qualifier)?;
        let f = self.lambda_function_mut(env, input)?;
        let arn = f.arn.clone();
        let old = f.event_invoke.get(&key).cloned();
        if merge && old.is_none() {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                format!("The function {arn} doesn't have an EventInvokeConfig"),
            )
            .with_status(404));
        }
        let e = EventInvoke {
            max_retries: max_retries.or(if merge {
                old.as_ref().and_then(|o| o.max_retries)
            } else {
                None
            }),
            max_age_s: max_age_s.or(if merge {
                old.as_ref().and_then(|o| o.max_age_s)
            } else {
                None
            }),
            modified: env.now,
        };
        f.event_invoke.insert(key, e.clone());
        Ok(e)
    }

    /// The key a qualifier's settings are kept under (the qualifier must exist).
    pub fn event_invoke_key(
        &self,
        env: &Env,
        input: &str,
        qualifier: Option<&str>,
    ) -> ApiResult<String> {
        let (f, from_name) = self.lambda_function(env, input)?;
        let q = qualifier
            .map(str::to_string)
            .or(from_name)
            .unwrap_or_else(|| "$LATEST".to_string());
        f.config(Some(&q))?;
        Ok(q)
    }

    pub fn delete_event_invoke(
        &mut self,
        env: &Env,
        input: &str,
        qualifier: Option<&str>,
    ) -> ApiResult<()> {
        let key = self.event_invoke_key(env, input, qualifier)?;
        let f = self.lambda_function_mut(env, input)?;
        if f.event_invoke.remove(&key).is_none() {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                format!("The function {} doesn't have an EventInvokeConfig", f.arn),
            )
            .with_status(404));
        }
        Ok(())
    }

    pub fn delete_function_url(&mut self, env: &Env, input: &str) -> ApiResult<()> {
        let f = self.lambda_function_mut(env, input)?;
        if f.url.take().is_none() {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                "The resource you requested does not exist.",
            )
            .with_status(404));
        }
        Ok(())
    }

    /// The function a function URL id names.
    pub fn function_by_url(&self, url_id: &str) -> Option<&Function> {
        self.lambda_functions
            .iter()
            .find(|f| f.url.as_ref().is_some_and(|u| u.url_id == url_id))
    }

    pub fn tag_function(
        &mut self,
        env: &Env,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        let f = self.lambda_function_mut(env, arn)?;
        f.tags.extend(tags);
        Ok(())
    }

    pub fn untag_function(&mut self, env: &Env, arn: &str, keys: &[String]) -> ApiResult<()> {
        let f = self.lambda_function_mut(env, arn)?;
        for k in keys {
            f.tags.remove(k);
        }
        Ok(())
    }
}

fn check_revision(f: &Function, revision_id: Option<&str>) -> ApiResult<()> {
    match revision_id {
        Some(r) if r != f.latest.revision_id => Err(ApiError::new(
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        )
        .with_status(412)),
        _ => Ok(()),
    }
}

/// Asynchronous invocations a service asked for (S3 event notifications), waiting for
/// the API layer's event-source task to run them: the model cannot run code, so a commit
/// that sends an event adds one row here and the task invokes the function when it sees
/// the row created. The newest [`MAX_PENDING_EVENTS`] rows are kept per account (like
/// SNS's mailbox) so an account's history stays bounded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PendingEvent {
    /// `event-<ms, 13 digits>-<bits>`: id order is the order events were sent.
    pub id: String,
    pub region: String,
    pub at: i64,
    /// The function (an ARN, possibly with a qualifier) to invoke with the `Event` type.
    pub function: String,
    /// The service that sent it (`s3.amazonaws.com`).
    pub source: String,
    pub payload: String,
}

impl Resource for PendingEvent {
    const KIND: &'static str = "lambda_event";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// Pending events kept per account.
pub const MAX_PENDING_EVENTS: usize = 200;

/// Whether a statement's value (a string or a list of strings) contains `want`.
fn names(v: Option<&Value>, want: impl Fn(&str) -> bool) -> bool {
    match v {
        Some(Value::String(s)) => want(s),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(want),
        _ => false,
    }
}

/// `*` and `?` wildcards, as `ArnLike` matches them.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((b'?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

impl Function {
    /// Whether the function's resource-based policy lets a service principal
    /// (`s3.amazonaws.com`) invoke it for `source_arn` owned by `source_account`: an
    /// Allow of `lambda:InvokeFunction` (or a wildcard) to the service, whose
    /// `AWS:SourceArn` and `AWS:SourceAccount` conditions, when present, match (the
    /// Lambda developer guide's "Granting function access to AWS services").
    pub fn allows_service(&self, service: &str, source_arn: &str, source_account: &str) -> bool {
        self.policy.iter().any(|s| {
            let allow = s.get("Effect").and_then(Value::as_str) == Some("Allow");
            let principal = match s.get("Principal") {
                Some(Value::String(p)) => p == "*",
                Some(Value::Object(m)) => names(m.get("Service"), |p| p == service),
                _ => false,
            };
            let action = names(s.get("Action"), |a| {
                matches!(
                    a.to_ascii_lowercase().as_str(),
                    "lambda:invokefunction" | "lambda:*" | "*"
                )
            });
            let cond = s.get("Condition");
            let arn_ok = ["ArnLike", "ArnEquals"].iter().all(|op| {
                match cond
                    .and_then(|c| c.get(op))
                    .and_then(|c| c.get("AWS:SourceArn"))
                {
                    None => true,
                    Some(v) => names(Some(v), |p| glob(p, source_arn)),
                }
            });
            let account_ok = match cond
                .and_then(|c| c.get("StringEquals"))
                .and_then(|c| c.get("AWS:SourceAccount"))
            {
                None => true,
                Some(v) => names(Some(v), |a| a == source_account),
            };
            allow && principal && action && arn_ok && account_ok
        })
    }
}

impl World {
    /// The function an ARN (possibly qualified) names, when it is in this account.
    pub fn lambda_function_by_arn(&self, arn: &str) -> Option<&Function> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            [
                "arn",
                "aws",
                "lambda",
                region,
                account,
                "function",
                name,
                ..,
            ] if *account == self.account => self.lambda_functions.get(&function_id(region, name)),
            _ => None,
        }
    }

    /// Queues an asynchronous invocation of `function` with `payload`, sent by `source`.
    pub fn queue_lambda_event(&mut self, env: &Env, function: &str, source: &str, payload: String) {
        let id = format!("event-{:013}-{:016x}", env.now.0.max(0), self.alloc_bits());
        self.lambda_events.insert(PendingEvent {
            id,
            region: env.region.clone(),
            at: env.now.0,
            function: function.to_string(),
            source: source.to_string(),
            payload,
        });
        let n = self.lambda_events.len();
        if n > MAX_PENDING_EVENTS {
            let mut ids: Vec<String> = self.lambda_events.iter().map(|e| e.id.clone()).collect();
            ids.sort();
            for old in ids.into_iter().take(n - MAX_PENDING_EVENTS) {
                self.lambda_events.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lambda developer guide, "Granting function access to AWS services": a service
    /// principal may invoke when a statement allows it, within its SourceArn and
    /// SourceAccount conditions.
    #[test]
    fn service_permissions_honour_source_conditions() {
        let f = |policy: Vec<Value>| Function {
            id: "r|f".into(),
            region: "us-east-1".into(),
            name: "f".into(),
            arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
            latest: Config {
                version: "$LATEST".into(),
                runtime: "python3.12".into(),
                handler: "a.b".into(),
                role: String::new(),
                description: String::new(),
                timeout: 3,
                memory: 128,
                environment: BTreeMap::new(),
                code_blob: String::new(),
                code_sha256: String::new(),
                code_size: 0,
                last_modified: 0,
                revision_id: String::new(),
            },
            versions: Vec::new(),
            next_version: 1,
            aliases: BTreeMap::new(),
            policy,
            url: None,
            tags: BTreeMap::new(),
            event_invoke: BTreeMap::new(),
        };
        let s3 = |cond: Value| {
            json!({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                   "Action": "lambda:InvokeFunction", "Resource": "*", "Condition": cond})
        };
        let bucket = "arn:aws:s3:::photos";
        assert!(!f(vec![]).allows_service("s3.amazonaws.com", bucket, "1"));
        let open = f(vec![s3(json!({}))]);
        assert!(open.allows_service("s3.amazonaws.com", bucket, "1"));
        assert!(!open.allows_service("sns.amazonaws.com", bucket, "1"));
        let scoped = f(vec![s3(json!({
            "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::photo*"},
            "StringEquals": {"AWS:SourceAccount": "1"}
        }))]);
        assert!(scoped.allows_service("s3.amazonaws.com", bucket, "1"));
        assert!(!scoped.allows_service("s3.amazonaws.com", "arn:aws:s3:::docs", "1"));
        assert!(!scoped.allows_service("s3.amazonaws.com", bucket, "2"));
        let other_action = f(vec![json!({"Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:GetFunction"})]);
        assert!(!other_action.allows_service("s3.amazonaws.com", bucket, "1"));
    }

    #[test]
    fn function_names_accept_names_partial_and_full_arns() {
        assert_eq!(parse_function_name("f").unwrap(), ("f".into(), None));
        assert_eq!(
            parse_function_name("f:prod").unwrap(),
            ("f".into(), Some("prod".into()))
        );
        assert_eq!(
            parse_function_name("000000000000:function:f").unwrap(),
            ("f".into(), None)
        );
        assert_eq!(
            parse_function_name("arn:aws:lambda:us-east-1:000000000000:function:f:3").unwrap(),
            ("f".into(), Some("3".into()))
        );
        assert_eq!(
            parse_function_name("bad name").unwrap_err().code,
            "ValidationException"
        );
    }

    #[test]
    fn limits_follow_the_quotas() {
        assert!(check_limits(1, 128).is_ok());
        assert!(check_limits(900, 10240).is_ok());
        assert_eq!(
            check_limits(0, 128).unwrap_err().code,
            "ValidationException"
        );
        assert_eq!(
            check_limits(901, 128).unwrap_err().code,
            "InvalidParameterValueException"
        );
        assert_eq!(
            check_limits(3, 127).unwrap_err().code,
            "ValidationException"
        );
        assert_eq!(
            check_limits(3, 10241).unwrap_err().code,
            "ValidationException"
        );
        assert_eq!(
            check_runtime("python2.7").unwrap_err().code,
            "InvalidParameterValueException"
        );
        assert!(check_runtime("nodejs20.x").is_ok());
    }
}
