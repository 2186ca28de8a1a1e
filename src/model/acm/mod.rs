//! AWS Certificate Manager in the model: certificates an account requested (validated
//! by DNS, issued by vpclab's certificate authority) or imported, per region.
//!
//! A [`Certificate`] row's id is its ARN. A requested certificate is minted when it is
//! requested (the API holds the CA; the model never signs) but stays hidden until each
//! of its domains is validated: the daemon's tick ([`World::advance_acm`]) finds the
//! CNAME record ACM asked for in a public hosted zone of the account and turns the
//! certificate `ISSUED`, as ACM does asynchronously. Rules follow the ACM API reference
//! (RequestCertificate, ImportCertificate, DeleteCertificate) and the user guide's
//! "DNS validation" page.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Env, Resource, Timestamp, World};
use crate::tls::CertInfo;

/// How long ACM waits for DNS validation before giving up (user guide: 72 hours).
pub const VALIDATION_TIMEOUT_MS: i64 = 72 * 3600 * 1000;
/// The validity of a certificate ACM issues (user guide: 395 days since 2024).
pub const ISSUED_DAYS: i64 = 395;
/// Domain names per certificate (ACM quota: 10 by default).
pub const MAX_NAMES: usize = 10;

/// One domain's validation: the CNAME record ACM asks the owner to create.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DomainValidation {
    pub domain: String,
    /// The domain whose DNS holds the record (the domain without a leading `*.`).
    pub validation_domain: String,
    /// Fully qualified, lower case, with the final dot.
    pub record_name: String,
    pub record_value: String,
    /// `PENDING_VALIDATION`, `SUCCESS` or `FAILED`.
    pub status: String,
}

/// What a certificate says about itself (kept so reads need not parse PEM).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertMeta {
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    pub serial: String,
    pub key_algorithm: String,
    pub signature_algorithm: String,
}

impl From<&CertInfo> for CertMeta {
    fn from(i: &CertInfo) -> Self {
        CertMeta {
            subject: i.subject.clone(),
            issuer: i.issuer.clone(),
            not_before: i.not_before,
            not_after: i.not_after,
            serial: i.serial.clone(),
            key_algorithm: i.key_algorithm.clone(),
            signature_algorithm: i.signature_algorithm.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Certificate {
    /// `arn:aws:acm:REGION:ACCOUNT:certificate/UUID`.
    pub id: String,
    pub region: String,
    pub domain: String,
    /// Every name of the certificate, the domain first (ACM lists it too).
    pub names: Vec<String>,
    /// `AMAZON_ISSUED` or `IMPORTED`.
    pub kind: String,
    /// `PENDING_VALIDATION`, `ISSUED`, `VALIDATION_TIMED_OUT` …
    pub status: String,
    pub validations: Vec<DomainValidation>,
    pub cert_pem: String,
    pub chain_pem: Option<String>,
    /// The private key (never returned by the API; load balancers present it).
    pub key_pem: String,
    pub meta: CertMeta,
    pub created: Timestamp,
    pub issued_at: Option<Timestamp>,
    pub imported_at: Option<Timestamp>,
    pub idempotency_token: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Resource for Certificate {
    const KIND: &'static str = "acm_certificate";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

pub fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationException", message)
}

fn not_found(arn: &str) -> ApiError {
    ApiError::new(
        "ResourceNotFoundException",
        format!("Could not find certificate {arn}."),
    )
}

/// Checks a domain name as RequestCertificate does: 1–253 characters, labels of
/// letters, digits and hyphens, at least two labels, an optional leading `*.`.
pub fn check_domain(name: &str) -> ApiResult<String> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let bare = lower.strip_prefix("*.").unwrap_or(&lower);
    let ok = !bare.is_empty()
        && lower.len() <= 253
        && bare.contains('.')
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(lower)
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'domainName' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\*\\.)?(((?!-)[A-Za-z0-9-]{{0,62}}[A-Za-z0-9])\\.)+((?!-)[A-Za-z0-9-]{{1,62}}[A-Za-z0-9])"
        )))
    }
}

/// What RequestCertificate asks for, with the certificate the API minted for it.
#[derive(Clone, Debug)]
pub struct Request {
    pub domain: String,
    pub alternative_names: Vec<String>,
    pub validation_method: String,
    pub idempotency_token: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub cert_pem: String,
    pub key_pem: String,
    pub info: CertInfo,
}

