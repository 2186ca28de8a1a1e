//! The emulated shell: a small bash over the instance's filesystem and network.
//!
//! [`Shell`] keeps one session's state (user, working directory, variables, `$?`,
//! history) and runs scripts parsed by [`parse`]. Pipelines run their stages one after
//! the other with in-memory buffers between them, which is indistinguishable for the
//! commands provided. Output goes to a [`Sink`]: a buffer (pipes, redirections, command
//! substitution) or a stream to the SSH channel, so `ping` prints line by line.
//! Every command is a row of one table, [`commands`], which gives dispatch, `which`,
//! `type`, `command -v`, `help` and the completion list. The commands themselves live in
//! [`builtins`] (files, text, users), [`nettools`] (network tools over
//! [`super::net::InstanceNet`]), [`sshclient`] (`ssh`/`scp` to other instances), [`stress`] (CPU load that
//! `CPUUtilization` sees) and
//! [`super::services`] (packages and services); time arguments go through [`seconds`].

pub mod builtins;
pub mod commands;
pub mod nettools;
pub mod parse;
pub mod seconds;
pub mod sshclient;
pub mod storage;
pub mod stress;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::mpsc;

use super::InstanceState;
use super::net::BoxFuture;
use super::vfs::{self, Cred, FsError};
use crate::model::iam::policy::glob;
use parse::{Conn, RedirOp, Seg, SimpleCmd, Word};

/// The most a pipe, a redirection or a `$(…)` collects in memory, in bytes. A real pipe
/// holds 64 KiB and makes the writer wait; here a stage runs to completion before the
/// next starts, so its output is held whole, and without a bound one learner's
/// `cat big big big … | wc` would take the memory of every learner's daemon. Output past
/// the bound is dropped and the shell says so (docs/fidelity.md, Limits).
pub const PIPE_BUFFER_LIMIT: usize = 16 * 1024 * 1024;

/// The longest value a shell variable may hold, in bytes (`x=$x$x` doubles per line).
pub const VARIABLE_LIMIT: usize = 1024 * 1024;

/// A piece of output on its way to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub stderr: bool,
    pub data: Vec<u8>,
}

/// Where a command's output goes.
#[derive(Debug)]
pub enum Sink {
    /// Collected in memory (pipes, redirections, `$(…)`).
    Buf(Vec<u8>),
    /// Streamed to the terminal or the SSH channel as it is produced.
    Stream {
        tx: super::outq::OutTx,
        stderr: bool,
    },
    /// Discarded.
    Null,
}

impl Sink {
    pub fn write(&mut self, data: &[u8]) {
        match self {
            Sink::Buf(b) => {
                let room = PIPE_BUFFER_LIMIT.saturating_sub(b.len());
                b.extend_from_slice(&data[..data.len().min(room)]);
            }
            Sink::Stream { tx, stderr } => {
                // The receiver is gone only when the session ended; output has nowhere to go.
                let _ = tx.send(Chunk {
                    stderr: *stderr,
                    data: data.to_vec(),
                });
            }
            Sink::Null => {}
        }
    }
    pub fn print(&mut self, s: &str) {
        self.write(s.as_bytes());
    }
    pub fn line(&mut self, s: &str) {
        self.write(s.as_bytes());
        self.write(b"\n");
    }
    fn same_target(&self) -> Sink {
        match self {
            Sink::Buf(_) => Sink::Buf(Vec::new()),
            Sink::Stream { tx, stderr } => Sink::Stream {
                tx: tx.clone(),
                stderr: *stderr,
            },
            Sink::Null => Sink::Null,
        }
    }
    fn take_buf(&mut self) -> Vec<u8> {
        match self {
            Sink::Buf(b) => std::mem::take(b),
            _ => Vec::new(),
        }
    }
    /// Whether this buffer filled up to [`PIPE_BUFFER_LIMIT`] (and so may have dropped
    /// output).
    fn full(&self) -> bool {
        matches!(self, Sink::Buf(b) if b.len() >= PIPE_BUFFER_LIMIT)
    }
}

