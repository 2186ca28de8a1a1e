//! Key-pair material with AWS's exact formats and fingerprints.
//!
//! `CreateKeyPair` hands the learner a private key once and keeps only the public part;
//! `ImportKeyPair` takes a public key the learner made with `ssh-keygen`. This module
//! produces and parses that material:
//!
//! - RSA 2048 private keys as PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), the format
//!   AWS returns by default and OpenSSH reads directly (`ssh -i key.pem`).
//! - ED25519 private keys in OpenSSH's own format (`-----BEGIN OPENSSH PRIVATE KEY-----`).
//! - The OpenSSH public key line of either (`ssh-rsa AAAA…`, `ssh-ed25519 AAAA…`), which
//!   the instance runtime compares with what an SSH client presents.
//! - AWS's fingerprints, which differ by how the key came to be (AWS EC2 User Guide,
//!   "Verify the fingerprint of your key pair"):
//!   - created RSA: SHA-1 of the PKCS#8 DER encoding of the private key, colon hex;
//!   - imported RSA: MD5 of the DER `SubjectPublicKeyInfo` of the public key, colon hex;
//!   - ED25519, created or imported: SHA-256 of the SSH public key blob, base64 with
//!     padding and without OpenSSH's `SHA256:` prefix.
//!
//! It leaves ids, names, persistence and the API to the model and API layers, and SSH
//! authentication itself to the instance runtime (which can call [`parse_openssh_public_key`]
//! on the stored line). Randomness is an argument, so tests can seed it.

use std::convert::Infallible;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::Md5;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use rsa::traits::PublicKeyParts as _;
use russh::keys::ssh_key::{self, public::KeyData};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// The RSA modulus size AWS uses for keys it creates.
pub const RSA_BITS: usize = 2048;

/// The smallest and largest RSA keys `ImportKeyPair` accepts. AWS documents 1024, 2048 and
/// 4096; anything between is accepted here too, because OpenSSH can use it.
pub const RSA_IMPORT_MIN_BITS: u32 = 1024;
/// See [`RSA_IMPORT_MIN_BITS`].
pub const RSA_IMPORT_MAX_BITS: u32 = 4096;

/// The two key types AWS issues and imports (`KeyType` in the API: `rsa`, `ed25519`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyType {
    /// RSA (`ssh-rsa`).
    Rsa,
    /// Ed25519 (`ssh-ed25519`).
    Ed25519,
}

impl KeyType {
    /// The API spelling (`rsa`, `ed25519`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        }
    }

    /// Parses the API spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<KeyType> {
        match s {
            "rsa" => Some(KeyType::Rsa),
            "ed25519" => Some(KeyType::Ed25519),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong making or reading key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The imported material is not a public key in a format AWS accepts.
    #[error("Key is not in valid OpenSSH public key format: {0}")]
    Format(String),
    /// A well-formed key of a type AWS does not import (ECDSA, DSA, security keys …).
    #[error("Unsupported key type {0}: only ssh-rsa and ssh-ed25519 keys can be imported")]
    UnsupportedType(String),
    /// An RSA key whose size AWS does not accept.
    #[error(
        "RSA key length {0} is not supported: use a key of {RSA_IMPORT_MIN_BITS} to {RSA_IMPORT_MAX_BITS} bits"
    )]
    RsaSize(u32),
    /// The user uploaded a private key where a public key belongs.
    #[error(
        "Key is not in valid OpenSSH public key format: this is a private key; import the public key (the .pub file) instead"
    )]
    PrivateKeyGiven,
    /// Generating or encoding a key failed (an internal fault, not user input).
    #[error("key generation failed: {0}")]
    Internal(String),
}

/// A freshly created key pair: the private key is returned to the user once.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedKey {
    /// `rsa` or `ed25519`.
    pub key_type: KeyType,
    /// The private key as AWS returns it in `KeyMaterial`: PKCS#1 PEM for RSA (no trailing
    /// newline; the CLI's text output adds one), OpenSSH format for ED25519 (ending in a
    /// newline, without which OpenSSH refuses the file).
    pub private_key: String,
    /// The OpenSSH public key line without a comment (`ssh-rsa AAAA…`), exactly what
    /// `ssh-keygen -y -f key.pem` prints.
    pub public_key: String,
    /// AWS's `KeyFingerprint` for a created key.
    pub fingerprint: String,
}

