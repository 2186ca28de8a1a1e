//! vpclab's own certificate authority, and TLS for the simulated internet.
//!
//! Every world's internet terminates HTTPS for whatever name a client asks for, with a
//! leaf certificate this CA mints on demand (cached per name). The CA is vpclab's
//! alone: its key is generated on the learner's machine the first time it is needed
//! and kept in the state directory (`ca.pem`, and `ca-key.pem` readable only by its
//! owner), never a real CA's. Instances trust it (their images carry it in the system
//! bundle), `vpclab ca` prints it for a browser.
//!
//! Nothing here opens a socket: [`Ca::server_config`] and [`client_config`] are rustls
//! configurations (ring provider) that the callers run over fabric streams.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The CA's subject: what a browser shows as the issuer.
const CA_NAME: &str = "vpclab simulated internet CA";
/// Leaf certificates kept per world before the cache starts over.
const LEAF_CACHE: usize = 1024;

/// Errors of the CA files.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a usable {what}: {why}")]
    Invalid {
        path: String,
        what: &'static str,
        why: String,
    },
    #[error("cannot make a certificate: {0}")]
    Mint(String),
}

/// The certificate authority: its certificate (PEM, as a trust store takes it) and
/// the key that signs leaf certificates.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    leaves: Mutex<BTreeMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "vpclab");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    params
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Ca {
    /// A fresh CA held only in memory (tests, scratch daemons).
    pub fn ephemeral() -> Result<Ca, CaError> {
        let key = KeyPair::generate().map_err(|e| CaError::Mint(e.to_string()))?;
        let params = ca_params();
        let cert = params
            .self_signed(&key)
            .map_err(|e| CaError::Mint(e.to_string()))?;
        Ok(Ca::from_parts(cert.pem(), params, key))
    }

    fn from_parts(cert_pem: String, params: CertificateParams, key: KeyPair) -> Ca {
        Ca {
            cert_pem,
            issuer: Issuer::new(params, key),
            leaves: Mutex::new(BTreeMap::new()),
        }
    }

    /// Loads the CA from `cert` and `key` (PEM), creating both the first time (the key
    /// with mode 0600). The same CA then serves every later run, so a browser or an
    /// instance that trusted it once keeps trusting it.
    pub fn load_or_create(cert: &Path, key: &Path) -> Result<Ca, CaError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CaError::Io { path, source }
        };
        if !cert.exists() && !key.exists() {
            let ca = Ca::ephemeral()?;
            if let Some(dir) = cert.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            write_private(key, ca.issuer.key().serialize_pem().as_bytes()).map_err(io(key))?;
            std::fs::write(cert, &ca.cert_pem).map_err(io(cert))?;
            return Ok(ca);
        }
        let key_pem = std::fs::read_to_string(key).map_err(io(key))?;
        let cert_pem = std::fs::read_to_string(cert).map_err(io(cert))?;
        let pair = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Invalid {
            path: key.display().to_string(),
            what: "private key",
            why: e.to_string(),
        })?;
        let der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| CaError::Invalid {
                path: cert.display().to_string(),
                what: "certificate",
                why: e.to_string(),
            })?;
        // The leaf certificates name the issuer by the subject and key identifier the
        // CA was made with; both follow from `ca_params` and the key. A certificate
        // whose key is not this key would make every leaf unverifiable: refuse it.
        if !contains(der.as_ref(), pair.public_key_raw()) {
            return Err(CaError::Invalid {
                path: cert.display().to_string(),
                what: "certificate",
                why: format!("it does not belong to the key in {}", key.display()),
            });
        }
        Ok(Ca::from_parts(cert_pem, ca_params(), pair))
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A leaf certificate and key for `name` (a DNS name or an IP address), minted on
    /// first use and cached.
    pub fn leaf(&self, name: &str) -> Result<Arc<CertifiedKey>, CaError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = leaves.get(&name) {
            return Ok(k.clone());
        }
        let mint = |e: rcgen::Error| CaError::Mint(e.to_string());
        let mut params = CertificateParams::new(vec![name.clone()]).map_err(mint)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(90);
        let key = KeyPair::generate().map_err(mint)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(mint)?;
        let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = provider()
            .key_provider
            .load_private_key(der_key)
            .map_err(|e| CaError::Mint(e.to_string()))?;
        let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer));
        if leaves.len() >= LEAF_CACHE {
            leaves.clear();
        }
        leaves.insert(name, certified.clone());
        Ok(certified)
    }

    /// A TLS server configuration that presents, for each connection, a certificate
    /// for the name the client asked for (SNI), or for `fallback` (the address it
    /// connected to) when it named none.
    pub fn server_config(self: &Arc<Self>, fallback: IpAddr) -> Arc<rustls::ServerConfig> {
        let resolver = Arc::new(Minter {
            ca: self.clone(),
            fallback,
        });
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        Arc::new(config)
    }
}

