//! IAM policy documents: parsing with AWS's `MalformedPolicyDocument` reasons, and the
//! evaluation logic, pure (no I/O, no clock: the request context carries the time).
//!
//! Evaluation follows the IAM User Guide, "Policy evaluation logic" for one account:
//! every statement of every applicable policy is checked; an explicit `Deny` that
//! matches wins; otherwise a matching `Allow` in an identity policy or in the resource
//! policy allows; otherwise the request is implicitly denied. [`evaluate`] takes the
//! identity policies and an optional resource policy (an S3 bucket policy, a role's
//! trust policy), so the services that keep resource policies plug in here.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use crate::model::{ApiError, ApiResult, Timestamp};

/// The only policy language versions AWS accepts.
pub const VERSIONS: &[&str] = &["2012-10-17", "2008-10-17"];

/// A parsed policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub version: String,
    pub statements: Vec<Statement>,
}

/// A list of patterns, or its negation (`NotAction`, `NotResource`, `NotPrincipal`).
#[derive(Clone, Debug, PartialEq)]
pub enum Patterns {
    Is(Vec<String>),
    Not(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub allow: bool,
    pub action: Patterns,
    /// `None` in a trust policy, which has no `Resource`.
    pub resource: Option<Patterns>,
    /// Principals by type (`AWS`, `Service`, `Federated`, or `*` for anyone).
    pub principal: Option<Patterns>,
    pub conditions: Vec<Condition>,
}

/// One `"Operator": {"key": [values]}` test of a `Condition` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

/// Which kind of policy a document is; the rules differ slightly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Attached to a user, group or role: no `Principal`, `Resource` required.
    Identity,
    /// A role's trust policy: `Principal` required, no `Resource`.
    Trust,
    /// A resource policy (bucket policy): `Principal` and `Resource` required.
    Resource,
}

fn malformed(reason: impl Into<String>) -> ApiError {
    ApiError::new("MalformedPolicyDocument", reason)
}

/// The largest identity policy document accepted, in characters (IAM quotas: managed
/// policies 6,144; inline policies of a user 2,048, of a role 10,240, of a group 5,120;
/// vpclab applies the managed limit to every identity policy).
pub const MAX_POLICY_CHARS: usize = 6_144;

const STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
];

/// Parses and validates a policy document as IAM does before storing it.
pub fn parse(text: &str, kind: Kind) -> ApiResult<Policy> {
    let doc: Value =
        serde_json::from_str(text).map_err(|_| malformed("Syntax errors in policy."))?;
    let Value::Object(top) = doc else {
        return Err(malformed("Syntax errors in policy."));
    };
    for k in top.keys() {
        if !["Version", "Id", "Statement"].contains(&k.as_str()) {
            return Err(malformed(format!(
                "Policy document contains unknown field {k}."
            )));
        }
    }
    let version = match top.get("Version") {
        None => "2008-10-17".to_string(),
        Some(Value::String(v)) if VERSIONS.contains(&v.as_str()) => v.clone(),
        Some(_) => {
            return Err(malformed(
                "The policy failed legacy parsing: Version must be 2012-10-17 or 2008-10-17",
            ));
        }
    };
    let statements = match top.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.iter().collect::<Vec<_>>(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => return Err(malformed("Syntax errors in policy.")),
    };
    let mut out = Vec::new();
    for s in statements {
        out.push(statement(s, kind)?);
    }
    let mut sids: Vec<&str> = out.iter().filter_map(|s| s.sid.as_deref()).collect();
    sids.sort_unstable();
    if sids.windows(2).any(|w| w[0] == w[1]) {
        return Err(malformed(
            "Statement IDs (SID) in a single policy must be unique",
        ));
    }
    Ok(Policy {
        version,
        statements: out,
    })
}

fn strings(v: &Value) -> ApiResult<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("Syntax errors in policy.")),
        _ => Err(malformed("Syntax errors in policy.")),
    }
}

