//! `vpclab instance-tool`: the image's package manager and service manager inside a
//! sandbox, as real processes.
//!
//! The instance's `/usr/local/bin` holds small wrappers (`dnf`, `yum` on Amazon Linux,
//! `apt`, `apt-get` on Ubuntu, `systemctl`, `service`) that run the agent binary with
//! `instance-tool NAME ARGS…`. What they do:
//!
//! - the package managers ask the world's package mirror for its metadata over a real
//!   TCP connection of the sandbox's kernel, so the request crosses the learner's route
//!   tables, NACLs and security groups like any packet: in a private subnet without a
//!   NAT gateway it times out and the tool fails with the real tool's message. Which
//!   packages exist is the shared catalog's answer ([`crate::instance::services::catalog`]);
//!   installing one records it in `/var/lib/vpclab/packages` and writes what the package
//!   would (document root, configuration, log folder). The sandbox cannot add programs
//!   to the host's read-only `/usr`: a package's commands work when the host has them;
//! - `systemctl`/`service` manage the web server units of installed packages (`httpd`,
//!   `nginx`, `apache2`): `start` runs `instance-tool web UNIT` in the background, a
//!   small HTTP server on port 80 serving the unit's document root with the real
//!   server's `Server` header, error pages and access log; `enable` makes the same
//!   `multi-user.target.wants` link systemd makes, and the agent starts enabled units
//!   at every boot ([`start_enabled`]).
//!
//! The agent writes what the tools need to know ([`ToolConfig`]) at every boot.

use std::io::Write as _;
use std::net::SocketAddrV4;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http1;
use crate::instance::image::Image;
use crate::instance::services::catalog::{AL_PKGS, Pkg, UBUNTU_PKGS, web_unit};
use crate::instance::services::web::{content_type, error_html};

/// Where the agent writes the [`ToolConfig`].
pub const CONFIG: &str = "/var/lib/vpclab/instance.json";
/// The installed packages, one name a line.
const PACKAGES: &str = "/var/lib/vpclab/packages";
/// Running units' process ids (`/run` is empty at every boot, as on Linux).
pub(super) const UNIT_PIDS: &str = "/run/vpclab/units";
/// Enabled units, as systemd records them.
pub(super) const WANTS: &str = "/etc/systemd/system/multi-user.target.wants";
/// The agent binary inside the sandbox.
pub(super) const AGENT: &str = "/run/vpclab/agent";
/// How long dnf and apt wait for the mirror (dnf's `timeout` option, 30 s).
const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `systemctl start` waits for a web server to listen.
const START_TIMEOUT: Duration = Duration::from_secs(3);

/// What the tools know of their instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToolConfig {
    pub image: Image,
    pub region: String,
    /// The world's package mirror (`None`: no mirror, every fetch fails).
    pub package_mirror: Option<SocketAddrV4>,
    /// An upper bound on the tools' network timeouts (a test knob).
    pub timeout_ms: Option<u64>,
}

impl ToolConfig {
    fn load() -> Result<ToolConfig, String> {
        let text = std::fs::read_to_string(CONFIG)
            .map_err(|e| format!("{CONFIG}: {e} (is this a vpclab instance?)"))?;
        serde_json::from_str(&text).map_err(|e| format!("{CONFIG}: {e}"))
    }

    fn timeout(&self) -> Duration {
        self.timeout_ms.map_or(MIRROR_TIMEOUT, |ms| {
            MIRROR_TIMEOUT.min(Duration::from_millis(ms))
        })
    }

    /// Writes the configuration (the agent, at boot).
    pub fn save(&self) -> std::io::Result<()> {
        std::fs::create_dir_all("/var/lib/vpclab")?;
        let text = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(CONFIG, text)
    }
}

/// The wrappers the instance's `/usr/local/bin` holds for `image`: (name, script).
pub fn wrappers(image: Image) -> Vec<(&'static str, String)> {
    let tools: &[&'static str] = match image {
        Image::AmazonLinux2023 => &["dnf", "yum", "systemctl", "service"],
        Image::Ubuntu2404 => &["apt", "apt-get", "systemctl", "service"],
    };
    tools
        .iter()
        .map(|t| {
            (
                *t,
                format!(
                    "#!/bin/sh\n# vpclab: {t} of this sandbox (see `vpclab instance-tool`).\nexec {AGENT} instance-tool {t} \"$@\"\n"
                ),
            )
        })
        .collect()
}