/// A certificate and its private key as PEM text (what ACM keeps for a certificate).
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// A certificate for `names` (the first is the subject's common name, all are
    /// subject alternative names) signed by this CA, valid from `not_before` (Unix
    /// seconds) for `days`: what ACM issues once a request's domains are validated.
    pub fn issue(&self, names: &[String], not_before: i64, days: i64) -> Result<Issued, CaError> {
        let mint = |e: rcgen::Error| CaError::Mint(e.to_string());
        let first = names
            .first()
            .ok_or_else(|| CaError::Mint("a certificate needs a name".into()))?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(mint)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let start = time::OffsetDateTime::from_unix_timestamp(not_before)
            .map_err(|e| CaError::Mint(e.to_string()))?;
        params.not_before = start;
        params.not_after = start + time::Duration::days(days);
        let key = KeyPair::generate().map_err(mint)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(mint)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// What a certificate says about itself, in the words of ACM's DescribeCertificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject (`CN=www.example.com`).
    pub subject: String,
    pub issuer: String,
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// DNS names of the subject alternative name extension.
    pub names: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Colon-separated hex, as ACM shows it.
    pub serial: String,
    /// `RSA_2048`, `EC_prime256v1` … (ACM's `KeyAlgorithm`).
    pub key_algorithm: String,
    /// `SHA256WITHRSA`, `SHA256WITHECDSA` … (ACM's `SignatureAlgorithm`).
    pub signature_algorithm: String,
}

fn pem_ders(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        out.push(c.map_err(|e| format!("the {what} is not valid PEM: {e}"))?);
    }
    if out.is_empty() {
        return Err(format!("the {what} holds no PEM certificate"));
    }
    Ok(out)
}

/// Reads a certificate (PEM; the first certificate if several).
pub fn inspect(pem: &str) -> Result<CertInfo, String> {
    let ders = pem_ders(pem, "certificate")?;
    inspect_der(ders[0].as_ref())
}

fn inspect_der(der: &[u8]) -> Result<CertInfo, String> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::public_key::PublicKey;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
    let names = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let key_algorithm = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(k)) => format!("RSA_{}", k.key_size()),
        Ok(PublicKey::EC(k)) => match k.key_size() {
            0..=256 => "EC_prime256v1".to_string(),
            257..=384 => "EC_secp384r1".to_string(),
            _ => "EC_secp521r1".to_string(),
        },
        _ => "UNKNOWN".to_string(),
    };
    let signature_algorithm = match cert.signature_algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.11" => "SHA256WITHRSA",
        "1.2.840.113549.1.1.12" => "SHA384WITHRSA",
        "1.2.840.113549.1.1.13" => "SHA512WITHRSA",
        "1.2.840.10045.4.3.2" => "SHA256WITHECDSA",
        "1.2.840.10045.4.3.3" => "SHA384WITHECDSA",
        "1.2.840.10045.4.3.4" => "SHA512WITHECDSA",
        _ => "UNKNOWN",
    }
    .to_string();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        common_name,
        names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: cert.raw_serial_as_string(),
        key_algorithm,
        signature_algorithm,
    })
}

