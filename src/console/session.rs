//! Console sessions: a signed cookie naming the session and the account it acts for,
//! and the CSRF token every state-changing form carries.
//!
//! The cookie is `sid.account.signature`, where the signature is an HMAC-SHA256 of the
//! other two under a key drawn when the daemon starts (so a restart signs everyone out,
//! and nothing secret is stored). It is `HttpOnly` (scripts cannot read it) and
//! `SameSite=Strict` (no other site's page can send it). The CSRF token is a second HMAC
//! of the session id: a form from another origin cannot know it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The session cookie's name.
pub const COOKIE: &str = "vpclab_console";
/// The cookie holding the chosen region (not a secret; checked against the region list).
pub const REGION_COOKIE: &str = "vpclab_region";

/// Signs and checks session cookies and CSRF tokens.
#[derive(Clone)]
pub struct Keyring {
    key: [u8; 32],
}

/// A signed-in (or, in open mode, anonymous) console user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub sid: String,
    pub account: String,
}

impl Keyring {
    /// A keyring with a fresh random key.
    pub fn random() -> Keyring {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        Keyring { key }
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        for p in parts {
            m.update(p.as_bytes());
            m.update(b"\n");
        }
        hex::encode(m.finalize().into_bytes())
    }

    /// A new session for `account`.
    pub fn new_session(&self, account: &str) -> Session {
        let mut sid = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut sid);
        Session {
            sid: hex::encode(sid),
            account: account.to_string(),
        }
    }

    /// The cookie value of a session.
    pub fn cookie_value(&self, s: &Session) -> String {
        format!(
            "{}.{}.{}",
            s.sid,
            s.account,
            self.mac(&["session", &s.sid, &s.account])
        )
    }

    /// The session a cookie value names, if its signature is ours.
    pub fn open(&self, value: &str) -> Option<Session> {
        let mut it = value.split('.');
        let (sid, account, sig) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some()
            || sid.len() != 32
            || !sid.bytes().all(|b| b.is_ascii_hexdigit())
            || account.is_empty()
            || !account.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let want = self.mac(&["session", sid, account]);
        if !same(want.as_bytes(), sig.as_bytes()) {
            return None;
        }
        Some(Session {
            sid: sid.to_string(),
            account: account.to_string(),
        })
    }

    /// The CSRF token of a session.
    pub fn csrf(&self, s: &Session) -> String {
        self.mac(&["csrf", &s.sid])
    }

    /// Whether `token` is the session's CSRF token.
    pub fn csrf_ok(&self, s: &Session, token: &str) -> bool {
        same(self.csrf(s).as_bytes(), token.as_bytes())
    }
}

/// Compares without stopping at the first difference.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Set-Cookie` value of a session cookie.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// One cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_open_only_with_our_signature() {
        let k = Keyring::random();
        let s = k.new_session("000000000000");
        let v = k.cookie_value(&s);
        assert_eq!(k.open(&v), Some(s.clone()));
        // Another account with the same signature is refused.
        let forged = v.replace(".000000000000.", ".111111111111.");
        assert_eq!(k.open(&forged), None);
        assert_eq!(Keyring::random().open(&v), None);
        assert!(k.csrf_ok(&s, &k.csrf(&s)));
        assert!(!k.csrf_ok(&s, ""));
    }
}
