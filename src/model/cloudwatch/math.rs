//! Metric math for GetMetricData (CloudWatch "Using math expressions"): `+ - * /`
//! between series and numbers, parentheses, unary minus, arrays `[m1, m2]`, `METRICS()`
//! (every metric query of the request, optionally those whose label contains a
//! string), and `SUM`, `AVG`, `MIN`, `MAX`. As AWS defines them, a function of one
//! series answers one number (the statistic over the series), a function of several
//! series answers a series (the statistic across them at each timestamp); arithmetic
//! between two series keeps the timestamps both have.

use std::collections::BTreeMap;

/// Values by timestamp (epoch ms).
pub type Series = BTreeMap<i64, f64>;

#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Scalar(f64),
    Series(Series),
    List(Vec<Series>),
}

/// What an expression may refer to: the other queries' results, by id, with labels.
pub trait Scope {
    fn series(&self, id: &str) -> Option<Series>;
    /// The results of every metric (not expression) query, with their labels.
    fn metrics(&self) -> Vec<(String, Series)>;
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Str(String),
    Op(char),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && cs.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let st = i;
            while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.') {
                i += 1;
            }
            let t: String = cs[st..i].iter().collect();
            out.push(Tok::Num(t.parse().map_err(|_| format!("bad number {t}"))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let st = i;
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(cs[st..i].iter().collect()));
        } else if c == '"' || c == '\'' {
            let st = i + 1;
            i += 1;
            while i < cs.len() && cs[i] != c {
                i += 1;
            }
            if i >= cs.len() {
                return Err("unterminated string".into());
            }
            out.push(Tok::Str(cs[st..i].iter().collect()));
            i += 1;
        } else if "+-*/()[],".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    scope: &'a dyn Scope,
    depth: usize,
}

/// Evaluates `expr` against `scope`; the error is the message of a
/// `ValidationError`-style answer.
pub fn eval(expr: &str, scope: &dyn Scope) -> Result<Val, String> {
    let toks = lex(expr)?;
    if toks.is_empty() {
        return Err("The expression is empty.".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        scope,
        depth: 0,
    };
    let v = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(format!("Unexpected token at position {}.", p.pos + 1));
    }
    Ok(v)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Op(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("Expected '{c}'."))
        }
    }

    fn expr(&mut self) -> Result<Val, String> {
        self.depth += 1;
        if self.depth > 64 {
            return Err("The expression is nested too deeply.".into());
        }
        let mut v = self.term()?;
        loop {
            if self.eat('+') {
                v = arith(v, self.term()?, '+')?;
            } else if self.eat('-') {
                v = arith(v, self.term()?, '-')?;
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(v)
    }

    fn term(&mut self) -> Result<Val, String> {
        let mut v = self.factor()?;
        loop {
            if self.eat('*') {
                v = arith(v, self.factor()?, '*')?;
            } else if self.eat('/') {
                v = arith(v, self.factor()?, '/')?;
            } else {
                break;
            }
        }
        Ok(v)
    }

    fn factor(&mut self) -> Result<Val, String> {
        if self.eat('-') {
            let v = self.factor()?;
            return arith(Val::Scalar(0.0), v, '-');
        }
        if self.eat('(') {
            let v = self.expr()?;
            self.expect(')')?;
            return Ok(v);
        }
        if self.eat('[') {
            let mut items = Vec::new();
            loop {
                match self.expr()? {
                    Val::Series(s) => items.push(s),
                    Val::List(l) => items.extend(l),
                    Val::Scalar(_) => return Err("An array may hold only time series.".into()),
                }
                if !self.eat(',') {
                    break;
                }
            }
            self.expect(']')?;
            return Ok(Val::List(items));
        }
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Val::Scalar(n))
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                if self.eat('(') {
                    self.call(&name)
                } else {
                    self.scope
                        .series(&name)
                        .map(Val::Series)
                        .ok_or_else(|| format!("Unrecognized metric or expression id: {name}."))
                }
            }
            _ => Err("Expected a number, an id, a function or '('.".into()),
        }
    }

    fn call(&mut self, name: &str) -> Result<Val, String> {
        let upper = name.to_ascii_uppercase();
        if upper == "METRICS" {
            let filter = match self.peek().cloned() {
                Some(Tok::Str(s)) => {
                    self.pos += 1;
                    Some(s)
                }
                _ => None,
            };
            self.expect(')')?;
            let list = self
                .scope
                .metrics()
                .into_iter()
                .filter(|(label, _)| filter.as_deref().is_none_or(|f| label.contains(f)))
                .map(|(_, s)| s)
                .collect();
            return Ok(Val::List(list));
        }
        let arg = self.expr()?;
        self.expect(')')?;
        let f: fn(&[f64]) -> f64 = match upper.as_str() {
            "SUM" => |v| v.iter().sum(),
            "AVG" => |v| v.iter().sum::<f64>() / v.len() as f64,
            "MIN" => |v| v.iter().copied().fold(f64::INFINITY, f64::min),
            "MAX" => |v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            _ => {
                return Err(format!(
                    "Unsupported function {name} (vpclab knows SUM, AVG, MIN, MAX, METRICS)."
                ));
            }
        };
        Ok(match arg {
            Val::Scalar(x) => Val::Scalar(x),
            Val::Series(s) => {
                let v: Vec<f64> = s.values().copied().collect();
                if v.is_empty() {
                    Val::Series(Series::new())
                } else {
                    Val::Scalar(f(&v))
                }
            }
            Val::List(list) => {
                let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                for s in &list {
                    for (t, x) in s {
                        at.entry(*t).or_default().push(*x);
                    }
                }
                Val::Series(at.into_iter().map(|(t, v)| (t, f(&v))).collect())
            }
        })
    }
}

