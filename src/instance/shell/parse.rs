//! The shell grammar: a subset of bash big enough for what learners type and what user
//! data scripts contain.
//!
//! Supported: words with `'…'`, `"…"` and `\` quoting; `$VAR`, `${VAR}`, `$?`, `$$`,
//! `$#`, `$1`…; command substitution `$(…)` and `` `…` ``; `~`; assignments
//! (`A=b`, `A=b cmd`); pipes; `;`, `&` (run in the foreground), newlines, `&&`, `||`,
//! `!`; redirections `<`, `>`, `>>`, `2>`, `2>>`, `2>&1`, `>&2`, `&>`, and here-documents
//! (`<<EOF`, `<<'EOF'`, `<<-EOF`); `#` comments. Not supported: `if`/`for`/`while`/`case`,
//! functions, subshells `( … )`, brace groups, arithmetic — they parse as plain words
//! and fail as unknown commands, which is documented in `docs/instances.md`.

/// A piece of a word, before expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// Literal text; `quoted` text is never glob-expanded or split.
    Lit { text: String, quoted: bool },
    /// `$NAME` / `${NAME}` / `$?`.
    Var { name: String, quoted: bool },
    /// `$(script)` or `` `script` ``.
    Subst { script: String, quoted: bool },
    /// A leading `~` (the home directory).
    Tilde,
}

/// One word of a command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Word(pub Vec<Seg>);

impl Word {
    fn lit(text: &str) -> Word {
        Word(vec![Seg::Lit {
            text: text.to_string(),
            quoted: false,
        }])
    }

    /// The word's text when it is a plain unquoted literal (operators, names).
    pub fn as_plain(&self) -> Option<String> {
        let mut s = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Lit {
                    text,
                    quoted: false,
                } => s.push_str(text),
                _ => return None,
            }
        }
        Some(s)
    }
}

/// What a redirection does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirOp {
    /// `< file`
    In,
    /// `> file`
    Out,
    /// `>> file`
    Append,
    /// `2>&1`: make `fd` a copy of the target descriptor.
    Dup(u32),
    /// A here-document; `expand` is false when the delimiter was quoted.
    HereDoc { body: String, expand: bool },
}

/// One redirection of a simple command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redir {
    pub fd: u32,
    pub op: RedirOp,
    pub target: Word,
}

/// `A=1 cmd arg > file`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimpleCmd {
    pub assigns: Vec<(String, Word)>,
    pub words: Vec<Word>,
    pub redirs: Vec<Redir>,
}

/// `a | b | c`, optionally negated with `!`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipeline {
    pub negate: bool,
    pub cmds: Vec<SimpleCmd>,
}

/// How a pipeline joins the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    And,
    Or,
}

/// `a && b || c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndOr {
    pub first: Pipeline,
    pub rest: Vec<(Conn, Pipeline)>,
}

/// A whole script: and-or lists run one after the other.
pub type Script = Vec<AndOr>;

/// A syntax error, worded as bash words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("syntax error near unexpected token `{0}'")]
    Unexpected(String),
    #[error("unexpected EOF while looking for matching `{0}'")]
    Unterminated(char),
    #[error("syntax error: unexpected end of file")]
    UnexpectedEof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(Word),
    /// `;` `&` `&&` `||` `|` `!` and redirection operators, with an optional fd.
    Op(String, Option<u32>),
    HereDoc {
        fd: u32,
        body: String,
        expand: bool,
    },
    Newline,
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    /// Here-documents whose bodies start after the next newline.
    pending: Vec<(usize, String, bool, bool)>,
    toks: Vec<Tok>,
    _src: &'a str,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits a script into tokens.