/// `vpclab instance-tool NAME ARGS…`: runs one tool and returns its exit status.
pub fn run(argv: &[String]) -> ExitCode {
    let Some((name, args)) = argv.split_first() else {
        eprintln!("usage: vpclab instance-tool NAME [ARGS…]");
        return ExitCode::from(2);
    };
    let cfg = match ToolConfig::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(1);
        }
    };
    let code = match name.as_str() {
        "dnf" | "yum" => dnf(&cfg, args),
        "apt" | "apt-get" => apt(&cfg, name, args),
        "systemctl" => systemctl(&cfg, args),
        "service" => service(&cfg, args),
        "web" => match args.first() {
            Some(unit) => web(&cfg, unit),
            None => 2,
        },
        other => {
            eprintln!("instance-tool: unknown tool {other}");
            2
        }
    };
    ExitCode::from(code)
}

/// Whether the caller is root: `sudo` (and user data) run tools with `USER=root`. Inside
/// the sandbox every process is uid 0 of its namespace, so the login name is what
/// tells the default user and root apart.
fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
}

pub(super) fn installed() -> Vec<String> {
    std::fs::read_to_string(PACKAGES)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn set_installed(list: &[String]) {
    let _ = std::fs::create_dir_all("/var/lib/vpclab");
    let mut text = list.join("\n");
    text.push('\n');
    let _ = std::fs::write(PACKAGES, text);
}

/// One GET of the mirror's repository metadata, through the sandbox's kernel (and so
/// the fabric). Any HTTP answer means the mirror was reached.
fn reach_mirror(cfg: &ToolConfig) -> std::io::Result<()> {
    let Some(mirror) = cfg.package_mirror else {
        return Err(std::io::ErrorKind::TimedOut.into());
    };
    let timeout = cfg.timeout();
    let prefix = cfg.image.mirror_prefix();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let fetch = async {
            let stream = tokio::net::TcpStream::connect(mirror).await?;
            let path = format!("{prefix}/repodata/repomd.xml");
            let agent = match cfg.image {
                Image::AmazonLinux2023 => "libdnf (Amazon Linux 2023; generic; Linux.x86_64)",
                Image::Ubuntu2404 => "Debian APT-HTTP/1.3 (2.7.14)",
            };
            let headers = [("User-Agent".to_string(), agent.to_string())];
            http1::request(
                stream,
                "GET",
                &mirror.ip().to_string(),
                &path,
                &headers,
                b"",
            )
            .await
        };
        match tokio::time::timeout(timeout, fetch).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    })
}

fn catalog(image: Image) -> &'static [Pkg] {
    match image {
        Image::AmazonLinux2023 => AL_PKGS,
        Image::Ubuntu2404 => UBUNTU_PKGS,
    }
}

/// What the host offers for a package whose program the sandbox can only borrow.
fn missing_program(pkg: &str) -> Option<&str> {
    let program = match pkg {
        "httpd" | "nginx" | "apache2" => return None,
        "nmap-ncat" => "nc",
        "bind-utils" => "dig",
        "nodejs" => "node",
        "python3-pip" => "pip3",
        "mariadb105" | "mysql-client" => "mysql",
        "docker" | "docker.io" => "docker",
        other => other,
    };
    let found = super::agent::PATH
        .split(':')
        .any(|d| Path::new(d).join(program).exists());
    (!found).then_some(program)
}

/// A package manager's command and its operands (the arguments that are not options).
fn command_words(args: &[String]) -> Option<(&str, Vec<&str>)> {
    let mut words = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str);
    Some((words.next()?, words.collect()))
}

/// The catalog's packages that are installed, in catalog order.
fn installed_of(image: Image, have: &[String]) -> impl Iterator<Item = &'static Pkg> + '_ {
    catalog(image)
        .iter()
        .filter(move |p| have.iter().any(|h| h == p.name))
}

