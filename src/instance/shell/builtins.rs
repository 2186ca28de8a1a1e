//! Shell builtins and the file, text and user commands (`ls`, `cat`, `grep`, `sudo` …).
//!
//! Each command is a small function over the session and its streams; messages and exit
//! statuses follow GNU coreutils and bash (`cat: x: No such file or directory`, status 1;
//! `grep` without a match, status 1). `grep` matches fixed strings with optional `^`/`$`
//! anchors and `.` wildcards, not full regular expressions. The command table
//! ([`super::commands`]) names which function runs for which command.

use super::{Io, Shell, home_of};
use crate::instance::vfs::{self, Cred, FsError, NodeKind};

// Every command below has the shape the command table wants (`super::commands`): the
// session, the name it was called by, its arguments, its streams; it returns the exit
// status.

pub(super) fn pwd(sh: &mut Shell, _: &str, _: &[String], io: &mut Io) -> i32 {
    io.out.line(&sh.cwd);
    0
}

pub(super) fn touch(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    each_path(sh, "touch", args, io, |fs, p, c| fs.touch(p, c))
}

pub(super) fn rmdir(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    each_path(sh, "rmdir", args, io, |fs, p, c| {
        if fs.is_dir(p) {
            fs.remove(p, c, false)
        } else {
            Err(FsError::NotADirectory)
        }
    })
}

pub(super) fn cp(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    cp_mv(sh, args, io, false)
}

pub(super) fn mv(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    cp_mv(sh, args, io, true)
}

/// `sort` (`-r` reverses). An unreadable file is reported with GNU's status 2.
pub(super) async fn sort(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(mut lines) = input_lines(sh, "sort", args, io).await else {
        return 2;
    };
    lines.sort();
    if args.iter().any(|a| a == "-r") {
        lines.reverse();
    }
    for l in lines {
        io.out.line(&l);
    }
    0
}

pub(super) async fn uniq(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(mut lines) = input_lines(sh, "uniq", args, io).await else {
        return 1;
    };
    lines.dedup();
    for l in lines {
        io.out.line(&l);
    }
    0
}

pub(super) async fn tee(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let append = args.iter().any(|a| a == "-a");
    let data = io.stdin.read_all().await;
    io.out.write(&data);
    let mut status = 0;
    for f in args.iter().filter(|a| !a.starts_with('-')) {
        if let Err(e) = sh.write_file(f, &data, append).and_then(|()| {
            if append {
                Ok(())
            } else {
                sh.write_file(f, &data, false)
            }
        }) {
            io.err.line(&format!("tee: {f}: {e}"));
            status = 1;
        }
    }
    status
}

/// `env` and `printenv` (`printenv NAME` prints one exported variable).
pub(super) fn env(sh: &mut Shell, name: &str, args: &[String], io: &mut Io) -> i32 {
    if name == "printenv"
        && let Some(v) = args.first()
    {
        return match sh.vars.get(v) {
            Some(val) if sh.exported.contains(v) => {
                io.out.line(val);
                0
            }
            _ => 1,
        };
    }
    let mut vars: Vec<(String, String)> = sh
        .vars
        .iter()
        .filter(|(k, _)| sh.exported.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort();
    for (k, v) in vars {
        io.out.line(&format!("{k}={v}"));
    }
    0
}

pub(super) fn export(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    for a in args {
        if let Some((k, v)) = a.split_once('=') {
            if let Err(e) = super::check_variable(k, v) {
                io.err.line(&e);
                return 1;
            }
            sh.vars.insert(k.to_string(), v.to_string());
            sh.exported.insert(k.to_string());
        } else if !a.starts_with('-') {
            sh.exported.insert(a.clone());
        }
    }
    if args.is_empty() {
        for k in &sh.exported {
            let v = sh.vars.get(k).cloned().unwrap_or_default();
            io.out.line(&format!("declare -x {k}=\"{v}\""));
        }
    }
    0
}

pub(super) fn unset(sh: &mut Shell, _: &str, args: &[String], _: &mut Io) -> i32 {
    for a in args {
        sh.vars.remove(a);
        sh.exported.remove(a);
    }
    0
}

pub(super) fn history(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    if args.first().is_some_and(|a| a == "-c") {
        sh.history.clear();
        return 0;
    }
    for (i, l) in sh.history.iter().enumerate() {
        io.out.line(&format!("{:>5}  {l}", i + 1));
    }
    0
}

pub(super) fn clear(_: &mut Shell, _: &str, _: &[String], io: &mut Io) -> i32 {
    io.out.print("\x1b[H\x1b[2J\x1b[3J");
    0
}

/// `exit [N]` and `logout`: leave a nested root shell, or end the session.
pub(super) fn exit(sh: &mut Shell, name: &str, args: &[String], _: &mut Io) -> i32 {
    let status = args
        .first()
        .and_then(|a| a.parse::<i32>().ok())
        .unwrap_or(sh.last_status);
    if name == "logout" && args.is_empty() {
        sh.exit(0);
    } else {
        sh.exit(status & 0xff);
    }
    status & 0xff
}

pub(super) fn hostname(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let p = sh.inst.profile();
    match args.first().map(String::as_str) {
        // Every address of the host: IPv4 first, then the global IPv6 ones.
        Some("-I" | "-i") => {
            let mut all: Vec<String> = p.ipv4().map(|ip| ip.to_string()).into_iter().collect();
            for ifc in sh.inst.net().interfaces() {
                all.extend(ifc.addrs6.iter().map(|(a, _)| a.to_string()));
            }
            io.out.line(&format!("{} ", all.join(" ")))
        }
        Some("-f" | "--fqdn") => io.out.line(&p.fqdn()),
        Some("-s" | "--short") => io.out.line(&p.hostname()),
        Some(other) if !other.starts_with('-') => {
            io.err
                .line("hostname: you must be root to change the host name");
            return 1;
        }
        _ => io.out.line(&if p.image.hostname_is_fqdn() {
            p.fqdn()
        } else {
            p.hostname()
        }),
    }
    0
}

pub(super) fn whoami(sh: &mut Shell, _: &str, _: &[String], io: &mut Io) -> i32 {
    io.out.line(&sh.user);
    0
}

pub(super) fn id(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let p = sh.inst.profile();
    match args.first().map(String::as_str) {
        Some("-u") => io.out.line(&sh.cred().uid.to_string()),
        Some("-un") | Some("-nu") => io.out.line(&sh.user),
        _ => io.out.line(&p.image.id_line(&sh.user)),
    }
    0
}

pub(super) fn date(_: &mut Shell, _: &str, _: &[String], io: &mut Io) -> i32 {
    let now = time::OffsetDateTime::from_unix_timestamp(crate::instance::unix_now())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    io.out.line(&format_date(now));
    0
}

pub(super) fn uptime(_: &mut Shell, _: &str, _: &[String], io: &mut Io) -> i32 {
    io.out
        .line(" 10:00:00 up 5 min,  1 user,  load average: 0.00, 0.00, 0.00");
    0
}

/// `true` and `:`.
pub(super) fn r#true(_: &mut Shell, _: &str, _: &[String], _: &mut Io) -> i32 {
    0
}