/// The message of a buffer that reached [`PIPE_BUFFER_LIMIT`].
fn pipe_limit_message(what: &str) -> String {
    format!(
        "-bash: {what}: output beyond {} MiB was dropped (vpclab's limit on output held in memory)",
        PIPE_BUFFER_LIMIT >> 20
    )
}

/// Refuses a value longer than [`VARIABLE_LIMIT`], as bash refuses what it cannot allocate.
fn check_variable(name: &str, value: &str) -> Result<(), String> {
    if value.len() > VARIABLE_LIMIT {
        Err(format!(
            "-bash: {name}: value of {} bytes is longer than vpclab's limit of {} MiB per variable",
            value.len(),
            VARIABLE_LIMIT >> 20
        ))
    } else {
        Ok(())
    }
}

/// Where a command's input comes from.
#[derive(Debug)]
pub enum Stdin {
    Bytes(Vec<u8>),
    /// The SSH channel: read lazily, only by commands that read input, until EOF. The
    /// queue is bounded: while it is full the channel is not read, so the client waits.
    Stream(mpsc::Receiver<Vec<u8>>),
    Empty,
}

impl Stdin {
    /// The next chunk of input as it arrives; `None` at end of input.
    pub async fn recv_chunk(&mut self) -> Option<Vec<u8>> {
        match self {
            Stdin::Empty => None,
            Stdin::Bytes(b) => {
                if b.is_empty() {
                    None
                } else {
                    Some(std::mem::take(b))
                }
            }
            Stdin::Stream(rx) => rx.recv().await,
        }
    }

    /// Reads one line (without its newline); `None` at end of input.
    pub async fn read_line(&mut self) -> Option<String> {
        match self {
            Stdin::Empty => None,
            Stdin::Bytes(b) => {
                if b.is_empty() {
                    return None;
                }
                let end = b
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(b.len(), |i| i + 1);
                let line: Vec<u8> = b.drain(..end).collect();
                Some(
                    String::from_utf8_lossy(&line)
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                )
            }
            Stdin::Stream(rx) => {
                let mut line = Vec::new();
                while let Some(chunk) = rx.recv().await {
                    line.extend_from_slice(&chunk);
                    // A "line" that never ends is cut, rather than held without bound.
                    if line.contains(&b'\n') || line.len() >= super::outq::INPUT_LIMIT {
                        break;
                    }
                }
                if line.is_empty() {
                    None
                } else {
                    Some(
                        String::from_utf8_lossy(&line)
                            .trim_end_matches(['\n', '\r'])
                            .to_string(),
                    )
                }
            }
        }
    }