impl std::fmt::Debug for CreatedKey {
    // The private key never goes to logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key_type", &self.key_type)
            .field("public_key", &self.public_key)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// A public key accepted by `ImportKeyPair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedKey {
    /// `rsa` or `ed25519`.
    pub key_type: KeyType,
    /// The OpenSSH public key line without a comment.
    pub public_key: String,
    /// The comment of the imported line (often `user@host`), empty when there was none.
    pub comment: String,
    /// AWS's `KeyFingerprint` for an imported key.
    pub fingerprint: String,
    /// Key size in bits (256 for ED25519).
    pub bits: u32,
}

/// Adapts a `rand` 0.9 generator (the workspace's) to the `rand_core` 0.10 traits that
/// `rsa` and `ssh-key` ask for, so callers pass one kind of RNG everywhere.
struct Rng10<'a, R: ?Sized>(&'a mut R);

impl<R: rand::CryptoRng + ?Sized> rsa::rand_core::TryRng for Rng10<'_, R> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl<R: rand::CryptoRng + ?Sized> rsa::rand_core::TryCryptoRng for Rng10<'_, R> {}

/// Creates a key pair of the given type (what `CreateKeyPair --key-type` does).
pub fn generate<R: rand::CryptoRng + ?Sized>(
    key_type: KeyType,
    rng: &mut R,
) -> Result<CreatedKey, KeyError> {
    match key_type {
        KeyType::Rsa => generate_rsa(rng),
        KeyType::Ed25519 => generate_ed25519(rng),
    }
}

/// Creates an RSA 2048 key: PKCS#1 PEM private key, fingerprint = SHA-1 of its PKCS#8 DER.
pub fn generate_rsa<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Result<CreatedKey, KeyError> {
    let private = rsa::RsaPrivateKey::new(&mut Rng10(rng), RSA_BITS)
        .map_err(|e| KeyError::Internal(format!("RSA generation: {e}")))?;
    rsa_created_key(&private)
}

/// Builds the [`CreatedKey`] view of an existing RSA private key (used by generation and
/// by tests that need a fixed key).
pub fn rsa_created_key(private: &rsa::RsaPrivateKey) -> Result<CreatedKey, KeyError> {
    let pkcs1 = private
        .to_pkcs1_der()
        .map_err(|e| KeyError::Internal(format!("PKCS#1 encoding: {e}")))?;
    let pkcs8 = private
        .to_pkcs8_der()
        .map_err(|e| KeyError::Internal(format!("PKCS#8 encoding: {e}")))?;
    let public = rsa_public_line(&private.to_public_key())?;
    Ok(CreatedKey {
        key_type: KeyType::Rsa,
        private_key: pem_armor("RSA PRIVATE KEY", pkcs1.as_bytes()),
        public_key: public,
        fingerprint: colon_hex(&Sha1::digest(pkcs8.as_bytes())),
    })
}

/// Creates an ED25519 key: OpenSSH-format private key, fingerprint = SHA-256 of the SSH
/// public key blob in padded base64.
pub fn generate_ed25519<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Result<CreatedKey, KeyError> {
    let keypair = ssh_key::private::Ed25519Keypair::random(&mut Rng10(rng));
    let private = ssh_key::PrivateKey::from(keypair);
    let pem = private
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| KeyError::Internal(format!("OpenSSH encoding: {e}")))?;
    let key_data = private.public_key().key_data();
    Ok(CreatedKey {
        key_type: KeyType::Ed25519,
        // OpenSSH cannot load this format without its final newline ("error in
        // libcrypto"), so unlike the RSA PEM the material keeps it.
        private_key: pem.to_string(),
        public_key: openssh_line(key_data)?,
        fingerprint: ed25519_fingerprint(key_data)?,
    })
}

/// How many RSA keys [`pooled_rsa`] keeps ready.
const RSA_POOL_SIZE: usize = 2;

struct RsaPool {
    keys: std::sync::Mutex<Vec<CreatedKey>>,
    wanted: std::sync::Condvar,
}

fn rsa_pool() -> &'static RsaPool {
    static POOL: std::sync::OnceLock<&'static RsaPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let pool: &'static RsaPool = Box::leak(Box::new(RsaPool {
            keys: std::sync::Mutex::new(Vec::new()),
            wanted: std::sync::Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("vpclab-rsa-pool".into())
            .spawn(move || refill_forever(pool));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no RSA pre-generation thread; keys are made on demand");
        }
        pool
    })
}

