//! Booting an instance: the console log (what GetConsoleOutput shows), enabled services,
//! and user data on first boot.
//!
//! User data that starts with `#!` is run once, at first boot, as root, by the emulated
//! shell (as cloud-init's `scripts-user` module does); its output is appended to
//! `/var/log/cloud-init-output.log` and to the console. The console then prints the SSH
//! host key fingerprints between the markers cloud-init uses, which is how a careful
//! learner checks the fingerprint `ssh` shows on first connection.

use std::sync::Arc;

use super::InstanceState;
use super::image::Image;
use super::shell::{Io, Shell, Sink};
use super::vfs::Cred;

impl InstanceState {
    /// Boots the instance: writes the console log, starts enabled services, and runs the
    /// user data if this is the first boot. Returns when boot has finished (the caller
    /// marks the instance `running` before or after, as it prefers).
    pub async fn boot(self: &Arc<Self>) {
        let p = self.profile();
        let fqdn = p.local_hostname();
        let kernel = p.image.kernel_release();
        let mut console = String::new();
        console.push_str(&format!(
            "[    0.000000] Linux version {kernel} (mockbuild@ip-10-0-0-1) (gcc (GCC) 11.4.1) {}\n",
            p.image.kernel_version()
        ));
        console.push_str("[    0.000000] Command line: BOOT_IMAGE=(hd0,gpt1)/boot/vmlinuz root=UUID=2b1f6c0a console=tty0 console=ttyS0,115200n8 nvme_core.io_timeout=4294967295\n");
        console.push_str("[    0.412345] Hypervisor detected: KVM\n");
        console.push_str(&format!(
            "[    1.234567] systemd[1]: Set hostname to <{}>.\n",
            p.hostname()
        ));
        let ssh_unit = if p.image == Image::Ubuntu2404 {
            "ssh"
        } else {
            "sshd"
        };
        console.push_str(&format!(
            "[  OK  ] Started {ssh_unit}.service - OpenSSH server daemon.\n"
        ));
        {
            let mut disk = self.lock_disk();
            disk.console = console;
        }
        // systemd mounts /etc/fstab's filesystems before it starts services. A missing
        // device without `nofail` fails the mount; vpclab reports it on the console but
        // does not drop the instance into emergency mode as Amazon Linux would.
        for (message, nofail) in self.mount_fstab() {
            let dir = message.split(':').nth(1).unwrap_or("").trim().to_string();
            if !nofail {
                self.append_console(&format!(
                    "[FAILED] Failed to mount {dir}.\n[DEPEND] Dependency failed for local-fs.target - Local File Systems.\n{message}\n"
                ));
            }
        }
        super::services::start_enabled(self).await;
        let enabled = self.lock_disk().enabled.clone();
        for unit in enabled {
            self.append_console(&format!("[  OK  ] Started {unit}.service.\n"));
        }
        self.append_console(&format!(
            "cloud-init[1580]: Cloud-init v. 22.2.2 running 'modules:final' at {}. Up 9.87 seconds.\n",
            boot_stamp()
        ));
        let first = {
            let mut disk = self.lock_disk();
            let first = !disk.first_boot_done;
            // Marked before running, so a script that hangs is not re-run at next boot.
            disk.first_boot_done = true;
            first
        };
        if first && !p.user_data.is_empty() {
            let output = self.run_user_data(&p.user_data).await;
            for line in String::from_utf8_lossy(&output).lines() {
                self.append_console(&format!("cloud-init[1580]: {line}\n"));
            }
        }
        let key = self.host_key();
        let fp = key.fingerprint_sha256();
        let public = key.public_openssh();
        let mut tail = String::new();
        tail.push_str(
            "cloud-init[1580]: #############################################################\n",
        );
        tail.push_str("cloud-init[1580]: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n");
        tail.push_str(&format!(
            "cloud-init[1580]: 256 {fp} root@{fqdn} (ED25519)\n"
        ));
        tail.push_str("cloud-init[1580]: -----END SSH HOST KEY FINGERPRINTS-----\n");
        tail.push_str(
            "cloud-init[1580]: #############################################################\n",
        );
        tail.push_str("-----BEGIN SSH HOST KEY KEYS-----\n");
        tail.push_str(&format!("{public} root@{fqdn}\n"));
        tail.push_str("-----END SSH HOST KEY KEYS-----\n");
        tail.push_str(&format!(
            "cloud-init[1580]: Cloud-init v. 22.2.2 finished at {}. Datasource DataSourceEc2.  Up 12.34 seconds\n",
            boot_stamp()
        ));
        // The serial console's getty prompt comes last on a real instance; it names the
        // operating system, which is how GetConsoleOutput tells an image apart.
        tail.push_str(&format!(
            "\n{}\n\n{} login: \n",
            p.image.console_issue(&p.hostname()),
            p.hostname()
        ));
        self.append_console(&tail);
        let mut disk = self.lock_disk();
        disk.fs.install(
            "/etc/ssh/ssh_host_ed25519_key.pub",
            format!("{public} root@{fqdn}\n").as_bytes(),
            0o644,
            Cred::ROOT,
        );
    }