    /// Reads everything until end of input.
    pub async fn read_all(&mut self) -> Vec<u8> {
        match std::mem::replace(self, Stdin::Empty) {
            Stdin::Bytes(b) => b,
            Stdin::Empty => Vec::new(),
            Stdin::Stream(mut rx) => {
                // Input past what a disk could hold is read and dropped: a client
                // streaming without end cannot fill the daemon's memory.
                let mut all = Vec::new();
                while let Some(chunk) = rx.recv().await {
                    let room = super::outq::INPUT_LIMIT.saturating_sub(all.len());
                    all.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                all
            }
        }
    }
}

/// A command's standard streams.
#[derive(Debug)]
pub struct Io {
    pub stdin: Stdin,
    pub out: Sink,
    pub err: Sink,
    /// The terminal's modes as commands set them (shared along a pipeline).
    pub term: Arc<Term>,
}

/// How the terminal treats keystrokes while a command runs.
#[derive(Debug, Default)]
pub struct Term {
    /// Pass keystrokes unchanged (the `ssh` client relaying to another instance): no
    /// local echo, no Ctrl-C handling.
    pub raw: AtomicBool,
    /// The command handles Ctrl-C itself (`ping` prints its statistics): the terminal
    /// signals [`Term::interrupt`] instead of abandoning the command.
    pub catch_interrupt: AtomicBool,
    pub interrupt: tokio::sync::Notify,
}

impl Io {
    /// Input from nowhere, output into buffers.
    pub fn buffered() -> Io {
        Io {
            stdin: Stdin::Empty,
            out: Sink::Buf(Vec::new()),
            err: Sink::Buf(Vec::new()),
            term: Arc::new(Term::default()),
        }
    }
}

/// One shell session.
pub struct Shell {
    pub(crate) inst: Arc<InstanceState>,
    /// The user commands run as (changes under `sudo`).
    pub user: String,
    pub cwd: String,
    pub vars: BTreeMap<String, String>,
    pub exported: BTreeSet<String>,
    pub last_status: i32,
    pub history: Vec<String>,
    /// Set by `exit`/`logout`: the session should end with this status.
    pub exit_requested: Option<i32>,
    /// Shells entered with `sudo -i` / `sudo su` / `su`: `exit` returns to the previous.
    saved: Vec<(String, String)>,
    /// Whether output goes to a terminal (`ls` columns, `clear`).
    pub tty: bool,
    /// Positional parameters (`$1`… when running a script).
    pub args: Vec<String>,
    /// How many scripts are running inside one another (`$(…)`, `source`, `bash -c`).
    depth: usize,
    /// What `$(…)` wrote to stderr, waiting for the command it expands into to pass it on
    /// (bash's substitutions share the terminal's stderr).
    subst_err: Vec<u8>,
}

/// The deepest scripts may nest (`$(…)` in `$(…)`, a file that sources itself): each
/// level is a nested poll on the daemon's stack, and a stack overflow aborts the whole
/// daemon. Real scripts nest a handful of levels.
pub const MAX_NESTING: usize = 64;

/// The status bash uses for an unknown command.
pub const NOT_FOUND: i32 = 127;

impl Shell {
    /// A login shell for `user` in their home directory.
    pub fn new(inst: Arc<InstanceState>, user: &str) -> Shell {
        let mut sh = Shell {
            inst,
            user: user.to_string(),
            cwd: String::new(),
            vars: BTreeMap::new(),
            exported: BTreeSet::new(),
            last_status: 0,
            history: Vec::new(),
            exit_requested: None,
            saved: Vec::new(),
            tty: false,
            args: Vec::new(),
            depth: 0,
            subst_err: Vec::new(),
        };
        sh.become_user(user);
        sh
    }

    /// Sets user, home, cwd and the login environment.
    fn become_user(&mut self, user: &str) {
        let home = home_of(user);
        self.user = user.to_string();
        self.cwd = home.clone();
        let p = self.inst.profile();
        let path = if user == "root" {
            "/root/.local/bin:/root/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
        } else {
            "/home/USER/.local/bin:/home/USER/bin:/usr/local/bin:/usr/bin:/usr/local/sbin:/usr/sbin"
        }
        .replace("USER", user);
        for (k, v) in [
            ("HOME", home.as_str()),
            ("USER", user),
            ("LOGNAME", user),
            ("SHELL", "/bin/bash"),
            ("PATH", path.as_str()),
            ("HOSTNAME", p.hostname().as_str()),
            ("LANG", "C.UTF-8"),
            ("PWD", home.as_str()),
        ] {
            self.vars.insert(k.to_string(), v.to_string());
            self.exported.insert(k.to_string());
        }
    }

    /// The user's credentials on the filesystem.
    pub fn cred(&self) -> Cred {
        if self.user == "root" {
            Cred::ROOT
        } else {
            self.inst.profile().image.default_cred()
        }
    }

    /// The prompt for the current user and directory.
    pub fn prompt(&self) -> String {
        let p = self.inst.profile();
        p.image
            .prompt(&self.user, &p.hostname(), &self.cwd, &home_of(&self.user))
    }

    /// Resolves a path against the working directory.
    pub fn abs(&self, path: &str) -> String {
        vfs::normalize(&self.cwd, path)
    }