pub(super) fn r#false(_: &mut Shell, _: &str, _: &[String], _: &mut Io) -> i32 {
    1
}

pub(super) fn su(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    if sh.user != "root" && !args.is_empty() && args.iter().all(|a| a == "-") {
        io.err.line("Password: ");
        io.err.line("su: Authentication failure");
        return 1;
    }
    if sh.user == "root" {
        sh.push_root();
        0
    } else {
        io.err.line("Password: ");
        io.err.line("su: Authentication failure");
        1
    }
}

/// `source FILE` and `. FILE`: run a file in this shell.
pub(super) async fn source(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    match args.first() {
        Some(f) => match sh.read_file(f) {
            Ok(data) => {
                let src = String::from_utf8_lossy(&data).to_string();
                sh.run_script(&src, io).await
            }
            Err(e) => {
                io.err.line(&format!("-bash: {f}: {e}"));
                1
            }
        },
        None => {
            io.err.line("-bash: source: filename argument required");
            2
        }
    }
}

pub(super) fn ps(_: &mut Shell, _: &str, _: &[String], io: &mut Io) -> i32 {
    io.out.line("    PID TTY          TIME CMD");
    io.out.line("   2417 pts/0    00:00:00 bash");
    io.out.line("   2458 pts/0    00:00:00 ps");
    0
}

pub(super) fn free(_: &mut Shell, _: &str, _: &[String], io: &mut Io) -> i32 {
    io.out
        .line("               total        used        free      shared  buff/cache   available");
    io.out
        .line("Mem:          949448      162560      519472         436      267416      654388");
    io.out.line("Swap:             0           0           0");
    0
}

pub(super) fn cloud_init(_: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    if args.first().is_some_and(|a| a == "status") {
        io.out.line("status: done");
        0
    } else {
        io.err.line("usage: cloud-init status");
        2
    }
}
/// The longest an emulated `sleep` waits: an hour (a longer sleep, `sleep inf` included,
/// would only hold the session).
const SLEEP_CAP: std::time::Duration = std::time::Duration::from_secs(3600);

