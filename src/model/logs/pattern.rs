//! CloudWatch Logs filter patterns ("Filter pattern syntax for metric filters,
//! subscription filters, and filter log events" in the CloudWatch Logs user guide), as
//! FilterLogEvents applies them to each event's message.
//!
//! Three forms, told apart by the first character:
//!
//! - **terms**: `ERROR`, `"quoted phrase"`, `?ERROR ?WARN` (any of the `?` terms),
//!   `ERROR -Exiting` (exclude). Case-sensitive substring matches: every plain term must
//!   occur, at least one `?` term if there are any, and no `-` term.
//! - **JSON** `{ $.a.b = "x" && ($.n > 3 || $.ok IS TRUE) }`: the message must parse as
//!   JSON; selectors walk objects (`.key`) and arrays (`[n]`); `=`/`!=` compare strings
//!   (with `*` wildcards) or numbers, `<`, `>`, `<=`, `>=` numbers; `IS NULL`,
//!   `IS TRUE`, `IS FALSE`, `NOT EXISTS`.
//! - **space-delimited** `[version, account, eni, src, dst, sp, dp="22", proto=6, …,
//!   action="REJECT", status]`: the message is split on spaces (text in `"…"` or `[…]`
//!   is one field); each named column may carry conditions joined with `&&`/`||`; `...`
//!   matches any number of fields; without it the field count must be equal.
//!
//! A pattern is parsed once ([`Pattern::parse`], errors are `InvalidParameterException`
//! as AWS answers an invalid pattern) and then matched against many messages.

use crate::model::{ApiError, ApiResult};

/// A parsed filter pattern.
#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    /// The empty pattern: every event.
    All,
    Terms(Terms),
    Json(JsonExpr),
    Delimited(Vec<Column>),
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Terms {
    required: Vec<String>,
    any: Vec<String>,
    excluded: Vec<String>,
}

/// A literal a field is compared with.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Number(f64),
    /// Text; `*` is a wildcard.
    Text(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
pub enum JsonExpr {
    And(Box<JsonExpr>, Box<JsonExpr>),
    Or(Box<JsonExpr>, Box<JsonExpr>),
    Compare(Vec<Step>, Op, Literal),
    IsNull(Vec<Step>),
    IsBool(Vec<Step>, bool),
    NotExists(Vec<Step>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// One column of a space-delimited pattern.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// `...`: any number of fields.
    Ellipsis,
    /// A named field with its condition (if any).
    Field(Option<Cond>),
}

/// Conditions on one column: comparisons joined by `&&` and `||` (`&&` binds tighter).
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Cmp(Op, Literal),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

fn invalid() -> ApiError {
    ApiError::new("InvalidParameterException", "Invalid filter pattern")
}

impl Pattern {
    /// Parses a filter pattern as AWS accepts it.
    pub fn parse(text: &str) -> ApiResult<Pattern> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(Pattern::All);
        }
        if t.starts_with('{') {
            let inner = t
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or_else(invalid)?;
            let toks = lex(inner)?;
            let mut p = Parser { toks, pos: 0 };
            let e = p.json_or()?;
            if p.pos != p.toks.len() {
                return Err(invalid());
            }
            return Ok(Pattern::Json(e));
        }
        if t.starts_with('[') {
            let inner = t
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .ok_or_else(invalid)?;
            return Ok(Pattern::Delimited(parse_columns(inner)?));
        }
        Ok(Pattern::Terms(parse_terms(t)?))
    }

    /// Whether a log event's message matches.
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Terms(t) => t.matches(message),
            Pattern::Json(e) => match serde_json::from_str::<serde_json::Value>(message) {
                Ok(v) => e.eval(&v),
                Err(_) => false,
            },
            Pattern::Delimited(cols) => {
                let fields = split_fields(message);
                match_columns(cols, &fields)
            }
        }
    }
}

fn parse_terms(t: &str) -> ApiResult<Terms> {
    let mut out = Terms::default();
    let mut chars = t.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let prefix = if c == '?' || c == '-' {
            chars.next();
            Some(c)
        } else {
            None
        };
        let mut term = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => term.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => term.push(c),
                }
            }
            if !closed {
                return Err(invalid());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                term.push(c);
                chars.next();
            }
        }
        if term.is_empty() {
            return Err(invalid());
        }
        match prefix {
            Some('?') => out.any.push(term),
            Some(_) => out.excluded.push(term),
            None => out.required.push(term),
        }
    }
    Ok(out)
}

impl Terms {
    fn matches(&self, m: &str) -> bool {
        self.required.iter().all(|t| m.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| m.contains(t.as_str())))
            && !self.excluded.iter().any(|t| m.contains(t.as_str()))
    }
}

/// Tokens of the JSON and column condition grammars.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(Op),
    AndAnd,
    OrOr,
    LParen,
    RParen,
    Comma,
}

