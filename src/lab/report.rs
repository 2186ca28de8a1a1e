//! Signed lab reports: what a learner hands in and an instructor re-grades.
//!
//! A report is JSON: `{"format", "body", "public_key", "signature"}`. The body carries
//! the learner, the lab, its version and the learner's seed, every progress event of the
//! learner (the whole hash chain, from the first event), and the final state: the stored
//! rows of the learner's world (`kind`, `id` and the resource as JSON), enough to rebuild
//! it, and what the learner changed inside each running instance (files, packages,
//! services; [`crate::instance::overlay`]) with its SHA-256, within
//! [`INSTANCE_CONTENT_LIMIT`] bytes of files (what is left out is named in
//! `instance_notes`). The signature is ed25519 over the body's JSON bytes, with the key of the state
//! directory (`StateDir::report_key_file`, created on first use) or a course's key.
//!
//! [`open`] is the instructor's side: it refuses a report whose signature does not
//! verify (any changed byte), one signed by a key the instructor does not trust, and one
//! whose events do not form an unbroken hash chain, each with the reason.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::progress::{self, Event};
use crate::instance::overlay::DiskOverlay;

/// The format tag of reports this build writes and reads.
pub const FORMAT: &str = "vpclab-lab-report/1";

/// What a report says (the signed part).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportBody {
    pub learner: String,
    pub lab: String,
    pub version: u32,
    pub seed: u64,
    pub region: String,
    /// The account whose world the rows are.
    pub account: String,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Every progress event of the learner, oldest first (the hash chain).
    pub events: Vec<Event>,
    /// The learner's world as stored when the report was made.
    pub state: Vec<StateRow>,
    /// Time per step when the report was made ([`super::timing`]); `vpclab grade`
    /// recomputes it from the events, which the hash chain protects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_times: Vec<super::timing::StepTime>,
    /// What the learner changed inside each running instance (files, packages,
    /// services), compared with its image; absent from reports of older vpclab.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceRow>,
    /// Instance state the report does not carry, one sentence each (files over the
    /// size limit, a sandbox whose agent could not be read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_notes: Vec<String>,
}

/// The most file content the instances of one report carry together. Files beyond it
/// are listed (path and size) but not carried; see docs/fidelity.md.
pub const INSTANCE_CONTENT_LIMIT: u64 = 4 * 1024 * 1024;

/// One running instance's changes, with their SHA-256 ([`DiskOverlay::digest`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstanceRow {
    pub instance_id: String,
    pub sha256: String,
    pub disk: DiskOverlay,
}

impl InstanceRow {
    pub fn new(instance_id: &str, disk: DiskOverlay) -> InstanceRow {
        InstanceRow {
            instance_id: instance_id.to_string(),
            sha256: disk.digest(),
            disk,
        }
    }
}

/// The instance rows of a report from each running instance's overlay, sharing
/// [`INSTANCE_CONTENT_LIMIT`] in instance order, and a note for each instance whose
/// files did not all fit.
pub fn instance_rows(
    instances: &[(String, std::sync::Arc<crate::instance::InstanceState>)],
) -> (Vec<InstanceRow>, Vec<String>) {
    rows_of(
        instances
            .iter()
            .map(|(id, state)| (id.clone(), move |left| state.overlay(left)))
            .collect(),
    )
}

