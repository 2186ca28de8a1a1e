//! AWS Systems Manager Parameter Store (AWS JSON 1.1, `X-Amz-Target: AmazonSSM.<Op>`):
//! PutParameter, GetParameter(s), GetParametersByPath, DeleteParameter(s),
//! DescribeParameters, GetParameterHistory, and the public `/aws/service/…` parameters.
//! The model (`model::ssm`) decides; this module parses and renders.

use base64::Engine as _;
use serde_json::{Value, json};

use super::json::{JsonCall, JsonService, unknown_operation};
use crate::model::ssm::{self, ParamVersion, Parameter, Put, validation};
use crate::model::{ApiError, ApiResult};

pub static SERVICE: JsonService = JsonService {
    content_type: "application/x-amz-json-1.1",
    validation_code: "ValidationException",
    // The handlers write epoch seconds themselves.
    timestamps: &[],
    query_compatible: false,
    handler: dispatch,
    iam_prefix: "ssm",
    resource: parameter_arn,
    passed_roles: super::json::no_roles,
};

/// The parameter a call names (Service Authorization Reference: the `parameter`
/// resource type), else `*`.
fn parameter_arn(region: &str, account: &str, body: &super::json::Body) -> String {
    match body.str("Name") {
        Ok(Some(name)) if !name.is_empty() => arn(region, account, name),
        _ => "*".to_string(),
    }
}

pub const OPERATIONS: &[&str] = &[
    "PutParameter",
    "GetParameter",
    "GetParameters",
    "GetParametersByPath",
    "DeleteParameter",
    "DeleteParameters",
    "DescribeParameters",
    "GetParameterHistory",
];

/// The value a SecureString shows without `WithDecryption`: vpclab has no KMS, so this
/// is an encoding of the stored value, not encryption (docs/fidelity.md).
fn sealed(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("vpclab-not-encrypted:{value}"))
}

fn arn(region: &str, account: &str, name: &str) -> String {
    format!(
        "arn:aws:ssm:{region}:{account}:parameter/{}",
        name.trim_start_matches('/')
    )
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn render(
    c: &JsonCall,
    p: &Parameter,
    v: &ParamVersion,
    decrypt: bool,
    selector: Option<&str>,
) -> Value {
    let value = if v.kind == "SecureString" && !decrypt {
        sealed(&v.value)
    } else {
        v.value.clone()
    };
    let mut out = json!({
        "Name": p.name,
        "Type": v.kind,
        "Value": value,
        "Version": v.version,
        "LastModifiedDate": secs(v.modified),
        "ARN": arn(&p.region, &c.account, &p.name),
        "DataType": p.data_type,
    });
    if let Some(s) = selector {
        out["Selector"] = json!(s);
        out["Name"] = json!(p.name);
    }
    out
}

fn public(c: &JsonCall, name: &str) -> Option<Value> {
    ssm::public_parameters()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(n, id)| {
            json!({
                "Name": n,
                "Type": "String",
                "Value": id,
                "Version": 1,
                "LastModifiedDate": 1_733_443_200.0,
                "ARN": format!("arn:aws:ssm:{}::parameter{}", c.env.region, n),
                "DataType": "text",
            })
        })
}

/// One name of GetParameter(s), with an optional `:version` selector.
fn lookup(c: &mut JsonCall, name: &str, decrypt: bool) -> ApiResult<Value> {
    let (base, selector) = match name.rsplit_once(':') {
        Some((b, s)) if !b.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => (b, Some(s)),
        _ => (name, None),
    };
    if let Some(v) = public(c, base) {
        return Ok(v);
    }
    let w = c.read()?;
    let p = w
        .ssm_parameters
        .get(&ssm::param_id(&c.env.region, base))
        .ok_or_else(|| ssm::not_found(base))?
        .clone();
    let v = match selector {
        None => p.current().clone(),
        Some(s) => {
            let n: u64 = s.parse().unwrap_or(0);
            p.versions
                .iter()
                .find(|v| v.version == n)
                .cloned()
                .ok_or_else(|| {
                    ApiError::new(
                        "ParameterVersionNotFound",
                        format!("Systems Manager could not find version {n} of {base}. Verify the version and try again."),
                    )
                })?
        }
    };
    Ok(render(
        c,
        &p,
        &v,
        decrypt,
        selector.map(|s| format!(":{s}")).as_deref(),
    ))
}

