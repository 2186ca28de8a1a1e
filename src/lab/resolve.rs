//! Stage two: a resolved lab. Parameters are drawn for one learner, `{{params}}` are
//! rendered, every check's arguments are typed and checked against its kind, and every
//! reference (hint → check, prerequisite, step page, solution, parameter) is valid.
//! [`lint`] runs the same resolution and collects every problem instead of the first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Serialize;

use super::spec::{self, CheckSpec, Initial, LabFileError, LabSpec, Mode};
use super::template;

/// A lab ready to run for one learner.
#[derive(Debug, Clone, Serialize)]
pub struct Lab {
    pub id: String,
    pub version: u32,
    pub title: String,
    pub summary: String,
    pub objectives: Vec<String>,
    pub estimated_minutes: Option<u32>,
    pub dir: PathBuf,
    pub pass_percent: u32,
    pub mode: Mode,
    pub seed: u64,
    pub params: BTreeMap<String, String>,
    /// Setup scripts, in order, with what each builds.
    pub setup: Vec<(String, PathBuf)>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: String,
    pub title: String,
    /// The step page with parameters rendered.
    pub page: String,
    pub solve: PathBuf,
    pub expect_initial: Initial,
    pub checks: Vec<Check>,
    pub hints: Vec<Hint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hint {
    pub text: String,
    pub for_check: Option<String>,
    pub after_attempts: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: String,
    pub points: u32,
    pub fail: Option<String>,
    pub retry: Option<Duration>,
    pub kind: CheckKind,
}

/// Where a probe starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Vantage {
    /// The learner's computer (203.0.113.10 on the world's internet).
    Learner,
    /// Some other host on the internet.
    Internet,
    /// The primary interface of the instance with this `Name` tag.
    Instance(String),
    /// Inside the VPC with this `Name` tag (DNS only: its resolver).
    Vpc(String),
}

/// Where a probe goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Target {
    /// The instance with this `Name` tag: its public address from the internet, its
    /// private address from inside.
    Instance(String),
    Addr(Ipv4Addr),
    /// A DNS name, resolved as the vantage would (`http` only): the public DNS from the
    /// internet, the VPC's resolver from an instance.
    Name(String),
    /// `lb:<name>`: the load balancer with this name, by its DNS name (`http` only).
    LoadBalancer(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        })
    }
}

/// Who an `access` check asks about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AccessPrincipal {
    User(String),
    Role(String),
}

#[derive(Debug, Clone, Serialize)]
pub enum CheckKind {
    /// Whether the principal's request would be let through by the API's own
    /// authorization gate (identity policies, and the bucket policy for S3 ARNs), with
    /// IAM enforcement on.
    Access {
        principal: AccessPrincipal,
        action: String,
        resource: String,
        allowed: bool,
    },
    Resource {
        resource_type: String,
        filters: Vec<(String, Vec<String>)>,
        count: Option<u32>,
    },
    Route {
        subnet: String,
        destination: Ipv4Net,
        target: String,
    },
    Reach {
        from: Vantage,
        to: Target,
        protocol: Proto,
        port: u16,
        allowed: bool,
    },
    Dns {
        from: Vantage,
        name: String,
        record_type: String,
        /// Expected values (any order); empty means NXDOMAIN.
        values: Vec<String>,
    },
    File {
        path: String,
        mode: Option<u32>,
        forbid_bits: Option<u32>,
    },
    Quiz {
        question: String,
        answers: Vec<String>,
    },
    /// A real SSH login from the learner's computer with the key file they hold.
    Ssh {
        to: Target,
        user: String,
        key: String,
        command: Option<String>,
        /// A regular expression the command's output must match.
        output: Option<String>,
    },
    /// A real HTTP GET through the fabric.
    Http {
        from: Vantage,
        to: Target,
        port: u16,
        path: String,
        status: u16,
        /// A regular expression the body must match.
        body: Option<String>,
    },
    /// A command run in the instance's shell through the kit's own channel.
    Exec {
        on: String,
        command: String,
        exit: i32,
        /// A regular expression the output (stdout and stderr) must match.
        output: Option<String>,
    },
    /// The targets of the target group with this name: at least `count` of them in
    /// `state` (`healthy`, `unhealthy`, `initial`, `draining`, `unused`), as
    /// DescribeTargetHealth shows them.
    Targets {
        group: String,
        state: String,
        count: u32,
    },
    All(Vec<Check>),
    Any(Vec<Check>),
    Not(Box<Check>),
}