fn pair(
    s: &serde_json::Map<String, Value>,
    is: &str,
    not: &str,
    f: fn(&Value) -> ApiResult<Vec<String>>,
) -> ApiResult<Option<Patterns>> {
    match (s.get(is), s.get(not)) {
        (Some(_), Some(_)) => Err(malformed(format!(
            "Statement contains both {is} and {not}."
        ))),
        (Some(v), None) => Ok(Some(Patterns::Is(f(v)?))),
        (None, Some(v)) => Ok(Some(Patterns::Not(f(v)?))),
        (None, None) => Ok(None),
    }
}

/// `"*"`, or `{"AWS": …, "Service": …}` flattened into `TYPE:value` strings.
fn principals(v: &Value) -> ApiResult<Vec<String>> {
    match v {
        Value::String(s) if s == "*" => Ok(vec!["*".into()]),
        Value::Object(m) if !m.is_empty() => {
            let mut out = Vec::new();
            for (ty, vals) in m {
                if !["AWS", "Service", "Federated", "CanonicalUser"].contains(&ty.as_str()) {
                    return Err(malformed("Invalid principal in policy"));
                }
                for p in strings(vals)? {
                    if ty == "AWS" && !valid_aws_principal(&p) {
                        return Err(malformed(format!(
                            "Invalid principal in policy: \"AWS\":\"{p}\""
                        )));
                    }
                    out.push(format!("{ty}:{p}"));
                }
            }
            Ok(out)
        }
        _ => Err(malformed("Invalid principal in policy")),
    }
}

fn valid_aws_principal(p: &str) -> bool {
    p == "*"
        || (p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()))
        || (p.starts_with("arn:aws:iam::") || p.starts_with("arn:aws:sts::"))
}

fn action_valid(a: &str) -> bool {
    a == "*"
        || a.split_once(':').is_some_and(|(svc, op)| {
            !svc.is_empty()
                && !op.is_empty()
                && svc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && op
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?' || b == b'-')
        })
}

fn statement(v: &Value, kind: Kind) -> ApiResult<Statement> {
    let Value::Object(s) = v else {
        return Err(malformed("Syntax errors in policy."));
    };
    for k in s.keys() {
        if !STATEMENT_KEYS.contains(&k.as_str()) {
            return Err(malformed(format!("Statement contains unknown field {k}.")));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(x)) if x.bytes().all(|b| b.is_ascii_alphanumeric()) => Some(x.clone()),
        Some(_) => return Err(malformed("Statement IDs (SID) must be alpha-numeric.")),
    };
    let allow = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        Some(other) => {
            return Err(malformed(format!(
                "Invalid effect: {other}. Effect must be Allow or Deny."
            )));
        }
        None => return Err(malformed("Missing required field Effect")),
    };
    let action = pair(s, "Action", "NotAction", strings)?
        .ok_or_else(|| malformed("Policy statement must contain actions."))?;
    let (Patterns::Is(list) | Patterns::Not(list)) = &action;
    if let Some(bad) = list.iter().find(|a| !action_valid(a)) {
        return Err(malformed(format!(
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. ({bad})"
        )));
    }
    let resource = pair(s, "Resource", "NotResource", strings)?;
    let principal = pair(s, "Principal", "NotPrincipal", principals)?;
    match kind {
        Kind::Identity => {
            if principal.is_some() {
                return Err(malformed("Policy document should not specify a principal."));
            }
            if resource.is_none() {
                return Err(malformed("Policy statement must contain resources."));
            }
        }
        Kind::Trust => {
            if principal.is_none() {
                return Err(malformed("Missing required field Principal"));
            }
            if resource.is_some() {
                return Err(malformed("Has prohibited field Resource"));
            }
        }
        Kind::Resource => {
            if principal.is_none() {
                return Err(malformed("Missing required field Principal"));
            }
            if resource.is_none() {
                return Err(malformed("Policy statement must contain resources."));
            }
        }
    }
    if let Some(Patterns::Is(r) | Patterns::Not(r)) = &resource
        && let Some(bad) = r.iter().find(|r| *r != "*" && !r.starts_with("arn:"))
    {
        return Err(malformed(format!(
            "Resource {bad} must be in ARN format or \"*\"."
        )));
    }
    let mut conditions = Vec::new();
    match s.get("Condition") {
        None => {}
        Some(Value::Object(ops)) => {
            for (op, block) in ops {
                if !operator_known(op) {
                    return Err(malformed(format!("Invalid Condition type : {op}.")));
                }
                let Value::Object(keys) = block else {
                    return Err(malformed("Syntax errors in policy."));
                };
                for (key, vals) in keys {
                    let values = match vals {
                        Value::Bool(b) => vec![b.to_string()],
                        Value::Number(n) => vec![n.to_string()],
                        Value::Array(a) => a
                            .iter()
                            .map(|x| match x {
                                Value::String(s) => Some(s.clone()),
                                Value::Bool(b) => Some(b.to_string()),
                                Value::Number(n) => Some(n.to_string()),
                                _ => None,
                            })
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| malformed("Syntax errors in policy."))?,
                        other => strings(other)?,
                    };
                    conditions.push(Condition {
                        operator: op.clone(),
                        key: key.clone(),
                        values,
                    });
                }
            }
        }
        Some(_) => return Err(malformed("Syntax errors in policy.")),
    }
    Ok(Statement {
        sid,
        allow,
        action,
        resource,
        principal,
        conditions,
    })
}