/// The names a request covers: the domain first, then its alternative names, once each.
pub fn request_names(domain: &str, alternatives: &[String]) -> ApiResult<Vec<String>> {
    let mut names = vec![check_domain(domain)?];
    for n in alternatives {
        let n = check_domain(n)?;
        if !names.contains(&n) {
            names.push(n);
        }
    }
    if names.len() > MAX_NAMES {
        return Err(ApiError::new(
            "LimitExceededException",
            format!("Cannot request a certificate with more than {MAX_NAMES} domain names."),
        ));
    }
    Ok(names)
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

impl World {
    fn acm_arn(&mut self, region: &str) -> String {
        let (a, b) = (self.alloc_bits(), self.alloc_bits());
        format!(
            "arn:aws:acm:{region}:{}:certificate/{}",
            self.account,
            super::sns::uuid(a, b)
        )
    }

    /// The certificate `arn` of the caller's region.
    pub fn certificate(&self, env: &Env, arn: &str) -> ApiResult<&Certificate> {
        if !arn.starts_with("arn:") || !arn.contains(":acm:") {
            return Err(ApiError::new(
                "InvalidArnException",
                format!("String '{arn}' is not a valid ARN."),
            ));
        }
        self.acm_certificates
            .get(arn)
            .filter(|c| c.region == env.region)
            .ok_or_else(|| not_found(arn))
    }

    /// The load balancers whose listeners present `arn` (ACM's `InUseBy`).
    pub fn certificate_users(&self, arn: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .elb_listeners
            .iter()
            .filter(|l| l.certificates.iter().any(|c| c == arn))
            .map(|l| l.load_balancer.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// RequestCertificate (DNS validation only).
    pub fn request_certificate(&mut self, env: &Env, r: Request) -> ApiResult<String> {
        if r.validation_method != "DNS" {
            return Err(validation(format!(
                "vpclab validates certificates by DNS only; ValidationMethod '{}' is not emulated (see docs/fidelity.md)",
                r.validation_method
            )));
        }
        let names = request_names(&r.domain, &r.alternative_names)?;
        // The same token for the same names within an hour answers the same ARN.
        if let Some(token) = &r.idempotency_token
            && let Some(c) = self.acm_certificates.iter().find(|c| {
                c.region == env.region
                    && c.idempotency_token.as_deref() == Some(token)
                    && c.names == names
                    && env.now.0 - c.created.0 < 3_600_000
            })
        {
            return Ok(c.id.clone());
        }
        let id = self.acm_arn(&env.region);
        let mut validations = Vec::new();
        for n in &names {
            let base = n.strip_prefix("*.").unwrap_or(n).to_string();
            // One record per validation domain: `*.example.com` and `example.com`
            // share it, as on ACM.
            let existing = validations
                .iter()
                .find(|v: &&DomainValidation| v.validation_domain == base)
                .map(|v| (v.record_name.clone(), v.record_value.clone()));
            let (record_name, record_value) = match existing {
                Some(x) => x,
                None => {
                    let (a, b, c) = (self.alloc_bits(), self.alloc_bits(), self.alloc_bits());
                    let label: String = format!("{c:016x}")
                        .chars()
                        .map(|ch| match ch.to_digit(16) {
                            Some(d) => (b'a' + (d as u8 % 26)) as char,
                            None => 'x',
                        })
                        .take(10)
                        .collect();
                    (
                        format!("_{a:016x}{:016x}.{base}.", a ^ b),
                        format!("_{b:016x}{:016x}.{label}.acm-validations.aws.", b ^ c),
                    )
                }
            };
            validations.push(DomainValidation {
                domain: n.clone(),
                validation_domain: base,
                record_name,
                record_value,
                status: "PENDING_VALIDATION".into(),
            });
        }
        self.acm_certificates.insert(Certificate {
            id: id.clone(),
            region: env.region.clone(),
            domain: names[0].clone(),
            names,
            kind: "AMAZON_ISSUED".into(),
            status: "PENDING_VALIDATION".into(),
            validations,
            cert_pem: r.cert_pem,
            chain_pem: None,
            key_pem: r.key_pem,
            meta: CertMeta::from(&r.info),
            created: env.now,
            issued_at: None,
            imported_at: None,
            idempotency_token: r.idempotency_token,
            tags: r.tags,
        });
        Ok(id)
    }

    /// ImportCertificate: a new certificate, or a re-import into `arn` (which must be
    /// an imported certificate). The API checked that the key matches.
    #[allow(clippy::too_many_arguments)]
    pub fn import_certificate(
        &mut self,
        env: &Env,
        arn: Option<&str>,
        cert_pem: String,
        chain_pem: Option<String>,
        key_pem: String,
        info: &CertInfo,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<String> {
        let mut names = Vec::new();
        if let Some(cn) = &info.common_name {
            names.push(cn.to_ascii_lowercase());
        }
        for n in &info.names {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let status = if info.not_after * 1000 < env.now.0 {
            "EXPIRED"
        } else {
            "ISSUED"
        };
        let (id, created, mut all_tags) = match arn {
            Some(a) => {
                let old = self.certificate(env, a)?;
                if old.kind != "IMPORTED" {
                    return Err(validation(format!(
                        "Certificate {a} is not an imported certificate and cannot be reimported."
                    )));
                }
                if !tags.is_empty() {
                    return Err(validation(
                        "Tags cannot be specified when reimporting a certificate.",
                    ));
                }
                (a.to_string(), old.created, old.tags.clone())
            }
            None => (self.acm_arn(&env.region), env.now, BTreeMap::new()),
        };
        all_tags.extend(tags);
        self.acm_certificates.insert(Certificate {
            id: id.clone(),
            region: env.region.clone(),
            domain: names.first().cloned().unwrap_or_default(),
            names,
            kind: "IMPORTED".into(),
            status: status.into(),
            validations: Vec::new(),
            cert_pem,
            chain_pem,
            key_pem,
            meta: CertMeta::from(info),
            created,
            issued_at: None,
            imported_at: Some(env.now),
            idempotency_token: None,
            tags: all_tags,
        });
        Ok(id)
    }

    /// DeleteCertificate: refused while a load balancer listener presents it.
    pub fn delete_certificate(&mut self, env: &Env, arn: &str) -> ApiResult<()> {
        self.certificate(env, arn)?;
        if !self.certificate_users(arn).is_empty() {
            return Err(ApiError::new(
                "ResourceInUseException",
                format!("Certificate {arn} in account {} is in use.", self.account),
            ));
        }
        self.acm_certificates.remove(arn);
        Ok(())
    }

    /// Tags of a certificate (AddTagsToCertificate / RemoveTagsFromCertificate).
    pub fn certificate_tags_mut(
        &mut self,
        env: &Env,
        arn: &str,
    ) -> ApiResult<&mut BTreeMap<String, String>> {
        self.certificate(env, arn)?;
        Ok(&mut self
            .acm_certificates
            .get_mut(arn)
            .ok_or_else(|| not_found(arn))?
            .tags)
    }

    /// Whether a public hosted zone of the account holds the CNAME `name → value`.
    fn has_validation_record(&self, name: &str, value: &str) -> bool {
        self.hosted_zones.iter().filter(|z| !z.private).any(|z| {
            z.record_sets.iter().any(|r| {
                r.rtype == "CNAME"
                    && same_name(&r.name, name)
                    && r.records.iter().any(|v| same_name(v, value))
            })
        })
    }

    fn acm_pending(&self) -> impl Iterator<Item = &Certificate> {
        self.acm_certificates
            .iter()
            .filter(|c| c.status == "PENDING_VALIDATION")
    }

    /// Whether the tick has an ACM step to take: a pending certificate whose records
    /// exist, or whose validation has timed out.
    pub fn acm_due(&self, now: Timestamp) -> bool {
        self.acm_pending().any(|c| {
            now.0 - c.created.0 >= VALIDATION_TIMEOUT_MS
                || c.validations.iter().any(|v| {
                    v.status != "SUCCESS"
                        && self.has_validation_record(&v.record_name, &v.record_value)
                })
        })
    }

    /// Validates pending certificates whose CNAME records exist, and times out those
    /// that waited 72 hours.
    pub fn advance_acm(&mut self, now: Timestamp) {
        let pending: Vec<Certificate> = self.acm_pending().cloned().collect();
        for mut c in pending {
            let mut changed = false;
            for v in &mut c.validations {
                if v.status != "SUCCESS"
                    && self.has_validation_record(&v.record_name, &v.record_value)
                {
                    v.status = "SUCCESS".into();
                    changed = true;
                }
            }
            if c.validations.iter().all(|v| v.status == "SUCCESS") {
                c.status = "ISSUED".into();
                c.issued_at = Some(now);
                changed = true;
            } else if now.0 - c.created.0 >= VALIDATION_TIMEOUT_MS {
                c.status = "VALIDATION_TIMED_OUT".into();
                for v in &mut c.validations {
                    if v.status != "SUCCESS" {
                        v.status = "FAILED".into();
                    }
                }
                changed = true;
            }
            if changed {
                self.acm_certificates.insert(c);
            }
        }
    }
}