fn refill_forever(pool: &'static RsaPool) {
    let mut rng = rand::rng();
    loop {
        {
            let mut keys = pool.keys.lock().unwrap_or_else(|e| e.into_inner());
            while keys.len() >= RSA_POOL_SIZE {
                keys = pool.wanted.wait(keys).unwrap_or_else(|e| e.into_inner());
            }
        }
        // Generate outside the lock: a caller that finds the pool empty makes its own.
        match generate_rsa(&mut rng) {
            Ok(k) => pool.keys.lock().unwrap_or_else(|e| e.into_inner()).push(k),
            Err(e) => {
                tracing::warn!(error = %e, "RSA pre-generation failed; stopping the pool");
                return;
            }
        }
    }
}

/// An RSA 2048 key from OS randomness, taken from a small pool that a background thread
/// keeps filled, so `CreateKeyPair` answers in microseconds instead of the 50–200 ms an
/// RSA generation takes (the API serialises requests, so a slow one delays every other).
/// Falls back to generating on the spot when the pool is empty.
pub fn pooled_rsa() -> Result<CreatedKey, KeyError> {
    let pool = rsa_pool();
    let taken = pool.keys.lock().unwrap_or_else(|e| e.into_inner()).pop();
    pool.wanted.notify_one();
    match taken {
        Some(k) => Ok(k),
        None => generate_rsa(&mut rand::rng()),
    }
}

/// Starts the RSA pool's background generation (the daemon may call this at start-up so
/// the first CreateKeyPair is fast too).
pub fn warm_rsa_pool() {
    rsa_pool().wanted.notify_one();
}

/// Converts created key material to PuTTY's format (`CreateKeyPair --key-format ppk`):
/// a version 3 `.ppk` file, unencrypted, whose MAC is HMAC-SHA-256 with an empty key over
/// the algorithm, encryption, comment, public blob and private blob (PuTTY's
/// `sshpubk.c` rules). The fingerprint does not change with the file format.
pub fn to_ppk(key: &CreatedKey, comment: &str) -> Result<String, KeyError> {
    use hmac::{Hmac, Mac as _};
    let internal =
        |what: &str, e: &dyn std::fmt::Display| KeyError::Internal(format!("{what}: {e}"));
    let (algorithm, public_blob, private_blob) = match key.key_type {
        KeyType::Rsa => {
            let der = pem_body(key.private_key.trim(), "RSA PRIVATE KEY")?;
            let rsa_key =
                <rsa::RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_der(&der)
                    .map_err(|e| internal("PKCS#1 decoding", &e))?;
            let pair = ssh_key::private::RsaKeypair::try_from(&rsa_key)
                .map_err(|e| internal("SSH RSA conversion", &e))?;
            let public = ssh_key::public::KeyData::Rsa(pair.public().clone());
            let mut private = Vec::new();
            // PuTTY's RSA private blob: d, p, q, iqmp (q⁻¹ mod p), each an SSH mpint.
            for m in [
                pair.private().d(),
                pair.private().p(),
                pair.private().q(),
                pair.private().iqmp(),
            ] {
                put_string(&mut private, m.as_bytes());
            }
            ("ssh-rsa", public, private)
        }
        KeyType::Ed25519 => {
            let parsed = ssh_key::PrivateKey::from_openssh(&key.private_key)
                .map_err(|e| internal("OpenSSH decoding", &e))?;
            let pair = parsed
                .key_data()
                .ed25519()
                .ok_or_else(|| KeyError::Internal("not an Ed25519 key".into()))?;
            // PuTTY stores the 32-byte seed as an unsigned little-endian integer, without
            // its most significant zero bytes.
            let seed = pair.private.to_bytes();
            let used = seed.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            let mut private = Vec::new();
            put_string(&mut private, &seed[..used]);
            (
                "ssh-ed25519",
                parsed.public_key().key_data().clone(),
                private,
            )
        }
    };
    let public_blob = {
        use ssh_key::encoding::Encode as _;
        public_blob
            .encode_vec()
            .map_err(|e| internal("SSH blob encoding", &e))?
    };
    let mut mac_input = Vec::new();
    for field in [
        algorithm.as_bytes(),
        b"none",
        comment.as_bytes(),
        &public_blob,
        &private_blob,
    ] {
        put_string(&mut mac_input, field);
    }
    let mut mac =
        <Hmac<Sha256> as hmac::Mac>::new_from_slice(&[]).map_err(|e| internal("HMAC", &e))?;
    mac.update(&mac_input);
    let mac = hex::encode(mac.finalize().into_bytes());
    let lines = |blob: &[u8]| -> Vec<String> {
        BASE64
            .encode(blob)
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    };
    let public_lines = lines(&public_blob);
    let private_lines = lines(&private_blob);
    let mut out = format!(
        "PuTTY-User-Key-File-3: {algorithm}\nEncryption: none\nComment: {comment}\nPublic-Lines: {}\n",
        public_lines.len()
    );
    for l in &public_lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&format!("Private-Lines: {}\n", private_lines.len()));
    for l in &private_lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&format!("Private-MAC: {mac}\n"));
    Ok(out)
}