fn lex(src: &str) -> Result<Vec<Tok>, ParseError> {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        pos: 0,
        pending: Vec::new(),
        toks: Vec::new(),
        _src: src,
    };
    lx.run()?;
    Ok(lx.toks)
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn run(&mut self) -> Result<(), ParseError> {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' => self.pos += 1,
                '\n' => {
                    self.pos += 1;
                    self.toks.push(Tok::Newline);
                    self.read_heredocs()?;
                }
                '#' => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                '\\' if self.peek_at(1) == Some('\n') => self.pos += 2,
                ';' | '|' | '&' | '<' | '>' | '!' => self.op(None)?,
                _ => self.word()?,
            }
        }
        if !self.pending.is_empty() {
            self.read_heredocs()?;
        }
        Ok(())
    }

    fn op(&mut self, fd: Option<u32>) -> Result<(), ParseError> {
        let c = self.peek().unwrap_or(' ');
        let next = self.peek_at(1);
        let (op, len) = match (c, next) {
            ('&', Some('&')) => ("&&", 2),
            ('|', Some('|')) => ("||", 2),
            ('&', Some('>')) => ("&>", 2),
            ('>', Some('>')) => (">>", 2),
            ('>', Some('&')) => (">&", 2),
            ('<', Some('<')) => ("<<", 2),
            ('!', _) => {
                // `!` is an operator only as a word of its own.
                if next.is_some_and(|n| !n.is_whitespace()) {
                    return self.word();
                }
                ("!", 1)
            }
            _ => (
                match c {
                    ';' => ";",
                    '|' => "|",
                    '&' => "&",
                    '<' => "<",
                    _ => ">",
                },
                1,
            ),
        };
        self.pos += len;
        if op == "<<" {
            return self.heredoc_start(fd.unwrap_or(0));
        }
        self.toks.push(Tok::Op(op.to_string(), fd));
        Ok(())
    }

    fn heredoc_start(&mut self, fd: u32) -> Result<(), ParseError> {
        let strip = if self.peek() == Some('-') {
            self.pos += 1;
            true
        } else {
            false
        };
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        let mut delim = String::new();
        let mut quoted = false;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ';' | '|' | '&' | '<' | '>') {
                break;
            }
            if c == '\'' || c == '"' {
                quoted = true;
            } else if c != '\\' {
                delim.push(c);
            } else {
                quoted = true;
            }
            self.pos += 1;
        }
        if delim.is_empty() {
            return Err(ParseError::Unexpected("newline".to_string()));
        }
        let idx = self.toks.len();
        self.toks.push(Tok::HereDoc {
            fd,
            body: String::new(),
            expand: !quoted,
        });
        self.pending.push((idx, delim, strip, !quoted));
        Ok(())
    }

    fn read_heredocs(&mut self) -> Result<(), ParseError> {
        for (idx, delim, strip, _) in std::mem::take(&mut self.pending) {
            let mut body = String::new();
            loop {
                if self.pos >= self.chars.len() {
                    // bash warns and uses what it read; so do we.
                    break;
                }
                let start = self.pos;
                while self.pos < self.chars.len() && self.chars[self.pos] != '\n' {
                    self.pos += 1;
                }
                let line: String = self.chars[start..self.pos].iter().collect();
                if self.pos < self.chars.len() {
                    self.pos += 1;
                }
                let line = line.trim_end_matches('\r');
                let check = if strip {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if check == delim {
                    break;
                }
                body.push_str(check);
                body.push('\n');
            }
            if let Some(Tok::HereDoc { body: b, .. }) = self.toks.get_mut(idx) {
                *b = body;
            }
        }
        Ok(())
    }

    fn word(&mut self) -> Result<(), ParseError> {
        let mut segs: Vec<Seg> = Vec::new();
        let mut lit = String::new();
        let start = self.pos;
        // A word made only of digits right before `>`/`<` is a file descriptor.
        if let Some(c) = self.peek()
            && c.is_ascii_digit()
        {
            let mut i = self.pos;
            while self.chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            if matches!(self.chars.get(i), Some('>' | '<')) {
                let fd: String = self.chars[self.pos..i].iter().collect();
                self.pos = i;
                return self.op(fd.parse().ok());
            }
        }
        if self.peek() == Some('~')
            && self
                .peek_at(1)
                .is_none_or(|c| c == '/' || c.is_whitespace() || matches!(c, ';' | '|' | '&'))
        {
            segs.push(Seg::Tilde);
            self.pos += 1;
        }
        let flush = |lit: &mut String, segs: &mut Vec<Seg>, quoted: bool| {
            if !lit.is_empty() {
                segs.push(Seg::Lit {
                    text: std::mem::take(lit),
                    quoted,
                });
            }
        };
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | '\r' | ';' | '|' | '&' | '<' | '>' => break,
                '\\' => {
                    self.pos += 1;
                    match self.peek() {
                        Some('\n') => self.pos += 1,
                        Some(e) => {
                            flush(&mut lit, &mut segs, false);
                            segs.push(Seg::Lit {
                                text: e.to_string(),
                                quoted: true,
                            });
                            self.pos += 1;
                        }
                        None => {}
                    }
                }
                '\'' => {
                    flush(&mut lit, &mut segs, false);
                    self.pos += 1;
                    let mut q = String::new();
                    loop {
                        match self.peek() {
                            None => return Err(ParseError::Unterminated('\'')),
                            Some('\'') => {
                                self.pos += 1;
                                break;
                            }
                            Some(ch) => {
                                q.push(ch);
                                self.pos += 1;
                            }
                        }
                    }
                    segs.push(Seg::Lit {
                        text: q,
                        quoted: true,
                    });
                }
                '"' => {
                    flush(&mut lit, &mut segs, false);
                    self.pos += 1;
                    self.double_quoted(&mut segs)?;
                }
                '$' => {
                    flush(&mut lit, &mut segs, false);
                    self.dollar(&mut segs, false)?;
                }
                '`' => {
                    flush(&mut lit, &mut segs, false);
                    let script = self.backtick()?;
                    segs.push(Seg::Subst {
                        script,
                        quoted: false,
                    });
                }
                _ => {
                    lit.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut lit, &mut segs, false);
        if self.pos == start {
            // Nothing consumed: an unexpected character; skip it to make progress.
            self.pos += 1;
        }
        self.toks.push(Tok::Word(Word(segs)));
        Ok(())
    }

    fn double_quoted(&mut self, segs: &mut Vec<Seg>) -> Result<(), ParseError> {
        let mut lit = String::new();
        let mut any = false;
        loop {
            match self.peek() {
                None => return Err(ParseError::Unterminated('"')),
                Some('"') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(e @ ('"' | '\\' | '$' | '`')) => {
                            lit.push(e);
                            self.pos += 1;
                        }
                        Some('\n') => self.pos += 1,
                        _ => lit.push('\\'),
                    }
                }
                Some('$') => {
                    if !lit.is_empty() {
                        segs.push(Seg::Lit {
                            text: std::mem::take(&mut lit),
                            quoted: true,
                        });
                    }
                    any = true;
                    self.dollar(segs, true)?;
                }
                Some('`') => {
                    if !lit.is_empty() {
                        segs.push(Seg::Lit {
                            text: std::mem::take(&mut lit),
                            quoted: true,
                        });
                    }
                    any = true;
                    let script = self.backtick()?;
                    segs.push(Seg::Subst {
                        script,
                        quoted: true,
                    });
                }
                Some(c) => {
                    lit.push(c);
                    self.pos += 1;
                }
            }
        }
        if !lit.is_empty() || !any {
            segs.push(Seg::Lit {
                text: lit,
                quoted: true,
            });
        }
        Ok(())
    }

    fn backtick(&mut self) -> Result<String, ParseError> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(ParseError::Unterminated('`')),
                Some('`') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn dollar(&mut self, segs: &mut Vec<Seg>, quoted: bool) -> Result<(), ParseError> {
        self.pos += 1;
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let mut depth = 1;
                let mut s = String::new();
                let mut in_single = false;
                let mut in_double = false;
                loop {
                    let Some(c) = self.peek() else {
                        return Err(ParseError::Unterminated(')'));
                    };
                    self.pos += 1;
                    match c {
                        '\'' if !in_double => in_single = !in_single,
                        '"' if !in_single => in_double = !in_double,
                        '(' if !in_single && !in_double => depth += 1,
                        ')' if !in_single && !in_double => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    s.push(c);
                }
                segs.push(Seg::Subst { script: s, quoted });
            }
            Some('{') => {
                self.pos += 1;
                let mut name = String::new();
                loop {
                    match self.peek() {
                        None => return Err(ParseError::Unterminated('}')),
                        Some('}') => {
                            self.pos += 1;
                            break;
                        }
                        Some(c) => {
                            name.push(c);
                            self.pos += 1;
                        }
                    }
                }
                segs.push(Seg::Var { name, quoted });
            }
            Some(c @ ('?' | '$' | '#' | '0'..='9' | '@' | '*')) => {
                self.pos += 1;
                segs.push(Seg::Var {
                    name: c.to_string(),
                    quoted,
                });
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(c) = self.peek() {
                    if !is_name_char(c) {
                        break;
                    }
                    name.push(c);
                    self.pos += 1;
                }
                segs.push(Seg::Var { name, quoted });
            }
            _ => segs.push(Seg::Lit {
                text: "$".to_string(),
                quoted,
            }),
        }
        Ok(())
    }
}

