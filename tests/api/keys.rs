//! Key pairs through the real `aws` CLI: the private key a learner saves must work with
//! OpenSSH, and the fingerprints must be the ones AWS documents how to verify
//! (EC2 User Guide, "Verify the fingerprint of your key pair").

use std::process::Command;

use crate::support::{Lab, TestDaemon, have, run, s, write_private_key};

fn sh(script: &str) -> String {
    run(Command::new("sh").arg("-c").arg(script))
        .trim()
        .to_string()
}

#[test]
fn created_rsa_pem_loads_in_openssh_and_its_fingerprint_is_sha1_of_pkcs8() {
    let d = TestDaemon::start_with(|cfg| cfg.boot_delay = std::time::Duration::from_millis(200));
    // What every tutorial does: save KeyMaterial as text, chmod 400.
    let pem = d.aws_text(&[
        "create-key-pair",
        "--key-name",
        "lab-rsa",
        "--query",
        "KeyMaterial",
    ]);
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{pem}");
    let path = d.dir().join("lab-rsa.pem");
    write_private_key(&path, &format!("{pem}\n"));
    let public = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&path));
    assert!(public.starts_with("ssh-rsa "));

    let described = d.aws(&[
        "describe-key-pairs",
        "--key-names",
        "lab-rsa",
        "--include-public-key",
    ]);
    let kp = &described["KeyPairs"][0];
    assert_eq!(s(&kp["KeyType"]), "rsa");
    assert!(s(&kp["KeyPairId"]).starts_with("key-"));
    // The stored public key is the one OpenSSH derives from the private key.
    let stored = s(&kp["PublicKey"]);
    assert_eq!(
        stored.split_whitespace().take(2).collect::<Vec<_>>(),
        public.split_whitespace().collect::<Vec<_>>()
    );
    // AWS: openssl pkcs8 -in key.pem -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c
    let expected = sh(&format!(
        "openssl pkcs8 -in {} -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c",
        path.display()
    ));
    assert_eq!(
        expected.rsplit(' ').next(),
        Some(s(&kp["KeyFingerprint"]).as_str())
    );
}

#[test]
fn created_ed25519_key_loads_in_openssh_and_its_fingerprint_is_padded_sha256() {
    let d = TestDaemon::start_with(|cfg| cfg.boot_delay = std::time::Duration::from_millis(200));
    let created = d.aws(&[
        "create-key-pair",
        "--key-name",
        "lab-ed",
        "--key-type",
        "ed25519",
    ]);
    let material = s(&created["KeyMaterial"]);
    assert!(material.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let path = d.dir().join("lab-ed.pem");
    // As boto3 users write it: the material exactly as returned.
    write_private_key(&path, &material);
    let listed = run(Command::new("ssh-keygen").arg("-l").arg("-f").arg(&path));
    // `256 SHA256:<43 chars> no comment (ED25519)`; AWS shows the same hash with `=`.
    let sha = listed
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.strip_prefix("SHA256:"))
        .expect("fingerprint");
    assert_eq!(s(&created["KeyFingerprint"]), format!("{sha}="));
    let filtered = d.aws(&[
        "describe-key-pairs",
        "--filters",
        "Name=key-type,Values=ed25519",
        "--query",
        "KeyPairs[].KeyName",
    ]);
    assert_eq!(filtered, serde_json::json!(["lab-ed"]));
}

#[test]
fn imported_rsa_key_fingerprint_is_md5_of_the_public_key_der() {
    let d = TestDaemon::start_with(|cfg| cfg.boot_delay = std::time::Duration::from_millis(200));
    let key = d.dir().join("id_rsa");
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
        .arg(&key));
    let pubfile = key.with_extension("pub");
    let material = format!("fileb://{}", pubfile.display());
    let imported = d.aws(&[
        "import-key-pair",
        "--key-name",
        "laptop",
        "--public-key-material",
        &material,
    ]);
    // AWS: ssh-keygen -e -f key.pub -m PKCS8 | openssl pkey -pubin -outform DER | openssl md5 -c
    let expected = sh(&format!(
        "ssh-keygen -e -f {} -m PKCS8 | openssl pkey -pubin -outform DER | openssl md5 -c",
        pubfile.display()
    ));
    assert_eq!(
        expected.rsplit(' ').next(),
        Some(s(&imported["KeyFingerprint"]).as_str())
    );
    assert_eq!(s(&imported["KeyName"]), "laptop");

    // The same name again is a duplicate, whatever the key.
    d.aws_err(
        &[
            "import-key-pair",
            "--key-name",
            "laptop",
            "--public-key-material",
            &material,
        ],
        "InvalidKeyPair.Duplicate",
    );
    d.aws_err(
        &["create-key-pair", "--key-name", "laptop"],
        "InvalidKeyPair.Duplicate",
    );
}