fn lex(s: &str) -> ApiResult<Vec<Tok>> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '&' if next == Some('&') => {
                out.push(Tok::AndAnd);
                i += 2
            }
            '|' if next == Some('|') => {
                out.push(Tok::OrOr);
                i += 2
            }
            '=' => {
                out.push(Tok::Op(Op::Eq));
                i += 1
            }
            '!' if next == Some('=') => {
                out.push(Tok::Op(Op::Ne));
                i += 2
            }
            '<' | '>' => {
                let eq = next == Some('=');
                out.push(Tok::Op(match (c, eq) {
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    (_, true) => Op::Ge,
                    _ => Op::Gt,
                }));
                i += if eq { 2 } else { 1 };
            }
            '"' => {
                let mut t = String::new();
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    match b[i] {
                        '\\' if i + 1 < b.len() => {
                            t.push(b[i + 1]);
                            i += 2;
                        }
                        '"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        c => {
                            t.push(c);
                            i += 1;
                        }
                    }
                }
                if !closed {
                    return Err(invalid());
                }
                out.push(Tok::Quoted(t));
            }
            _ => {
                let mut t = String::new();
                while i < b.len() {
                    let c = b[i];
                    if c.is_whitespace() || "()=!<>,&|\"".contains(c) {
                        break;
                    }
                    t.push(c);
                    i += 1;
                }
                if t.is_empty() {
                    return Err(invalid());
                }
                out.push(Tok::Word(t));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn json_or(&mut self) -> ApiResult<JsonExpr> {
        let mut e = self.json_and()?;
        while self.peek() == Some(&Tok::OrOr) {
            self.pos += 1;
            e = JsonExpr::Or(Box::new(e), Box::new(self.json_and()?));
        }
        Ok(e)
    }

    fn json_and(&mut self) -> ApiResult<JsonExpr> {
        let mut e = self.json_atom()?;
        while self.peek() == Some(&Tok::AndAnd) {
            self.pos += 1;
            e = JsonExpr::And(Box::new(e), Box::new(self.json_atom()?));
        }
        Ok(e)
    }

    fn json_atom(&mut self) -> ApiResult<JsonExpr> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.json_or()?;
                if self.next() != Some(Tok::RParen) {
                    return Err(invalid());
                }
                Ok(e)
            }
            Some(Tok::Word(sel)) => {
                let path = parse_selector(&sel)?;
                match self.next() {
                    Some(Tok::Op(op)) => {
                        let lit = self.literal()?;
                        if matches!(op, Op::Lt | Op::Gt | Op::Le | Op::Ge)
                            && !matches!(lit, Literal::Number(_))
                        {
                            return Err(invalid());
                        }
                        Ok(JsonExpr::Compare(path, op, lit))
                    }
                    Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IS") => match self.next() {
                        Some(Tok::Word(v)) if v.eq_ignore_ascii_case("NULL") => {
                            Ok(JsonExpr::IsNull(path))
                        }
                        Some(Tok::Word(v)) if v.eq_ignore_ascii_case("TRUE") => {
                            Ok(JsonExpr::IsBool(path, true))
                        }
                        Some(Tok::Word(v)) if v.eq_ignore_ascii_case("FALSE") => {
                            Ok(JsonExpr::IsBool(path, false))
                        }
                        _ => Err(invalid()),
                    },
                    Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NOT") => match self.next() {
                        Some(Tok::Word(v)) if v.eq_ignore_ascii_case("EXISTS") => {
                            Ok(JsonExpr::NotExists(path))
                        }
                        _ => Err(invalid()),
                    },
                    _ => Err(invalid()),
                }
            }
            _ => Err(invalid()),
        }
    }

    fn literal(&mut self) -> ApiResult<Literal> {
        match self.next() {
            Some(Tok::Quoted(s)) => Ok(Literal::Text(s)),
            Some(Tok::Word(w)) => Ok(match w.parse::<f64>() {
                Ok(n) if n.is_finite() => Literal::Number(n),
                _ => Literal::Text(w),
            }),
            _ => Err(invalid()),
        }
    }

    /// Conditions of one column, after its name: `= v`, `!= v && … || …`. A condition
    /// after `&&`/`||` repeats the column name (`code=404 || code=410`).
    fn column_cond(&mut self, name: &str) -> ApiResult<Cond> {
        let mut e = self.column_and(name)?;
        while self.peek() == Some(&Tok::OrOr) {
            self.pos += 1;
            self.skip_name(name)?;
            e = Cond::Or(Box::new(e), Box::new(self.column_and(name)?));
        }
        Ok(e)
    }

    fn column_and(&mut self, name: &str) -> ApiResult<Cond> {
        let mut e = self.column_cmp()?;
        while self.peek() == Some(&Tok::AndAnd) {
            self.pos += 1;
            self.skip_name(name)?;
            e = Cond::And(Box::new(e), Box::new(self.column_cmp()?));
        }
        Ok(e)
    }

    fn skip_name(&mut self, name: &str) -> ApiResult<()> {
        match self.next() {
            Some(Tok::Word(w)) if w == name => Ok(()),
            _ => Err(invalid()),
        }
    }

    fn column_cmp(&mut self) -> ApiResult<Cond> {
        let Some(Tok::Op(op)) = self.next() else {
            return Err(invalid());
        };
        let lit = self.literal()?;
        if matches!(op, Op::Lt | Op::Gt | Op::Le | Op::Ge) && !matches!(lit, Literal::Number(_)) {
            return Err(invalid());
        }
        Ok(Cond::Cmp(op, lit))
    }
}

