//! The shell's command table: every command the emulated shell knows, in one place.
//!
//! Each [`Command`] names its handler, what kind of command it is (a bash builtin, or a
//! program in `/usr/bin` or `/usr/sbin`), when it exists on an instance ([`Gate`]: always,
//! only on images with that package manager, or once a package providing it is
//! installed), and a one-line help text. From this table come:
//!
//! - dispatch ([`find`], used by `Shell::run_command`);
//! - `which`, `type`, `command -v` and `help` (defined here, since they describe the
//!   table);
//! - the completion list ([`completions`]).
//!
//! Adding a command is one line in [`COMMANDS`]: write the handler beside its kind
//! (files and text in `builtins`, network tools in `nettools`, packages and services in
//! `crate::instance::services`), with the [`Handler`] signature.
//!
//! Binaries that a package puts on the disk but that the emulation does not run (`git`
//! after `dnf install git`) are known to `which`/`type` through the package catalog,
//! not this table: they are found, and running them says "command not found".

use super::{Io, Shell, builtins, nettools, storage, stress};
use crate::instance::net::BoxFuture;
use crate::instance::services::{self, pkg, systemd, web};

/// What a command runs: the session, the name it was called by (one handler serves
/// `head` and `tail`), its arguments and streams; it returns the exit status.
pub type Handler =
    for<'a> fn(&'a mut Shell, &'a str, &'a [String], &'a mut Io) -> BoxFuture<'a, i32>;

/// What kind of command it is, as `type` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bash builtin with no program behind it (`cd`, `export`): `type` says "shell
    /// builtin", `which` finds nothing.
    Builtin,
    /// A bash builtin that also exists as a program in this directory (`echo`, `test`):
    /// the shell runs the builtin, `which` prints the program's path.
    BuiltinAndProgram(&'static str),
    /// A program in this directory (`/usr/bin`, `/usr/sbin`).
    Program(&'static str),
}

/// When a command exists on an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// On every image.
    Always,
    /// On images whose package manager it is (`dnf` on Amazon Linux, `apt` on Ubuntu),
    /// as [`Image::package_managers`](crate::instance::Image::package_managers) lists them.
    PackageManager,
    /// Once a package providing it is installed (`httpd` after `dnf install httpd`), as
    /// [`services::installed_binary`] decides.
    Installed,
}

/// One command of the table.
pub struct Command {
    pub name: &'static str,
    pub kind: Kind,
    pub gate: Gate,
    /// One line for `help`.
    pub help: &'static str,
    pub run: Handler,
}

impl Command {
    /// The program's path (`/usr/bin/ls`), or `None` for a builtin without one.
    pub fn path(&self) -> Option<String> {
        match self.kind {
            Kind::Builtin => None,
            Kind::BuiltinAndProgram(dir) | Kind::Program(dir) => {
                Some(format!("{dir}/{}", self.name))
            }
        }
    }

    /// Whether bash treats it as a builtin.
    pub fn is_builtin(&self) -> bool {
        matches!(self.kind, Kind::Builtin | Kind::BuiltinAndProgram(_))
    }

    /// Whether the command exists on this instance now.
    pub fn available(&self, sh: &Shell) -> bool {
        match self.gate {
            Gate::Always => true,
            Gate::PackageManager => sh
                .inst
                .profile()
                .image
                .package_managers()
                .contains(&self.name),
            Gate::Installed => services::installed_binary(&sh.inst.lock_disk().packages, self.name),
        }
    }
}

/// A handler from a function that finishes without waiting.
macro_rules! now {
    ($f:path) => {
        |sh, name, args, io| Box::pin(std::future::ready($f(sh, name, args, io)))
    };
}

/// A handler from an `async fn`.
macro_rules! wait {
    ($f:path) => {
        |sh, name, args, io| Box::pin($f(sh, name, args, io))
    };
}

/// One table row.
macro_rules! cmd {
    ($name:literal, $kind:expr, $gate:expr, $help:literal, $run:expr) => {
        Command {
            name: $name,
            kind: $kind,
            gate: $gate,
            help: $help,
            run: $run,
        }
    };
}

const BIN: Kind = Kind::Program("/usr/bin");
const SBIN: Kind = Kind::Program("/usr/sbin");
const BUILTIN: Kind = Kind::Builtin;
const BOTH: Kind = Kind::BuiltinAndProgram("/usr/bin");
use Gate::{Always, Installed, PackageManager};

