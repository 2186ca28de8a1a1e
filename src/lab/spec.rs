//! Stage one: a lab as written. Every struct rejects unknown keys, and a parse error names
//! the file, the line and the key path (`steps[1].checks[0].prot`), so an author finds a
//! typo at once instead of a check that silently never runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A lab file that could not be read or is not a valid lab.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}", file = file.display())]
pub struct LabFileError {
    pub file: PathBuf,
    /// 1-based; 0 when the error concerns the whole file.
    pub line: usize,
    /// The key path (`steps[0].checks[2].port`), or `-` for the whole file.
    pub key: String,
    pub message: String,
}

/// `lab.toml` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    pub id: String,
    pub version: u32,
    pub title: String,
    pub summary: String,
    #[serde(default)]
    pub objectives: Vec<String>,
    #[serde(default)]
    pub difficulty: Option<String>,
    #[serde(default)]
    pub estimated_minutes: Option<u32>,
    #[serde(default)]
    pub prerequisites: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    #[serde(default)]
    pub scoring: ScoringSpec,
    /// What builds the starting world (a troubleshooting lab starts broken), run in order
    /// when the lab starts.
    #[serde(default)]
    pub setup: Vec<SetupSpec>,
    #[serde(default)]
    pub steps: Vec<StepSpec>,
}

/// One setup action: a bash script using the real aws CLI, like the solutions.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SetupSpec {
    /// What it builds, for the learner and the instructor.
    pub description: String,
    /// The script, relative to the lab folder (`setup/01-broken-world.sh`).
    pub run: String,
}

/// How one parameter is drawn. Exactly one of the fields is set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// A block of `prefix` bits inside `within` (a CIDR or `{{another param}}`); blocks
    /// drawn inside the same parent never overlap.
    pub cidr: Option<CidrSpec>,
    /// An integer in `[low, high]`.
    pub range: Option<[i64; 2]>,
    /// One of these values.
    pub pick: Option<Vec<String>>,
    /// A name: each `#` becomes a digit.
    pub pattern: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CidrSpec {
    pub within: String,
    pub prefix: u8,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Practice,
    Assessed,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringSpec {
    #[serde(default = "hundred")]
    pub pass_percent: u32,
    #[serde(default)]
    pub mode: Mode,
}

fn hundred() -> u32 {
    100
}

impl Default for ScoringSpec {
    fn default() -> Self {
        ScoringSpec {
            pass_percent: 100,
            mode: Mode::Practice,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Initial {
    #[default]
    Fail,
    Pass,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub id: String,
    pub title: String,
    /// The step page, relative to the lab folder (`steps/01-key-pair.md`).
    pub body: String,
    /// The reference solution, relative to the lab folder (`solution/01-key-pair.sh`).
    pub solve: String,
    #[serde(default)]
    pub expect_initial: Initial,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    #[serde(default)]
    pub hints: Vec<HintSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HintSpec {
    pub text: String,
    /// Shown only while this check fails.
    pub for_check: Option<String>,
    /// Shown only after this many check runs of the step.
    #[serde(default)]
    pub after_attempts: u32,
}

/// One check as written: the common keys, then the arguments of every kind (the
/// resolver accepts only those of the check's own kind, and says which it expected).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Required at step level; optional inside a combinator.
    pub id: Option<String>,
    pub kind: String,
    pub points: Option<u32>,
    /// The learner-facing message on failure (may use `{{params}}`).
    pub fail: Option<String>,
    /// Re-run a failing check for this long before reporting it (things that settle).
    pub retry_seconds: Option<u64>,

    // resource
    #[serde(rename = "type")]
    pub resource_type: Option<String>,
    pub filters: Option<BTreeMap<String, StringOrList>>,
    pub count: Option<u32>,

    // route
    pub subnet: Option<String>,
    pub destination: Option<String>,
    pub target: Option<String>,

    // reach, dns
    pub from: Option<String>,
    pub to: Option<String>,
    pub port: Option<u16>,
    pub protocol: Option<String>,
    pub expect: Option<String>,
    pub name: Option<String>,
    pub record_type: Option<String>,
    pub values: Option<Vec<String>>,

    // file (the learner's file), http (the URL path)
    pub path: Option<String>,
    pub mode: Option<String>,
    pub forbid_bits: Option<String>,

    // ssh
    pub user: Option<String>,
    /// The learner's private key file (resolved like `file`'s `path`).
    pub key: Option<String>,

    // ssh, exec
    pub command: Option<String>,
    /// A regular expression the command's output (or the HTTP body: `body`) must match.
    pub output: Option<String>,

    // http
    pub status: Option<u16>,
    pub body: Option<String>,

    // exec
    pub on: Option<String>,
    pub exit: Option<i32>,

    // quiz
    pub question: Option<String>,
    pub answers: Option<Vec<String>>,

    // access
    /// `user:NAME` or `role:NAME`.
    pub principal: Option<String>,
    /// `s3:GetObject` …
    pub action: Option<String>,
    /// The ARN the action is on.
    pub resource: Option<String>,

    // all / any / not
    pub checks: Option<Vec<CheckSpec>>,
}

/// A filter value: one string or a list (any of them matches, as in EC2 filters).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s.clone()],
            StringOrList::Many(v) => v.clone(),
        }
    }
}

/// Parses `text` (the contents of `file`) as a lab.
pub fn parse(file: &Path, text: &str) -> Result<LabSpec, LabFileError> {
    toml::from_str::<LabSpec>(text).map_err(|e| {
        let (line, key) = match e.span() {
            Some(span) => locate(text, unknown_key_offset(text, span.start, e.message())),
            None => (0, "-".to_string()),
        };
        LabFileError {
            file: file.to_path_buf(),
            line,
            key,
            message: e.message().trim().to_string(),
        }
    })
}

/// Reads and parses `<dir>/lab.toml`.
pub fn load(dir: &Path) -> Result<LabSpec, LabFileError> {
    let file = dir.join("lab.toml");
    let text = std::fs::read_to_string(&file).map_err(|e| LabFileError {
        file: file.clone(),
        line: 0,
        key: "-".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&file, &text)
}

/// For an unknown field, toml's span covers the whole table: the offset of the field's
/// own line inside it (the first line after `start` that assigns it), else `start`.
fn unknown_key_offset(text: &str, start: usize, message: &str) -> usize {
    let Some(field) = message
        .split("unknown field `")
        .nth(1)
        .and_then(|r| r.split('`').next())
    else {
        return start;
    };
    let mut offset = start;
    for (i, line) in text[start..].split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if i > 0 && t.starts_with('[') {
            break;
        }
        if t.strip_prefix(field)
            .is_some_and(|r| r.trim_start().starts_with('=') || r.starts_with('.'))
        {
            return offset + (line.len() - t.len());
        }
        offset += line.len();
    }
    start
}

/// The line (1-based) of byte `offset`, and the key path there: the last table header
/// before it (arrays of tables counted, `[[steps.checks]]` counted within its step)
/// followed by the key the offset points at.
pub(crate) fn locate(text: &str, offset: usize) -> (usize, String) {
    let offset = offset.min(text.len());
    let line = text[..offset].matches('\n').count() + 1;
    // Index of each array-of-tables header, reset when its parent advances.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut header: Vec<(String, Option<usize>)> = Vec::new();
    for l in text[..offset].lines() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            let index = *n;
            *n += 1;
            let prefix = format!("{name}.");
            counts.retain(|k, _| !k.starts_with(&prefix));
            header = path_of(&name, &counts, Some(index));
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            header = path_of(name.trim(), &counts, None);
        }
    }
    // The key at the offset: the bare key that starts there (an unknown field's span
    // covers its key), or the key of the line.
    let rest = &text[offset..];
    let at: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_text = &text[line_start..];
    let line_key: String = line_text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
        .collect();
    let key = if !at.is_empty() && !line_text.trim_start().starts_with('[') {
        if line_key.is_empty() || line_key == at {
            at
        } else {
            format!("{line_key}.{at}")
        }
    } else {
        line_key
    };
    let mut parts: Vec<String> = header
        .into_iter()
        .map(|(n, i)| match i {
            Some(i) => format!("{n}[{i}]"),
            None => n,
        })
        .collect();
    if !key.is_empty() {
        parts.push(key);
    }
    let path = if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(".")
    };
    (line, path)
}