/// `$.a.b[0].c` → steps.
fn parse_selector(s: &str) -> ApiResult<Vec<Step>> {
    let rest = s.strip_prefix('$').ok_or_else(invalid)?;
    let mut steps = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                if j == start {
                    return Err(invalid());
                }
                steps.push(Step::Key(rest[start..j].to_string()));
                i = j;
            }
            b'[' => {
                let close = rest[i..].find(']').ok_or_else(invalid)? + i;
                let n = rest[i + 1..close].parse().map_err(|_| invalid())?;
                steps.push(Step::Index(n));
                i = close + 1;
            }
            _ => return Err(invalid()),
        }
    }
    if steps.is_empty() {
        return Err(invalid());
    }
    Ok(steps)
}

fn parse_columns(inner: &str) -> ApiResult<Vec<Column>> {
    let toks = lex(inner)?;
    let mut p = Parser { toks, pos: 0 };
    let mut cols = Vec::new();
    loop {
        let Some(Tok::Word(name)) = p.next() else {
            return Err(invalid());
        };
        if name == "..." {
            cols.push(Column::Ellipsis);
        } else if matches!(p.peek(), Some(Tok::Op(_))) {
            cols.push(Column::Field(Some(p.column_cond(&name)?)));
        } else {
            cols.push(Column::Field(None));
        }
        match p.next() {
            None => break,
            Some(Tok::Comma) => {}
            Some(_) => return Err(invalid()),
        }
    }
    Ok(cols)
}

/// Splits a message into space-delimited fields; text in double quotes or square
/// brackets is one field (without its quotes or brackets).
pub fn split_fields(m: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = m.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' {
            i += 1;
            continue;
        }
        let close = match b[i] {
            b'"' => Some(b'"'),
            b'[' => Some(b']'),
            _ => None,
        };
        if let Some(close) = close
            && let Some(end) = m[i + 1..].find(close as char)
        {
            out.push(&m[i + 1..i + 1 + end]);
            i = i + 2 + end;
            continue;
        }
        let start = i;
        while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
            i += 1;
        }
        out.push(&m[start..i]);
    }
    out
}

fn match_columns(cols: &[Column], fields: &[&str]) -> bool {
    match cols.split_first() {
        None => fields.is_empty(),
        Some((Column::Ellipsis, rest)) => {
            (0..=fields.len()).any(|skip| match_columns(rest, &fields[skip..]))
        }
        Some((Column::Field(cond), rest)) => match fields.split_first() {
            None => false,
            Some((f, more)) => cond.as_ref().is_none_or(|c| c.eval(f)) && match_columns(rest, more),
        },
    }
}

impl Cond {
    fn eval(&self, field: &str) -> bool {
        match self {
            Cond::Cmp(op, lit) => compare_text(field, *op, lit),
            Cond::And(a, b) => a.eval(field) && b.eval(field),
            Cond::Or(a, b) => a.eval(field) || b.eval(field),
        }
    }
}

/// Compares a field's text with a literal: numbers numerically (when the field is a
/// number), text by equality with `*` wildcards.
fn compare_text(field: &str, op: Op, lit: &Literal) -> bool {
    match lit {
        Literal::Number(n) => match field.parse::<f64>() {
            Ok(v) => num_cmp(v, op, *n),
            Err(_) => false,
        },
        Literal::Text(t) => match op {
            Op::Eq => glob(t, field),
            Op::Ne => !glob(t, field),
            _ => false,
        },
    }
}