#[test]
fn import_of_something_that_is_not_a_public_key_is_invalid_key_pair_format() {
    let d = TestDaemon::start_with(|cfg| cfg.boot_delay = std::time::Duration::from_millis(200));
    let junk = d.dir().join("notes.txt");
    std::fs::write(&junk, "this is not a key\n").expect("write");
    let err = d.aws_err(
        &[
            "import-key-pair",
            "--key-name",
            "x",
            "--public-key-material",
            &format!("fileb://{}", junk.display()),
        ],
        "InvalidKeyPair.Format",
    );
    assert!(err.contains("OpenSSH public key format"), "{err}");
    // A private key uploaded by mistake gets a message that says so.
    let pem = d.aws_text(&[
        "create-key-pair",
        "--key-name",
        "real",
        "--key-type",
        "ed25519",
        "--query",
        "KeyMaterial",
    ]);
    let private = d.dir().join("real.pem");
    std::fs::write(&private, pem).expect("write");
    let err = d.aws_err(
        &[
            "import-key-pair",
            "--key-name",
            "oops",
            "--public-key-material",
            &format!("fileb://{}", private.display()),
        ],
        "InvalidKeyPair.Format",
    );
    assert!(err.contains("private key"), "{err}");
}

#[test]
fn delete_key_pair_removes_it_and_deleting_a_missing_one_succeeds() {
    let d = TestDaemon::start_with(|cfg| cfg.boot_delay = std::time::Duration::from_millis(200));
    let id = s(&d.aws(&[
        "create-key-pair",
        "--key-name",
        "temp",
        "--key-type",
        "ed25519",
    ])["KeyPairId"]);
    let by_id = d.aws(&[
        "describe-key-pairs",
        "--key-pair-ids",
        &id,
        "--query",
        "KeyPairs[0].KeyName",
    ]);
    assert_eq!(by_id, serde_json::json!("temp"));
    d.aws(&["delete-key-pair", "--key-name", "temp"]);
    d.aws_err(
        &["describe-key-pairs", "--key-names", "temp"],
        "InvalidKeyPair.NotFound",
    );
    // AWS answers success for a key pair that does not exist.
    d.aws(&["delete-key-pair", "--key-name", "temp"]);
}

#[test]
fn key_format_ppk_gives_a_putty_key_puttygen_loads() {
    let d = TestDaemon::start_with(|cfg| cfg.boot_delay = std::time::Duration::from_millis(200));
    let ppk = d.aws_text(&[
        "create-key-pair",
        "--key-name",
        "putty",
        "--key-format",
        "ppk",
        "--query",
        "KeyMaterial",
    ]);
    assert!(ppk.starts_with("PuTTY-User-Key-File-3: ssh-rsa"), "{ppk}");
    assert!(ppk.contains("Comment: putty"));
    // Outside CI, without puttygen (putty-tools) the file's MAC is not checked here.
    if !have("puttygen") {
        return;
    }
    let path = d.dir().join("putty.ppk");
    std::fs::write(&path, format!("{ppk}\n")).expect("write");
    // puttygen checks the MAC on load; the public key it recovers is the stored one.
    let public = run(Command::new("puttygen").arg(&path).arg("-L"));
    let stored = d.aws_text(&[
        "describe-key-pairs",
        "--key-names",
        "putty",
        "--include-public-key",
        "--query",
        "KeyPairs[0].PublicKey",
    ]);
    assert_eq!(
        public.split_whitespace().take(2).collect::<Vec<_>>(),
        stored.split_whitespace().take(2).collect::<Vec<_>>()
    );
}
