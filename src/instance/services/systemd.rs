//! systemd as a learner meets it: `systemctl` (start, stop, restart, enable, disable,
//! status, is-active, is-enabled) and the `service` wrapper, over the instance's units.
//!
//! Units are the built-in ones (sshd/ssh, chronyd, systemd-resolved), always active, and
//! the web servers of installed packages ([`super::catalog`]); starting a web unit runs
//! its server ([`super::web`]) as a task of the instance. Which units are enabled is part
//! of the disk, so they start again at boot ([`start_enabled`]).

use std::sync::Arc;

use super::catalog::web_unit;
use crate::instance::InstanceState;
use crate::instance::image::Image;
use crate::instance::shell::{Io, Shell};

/// TCP ports the instance's services listen on, by unit.
pub fn listening(inst: &InstanceState) -> Vec<(String, u16)> {
    let rt = inst.lock_runtime();
    rt.running
        .iter()
        .filter(|(_, task)| !task.is_finished())
        .map(|(unit, _)| (unit.clone(), 80))
        .collect()
}

/// Whether `unit` has a running server task.
pub(super) fn is_running(inst: &InstanceState, unit: &str) -> bool {
    inst.lock_runtime()
        .running
        .get(unit)
        .is_some_and(|t| !t.is_finished())
}

/// `service httpd start`: the SysV wrapper, which hands over to `systemctl start httpd`.
pub(crate) async fn service(sh: &mut Shell, _name: &str, args: &[String], io: &mut Io) -> i32 {
    let image = sh.inst.profile().image;
    let (Some(unit), Some(action)) = (args.first(), args.get(1)) else {
        io.err.line("Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]");
        return 1;
    };
    if image == Image::AmazonLinux2023 {
        io.err.line(&format!(
            "Redirecting to /bin/systemctl {action} {unit}.service"
        ));
    }
    systemctl(sh, "systemctl", &[action.clone(), unit.clone()], io).await
}