/// The segments of a header `a.b.c`, each array segment with its current index.
fn path_of(
    name: &str,
    counts: &BTreeMap<String, usize>,
    last: Option<usize>,
) -> Vec<(String, Option<usize>)> {
    let segs: Vec<&str> = name.split('.').map(str::trim).collect();
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let full = segs[..=i].join(".");
        let index = if i + 1 == segs.len() {
            last
        } else {
            counts.get(&full).map(|n| n.saturating_sub(1))
        };
        out.push((s.to_string(), index));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
id = "x"
version = 1
title = "X"
summary = "x"

[[steps]]
id = "a"
title = "A"
body = "steps/01-a.md"
solve = "solution/01-a.sh"

[[steps.checks]]
id = "c1"
kind = "quiz"
answers = ["y"]

[[steps]]
id = "b"
title = "B"
body = "steps/02-b.md"
solve = "solution/02-b.sh"

[[steps.checks]]
id = "c2"
kind = "quiz"
answers = ["y"]

[[steps.checks]]
id = "c3"
kind = "quiz"
anwsers = ["y"]
"#;

    #[test]
    fn an_unknown_key_names_the_file_line_and_key_path() {
        let e = parse(Path::new("labs/x/lab.toml"), SMALL).expect_err("a typo");
        assert_eq!(e.file, Path::new("labs/x/lab.toml"));
        assert_eq!(e.line, 32);
        assert_eq!(e.key, "steps[1].checks[1].anwsers");
        assert!(e.message.contains("unknown field `anwsers`"), "{e}");
        assert!(
            e.to_string()
                .starts_with("labs/x/lab.toml:32: steps[1].checks[1].anwsers: unknown field")
        );
    }

    #[test]
    fn a_wrong_type_names_its_key() {
        let text = SMALL
            .replace("anwsers", "answers")
            .replace("version = 1", "version = \"one\"");
        let e = parse(Path::new("lab.toml"), &text).expect_err("a string version");
        assert_eq!(e.line, 3);
        assert_eq!(e.key, "version");
    }
}