/// What a package name is to the package manager.
enum Lookup {
    Unknown,
    Installed(&'static Pkg),
    New(&'static Pkg),
}

fn lookup(image: Image, have: &[String], name: &str) -> Lookup {
    match catalog(image).iter().find(|p| p.name == name) {
        None => Lookup::Unknown,
        Some(p) if have.iter().any(|h| h == p.name) => Lookup::Installed(p),
        Some(p) => Lookup::New(p),
    }
}

/// Uninstalls `names` (stopping their units); whether any was installed.
fn remove(have: &mut Vec<String>, names: &[&str]) -> bool {
    let before = have.len();
    have.retain(|h| !names.contains(&h.as_str()));
    for n in names {
        stop_unit(n);
    }
    set_installed(have);
    have.len() != before
}

/// `dnf` and `yum`.
fn dnf(cfg: &ToolConfig, args: &[String]) -> u8 {
    let yes = args.iter().any(|a| a == "-y" || a == "--assumeyes");
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let Some((cmd, names)) = command_words(args) else {
        eprintln!("usage: dnf [options] COMMAND");
        return 1;
    };
    let names = &names[..];
    let mut have = installed();
    let changes = matches!(
        cmd,
        "install" | "update" | "upgrade" | "remove" | "erase" | "makecache"
    );
    if changes && !is_root() {
        eprintln!(
            "Error: This command has to be run with superuser privileges (under the root user on most systems)."
        );
        return 1;
    }
    if cmd == "list" && names.first() == Some(&"installed") {
        println!("Installed Packages");
        for p in installed_of(cfg.image, &have) {
            println!(
                "{:<40}{:<35}@amazonlinux",
                format!("{}.x86_64", p.name),
                p.version
            );
        }
        return 0;
    }
    if matches!(cmd, "remove" | "erase") {
        if !remove(&mut have, names) {
            println!("No packages marked for removal.\nDependencies resolved.\nNothing to do.");
        }
        println!("Complete!");
        return 0;
    }
    if !quiet {
        print!("{:<64}", "Amazon Linux 2023 repository");
        let _ = std::io::stdout().flush();
    }
    if let Err(e) = reach_mirror(cfg) {
        if !quiet {
            println!("0.0  B/s |   0  B     00:30    ");
        }
        let url = format!(
            "https://al2023-repos-{r}-de612dc2.s3.dualstack.{r}.amazonaws.com/core/mirrors/2023.6.20241111/x86_64/mirror.list",
            r = cfg.region
        );
        let why = if e.kind() == std::io::ErrorKind::TimedOut {
            format!(
                "Curl error (28): Timeout was reached for {url} [Connection timed out after 30000 milliseconds]"
            )
        } else {
            format!("Curl error (7): Couldn't connect to server for {url} [{e}]")
        };
        eprintln!("Errors during downloading metadata for repository 'amazonlinux':\n  - {why}");
        eprintln!(
            "Error: Failed to download metadata for repo 'amazonlinux': Cannot download repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried"
        );
        return 1;
    }
    if !quiet {
        println!(" 42 MB/s |  29 MB     00:00    ");
    }
    match cmd {
        "makecache" => println!("Metadata cache created."),
        "update" | "upgrade" | "check-update" => {
            println!("Dependencies resolved.\nNothing to do.\nComplete!")
        }
        "install" => {
            let mut todo: Vec<&Pkg> = Vec::new();
            let mut unknown = Vec::new();
            for n in names {
                let n = n.trim_end_matches(".x86_64").trim_end_matches(".noarch");
                match lookup(cfg.image, &have, n) {
                    Lookup::Unknown => unknown.push(n),
                    Lookup::Installed(p) => println!(
                        "Package {}-{}.x86_64 is already installed.",
                        p.name, p.version
                    ),
                    Lookup::New(p) => todo.push(p),
                }
            }
            if !unknown.is_empty() {
                for u in &unknown {
                    println!("No match for argument: {u}");
                }
                eprintln!("Error: Unable to find a match: {}", unknown.join(" "));
                return 1;
            }
            println!("Dependencies resolved.");
            if todo.is_empty() {
                println!("Nothing to do.\nComplete!");
                return 0;
            }
            let rule = "=".repeat(80);
            println!(
                "{rule}\n {:<22}{:<12}{:<36}{:<16}Size\n{rule}\nInstalling:",
                "Package", "Arch", "Version", "Repository"
            );
            for p in &todo {
                println!(
                    " {:<22}{:<12}{:<36}{:<16}{}",
                    p.name, "x86_64", p.version, "amazonlinux", p.size
                );
            }
            let plural = if todo.len() == 1 { "" } else { "s" };
            println!(
                "\nTransaction Summary\n{rule}\nInstall  {} Package{plural}\n",
                todo.len()
            );
            if !yes && !confirm("Is this ok [y/N]: ", false) {
                println!("Operation aborted.");
                return 1;
            }
            println!(
                "Downloading Packages:\nRunning transaction check\nTransaction check succeeded.\nRunning transaction test\nTransaction test succeeded.\nRunning transaction"
            );
            for (i, p) in todo.iter().enumerate() {
                println!(
                    "  Installing       : {}-{}.x86_64{:>20}",
                    p.name,
                    p.version,
                    format!("{}/{}", i + 1, todo.len())
                );
                install(cfg.image, p.name, &mut have);
            }
            println!("\nInstalled:");
            for p in &todo {
                println!("  {}-{}.x86_64", p.name, p.version);
            }
            println!("\nComplete!");
        }
        other => {
            eprintln!("No such command: {other}. Please use /usr/bin/dnf --help");
            return 1;
        }
    }
    0
}

/// `apt` and `apt-get`.
fn apt(cfg: &ToolConfig, tool: &str, args: &[String]) -> u8 {
    let yes = args
        .iter()
        .any(|a| a == "-y" || a == "--yes" || a == "-qy" || a == "-yq");
    let Some((cmd, names)) = command_words(args) else {
        println!("apt 2.7.14 (amd64)\nUsage: {tool} [options] command");
        return 1;
    };
    let names = &names[..];
    let archive = format!("http://{}.ec2.archive.ubuntu.com/ubuntu", cfg.region);
    let host = format!(
        "{}.ec2.archive.ubuntu.com:80 ({})",
        cfg.region,
        cfg.package_mirror
            .map(|m| m.ip().to_string())
            .unwrap_or_default()
    );
    if matches!(cmd, "install" | "update" | "upgrade" | "remove" | "purge") && !is_root() {
        eprintln!(
            "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)"
        );
        eprintln!(
            "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?"
        );
        return 100;
    }
    if tool == "apt" {
        eprintln!(
            "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n"
        );
    }
    let mut have = installed();
    match cmd {
        "update" | "upgrade" => {
            if reach_mirror(cfg).is_err() {
                println!(
                    "Err:1 {archive} noble InRelease\n  Could not connect to {host}, connection timed out\nReading package lists... Done"
                );
                eprintln!(
                    "W: Failed to fetch {archive}/dists/noble/InRelease  Could not connect to {host}, connection timed out"
                );
                eprintln!(
                    "W: Some index files failed to download. They have been ignored, or old ones used instead."
                );
            } else if cmd == "update" {
                println!(
                    "Hit:1 {archive} noble InRelease\nHit:2 {archive} noble-updates InRelease\nReading package lists... Done\nAll packages are up to date."
                );
            } else {
                println!(
                    "Reading package lists... Done\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded."
                );
            }
            0
        }
        "install" => {
            println!("Reading package lists... Done\nBuilding dependency tree... Done");
            let mut todo: Vec<&Pkg> = Vec::new();
            for n in names {
                match lookup(cfg.image, &have, n) {
                    Lookup::Unknown => {
                        eprintln!("E: Unable to locate package {n}");
                        return 100;
                    }
                    Lookup::Installed(p) => {
                        println!("{} is already the newest version ({}).", p.name, p.version)
                    }
                    Lookup::New(p) => todo.push(p),
                }
            }
            if todo.is_empty() {
                println!("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.");
                return 0;
            }
            let list: Vec<&str> = todo.iter().map(|p| p.name).collect();
            println!(
                "The following NEW packages will be installed:\n  {}",
                list.join(" ")
            );
            println!(
                "0 upgraded, {} newly installed, 0 to remove and 0 not upgraded.",
                todo.len()
            );
            if !yes && !confirm("Do you want to continue? [Y/n] ", true) {
                println!("Abort.");
                return 1;
            }
            if reach_mirror(cfg).is_err() {
                let p = todo[0];
                eprintln!(
                    "E: Failed to fetch {archive}/pool/main/{}/{}/{}_{}_amd64.deb  Could not connect to {host}, connection timed out",
                    &p.name[..1],
                    p.name,
                    p.name,
                    p.version
                );
                eprintln!(
                    "E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?"
                );
                return 100;
            }
            for (i, p) in todo.iter().enumerate() {
                println!(
                    "Get:{} {archive} noble/main amd64 {} amd64 {} [{}]",
                    i + 1,
                    p.name,
                    p.version,
                    p.size
                );
            }
            for p in &todo {
                println!(
                    "Selecting previously unselected package {}.\nUnpacking {} ({}) ...\nSetting up {} ({}) ...",
                    p.name, p.name, p.version, p.name, p.version
                );
                install(cfg.image, p.name, &mut have);
                // Debian's packages enable and start their services on install.
                if web_unit(cfg.image, p.name).is_some() {
                    enable_unit(p.name);
                    if let Err(e) = start_unit(cfg, p.name) {
                        eprintln!("Job for {}.service failed: {e}", p.name);
                    }
                }
            }
            0
        }
        "remove" | "purge" => {
            remove(&mut have, names);
            println!("Reading package lists... Done");
            0
        }
        "list" => {
            println!("Listing... Done");
            for p in installed_of(cfg.image, &have) {
                println!("{}/noble,now {} amd64 [installed]", p.name, p.version);
            }
            0
        }
        other => {
            eprintln!("E: Invalid operation {other}");
            100
        }
    }
}

/// Asks on the terminal; `default` when the answer is empty.
fn confirm(prompt: &str, default: bool) -> bool {
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    let a = line.trim();
    (a.is_empty() && default) || a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes")
}

/// Records the package and writes what it brings (web servers: their folders).
fn install(image: Image, pkg: &str, have: &mut Vec<String>) {
    have.push(pkg.to_string());
    set_installed(have);
    if let Some(web) = web_unit(image, pkg) {
        let _ = std::fs::create_dir_all(web.docroot);
        let _ = std::fs::create_dir_all(log_dir(image, pkg));
        if pkg == "nginx" {
            let index = Path::new(web.docroot).join("index.html");
            if !index.exists() {
                let _ = std::fs::write(index, NGINX_WELCOME);
            }
        }
    }
    if let Some(program) = missing_program(pkg) {
        eprintln!(
            "vpclab: {pkg} is recorded as installed, but this sandbox's host has no `{program}` to run"
        );
    }
}

const NGINX_WELCOME: &str = "<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and working.</p>\n</body>\n</html>\n";

fn log_dir(image: Image, unit: &str) -> PathBuf {
    let _ = image;
    PathBuf::from(format!("/var/log/{unit}"))
}

fn access_log(image: Image, unit: &str) -> PathBuf {
    let name = if image == Image::Ubuntu2404 || unit == "nginx" {
        "access.log"
    } else {
        "access_log"
    };
    log_dir(image, unit).join(name)
}

// ---------------------------------------------------------------------------------------
// systemd

fn pid_file(unit: &str) -> PathBuf {
    Path::new(UNIT_PIDS).join(format!("{unit}.pid"))
}

/// The pid of the unit's server while it runs.
pub(super) fn running_pid(unit: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(unit))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // A zombie is not running: read its state from /proc.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    (state != "Z").then_some(pid)
}

fn is_enabled(unit: &str) -> bool {
    Path::new(WANTS)
        .join(format!("{unit}.service"))
        .symlink_metadata()
        .is_ok()
}

fn enable_unit(unit: &str) -> String {
    let link = Path::new(WANTS).join(format!("{unit}.service"));
    let target = format!("/usr/lib/systemd/system/{unit}.service");
    let _ = std::fs::create_dir_all(WANTS);
    if link.symlink_metadata().is_err() {
        let _ = std::os::unix::fs::symlink(&target, &link);
        return format!("Created symlink {} → {target}.", link.display());
    }
    String::new()
}

/// Starts the unit's web server in the background and waits until it listens.
fn start_unit(cfg: &ToolConfig, unit: &str) -> Result<(), String> {
    if running_pid(unit).is_some() {
        return Ok(());
    }
    let _ = std::fs::create_dir_all(UNIT_PIDS);
    let log = log_dir(cfg.image, unit);
    let _ = std::fs::create_dir_all(&log);
    let errors = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(
            log.join(if cfg.image == Image::Ubuntu2404 || unit == "nginx" {
                "error.log"
            } else {
                "error_log"
            }),
        )
        .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(AGENT);
    cmd.args(["instance-tool", "web", unit])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(errors))
        .current_dir("/")
        // Its own process group: the login session's hang-up does not reach it.
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let pid = child.id();
    let _ = std::fs::write(pid_file(unit), format!("{pid}\n"));
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", 80)).is_ok() {
            // Left running: the sandbox's init reaps it once this process exits.
            drop(child);
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::fs::remove_file(pid_file(unit));
            return Err(format!("the server exited ({status})"));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(pid_file(unit));
            return Err("the server did not listen on port 80".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop_unit(unit: &str) {
    if let Some(pid) = running_pid(unit) {
        // systemd's default stop: SIGTERM to the main process.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        for _ in 0..50 {
            if running_pid(unit).is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_file(pid_file(unit));
}

/// The agent's boot: starts every enabled unit whose package is installed.
pub fn start_enabled(cfg: &ToolConfig) -> Vec<String> {
    let have = installed();
    let mut started = Vec::new();
    for unit in have.iter().filter(|u| web_unit(cfg.image, u).is_some()) {
        if is_enabled(unit) && start_unit(cfg, unit).is_ok() {
            started.push(unit.clone());
        }
    }
    started
}

/// `service UNIT ACTION`.
fn service(cfg: &ToolConfig, args: &[String]) -> u8 {
    let (Some(unit), Some(action)) = (args.first(), args.get(1)) else {
        eprintln!(
            "Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]"
        );
        return 1;
    };
    if cfg.image == Image::AmazonLinux2023 {
        eprintln!("Redirecting to /bin/systemctl {action} {unit}.service");
    }
    systemctl(cfg, &[action.clone(), unit.clone()])
}

/// `systemctl VERB UNIT…`.
fn systemctl(cfg: &ToolConfig, args: &[String]) -> u8 {
    let now = args.iter().any(|a| a == "--now");
    let words: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let Some(&action) = words.first() else {
        println!("  UNIT            LOAD   ACTIVE SUB     DESCRIPTION");
        for unit in installed().iter().filter(|u| running_pid(u).is_some()) {
            let what = web_unit(cfg.image, unit).map_or("", |w| w.description);
            println!(
                "  {:<16}loaded active running {what}",
                format!("{unit}.service")
            );
        }
        return 0;
    };
    if matches!(action, "daemon-reload" | "list-units") {
        return if action == "list-units" {
            systemctl(cfg, &[])
        } else {
            0
        };
    }
    let units: Vec<&str> = words[1..]
        .iter()
        .map(|u| u.trim_end_matches(".service"))
        .collect();
    if units.is_empty() {
        eprintln!("Too few arguments.");
        return 1;
    }
    let have = installed();
    let ssh = if cfg.image == Image::Ubuntu2404 {
        "ssh"
    } else {
        "sshd"
    };
    let mut code = 0;
    for unit in units {
        let builtin = unit == ssh;
        let web = web_unit(cfg.image, unit).filter(|_| have.iter().any(|h| h == unit));
        let exists = builtin || web.is_some();
        let changes = matches!(
            action,
            "start" | "stop" | "restart" | "reload" | "enable" | "disable"
        );
        if changes && !is_root() {
            eprintln!("Failed to {action} {unit}.service: Interactive authentication required.");
            code = 1;
            continue;
        }
        if !exists {
            match action {
                "is-active" => {
                    println!("inactive");
                    code = 3;
                }
                "is-enabled" => {
                    eprintln!(
                        "Failed to get unit file state for {unit}.service: No such file or directory"
                    );
                    code = 1;
                }
                "status" => {
                    eprintln!("Unit {unit}.service could not be found.");
                    code = 4;
                }
                "enable" | "disable" => {
                    eprintln!("Failed to {action} unit: Unit file {unit}.service does not exist.");
                    code = 1;
                }
                "stop" => {
                    eprintln!("Failed to stop {unit}.service: Unit {unit}.service not loaded.");
                    code = 5;
                }
                _ => {
                    eprintln!("Failed to {action} {unit}.service: Unit {unit}.service not found.");
                    code = 5;
                }
            }
            continue;
        }
        if builtin {
            // sshd is the agent itself: always running and enabled.
            match action {
                "is-active" => println!("active"),
                "is-enabled" => println!("enabled"),
                "status" => println!(
                    "● {unit}.service - OpenSSH server daemon\n     Loaded: loaded (/usr/lib/systemd/system/{unit}.service; enabled)\n     Active: active (running)"
                ),
                _ => {}
            }
            continue;
        }
        let start = |code: &mut u8| {
            if let Err(e) = start_unit(cfg, unit) {
                eprintln!(
                    "Job for {unit}.service failed because the control process exited with error code.\nSee \"systemctl status {unit}.service\" and \"journalctl -xeu {unit}.service\" for details."
                );
                let _ = writeln!(std::io::stderr(), "({e})");
                *code = 1;
            }
        };
        match action {
            "start" => start(&mut code),
            "restart" | "reload" => {
                stop_unit(unit);
                start(&mut code);
            }
            "stop" => stop_unit(unit),
            "enable" => {
                let said = enable_unit(unit);
                if !said.is_empty() {
                    eprintln!("{said}");
                }
                if now {
                    start(&mut code);
                }
            }
            "disable" => {
                let link = Path::new(WANTS).join(format!("{unit}.service"));
                if std::fs::remove_file(&link).is_ok() {
                    eprintln!("Removed \"{}\".", link.display());
                }
                if now {
                    stop_unit(unit);
                }
            }
            "is-active" => {
                if running_pid(unit).is_some() {
                    println!("active");
                } else {
                    println!("inactive");
                    code = 3;
                }
            }
            "is-enabled" => {
                if is_enabled(unit) {
                    println!("enabled");
                } else {
                    println!("disabled");
                    code = 1;
                }
            }
            "status" => {
                let desc = web.map_or("", |w| w.description);
                let enabled = if is_enabled(unit) {
                    "enabled"
                } else {
                    "disabled"
                };
                println!("● {unit}.service - {desc}");
                println!(
                    "     Loaded: loaded (/usr/lib/systemd/system/{unit}.service; {enabled}; preset: disabled)"
                );
                match running_pid(unit) {
                    Some(pid) => {
                        println!("     Active: active (running)\n   Main PID: {pid} ({unit})")
                    }
                    None => {
                        println!("     Active: inactive (dead)");
                        code = 3;
                    }
                }
            }
            other => {
                eprintln!("Unknown command verb '{other}'.");
                code = 1;
            }
        }
    }
    code
}

// ---------------------------------------------------------------------------------------
// The web server

/// `instance-tool web UNIT`: serves the unit's document root on port 80 until killed.
fn web(cfg: &ToolConfig, unit: &str) -> u8 {
    let Some(site) = web_unit(cfg.image, unit) else {
        eprintln!("{unit}: not a web server unit of this image");
        return 1;
    };
    let image = cfg.image;
    let unit = unit.to_string();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 1;
    };
    let result: std::io::Result<()> = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", 80)).await?;
        let log = access_log(image, &unit);
        let handler: http1::Handler = std::sync::Arc::new(move |req: &http1::Request| {
            answer(&unit, site.docroot, site.server, site.index, &log, req)
        });
        loop {
            let (stream, peer) = listener.accept().await?;
            tokio::spawn(http1::serve_connection(stream, peer, handler.clone()));
        }
    });
    if let Err(e) = result {
        eprintln!("(98){e}: AH00072: make_sock: could not bind to address 0.0.0.0:80");
    }
    1
}

