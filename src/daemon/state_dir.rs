//! `StateDir`: the one owner of the on-disk layout of a state directory. Everything else
//! is handed the paths it needs.
//!
//! ```text
//! <state dir>/
//!   state.db            SQLite: resources, commits, changes (model::store), and the
//!                       journal of lab progress (hash-chained events per learner)
//!   daemon.lock         held by the running daemon (one per directory)
//!   endpoint.json       where the running daemon listens (vpclab status, tools)
//!   access-keys.toml    the keys of --auth strict (mode 0600)
//!   report-key          the ed25519 key that signs lab reports (mode 0600)
//!   instances/<account>/<instance id>.db   one SQLite database per instance disk
//!   objects/<blob>      S3 object bytes, one file per version or part (metadata in
//!                       state.db; see api::s3::blob)
//!   dynamodb/<account>.db   DynamoDB tables and items (the dynoxide engine's SQLite)
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::store::StorePaths;

/// A state directory and the names of what it holds.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The default: the user's data directory + `vpclab` (e.g. `~/.local/share/vpclab`).
    pub fn default_location() -> anyhow::Result<StateDir> {
        dirs::data_dir()
            .map(|d| StateDir::new(d.join("vpclab")))
            .ok_or_else(|| anyhow::anyhow!("cannot find your data directory; pass --state-dir"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database and the daemon's lock file.
    pub fn store(&self) -> StorePaths {
        StorePaths {
            dir: self.root.clone(),
            db: self.root.join("state.db"),
            lock: self.root.join("daemon.lock"),
        }
    }

    /// Where `up` says where it listens.
    pub fn endpoint_file(&self) -> PathBuf {
        self.root.join("endpoint.json")
    }

    /// The access keys of `--auth strict`.
    pub fn keys_file(&self) -> PathBuf {
        self.root.join("access-keys.toml")
    }

    /// The ed25519 secret key that signs lab reports (hex; created on first use).
    pub fn report_key_file(&self) -> PathBuf {
        self.root.join("report-key")
    }

    /// vpclab's certificate authority: its certificate (PEM).
    pub fn ca_cert_file(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// The CA's private key (PEM, mode 0600).
    pub fn ca_key_file(&self) -> PathBuf {
        self.root.join("ca-key.pem")
    }

    /// The folder of instance disks (one sub-folder per account).
    pub fn instances_dir(&self) -> PathBuf {
        self.root.join("instances")
    }

    /// The folder of S3 object bytes.
    pub fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    /// The folder of the ECR registry's blobs and uploads.
    pub fn ecr_dir(&self) -> PathBuf {
        self.root.join("ecr")
    }

    /// Lambda: function zips (`zips/`) and the runtime's unpacked code (`run/`).
    pub fn lambda_dir(&self) -> PathBuf {
        self.root.join("lambda")
    }

    /// The folder of DynamoDB databases, one per account.
    pub fn dynamodb_dir(&self) -> PathBuf {
        self.root.join("dynamodb")
    }

    /// The running daemon's endpoints, if `endpoint.json` exists and parses.
    pub fn read_endpoint(&self) -> Option<EndpointInfo> {
        std::fs::read(self.endpoint_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }
}

/// What the daemon records in `endpoint.json` for `status` and other tools.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub api: String,
    pub dns: Option<String>,
    /// The browser proxy's address, when it runs.
    #[serde(default)]
    pub proxy: Option<String>,
    pub region: String,
    pub pid: u32,
    pub state_dir: PathBuf,
    /// The instance runtime and why it was chosen (absent in older files).
    #[serde(default)]
    pub runtime: Option<String>,
}
