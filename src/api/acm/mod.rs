//! AWS Certificate Manager (AWS JSON 1.1, `X-Amz-Target: CertificateManager.<Op>`):
//! RequestCertificate (DNS validation), ImportCertificate, DescribeCertificate,
//! ListCertificates, GetCertificate, DeleteCertificate and the tag operations.
//!
//! A requested certificate is signed here, by vpclab's certificate authority (the one
//! `vpclab ca` prints), when it is requested; the model keeps it hidden until the
//! daemon's tick finds the validation records (`model::acm`). Imported certificates
//! are checked here: PEM, key matching the certificate, chain parsable.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use super::json::{Body, JsonCall, JsonService, unknown_operation};
use crate::model::acm::{self, Certificate, Request};
use crate::model::{ApiError, ApiResult};

pub static SERVICE: JsonService = JsonService {
    content_type: "application/x-amz-json-1.1",
    validation_code: "ValidationException",
    // The handlers write epoch seconds themselves.
    timestamps: &[],
    query_compatible: false,
    handler: dispatch,
    iam_prefix: "acm",
    resource: certificate_arn,
    passed_roles: super::json::no_roles,
};

pub const OPERATIONS: &[&str] = &[
    "RequestCertificate",
    "ImportCertificate",
    "DescribeCertificate",
    "ListCertificates",
    "GetCertificate",
    "DeleteCertificate",
    "AddTagsToCertificate",
    "RemoveTagsFromCertificate",
    "ListTagsForCertificate",
];

/// The certificate a call names (Service Authorization Reference: `certificate`), else `*`.
fn certificate_arn(_region: &str, _account: &str, body: &Body) -> String {
    match body.str("CertificateArn") {
        Ok(Some(arn)) if !arn.is_empty() => arn.to_string(),
        _ => "*".to_string(),
    }
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn tags_of(c: &JsonCall) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in c.body.list("Tags")? {
        let k = t.get("Key").and_then(Value::as_str).unwrap_or("");
        if k.is_empty() {
            return Err(acm::validation("A tag key must be specified"));
        }
        let v = t.get("Value").and_then(Value::as_str).unwrap_or("");
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// A blob member (base64 on the wire) as text.
fn blob(c: &JsonCall, name: &str) -> ApiResult<Option<String>> {
    let Some(b64) = c.body.str(name)? else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| acm::validation(format!("{name} is not valid base64")))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| acm::validation(format!("{name} must be PEM-encoded text")))
}

fn describe(c: &JsonCall, w: &crate::model::World, cert: &Certificate) -> Value {
    let m = &cert.meta;
    let mut v = json!({
        "CertificateArn": cert.id,
        "DomainName": cert.domain,
        "SubjectAlternativeNames": cert.names,
        "Status": cert.status,
        "Type": cert.kind,
        "CreatedAt": secs(cert.created.0),
        "InUseBy": w.certificate_users(&cert.id),
        "KeyAlgorithm": m.key_algorithm,
        "RenewalEligibility": "INELIGIBLE",
        "Options": { "CertificateTransparencyLoggingPreference": "ENABLED" },
    });
    let shown = cert.status == "ISSUED" || cert.kind == "IMPORTED";
    if shown {
        v["Serial"] = json!(m.serial);
        v["Subject"] = json!(m.subject);
        v["Issuer"] = json!(if cert.kind == "IMPORTED" {
            m.issuer.clone()
        } else {
            "vpclab".to_string()
        });
        v["NotBefore"] = json!(m.not_before);
        v["NotAfter"] = json!(m.not_after);
        v["SignatureAlgorithm"] = json!(m.signature_algorithm);
        v["KeyUsages"] = json!([{ "Name": "DIGITAL_SIGNATURE" }, { "Name": "KEY_ENCIPHERMENT" }]);
        v["ExtendedKeyUsages"] = json!([
            { "Name": "TLS_WEB_SERVER_AUTHENTICATION", "OID": "1.3.6.1.5.5.7.3.1" },
            { "Name": "TLS_WEB_CLIENT_AUTHENTICATION", "OID": "1.3.6.1.5.5.7.3.2" },
        ]);
    }
    if let Some(t) = cert.issued_at {
        v["IssuedAt"] = json!(secs(t.0));
    }
    if let Some(t) = cert.imported_at {
        v["ImportedAt"] = json!(secs(t.0));
    }
    if cert.kind == "AMAZON_ISSUED" {
        v["DomainValidationOptions"] = cert
            .validations
            .iter()
            .map(|d| {
                json!({
                    "DomainName": d.domain,
                    "ValidationDomain": d.validation_domain,
                    "ValidationStatus": d.status,
                    "ValidationMethod": "DNS",
                    "ResourceRecord": {
                        "Name": d.record_name,
                        "Type": "CNAME",
                        "Value": d.record_value,
                    },
                })
            })
            .collect();
        if cert.status == "VALIDATION_TIMED_OUT" {
            v["FailureReason"] = json!("OTHER");
        }
    }
    let _ = c;
    v
}