/// GNU `sleep`: the arguments (seconds, or with an `s`/`m`/`h`/`d` suffix) are added up.
/// NaN and negative intervals are refused as coreutils refuses them.
pub(super) async fn sleep(_: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    if args.is_empty() {
        io.err.line("sleep: missing operand");
        io.err.line("Try 'sleep --help' for more information.");
        return 1;
    }
    let mut total = std::time::Duration::ZERO;
    for a in args {
        let (number, unit) = match a.char_indices().last() {
            Some((i, c)) if i > 0 && matches!(c, 's' | 'm' | 'h' | 'd') => (
                &a[..i],
                match c {
                    'm' => 60.0,
                    'h' => 3600.0,
                    'd' => 86400.0,
                    _ => 1.0,
                },
            ),
            _ => (a.as_str(), 1.0),
        };
        match super::seconds::parse(number) {
            Ok(super::seconds::Seconds::Finite(d)) => {
                total = total.saturating_add(d.mul_f64(unit));
            }
            Ok(super::seconds::Seconds::Forever) => total = SLEEP_CAP,
            Err(_) => {
                io.err.line(&format!("sleep: invalid time interval '{a}'"));
                io.err.line("Try 'sleep --help' for more information.");
                return 1;
            }
        }
    }
    tokio::time::sleep(total.min(SLEEP_CAP)).await;
    0
}

fn format_date(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] UTC [year]"
    );
    t.format(&f).unwrap_or_default()
}

pub(super) fn echo(_: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let mut newline = true;
    let mut escapes = false;
    let mut rest = args;
    while let Some(a) = rest.first() {
        match a.as_str() {
            "-n" => newline = false,
            "-e" => escapes = true,
            "-ne" | "-en" => {
                newline = false;
                escapes = true;
            }
            "-E" => escapes = false,
            _ => break,
        }
        rest = &rest[1..];
    }
    let mut s = rest.join(" ");
    if escapes {
        s = unescape(&s);
    }
    io.out.print(&s);
    if newline {
        io.out.print("\n");
    }
    0
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\r", "\r")
        .replace("\\\\", "\\")
}

pub(super) fn printf(_: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(fmt) = args.first() else {
        io.err.line("printf: usage: printf format [arguments]");
        return 2;
    };
    let fmt = unescape(fmt);
    let mut vals = args[1..].iter();
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s' | 'd' | 'i') => out.push_str(vals.next().map_or("", String::as_str)),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    io.out.print(&out);
    0
}

pub(super) fn cd(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let target = match args.first().map(String::as_str) {
        None | Some("~") => home_of(&sh.user),
        Some("-") => {
            let old = sh
                .vars
                .get("OLDPWD")
                .cloned()
                .unwrap_or_else(|| sh.cwd.clone());
            io.out.line(&old);
            old
        }
        Some(p) => sh.abs(p),
    };
    let cred = sh.cred();
    let ok = {
        let disk = sh.inst.lock_disk();
        match disk.fs.get(&target) {
            None => Err(FsError::NotFound),
            Some(n) if !n.is_dir() => Err(FsError::NotADirectory),
            Some(_) => disk.fs.list(&target, cred).map(|_| ()).or_else(|e| {
                // Search permission is enough to enter; listing needs read. Approximate
                // with: root, the owner, or an `x` bit for others.
                let n = disk.fs.get(&target).map_or(0, |n| n.mode);
                let owner = disk.fs.get(&target).map_or(0, |n| n.uid);
                if cred.uid == 0 || owner == cred.uid || n & 0o001 != 0 {
                    Ok(())
                } else {
                    Err(e)
                }
            }),
        }
    };
    match ok {
        Ok(()) => {
            let old = std::mem::replace(&mut sh.cwd, target);
            sh.vars.insert("OLDPWD".to_string(), old);
            sh.vars.insert("PWD".to_string(), sh.cwd.clone());
            0
        }
        Err(e) => {
            let shown = args.first().cloned().unwrap_or_default();
            io.err.line(&format!("-bash: cd: {shown}: {e}"));
            1
        }
    }
}

fn split_flags(args: &[String]) -> (String, Vec<String>) {
    let mut flags = String::new();
    let mut rest = Vec::new();
    let mut done = false;
    for a in args {
        if !done && a == "--" {
            done = true;
        } else if !done && a.starts_with('-') && a.len() > 1 && !a.starts_with("--") {
            flags.push_str(&a[1..]);
        } else if !done && a.starts_with("--") {
            // Long options: keep a letter for the few we know.
            match a.as_str() {
                "--all" => flags.push('a'),
                "--recursive" => flags.push('r'),
                "--force" => flags.push('f'),
                "--parents" => flags.push('p'),
                _ => {}
            }
        } else {
            rest.push(a.clone());
        }
    }
    (flags, rest)
}

fn human(n: u64) -> String {
    if n < 1024 {
        n.to_string()
    } else if n < 1024 * 1024 {
        format!("{:.1}K", n as f64 / 1024.0)
    } else {
        format!("{:.1}M", n as f64 / 1024.0 / 1024.0)
    }
}

fn owner_name(sh: &Shell, uid: u32) -> String {
    if uid == 0 {
        "root".to_string()
    } else {
        sh.inst.profile().image.default_user().to_string()
    }
}