/// SSH `string`: a 32-bit big-endian length, then the bytes (RFC 4251 §5).
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Decodes `ImportKeyPair`'s `PublicKeyMaterial`. The API carries it base64-encoded (the
/// CLI encodes `fileb://key.pub`); a value that is already a key in text form (some tools
/// send the file as is) is accepted too.
pub fn decode_public_key_material(material: &str) -> Result<ImportedKey, KeyError> {
    let trimmed = material.trim();
    if trimmed.is_empty() {
        return Err(KeyError::Format("the public key material is empty".into()));
    }
    if looks_like_text_key(trimmed) {
        return parse_public_key(trimmed.as_bytes());
    }
    let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = BASE64
        .decode(compact.as_bytes())
        .map_err(|_| KeyError::Format("the public key material is not valid base64".into()))?;
    parse_public_key(&bytes)
}

/// Parses a public key file's contents: an OpenSSH line (`ssh-rsa AAAA… comment`), an
/// RFC 4716 block (`---- BEGIN SSH2 PUBLIC KEY ----`), a PEM `PUBLIC KEY` /
/// `RSA PUBLIC KEY`, or bare DER — the formats AWS documents for `ImportKeyPair`.
pub fn parse_public_key(bytes: &[u8]) -> Result<ImportedKey, KeyError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.trim(),
        // Binary input can only be DER.
        Err(_) => return import_spki_der(bytes),
    };
    if text.contains("PRIVATE KEY") {
        return Err(KeyError::PrivateKeyGiven);
    }
    if text.starts_with("---- BEGIN SSH2 PUBLIC KEY ----") {
        return parse_rfc4716(text);
    }
    if text.starts_with("-----BEGIN PUBLIC KEY-----") {
        let der = pem_body(text, "PUBLIC KEY")?;
        return import_spki_der(&der);
    }
    if text.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        let der = pem_body(text, "RSA PUBLIC KEY")?;
        let key = <rsa::RsaPublicKey as rsa::pkcs1::DecodeRsaPublicKey>::from_pkcs1_der(&der)
            .map_err(|e| KeyError::Format(format!("bad PKCS#1 RSA public key: {e}")))?;
        return import_rsa(&key, String::new());
    }
    if let Some(first) = text.split_whitespace().next()
        && (first.starts_with("ssh-")
            || first.starts_with("ecdsa-")
            || first.starts_with("sk-")
            || first.contains("@openssh.com"))
    {
        return parse_openssh_line(text);
    }
    // Base64 DER without armor ("Base64 encoded DER format" in AWS's list).
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    match BASE64.decode(compact.as_bytes()) {
        Ok(der) => import_spki_der(&der),
        Err(_) => Err(KeyError::Format(
            "expected a line like `ssh-ed25519 AAAA… comment` or `ssh-rsa AAAA… comment`".into(),
        )),
    }
}

/// Parses an OpenSSH public key line into `ssh-key`'s type, for the SSH server to compare
/// with the key a client presents (`key_data()` equality).
pub fn parse_openssh_public_key(line: &str) -> Result<ssh_key::PublicKey, KeyError> {
    ssh_key::PublicKey::from_openssh(line.trim())
        .map_err(|e| KeyError::Format(format!("cannot parse `{}`: {e}", abbreviate(line))))
}

/// AWS's fingerprint of a stored public key line when the key was imported (MD5 of the
/// SPKI DER for RSA, padded base64 SHA-256 of the blob for ED25519).
pub fn imported_fingerprint(line: &str) -> Result<String, KeyError> {
    parse_openssh_line(line).map(|k| k.fingerprint)
}

fn looks_like_text_key(s: &str) -> bool {
    s.starts_with("ssh-")
        || s.starts_with("ecdsa-")
        || s.starts_with("sk-")
        || s.starts_with("-----BEGIN")
        || s.starts_with("---- BEGIN")
}

