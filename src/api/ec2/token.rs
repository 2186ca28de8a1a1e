//! `NextToken`s: the position of the next page, made opaque and checked. A token is the
//! sort key of the next page's first row in URL-safe base64, a dot, and a check value
//! over the action and the key. A token this server did not hand out (garbage, a
//! truncated copy, one from another action) fails the check and earns EC2's
//! `InvalidParameterValue` instead of an empty page.
//!
//! The check value is not a secret MAC: a token only says where a listing of the
//! caller's own resources resumes, so forging one gains nothing a request for the same
//! rows would not. What matters is that mistakes are reported, as AWS reports them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;

use crate::model::{ApiError, ApiResult};

fn check(action: &str, key: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(b"vpclab NextToken\0");
    h.update(action.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// The token that resumes `action`'s listing at `key`.
pub fn encode(action: &str, key: &str) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(key), check(action, key))
}

/// The key a token of `action` names; `InvalidParameterValue` when it is not one this
/// server handed out for that action.
pub fn decode(action: &str, token: &str) -> ApiResult<String> {
    let invalid = || {
        ApiError::invalid_value(format!(
            "Value ( {token} ) for parameter NextToken is invalid. The token is invalid."
        ))
    };
    let (data, sum) = token.split_once('.').ok_or_else(invalid)?;
    let key = URL_SAFE_NO_PAD
        .decode(data)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    if sum != check(action, &key) {
        return Err(invalid());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_form_safe() {
        let t = encode("DescribeVpcs", "vpc-0a1b2c3d");
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{t}"
        );
        assert_eq!(decode("DescribeVpcs", &t).unwrap(), "vpc-0a1b2c3d");
    }

    #[test]
    fn foreign_or_damaged_tokens_are_invalid_parameter_values() {
        let t = encode("DescribeVpcs", "vpc-0a1b2c3d");
        let damaged = format!("{}x", &t[..t.len() - 1]);
        for bad in [
            "garbage",
            "vpc-0a1b2c3d",
            ".",
            "%%%.0000000000000000",
            damaged.as_str(),
        ] {
            assert_eq!(
                decode("DescribeVpcs", bad).unwrap_err().code,
                "InvalidParameterValue",
                "{bad}"
            );
        }
        assert!(
            decode("DescribeSubnets", &t).is_err(),
            "another action's token"
        );
    }
}