/// The certificate, its chain and key as one rustls value; checks that the key is the
/// certificate's (ImportCertificate's rule) and that the chain's certificates parse.
pub fn certified_key(
    cert_pem: &str,
    chain_pem: Option<&str>,
    key_pem: &str,
) -> Result<Arc<CertifiedKey>, String> {
    let leaf = pem_ders(cert_pem, "certificate")?;
    if leaf.len() != 1 {
        return Err(
            "the certificate must hold exactly one PEM certificate (put the others in the chain)"
                .into(),
        );
    }
    let mut chain = leaf;
    if let Some(c) = chain_pem.filter(|c| !c.trim().is_empty()) {
        for der in pem_ders(c, "certificate chain")? {
            inspect_der(der.as_ref())?;
            chain.push(der);
        }
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("the private key is not a PEM private key: {e}"))?;
    let provider = provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the private key cannot be used: {e}"))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err("the private key does not match the certificate's public key".into())
        }
        Err(e) => Err(format!("the certificate and key cannot be checked: {e}")),
    }
}

/// A TLS server configuration presenting one certificate. `tls13`: whether TLS 1.3 is
/// offered beside TLS 1.2 (the load balancer's security policy decides).
pub fn fixed_server_config(key: Arc<CertifiedKey>, tls13: bool) -> Arc<rustls::ServerConfig> {
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS12]
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[derive(Debug)]
struct Minter {
    ca: Arc<Ca>,
    fallback: IpAddr,
}

impl ResolvesServerCert for Minter {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = match hello.server_name() {
            Some(n) => n.to_string(),
            None => self.fallback.to_string(),
        };
        match self.ca.leaf(&name) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(error = %e, name, "no certificate for a TLS client");
                None
            }
        }
    }
}

/// A TLS client configuration trusting the certificates of a PEM bundle (what
/// `/etc/ssl/certs/ca-certificates.crt` holds). Errors name what is wrong with it.
pub fn client_config(bundle: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle) {
        let cert = cert.map_err(|e| format!("error reading the CA bundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("error adding a CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA bundle holds no certificate".to_string());
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS client configuration that accepts any server certificate (`curl -k`,
/// `wget --no-check-certificate`): signatures are still checked, the chain is not.
pub fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Writes a file readable only by its owner (the CA key).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_durable_and_its_key_private() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
        let first = Ca::load_or_create(&cert, &key).unwrap();
        assert!(first.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let again = Ca::load_or_create(&cert, &key).unwrap();
        assert_eq!(first.cert_pem(), again.cert_pem());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A certificate that is not the key's is refused, naming the file.
        let other = Ca::ephemeral().unwrap();
        std::fs::write(&cert, other.cert_pem()).unwrap();
        let err = Ca::load_or_create(&cert, &key).unwrap_err().to_string();
        assert!(
            err.contains("ca.pem") && err.contains("does not belong"),
            "{err}"
        );
    }

    #[test]
    fn leaves_are_cached_per_name_and_a_bad_bundle_is_an_error() {
        let ca = Ca::ephemeral().unwrap();
        let a = ca.leaf("www.google.com").unwrap();
        let b = ca.leaf("WWW.google.com.").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(ca.leaf("10.0.0.1").is_ok());
        assert!(client_config(ca.cert_pem().as_bytes()).is_ok());
        assert!(client_config(b"not a bundle").is_err());
    }

    async fn handshake(server: &Arc<Ca>, trusted: &Ca, name: &str) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor =
            tokio_rustls::TlsAcceptor::from(server.server_config(IpAddr::from([198, 51, 100, 1])));
        let srv = tokio::spawn(async move {
            let mut s = acceptor.accept(b).await?;
            s.write_all(b"hello").await?;
            s.shutdown().await
        });
        let connector =
            tokio_rustls::TlsConnector::from(client_config(trusted.cert_pem().as_bytes()).unwrap());
        let sni = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut c = connector.connect(sni, a).await?;
        let mut got = Vec::new();
        c.read_to_end(&mut got).await?;
        assert_eq!(got, b"hello");
        srv.await.unwrap()
    }

    #[tokio::test]
    async fn a_client_trusting_the_ca_accepts_any_name_and_one_trusting_another_refuses() {
        let ca = Arc::new(Ca::ephemeral().unwrap());
        handshake(&ca, &ca, "www.google.com").await.unwrap();
        handshake(&ca, &ca, "198.51.100.1").await.unwrap();
        let stranger = Ca::ephemeral().unwrap();
        let err = handshake(&ca, &stranger, "www.google.com")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
    }
}