/// The condition operators of the IAM User Guide ("IAM JSON policy elements:
/// Condition operators"), with their `…IfExists` and `ForAnyValue:`/`ForAllValues:`
/// forms.
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Null",
];

/// (set qualifier, base operator, if-exists).
fn split_operator(op: &str) -> (Option<&str>, &str, bool) {
    let (set, rest) = match op.split_once(':') {
        Some((q @ ("ForAnyValue" | "ForAllValues"), r)) => (Some(q), r),
        _ => (None, op),
    };
    match rest.strip_suffix("IfExists") {
        Some(base) if base != "Null" => (set, base, true),
        _ => (set, rest, false),
    }
}

fn operator_known(op: &str) -> bool {
    if op.contains(':') && !op.starts_with("ForAnyValue:") && !op.starts_with("ForAllValues:") {
        return false;
    }
    let (_, base, _) = split_operator(op);
    OPERATORS.contains(&base)
}

// ---------------------------------------------------------------------------------------
// The request context

/// What a request is, for evaluation: who, what, on which resource, and the values of
/// the condition keys (names compared case-insensitively, as AWS does).
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub account: String,
    /// The principal's ARN (`arn:aws:iam::ACCT:user/bob`,
    /// `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`).
    pub principal_arn: String,
    /// For an assumed role, the role's ARN (trust and resource policies may name it).
    pub role_arn: Option<String>,
    /// For an AWS service acting by itself (S3 assuming a replication role), the
    /// service principal (`s3.amazonaws.com`): only `"*"` and a matching `Service`
    /// principal name it.
    pub service: Option<String>,
    pub action: String,
    pub resource: String,
    keys: BTreeMap<String, Vec<String>>,
}

impl Context {
    pub fn new(account: &str, principal_arn: &str, action: &str, resource: &str) -> Context {
        Context {
            account: account.to_string(),
            principal_arn: principal_arn.to_string(),
            role_arn: None,
            service: None,
            action: action.to_string(),
            resource: resource.to_string(),
            keys: BTreeMap::new(),
        }
    }

    /// The context of a service principal's request (`sts:AssumeRole` by
    /// `s3.amazonaws.com`), for trust policies.
    pub fn service(service: &str, action: &str, resource: &str) -> Context {
        Context {
            service: Some(service.to_string()),
            ..Context::new("", "", action, resource)
        }
    }