/// The resource types a `resource` check can name (the model's kinds).
pub const RESOURCE_TYPES: &[&str] = &[
    "vpc",
    "subnet",
    "route_table",
    "internet_gateway",
    "nat_gateway",
    "address",
    "network_acl",
    "security_group",
    "key_pair",
    "instance",
    "network_interface",
    "flow_log",
    "vpc_endpoint",
    "vpc_peering_connection",
    "network_insights_path",
    "network_insights_analysis",
];

/// Route target kinds of a `route` check.
pub const ROUTE_TARGETS: &[&str] = &[
    "local",
    "igw",
    "nat",
    "eni",
    "pcx",
    "vpce",
    "blackhole",
    "none",
];

/// The arguments of each kind (besides id, kind, points, fail, retry_seconds).
const KIND_ARGS: &[(&str, &[&str], &[&str])] = &[
    // kind, required, optional
    ("resource", &["type"], &["filters", "count"]),
    ("route", &["subnet", "destination", "target"], &[]),
    ("reach", &["from", "to", "port"], &["protocol", "expect"]),
    (
        "dns",
        &["from", "name"],
        &["record_type", "values", "expect"],
    ),
    ("file", &["path"], &["mode", "forbid_bits"]),
    ("quiz", &["question", "answers"], &[]),
    ("ssh", &["to", "user", "key"], &["command", "output"]),
    ("http", &["to"], &["from", "port", "path", "status", "body"]),
    ("exec", &["on", "command"], &["exit", "output"]),
    ("access", &["principal", "action", "resource"], &["expect"]),
    ("targets", &["name"], &["expect", "count"]),
    ("all", &["checks"], &[]),
    ("any", &["checks"], &[]),
    ("not", &["checks"], &[]),
];
const COMMON: &[&str] = &["id", "kind", "points", "fail", "retry_seconds"];

/// Collects problems with their key paths; turned into [`LabFileError`]s at the end.
struct Problems<'a> {
    file: PathBuf,
    text: &'a str,
    list: Vec<LabFileError>,
}

impl Problems<'_> {
    fn push(&mut self, key: String, anchor: Option<&str>, message: String) {
        let line = anchor.map_or(0, |a| line_of(self.text, a));
        self.list.push(LabFileError {
            file: self.file.clone(),
            line,
            key,
            message,
        });
    }
}

/// The line of the first `id = "<anchor>"` (or of `anchor` itself) in the file.
fn line_of(text: &str, anchor: &str) -> usize {
    let quoted = format!("\"{anchor}\"");
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            (t.starts_with("id") && t.contains(&quoted)) || t.starts_with(anchor)
        })
        .map_or(0, |i| i + 1)
}