fn dispatch(c: &mut JsonCall, op: &str) -> ApiResult<Value> {
    match op {
        "RequestCertificate" => {
            let domain = c.body.required_str("DomainName")?.to_string();
            let alternative_names = c.body.str_list("SubjectAlternativeNames")?;
            let validation_method = c
                .body
                .str("ValidationMethod")?
                .unwrap_or("EMAIL")
                .to_string();
            if c.body.get("CertificateAuthorityArn").is_some() {
                return Err(acm::validation(
                    "vpclab does not emulate private certificate authorities (see docs/fidelity.md)",
                ));
            }
            let names = acm::request_names(&domain, &alternative_names)?;
            let ca = c.ca.clone().ok_or_else(|| {
                ApiError::new(
                    "ServiceUnavailableException",
                    "This daemon has no certificate authority to issue certificates with.",
                )
            })?;
            let now_s = c.env.now.0.div_euclid(1000);
            let issued = ca
                .issue(&names, now_s, acm::ISSUED_DAYS)
                .map_err(|e| ApiError::new("InternalFailure", e.to_string()))?;
            let info = crate::tls::inspect(&issued.cert_pem)
                .map_err(|e| ApiError::new("InternalFailure", e))?;
            let r = Request {
                domain,
                alternative_names,
                validation_method,
                idempotency_token: c.body.str("IdempotencyToken")?.map(str::to_string),
                tags: tags_of(c)?,
                cert_pem: issued.cert_pem,
                key_pem: issued.key_pem,
                info,
            };
            let arn = c.mutate(|w, env| w.request_certificate(env, r))?;
            Ok(json!({ "CertificateArn": arn }))
        }
        "ImportCertificate" => {
            let cert = blob(c, "Certificate")?.ok_or_else(|| {
                acm::validation("1 validation error detected: Value null at 'certificate' failed to satisfy constraint: Member must not be null")
            })?;
            let key = blob(c, "PrivateKey")?.ok_or_else(|| {
                acm::validation("1 validation error detected: Value null at 'privateKey' failed to satisfy constraint: Member must not be null")
            })?;
            let chain = blob(c, "CertificateChain")?;
            crate::tls::certified_key(&cert, chain.as_deref(), &key).map_err(acm::validation)?;
            let info = crate::tls::inspect(&cert).map_err(acm::validation)?;
            let arn = c.body.str("CertificateArn")?.map(str::to_string);
            let tags = tags_of(c)?;
            let arn = c.mutate(|w, env| {
                w.import_certificate(env, arn.as_deref(), cert, chain, key, &info, tags)
            })?;
            Ok(json!({ "CertificateArn": arn }))
        }
        "DescribeCertificate" => {
            let arn = c.body.required_str("CertificateArn")?.to_string();
            let w = c.read()?;
            let cert = w.certificate(&c.env, &arn)?;
            Ok(json!({ "Certificate": describe(c, &w, cert) }))
        }
        "ListCertificates" => {
            let statuses = c.body.str_list("CertificateStatuses")?;
            let w = c.read()?;
            let mut list: Vec<&Certificate> = w
                .acm_certificates
                .in_region(&c.env.region)
                .filter(|x| statuses.is_empty() || statuses.contains(&x.status))
                .collect();
            list.sort_by_key(|x| x.created);
            let out: Vec<Value> = list
                .into_iter()
                .map(|x| {
                    let mut v = json!({
                        "CertificateArn": x.id,
                        "DomainName": x.domain,
                        "SubjectAlternativeNameSummaries": x.names,
                        "HasAdditionalSubjectAlternativeNames": false,
                        "Status": x.status,
                        "Type": x.kind,
                        "KeyAlgorithm": x.meta.key_algorithm,
                        "InUse": !w.certificate_users(&x.id).is_empty(),
                        "RenewalEligibility": "INELIGIBLE",
                        "CreatedAt": secs(x.created.0),
                    });
                    if x.status == "ISSUED" || x.kind == "IMPORTED" {
                        v["NotBefore"] = json!(x.meta.not_before);
                        v["NotAfter"] = json!(x.meta.not_after);
                    }
                    v
                })
                .collect();
            Ok(json!({ "CertificateSummaryList": out }))
        }
        "GetCertificate" => {
            let arn = c.body.required_str("CertificateArn")?.to_string();
            let w = c.read()?;
            let cert = w.certificate(&c.env, &arn)?;
            if cert.status == "PENDING_VALIDATION" {
                return Err(ApiError::new(
                    "RequestInProgressException",
                    format!("Certificate '{arn}' is in state PENDING_VALIDATION"),
                ));
            }
            if cert.status != "ISSUED" && cert.kind != "IMPORTED" {
                return Err(ApiError::new(
                    "ResourceNotFoundException",
                    format!("Certificate '{arn}' is in state {}", cert.status),
                ));
            }
            let chain = match (&cert.chain_pem, cert.kind.as_str()) {
                (Some(ch), _) => Some(ch.clone()),
                (None, "AMAZON_ISSUED") => c.ca.as_ref().map(|ca| ca.cert_pem().to_string()),
                (None, _) => None,
            };
            let mut out = json!({ "Certificate": cert.cert_pem });
            if let Some(ch) = chain {
                out["CertificateChain"] = json!(ch);
            }
            Ok(out)
        }
        "DeleteCertificate" => {
            let arn = c.body.required_str("CertificateArn")?.to_string();
            c.mutate(|w, env| w.delete_certificate(env, &arn))?;
            Ok(json!({}))
        }
        "AddTagsToCertificate" => {
            let arn = c.body.required_str("CertificateArn")?.to_string();
            let tags = tags_of(c)?;
            c.mutate(|w, env| {
                w.certificate_tags_mut(env, &arn)?.extend(tags);
                Ok(())
            })?;
            Ok(json!({}))
        }
        "RemoveTagsFromCertificate" => {
            let arn = c.body.required_str("CertificateArn")?.to_string();
            let tags = tags_of(c)?;
            c.mutate(|w, env| {
                let t = w.certificate_tags_mut(env, &arn)?;
                for k in tags.keys() {
                    t.remove(k);
                }
                Ok(())
            })?;
            Ok(json!({}))
        }
        "ListTagsForCertificate" => {
            let arn = c.body.required_str("CertificateArn")?.to_string();
            let w = c.read()?;
            let tags: Vec<Value> = w
                .certificate(&c.env, &arn)?
                .tags
                .iter()
                .map(|(k, v)| json!({ "Key": k, "Value": v }))
                .collect();
            Ok(json!({ "Tags": tags }))
        }
        other => Err(unknown_operation(other)),
    }
}
