//! The package managers: `dnf`/`yum` on Amazon Linux 2023, `apt`/`apt-get` on Ubuntu,
//! installing from the world's package mirror.
//!
//! The mirror contract: a package manager opens an HTTP connection to the profile's
//! `package_mirror` and sends `GET {prefix}/repodata/repomd.xml` (`/al2023/…` or
//! `/ubuntu/…`); any HTTP response means the mirror is reachable. Which packages exist
//! is decided by [`super::catalog`], so the mirror only has to answer. Without a path to
//! it the connection times out and the tool fails the way the real one does.

use std::time::Duration;

use super::catalog::{AL_PKGS, UBUNTU_PKGS, install_files, web_unit};
use super::systemd::{start_unit, stop_unit_wait};
use crate::http1;
use crate::instance::image::Image;
use crate::instance::shell::{Io, Shell};

/// How long dnf waits for the mirror (its `timeout` option, 30 s).
pub const DNF_TIMEOUT: Duration = Duration::from_secs(30);
/// How long apt waits to connect (its `Acquire::http::Timeout`, 30 s here too).
pub const APT_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks the mirror for its repository metadata; `Err` when it cannot be reached.
async fn reach_mirror(sh: &Shell, timeout: Duration) -> Result<(), std::io::Error> {
    let p = sh.inst.profile();
    let mirror = p.package_mirror;
    let stream = sh.inst.net().tcp_connect(mirror, timeout).await?;
    let path = format!("{}/repodata/repomd.xml", p.image.mirror_prefix());
    let agent = match p.image {
        Image::AmazonLinux2023 => "libdnf (Amazon Linux 2023; generic; Linux.x86_64)",
        Image::Ubuntu2404 => "Debian APT-HTTP/1.3 (2.7.14)",
    };
    let headers = [("User-Agent".to_string(), agent.to_string())];
    let host = mirror.ip().to_string();
    tokio::time::timeout(
        timeout,
        http1::request(stream, "GET", &host, &path, &headers, b""),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(())
}

/// `dnf` and `yum` (Amazon Linux 2023).
pub(crate) async fn dnf(sh: &mut Shell, _name: &str, args: &[String], io: &mut Io) -> i32 {
    let yes = args.iter().any(|a| a == "-y" || a == "--assumeyes");
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(cmd) = words.first().map(|s| s.as_str()) else {
        io.err.line("usage: dnf [options] COMMAND");
        return 1;
    };
    let pkgs: Vec<String> = words[1..].iter().map(|s| s.to_string()).collect();
    let installed = sh.inst.lock_disk().packages.clone();
    let p = sh.inst.profile();
    if matches!(
        cmd,
        "install" | "update" | "upgrade" | "remove" | "erase" | "makecache"
    ) && sh.user != "root"
    {
        io.err.line("Error: This command has to be run with superuser privileges (under the root user on most systems).");
        return 1;
    }
    if cmd == "list" && words.get(1).is_some_and(|w| w.as_str() == "installed") {
        io.out.line("Installed Packages");
        for name in &installed {
            if let Some(pkg) = AL_PKGS.iter().find(|k| k.name == name) {
                io.out.line(&format!(
                    "{:<40}{:<35}@amazonlinux",
                    format!("{}.x86_64", pkg.name),
                    pkg.version
                ));
            }
        }
        return 0;
    }
    if matches!(cmd, "remove" | "erase") {
        let mut removed = false;
        {
            let mut disk = sh.inst.lock_disk();
            for name in &pkgs {
                removed |= disk.packages.remove(name);
            }
        }
        for name in &pkgs {
            stop_unit_wait(&sh.inst, name).await;
        }
        io.out.line(if removed {
            "Complete!"
        } else {
            "No packages marked for removal.\nDependencies resolved.\nNothing to do.\nComplete!"
        });
        return 0;
    }
    // Everything else needs repository metadata from the mirror.
    if !quiet {
        io.out
            .print(&format!("{:<64}", "Amazon Linux 2023 repository"));
    }
    if let Err(e) = reach_mirror(sh, DNF_TIMEOUT).await {
        if !quiet {
            io.out.line("0.0  B/s |   0  B     00:30    ");
        }
        let mirror = format!(
            "https://al2023-repos-{}-de612dc2.s3.dualstack.{}.amazonaws.com/core/mirrors/2023.6.20241111/x86_64/mirror.list",
            p.region, p.region
        );
        io.err
            .line("Errors during downloading metadata for repository 'amazonlinux':");
        let detail = if e.kind() == std::io::ErrorKind::TimedOut {
            "Curl error (28): Timeout was reached for {m} [Connection timed out after 30000 milliseconds]".to_string()
        } else {
            "Curl error (7): Couldn't connect to server for {m} [Failed to connect: Connection refused]".to_string()
        };
        io.err
            .line(&format!("  - {}", detail.replace("{m}", &mirror)));
        io.err.line("Error: Failed to download metadata for repo 'amazonlinux': Cannot download repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried");
        return 1;
    }
    if !quiet {
        io.out.line(" 42 MB/s |  29 MB     00:00    ");
    }
    match cmd {
        "makecache" => {
            io.out.line("Metadata cache created.");
            0
        }
        "update" | "upgrade" | "check-update" => {
            io.out.line("Dependencies resolved.");
            io.out.line("Nothing to do.");
            io.out.line("Complete!");
            0
        }
        "install" => {
            let mut unknown = Vec::new();
            let mut todo = Vec::new();
            for name in &pkgs {
                let name = name.trim_end_matches(".x86_64").trim_end_matches(".noarch");
                match AL_PKGS.iter().find(|k| k.name == name) {
                    None => unknown.push(name.to_string()),
                    Some(pkg) if installed.contains(pkg.name) => {
                        io.out.line(&format!(
                            "Package {}-{}.x86_64 is already installed.",
                            pkg.name, pkg.version
                        ));
                    }
                    Some(pkg) => todo.push(pkg),
                }
            }
            if !unknown.is_empty() {
                for u in &unknown {
                    io.out.line(&format!("No match for argument: {u}"));
                }
                io.err.line(&format!(
                    "Error: Unable to find a match: {}",
                    unknown.join(" ")
                ));
                return 1;
            }
            io.out.line("Dependencies resolved.");
            if todo.is_empty() {
                io.out.line("Nothing to do.");
                io.out.line("Complete!");
                return 0;
            }
            io.out.line(&"=".repeat(80));
            io.out.line(&format!(
                " {:<22}{:<12}{:<36}{:<16}{}",
                "Package", "Arch", "Version", "Repository", "Size"
            ));
            io.out.line(&"=".repeat(80));
            io.out.line("Installing:");
            for pkg in &todo {
                io.out.line(&format!(
                    " {:<22}{:<12}{:<36}{:<16}{}",
                    pkg.name, "x86_64", pkg.version, "amazonlinux", pkg.size
                ));
            }
            io.out.line("");
            io.out.line("Transaction Summary");
            io.out.line(&"=".repeat(80));
            io.out.line(&format!(
                "Install  {} Package{}",
                todo.len(),
                if todo.len() == 1 { "" } else { "s" }
            ));
            io.out.line("");
            if !yes {
                io.out.print("Is this ok [y/N]: ");
                let answer = io.stdin.read_line().await.unwrap_or_default();
                if !answer.trim().eq_ignore_ascii_case("y")
                    && !answer.trim().eq_ignore_ascii_case("yes")
                {
                    io.out.line("Operation aborted.");
                    return 1;
                }
            }
            io.out.line("Downloading Packages:");
            io.out.line("Running transaction check");
            io.out.line("Transaction check succeeded.");
            io.out.line("Running transaction test");
            io.out.line("Transaction test succeeded.");
            io.out.line("Running transaction");
            for (i, pkg) in todo.iter().enumerate() {
                io.out.line(&format!(
                    "  Installing       : {}-{}.x86_64{:>20}",
                    pkg.name,
                    pkg.version,
                    format!("{}/{}", i + 1, todo.len())
                ));
                install_files(&sh.inst, Image::AmazonLinux2023, pkg.name);
            }
            io.out.line("");
            io.out.line("Installed:");
            for pkg in &todo {
                io.out
                    .line(&format!("  {}-{}.x86_64", pkg.name, pkg.version));
            }
            io.out.line("");
            io.out.line("Complete!");
            0
        }
        other => {
            io.err.line(&format!(
                "No such command: {other}. Please use /usr/bin/dnf --help"
            ));
            1
        }
    }
}

/// `apt` and `apt-get` (Ubuntu).
pub(crate) async fn apt(sh: &mut Shell, tool: &str, args: &[String], io: &mut Io) -> i32 {
    let yes = args
        .iter()
        .any(|a| a == "-y" || a == "--yes" || a == "-qy" || a == "-yq");
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(cmd) = words.first().map(|s| s.as_str()) else {
        io.out
            .line("apt 2.7.14 (amd64)\nUsage: apt [options] command");
        return 1;
    };
    let pkgs: Vec<String> = words[1..].iter().map(|s| s.to_string()).collect();
    let p = sh.inst.profile();
    let archive = format!("http://{}.ec2.archive.ubuntu.com/ubuntu", p.region);
    if matches!(cmd, "install" | "update" | "upgrade" | "remove" | "purge") && sh.user != "root" {
        if cmd == "update" {
            io.err.line("Reading package lists... Done");
            io.err.line("E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)");
            io.err
                .line("E: Unable to lock directory /var/lib/apt/lists/");
        } else {
            io.err.line("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)");
            io.err.line("E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?");
        }
        return 100;
    }
    if tool == "apt" {
        io.err.line("");
        io.err.line(
            "WARNING: apt does not have a stable CLI interface. Use with caution in scripts.",
        );
        io.err.line("");
    }
    let installed = sh.inst.lock_disk().packages.clone();
    match cmd {
        "update" | "upgrade" => match reach_mirror(sh, APT_TIMEOUT).await {
            Ok(()) => {
                if cmd == "update" {
                    io.out.line(&format!("Hit:1 {archive} noble InRelease"));
                    io.out
                        .line(&format!("Hit:2 {archive} noble-updates InRelease"));
                    io.out
                        .line(&format!("Hit:3 {archive} noble-backports InRelease"));
                    io.out
                        .line("Hit:4 http://security.ubuntu.com/ubuntu noble-security InRelease");
                    io.out.line("Reading package lists... Done");
                    io.out.line("Building dependency tree... Done");
                    io.out.line("Reading state information... Done");
                    io.out.line("All packages are up to date.");
                } else {
                    io.out.line("Reading package lists... Done");
                    io.out.line("Building dependency tree... Done");
                    io.out.line("Calculating upgrade... Done");
                    io.out
                        .line("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.");
                }
                0
            }
            Err(_) => {
                io.out.line(&format!("Ign:1 {archive} noble InRelease"));
                io.out.line(&format!("Err:1 {archive} noble InRelease"));
                io.out.line(&format!("  Could not connect to {}.ec2.archive.ubuntu.com:80 ({}), connection timed out", p.region, p.package_mirror.ip()));
                io.out.line("Reading package lists... Done");
                io.err.line(&format!("W: Failed to fetch {archive}/dists/noble/InRelease  Could not connect to {}.ec2.archive.ubuntu.com:80 ({}), connection timed out", p.region, p.package_mirror.ip()));
                io.err.line("W: Some index files failed to download. They have been ignored, or old ones used instead.");
                0
            }
        },
        "install" => {
            io.out.line("Reading package lists... Done");
            io.out.line("Building dependency tree... Done");
            io.out.line("Reading state information... Done");
            let mut todo = Vec::new();
            for name in &pkgs {
                match UBUNTU_PKGS.iter().find(|k| k.name == name) {
                    None => {
                        io.err.line(&format!("E: Unable to locate package {name}"));
                        return 100;
                    }
                    Some(pkg) if installed.contains(pkg.name) => {
                        io.out.line(&format!(
                            "{} is already the newest version ({}).",
                            pkg.name, pkg.version
                        ));
                    }
                    Some(pkg) => todo.push(pkg),
                }
            }
            if todo.is_empty() {
                io.out
                    .line("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.");
                return 0;
            }
            io.out.line("The following NEW packages will be installed:");
            io.out.line(&format!(
                "  {}",
                todo.iter().map(|k| k.name).collect::<Vec<_>>().join(" ")
            ));
            io.out.line(&format!(
                "0 upgraded, {} newly installed, 0 to remove and 0 not upgraded.",
                todo.len()
            ));
            if !yes {
                io.out.print("Do you want to continue? [Y/n] ");
                let answer = io.stdin.read_line().await.unwrap_or_default();
                let a = answer.trim();
                if !(a.is_empty() || a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes")) {
                    io.out.line("Abort.");
                    return 1;
                }
            }
            for (i, pkg) in todo.iter().enumerate() {
                if reach_mirror(sh, APT_TIMEOUT).await.is_err() {
                    io.out.line(&format!(
                        "Ign:{} {archive} noble/main amd64 {} amd64 {}",
                        i + 1,
                        pkg.name,
                        pkg.version
                    ));
                    io.err.line(&format!(
                        "E: Failed to fetch {archive}/pool/main/{}/{}/{}_{}_amd64.deb  Could not connect to {}.ec2.archive.ubuntu.com:80 ({}), connection timed out",
                        &pkg.name[..1], pkg.name, pkg.name, pkg.version, p.region, p.package_mirror.ip()
                    ));
                    io.err.line("E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?");
                    return 100;
                }
                io.out.line(&format!(
                    "Get:{} {archive} noble/main amd64 {} amd64 {} [{}]",
                    i + 1,
                    pkg.name,
                    pkg.version,
                    pkg.size
                ));
            }
            for pkg in &todo {
                io.out.line(&format!(
                    "Selecting previously unselected package {}.",
                    pkg.name
                ));
                io.out
                    .line(&format!("Unpacking {} ({}) ...", pkg.name, pkg.version));
                io.out
                    .line(&format!("Setting up {} ({}) ...", pkg.name, pkg.version));
                install_files(&sh.inst, Image::Ubuntu2404, pkg.name);
                // Debian packages start and enable their services on install.
                if web_unit(Image::Ubuntu2404, pkg.name).is_some() {
                    sh.inst.lock_disk().enabled.insert(pkg.name.to_string());
                    if let Err(e) = start_unit(&sh.inst, pkg.name).await {
                        io.err
                            .line(&format!("Job for {}.service failed: {e}", pkg.name));
                    }
                }
            }
            0
        }
        "remove" | "purge" => {
            for name in &pkgs {
                sh.inst.lock_disk().packages.remove(name);
                stop_unit_wait(&sh.inst, name).await;
            }
            io.out.line("Reading package lists... Done");
            0
        }
        "list" => {
            io.out.line("Listing... Done");
            for name in &installed {
                if let Some(pkg) = UBUNTU_PKGS.iter().find(|k| k.name == name) {
                    io.out.line(&format!(
                        "{}/noble,now {} amd64 [installed]",
                        pkg.name, pkg.version
                    ));
                }
            }
            0
        }
        other => {
            io.err.line(&format!("E: Invalid operation {other}"));
            100
        }
    }
}