    /// Sets a single-valued condition key.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        self.keys
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
        self
    }

    /// Sets a multi-valued condition key (`aws:TagKeys`).
    pub fn set_many(&mut self, key: &str, values: Vec<String>) -> &mut Context {
        self.keys.insert(key.to_ascii_lowercase(), values);
        self
    }

    /// The time `aws:CurrentTime` and `aws:EpochTime` answer.
    pub fn at(&mut self, now: Timestamp) -> &mut Context {
        self.set("aws:CurrentTime", now.iso());
        self.set("aws:EpochTime", (now.0 / 1000).to_string())
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.keys.get(&key.to_ascii_lowercase()).map(Vec::as_slice)
    }

    /// Every key and its values (for the decoded authorization message).
    pub fn keys(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.keys.iter()
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// Where a statement that decided came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// The policy's name or ARN as the caller labelled it.
    pub policy: String,
    pub index: usize,
    pub sid: Option<String>,
    pub allow: bool,
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The first explicit deny that matched, if any.
    pub explicit_deny: Option<Matched>,
    /// Every statement that matched (allows and denies).
    pub matched: Vec<Matched>,
}

/// Evaluates a request against its identity policies (each labelled) and, where the
/// resource has one, its resource policy: explicit deny, then any allow, else implicit
/// deny (IAM User Guide, "Determining whether a request is allowed or denied within an
/// account").
pub fn evaluate(
    ctx: &Context,
    identity: &[(&str, &Policy)],
    resource_policy: Option<(&str, &Policy)>,
) -> Decision {
    let mut matched = Vec::new();
    for (label, p) in identity {
        for (i, s) in p.statements.iter().enumerate() {
            if statement_matches(ctx, s, false) {
                matched.push(Matched {
                    policy: label.to_string(),
                    index: i,
                    sid: s.sid.clone(),
                    allow: s.allow,
                });
            }
        }
    }
    if let Some((label, p)) = resource_policy {
        for (i, s) in p.statements.iter().enumerate() {
            if statement_matches(ctx, s, true) {
                matched.push(Matched {
                    policy: label.to_string(),
                    index: i,
                    sid: s.sid.clone(),
                    allow: s.allow,
                });
            }
        }
    }
    let explicit_deny = matched.iter().find(|m| !m.allow).cloned();
    let allowed = explicit_deny.is_none() && matched.iter().any(|m| m.allow);
    Decision {
        allowed,
        explicit_deny,
        matched,
    }
}

fn statement_matches(ctx: &Context, s: &Statement, resource_policy: bool) -> bool {
    let action_hit = match &s.action {
        Patterns::Is(p) => p.iter().any(|a| glob(a, &ctx.action, true)),
        Patterns::Not(p) => !p.iter().any(|a| glob(a, &ctx.action, true)),
    };
    if !action_hit {
        return false;
    }
    let resource_hit = match &s.resource {
        None => true,
        Some(Patterns::Is(p)) => p.iter().any(|r| resource_matches(ctx, r)),
        Some(Patterns::Not(p)) => !p.iter().any(|r| resource_matches(ctx, r)),
    };
    if !resource_hit {
        return false;
    }
    if resource_policy {
        let hit = match &s.principal {
            None => false,
            Some(Patterns::Is(p)) => p.iter().any(|x| principal_matches(ctx, x)),
            Some(Patterns::Not(p)) => !p.iter().any(|x| principal_matches(ctx, x)),
        };
        if !hit {
            return false;
        }
    }
    s.conditions.iter().all(|c| condition_holds(ctx, c))
}

/// Whether a `TYPE:value` principal of a resource or trust policy names the caller:
/// `*`, the account (`123456789012` or `arn:aws:iam::123456789012:root`, meaning any
/// principal of the account), the caller's ARN, or an assumed role's role ARN; for a
/// service's own request ([`Context::service`]), its `Service:` principal.
pub fn principal_matches(ctx: &Context, p: &str) -> bool {
    // `"*"` and `{"AWS": "*"}` are the same wildcard (IAM User Guide, "AWS JSON
    // policy elements: Principal").
    if p == "*" || p == "AWS:*" {
        return true;
    }
    // Otherwise a service is named only by its own `Service` principal (IAM User
    // Guide, "AWS service principals"), service names compared without case.
    if let Some(service) = &ctx.service {
        return p
            .strip_prefix("Service:")
            .is_some_and(|s| s.eq_ignore_ascii_case(service));
    }
    let Some(arn) = p.strip_prefix("AWS:") else {
        return false;
    };
    arn == ctx.account
        || arn == format!("arn:aws:iam::{}:root", ctx.account)
        || arn == ctx.principal_arn
        || ctx.role_arn.as_deref() == Some(arn)
}