/// Reads `<dir>/lab.toml` and resolves it for `learner` (with the course `secret`).
pub fn load(dir: &Path, learner: &str, secret: &str) -> Result<Lab, Vec<LabFileError>> {
    let file = dir.join("lab.toml");
    let text = std::fs::read_to_string(&file).map_err(|e| {
        vec![LabFileError {
            file: file.clone(),
            line: 0,
            key: "-".into(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    let spec = spec::parse(&file, &text).map_err(|e| vec![e])?;
    resolve(dir, &file, &text, &spec, learner, secret)
}

/// Every problem of the lab in `dir`, and of its prerequisites against `known` lab ids.
pub fn lint(dir: &Path, known: &BTreeSet<String>) -> Vec<LabFileError> {
    let file = dir.join("lab.toml");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            return vec![LabFileError {
                file,
                line: 0,
                key: "-".into(),
                message: format!("cannot read: {e}"),
            }];
        }
    };
    let spec = match spec::parse(&file, &text) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let mut problems = match resolve(dir, &file, &text, &spec, "lint", "") {
        Ok(_) => Vec::new(),
        Err(p) => p,
    };
    for (i, p) in spec.prerequisites.iter().enumerate() {
        if !known.contains(p) {
            problems.push(LabFileError {
                file: file.clone(),
                line: line_of(&text, "prerequisites"),
                key: format!("prerequisites[{i}]"),
                message: format!("expected the id of a lab in the curriculum, found {p:?}"),
            });
        }
    }
    // The folder is `<id>` or `<NN>-<id>` (the curriculum's order).
    let folder = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let numbered = folder
        .split_once('-')
        .is_some_and(|(n, rest)| n.chars().all(|c| c.is_ascii_digit()) && rest == spec.id);
    if folder != spec.id && !numbered {
        problems.push(LabFileError {
            file: file.clone(),
            line: line_of(&text, "id"),
            key: "id".into(),
            message: format!(
                "expected the folder's name {folder:?} (or it without its NN- prefix), found {:?}",
                spec.id
            ),
        });
    }
    problems
}

fn resolve(
    dir: &Path,
    file: &Path,
    text: &str,
    spec: &LabSpec,
    learner: &str,
    secret: &str,
) -> Result<Lab, Vec<LabFileError>> {
    let mut p = Problems {
        file: file.to_path_buf(),
        text,
        list: Vec::new(),
    };
    let seed = super::params::seed(learner, &spec.id, secret);
    let params = match super::params::draw(&spec.params, seed) {
        Ok(v) => v,
        Err(e) => {
            let key = e.split(':').next().unwrap_or("params").to_string();
            p.push(key, Some("[params"), e);
            BTreeMap::new()
        }
    };
    if spec.scoring.pass_percent > 100 {
        p.push(
            "scoring.pass_percent".into(),
            Some("pass_percent"),
            format!("expected 0..=100, found {}", spec.scoring.pass_percent),
        );
    }
    if spec.steps.is_empty() {
        p.push("steps".into(), None, "expected at least one step".into());
    }
    let mut setup = Vec::new();
    for (i, a) in spec.setup.iter().enumerate() {
        let path = dir.join(&a.run);
        if !path.is_file() {
            p.push(
                format!("setup[{i}].run"),
                Some("run"),
                format!("expected a setup script at {}", path.display()),
            );
        }
        setup.push((template::render(&a.description, &params), path));
    }
    let mut step_ids = BTreeSet::new();
    let mut steps = Vec::new();
    for (si, s) in spec.steps.iter().enumerate() {
        let at = format!("steps[{si}]");
        if !step_ids.insert(s.id.clone()) {
            p.push(
                format!("{at}.id"),
                Some(&s.id),
                format!("step id {:?} is used twice", s.id),
            );
        }
        let body_path = dir.join(&s.body);
        let page = match std::fs::read_to_string(&body_path) {
            Ok(t) => {
                used_params(
                    &mut p,
                    &params,
                    &t,
                    &format!("{at}.body ({})", s.body),
                    &s.id,
                );
                template::render(&t, &params)
            }
            Err(e) => {
                p.push(
                    format!("{at}.body"),
                    Some(&s.id),
                    format!("expected a step page at {}: {e}", body_path.display()),
                );
                String::new()
            }
        };
        let solve = dir.join(&s.solve);
        if !solve.is_file() {
            p.push(
                format!("{at}.solve"),
                Some(&s.id),
                format!("expected a solution script at {}", solve.display()),
            );
        }
        if s.checks.is_empty() {
            p.push(
                format!("{at}.checks"),
                Some(&s.id),
                "expected at least one check".into(),
            );
        }
        let mut check_ids = BTreeSet::new();
        let mut checks = Vec::new();
        for (ci, c) in s.checks.iter().enumerate() {
            let key = format!("{at}.checks[{ci}]");
            match &c.id {
                Some(id) if !check_ids.insert(id.clone()) => p.push(
                    format!("{key}.id"),
                    Some(id),
                    format!("check id {id:?} is used twice in step {:?}", s.id),
                ),
                Some(_) => {}
                None => p.push(
                    format!("{key}.id"),
                    Some(&s.id),
                    "expected an id (every check of a step has one)".into(),
                ),
            }
            if let Some(check) = check(&mut p, &params, c, &key) {
                checks.push(check);
            }
        }
        let mut hints = Vec::new();
        for (hi, h) in s.hints.iter().enumerate() {
            if let Some(fc) = &h.for_check
                && !check_ids.contains(fc)
            {
                p.push(
                    format!("{at}.hints[{hi}].for_check"),
                    Some(&s.id),
                    format!(
                        "expected the id of a check of step {:?} ({}), found {fc:?}",
                        s.id,
                        check_ids.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            used_params(
                &mut p,
                &params,
                &h.text,
                &format!("{at}.hints[{hi}].text"),
                &s.id,
            );
            hints.push(Hint {
                text: template::render(&h.text, &params),
                for_check: h.for_check.clone(),
                after_attempts: h.after_attempts,
            });
        }
        steps.push(Step {
            id: s.id.clone(),
            title: template::render(&s.title, &params),
            page,
            solve,
            expect_initial: s.expect_initial,
            checks,
            hints,
        });
    }
    if !p.list.is_empty() {
        return Err(p.list);
    }
    Ok(Lab {
        id: spec.id.clone(),
        version: spec.version,
        title: spec.title.clone(),
        summary: spec.summary.clone(),
        objectives: spec.objectives.clone(),
        estimated_minutes: spec.estimated_minutes,
        dir: dir.to_path_buf(),
        pass_percent: spec.scoring.pass_percent,
        mode: spec.scoring.mode,
        seed,
        params,
        setup,
        steps,
    })
}

/// Reports `{{names}}` in `text` that are not declared parameters.
fn used_params(
    p: &mut Problems<'_>,
    params: &BTreeMap<String, String>,
    text: &str,
    key: &str,
    anchor: &str,
) {
    // When drawing failed, every name would be reported; the draw error says enough.
    if params.is_empty() && p.list.iter().any(|e| e.key.starts_with("params")) {
        return;
    }
    for n in template::names(text) {
        if !params.contains_key(&n) {
            p.push(
                key.to_string(),
                Some(anchor),
                format!("uses parameter {{{{{n}}}}}, which [params] does not declare"),
            );
        }
    }
}

/// Types one check; `None` (with problems pushed) when it is invalid.
fn check(
    p: &mut Problems<'_>,
    params: &BTreeMap<String, String>,
    c: &CheckSpec,
    key: &str,
) -> Option<Check> {
    let anchor = c.id.clone().unwrap_or_else(|| c.kind.clone());
    let anchor = anchor.as_str();
    let Some((_, required, optional)) = KIND_ARGS.iter().find(|(k, _, _)| *k == c.kind) else {
        p.push(
            format!("{key}.kind"),
            Some(anchor),
            format!(
                "expected one of {}, found {:?}",
                KIND_ARGS
                    .iter()
                    .map(|(k, _, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", "),
                c.kind
            ),
        );
        return None;
    };
    // Which keys the author set: the spec serialised, nulls dropped.
    let set: Vec<String> = match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    };
    let before = p.list.len();
    for k in &set {
        if !COMMON.contains(&k.as_str())
            && !required.contains(&k.as_str())
            && !optional.contains(&k.as_str())
        {
            p.push(
                format!("{key}.{k}"),
                Some(anchor),
                format!(
                    "not an argument of kind {:?} (expected {})",
                    c.kind,
                    required
                        .iter()
                        .chain(optional.iter())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    for r in *required {
        if !set.iter().any(|k| k == r) {
            p.push(
                format!("{key}.{r}"),
                Some(anchor),
                format!("kind {:?} requires {r}", c.kind),
            );
        }
    }
    // Every string argument may use parameters.
    for s in [
        &c.fail,
        &c.resource_type,
        &c.subnet,
        &c.destination,
        &c.target,
        &c.from,
        &c.to,
        &c.name,
        &c.path,
        &c.question,
        &c.user,
        &c.key,
        &c.command,
        &c.output,
        &c.body,
        &c.on,
    ]
    .into_iter()
    .flatten()
    {
        used_params(p, params, s, key, anchor);
    }
    if p.list.len() > before {
        return None;
    }
    let r = |s: &Option<String>| template::render(s.as_deref().unwrap_or_default(), params);
    let mut bad = |arg: &str, message: String| {
        p.push(format!("{key}.{arg}"), Some(anchor), message);
    };
    // The `Ok` value, or the error recorded against `arg` and no check.
    macro_rules! or_bad {
        ($arg:expr, $res:expr) => {
            match $res {
                Ok(v) => v,
                Err(e) => {
                    bad($arg, e);
                    return None;
                }
            }
        };
    }
    let kind = match c.kind.as_str() {
        "resource" => {
            let t = r(&c.resource_type);
            if !RESOURCE_TYPES.contains(&t.as_str()) {
                bad(
                    "type",
                    format!("expected one of {}, found {t:?}", RESOURCE_TYPES.join(", ")),
                );
                return None;
            }
            let filters = c
                .filters
                .iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.to_vec()
                            .iter()
                            .map(|x| template::render(x, params))
                            .collect(),
                    )
                })
                .collect();
            CheckKind::Resource {
                resource_type: t,
                filters,
                count: c.count,
            }
        }
        "route" => {
            let dest = r(&c.destination);
            let Ok(destination) = dest
                .parse::<Ipv4Net>()
                .or_else(|_| dest.parse::<Ipv4Addr>().map(Ipv4Net::from))
            else {
                bad(
                    "destination",
                    format!("expected a CIDR or address, found {dest:?}"),
                );
                return None;
            };
            let target = r(&c.target);
            if !ROUTE_TARGETS.contains(&target.as_str()) {
                bad(
                    "target",
                    format!(
                        "expected one of {}, found {target:?}",
                        ROUTE_TARGETS.join(", ")
                    ),
                );
                return None;
            }
            CheckKind::Route {
                subnet: r(&c.subnet),
                destination,
                target,
            }
        }
        "reach" => {
            let from = or_bad!("from", vantage(&r(&c.from), false));
            let to = or_bad!("to", target(&r(&c.to), false));
            let protocol = match c.protocol.as_deref().unwrap_or("tcp") {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                "icmp" => Proto::Icmp,
                other => {
                    bad(
                        "protocol",
                        format!("expected tcp, udp or icmp, found {other:?}"),
                    );
                    return None;
                }
            };
            let allowed = match c.expect.as_deref().unwrap_or("allowed") {
                "allowed" => true,
                "blocked" => false,
                other => {
                    bad(
                        "expect",
                        format!("expected allowed or blocked, found {other:?}"),
                    );
                    return None;
                }
            };
            CheckKind::Reach {
                from,
                to,
                protocol,
                port: c.port.unwrap_or(0),
                allowed,
            }
        }
        "dns" => {
            let from = or_bad!("from", vantage(&r(&c.from), true));
            let nx = match c.expect.as_deref() {
                None => false,
                Some("nxdomain") => true,
                Some(other) => {
                    bad("expect", format!("expected nxdomain, found {other:?}"));
                    return None;
                }
            };
            let values: Vec<String> = c
                .values
                .iter()
                .flatten()
                .map(|v| template::render(v, params))
                .collect();
            if let Some(v) = values.iter().find(|v| {
                v.starts_with('@')
                    && !(v.starts_with("@public-ip:") || v.starts_with("@private-ip:"))
            }) {
                bad(
                    "values",
                    format!(
                        "expected an address, a name, @public-ip:<Name> or @private-ip:<Name>, found {v:?}"
                    ),
                );
                return None;
            }
            if nx != values.is_empty() {
                bad(
                    "values",
                    "expected either values or expect = \"nxdomain\"".to_string(),
                );
                return None;
            }
            CheckKind::Dns {
                from,
                name: r(&c.name),
                record_type: c.record_type.clone().unwrap_or_else(|| "A".into()),
                values,
            }
        }
        "file" => {
            let octal = |s: &Option<String>, arg: &str, bad: &mut dyn FnMut(&str, String)| {
                s.as_ref()
                    .map(|m| {
                        u32::from_str_radix(m.trim_start_matches("0o"), 8).map_err(|_| {
                            bad(
                                arg,
                                format!("expected an octal mode like \"0400\", found {m:?}"),
                            )
                        })
                    })
                    .transpose()
            };
            let Ok(mode) = octal(&c.mode, "mode", &mut bad) else {
                return None;
            };
            let Ok(forbid_bits) = octal(&c.forbid_bits, "forbid_bits", &mut bad) else {
                return None;
            };
            CheckKind::File {
                path: r(&c.path),
                mode,
                forbid_bits,
            }
        }
        "targets" => {
            let state = c.expect.clone().unwrap_or_else(|| "healthy".into());
            if !["healthy", "unhealthy", "initial", "draining", "unused"].contains(&state.as_str())
            {
                bad(
                    "expect",
                    format!(
                        "expected healthy, unhealthy, initial, draining or unused, found {state:?}"
                    ),
                );
                return None;
            }
            CheckKind::Targets {
                group: r(&c.name),
                state,
                count: c.count.unwrap_or(1),
            }
        }
        "quiz" => CheckKind::Quiz {
            question: r(&c.question),
            answers: c.answers.clone().unwrap_or_default(),
        },
        "ssh" => {
            let to = match target(&r(&c.to), false) {
                Ok(t @ Target::Instance(_)) => t,
                Ok(_) => {
                    bad(
                        "to",
                        format!("expected instance:<Name>, found {:?}", r(&c.to)),
                    );
                    return None;
                }
                Err(e) => {
                    bad("to", e);
                    return None;
                }
            };
            if c.output.is_some() && c.command.is_none() {
                bad("output", "expected a command whose output to match".into());
                return None;
            }
            let output = c.output.as_ref().map(|o| template::render(o, params));
            if let Err(e) = valid_regex(output.as_deref()) {
                bad("output", e);
                return None;
            }
            CheckKind::Ssh {
                to,
                user: r(&c.user),
                key: r(&c.key),
                command: c.command.as_ref().map(|x| template::render(x, params)),
                output,
            }
        }
        "http" => {
            let from = match c.from.as_ref().map(|f| template::render(f, params)) {
                None => Vantage::Learner,
                Some(f) => or_bad!("from", vantage(&f, false)),
            };
            let to = or_bad!("to", target(&r(&c.to), true));
            let path = c
                .path
                .as_ref()
                .map_or_else(|| "/".to_string(), |p| template::render(p, params));
            if !path.starts_with('/') {
                bad(
                    "path",
                    format!("expected a path starting with /, found {path:?}"),
                );
                return None;
            }
            let status = c.status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                bad(
                    "status",
                    format!("expected an HTTP status (100..=599), found {status}"),
                );
                return None;
            }
            let body = c.body.as_ref().map(|b| template::render(b, params));
            if let Err(e) = valid_regex(body.as_deref()) {
                bad("body", e);
                return None;
            }
            CheckKind::Http {
                from,
                to,
                port: c.port.unwrap_or(80),
                path,
                status,
                body,
            }
        }
        "exec" => {
            let on = r(&c.on);
            let Some(name) = on.strip_prefix("instance:").filter(|n| !n.is_empty()) else {
                bad("on", format!("expected instance:<Name>, found {on:?}"));
                return None;
            };
            let output = c.output.as_ref().map(|o| template::render(o, params));
            if let Err(e) = valid_regex(output.as_deref()) {
                bad("output", e);
                return None;
            }
            CheckKind::Exec {
                on: name.to_string(),
                command: r(&c.command),
                exit: c.exit.unwrap_or(0),
                output,
            }
        }
        "access" => {
            let principal = r(&c.principal);
            let principal = match principal.split_once(':') {
                Some(("user", n)) if !n.is_empty() => AccessPrincipal::User(n.to_string()),
                Some(("role", n)) if !n.is_empty() => AccessPrincipal::Role(n.to_string()),
                _ => {
                    bad(
                        "principal",
                        format!("expected user:<name> or role:<name>, found {principal:?}"),
                    );
                    return None;
                }
            };
            let action = r(&c.action);
            if !action.contains(':') {
                bad(
                    "action",
                    format!("expected service:Action (s3:GetObject), found {action:?}"),
                );
                return None;
            }
            let resource = r(&c.resource);
            if resource != "*" && !resource.starts_with("arn:") {
                bad(
                    "resource",
                    format!("expected an ARN or *, found {resource:?}"),
                );
                return None;
            }
            let allowed = match c.expect.as_deref() {
                None | Some("allowed") => true,
                Some("denied") => false,
                Some(other) => {
                    bad(
                        "expect",
                        format!("expected allowed or denied, found {other:?}"),
                    );
                    return None;
                }
            };
            CheckKind::Access {
                principal,
                action,
                resource,
                allowed,
            }
        }
        "all" | "any" | "not" => {
            let inner = c.checks.as_deref().unwrap_or_default();
            if c.kind == "not" && inner.len() != 1 {
                bad(
                    "checks",
                    format!("kind \"not\" takes one check, found {}", inner.len()),
                );
                return None;
            }
            let mut out = Vec::new();
            for (i, sub) in inner.iter().enumerate() {
                out.push(check(p, params, sub, &format!("{key}.checks[{i}]"))?);
            }
            match c.kind.as_str() {
                "all" => CheckKind::All(out),
                "any" => CheckKind::Any(out),
                _ => CheckKind::Not(Box::new(out.remove(0))),
            }
        }
        _ => return None,
    };
    Some(Check {
        id: c.id.clone().unwrap_or_else(|| c.kind.clone()),
        points: c.points.unwrap_or(1),
        fail: c.fail.as_ref().map(|f| template::render(f, params)),
        retry: c.retry_seconds.map(Duration::from_secs),
        kind,
    })
}

/// The simulated internet's named hosts.
fn internet_host(s: &str) -> Option<Ipv4Addr> {
    use vpclab_netstack::internet::{MIRROR_ADDR, PUBLIC_DNS_ADDR, WEB_ADDR, WHATISMYIP_ADDR};
    match s {
        "internet:mirror" => Some(MIRROR_ADDR),
        "internet:web" => Some(WEB_ADDR),
        "internet:dns" => Some(PUBLIC_DNS_ADDR),
        "internet:whatismyip" => Some(WHATISMYIP_ADDR),
        _ => None,
    }
}

/// Where a probe goes: `instance:<Name>`, a named internet host, an IPv4 address, or
/// (when `names` is set) a DNS name.
fn target(s: &str, names: bool) -> Result<Target, String> {
    if let Some(n) = s.strip_prefix("instance:") {
        return Ok(Target::Instance(n.to_string()));
    }
    if names && let Some(n) = s.strip_prefix("lb:").filter(|n| !n.is_empty()) {
        return Ok(Target::LoadBalancer(n.to_string()));
    }
    if let Some(a) = internet_host(s) {
        return Ok(Target::Addr(a));
    }
    if let Ok(a) = s.parse() {
        return Ok(Target::Addr(a));
    }
    let dns_name = s.contains('.')
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if names && dns_name {
        return Ok(Target::Name(s.trim_end_matches('.').to_string()));
    }
    Err(format!(
        "expected instance:<Name>, internet:mirror, internet:web, an IPv4 address{}, found {s:?}",
        if names {
            ", lb:<load balancer name> or a DNS name"
        } else {
            ""
        }
    ))
}

/// Whether a check's pattern is a valid regular expression.
fn valid_regex(pattern: Option<&str>) -> Result<(), String> {
    match pattern.map(regex::Regex::new) {
        Some(Err(e)) => Err(format!("expected a regular expression: {e}")),
        _ => Ok(()),
    }
}

fn vantage(s: &str, dns: bool) -> Result<Vantage, String> {
    if s == "learner" {
        return Ok(Vantage::Learner);
    }
    if s == "internet" {
        return Ok(Vantage::Internet);
    }
    if let Some(n) = s.strip_prefix("instance:") {
        return Ok(Vantage::Instance(n.to_string()));
    }
    if dns && let Some(n) = s.strip_prefix("vpc:") {
        return Ok(Vantage::Vpc(n.to_string()));
    }
    Err(format!(
        "expected learner, internet, instance:<Name>{}, found {s:?}",
        if dns { " or vpc:<Name>" } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_dir(toml: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("steps")).expect("mkdir");
        std::fs::create_dir_all(d.path().join("solution")).expect("mkdir");
        std::fs::write(d.path().join("steps/01-a.md"), "Use {{key}}.").expect("write");
        std::fs::write(d.path().join("solution/01-a.sh"), "true\n").expect("write");
        std::fs::write(d.path().join("lab.toml"), toml).expect("write");
        d
    }

    const LAB: &str = r#"
id = "x"
version = 1
title = "X"
summary = "x"

[params.key]
pattern = "key-##"

[[steps]]
id = "a"
title = "A"
body = "steps/01-a.md"
solve = "solution/01-a.sh"

[[steps.checks]]
id = "pem"
kind = "file"
path = "{{key}}.pem"
mode = "0400"

[[steps.hints]]
text = "Look at {{key}}.pem"
for_check = "pem"
"#;

    #[test]
    fn resolves_params_into_pages_and_checks() {
        let d = lab_dir(LAB);
        let lab = load(d.path(), "ann", "").expect("valid");
        let key = &lab.params["key"];
        assert_eq!(lab.steps[0].page, format!("Use {key}."));
        match &lab.steps[0].checks[0].kind {
            CheckKind::File { path, mode, .. } => {
                assert_eq!(path, &format!("{key}.pem"));
                assert_eq!(*mode, Some(0o400));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lint_names_bad_references_and_misplaced_arguments() {
        let bad = LAB
            .replace("for_check = \"pem\"", "for_check = \"pam\"")
            .replace("mode = \"0400\"", "mode = \"0400\"\nport = 22")
            .replace("Look at {{key}}", "Look at {{kee}}");
        let d = lab_dir(&bad);
        let problems = lint(d.path(), &BTreeSet::new());
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text.iter().any(|t| t.contains("steps[0].checks[0].port: not an argument of kind \"file\" (expected path, mode, forbid_bits)")),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|t| t.contains("steps[0].hints[0].for_check: expected the id of a check of step \"a\" (pem), found \"pam\"")),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|t| t.contains("uses parameter {{kee}}")),
            "{text:#?}"
        );
    }

    #[test]
    fn a_dns_value_may_name_an_instance_address_and_nothing_else_after_an_at() {
        let dns = |value: &str| {
            LAB.replace(
                "kind = \"file\"\npath = \"{{key}}.pem\"\nmode = \"0400\"",
                &format!(
                    "kind = \"dns\"\nfrom = \"learner\"\nname = \"www.example.com\"\nvalues = [\"{value}\"]"
                ),
            )
        };
        for ok in ["@public-ip:web", "@private-ip:web", "192.0.2.1"] {
            let d = lab_dir(&dns(ok));
            if let Err(problems) = load(d.path(), "ann", "") {
                panic!("{ok}: {problems:#?}");
            }
        }
        let d = lab_dir(&dns("@instance:web"));
        let text: Vec<String> = load(d.path(), "ann", "")
            .expect_err("an @ form that is not an address")
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert!(
            text.iter().any(|t| t.contains("steps[0].checks[0].values: expected an address, a name, @public-ip:<Name> or @private-ip:<Name>, found \"@instance:web\"")),
            "{text:#?}"
        );
    }

    /// A lab whose one step has `checks` (TOML of `[[steps.checks]]` tables).
    fn with_checks(checks: &str) -> String {
        format!(
            "id = \"x\"\nversion = 1\ntitle = \"X\"\nsummary = \"x\"\n\n[params.key]\npattern = \"key-##\"\n\n[[steps]]\nid = \"a\"\ntitle = \"A\"\nbody = \"steps/01-a.md\"\nsolve = \"solution/01-a.sh\"\n{checks}"
        )
    }

    #[test]
    fn ssh_http_and_exec_resolve_with_their_defaults() {
        let d = lab_dir(&with_checks(
            r#"
[[steps.checks]]
id = "login"
kind = "ssh"
to = "instance:web"
user = "ec2-user"
key = "{{key}}.pem"
command = "hostname"
output = "^ip-"

[[steps.checks]]
id = "page"
kind = "http"
to = "www.example.com"

[[steps.checks]]
id = "httpd"
kind = "exec"
on = "instance:web"
command = "systemctl is-active httpd"
"#,
        ));
        let lab = load(d.path(), "ann", "").expect("valid");
        let key = &lab.params["key"];
        let kinds: Vec<&CheckKind> = lab.steps[0].checks.iter().map(|c| &c.kind).collect();
        match kinds[0] {
            CheckKind::Ssh {
                to,
                user,
                key: k,
                command,
                output,
            } => {
                assert_eq!(to, &Target::Instance("web".into()));
                assert_eq!(user, "ec2-user");
                assert_eq!(k, &format!("{key}.pem"), "params render in the key path");
                assert_eq!(command.as_deref(), Some("hostname"));
                assert_eq!(output.as_deref(), Some("^ip-"));
            }
            other => panic!("unexpected {other:?}"),
        }
        match kinds[1] {
            CheckKind::Http {
                from,
                to,
                port,
                path,
                status,
                body,
            } => {
                assert_eq!(from, &Vantage::Learner);
                assert_eq!(to, &Target::Name("www.example.com".into()));
                assert_eq!((*port, path.as_str(), *status), (80, "/", 200));
                assert!(body.is_none());
            }
            other => panic!("unexpected {other:?}"),
        }
        match kinds[2] {
            CheckKind::Exec { on, exit, .. } => {
                assert_eq!(on, "web");
                assert_eq!(*exit, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn each_new_kind_accepts_only_its_own_keys_and_says_which_it_expected() {
        let d = lab_dir(&with_checks(
            r#"
[[steps.checks]]
id = "login"
kind = "ssh"
to = "instance:web"
user = "ec2-user"
key = "k.pem"
path = "/"

[[steps.checks]]
id = "page"
kind = "http"
to = "instance:web"
command = "ls"

[[steps.checks]]
id = "run"
kind = "exec"
on = "instance:web"
command = "true"
status = 200

[[steps.checks]]
id = "nouser"
kind = "ssh"
to = "instance:web"
key = "k.pem"

[[steps.checks]]
id = "where"
kind = "exec"
on = "web"
command = "true"

[[steps.checks]]
id = "regex"
kind = "http"
to = "instance:web"
body = "(unclosed"

[[steps.checks]]
id = "lonely"
kind = "ssh"
to = "instance:web"
user = "u"
key = "k.pem"
output = "x"

[[steps.checks]]
id = "addr"
kind = "ssh"
to = "10.0.0.5"
user = "u"
key = "k.pem"
"#,
        ));
        let text: Vec<String> = lint(d.path(), &BTreeSet::new())
            .iter()
            .map(|p| p.to_string())
            .collect();
        let has = |needle: &str| {
            assert!(
                text.iter().any(|t| t.contains(needle)),
                "{needle}\n{text:#?}"
            );
        };
        has(
            "steps[0].checks[0].path: not an argument of kind \"ssh\" (expected to, user, key, command, output)",
        );
        has(
            "steps[0].checks[1].command: not an argument of kind \"http\" (expected to, from, port, path, status, body)",
        );
        has(
            "steps[0].checks[2].status: not an argument of kind \"exec\" (expected on, command, exit, output)",
        );
        has("steps[0].checks[3].user: kind \"ssh\" requires user");
        has("steps[0].checks[4].on: expected instance:<Name>, found \"web\"");
        has("steps[0].checks[5].body: expected a regular expression");
        has("steps[0].checks[6].output: expected a command whose output to match");
        has("steps[0].checks[7].to: expected instance:<Name>, found \"10.0.0.5\"");
    }
}