/// [`instance_rows`] for overlays made by `make(bytes left)`, one per instance in order
/// (a sandbox's, from what its agent read).
pub fn rows_of<F: FnOnce(u64) -> DiskOverlay>(
    instances: Vec<(String, F)>,
) -> (Vec<InstanceRow>, Vec<String>) {
    let mut left = INSTANCE_CONTENT_LIMIT;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (id, make) in instances {
        let overlay = make(left);
        left = left.saturating_sub(overlay.content_bytes());
        if !overlay.omitted.is_empty() {
            let bytes: u64 = overlay.omitted.iter().map(|f| f.bytes).sum();
            notes.push(format!(
                "instance {id}: {} changed file(s), {bytes} bytes, left out (the report carries at most {} MiB of instance files): {}",
                overlay.omitted.len(),
                INSTANCE_CONTENT_LIMIT >> 20,
                overlay
                    .omitted
                    .iter()
                    .take(5)
                    .map(|f| f.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rows.push(InstanceRow::new(&id, overlay));
    }
    (rows, notes)
}

/// One stored resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateRow {
    pub kind: String,
    pub id: String,
    pub body: serde_json::Value,
}

/// A report as written to the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub format: String,
    pub body: serde_json::Value,
    /// The ed25519 public key that signed it (hex).
    pub public_key: String,
    /// The ed25519 signature of the body's JSON bytes (hex).
    pub signature: String,
}

/// Why a report is refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("not a vpclab lab report: {0}")]
    NotAReport(String),
    #[error("a report of format {0:?}; this vpclab reads {FORMAT:?}")]
    Format(String),
    #[error("the signature does not verify: the report was changed after it was signed")]
    Signature,
    #[error("signed by key {0}, which is not one you trust (--trust)")]
    Untrusted(String),
    #[error("the event log does not verify: {0}")]
    Chain(progress::LogError),
    #[error("the report is inconsistent: {0}")]
    Inconsistent(String),
}

/// The key in `path` (hex of the 32-byte secret), created with mode 0600 if missing.
pub fn load_or_create_key(path: &Path) -> std::io::Result<SigningKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(&text).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: expected 64 hex digits (an ed25519 secret key)",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = create_private(path)?;
            f.write_all(format!("{}\n", hex::encode(secret)).as_bytes())?;
            Ok(SigningKey::from_bytes(&secret))
        }
        Err(e) => Err(e),
    }
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn parse_key(text: &str) -> Option<SigningKey> {
    let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    Some(SigningKey::from_bytes(&bytes))
}

/// A public key given as 64 hex digits, or the public key of a secret key file.
pub fn trusted_key(text_or_file: &str) -> Result<VerifyingKey, String> {
    let from_hex = |t: &str| -> Option<VerifyingKey> {
        let bytes: [u8; 32] = hex::decode(t.trim()).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok()
    };
    if let Some(k) = from_hex(text_or_file) {
        return Ok(k);
    }
    let text = std::fs::read_to_string(text_or_file).map_err(|e| {
        format!("{text_or_file}: not a public key (64 hex digits) nor a key file: {e}")
    })?;
    parse_key(&text)
        .map(|k| k.verifying_key())
        .ok_or_else(|| format!("{text_or_file}: expected 64 hex digits"))
}

/// Signs `body` with `key`.
pub fn sign(body: &ReportBody, key: &SigningKey) -> Result<Report, serde_json::Error> {
    sign_value(serde_json::to_value(body)?, key)
}

/// Signs a body already in JSON form (what an instructor's tooling, or a test, re-signs).
pub fn sign_value(body: serde_json::Value, key: &SigningKey) -> Result<Report, serde_json::Error> {
    let bytes = serde_json::to_vec(&body)?;
    Ok(Report {
        format: FORMAT.to_string(),
        body,
        public_key: hex::encode(key.verifying_key().to_bytes()),
        signature: hex::encode(key.sign(&bytes).to_bytes()),
    })
}