fn resource_matches(ctx: &Context, pattern: &str) -> bool {
    match substitute(ctx, pattern) {
        Some(p) => arn_like(&p, &ctx.resource),
        None => false,
    }
}

/// Replaces policy variables (`${aws:username}`, `${aws:PrincipalTag/team}`, and the
/// escapes `${*}`, `${?}`, `${$}`); `None` when a variable has no single value, which
/// makes the element not match (IAM User Guide, "IAM policy elements: Variables").
fn substitute(ctx: &Context, s: &str) -> Option<String> {
    if !s.contains("${") {
        return Some(s.to_string());
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let name = &after[..end];
        match name {
            // Escaped characters stand for themselves, not wildcards; a literal that
            // cannot be a wildcard is enough for matching here.
            "*" => out.push('\u{1}'),
            "?" => out.push('\u{2}'),
            "$" => out.push('$'),
            _ => match ctx.get(name) {
                Some([v]) => out.push_str(v),
                _ => return None,
            },
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// `*` (any run) and `?` (one character) matching; `\u{1}`/`\u{2}` match a literal `*`/`?`.
/// The iterative wildcard walk on bytes, without allocation; `?` and the backtracking
/// step move by whole UTF-8 characters, so it serves file names as well as ARNs. The
/// one wildcard matcher of the crate (IAM, S3 policies, the instance shell's globs).
pub fn glob(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let p = pattern.as_bytes();
    let v = value.as_bytes();
    let eq = |a: u8, b: u8| {
        let a = match a {
            1 => b'*',
            2 => b'?',
            a => a,
        };
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && p[pi] == b'?' {
            pi += 1;
            vi += utf8_len(v[vi]);
        } else if pi < p.len() && p[pi] != b'*' && eq(p[pi], v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += utf8_len(v[mark]);
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// The length of the UTF-8 character that starts with byte `b` (1 for ASCII and for a
/// continuation byte, which a `&str` never starts a character with).
fn utf8_len(b: u8) -> usize {
    match b {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

/// ARN matching: each of the six colon-separated parts matched on its own (a `*` does
/// not run across a colon), the last part taking the rest; a pattern of `*` alone
/// matches everything.
pub fn arn_like(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    if p.len() != 6 || a.len() != 6 {
        return glob(pattern, arn, false);
    }
    p.iter().zip(&a).all(|(p, a)| glob(p, a, false))
}

fn condition_holds(ctx: &Context, c: &Condition) -> bool {
    let (set, base, if_exists) = split_operator(&c.operator);
    let values: Vec<String> = c.values.iter().filter_map(|v| substitute(ctx, v)).collect();
    let present = ctx.get(&c.key);
    if base == "Null" {
        let want_absent = values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        return present.is_none_or(<[String]>::is_empty) == want_absent;
    }
    let negated = matches!(
        base,
        "StringNotEquals"
            | "StringNotEqualsIgnoreCase"
            | "StringNotLike"
            | "NumericNotEquals"
            | "DateNotEquals"
            | "NotIpAddress"
            | "ArnNotEquals"
            | "ArnNotLike"
    );
    let request = match present {
        Some(v) if !v.is_empty() => v,
        _ => {
            // A missing key: ForAllValues is vacuously true, IfExists skips the test,
            // negated operators hold, everything else fails.
            return match set {
                Some("ForAllValues") => true,
                Some(_) => false,
                None => if_exists || negated,
            };
        }
    };
    let one = |r: &str| negated ^ values.iter().any(|v| positive_match(base, v, r));
    match set {
        Some("ForAllValues") => request.iter().all(|r| one(r)),
        _ => request.iter().any(|r| one(r)),
    }
}

/// Whether request value `r` matches condition value `v` under the positive form of
/// `base`.
fn positive_match(base: &str, v: &str, r: &str) -> bool {
    match base {
        "StringEquals" | "StringNotEquals" => v == r,
        "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase" => v.eq_ignore_ascii_case(r),
        "StringLike" | "StringNotLike" => glob(v, r, false),
        "Bool" => v.eq_ignore_ascii_case(r),
        "ArnEquals" | "ArnNotEquals" | "ArnLike" | "ArnNotLike" => arn_like(v, r),
        "IpAddress" | "NotIpAddress" => ip_in(v, r),
        b if b.starts_with("Numeric") => {
            let (Ok(v), Ok(r)) = (v.parse::<f64>(), r.parse::<f64>()) else {
                return false;
            };
            compare(
                b.trim_start_matches("Numeric").trim_start_matches("Not"),
                r.partial_cmp(&v),
            )
        }
        b if b.starts_with("Date") => {
            let (Some(v), Some(r)) = (parse_date(v), parse_date(r)) else {
                return false;
            };
            compare(
                b.trim_start_matches("Date").trim_start_matches("Not"),
                Some(r.cmp(&v)),
            )
        }
        _ => false,
    }
}

fn compare(op: &str, ord: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    let Some(o) = ord else { return false };
    match op {
        "Equals" => o == Equal,
        "LessThan" => o == Less,
        "LessThanEquals" => o != Greater,
        "GreaterThan" => o == Greater,
        "GreaterThanEquals" => o != Less,
        _ => false,
    }
}

/// A date condition value: ISO 8601 (`2026-12-01T00:00:00Z`, or a date alone) or epoch
/// seconds; milliseconds since the epoch.
fn parse_date(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs * 1000);
    }
    // YYYY-MM-DD, optionally followed by THH:MM:SS, fractional seconds and Z.
    let b = s.as_bytes();
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(digits(5, 7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(digits(0, 4)?).ok()?,
        month,
        u8::try_from(digits(8, 10)?).ok()?,
    )
    .ok()?;
    let mut secs = date.midnight().assume_utc().unix_timestamp();
    if b.len() > 10 {
        if b[10] != b'T' || b.len() < 19 || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (h, m, sec) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
        if h > 23 || m > 59 || sec > 60 {
            return None;
        }
        let tail = &s[19..];
        let tail = tail.strip_suffix('Z').unwrap_or(tail);
        let frac_ok = tail.is_empty()
            || tail
                .strip_prefix('.')
                .is_some_and(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()));
        if !frac_ok {
            return None;
        }
        secs += h * 3600 + m * 60 + sec;
    }
    Some(secs * 1000)
}

/// Whether address `r` lies in the CIDR (or single address) `v`.
fn ip_in(v: &str, r: &str) -> bool {
    let Ok(addr) = r.parse::<IpAddr>() else {
        return false;
    };
    if let Ok(net) = v.parse::<ipnet::IpNet>() {
        return net.contains(&addr);
    }
    v.parse::<IpAddr>().is_ok_and(|a| a == addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Policy {
        parse(text, Kind::Identity).expect("valid policy")
    }

    fn ctx(action: &str, resource: &str) -> Context {
        let mut c = Context::new(
            "123456789012",
            "arn:aws:iam::123456789012:user/bob",
            action,
            resource,
        );
        c.set("aws:username", "bob");
        c
    }

    /// IAM User Guide: an explicit deny in any policy overrides any allow.
    #[test]
    fn explicit_deny_beats_allow_beats_implicit_deny() {
        let admin = p(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        );
        let deny = p(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoRun","Effect":"Deny","Action":"ec2:RunInstances","Resource":"*"}]}"#,
        );
        let c = ctx(
            "ec2:RunInstances",
            "arn:aws:ec2:us-east-1:123456789012:instance/*",
        );
        let d = evaluate(&c, &[("admin", &admin), ("deny", &deny)], None);
        assert!(!d.allowed);
        assert_eq!(d.explicit_deny.unwrap().sid.as_deref(), Some("NoRun"));
        assert!(evaluate(&c, &[("admin", &admin)], None).allowed);
        let d = evaluate(&c, &[], None);
        assert!(!d.allowed && d.explicit_deny.is_none());
    }

    #[test]
    fn action_wildcards_are_case_insensitive_and_not_action_inverts() {
        let ro = p(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["ec2:Describe*"],"Resource":"*"}}"#,
        );
        assert!(evaluate(&ctx("ec2:describevpcs", "*"), &[("ro", &ro)], None).allowed);
        assert!(!evaluate(&ctx("ec2:RunInstances", "*"), &[("ro", &ro)], None).allowed);
        let not = p(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}"#,
        );
        assert!(evaluate(&ctx("ec2:RunInstances", "*"), &[("n", &not)], None).allowed);
        assert!(!evaluate(&ctx("iam:CreateUser", "*"), &[("n", &not)], None).allowed);
    }

    #[test]
    fn resources_match_per_arn_part_and_policy_variables_resolve() {
        let own = p(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:*AccessKey*","Resource":"arn:aws:iam::*:user/${aws:username}"}}"#,
        );
        assert!(
            evaluate(
                &ctx("iam:CreateAccessKey", "arn:aws:iam::123456789012:user/bob"),
                &[("o", &own)],
                None
            )
            .allowed
        );
        assert!(
            !evaluate(
                &ctx(
                    "iam:CreateAccessKey",
                    "arn:aws:iam::123456789012:user/alice"
                ),
                &[("o", &own)],
                None
            )
            .allowed
        );
        // `*` in the account part does not run over a colon.
        assert!(!arn_like(
            "arn:aws:iam::*:user/bob",
            "arn:aws:iam::1:2:user/bob"
        ));
        assert!(arn_like(
            "arn:aws:ec2:*:*:instance/*",
            "arn:aws:ec2:us-east-1:1:instance/i-1"
        ));
        let notres = p(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","NotResource":"arn:aws:iam::*:*"}}"#,
        );
        assert!(
            !evaluate(
                &ctx("iam:GetUser", "arn:aws:iam::1:user/x"),
                &[("n", &notres)],
                None
            )
            .allowed
        );
        assert!(
            evaluate(
                &ctx("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:instance/*"),
                &[("n", &notres)],
                None
            )
            .allowed
        );
    }

    fn cond(c: &str) -> Policy {
        p(&format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{c}}}}}"#
        ))
    }

    fn allows(pol: &Policy, c: &Context) -> bool {
        evaluate(c, &[("p", pol)], None).allowed
    }

    #[test]
    fn condition_operators_follow_the_user_guide() {
        let mut c = ctx("ec2:RunInstances", "*");
        c.set("aws:SourceIp", "203.0.113.9")
            .set("aws:RequestedRegion", "eu-west-1")
            .set("aws:MultiFactorAuthPresent", "false")
            .set("aws:PrincipalTag/team", "blue")
            .set("ec2:ResourceTag/env", "prod")
            .at(Timestamp(1_764_547_200_000)); // 2025-12-01T00:00:00Z
        assert!(allows(
            &cond(r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#),
            &c
        ));
        assert!(!allows(
            &cond(r#"{"NotIpAddress":{"aws:SourceIp":["203.0.113.0/24"]}}"#),
            &c
        ));
        assert!(allows(
            &cond(r#"{"StringEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}"#),
            &c
        ));
        assert!(!allows(
            &cond(r#"{"StringNotEquals":{"aws:RequestedRegion":"eu-west-1"}}"#),
            &c
        ));
        assert!(allows(
            &cond(r#"{"StringLike":{"aws:PrincipalTag/team":"bl*"}}"#),
            &c
        ));
        assert!(allows(
            &cond(r#"{"StringEqualsIgnoreCase":{"ec2:ResourceTag/env":"PROD"}}"#),
            &c
        ));
        assert!(!allows(
            &cond(r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#),
            &c
        ));
        assert!(allows(
            &cond(r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#),
            &c
        ));
        assert!(!allows(
            &cond(r#"{"Bool":{"aws:SecureTransport":"true"}}"#),
            &c
        ));
        assert!(allows(
            &cond(r#"{"Null":{"aws:SecureTransport":"true"}}"#),
            &c
        ));
        assert!(!allows(&cond(r#"{"Null":{"aws:SourceIp":"true"}}"#), &c));
        assert!(allows(
            &cond(r#"{"DateLessThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}"#),
            &c
        ));
        assert!(!allows(
            &cond(r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01"}}"#),
            &c
        ));
        assert!(allows(
            &cond(r#"{"NumericLessThanEquals":{"aws:EpochTime":"1764547200"}}"#),
            &c
        ));
        assert!(allows(
            &cond(r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#),
            &{
                let mut c2 = c.clone();
                c2.set("aws:PrincipalArn", "arn:aws:iam::123456789012:user/bob");
                c2
            }
        ));
        // Policy variables in condition values.
        assert!(allows(
            &cond(r#"{"StringEquals":{"aws:PrincipalTag/team":"${aws:PrincipalTag/team}"}}"#),
            &c
        ));
    }

    #[test]
    fn multivalued_keys_use_for_any_value_and_for_all_values() {
        let mut c = ctx("ec2:CreateTags", "*");
        c.set_many("aws:TagKeys", vec!["env".into(), "owner".into()]);
        assert!(allows(
            &cond(r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","owner","cost"]}}"#),
            &c
        ));
        assert!(!allows(
            &cond(r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}"#),
            &c
        ));
        assert!(allows(
            &cond(r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["owner"]}}"#),
            &c
        ));
        assert!(!allows(
            &cond(r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["cost"]}}"#),
            &c
        ));
        // Absent key: ForAllValues holds vacuously, ForAnyValue does not.
        let empty = ctx("ec2:CreateTags", "*");
        assert!(allows(
            &cond(r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}"#),
            &empty
        ));
        assert!(!allows(
            &cond(r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env"]}}"#),
            &empty
        ));
    }

    #[test]
    fn a_service_is_named_only_by_its_service_principal() {
        let ctx = Context::service(
            "s3.amazonaws.com",
            "sts:AssumeRole",
            "arn:aws:iam::1:role/r",
        );
        assert!(principal_matches(&ctx, "*"));
        assert!(principal_matches(&ctx, "Service:s3.amazonaws.com"));
        assert!(principal_matches(&ctx, "Service:S3.AMAZONAWS.COM"));
        assert!(!principal_matches(&ctx, "Service:ec2.amazonaws.com"));
        // Neither an account nor a user names a service.
        assert!(!principal_matches(&ctx, "AWS:arn:aws:iam::1:root"));
        assert!(!principal_matches(&ctx, "AWS:arn:aws:iam::1:user/bob"));
    }

    #[test]
    fn resource_policies_match_principals() {
        let trust = parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}}"#,
            Kind::Trust,
        )
        .unwrap();
        let c = ctx("sts:AssumeRole", "arn:aws:iam::123456789012:role/r");
        assert!(evaluate(&c, &[], Some(("trust", &trust))).allowed);
        let mut other = c.clone();
        other.account = "999999999999".into();
        other.principal_arn = "arn:aws:iam::999999999999:user/eve".into();
        assert!(!evaluate(&other, &[], Some(("trust", &trust))).allowed);
    }

    /// Each malformed document gets the reason IAM gives.
    #[test]
    fn malformed_documents_name_the_reason() {
        let cases = [
            ("{", "Syntax errors in policy."),
            (r#"{"Version":"2012-10-17"}"#, "Syntax errors in policy."),
            (
                r#"{"Version":"2012-10-18","Statement":[]}"#,
                "failed legacy parsing",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*"}}"#,
                "must contain resources",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}"#,
                "must contain actions",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Permit","Action":"*","Resource":"*"}}"#,
                "Invalid effect",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"RunInstances","Resource":"*"}}"#,
                "prefaced by a vendor",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}}"#,
                "should not specify a principal",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualz":{"a:b":"c"}}}}"#,
                "Invalid Condition type",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"bucket"}}"#,
                "ARN format",
            ),
        ];
        for (doc, reason) in cases {
            let e = parse(doc, Kind::Identity).unwrap_err();
            assert_eq!(e.code, "MalformedPolicyDocument", "{doc}");
            assert!(e.message.contains(reason), "{doc}: {}", e.message);
        }
    }
}
