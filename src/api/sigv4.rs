//! SigV4 `Authorization` header parsing: the access key (which selects the account), the
//! credential scope's region (which selects the region of the world) and service. In the
//! default auth mode any well-formed credentials are accepted; signatures are not checked
//! (`--auth strict` is not implemented yet: see docs/fidelity.md).

use crate::model::{ApiError, ApiResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ec2/aws4_request,
/// SignedHeaders=…, Signature=…`.
pub fn parse_authorization(header: &str) -> ApiResult<Credential> {
    let bad = || ApiError::auth("AWS was not able to validate the provided access credentials");
    let rest = header
        .trim()
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or_else(bad)?;
    let mut cred = None;
    let mut has_sig = false;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(c) = part.strip_prefix("Credential=") {
            cred = Some(c);
        } else if part.starts_with("Signature=") {
            has_sig = true;
        }
    }
    let cred = cred.ok_or_else(bad)?;
    let fields: Vec<&str> = cred.split('/').collect();
    if !has_sig
        || fields.len() != 5
        || fields[4] != "aws4_request"
        || fields.iter().any(|f| f.is_empty())
    {
        return Err(bad());
    }
    Ok(Credential {
        access_key: fields[0].to_string(),
        date: fields[1].to_string(),
        region: fields[2].to_string(),
        service: fields[3].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_scope_gives_access_key_region_and_service() {
        let c = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=test/20240101/eu-west-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(c.access_key, "test");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.service, "ec2");
    }

    #[test]
    fn malformed_authorization_is_auth_failure() {
        for h in [
            "",
            "Basic abc",
            "AWS4-HMAC-SHA256 Credential=a/b, Signature=x",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request",
        ] {
            assert_eq!(
                parse_authorization(h).unwrap_err().code,
                "AuthFailure",
                "{h}"
            );
        }
    }
}