/// Parses a script (one line or many).
pub fn parse(src: &str) -> Result<Script, ParseError> {
    let toks = lex(src)?;
    let mut p = Parser { toks, pos: 0 };
    p.script()
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn is_assignment(w: &Word) -> Option<(String, Word)> {
    let Some(Seg::Lit {
        text,
        quoted: false,
    }) = w.0.first()
    else {
        return None;
    };
    let eq = text.find('=')?;
    let name = &text[..eq];
    if name.is_empty()
        || !name.chars().all(is_name_char)
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return None;
    }
    let mut value = Vec::new();
    let rest = &text[eq + 1..];
    if !rest.is_empty() {
        value.push(Seg::Lit {
            text: rest.to_string(),
            quoted: false,
        });
    }
    value.extend(w.0[1..].iter().cloned());
    Some((name.to_string(), Word(value)))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn script(&mut self) -> Result<Script, ParseError> {
        let mut out = Vec::new();
        loop {
            while matches!(self.peek(), Some(Tok::Newline))
                || matches!(self.peek(), Some(Tok::Op(o, _)) if o == ";" || o == "&")
            {
                if let Some(Tok::Op(o, _)) = self.peek()
                    && out.is_empty()
                {
                    return Err(ParseError::Unexpected(o.clone()));
                }
                self.pos += 1;
            }
            if self.peek().is_none() {
                return Ok(out);
            }
            out.push(self.and_or()?);
            match self.peek() {
                None => return Ok(out),
                Some(Tok::Newline) => self.pos += 1,
                Some(Tok::Op(o, _)) if o == ";" || o == "&" => self.pos += 1,
                Some(Tok::Op(o, _)) => return Err(ParseError::Unexpected(o.clone())),
                Some(_) => return Err(ParseError::Unexpected("word".to_string())),
            }
        }
    }

    fn and_or(&mut self) -> Result<AndOr, ParseError> {
        let first = self.pipeline()?;
        let mut rest = Vec::new();
        loop {
            let conn = match self.peek() {
                Some(Tok::Op(o, _)) if o == "&&" => Conn::And,
                Some(Tok::Op(o, _)) if o == "||" => Conn::Or,
                _ => return Ok(AndOr { first, rest }),
            };
            self.pos += 1;
            while matches!(self.peek(), Some(Tok::Newline)) {
                self.pos += 1;
            }
            rest.push((conn, self.pipeline()?));
        }
    }

    fn pipeline(&mut self) -> Result<Pipeline, ParseError> {
        let mut negate = false;
        if matches!(self.peek(), Some(Tok::Op(o, _)) if o == "!") {
            negate = true;
            self.pos += 1;
        }
        let mut cmds = vec![self.simple()?];
        while matches!(self.peek(), Some(Tok::Op(o, _)) if o == "|") {
            self.pos += 1;
            while matches!(self.peek(), Some(Tok::Newline)) {
                self.pos += 1;
            }
            cmds.push(self.simple()?);
        }
        Ok(Pipeline { negate, cmds })
    }

    fn simple(&mut self) -> Result<SimpleCmd, ParseError> {
        let mut cmd = SimpleCmd::default();
        loop {
            match self.peek().cloned() {
                Some(Tok::Word(w)) => {
                    self.pos += 1;
                    if cmd.words.is_empty()
                        && let Some(a) = is_assignment(&w)
                    {
                        cmd.assigns.push(a);
                    } else {
                        cmd.words.push(w);
                    }
                }
                Some(Tok::HereDoc { fd, body, expand }) => {
                    self.pos += 1;
                    cmd.redirs.push(Redir {
                        fd,
                        op: RedirOp::HereDoc { body, expand },
                        target: Word::default(),
                    });
                }
                Some(Tok::Op(op, fd)) if matches!(op.as_str(), "<" | ">" | ">>" | "&>" | ">&") => {
                    self.pos += 1;
                    let target = match self.peek().cloned() {
                        Some(Tok::Word(w)) => {
                            self.pos += 1;
                            w
                        }
                        Some(Tok::Op(o, _)) => return Err(ParseError::Unexpected(o)),
                        _ => return Err(ParseError::Unexpected("newline".to_string())),
                    };
                    match op.as_str() {
                        "<" => cmd.redirs.push(Redir {
                            fd: fd.unwrap_or(0),
                            op: RedirOp::In,
                            target,
                        }),
                        ">" => cmd.redirs.push(Redir {
                            fd: fd.unwrap_or(1),
                            op: RedirOp::Out,
                            target,
                        }),
                        ">>" => cmd.redirs.push(Redir {
                            fd: fd.unwrap_or(1),
                            op: RedirOp::Append,
                            target,
                        }),
                        "&>" => {
                            cmd.redirs.push(Redir {
                                fd: 1,
                                op: RedirOp::Out,
                                target,
                            });
                            cmd.redirs.push(Redir {
                                fd: 2,
                                op: RedirOp::Dup(1),
                                target: Word::lit("1"),
                            });
                        }
                        _ => {
                            // `>&N`: duplicate a descriptor.
                            let n = target
                                .as_plain()
                                .and_then(|s| s.parse().ok())
                                .ok_or_else(|| ParseError::Unexpected(">&".to_string()))?;
                            cmd.redirs.push(Redir {
                                fd: fd.unwrap_or(1),
                                op: RedirOp::Dup(n),
                                target,
                            });
                        }
                    }
                }
                Some(Tok::Op(op, _))
                    if cmd.words.is_empty() && cmd.assigns.is_empty() && cmd.redirs.is_empty() =>
                {
                    return Err(ParseError::Unexpected(op));
                }
                None if cmd.words.is_empty() && cmd.assigns.is_empty() && cmd.redirs.is_empty() => {
                    return Err(ParseError::UnexpectedEof);
                }
                _ => return Ok(cmd),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_words(src: &str) -> Vec<Vec<String>> {
        parse(src)
            .expect("parses")
            .iter()
            .flat_map(|ao| std::iter::once(&ao.first).chain(ao.rest.iter().map(|(_, p)| p)))
            .flat_map(|p| p.cmds.iter())
            .map(|c| {
                c.words
                    .iter()
                    .map(|w| {
                        w.0.iter()
                            .map(|s| match s {
                                Seg::Lit { text, .. } => text.clone(),
                                Seg::Var { name, .. } => format!("${name}"),
                                Seg::Subst { script, .. } => format!("$({script})"),
                                Seg::Tilde => "~".to_string(),
                            })
                            .collect::<String>()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn quotes_group_words_and_keep_spaces() {
        assert_eq!(
            plain_words(r#"echo 'a  b' "c d" e\ f"#),
            vec![vec!["echo", "a  b", "c d", "e f"]]
        );
    }

    #[test]
    fn operators_split_commands_without_spaces() {
        let s = parse("true&&echo a||echo b;echo c|wc -l").expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].rest.len(), 2);
        assert_eq!(s[0].rest[0].0, Conn::And);
        assert_eq!(s[0].rest[1].0, Conn::Or);
        assert_eq!(s[1].first.cmds.len(), 2);
    }

    #[test]
    fn redirections_carry_their_descriptors() {
        let s = parse("cmd >out 2>>err <in 2>&1").expect("parses");
        let r = &s[0].first.cmds[0].redirs;
        assert_eq!(r.len(), 4);
        assert_eq!((r[0].fd, &r[0].op), (1, &RedirOp::Out));
        assert_eq!((r[1].fd, &r[1].op), (2, &RedirOp::Append));
        assert_eq!((r[2].fd, &r[2].op), (0, &RedirOp::In));
        assert_eq!((r[3].fd, &r[3].op), (2, &RedirOp::Dup(1)));
    }

    #[test]
    fn variables_and_substitutions_are_kept_for_expansion_time() {
        assert_eq!(
            plain_words(r#"echo $? ${HOME} "x$(hostname -f)y" `id`"#),
            vec![vec!["echo", "$?", "$HOME", "x$(hostname -f)y", "$(id)"]]
        );
    }

    #[test]
    fn leading_assignments_are_not_words() {
        let s = parse("A=1 B='x y' env").expect("parses");
        let c = &s[0].first.cmds[0];
        assert_eq!(c.assigns.len(), 2);
        assert_eq!(c.assigns[0].0, "A");
        assert_eq!(c.words.len(), 1);
    }

    #[test]
    fn heredoc_body_is_read_after_the_line() {
        let s = parse("cat > /tmp/f <<EOF\nhello $USER\nEOF\necho done\n").expect("parses");
        assert_eq!(s.len(), 2);
        let r = &s[0].first.cmds[0].redirs;
        assert_eq!(
            r[1].op,
            RedirOp::HereDoc {
                body: "hello $USER\n".to_string(),
                expand: true
            }
        );
    }

    #[test]
    fn comments_and_shebang_are_ignored() {
        assert_eq!(
            plain_words("#!/bin/bash\n# setup\necho hi # trailing\n"),
            vec![vec!["echo", "hi"]]
        );
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert_eq!(parse("echo 'abc"), Err(ParseError::Unterminated('\'')));
        assert!(matches!(parse("| wc"), Err(ParseError::Unexpected(_))));
        assert!(matches!(parse("echo a &&"), Err(ParseError::UnexpectedEof)));
    }
}

/// Any text parses to a script or an error, never a panic (issue 10: what a learner types
/// and what user data holds reach this parser).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::parse;

    /// Text made of the characters that steer the grammar, with words between them.
    fn shellish() -> impl Strategy<Value = String> {
        let atoms = proptest::sample::select(
            &[
                "'", "\"", "\\", "$", "$(", "(", ")", "`", "|", "||", "&", "&&", ";", "<", ">",
                ">>", "2>", "2>&1", "<<", "<<-", "<<'EOF'", "EOF", "\n", " ", "\t", "#", "~", "*",
                "?", "{", "}", "=", "x", "echo", "cat", "A=1", "${", "é", "\u{0}", "\r",
            ][..],
        );
        proptest::collection::vec(atoms, 0..80).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn shell_text_never_panics(src in shellish()) {
            let _ = parse(&src);
        }

        #[test]
        fn any_unicode_never_panics(src in "\\PC{0,200}") {
            let _ = parse(&src);
        }
    }

    /// Deep nesting is refused or parsed, not a stack overflow (which would abort the
    /// daemon, every learner's world with it).
    #[test]
    fn deeply_nested_substitutions_do_not_overflow_the_stack() {
        for depth in [100usize, 10_000, 100_000] {
            let src = format!("echo {}x{}", "$(".repeat(depth), ")".repeat(depth));
            let _ = parse(&src);
            let src = format!("echo {}", "\"$(".repeat(depth));
            let _ = parse(&src);
        }
    }
}