fn parse_openssh_line(text: &str) -> Result<ImportedKey, KeyError> {
    // A .pub file has one line; take the first non-empty one and ignore the rest.
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| KeyError::Format("no key line found".into()))?;
    let mut parts = line.split_whitespace();
    let algorithm = parts.next().unwrap_or_default();
    if parts.next().is_none() {
        return Err(KeyError::Format(format!(
            "`{algorithm}` is followed by no base64 key data"
        )));
    }
    if algorithm != "ssh-rsa" && algorithm != "ssh-ed25519" {
        return Err(KeyError::UnsupportedType(algorithm.to_owned()));
    }
    let key = ssh_key::PublicKey::from_openssh(line).map_err(|e| {
        KeyError::Format(format!(
            "the base64 data of `{}` does not decode to an {algorithm} key ({e})",
            abbreviate(line)
        ))
    })?;
    import_key_data(key.key_data(), key.comment().as_str_lossy().to_owned())
}

fn parse_rfc4716(text: &str) -> Result<ImportedKey, KeyError> {
    let mut body = String::new();
    let mut comment = String::new();
    let mut continuing = false;
    let mut in_block = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with("---- BEGIN SSH2 PUBLIC KEY ----") {
            in_block = true;
            continue;
        }
        if line.starts_with("---- END SSH2 PUBLIC KEY ----") {
            break;
        }
        if !in_block {
            continue;
        }
        // RFC 4716 §3.3: a header is `Tag: value`, and a line ending in `\` continues.
        if continuing || line.contains(':') {
            if let Some(value) = line.strip_prefix("Comment:") {
                comment = value.trim().trim_matches('"').to_owned();
            }
            continuing = line.ends_with('\\');
            continue;
        }
        body.push_str(line);
    }
    let blob = BASE64
        .decode(body.as_bytes())
        .map_err(|_| KeyError::Format("the SSH2 public key block is not valid base64".into()))?;
    let key = ssh_key::PublicKey::from_bytes(&blob)
        .map_err(|e| KeyError::Format(format!("the SSH2 public key block is malformed ({e})")))?;
    import_key_data(key.key_data(), comment)
}

fn import_key_data(key_data: &KeyData, comment: String) -> Result<ImportedKey, KeyError> {
    match key_data {
        KeyData::Rsa(public) => {
            let key = rsa::RsaPublicKey::try_from(public)
                .map_err(|e| KeyError::Format(format!("invalid RSA public key ({e})")))?;
            import_rsa(&key, comment)
        }
        KeyData::Ed25519(_) => Ok(ImportedKey {
            key_type: KeyType::Ed25519,
            public_key: openssh_line(key_data)?,
            comment,
            fingerprint: ed25519_fingerprint(key_data)?,
            bits: 256,
        }),
        other => Err(KeyError::UnsupportedType(
            other.algorithm().as_str().to_owned(),
        )),
    }
}

fn import_spki_der(der: &[u8]) -> Result<ImportedKey, KeyError> {
    let key = rsa::RsaPublicKey::from_public_key_der(der).map_err(|e| {
        KeyError::Format(format!(
            "not an OpenSSH public key line, and not a DER RSA public key either ({e})"
        ))
    })?;
    import_rsa(&key, String::new())
}

fn import_rsa(key: &rsa::RsaPublicKey, comment: String) -> Result<ImportedKey, KeyError> {
    let bits = key.n().bit_width();
    if !(RSA_IMPORT_MIN_BITS..=RSA_IMPORT_MAX_BITS).contains(&bits) {
        return Err(KeyError::RsaSize(bits));
    }
    let spki = key
        .to_public_key_der()
        .map_err(|e| KeyError::Internal(format!("SPKI encoding: {e}")))?;
    Ok(ImportedKey {
        key_type: KeyType::Rsa,
        public_key: rsa_public_line(key)?,
        comment,
        fingerprint: colon_hex(&Md5::digest(spki.as_bytes())),
        bits,
    })
}

fn rsa_public_line(key: &rsa::RsaPublicKey) -> Result<String, KeyError> {
    let public = ssh_key::public::RsaPublicKey::try_from(key)
        .map_err(|e| KeyError::Internal(format!("SSH RSA encoding: {e}")))?;
    openssh_line(&KeyData::Rsa(public))
}

fn openssh_line(key_data: &KeyData) -> Result<String, KeyError> {
    ssh_key::PublicKey::new(key_data.clone(), "")
        .to_openssh()
        .map(|s| s.trim_end().to_owned())
        .map_err(|e| KeyError::Internal(format!("OpenSSH public encoding: {e}")))
}

fn ed25519_fingerprint(key_data: &KeyData) -> Result<String, KeyError> {
    use ssh_key::encoding::Encode as _;
    let blob = key_data
        .encode_vec()
        .map_err(|e| KeyError::Internal(format!("SSH blob encoding: {e}")))?;
    Ok(BASE64.encode(Sha256::digest(&blob)))
}