/// One request: a file of the document root (or a folder's index), the server's own
/// error pages, and a line in the access log.
fn answer(
    unit: &str,
    docroot: &str,
    server: &str,
    index: &[&str],
    log: &Path,
    req: &http1::Request,
) -> http1::Response {
    let path = percent_encoding::percent_decode_str(req.path())
        .decode_utf8_lossy()
        .into_owned();
    let forbidden = |server: &str| {
        (
            403,
            "text/html; charset=iso-8859-1",
            error_html(
                server,
                403,
                "Forbidden",
                "You don't have permission to access this resource.",
            ),
        )
    };
    let (status, ctype, body) = if path.split('/').any(|part| part == "..") {
        forbidden(server)
    } else {
        let full = Path::new(docroot).join(path.trim_start_matches('/'));
        let file = if full.is_dir() {
            index.iter().map(|i| full.join(i)).find(|p| p.is_file())
        } else {
            Some(full.clone())
        };
        match file.map(|f| (std::fs::read(&f), f)) {
            Some((Ok(bytes), f)) => (200, content_type(&f.to_string_lossy()), bytes),
            Some((Err(e), _)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                forbidden(server)
            }
            // Amazon Linux's httpd answers an empty document root with its test page.
            None if unit == "httpd" && path == "/" => (
                403,
                "text/html; charset=UTF-8",
                b"<html><body><h1>It works!</h1></body></html>\n".to_vec(),
            ),
            None => forbidden(server),
            Some((Err(_), _)) => (
                404,
                "text/html; charset=iso-8859-1",
                error_html(
                    server,
                    404,
                    "Not Found",
                    "The requested URL was not found on this server.",
                ),
            ),
        }
    };
    let stamp = time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let line = format!(
        "{} - - [{stamp}] \"{} {} {}\" {status} {} \"-\" \"{}\"\n",
        req.peer.ip(),
        req.method,
        req.target,
        req.version,
        body.len(),
        req.header("user-agent").unwrap_or("-")
    );
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
    let mut resp = http1::Response::new(status, ctype, body);
    resp.headers
        .insert(0, ("Server".to_string(), server.to_string()));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_image_gets_its_own_package_manager() {
        let al: Vec<&str> = wrappers(Image::AmazonLinux2023)
            .iter()
            .map(|w| w.0)
            .collect();
        assert_eq!(al, ["dnf", "yum", "systemctl", "service"]);
        let (_, script) = &wrappers(Image::Ubuntu2404)[1];
        assert!(script.contains("exec /run/vpclab/agent instance-tool apt-get \"$@\""));
    }

    #[test]
    fn the_web_server_refuses_to_leave_its_document_root_and_logs_each_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_str().expect("utf-8");
        std::fs::write(dir.path().join("index.html"), "hi\n").expect("write");
        let req = |target: &str| http1::Request {
            method: "GET".into(),
            target: target.into(),
            version: "HTTP/1.1",
            headers: vec![],
            body: Default::default(),
            peer: "10.0.1.9:40000".parse().expect("addr"),
        };
        let site = web_unit(Image::AmazonLinux2023, "httpd").expect("httpd");
        let log = dir.path().join("access_log");
        let get = |t: &str| answer("httpd", root, site.server, site.index, &log, &req(t));
        let ok = get("/");
        assert_eq!((ok.status, ok.text().as_str()), (200, "hi\n"));
        assert_eq!(ok.header("server"), Some("Apache/2.4.62 (Amazon Linux)"));
        assert_eq!(get("/../etc/passwd").status, 403);
        assert_eq!(get("/%2e%2e/etc/passwd").status, 403);
        assert_eq!(get("/missing.html").status, 404);
        let logged = std::fs::read_to_string(&log).expect("the access log");
        assert_eq!(logged.lines().count(), 4, "{logged}");
        assert!(logged.starts_with("10.0.1.9 - - ["), "{logged}");
        assert!(
            logged.contains("\"GET /missing.html HTTP/1.1\" 404 "),
            "{logged}"
        );
    }
}