pub(super) fn ls(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let (flags, mut paths) = split_flags(args);
    let long = flags.contains('l');
    let all = flags.contains('a');
    let dir_only = flags.contains('d');
    let h = flags.contains('h');
    let one = flags.contains('1') || !sh.tty;
    if paths.is_empty() {
        paths.push(".".to_string());
    }
    let cred = sh.cred();
    let mut status = 0;
    let multiple = paths.len() > 1;
    let fmt_long = |sh: &Shell, name: &str, n: &vfs::Node| {
        let size = if h {
            human(n.len())
        } else {
            n.len().to_string()
        };
        let t = time::OffsetDateTime::from_unix_timestamp(n.mtime)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let f = time::macros::format_description!(
            "[month repr:short] [day padding:space] [hour]:[minute]"
        );
        format!(
            "{} 1 {} {} {:>5} {} {}",
            n.mode_string(),
            owner_name(sh, n.uid),
            owner_name(sh, n.gid),
            size,
            t.format(&f).unwrap_or_default(),
            name
        )
    };
    for (i, p) in paths.iter().enumerate() {
        let abs = sh.abs(p);
        let disk = sh.inst.lock_disk();
        let Some(node) = disk.fs.get(&abs).cloned() else {
            io.err.line(&format!(
                "ls: cannot access '{p}': No such file or directory"
            ));
            status = 2;
            continue;
        };
        if !node.is_dir() || dir_only {
            let line = if long {
                fmt_long(sh, p, &node)
            } else {
                p.clone()
            };
            io.out.line(&line);
            continue;
        }
        let entries = match disk.fs.list(&abs, cred) {
            Ok(e) => e,
            Err(e) => {
                io.err
                    .line(&format!("ls: cannot open directory '{p}': {e}"));
                status = 2;
                continue;
            }
        };
        drop(disk);
        if multiple {
            if i > 0 {
                io.out.line("");
            }
            io.out.line(&format!("{p}:"));
        }
        let mut names: Vec<(String, vfs::Node)> = Vec::new();
        if all {
            names.push((".".to_string(), node.clone()));
            names.push(("..".to_string(), node.clone()));
        }
        names.extend(
            entries
                .into_iter()
                .filter(|(n, _)| all || !n.starts_with('.')),
        );
        if long {
            let total: u64 = names
                .iter()
                .map(|(_, n)| n.len().div_ceil(1024) * 4 / 4)
                .sum();
            io.out.line(&format!("total {total}"));
            for (name, n) in &names {
                io.out.line(&fmt_long(sh, name, n));
            }
        } else if one {
            for (name, _) in &names {
                io.out.line(name);
            }
        } else if !names.is_empty() {
            let line: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
            io.out.line(&line.join("  "));
        }
    }
    status
}

pub(super) async fn cat(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let (flags, files) = split_flags(args);
    let number = flags.contains('n');
    let mut status = 0;
    let mut data = Vec::new();
    if files.is_empty() || files.iter().all(|f| f == "-") {
        data = io.stdin.read_all().await;
    }
    for f in &files {
        if f == "-" {
            continue;
        }
        match sh.read_file(f) {
            Ok(d) => data.extend_from_slice(&d),
            Err(e) => {
                io.err.line(&format!("cat: {f}: {e}"));
                status = 1;
            }
        }
    }
    if number {
        let text = String::from_utf8_lossy(&data).to_string();
        for (i, l) in text.lines().enumerate() {
            io.out.line(&format!("{:>6}\t{l}", i + 1));
        }
    } else {
        io.out.write(&data);
    }
    status
}

fn each_path(
    sh: &mut Shell,
    cmd: &str,
    args: &[String],
    io: &mut Io,
    f: impl Fn(&mut vfs::Vfs, &str, Cred) -> Result<(), FsError>,
) -> i32 {
    let (_, paths) = split_flags(args);
    if paths.is_empty() {
        io.err.line(&format!("{cmd}: missing operand"));
        return 1;
    }
    let cred = sh.cred();
    let mut status = 0;
    for p in paths {
        let abs = sh.abs(&p);
        let mut disk = sh.inst.lock_disk();
        disk.fs.set_now(crate::instance::unix_now());
        if let Err(e) = f(&mut disk.fs, &abs, cred) {
            let verb = match cmd {
                "touch" => format!("touch: cannot touch '{p}': {e}"),
                "rmdir" => format!("rmdir: failed to remove '{p}': {e}"),
                _ => format!("{cmd}: {p}: {e}"),
            };
            io.err.line(&verb);
            status = 1;
        }
    }
    status
}

pub(super) fn mkdir(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let (flags, paths) = split_flags(args);
    let parents = flags.contains('p');
    if paths.is_empty() {
        io.err.line("mkdir: missing operand");
        return 1;
    }
    let cred = sh.cred();
    let mut status = 0;
    for p in paths {
        let abs = sh.abs(&p);
        let mut disk = sh.inst.lock_disk();
        disk.fs.set_now(crate::instance::unix_now());
        if let Err(e) = disk.fs.mkdir(&abs, cred, parents, 0o755) {
            io.err
                .line(&format!("mkdir: cannot create directory '{p}': {e}"));
            status = 1;
        }
    }
    status
}