fn num_cmp(v: f64, op: Op, n: f64) -> bool {
    match op {
        Op::Eq => v == n,
        Op::Ne => v != n,
        Op::Lt => v < n,
        Op::Gt => v > n,
        Op::Le => v <= n,
        Op::Ge => v >= n,
    }
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(p) => rest = &rest[p + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

impl JsonExpr {
    fn eval(&self, v: &serde_json::Value) -> bool {
        use serde_json::Value;
        match self {
            JsonExpr::And(a, b) => a.eval(v) && b.eval(v),
            JsonExpr::Or(a, b) => a.eval(v) || b.eval(v),
            JsonExpr::IsNull(p) => matches!(walk(v, p), Some(Value::Null)),
            JsonExpr::IsBool(p, b) => walk(v, p) == Some(&Value::Bool(*b)),
            JsonExpr::NotExists(p) => walk(v, p).is_none(),
            JsonExpr::Compare(p, op, lit) => match (walk(v, p), lit) {
                (Some(Value::Number(x)), Literal::Number(n)) => {
                    x.as_f64().is_some_and(|x| num_cmp(x, *op, *n))
                }
                (Some(Value::String(s)), lit) => compare_text(s, *op, lit),
                (Some(Value::Bool(b)), Literal::Text(t)) => compare_text(
                    if *b { "true" } else { "false" },
                    *op,
                    &Literal::Text(t.clone()),
                ),
                (Some(Value::Null), Literal::Text(t)) if t == "null" => *op == Op::Eq,
                _ => false,
            },
        }
    }
}

fn walk<'v>(mut v: &'v serde_json::Value, path: &[Step]) -> Option<&'v serde_json::Value> {
    for s in path {
        v = match s {
            Step::Key(k) => v.get(k.as_str())?,
            Step::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, msg: &str) -> bool {
        Pattern::parse(p).unwrap().matches(msg)
    }

    const REJECT: &str = "2 000000000000 eni-0a1b 198.51.100.7 10.0.1.5 49152 22 6 3 180 1700000000 1700000060 REJECT OK";
    const ACCEPT: &str = "2 000000000000 eni-0a1b 198.51.100.7 10.0.1.5 49152 22 6 3 180 1700000000 1700000060 ACCEPT OK";

    #[test]
    fn terms_phrases_or_and_exclusion() {
        assert!(m("", "anything"));
        assert!(m("ERROR", "[ERROR] disk full"));
        assert!(!m("ERROR", "error: lower case does not match"));
        assert!(m("ERROR disk", "[ERROR] disk full"));
        assert!(!m("ERROR net", "[ERROR] disk full"));
        assert!(m("\"disk full\"", "[ERROR] disk full"));
        assert!(!m("\"full disk\"", "[ERROR] disk full"));
        assert!(m("?ERROR ?WARN", "WARN low memory"));
        assert!(!m("?ERROR ?WARN", "INFO ok"));
        assert!(m("ERROR -Exiting", "ERROR retrying"));
        assert!(!m("ERROR -Exiting", "ERROR Exiting now"));
    }

    #[test]
    fn json_selectors_and_operators() {
        let ev = r#"{"user":{"id":7,"name":"ann"},"tags":["a","b"],"ok":true,"gone":null}"#;
        assert!(m("{ $.user.id = 7 }", ev));
        assert!(m("{ $.user.id >= 7 && $.user.name = \"a*\" }", ev));
        assert!(!m("{ $.user.id > 7 }", ev));
        assert!(m("{ ($.user.id > 7) || $.tags[1] = b }", ev));
        assert!(m("{ $.ok IS TRUE }", ev));
        assert!(m("{ $.gone IS NULL }", ev));
        assert!(m("{ $.missing NOT EXISTS }", ev));
        assert!(!m("{ $.user.name != ann }", ev));
        assert!(!m("{ $.user.id = 7 }", "not json"));
        assert!(Pattern::parse("{ $.a > \"x\" }").is_err());
        assert!(Pattern::parse("{ $.a = }").is_err());
    }

    #[test]
    fn space_delimited_as_used_on_flow_logs() {
        let p = "[version, account, eni, source, destination, srcport, destport=\"22\", protocol=\"6\", packets, bytes, windowstart, windowend, action=\"REJECT\", flowlogstatus]";
        assert!(m(p, REJECT));
        assert!(!m(p, ACCEPT));
        assert!(m("[..., action=REJECT, status]", REJECT));
        assert!(m("[v, a, e, s, d, sp, dp>=20 && dp<=25, ...]", REJECT));
        assert!(!m("[v, a, e, s, d, sp, dp=80 || dp=443, ...]", REJECT));
        assert!(m("[v, a, e, s=198.51.*, ...]", REJECT));
        assert!(m("[v, a, e, s, d, sp, dp, pr, pk, by!=0, ...]", REJECT));
        // Without `...` the field count must match.
        assert!(!m("[a, b, c]", REJECT));
        assert!(m(
            "[ip, user, ts, req, status=404, size]",
            "127.0.0.1 frank [10/Oct/2000:13:25:15 -0700] \"GET /a HTTP/1.0\" 404 2326"
        ));
        assert!(Pattern::parse("[a, b=]").is_err());
        assert!(Pattern::parse("[a, b=1").is_err());
    }
}