fn op(a: f64, b: f64, o: char) -> f64 {
    match o {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        _ => a / b,
    }
}

fn arith(a: Val, b: Val, o: char) -> Result<Val, String> {
    Ok(match (a, b) {
        (Val::Scalar(x), Val::Scalar(y)) => Val::Scalar(op(x, y, o)),
        (Val::Series(s), Val::Scalar(y)) => {
            Val::Series(s.into_iter().map(|(t, x)| (t, op(x, y, o))).collect())
        }
        (Val::Scalar(x), Val::Series(s)) => {
            Val::Series(s.into_iter().map(|(t, y)| (t, op(x, y, o))).collect())
        }
        (Val::Series(a), Val::Series(b)) => Val::Series(
            a.into_iter()
                .filter_map(|(t, x)| Some((t, op(x, *b.get(&t)?, o))))
                .collect(),
        ),
        (Val::List(l), Val::Scalar(y)) => Val::List(
            l.into_iter()
                .map(|s| s.into_iter().map(|(t, x)| (t, op(x, y, o))).collect())
                .collect(),
        ),
        _ => return Err("Arithmetic on arrays of time series needs a number on the right.".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S(BTreeMap<String, Series>);
    impl Scope for S {
        fn series(&self, id: &str) -> Option<Series> {
            self.0.get(id).cloned()
        }
        fn metrics(&self) -> Vec<(String, Series)> {
            self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
    }

    fn scope() -> S {
        let m1: Series = [(0, 1.0), (60, 2.0), (120, 3.0)].into_iter().collect();
        let m2: Series = [(0, 10.0), (60, 20.0)].into_iter().collect();
        S([("m1".to_string(), m1), ("m2".to_string(), m2)]
            .into_iter()
            .collect())
    }

    #[test]
    fn arithmetic_keeps_common_timestamps_and_respects_precedence() {
        let v = eval("m1 + m2 * 2", &scope()).unwrap();
        assert_eq!(
            v,
            Val::Series([(0, 21.0), (60, 42.0)].into_iter().collect())
        );
        let v = eval("(m1 + 1) / 2", &scope()).unwrap();
        assert_eq!(
            v,
            Val::Series([(0, 1.0), (60, 1.5), (120, 2.0)].into_iter().collect())
        );
        assert_eq!(eval("-2 * 3", &scope()).unwrap(), Val::Scalar(-6.0));
    }

    #[test]
    fn functions_of_one_series_are_numbers_of_several_are_series() {
        assert_eq!(eval("SUM(m1)", &scope()).unwrap(), Val::Scalar(6.0));
        assert_eq!(eval("AVG(m1)", &scope()).unwrap(), Val::Scalar(2.0));
        assert_eq!(
            eval("SUM(METRICS())", &scope()).unwrap(),
            Val::Series([(0, 11.0), (60, 22.0), (120, 3.0)].into_iter().collect())
        );
        assert_eq!(
            eval("MAX([m1, m2])", &scope()).unwrap(),
            Val::Series([(0, 10.0), (60, 20.0), (120, 3.0)].into_iter().collect())
        );
        assert_eq!(
            eval("MIN(METRICS('2'))", &scope()).unwrap(),
            Val::Series([(0, 10.0), (60, 20.0)].into_iter().collect())
        );
    }

    #[test]
    fn bad_expressions_are_errors() {
        for e in ["", "m1 +", "m9", "FOO(m1)", "(m1", "m1 $ 2", "[1]"] {
            assert!(eval(e, &scope()).is_err(), "{e}");
        }
    }
}