pub(super) fn rm(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let (flags, paths) = split_flags(args);
    let recursive = flags.contains('r') || flags.contains('R');
    let force = flags.contains('f');
    if paths.is_empty() && !force {
        io.err.line("rm: missing operand");
        return 1;
    }
    let cred = sh.cred();
    let mut status = 0;
    for p in paths {
        let abs = sh.abs(&p);
        let mut disk = sh.inst.lock_disk();
        let is_dir = disk.fs.is_dir(&abs);
        if is_dir && !recursive {
            io.err
                .line(&format!("rm: cannot remove '{p}': Is a directory"));
            status = 1;
            continue;
        }
        match disk.fs.remove(&abs, cred, recursive) {
            Ok(()) => {}
            Err(FsError::NotFound) if force => {}
            Err(e) => {
                io.err.line(&format!("rm: cannot remove '{p}': {e}"));
                status = 1;
            }
        }
    }
    status
}

fn cp_mv(sh: &mut Shell, args: &[String], io: &mut Io, is_mv: bool) -> i32 {
    let cmd = if is_mv { "mv" } else { "cp" };
    let (flags, paths) = split_flags(args);
    let recursive = flags.contains('r') || flags.contains('R') || flags.contains('a');
    if paths.len() < 2 {
        io.err.line(&format!(
            "{cmd}: missing destination file operand after '{}'",
            paths.first().cloned().unwrap_or_default()
        ));
        return 1;
    }
    let (srcs, dst) = paths.split_at(paths.len() - 1);
    let dst_abs = sh.abs(&dst[0]);
    let cred = sh.cred();
    let mut disk = sh.inst.lock_disk();
    disk.fs.set_now(crate::instance::unix_now());
    let dst_is_dir = disk.fs.is_dir(&dst_abs);
    if srcs.len() > 1 && !dst_is_dir {
        io.err
            .line(&format!("{cmd}: target '{}' is not a directory", dst[0]));
        return 1;
    }
    let mut status = 0;
    for s in srcs {
        let src_abs = sh.abs(s);
        let target = if dst_is_dir {
            format!(
                "{}/{}",
                dst_abs.trim_end_matches('/'),
                vfs::basename(&src_abs)
            )
        } else {
            dst_abs.clone()
        };
        let Some(node) = disk.fs.get(&src_abs).cloned() else {
            io.err.line(&format!(
                "{cmd}: cannot stat '{s}': No such file or directory"
            ));
            status = 1;
            continue;
        };
        let result = if is_mv {
            disk.fs.rename(&src_abs, &target, cred)
        } else if node.is_dir() {
            if !recursive {
                io.err
                    .line(&format!("cp: -r not specified; omitting directory '{s}'"));
                status = 1;
                continue;
            }
            copy_tree(&mut disk.fs, &src_abs, &target, cred)
        } else {
            disk.fs
                .read(&src_abs, cred)
                .map(<[u8]>::to_vec)
                .and_then(|d| disk.fs.write(&target, &d, false, cred, node.mode))
        };
        if let Err(e) = result {
            let msg = if is_mv {
                format!("mv: cannot move '{s}' to '{}': {e}", dst[0])
            } else {
                format!("cp: cannot create regular file '{}': {e}", dst[0])
            };
            io.err.line(&msg);
            status = 1;
        }
    }
    status
}

fn copy_tree(fs: &mut vfs::Vfs, src: &str, dst: &str, cred: Cred) -> Result<(), FsError> {
    fs.mkdir(dst, cred, false, 0o755)
        .or_else(|e| if e == FsError::Exists { Ok(()) } else { Err(e) })?;
    for (name, node) in fs.list(src, cred)? {
        let s = format!("{src}/{name}");
        let d = format!("{dst}/{name}");
        match node.kind {
            NodeKind::Dir => copy_tree(fs, &s, &d, cred)?,
            NodeKind::File(data) => fs.write(&d, &data, false, cred, node.mode)?,
        }
    }
    Ok(())
}

/// Applies a symbolic mode (`u+x`, `go-w`, `+x`, `a=r`) to `mode`.
pub fn apply_symbolic(mode: u32, spec: &str) -> Option<u32> {
    let mut mode = mode;
    for clause in spec.split(',') {
        let pos = clause.find(['+', '-', '='])?;
        let (who, rest) = clause.split_at(pos);
        let op = rest.chars().next()?;
        let perms = &rest[1..];
        let mut bits = 0;
        for p in perms.chars() {
            bits |= match p {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                _ => return None,
            };
        }
        let who = if who.is_empty() { "a" } else { who };
        let mut mask = 0;
        for w in who.chars() {
            mask |= match w {
                'u' => bits << 6,
                'g' => bits << 3,
                'o' => bits,
                'a' => (bits << 6) | (bits << 3) | bits,
                _ => return None,
            };
        }
        let full = who.chars().fold(0, |m, w| {
            m | match w {
                'u' => 0o700,
                'g' => 0o070,
                'o' => 0o007,
                _ => 0o777,
            }
        });
        mode = match op {
            '+' => mode | mask,
            '-' => mode & !mask,
            _ => (mode & !full) | mask,
        };
    }
    Some(mode)
}