    /// Runs user data as root and returns what it printed.
    async fn run_user_data(self: &Arc<Self>, data: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(data).to_string();
        let mut log = Vec::new();
        if text.starts_with("#cloud-config") {
            log.extend_from_slice(
                b"vpclab: #cloud-config user data is not emulated; use a #!/bin/bash script\n",
            );
        } else if text.starts_with("#!") {
            let mut shell = Shell::new(self.clone(), "root");
            shell.cwd = "/".to_string();
            // bash writes stdout and stderr to the same log, interleaved as produced.
            // Only the console's tail is kept, so only so much of the output is held.
            let (tx, mut rx) = super::outq::out_queue(super::outq::OUTPUT_QUEUE_LIMIT);
            let mut io = Io {
                stdin: super::shell::Stdin::Empty,
                out: Sink::Stream {
                    tx: tx.clone(),
                    stderr: false,
                },
                err: Sink::Stream { tx, stderr: true },
                term: Default::default(),
            };
            let mut out = Vec::new();
            let keep = |out: &mut Vec<u8>, data: &[u8]| {
                out.extend_from_slice(data);
                if out.len() > 2 * super::CONSOLE_LIMIT {
                    out.drain(..out.len() - super::CONSOLE_LIMIT);
                }
            };
            let status = {
                let run = shell.run_script(&text, &mut io);
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        biased;
                        Some(chunk) = rx.recv() => keep(&mut out, &chunk.data),
                        status = &mut run => break status,
                    }
                }
            };
            drop(io);
            while let Some(chunk) = rx.try_recv() {
                keep(&mut out, &chunk.data);
            }
            log.extend_from_slice(&out);
            if status != 0 {
                log.extend_from_slice(
                    format!("{} - cc_scripts_user.py[WARNING]: Failed to run module scripts-user (scripts in /var/lib/cloud/instance/scripts)\n", boot_stamp()).as_bytes(),
                );
            }
        } else {
            log.extend_from_slice(b"vpclab: user data is not a #!/bin/bash script; ignored\n");
        }
        let mut disk = self.lock_disk();
        disk.fs
            .install_dir("/var/lib/cloud/instance", 0o755, Cred::ROOT);
        disk.fs.install(
            "/var/lib/cloud/instance/user-data.txt",
            data,
            0o600,
            Cred::ROOT,
        );
        let _ = disk.fs.write(
            "/var/log/cloud-init-output.log",
            &log,
            true,
            Cred::ROOT,
            0o644,
        );
        log
    }
}

fn boot_stamp() -> String {
    let now = time::OffsetDateTime::from_unix_timestamp(super::unix_now())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    now.format(&time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    ))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::instance::{FakeNet, InstanceProfile};

    /// Issue 10, item 5: `sleep nan` in user data used to panic inside the boot task, so
    /// the console never got its last lines (and the disk saver never started).
    #[tokio::test(start_paused = true)]
    async fn issue10_user_data_with_sleep_nan_still_finishes_the_boot() {
        let ip = Ipv4Addr::new(10, 0, 1, 5);
        let mut p = InstanceProfile::example(Image::AmazonLinux2023, ip);
        p.user_data = b"#!/bin/bash\nsleep nan\necho after-sleep\n".to_vec();
        let net = FakeNet::new(ip, 24, &p.mac);
        let inst = InstanceState::launch(p, net);
        inst.boot().await;
        let log = inst
            .disk()
            .fs
            .read("/var/log/cloud-init-output.log", Cred::ROOT)
            .map(|d| String::from_utf8_lossy(d).to_string())
            .expect("the user data log exists");
        assert!(
            log.contains("sleep: invalid time interval 'nan'\n"),
            "{log}"
        );
        assert!(log.contains("after-sleep\n"), "{log}");
        let console = inst.console_output();
        assert!(
            console.contains("Cloud-init v. 22.2.2 finished at"),
            "{console}"
        );
        assert!(console.contains("login: "), "{console}");
    }
}