fn page_token(c: &JsonCall) -> ApiResult<usize> {
    match c.body.str("NextToken")? {
        None => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::new("InvalidNextToken", "The specified token isn't valid.")),
    }
}

fn max_results(c: &JsonCall, max: i64) -> ApiResult<usize> {
    match c.body.int("MaxResults")? {
        None => Ok(max as usize),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to {max}"
        ))),
    }
}

fn dispatch(c: &mut JsonCall, op: &str) -> ApiResult<Value> {
    match op {
        "PutParameter" => {
            let name = c.body.required_str("Name")?.to_string();
            let value = c.body.required_str("Value")?.to_string();
            let mut tags = std::collections::BTreeMap::new();
            for t in c.body.list("Tags")? {
                let k = t.get("Key").and_then(Value::as_str).unwrap_or("");
                let v = t.get("Value").and_then(Value::as_str).unwrap_or("");
                tags.insert(k.to_string(), v.to_string());
            }
            let put = Put {
                name,
                value,
                kind: c.body.str("Type")?.map(str::to_string),
                description: c.body.str("Description")?.map(str::to_string),
                overwrite: c.body.bool("Overwrite")?.unwrap_or(false),
                allowed_pattern: c.body.str("AllowedPattern")?.map(str::to_string),
                tier: c.body.str("Tier")?.map(str::to_string),
                data_type: c.body.str("DataType")?.map(str::to_string),
                tags,
            };
            let (version, tier) = c.mutate(|w, env| w.put_parameter(env, put))?;
            Ok(json!({ "Version": version, "Tier": tier }))
        }
        "GetParameter" => {
            let name = c.body.required_str("Name")?.to_string();
            let decrypt = c.body.bool("WithDecryption")?.unwrap_or(false);
            let p = lookup(c, &name, decrypt)?;
            Ok(json!({ "Parameter": p }))
        }
        "GetParameters" => {
            let names = c.body.str_list("Names")?;
            if names.is_empty() || names.len() > 10 {
                return Err(validation(
                    "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10",
                ));
            }
            let decrypt = c.body.bool("WithDecryption")?.unwrap_or(false);
            let mut found = Vec::new();
            let mut invalid = Vec::new();
            for n in names {
                match lookup(c, &n, decrypt) {
                    Ok(v) => found.push(v),
                    Err(e)
                        if e.code == "ParameterNotFound"
                            || e.code == "ParameterVersionNotFound" =>
                    {
                        invalid.push(n)
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(json!({ "Parameters": found, "InvalidParameters": invalid }))
        }
        "GetParametersByPath" => {
            let path = c.body.required_str("Path")?.to_string();
            if !path.starts_with('/') {
                return Err(validation(
                    "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\".",
                ));
            }
            let recursive = c.body.bool("Recursive")?.unwrap_or(false);
            let decrypt = c.body.bool("WithDecryption")?.unwrap_or(false);
            let start = page_token(c)?;
            let max = max_results(c, 10)?;
            let prefix = if path.ends_with('/') {
                path.clone()
            } else {
                format!("{path}/")
            };
            let under = |name: &str| {
                name.starts_with(&prefix) && (recursive || !name[prefix.len()..].contains('/'))
            };
            let mut all: Vec<Value> = ssm::public_parameters()
                .into_iter()
                .filter(|(n, _)| under(n))
                .filter_map(|(n, _)| public(c, &n))
                .collect();
            let w = c.read()?;
            for p in w.parameters_in(&c.env.region).filter(|p| under(&p.name)) {
                all.push(render(c, p, p.current(), decrypt, None));
            }
            let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
            let mut out = json!({ "Parameters": page });
            if start + max < all.len() {
                out["NextToken"] = json!((start + max).to_string());
            }
            Ok(out)
        }
        "DeleteParameter" => {
            let name = c.body.required_str("Name")?.to_string();
            c.mutate(|w, env| w.delete_parameter(env, &name))?;
            Ok(json!({}))
        }
        "DeleteParameters" => {
            let names = c.body.str_list("Names")?;
            if names.is_empty() || names.len() > 10 {
                return Err(validation(
                    "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10",
                ));
            }
            let (deleted, invalid) = c.mutate(|w, env| {
                let (mut d, mut i) = (Vec::new(), Vec::new());
                for n in &names {
                    match w.delete_parameter(env, n) {
                        Ok(()) => d.push(n.clone()),
                        Err(_) => i.push(n.clone()),
                    }
                }
                Ok((d, i))
            })?;
            Ok(json!({ "DeletedParameters": deleted, "InvalidParameters": invalid }))
        }
        "DescribeParameters" => {
            let start = page_token(c)?;
            let max = max_results(c, 50)?;
            // ParameterFilters: Name (Equals/BeginsWith), Type (Equals), Path (Recursive
            // or OneLevel); Filters: Name/Type (BeginsWith on names).
            let mut tests: Vec<(String, String, Vec<String>)> = Vec::new();
            for f in c.body.list("ParameterFilters")? {
                let key = f
                    .get("Key")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let option = f
                    .get("Option")
                    .and_then(Value::as_str)
                    .unwrap_or("Equals")
                    .to_string();
                let values: Vec<String> = f
                    .get("Values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if !matches!(key.as_str(), "Name" | "Type" | "Path" | "Tier" | "DataType") {
                    return Err(ApiError::new(
                        "InvalidFilterKey",
                        format!("The following filter key is not valid: {key}"),
                    ));
                }
                tests.push((key, option, values));
            }
            for f in c.body.list("Filters")? {
                let key = f
                    .get("Key")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let values: Vec<String> = f
                    .get("Values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let option = if key == "Name" {
                    "BeginsWith"
                } else {
                    "Equals"
                };
                tests.push((key, option.to_string(), values));
            }
            let w = c.read()?;
            let matches = |p: &Parameter| {
                tests.iter().all(|(k, opt, vals)| {
                    let field = match k.as_str() {
                        "Name" => p.name.clone(),
                        "Type" => p.current().kind.clone(),
                        "Tier" => p.tier.clone(),
                        "DataType" => p.data_type.clone(),
                        _ => p.name.clone(),
                    };
                    vals.iter().any(|v| match (k.as_str(), opt.as_str()) {
                        ("Path", "Recursive") => {
                            let pre = if v.ends_with('/') {
                                v.clone()
                            } else {
                                format!("{v}/")
                            };
                            field.starts_with(&pre)
                        }
                        ("Path", _) => {
                            let pre = if v.ends_with('/') {
                                v.clone()
                            } else {
                                format!("{v}/")
                            };
                            field.starts_with(&pre) && !field[pre.len()..].contains('/')
                        }
                        (_, "BeginsWith") => field.starts_with(v.as_str()),
                        _ => field == *v,
                    })
                })
            };
            let all: Vec<Value> = w
                .parameters_in(&c.env.region)
                .filter(|p| matches(p))
                .map(|p| {
                    let v = p.current();
                    let mut m = json!({
                        "Name": p.name,
                        "ARN": arn(&p.region, &c.account, &p.name),
                        "Type": v.kind,
                        "LastModifiedDate": secs(v.modified),
                        "LastModifiedUser": format!("arn:aws:iam::{}:root", c.account),
                        "Version": v.version,
                        "Tier": p.tier,
                        "Policies": [],
                        "DataType": p.data_type,
                    });
                    if let Some(d) = &v.description {
                        m["Description"] = json!(d);
                    }
                    if let Some(a) = &p.allowed_pattern {
                        m["AllowedPattern"] = json!(a);
                    }
                    m
                })
                .collect();
            let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
            let mut out = json!({ "Parameters": page });
            if start + max < all.len() {
                out["NextToken"] = json!((start + max).to_string());
            }
            Ok(out)
        }
        "GetParameterHistory" => {
            let name = c.body.required_str("Name")?.to_string();
            let decrypt = c.body.bool("WithDecryption")?.unwrap_or(false);
            let start = page_token(c)?;
            let max = max_results(c, 50)?;
            let w = c.read()?;
            let p = w
                .ssm_parameters
                .get(&ssm::param_id(&c.env.region, &name))
                .ok_or_else(|| ssm::not_found(&name))?;
            let all: Vec<Value> = p
                .versions
                .iter()
                .map(|v| {
                    let mut m = render(c, p, v, decrypt, None);
                    if let Some(o) = m.as_object_mut() {
                        o.remove("ARN");
                        o.insert("Tier".into(), json!(p.tier));
                        o.insert("Labels".into(), json!(v.labels));
                        o.insert("Policies".into(), json!([]));
                        if let Some(d) = &v.description {
                            o.insert("Description".into(), json!(d));
                        }
                    }
                    m
                })
                .collect();
            let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
            let mut out = json!({ "Parameters": page });
            if start + max < all.len() {
                out["NextToken"] = json!((start + max).to_string());
            }
            Ok(out)
        }
        _ => Err(unknown_operation(op)),
    }
}