pub(super) fn chmod(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let (_, rest) = split_flags(args);
    if rest.len() < 2 {
        io.err.line("chmod: missing operand");
        return 1;
    }
    let spec = &rest[0];
    let cred = sh.cred();
    let mut status = 0;
    for p in &rest[1..] {
        let abs = sh.abs(p);
        let mut disk = sh.inst.lock_disk();
        let Some(cur) = disk.fs.get(&abs).map(|n| n.mode) else {
            io.err.line(&format!(
                "chmod: cannot access '{p}': No such file or directory"
            ));
            status = 1;
            continue;
        };
        let new = if spec.chars().all(|c| c.is_digit(8)) {
            u32::from_str_radix(spec, 8).ok()
        } else {
            apply_symbolic(cur, spec)
        };
        let Some(new) = new else {
            io.err.line(&format!("chmod: invalid mode: '{spec}'"));
            return 1;
        };
        if let Err(e) = disk.fs.chmod(&abs, new, cred) {
            let e = if e == FsError::PermissionDenied {
                "Operation not permitted".to_string()
            } else {
                e.to_string()
            };
            io.err
                .line(&format!("chmod: changing permissions of '{p}': {e}"));
            status = 1;
        }
    }
    status
}

pub(super) fn chown(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let (flags, rest) = split_flags(args);
    if rest.len() < 2 {
        io.err.line("chown: missing operand");
        return 1;
    }
    let user = rest[0].split([':', '.']).next().unwrap_or("");
    let image = sh.inst.profile().image;
    let owner = if user == "root" {
        Cred::ROOT
    } else if user == image.default_user() {
        image.default_cred()
    } else {
        io.err.line(&format!("chown: invalid user: '{}'", rest[0]));
        return 1;
    };
    let cred = sh.cred();
    let mut status = 0;
    for p in &rest[1..] {
        let abs = sh.abs(p);
        let mut disk = sh.inst.lock_disk();
        let mut targets = vec![abs.clone()];
        if flags.contains('R') {
            let mut stack = vec![abs.clone()];
            while let Some(d) = stack.pop() {
                if let Ok(entries) = disk.fs.list(&d, Cred::ROOT) {
                    for (name, n) in entries {
                        let child = format!("{}/{name}", d.trim_end_matches('/'));
                        if n.is_dir() {
                            stack.push(child.clone());
                        }
                        targets.push(child);
                    }
                }
            }
        }
        for t in targets {
            if let Err(e) = disk.fs.chown(&t, owner, cred) {
                let e = if e == FsError::PermissionDenied {
                    "Operation not permitted".to_string()
                } else {
                    e.to_string()
                };
                io.err
                    .line(&format!("chown: changing ownership of '{p}': {e}"));
                status = 1;
                break;
            }
        }
    }
    status
}

/// Reads the input of a text filter: the files named, or standard input.
async fn input_text(sh: &mut Shell, cmd: &str, files: &[String], io: &mut Io) -> Option<String> {
    if files.is_empty() {
        return Some(String::from_utf8_lossy(&io.stdin.read_all().await).to_string());
    }
    let mut all = String::new();
    let mut failed = false;
    for f in files {
        match sh.read_file(f) {
            Ok(d) => all.push_str(&String::from_utf8_lossy(&d)),
            Err(e) => {
                io.err.line(&format!("{cmd}: {f}: {e}"));
                failed = true;
            }
        }
    }
    if failed && all.is_empty() {
        None
    } else {
        Some(all)
    }
}

async fn input_lines(
    sh: &mut Shell,
    cmd: &str,
    args: &[String],
    io: &mut Io,
) -> Option<Vec<String>> {
    let (_, files) = split_flags(args);
    let text = input_text(sh, cmd, &files, io).await?;
    Some(text.lines().map(str::to_string).collect())
}

/// `head` and `tail`.
pub(super) async fn head_tail(sh: &mut Shell, cmd: &str, args: &[String], io: &mut Io) -> i32 {
    let mut n: usize = 10;
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-n" {
            n = it
                .next()
                .and_then(|v| v.trim_start_matches('+').parse().ok())
                .unwrap_or(10);
        } else if let Some(v) = a.strip_prefix("-n") {
            n = v.parse().unwrap_or(10);
        } else if a == "-f" || a == "-F" {
            // Following a file would never end in an emulated shell; print and return.
        } else if let Some(v) = a.strip_prefix('-') {
            n = v.parse().unwrap_or(10);
        } else {
            files.push(a.clone());
        }
    }
    let Some(text) = input_text(sh, cmd, &files, io).await else {
        return 1;
    };
    let lines: Vec<&str> = text.lines().collect();
    let pick: &[&str] = if cmd == "head" {
        &lines[..n.min(lines.len())]
    } else {
        &lines[lines.len().saturating_sub(n)..]
    };
    for l in pick {
        io.out.line(l);
    }
    0
}