/// Lowercase hex bytes joined by colons (`1f:51:ae:…`), AWS's RSA fingerprint style.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 7468 textual encoding: base64 in 64-character lines between BEGIN/END labels.
fn pem_armor(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so any chunk boundary is a char boundary.
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----"));
    out
}

fn pem_body(text: &str, label: &str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let inner = text
        .strip_prefix(&begin)
        .and_then(|rest| rest.split(&end).next())
        .ok_or_else(|| KeyError::Format(format!("unterminated {label} PEM block")))?;
    let compact: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    BASE64
        .decode(compact.as_bytes())
        .map_err(|_| KeyError::Format(format!("the {label} PEM block is not valid base64")))
}

fn abbreviate(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;
    use std::process::Command;

    fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(seed)
    }

    fn have(tool: &str) -> bool {
        Command::new(tool).arg("-h").output().is_ok()
    }

    /// Writes `contents` to a fresh file with mode 0600 (OpenSSH refuses looser modes).
    fn write_key(dir: &tempfile::TempDir, name: &str, contents: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write key file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod key file");
        path
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd.output().expect("spawn tool");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn sh(script: &str) -> String {
        run(Command::new("sh").arg("-c").arg(script))
            .trim()
            .to_owned()
    }

    #[test]
    fn created_rsa_key_is_pkcs1_pem_of_2048_bits() {
        let key = generate_rsa(&mut rng(1)).expect("generate");
        assert!(
            key.private_key
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\nMII")
        );
        assert!(key.private_key.ends_with("-----END RSA PRIVATE KEY-----"));
        // PEM lines are 64 characters (RFC 7468), the last one may be shorter.
        let body: Vec<&str> = key.private_key.lines().collect();
        assert!(body[1..body.len() - 2].iter().all(|l| l.len() == 64));
        assert!(
            key.public_key
                .starts_with("ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB")
        );
        let parsed = parse_openssh_public_key(&key.public_key).expect("parse");
        let rsa_pub = parsed.key_data().rsa().expect("rsa key data");
        assert_eq!(rsa_pub.key_size(), 2048);
        // 20 bytes of SHA-1 → 20 hex pairs.
        assert_eq!(key.fingerprint.split(':').count(), 20);
        assert!(key.fingerprint.split(':').all(|p| {
            p.len() == 2
                && p.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        }));
    }

    #[test]
    fn openssh_reads_created_rsa_pem_and_derives_the_same_public_key() {
        if !have("ssh-keygen") {
            eprintln!("skipped: ssh-keygen not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let key = generate_rsa(&mut rng(2)).expect("generate");
        // The CLI's `--output text` adds a newline; AWS's KeyMaterial has none. Both load.
        for (name, contents) in [
            ("plain.pem", key.private_key.clone()),
            ("newline.pem", format!("{}\n", key.private_key)),
        ] {
            let path = write_key(&dir, name, &contents);
            let out = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&path));
            assert_eq!(out.trim(), key.public_key, "{name}");
        }
    }

    #[test]
    fn openssh_reads_created_ed25519_key_and_derives_the_same_public_key() {
        if !have("ssh-keygen") {
            eprintln!("skipped: ssh-keygen not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let key = generate_ed25519(&mut rng(3)).expect("generate");
        assert!(
            key.private_key
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert!(
            key.private_key
                .ends_with("-----END OPENSSH PRIVATE KEY-----\n")
        );
        // As boto3 writes it, and as `--output text` prints it (one more newline).
        for (name, contents) in [
            ("plain.pem", key.private_key.clone()),
            ("newline.pem", format!("{}\n", key.private_key)),
        ] {
            let path = write_key(&dir, name, &contents);
            let out = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&path));
            assert_eq!(out.trim(), key.public_key, "{name}");
        }
    }

    #[test]
    fn created_rsa_fingerprint_is_sha1_of_pkcs8_der_as_openssl_computes_it() {
        if !have("openssl") {
            eprintln!("skipped: openssl not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let key = generate_rsa(&mut rng(4)).expect("generate");
        let path = write_key(&dir, "k.pem", &key.private_key);
        // The command AWS's documentation gives for verifying a created key's fingerprint.
        let out = sh(&format!(
            "openssl pkcs8 -in {} -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c",
            path.display()
        ));
        let digest = out.rsplit(' ').next().expect("digest field");
        assert_eq!(digest, key.fingerprint);
    }

    #[test]
    fn imported_rsa_fingerprint_is_md5_of_spki_der_as_openssl_computes_it() {
        if !have("ssh-keygen") || !have("openssl") {
            eprintln!("skipped: ssh-keygen or openssl not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("id_rsa");
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "rsa",
                "-b",
                "2048",
                "-N",
                "",
                "-C",
                "me@laptop",
                "-f",
            ])
            .arg(&path));
        let pub_text = std::fs::read_to_string(path.with_extension("pub")).expect("read .pub");
        let imported =
            decode_public_key_material(&BASE64.encode(pub_text.as_bytes())).expect("import");
        assert_eq!(imported.key_type, KeyType::Rsa);
        assert_eq!(imported.bits, 2048);
        assert_eq!(imported.comment, "me@laptop");
        assert_eq!(
            imported.public_key,
            pub_text
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        );
        // AWS's documented check for imported keys.
        let out = sh(&format!(
            "ssh-keygen -e -f {} -m PKCS8 | openssl pkey -pubin -outform DER | openssl md5 -c",
            path.with_extension("pub").display()
        ));
        let digest = out.rsplit(' ').next().expect("digest field");
        assert_eq!(digest, imported.fingerprint);
        assert_eq!(imported.fingerprint.split(':').count(), 16);
    }

    #[test]
    fn ed25519_fingerprint_is_ssh_keygen_sha256_with_base64_padding_and_no_prefix() {
        if !have("ssh-keygen") {
            eprintln!("skipped: ssh-keygen not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let created = generate_ed25519(&mut rng(5)).expect("generate");
        let path = write_key(&dir, "k.pub", &format!("{}\n", created.public_key));
        let out = run(Command::new("ssh-keygen").arg("-l").arg("-f").arg(&path));
        // `256 SHA256:<43 chars> no comment (ED25519)`
        let openssh = out
            .split_whitespace()
            .nth(1)
            .and_then(|f| f.strip_prefix("SHA256:"))
            .expect("SHA256 fingerprint");
        assert_eq!(created.fingerprint, format!("{openssh}="));
        assert_eq!(created.fingerprint.len(), 44);
        // Imported ED25519 keys use the same rule.
        let imported = decode_public_key_material(
            &BASE64.encode(format!("{} someone@example\n", created.public_key)),
        )
        .expect("import");
        assert_eq!(imported.fingerprint, created.fingerprint);
        assert_eq!(imported.key_type, KeyType::Ed25519);
        assert_eq!(imported.comment, "someone@example");
    }

    #[test]
    fn same_seed_gives_same_key_different_seed_different_key() {
        let a = generate_ed25519(&mut rng(9)).expect("a");
        let b = generate_ed25519(&mut rng(9)).expect("b");
        let c = generate_ed25519(&mut rng(10)).expect("c");
        assert_eq!(a.public_key, b.public_key);
        assert_ne!(a.public_key, c.public_key);
    }

    #[test]
    fn import_accepts_rfc4716_and_pem_spki_with_the_openssh_line_fingerprint() {
        if !have("ssh-keygen") {
            eprintln!("skipped: ssh-keygen not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("id_rsa");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
            .arg(&path));
        let pub_path = path.with_extension("pub");
        let line = std::fs::read_to_string(&pub_path).expect("read");
        let from_line = parse_public_key(line.as_bytes()).expect("line");
        let rfc4716 = run(Command::new("ssh-keygen")
            .arg("-e")
            .arg("-f")
            .arg(&pub_path));
        let from_rfc = parse_public_key(rfc4716.as_bytes()).expect("rfc4716");
        let pkcs8 = run(Command::new("ssh-keygen")
            .args(["-e", "-m", "PKCS8", "-f"])
            .arg(&pub_path));
        let from_pem = parse_public_key(pkcs8.as_bytes()).expect("pem");
        assert_eq!(from_line.fingerprint, from_rfc.fingerprint);
        assert_eq!(from_line.fingerprint, from_pem.fingerprint);
        assert_eq!(from_line.public_key, from_pem.public_key);
    }

    #[test]
    fn import_rejects_garbage_private_keys_and_unsupported_types_with_clear_errors() {
        assert!(matches!(
            decode_public_key_material(""),
            Err(KeyError::Format(_))
        ));
        assert!(matches!(
            decode_public_key_material("%%% not base64 %%%"),
            Err(KeyError::Format(_))
        ));
        let b64 = |s: &str| BASE64.encode(s.as_bytes());
        assert!(matches!(
            decode_public_key_material(&b64("hello world")),
            Err(KeyError::Format(_))
        ));
        let private = generate_ed25519(&mut rng(6)).expect("generate").private_key;
        assert_eq!(
            decode_public_key_material(&b64(&private)),
            Err(KeyError::PrivateKeyGiven)
        );
        assert_eq!(
            decode_public_key_material(&b64(
                "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg= x"
            )),
            Err(KeyError::UnsupportedType("ecdsa-sha2-nistp256".into()))
        );
        // Right algorithm name, truncated data.
        let err =
            decode_public_key_material(&b64("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE")).unwrap_err();
        assert!(matches!(err, KeyError::Format(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("Key is not in valid OpenSSH public key format")
        );
        // An algorithm name with nothing after it.
        assert!(matches!(
            decode_public_key_material(&b64("ssh-rsa")),
            Err(KeyError::Format(_))
        ));
    }

    #[test]
    fn import_rejects_rsa_keys_smaller_than_aws_accepts() {
        // A 768-bit modulus (odd, top bit set); ssh-keygen itself refuses to make one.
        let mut n = vec![0xC5u8; 96];
        n[95] = 0x01;
        let public = ssh_key::public::RsaPublicKey::new(
            ssh_key::Mpint::from_positive_bytes(&[0x01, 0x00, 0x01]),
            ssh_key::Mpint::from_positive_bytes(&n),
        )
        .expect("rsa public");
        let line = openssh_line(&KeyData::Rsa(public)).expect("line");
        assert_eq!(
            decode_public_key_material(&BASE64.encode(line.as_bytes())),
            Err(KeyError::RsaSize(768))
        );
    }

    #[test]
    fn pooled_rsa_keys_are_distinct_2048_bit_keys() {
        let a = pooled_rsa().expect("first");
        let b = pooled_rsa().expect("second");
        assert_ne!(a.public_key, b.public_key);
        assert_ne!(a.fingerprint, b.fingerprint);
        for k in [a, b] {
            let parsed = parse_openssh_public_key(&k.public_key).expect("parse");
            assert_eq!(parsed.key_data().rsa().expect("rsa").key_size(), 2048);
        }
    }

    #[test]
    fn ppk_files_load_in_the_ssh_key_ppk_reader_with_a_valid_mac() {
        for key in [
            generate_rsa(&mut rng(11)).expect("rsa"),
            generate_ed25519(&mut rng(12)).expect("ed25519"),
        ] {
            let ppk = to_ppk(&key, "lab").expect("ppk");
            assert!(ppk.starts_with("PuTTY-User-Key-File-3: ssh-"), "{ppk}");
            let parsed = ssh_key::PrivateKey::from_ppk(&ppk, None).expect("valid ppk with MAC");
            assert_eq!(
                openssh_line(parsed.public_key().key_data()).expect("line"),
                key.public_key
            );
            assert_eq!(parsed.comment().as_str_lossy(), "lab");
        }
    }

    #[test]
    fn puttygen_accepts_ppk_files_and_recovers_the_same_key() {
        if Command::new("puttygen").arg("--version").output().is_err() || !have("ssh-keygen") {
            eprintln!("skipped: puttygen (putty-tools) or ssh-keygen not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        // Several Ed25519 seeds, so a seed whose last byte is zero is likely among them.
        let mut keys = vec![generate_rsa(&mut rng(13)).expect("rsa")];
        for seed in 0..8 {
            keys.push(generate_ed25519(&mut rng(100 + seed)).expect("ed25519"));
        }
        for (n, key) in keys.iter().enumerate() {
            let ppk = dir.path().join(format!("k{n}.ppk"));
            std::fs::write(&ppk, to_ppk(key, "lab").expect("ppk")).expect("write");
            let pem = dir.path().join(format!("k{n}.pem"));
            // puttygen verifies the MAC on load, then converts to OpenSSH.
            run(Command::new("puttygen")
                .arg(&ppk)
                .args(["-O", "private-openssh-new", "-o"])
                .arg(&pem));
            let public = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&pem));
            let got: Vec<&str> = public.split_whitespace().take(2).collect();
            let want: Vec<&str> = key.public_key.split_whitespace().collect();
            assert_eq!(got, want, "key {n}");
        }
    }

    #[test]
    fn raw_text_material_is_accepted_as_well_as_base64() {
        let key = generate_ed25519(&mut rng(8)).expect("generate");
        let a = decode_public_key_material(&key.public_key).expect("text");
        let b = decode_public_key_material(&BASE64.encode(&key.public_key)).expect("b64");
        assert_eq!(a, b);
        assert_eq!(
            imported_fingerprint(&key.public_key).expect("fp"),
            key.fingerprint
        );
    }
}