/// Reads and checks a report: its format, its signature (by a `trusted` key when that
/// list is not empty), the hash chain of its events, and that the events are the
/// learner's.
pub fn open(text: &str, trusted: &[VerifyingKey]) -> Result<ReportBody, ReportError> {
    let report: Report =
        serde_json::from_str(text).map_err(|e| ReportError::NotAReport(e.to_string()))?;
    if report.format != FORMAT {
        return Err(ReportError::Format(report.format));
    }
    let key: [u8; 32] = hex::decode(&report.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(ReportError::Signature)?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| ReportError::Signature)?;
    let sig: [u8; 64] = hex::decode(&report.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(ReportError::Signature)?;
    let bytes =
        serde_json::to_vec(&report.body).map_err(|e| ReportError::NotAReport(e.to_string()))?;
    key.verify_strict(&bytes, &Signature::from_bytes(&sig))
        .map_err(|_| ReportError::Signature)?;
    if !trusted.is_empty() && !trusted.contains(&key) {
        return Err(ReportError::Untrusted(report.public_key));
    }
    let body: ReportBody =
        serde_json::from_value(report.body).map_err(|e| ReportError::NotAReport(e.to_string()))?;
    progress::verify(&body.events).map_err(ReportError::Chain)?;
    if let Some(row) = body.instances.iter().find(|r| r.disk.digest() != r.sha256) {
        return Err(ReportError::Inconsistent(format!(
            "the state of instance {} does not match its SHA-256",
            row.instance_id
        )));
    }
    if let Some(e) = body.events.iter().find(|e| e.learner != body.learner) {
        return Err(ReportError::Inconsistent(format!(
            "event {} is learner {:?}'s, the report is {:?}'s",
            e.seq, e.learner, body.learner
        )));
    }
    match progress::current(&body.events) {
        Some(a) if a.lab == body.lab => Ok(body),
        Some(a) => Err(ReportError::Inconsistent(format!(
            "the last lab started is {:?}, the report is for {:?}",
            a.lab, body.lab
        ))),
        None => Err(ReportError::Inconsistent(format!(
            "no attempt of {:?} in the events",
            body.lab
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::progress::{EventKind, GENESIS};

    /// A chain of a start and a check, hashed as the log hashes them.
    fn body() -> ReportBody {
        let d = tempfile::tempdir().expect("tempdir");
        let paths = crate::model::store::StorePaths::scratch(d.path());
        let control = std::sync::Arc::new(std::sync::Mutex::new(
            crate::model::Control::open(&paths).expect("open"),
        ));
        let log = progress::Log::new(control, "ann");
        log.append(
            1,
            "ann",
            "x",
            EventKind::Start,
            None,
            serde_json::json!({"dir": "/x"}),
        )
        .expect("append");
        log.append(
            2,
            "ann",
            "x",
            EventKind::Check,
            Some("a"),
            serde_json::json!({"results": [{"id": "c", "status": "pass", "points": 1}]}),
        )
        .expect("append");
        let events = log.read().expect("read");
        assert_eq!(events[0].prev, GENESIS);
        ReportBody {
            learner: "ann".into(),
            lab: "x".into(),
            version: 1,
            seed: 7,
            region: "us-east-1".into(),
            account: "000000000000".into(),
            created_ms: 3,
            events,
            state: vec![StateRow {
                kind: "vpc".into(),
                id: "vpc-1".into(),
                body: serde_json::json!({"id": "vpc-1"}),
            }],
            step_times: Vec::new(),
            instances: vec![InstanceRow::new(
                "i-1",
                DiskOverlay {
                    first_boot_done: true,
                    ..DiskOverlay::default()
                },
            )],
            instance_notes: Vec::new(),
        }
    }

    #[test]
    fn a_signed_report_opens_and_any_change_is_refused_with_the_reason() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let b = body();
        let text = serde_json::to_string(&sign(&b, &key).expect("sign")).expect("json");
        assert_eq!(open(&text, &[]).expect("opens"), b);
        assert!(open(&text, &[key.verifying_key()]).is_ok());
        // One byte of the body changed: the signature fails.
        let flipped = text.replacen("vpc-1", "vpc-2", 1);
        assert!(matches!(open(&flipped, &[]), Err(ReportError::Signature)));
        // Signed by another key than the trusted one.
        let other = SigningKey::from_bytes(&[9; 32]);
        let e = open(&text, &[other.verifying_key()]).expect_err("untrusted");
        assert!(e.to_string().contains("not one you trust"), "{e}");
        // Events edited and re-signed: the signature holds, the chain does not.
        let mut v = serde_json::to_value(&b).expect("value");
        v["events"][1]["detail"]["results"][0]["status"] = "fail".into();
        let resigned = serde_json::to_string(&sign_value(v, &key).expect("sign")).expect("json");
        let e = open(&resigned, &[]).expect_err("chain");
        assert_eq!(
            e.to_string(),
            "the event log does not verify: event 1 breaks the hash chain (the log was edited)"
        );
        // An instance's state edited and re-signed without its hash: inconsistent.
        let mut v = serde_json::to_value(&b).expect("value");
        v["instances"][0]["disk"]["packages"] = serde_json::json!(["httpd"]);
        let resigned = serde_json::to_string(&sign_value(v, &key).expect("sign")).expect("json");
        let e = open(&resigned, &[]).expect_err("digest");
        assert_eq!(
            e.to_string(),
            "the report is inconsistent: the state of instance i-1 does not match its SHA-256"
        );
        assert!(matches!(
            open("{\"format\": 1}", &[]),
            Err(ReportError::NotAReport(_))
        ));
    }

    #[test]
    fn the_key_is_created_once_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("report-key");
        let a = load_or_create_key(&path).expect("create");
        let b = load_or_create_key(&path).expect("read");
        assert_eq!(a.to_bytes(), b.to_bytes());
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            trusted_key(&hex::encode(a.verifying_key().to_bytes())).expect("hex"),
            a.verifying_key()
        );
        assert_eq!(
            trusted_key(&path.to_string_lossy()).expect("file"),
            a.verifying_key()
        );
    }
}