    /// Runs a script (a command line, or a whole file) and returns its status.
    pub fn run_script<'a>(&'a mut self, src: &'a str, io: &'a mut Io) -> BoxFuture<'a, i32> {
        Box::pin(async move {
            if self.depth >= MAX_NESTING {
                io.err.line(&format!(
                    "-bash: maximum nesting level exceeded ({MAX_NESTING})"
                ));
                self.last_status = 1;
                return 1;
            }
            self.depth += 1;
            let status = self.run_script_inner(src, io).await;
            self.depth -= 1;
            status
        })
    }

    fn run_script_inner<'a>(&'a mut self, src: &'a str, io: &'a mut Io) -> BoxFuture<'a, i32> {
        Box::pin(async move {
            let script = match parse::parse(src) {
                Ok(s) => s,
                Err(e) => {
                    io.err.line(&format!("-bash: {e}"));
                    self.last_status = 2;
                    return 2;
                }
            };
            for and_or in script {
                let mut status = self.run_pipeline(&and_or.first, io).await;
                self.last_status = status;
                for (conn, p) in &and_or.rest {
                    if self.exit_requested.is_some() {
                        break;
                    }
                    let run = match conn {
                        Conn::And => status == 0,
                        Conn::Or => status != 0,
                    };
                    if run {
                        status = self.run_pipeline(p, io).await;
                        self.last_status = status;
                    }
                }
                if self.exit_requested.is_some() {
                    break;
                }
            }
            self.last_status
        })
    }

    async fn run_pipeline(&mut self, p: &parse::Pipeline, io: &mut Io) -> i32 {
        let n = p.cmds.len();
        let mut status = 0;
        let mut input: Option<Vec<u8>> = None;
        for (i, cmd) in p.cmds.iter().enumerate() {
            let last = i + 1 == n;
            let stdin = match input.take() {
                Some(b) => Stdin::Bytes(b),
                None if i == 0 => std::mem::replace(&mut io.stdin, Stdin::Empty),
                None => Stdin::Empty,
            };
            let mut sub = Io {
                stdin,
                out: if last {
                    io.out.same_target()
                } else {
                    Sink::Buf(Vec::new())
                },
                err: io.err.same_target(),
                term: io.term.clone(),
            };
            status = self.run_simple(cmd, &mut sub).await;
            if last {
                // A buffered parent (a pipe into `$(…)`) collects the last stage's output.
                if let Sink::Buf(_) = &io.out {
                    let out = sub.out.take_buf();
                    io.out.write(&out);
                }
            } else {
                if sub.out.full() {
                    io.err.line(&pipe_limit_message("pipe"));
                }
                input = Some(sub.out.take_buf());
            }
            if let Sink::Buf(_) = &io.err {
                let err = sub.err.take_buf();
                io.err.write(&err);
            }
            if self.exit_requested.is_some() {
                break;
            }
        }
        if p.negate {
            i32::from(status == 0)
        } else {
            status
        }
    }

    /// Expands one word into zero or more fields.
    fn expand_word<'a>(&'a mut self, w: &'a Word) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            // Build fields: unquoted expansions split on whitespace; globs in unquoted text.
            let mut fields: Vec<String> = Vec::new();
            let mut cur = String::new();
            let mut have = false;
            let mut glob = false;
            for seg in &w.0 {
                match seg {
                    Seg::Tilde => {
                        cur.push_str(&home_of(&self.user));
                        have = true;
                    }
                    Seg::Lit { text, quoted } => {
                        if !quoted && text.contains(['*', '?']) {
                            glob = true;
                        }
                        cur.push_str(text);
                        have = true;
                    }
                    Seg::Var { name, quoted } => {
                        let v = self.var(name);
                        self.push_expansion(&mut fields, &mut cur, &mut have, &v, *quoted);
                    }
                    Seg::Subst { script, quoted } => {
                        let mut io = Io::buffered();
                        let saved_exit = self.exit_requested;
                        let status = self.run_script(script, &mut io).await;
                        self.exit_requested = saved_exit;
                        self.last_status = status;
                        let out = String::from_utf8_lossy(&io.out.take_buf()).to_string();
                        let out = out.trim_end_matches('\n').to_string();
                        let err = io.err.take_buf();
                        let room = PIPE_BUFFER_LIMIT.saturating_sub(self.subst_err.len());
                        self.subst_err
                            .extend_from_slice(&err[..err.len().min(room)]);
                        self.push_expansion(&mut fields, &mut cur, &mut have, &out, *quoted);
                    }
                }
            }
            if have {
                if glob && let Some(matches) = self.glob(&cur) {
                    fields.extend(matches);
                    return fields;
                }
                fields.push(cur);
            }
            fields
        })
    }

    fn push_expansion(
        &self,
        fields: &mut Vec<String>,
        cur: &mut String,
        have: &mut bool,
        value: &str,
        quoted: bool,
    ) {
        if quoted {
            cur.push_str(value);
            *have = true;
            return;
        }
        let mut parts = value.split_whitespace().peekable();
        if value.starts_with(char::is_whitespace) && *have {
            fields.push(std::mem::take(cur));
            *have = false;
        }
        while let Some(part) = parts.next() {
            cur.push_str(part);
            *have = true;
            if parts.peek().is_some() {
                fields.push(std::mem::take(cur));
                *have = false;
            }
        }
        if value.ends_with(char::is_whitespace) && *have && !value.trim().is_empty() {
            fields.push(std::mem::take(cur));
            *have = false;
        }
    }

    /// A variable's value (special parameters included).
    pub fn var(&self, name: &str) -> String {
        match name {
            "?" => self.last_status.to_string(),
            "$" => "2417".to_string(),
            "#" => self.args.len().to_string(),
            "0" => "-bash".to_string(),
            "@" | "*" => self.args.join(" "),
            n if n.chars().all(|c| c.is_ascii_digit()) => n
                .parse::<usize>()
                .ok()
                .and_then(|i| self.args.get(i.wrapping_sub(1)).cloned())
                .unwrap_or_default(),
            "PWD" => self.cwd.clone(),
            "RANDOM" => "17329".to_string(),
            _ => self.vars.get(name).cloned().unwrap_or_default(),
        }
    }

    /// Expands `*` and `?` in the last path component(s) against the filesystem; `None`
    /// when nothing matches (bash then keeps the word as typed).
    fn glob(&self, pattern: &str) -> Option<Vec<String>> {
        let absolute = pattern.starts_with('/');
        let mut bases: Vec<String> = vec![if absolute { "/".into() } else { String::new() }];
        let disk = self.inst.lock_disk();
        let cred = self.cred();
        for comp in pattern.split('/').filter(|c| !c.is_empty()) {
            let mut next = Vec::new();
            for base in &bases {
                if comp.contains(['*', '?']) {
                    let dir = self.abs(if base.is_empty() { "." } else { base });
                    let Ok(entries) = disk.fs.list(&dir, cred) else {
                        continue;
                    };
                    for (name, _) in entries {
                        if (name.starts_with('.') && !comp.starts_with('.'))
                            || !glob(comp, &name, false)
                        {
                            continue;
                        }
                        next.push(join(base, &name));
                    }
                } else {
                    next.push(join(base, comp));
                }
            }
            bases = next;
        }
        bases.retain(|b| disk.fs.exists(&self.abs(b)));
        if bases.is_empty() { None } else { Some(bases) }
    }

    async fn run_simple(&mut self, cmd: &SimpleCmd, io: &mut Io) -> i32 {
        let mut argv = Vec::new();
        for w in &cmd.words {
            argv.extend(self.expand_word(w).await);
        }
        let mut assigns = Vec::new();
        for (name, w) in &cmd.assigns {
            let v = self.expand_word(w).await.join(" ");
            assigns.push((name.clone(), v));
        }
        if !self.subst_err.is_empty() {
            let err = std::mem::take(&mut self.subst_err);
            io.err.write(&err);
        }
        for (k, v) in &assigns {
            if let Err(e) = check_variable(k, v) {
                io.err.line(&e);
                return 1;
            }
        }
        if argv.is_empty() {
            for (k, v) in assigns {
                self.vars.insert(k, v);
            }
            // Redirections alone (`> file`) create or truncate the file.
            for r in &cmd.redirs {
                if matches!(r.op, RedirOp::Out) {
                    let target = self.expand_word(&r.target).await.join(" ");
                    if let Err(e) = self.write_file(&target, b"", false) {
                        io.err.line(&format!("-bash: {target}: {e}"));
                        return 1;
                    }
                }
            }
            return self.last_status;
        }
        // Redirections.
        let mut out_file: Option<(String, bool)> = None;
        let mut err_file: Option<(String, bool)> = None;
        let mut err_to_out = false;
        let mut out_to_err = false;
        for r in &cmd.redirs {
            match &r.op {
                RedirOp::In => {
                    let target = self.expand_word(&r.target).await.join(" ");
                    let path = self.abs(&target);
                    let data = self
                        .inst
                        .lock_disk()
                        .fs
                        .read(&path, self.cred())
                        .map(<[u8]>::to_vec);
                    match data {
                        Ok(d) => io.stdin = Stdin::Bytes(d),
                        Err(e) => {
                            io.err.line(&format!("-bash: {target}: {e}"));
                            return 1;
                        }
                    }
                }
                RedirOp::HereDoc { body, expand } => {
                    let text = if *expand {
                        self.expand_heredoc(body).await
                    } else {
                        body.clone()
                    };
                    io.stdin = Stdin::Bytes(text.into_bytes());
                }
                RedirOp::Out | RedirOp::Append => {
                    let target = self.expand_word(&r.target).await.join(" ");
                    let append = matches!(r.op, RedirOp::Append);
                    if target == "/dev/null" {
                        if r.fd == 2 {
                            err_file = Some((target, append));
                        } else {
                            out_file = Some((target, append));
                        }
                        continue;
                    }
                    // The file is created (or truncated) before the command runs.
                    if let Err(e) = self.write_file(&target, b"", true) {
                        io.err.line(&format!("-bash: {target}: {e}"));
                        return 1;
                    }
                    if !append {
                        let _ = self.write_file(&target, b"", false);
                    }
                    if r.fd == 2 {
                        err_file = Some((target, true));
                    } else {
                        out_file = Some((target, true));
                    }
                }
                RedirOp::Dup(to) => {
                    if r.fd == 2 && *to == 1 {
                        err_to_out = true;
                    } else if r.fd == 1 && *to == 2 {
                        out_to_err = true;
                    }
                }
            }
        }
        let mut sub = Io {
            stdin: std::mem::replace(&mut io.stdin, Stdin::Empty),
            out: if out_file.is_some() {
                Sink::Buf(Vec::new())
            } else if out_to_err {
                io.err.same_target()
            } else {
                io.out.same_target()
            },
            err: if err_file.is_some() {
                Sink::Buf(Vec::new())
            } else if err_to_out {
                if out_file.is_some() {
                    Sink::Buf(Vec::new())
                } else {
                    io.out.same_target()
                }
            } else {
                io.err.same_target()
            },
            term: io.term.clone(),
        };
        // `A=1 cmd`: the variables apply to this command only.
        let saved: Vec<(String, Option<String>)> = assigns
            .iter()
            .map(|(k, _)| (k.clone(), self.vars.get(k).cloned()))
            .collect();
        for (k, v) in &assigns {
            self.vars.insert(k.clone(), v.clone());
        }
        let name = argv.first().cloned().unwrap_or_default();
        let mut status = self.run_command(argv, &mut sub).await;
        for (k, old) in saved {
            match old {
                Some(v) => self.vars.insert(k, v),
                None => self.vars.remove(&k),
            };
        }
        let out_full = sub.out.full();
        let out_bytes = sub.out.take_buf();
        let err_bytes = sub.err.take_buf();
        match &out_file {
            Some((path, _)) if path != "/dev/null" => {
                if out_full {
                    io.err.line(&pipe_limit_message(path));
                }
                let mut data = out_bytes;
                if err_to_out && err_file.is_none() {
                    data.extend_from_slice(&err_bytes);
                }
                if let Err(e) = self.write_file(path, &data, true) {
                    io.err.line(&write_error(&name, path, e));
                    status = 1;
                }
            }
            Some(_) => {}
            None => {
                if let Sink::Buf(_) = &io.out {
                    io.out.write(&out_bytes);
                    if err_to_out && err_file.is_none() {
                        io.out.write(&err_bytes);
                    }
                }
            }
        }
        match &err_file {
            Some((path, _)) if path != "/dev/null" => {
                if let Err(e) = self.write_file(path, &err_bytes, true) {
                    io.err.line(&write_error(&name, path, e));
                    status = 1;
                }
            }
            Some(_) => {}
            None if !err_to_out => {
                if let Sink::Buf(_) = &io.err {
                    io.err.write(&err_bytes);
                }
            }
            None => {}
        }
        status
    }

    async fn expand_heredoc(&mut self, body: &str) -> String {
        // Expand `$VAR` and `$(…)` inside the body as inside double quotes.
        let quoted = format!("\"{}\"", body.replace('\\', "\\\\").replace('"', "\\\""));
        match parse::parse(&format!("x {quoted}")) {
            Ok(s) => {
                if let Some(w) = s
                    .first()
                    .and_then(|ao| ao.first.cmds.first())
                    .and_then(|c| c.words.get(1))
                {
                    let w = w.clone();
                    return self.expand_word(&w).await.join(" ");
                }
                body.to_string()
            }
            Err(_) => body.to_string(),
        }
    }

    /// Writes (append = true) or truncates-and-writes a file as the current user.
    pub fn write_file(&self, path: &str, data: &[u8], append: bool) -> Result<(), FsError> {
        if path == "/dev/null" {
            return Ok(());
        }
        let p = self.abs(path);
        let mut disk = self.inst.lock_disk();
        disk.fs.set_now(super::unix_now());
        disk.fs.write(&p, data, append, self.cred(), 0o644)
    }

    /// Reads a file as the current user.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, FsError> {
        if path == "/dev/null" {
            return Ok(Vec::new());
        }
        let p = self.abs(path);
        self.inst
            .lock_disk()
            .fs
            .read(&p, self.cred())
            .map(<[u8]>::to_vec)
    }

    /// Runs one command with its arguments expanded.
    pub fn run_command<'a>(&'a mut self, argv: Vec<String>, io: &'a mut Io) -> BoxFuture<'a, i32> {
        Box::pin(async move {
            let Some(name) = argv.first().cloned() else {
                return 0;
            };
            let args = &argv[1..];
            let name = name.rsplit('/').next().unwrap_or(&name).to_string();
            if let Some(cmd) = commands::find(self, &name) {
                return (cmd.run)(self, &name, args, io).await;
            }
            io.err
                .line(&format!("-bash: {}: command not found", argv[0]));
            NOT_FOUND
        })
    }

    /// `sudo -i`, `su`: enter a root shell until `exit`.
    pub(crate) fn push_root(&mut self) {
        self.saved.push((self.user.clone(), self.cwd.clone()));
        self.become_user("root");
    }

    /// `exit`: leave a nested root shell, or end the session.
    pub(crate) fn exit(&mut self, status: i32) {
        if let Some((user, cwd)) = self.saved.pop() {
            self.become_user(&user);
            self.cwd = cwd;
            self.last_status = status;
        } else {
            self.exit_requested = Some(status);
        }
    }

    /// Runs a command as root (`sudo cmd`), then returns to the current user.
    pub(crate) async fn as_root(&mut self, argv: Vec<String>, io: &mut Io) -> i32 {
        let saved_user = std::mem::replace(&mut self.user, "root".to_string());
        let saved_home = self.vars.insert("HOME".to_string(), "/root".to_string());
        let status = self.run_command(argv, io).await;
        self.user = saved_user;
        if let Some(h) = saved_home {
            self.vars.insert("HOME".to_string(), h);
        }
        status
    }
}

/// The message for output that could not be written to a redirection's file. A full
/// disk fails the command's own write, so the command reports it, as coreutils and
/// bash's builtins do (`-bash: echo: write error: No space left on device`).
fn write_error(cmd: &str, path: &str, e: FsError) -> String {
    if e != FsError::NoSpace {
        return format!("-bash: {path}: {e}");
    }
    let cmd = cmd.rsplit('/').next().unwrap_or(cmd);
    // bash's builtins that print (their writes fail inside bash itself).
    if matches!(
        cmd,
        "echo" | "printf" | "pwd" | "history" | "type" | "export"
    ) {
        format!("-bash: {cmd}: write error: {e}")
    } else {
        format!("{cmd}: write error: {e}")
    }
}

/// The home directory of a user of this instance.
pub fn home_of(user: &str) -> String {
    if user == "root" {
        "/root".to_string()
    } else {
        format!("/home/{user}")
    }
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

#[cfg(test)]
mod tests;
