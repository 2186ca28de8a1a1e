//! SigV4 credential parsing and strict verification: the first bytes choose what the
//! rest becomes (an Authorization header, an X-Amz-Date, a presigned query), the clock
//! is pinned.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpclab::api::sigv4::{
    AccessKey, AuthMode, KeyFile, SignedRequest, parse_amz_date, parse_authorization,
};
use vpclab::model::Timestamp;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_authorization(&text);
    let _ = parse_amz_date(&text);
    let mut parts = text.splitn(4, '\n');
    let auth = parts.next().unwrap_or_default().to_string();
    let date = parts.next().unwrap_or_default().to_string();
    let query = parts.next().map(str::to_string);
    let body = parts.next().unwrap_or_default().as_bytes().to_vec();
    let req = SignedRequest {
        method: "POST".into(),
        path: "/".into(),
        query,
        headers: vec![
            ("authorization".into(), auth),
            ("x-amz-date".into(), date),
            ("host".into(), "127.0.0.1:4566".into()),
        ],
    };
    let strict = AuthMode::strict(KeyFile {
        keys: vec![AccessKey {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "secret".into(),
            account: "111122223333".into(),
        }],
    });
    let now = Timestamp(1_764_000_000_000);
    let _ = strict.authenticate(&req, &body, now);
    let _ = AuthMode::Open.authenticate(&req, &body, now);
});