/// A tiny pattern matcher for `grep`: fixed text, `.` any character, `^` and `$` anchors.
pub fn grep_match(pattern: &str, line: &str, ignore_case: bool) -> bool {
    let (p, l) = if ignore_case {
        (pattern.to_lowercase(), line.to_lowercase())
    } else {
        (pattern.to_string(), line.to_string())
    };
    let start = p.starts_with('^');
    let end = p.ends_with('$') && !p.ends_with("\\$");
    let core = p.trim_start_matches('^');
    let core = if end { &core[..core.len() - 1] } else { core };
    let pc: Vec<char> = core.chars().collect();
    let lc: Vec<char> = l.chars().collect();
    let at = |i: usize| -> bool {
        if i + pc.len() > lc.len() {
            return false;
        }
        pc.iter().zip(&lc[i..]).all(|(a, b)| *a == '.' || a == b)
    };
    if start {
        return at(0) && (!end || pc.len() == lc.len());
    }
    if end {
        return lc.len() >= pc.len() && at(lc.len() - pc.len());
    }
    (0..=lc.len().saturating_sub(pc.len())).any(at) || pc.is_empty()
}

pub(super) async fn grep(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let mut flags = String::new();
    let mut rest = Vec::new();
    let mut it = args.iter();
    let mut pattern: Option<String> = None;
    while let Some(a) = it.next() {
        if a == "-e" {
            pattern = it.next().cloned();
        } else if a.starts_with('-') && a.len() > 1 {
            flags.push_str(&a[1..]);
        } else {
            rest.push(a.clone());
        }
    }
    let pattern = match pattern {
        Some(p) => p,
        None if !rest.is_empty() => rest.remove(0),
        None => {
            io.err.line("Usage: grep [OPTION]... PATTERNS [FILE]...");
            return 2;
        }
    };
    let ic = flags.contains('i');
    let inv = flags.contains('v');
    let count = flags.contains('c');
    let num = flags.contains('n');
    let quiet = flags.contains('q');
    let multi = rest.len() > 1;
    let mut inputs: Vec<(String, String)> = Vec::new();
    let mut status_err = false;
    if rest.is_empty() {
        inputs.push((
            String::new(),
            String::from_utf8_lossy(&io.stdin.read_all().await).to_string(),
        ));
    } else {
        for f in &rest {
            match sh.read_file(f) {
                Ok(d) => inputs.push((f.clone(), String::from_utf8_lossy(&d).to_string())),
                Err(e) => {
                    io.err.line(&format!("grep: {f}: {e}"));
                    status_err = true;
                }
            }
        }
    }
    let mut found = false;
    for (name, text) in inputs {
        let mut c = 0;
        for (i, line) in text.lines().enumerate() {
            if grep_match(&pattern, line, ic) != inv {
                found = true;
                c += 1;
                if quiet || count {
                    continue;
                }
                let mut s = String::new();
                if multi {
                    s.push_str(&format!("{name}:"));
                }
                if num {
                    s.push_str(&format!("{}:", i + 1));
                }
                s.push_str(line);
                io.out.line(&s);
            }
        }
        if count {
            io.out.line(&if multi {
                format!("{name}:{c}")
            } else {
                c.to_string()
            });
        }
    }
    if status_err {
        2
    } else if found {
        0
    } else {
        1
    }
}