/// `systemctl VERB UNIT…`.
pub(crate) async fn systemctl(sh: &mut Shell, _name: &str, args: &[String], io: &mut Io) -> i32 {
    let image = sh.inst.profile().image;
    let now_flag = args.iter().any(|a| a == "--now");
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(action) = words.first().map(|s| s.as_str()) else {
        io.out
            .line("  UNIT                               LOAD   ACTIVE SUB     DESCRIPTION");
        io.out.line(
            "  sshd.service                       loaded active running OpenSSH server daemon",
        );
        return 0;
    };
    let units: Vec<String> = words[1..]
        .iter()
        .map(|u| u.trim_end_matches(".service").to_string())
        .collect();
    if units.is_empty() && !matches!(action, "daemon-reload" | "list-units") {
        io.err.line("Too few arguments.");
        return 1;
    }
    let installed = sh.inst.lock_disk().packages.clone();
    let ssh_unit = if image == Image::Ubuntu2404 {
        "ssh"
    } else {
        "sshd"
    };
    let mut status = 0;
    for unit in units {
        let builtin = unit == ssh_unit || unit == "chronyd" || unit == "systemd-resolved";
        let web = web_unit(image, &unit).filter(|_| installed.contains(&unit));
        let exists = builtin || web.is_some();
        let needs_root = matches!(
            action,
            "start" | "stop" | "restart" | "reload" | "enable" | "disable"
        );
        if needs_root && sh.user != "root" {
            let verb = action;
            io.err.line(&format!(
                "Failed to {verb} {unit}.service: Interactive authentication required."
            ));
            if matches!(action, "start" | "restart") {
                io.err.line(&format!(
                    "See system logs and 'systemctl status {unit}.service' for details."
                ));
            }
            status = 1;
            continue;
        }
        match action {
            "start" | "restart" | "reload" => {
                if !exists {
                    io.err.line(&format!(
                        "Failed to {action} {unit}.service: Unit {unit}.service not found."
                    ));
                    status = 5;
                    continue;
                }
                if builtin {
                    continue;
                }
                if action != "start" {
                    stop_unit_wait(&sh.inst, &unit).await;
                }
                if let Err(e) = start_unit(&sh.inst, &unit).await {
                    io.err.line(&format!(
                        "Job for {unit}.service failed because the control process exited with error code.\nSee \"systemctl status {unit}.service\" and \"journalctl -xeu {unit}.service\" for details."
                    ));
                    tracing::debug!("{unit}: {e}");
                    status = 1;
                }
            }
            "stop" => {
                if !exists {
                    io.err.line(&format!(
                        "Failed to stop {unit}.service: Unit {unit}.service not loaded."
                    ));
                    status = 5;
                    continue;
                }
                stop_unit_wait(&sh.inst, &unit).await;
            }
            "enable" | "disable" => {
                if !exists {
                    io.err.line(&format!(
                        "Failed to {action} unit: Unit file {unit}.service does not exist."
                    ));
                    status = 1;
                    continue;
                }
                let path = format!("/etc/systemd/system/multi-user.target.wants/{unit}.service");
                let lib = format!("/usr/lib/systemd/system/{unit}.service");
                if action == "enable" {
                    if sh.inst.lock_disk().enabled.insert(unit.clone()) {
                        io.err.line(&format!("Created symlink {path} → {lib}."));
                    }
                    if now_flag
                        && web.is_some()
                        && !is_running(&sh.inst, &unit)
                        && start_unit(&sh.inst, &unit).await.is_err()
                    {
                        status = 1;
                    }
                } else {
                    if sh.inst.lock_disk().enabled.remove(&unit) {
                        io.err.line(&format!("Removed \"{path}\"."));
                    }
                    if now_flag {
                        stop_unit_wait(&sh.inst, &unit).await;
                    }
                }
            }
            "is-active" => {
                let active = builtin || is_running(&sh.inst, &unit);
                io.out.line(if active { "active" } else { "inactive" });
                if !active {
                    status = 3;
                }
            }
            "is-enabled" => {
                let enabled = builtin || sh.inst.lock_disk().enabled.contains(&unit);
                if !exists {
                    io.err.line(&format!("Failed to get unit file state for {unit}.service: No such file or directory"));
                    status = 1;
                } else {
                    io.out.line(if enabled { "enabled" } else { "disabled" });
                    if !enabled {
                        status = 1;
                    }
                }
            }
            "status" => {
                if !exists {
                    io.err
                        .line(&format!("Unit {unit}.service could not be found."));
                    status = 4;
                    continue;
                }
                let active = builtin || is_running(&sh.inst, &unit);
                let enabled = builtin || sh.inst.lock_disk().enabled.contains(&unit);
                let desc = web
                    .as_ref()
                    .map_or("OpenSSH server daemon", |w| w.description);
                let dot = if active { "●" } else { "○" };
                io.out.line(&format!("{dot} {unit}.service - {desc}"));
                io.out.line(&format!(
                    "     Loaded: loaded (/usr/lib/systemd/system/{unit}.service; {}; preset: disabled)",
                    if enabled { "enabled" } else { "disabled" }
                ));
                if active {
                    io.out.line("     Active: active (running)");
                    if web.is_some() {
                        io.out
                            .line("     Status: \"Started, listening on: port 80\"");
                    }
                } else {
                    io.out.line("     Active: inactive (dead)");
                    status = 3;
                }
            }
            "daemon-reload" | "list-units" => {}
            other => {
                io.err.line(&format!("Unknown command verb '{other}'."));
                return 1;
            }
        }
    }
    status
}

/// Starts a web server unit: listen on port 80 and serve its document root.
pub(crate) async fn start_unit(inst: &Arc<InstanceState>, unit: &str) -> std::io::Result<()> {
    if is_running(inst, unit) {
        return Ok(());
    }
    let image = inst.profile().image;
    let Some(_) = web_unit(image, unit) else {
        return Ok(());
    };
    let listener = inst.net().tcp_listen(80).await?;
    let weak = Arc::downgrade(inst);
    let unit_name = unit.to_string();
    let task = tokio::spawn(super::web::accept_loop(listener, weak, unit_name));
    inst.lock_runtime().running.insert(unit.to_string(), task);
    Ok(())
}

fn stop_unit(inst: &InstanceState, unit: &str) -> Option<tokio::task::JoinHandle<()>> {
    let task = inst.lock_runtime().running.remove(unit)?;
    task.abort();
    Some(task)
}

/// Stops a unit and waits until its listener is gone, so the port can be reused at once.
pub(super) async fn stop_unit_wait(inst: &InstanceState, unit: &str) {
    if let Some(task) = stop_unit(inst, unit) {
        // The task was aborted: awaiting it returns once it is dropped (Err = cancelled).
        let _ = task.await;
    }
}

/// Starts the enabled services (at boot).
pub(crate) async fn start_enabled(inst: &Arc<InstanceState>) {
    let enabled = inst.lock_disk().enabled.clone();
    for unit in enabled {
        if let Err(e) = start_unit(inst, &unit).await {
            tracing::warn!(unit, "could not start at boot: {e}");
        }
    }
}
