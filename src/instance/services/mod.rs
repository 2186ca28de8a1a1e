//! Packages and services: what `dnf install httpd && systemctl start httpd` does inside
//! an instance.
//!
//! - [`catalog`] — the packages each image's mirror offers, the units and binaries they
//!   bring, the files they install;
//! - [`pkg`] — `dnf`/`yum`/`apt`/`apt-get`, which need a path to the package mirror;
//! - [`systemd`] — `systemctl` and `service`, starting and stopping units;
//! - [`web`] — the web servers a started unit runs on port 80.
//!
//! The shell reaches the commands through its command table (`shell::commands`); the
//! rest of the instance uses [`start_enabled`] at boot and [`listening`] for `ss`.

pub mod catalog;
pub mod pkg;
pub mod systemd;
pub mod web;

pub use catalog::installed_binary;
pub use pkg::{APT_TIMEOUT, DNF_TIMEOUT};
pub use systemd::listening;
pub(crate) use systemd::start_enabled;