pub(super) async fn wc(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let (flags, files) = split_flags(args);
    let flags = if flags.is_empty() {
        "lwc".to_string()
    } else {
        flags
    };
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut status = 0;
    if files.is_empty() {
        entries.push((
            String::new(),
            String::from_utf8_lossy(&io.stdin.read_all().await).to_string(),
        ));
    } else {
        for f in &files {
            match sh.read_file(f) {
                Ok(d) => entries.push((f.clone(), String::from_utf8_lossy(&d).to_string())),
                Err(e) => {
                    io.err.line(&format!("wc: {f}: {e}"));
                    status = 1;
                }
            }
        }
    }
    // GNU wc pads columns to 7 only when reading standard input with several counts.
    let pad = files.is_empty() && flags.len() > 1;
    for (name, text) in entries {
        let mut cols = Vec::new();
        if flags.contains('l') {
            cols.push(text.matches('\n').count());
        }
        if flags.contains('w') {
            cols.push(text.split_whitespace().count());
        }
        if flags.contains('c') || flags.contains('m') {
            cols.push(text.len());
        }
        let mut line = if pad {
            cols.iter()
                .map(|c| format!("{c:>7}"))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            cols.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !name.is_empty() {
            line.push(' ');
            line.push_str(&name);
        }
        io.out.line(&line);
    }
    status
}

pub(super) fn uname(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let p = sh.inst.profile();
    let (flags, _) = split_flags(args);
    let host = if p.image.hostname_is_fqdn() {
        p.local_hostname()
    } else {
        p.hostname()
    };
    if flags.contains('a') {
        io.out.line(&format!(
            "Linux {host} {} {} x86_64 x86_64 x86_64 GNU/Linux",
            p.image.kernel_release(),
            p.image.kernel_version()
        ));
        return 0;
    }
    let mut parts = Vec::new();
    for f in flags.chars() {
        match f {
            's' => parts.push("Linux".to_string()),
            'n' => parts.push(host.clone()),
            'r' => parts.push(p.image.kernel_release().to_string()),
            'v' => parts.push(p.image.kernel_version().to_string()),
            'm' | 'p' | 'i' => parts.push("x86_64".to_string()),
            'o' => parts.push("GNU/Linux".to_string()),
            _ => {}
        }
    }
    if parts.is_empty() {
        parts.push("Linux".to_string());
    }
    io.out.line(&parts.join(" "));
    0
}

/// `test EXPR` and `[ EXPR ]`.
pub(super) fn test(sh: &mut Shell, name: &str, args: &[String], io: &mut Io) -> i32 {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    if name == "[" {
        if args.last() != Some(&"]") {
            io.err.line("-bash: [: missing `]'");
            return 2;
        }
        args.pop();
    }
    let mut negate = false;
    if args.first() == Some(&"!") {
        negate = true;
        args.remove(0);
    }
    let disk = sh.inst.lock_disk();
    let result = match args.as_slice() {
        [] => false,
        [s] => !s.is_empty(),
        ["-n", s] => !s.is_empty(),
        ["-z", s] => s.is_empty(),
        ["-e", p] => disk.fs.exists(&sh.abs(p)),
        ["-f", p] => disk.fs.get(&sh.abs(p)).is_some_and(|n| !n.is_dir()),
        ["-d", p] => disk.fs.is_dir(&sh.abs(p)),
        ["-s", p] => disk
            .fs
            .get(&sh.abs(p))
            .is_some_and(|n| !n.is_dir() && !n.is_empty()),
        ["-r" | "-w" | "-x", p] => disk.fs.exists(&sh.abs(p)),
        [a, "=" | "==", b] => a == b,
        [a, "!=", b] => a != b,
        [a, op, b] => {
            let (x, y) = (a.parse::<i64>().unwrap_or(0), b.parse::<i64>().unwrap_or(0));
            match *op {
                "-eq" => x == y,
                "-ne" => x != y,
                "-lt" => x < y,
                "-le" => x <= y,
                "-gt" => x > y,
                "-ge" => x >= y,
                _ => false,
            }
        }
        _ => false,
    };
    i32::from(result == negate)
}

pub(super) async fn sudo(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let mut rest: Vec<String> = Vec::new();
    let mut login = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-i" | "-s" | "--login" => login = true,
            "-u" => {
                let _ = it.next();
            }
            s if s.starts_with('-') && rest.is_empty() => {}
            _ => {
                rest.push(a.clone());
                rest.extend(it.by_ref().cloned());
                break;
            }
        }
    }
    // `sudo su`, `sudo su -`, `sudo -i`, `sudo bash`: a root shell until `exit`.
    let root_shell = matches!(rest.first().map(String::as_str), Some("su")) && rest.len() <= 3
        || (rest.is_empty() && login)
        || (matches!(rest.first().map(String::as_str), Some("bash" | "sh")) && rest.len() == 1);
    if root_shell {
        sh.push_root();
        return 0;
    }
    if rest.is_empty() {
        io.err.line("usage: sudo -h | -K | -k | -V");
        return 1;
    }
    sh.as_root(rest, io).await
}

/// `bash` and `sh`: a script file or `-c`, in a child shell.
pub(super) async fn bash(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let (src, script_args) = match args.first().map(String::as_str) {
        Some("-c") => match args.get(1) {
            Some(s) => (s.clone(), args[2..].to_vec()),
            None => {
                io.err.line("-bash: -c: option requires an argument");
                return 2;
            }
        },
        Some(f) if !f.starts_with('-') => match sh.read_file(f) {
            Ok(d) => (String::from_utf8_lossy(&d).to_string(), args[1..].to_vec()),
            Err(e) => {
                io.err.line(&format!("bash: {f}: {e}"));
                return 127;
            }
        },
        _ => {
            io.err.line("bash: interactive subshells are not supported here; use `bash -c '…'` or a script file");
            return 1;
        }
    };
    // A child shell: its variables, directory and `exit` do not leak into ours.
    let saved_vars = sh.vars.clone();
    let saved_cwd = sh.cwd.clone();
    let saved_args = std::mem::replace(&mut sh.args, script_args);
    let saved_exit = sh.exit_requested.take();
    let status = sh.run_script(&src, io).await;
    let status = sh.exit_requested.take().unwrap_or(status);
    sh.exit_requested = saved_exit;
    sh.vars = saved_vars;
    sh.cwd = saved_cwd;
    sh.args = saved_args;
    status
}