/// Every command, sorted by name.
#[rustfmt::skip]
pub static COMMANDS: &[Command] = &[
    cmd!(".", BUILTIN, Always, "run a file's commands in this shell", wait!(builtins::source)),
    cmd!(":", BUILTIN, Always, "do nothing, successfully", now!(builtins::r#true)),
    cmd!("[", BOTH, Always, "evaluate a condition: [ -f FILE ]", now!(builtins::test)),
    cmd!("apache2", SBIN, Installed, "the Apache web server (run it with systemctl)", wait!(web::server_binary)),
    cmd!("apachectl", SBIN, Installed, "the Apache control program", wait!(web::server_binary)),
    cmd!("apt", BIN, PackageManager, "install and remove packages (Ubuntu)", wait!(pkg::apt)),
    cmd!("apt-get", BIN, PackageManager, "install and remove packages (Ubuntu)", wait!(pkg::apt)),
    cmd!("bash", BIN, Always, "run a script or a -c command line in a child shell", wait!(builtins::bash)),
    cmd!("blkid", SBIN, Always, "print the filesystem type and UUID of block devices", now!(storage::blkid)),
    cmd!("cat", BIN, Always, "print files", wait!(builtins::cat)),
    cmd!("cd", BUILTIN, Always, "change the working directory", now!(builtins::cd)),
    cmd!("chmod", BIN, Always, "change file permissions", now!(builtins::chmod)),
    cmd!("chown", BIN, Always, "change file owners", now!(builtins::chown)),
    cmd!("clear", BIN, Always, "clear the terminal", now!(builtins::clear)),
    cmd!("cloud-init", BIN, Always, "report the first-boot status", now!(builtins::cloud_init)),
    cmd!("command", BUILTIN, Always, "run a command, or -v: say what a name is", wait!(command)),
    cmd!("cp", BIN, Always, "copy files", now!(builtins::cp)),
    cmd!("curl", BIN, Always, "transfer a URL over HTTP", wait!(nettools::curl)),
    cmd!("date", BIN, Always, "print the date and time", now!(builtins::date)),
    cmd!("df", BIN, Always, "show disk space", now!(storage::df)),
    cmd!("dig", BIN, Always, "query DNS servers", wait!(nettools::dns_tool)),
    cmd!("dnf", BIN, PackageManager, "install and remove packages (Amazon Linux)", wait!(pkg::dnf)),
    cmd!("echo", BOTH, Always, "print its arguments", now!(builtins::echo)),
    cmd!("env", BIN, Always, "print the environment", now!(builtins::env)),
    cmd!("exit", BUILTIN, Always, "leave the shell", now!(builtins::exit)),
    cmd!("export", BUILTIN, Always, "set environment variables", now!(builtins::export)),
    cmd!("false", BOTH, Always, "do nothing, unsuccessfully", now!(builtins::r#false)),
    cmd!("file", BIN, Always, "say what kind of file or device a path is", now!(storage::file)),
    cmd!("free", BIN, Always, "show memory use", now!(builtins::free)),
    cmd!("grep", BIN, Always, "print lines that match a pattern", wait!(builtins::grep)),
    cmd!("head", BIN, Always, "print the first lines of files", wait!(builtins::head_tail)),
    cmd!("help", BUILTIN, Always, "list the commands, or describe one", now!(help)),
    cmd!("history", BUILTIN, Always, "list the command lines typed so far", now!(builtins::history)),
    cmd!("host", BIN, Always, "look up a name in DNS", wait!(nettools::dns_tool)),
    cmd!("hostname", BIN, Always, "print the host name", now!(builtins::hostname)),
    cmd!("httpd", SBIN, Installed, "the Apache web server (run it with systemctl)", wait!(web::server_binary)),
    cmd!("id", BIN, Always, "print user and group ids", now!(builtins::id)),
    cmd!("ip", SBIN, Always, "show addresses, links and routes", now!(nettools::ip)),
    cmd!("logout", BUILTIN, Always, "leave the login shell", now!(builtins::exit)),
    cmd!("ls", BIN, Always, "list directory contents", now!(builtins::ls)),
    cmd!("lsblk", BIN, Always, "list block devices (the EBS volumes attached)", now!(storage::lsblk)),
    cmd!("mkdir", BIN, Always, "make directories", now!(builtins::mkdir)),
    cmd!("mkfs", SBIN, Always, "make a filesystem on a device (-t xfs|ext4)", now!(storage::mkfs)),
    cmd!("mkfs.ext4", SBIN, Always, "make an ext4 filesystem on a device", now!(storage::mkfs)),
    cmd!("mkfs.xfs", SBIN, Always, "make an XFS filesystem on a device", now!(storage::mkfs)),
    cmd!("mount", BIN, Always, "mount a filesystem, or list the mounts", now!(storage::mount)),
    cmd!("mv", BIN, Always, "move or rename files", now!(builtins::mv)),
    cmd!("nc", BIN, Always, "open a TCP connection (netcat)", wait!(nettools::nc)),
    cmd!("ncat", BIN, Always, "open a TCP connection (netcat)", wait!(nettools::nc)),
    cmd!("nginx", SBIN, Installed, "the nginx web server (run it with systemctl)", wait!(web::server_binary)),
    cmd!("nslookup", BIN, Always, "look up a name in DNS", wait!(nettools::dns_tool)),
    cmd!("ping", BIN, Always, "send ICMP echo requests", wait!(nettools::ping)),
    cmd!("ping6", BIN, Always, "send ICMPv6 echo requests (ping -6)", wait!(nettools::ping)),
    cmd!("printenv", BIN, Always, "print environment variables", now!(builtins::env)),
    cmd!("printf", BOTH, Always, "print formatted text", now!(builtins::printf)),
    cmd!("ps", BIN, Always, "list processes", now!(builtins::ps)),
    cmd!("pwd", BOTH, Always, "print the working directory", now!(builtins::pwd)),
    cmd!("rm", BIN, Always, "remove files", now!(builtins::rm)),
    cmd!("rmdir", BIN, Always, "remove empty directories", now!(builtins::rmdir)),
    cmd!("scp", BIN, Always, "copy a file to or from another host over SSH", wait!(nettools::ssh_client)),
    cmd!("service", SBIN, Always, "start or stop a service (hands over to systemctl)", wait!(systemd::service)),
    cmd!("sh", BIN, Always, "run a script or a -c command line in a child shell", wait!(builtins::bash)),
    cmd!("sleep", BIN, Always, "wait for a number of seconds", wait!(builtins::sleep)),
    cmd!("sort", BIN, Always, "sort lines", wait!(builtins::sort)),
    cmd!("source", BUILTIN, Always, "run a file's commands in this shell", wait!(builtins::source)),
    cmd!("ss", SBIN, Always, "list listening sockets", now!(nettools::ss)),
    cmd!("ssh", BIN, Always, "log in to another host", wait!(nettools::ssh_client)),
    cmd!("stress", BIN, Installed, "load the CPU (--cpu N --timeout T)", wait!(stress::stress)),
    cmd!("stress-ng", BIN, Installed, "load the CPU (--cpu N --cpu-load P --timeout T)", wait!(stress::stress)),
    cmd!("su", BIN, Always, "become another user", now!(builtins::su)),
    cmd!("sudo", BIN, Always, "run a command as root", wait!(builtins::sudo)),
    cmd!("systemctl", BIN, Always, "control services (start, stop, enable, status)", wait!(systemd::systemctl)),
    cmd!("tail", BIN, Always, "print the last lines of files", wait!(builtins::head_tail)),
    cmd!("tee", BIN, Always, "copy standard input to files and standard output", wait!(builtins::tee)),
    cmd!("test", BOTH, Always, "evaluate a condition: test -f FILE", now!(builtins::test)),
    cmd!("touch", BIN, Always, "create files or update their times", now!(builtins::touch)),
    cmd!("traceroute", BIN, Always, "show the hops on the way to a host", wait!(nettools::traceroute)),
    cmd!("traceroute6", BIN, Always, "show the hops on the way to a host over IPv6 (traceroute -6)", wait!(nettools::traceroute)),
    cmd!("true", BOTH, Always, "do nothing, successfully", now!(builtins::r#true)),
    cmd!("type", BUILTIN, Always, "say what a name is: builtin or program", now!(type_builtin)),
    cmd!("umount", BIN, Always, "unmount a filesystem", now!(storage::umount)),
    cmd!("uname", BIN, Always, "print system information", now!(builtins::uname)),
    cmd!("uniq", BIN, Always, "drop repeated lines", wait!(builtins::uniq)),
    cmd!("unset", BUILTIN, Always, "remove variables", now!(builtins::unset)),
    cmd!("uptime", BIN, Always, "show how long the system has run", now!(builtins::uptime)),
    cmd!("wc", BIN, Always, "count lines, words and bytes", wait!(builtins::wc)),
    cmd!("wget", BIN, Always, "download a URL over HTTP", wait!(nettools::wget)),
    cmd!("which", BIN, Always, "print the path of a program", now!(which)),
    cmd!("whoami", BIN, Always, "print the user name", now!(builtins::whoami)),
    cmd!("yum", BIN, PackageManager, "install and remove packages (Amazon Linux)", wait!(pkg::dnf)),
];

/// The table row for `name`, whether or not it exists on this instance.
pub fn lookup(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The command `name` if it exists on this instance now.
pub fn find(sh: &Shell, name: &str) -> Option<&'static Command> {
    lookup(name).filter(|c| c.available(sh))
}

/// The commands that exist on this instance now, in table order.
pub fn available(sh: &Shell) -> impl Iterator<Item = &'static Command> + '_ {
    COMMANDS.iter().filter(|c| c.available(sh))
}

/// Command names starting with `prefix` that exist on this instance: what Tab offers for
/// the first word of a line.
pub fn completions(sh: &Shell, prefix: &str) -> Vec<&'static str> {
    available(sh)
        .map(|c| c.name)
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// What a name is on this instance.
enum Found {
    Command(&'static Command),
    /// A program an installed package put on disk that the emulation does not run.
    PackageFile(String),
}

fn resolve(sh: &Shell, name: &str) -> Option<Found> {
    if let Some(c) = find(sh, name) {
        return Some(Found::Command(c));
    }
    let installed = services::installed_binary(&sh.inst.lock_disk().packages, name);
    installed.then(|| Found::PackageFile(format!("/usr/bin/{name}")))
}

/// `which NAME…`: the path of each program (builtins have none).
fn which(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let mut status = 0;
    for a in args.iter().filter(|a| !a.starts_with('-')) {
        let path = match resolve(sh, a) {
            Some(Found::Command(c)) => c.path(),
            Some(Found::PackageFile(p)) => Some(p),
            None => None,
        };
        match path {
            Some(p) => io.out.line(&p),
            None => {
                io.err.line(&format!(
                    "/usr/bin/which: no {a} in ({})",
                    sh.vars.get("PATH").cloned().unwrap_or_default()
                ));
                status = 1;
            }
        }
    }
    status
}

/// bash's `type [-t|-p|-P|-a] NAME…`.
fn type_builtin(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let mut flags = String::new();
    let mut names = Vec::new();
    for a in args {
        match a.strip_prefix('-') {
            Some(f) if names.is_empty() && !f.is_empty() => flags.push_str(f),
            _ => names.push(a.as_str()),
        }
    }
    let (terse, path_only, force_path, all) = (
        flags.contains('t'),
        flags.contains('p'),
        flags.contains('P'),
        flags.contains('a'),
    );
    let mut status = 0;
    for name in names {
        // Each way the name resolves, in bash's order: builtin first, then the PATH.
        let mut answers: Vec<(bool, Option<String>)> = Vec::new();
        match resolve(sh, name) {
            Some(Found::Command(c)) => {
                if c.is_builtin() {
                    answers.push((true, None));
                }
                if let Some(p) = c.path()
                    && (!c.is_builtin() || all || force_path)
                {
                    answers.push((false, Some(p)));
                }
            }
            Some(Found::PackageFile(p)) => answers.push((false, Some(p))),
            None => {}
        }
        if force_path {
            answers.retain(|(builtin, _)| !builtin);
        }
        if !all {
            answers.truncate(1);
        }
        if answers.is_empty() {
            if !(terse || path_only || force_path) {
                io.err.line(&format!("-bash: type: {name}: not found"));
            }
            status = 1;
            continue;
        }
        for (builtin, path) in answers {
            let line = match (builtin, path, terse || path_only || force_path) {
                (true, _, _) if terse => Some("builtin".to_string()),
                (true, _, _) if path_only => None,
                (true, _, _) => Some(format!("{name} is a shell builtin")),
                (false, _, _) if terse => Some("file".to_string()),
                (false, Some(p), true) => Some(p),
                (false, Some(p), false) => Some(format!("{name} is {p}")),
                (false, None, _) => None,
            };
            if let Some(l) = line {
                io.out.line(&l);
            }
        }
    }
    status
}

/// bash's `command`: `-v` prints how a name would run (a builtin's name, a program's
/// path), `-V` describes it as `type` does, otherwise the command runs.
async fn command(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    match args.first().map(String::as_str) {
        Some("-v") => {
            let mut status = 0;
            for a in &args[1..] {
                match resolve(sh, a) {
                    Some(Found::Command(c)) if c.is_builtin() => io.out.line(a),
                    Some(Found::Command(c)) => io.out.line(&c.path().unwrap_or_default()),
                    Some(Found::PackageFile(p)) => io.out.line(&p),
                    None => status = 1,
                }
            }
            status
        }
        Some("-V") => type_builtin(sh, "type", &args[1..], io),
        Some(opt) if opt.starts_with('-') && opt != "-" => {
            io.err
                .line(&format!("-bash: command: {opt}: invalid option"));
            io.err
                .line("command: usage: command [-pVv] command [arg ...]");
            2
        }
        Some(_) => sh.run_command(args.to_vec(), io).await,
        None => 0,
    }
}

/// `help`: every command of this instance with its line, or one command's line.
fn help(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    if args.is_empty() {
        io.out
            .line("vpclab's emulated bash. These commands are available here:");
        io.out.line("");
        for c in available(sh) {
            io.out.line(&format!(" {:<12} {}", c.name, c.help));
        }
        io.out.line("");
        io.out
            .line("Type `help NAME' for one of them. Anything else is not emulated.");
        return 0;
    }
    let mut status = 0;
    for a in args {
        match find(sh, a) {
            Some(c) => io.out.line(&format!("{}: {}", c.name, c.help)),
            None => {
                io.err.line(&format!(
                    "-bash: help: no help topics match `{a}'.  Try `help help' or `man -k {a}' or `info {a}'."
                ));
                status = 1;
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::instance::Image;
    use crate::instance::net::FakeNet;
    use crate::instance::{InstanceProfile, InstanceState};

    fn shell(image: Image) -> Shell {
        let ip = Ipv4Addr::new(10, 0, 1, 5);
        let p = InstanceProfile::example(image, ip);
        let net = FakeNet::new(ip, 24, &p.mac);
        let user = image.default_user().to_string();
        Shell::new(InstanceState::launch(p, net), &user)
    }

    async fn run(sh: &mut Shell, line: &str) -> (i32, String, String) {
        let mut io = Io::buffered();
        let status = sh.run_script(line, &mut io).await;
        let out = String::from_utf8_lossy(&io.out.take_buf()).to_string();
        let err = String::from_utf8_lossy(&io.err.take_buf()).to_string();
        (status, out, err)
    }

    #[test]
    fn the_table_is_sorted_and_has_no_duplicates() {
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    /// Every row's handler runs when its name is typed: nothing registered falls through
    /// to "command not found". Each command gets `--vpclab-probe`, an option none knows,
    /// and an empty standard input, so none waits for input or the network; time is
    /// paused, so the ones that sleep finish at once.
    #[tokio::test(start_paused = true)]
    async fn every_registered_command_dispatches() {
        for image in [Image::AmazonLinux2023, Image::Ubuntu2404] {
            let sh = shell(image);
            // Package-gated commands exist once their package is installed.
            sh.inst
                .lock_disk()
                .packages
                .extend(["httpd", "nginx", "apache2"].map(String::from));
            for c in COMMANDS.iter().filter(|c| c.available(&sh)) {
                // Commands that change the session (`exit`, `su`, `cd`) get a fresh one.
                let mut probe = shell(image);
                probe.inst.lock_disk().packages = sh.inst.lock_disk().packages.clone();
                let mut io = Io::buffered();
                let argv = vec![c.name.to_string(), "--vpclab-probe".to_string()];
                let status = probe.run_command(argv, &mut io).await;
                let err = String::from_utf8_lossy(&io.err.take_buf()).to_string();
                assert!(
                    !err.contains("command not found") && status != super::super::NOT_FOUND,
                    "{image:?} {}: status {status}, {err}",
                    c.name
                );
            }
        }
    }

    #[tokio::test]
    async fn gated_commands_exist_only_where_they_should() {
        let mut al = shell(Image::AmazonLinux2023);
        let (st, _, err) = run(&mut al, "apt-get update").await;
        assert_eq!(
            (st, err.as_str()),
            (127, "-bash: apt-get: command not found\n")
        );
        let (st, _, _) = run(&mut al, "httpd -v").await;
        assert_eq!(st, 127, "httpd exists only once installed");
        al.inst.lock_disk().packages.insert("httpd".into());
        let (st, _, err) = run(&mut al, "httpd -v").await;
        assert_eq!(
            (st, err.as_str()),
            (0, "Server version: Apache/2.4.62 (Amazon Linux)\n")
        );
        let mut ubuntu = shell(Image::Ubuntu2404);
        let (st, _, _) = run(&mut ubuntu, "which dnf").await;
        assert_eq!(st, 1);
        assert!(completions(&ubuntu, "ap").contains(&"apt-get"));
        assert!(!completions(&al, "ap").contains(&"apt-get"));
    }

    #[tokio::test]
    async fn which_type_and_command_v_answer_as_bash_does() {
        let mut sh = shell(Image::AmazonLinux2023);
        let (st, out, _) = run(&mut sh, "which ssh").await;
        assert_eq!((st, out.as_str()), (0, "/usr/bin/ssh\n"));
        let (st, out, _) = run(&mut sh, "type cd").await;
        assert_eq!((st, out.as_str()), (0, "cd is a shell builtin\n"));
        let (st, out, _) = run(&mut sh, "command -v scp").await;
        assert_eq!((st, out.as_str()), (0, "/usr/bin/scp\n"));
        // A builtin answers `command -v` with its own name.
        let (st, out, _) = run(&mut sh, "command -v cd; command -v echo").await;
        assert_eq!((st, out.as_str()), (0, "cd\necho\n"));
        // bash prefers the builtin; `which` looks only at the PATH.
        let (_, out, _) = run(&mut sh, "type echo; which echo; type -a echo").await;
        assert_eq!(
            out,
            "echo is a shell builtin\n/usr/bin/echo\necho is a shell builtin\necho is /usr/bin/echo\n"
        );
        let (st, out, _) = run(&mut sh, "type -t cd ls; type -P ls").await;
        assert_eq!((st, out.as_str()), (0, "builtin\nfile\n/usr/bin/ls\n"));
        let (_, out, _) = run(&mut sh, "which ip systemctl ncat command").await;
        assert_eq!(out, "/usr/sbin/ip\n/usr/bin/systemctl\n/usr/bin/ncat\n");
        let (st, out, err) = run(&mut sh, "type nosuch; command -v nosuch").await;
        assert_eq!((st, out.as_str()), (1, ""));
        assert_eq!(err, "-bash: type: nosuch: not found\n");
        let (st, _, err) = run(&mut sh, "which nosuch").await;
        assert_eq!(st, 1);
        assert!(err.starts_with("/usr/bin/which: no nosuch in ("), "{err}");
        // A package's program the emulation does not run is still on the PATH.
        sh.inst.lock_disk().packages.insert("git".into());
        let (st, out, _) = run(&mut sh, "which git").await;
        assert_eq!((st, out.as_str()), (0, "/usr/bin/git\n"));
    }

    #[tokio::test]
    async fn help_lists_the_table_and_describes_one_command() {
        let mut sh = shell(Image::AmazonLinux2023);
        let (st, out, _) = run(&mut sh, "help").await;
        assert_eq!(st, 0);
        assert!(
            out.contains(" curl         transfer a URL over HTTP\n"),
            "{out}"
        );
        assert!(out.contains(" dnf "), "{out}");
        assert!(!out.contains(" apt "), "{out}");
        let (st, out, _) = run(&mut sh, "help cd").await;
        assert_eq!(
            (st, out.as_str()),
            (0, "cd: change the working directory\n")
        );
        let (st, _, err) = run(&mut sh, "help frob").await;
        assert_eq!(st, 1);
        assert!(
            err.starts_with("-bash: help: no help topics match `frob'."),
            "{err}"
        );
    }
}
