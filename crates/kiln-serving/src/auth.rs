//! Who may call an endpoint: `key` endpoints accept either of two keys (so one can be
//! rotated while clients move to the other); `aml_token` endpoints accept tokens the
//! workspace signed for that endpoint, which expire.
//!
//! A token is `<endpoint>.<expiry, epoch seconds>.<HMAC-SHA256 of both, hex>`, signed with a
//! secret of the endpoint: the server checks it without storing tokens, and regenerating
//! the secret revokes every token handed out.

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2_11::Sha256;

/// How long a token is valid, as the original service hands them out.
pub const TOKEN_LIFETIME_S: i64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    pub primary: String,
    pub secondary: String,
    /// Signs `aml_token` tokens.
    pub token_secret: String,
}

/// A fresh random secret: 256 bits from the OS, as hex.
pub fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Keys {
    pub fn generate() -> Keys {
        Keys { primary: random_secret(), secondary: random_secret(), token_secret: random_secret() }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Invalid,
    Expired,
}

impl Denied {
    pub fn message(&self) -> &'static str {
        match self {
            Denied::Missing => "this endpoint needs an 'Authorization: Bearer <key or token>' header",
            Denied::Invalid => "the key or token is not valid for this endpoint",
            Denied::Expired => "the token has expired; get a new one",
        }
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing
/// about how much of a key was right.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn signature(secret: &str, endpoint: &str, expiry: i64) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{endpoint}.{expiry}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A token for `endpoint` that expires at `expiry` (epoch seconds).
pub fn token(keys: &Keys, endpoint: &str, expiry: i64) -> String {
    format!("{endpoint}.{expiry}.{}", signature(&keys.token_secret, endpoint, expiry))
}

/// The credential of an `Authorization` header value (`Bearer x`, or the bare value).
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    if h.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let v = match h.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => h,
    };
    (!v.is_empty()).then_some(v)
}

/// Checks a credential against an endpoint's keys (`key` mode).
pub fn check_key(keys: &Keys, credential: Option<&str>) -> Result<(), Denied> {
    let c = credential.ok_or(Denied::Missing)?;
    if same(c, &keys.primary) | same(c, &keys.secondary) { Ok(()) } else { Err(Denied::Invalid) }
}

/// Checks a token (`aml_token` mode) at time `now` (epoch seconds).
pub fn check_token(keys: &Keys, endpoint: &str, credential: Option<&str>, now: i64) -> Result<(), Denied> {
    let c = credential.ok_or(Denied::Missing)?;
    let mut parts = c.rsplitn(3, '.');
    let (Some(sig), Some(expiry), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Denied::Invalid);
    };
    let Ok(expiry) = expiry.parse::<i64>() else { return Err(Denied::Invalid) };
    if name != endpoint || !same(sig, &signature(&keys.token_secret, endpoint, expiry)) {
        return Err(Denied::Invalid);
    }
    if expiry <= now {
        return Err(Denied::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_key_works_and_nothing_else_does() {
        let k = Keys::generate();
        assert_eq!(k.primary.len(), 64);
        assert_ne!(k.primary, k.secondary);
        assert!(check_key(&k, Some(&k.primary)).is_ok());
        assert!(check_key(&k, Some(&k.secondary)).is_ok());
        assert_eq!(check_key(&k, Some(&k.token_secret)), Err(Denied::Invalid));
        assert_eq!(check_key(&k, Some("x")), Err(Denied::Invalid));
        assert_eq!(check_key(&k, None), Err(Denied::Missing));
        assert_eq!(bearer(Some("Bearer abc ")), Some("abc"));
        assert_eq!(bearer(Some("bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("abc")), Some("abc"));
        assert_eq!(bearer(Some("Bearer ")), None);
    }

    #[test]
    fn tokens_are_bound_to_their_endpoint_and_expire() {
        let k = Keys::generate();
        let t = token(&k, "my-ep", 1000);
        assert!(check_token(&k, "my-ep", Some(&t), 999).is_ok());
        assert_eq!(check_token(&k, "my-ep", Some(&t), 1000), Err(Denied::Expired));
        assert_eq!(check_token(&k, "other", Some(&t), 10), Err(Denied::Invalid));
        let forged = t.replace(".1000.", ".9999.");
        assert_eq!(check_token(&k, "my-ep", Some(&forged), 10), Err(Denied::Invalid));
        let rotated = Keys::generate();
        assert_eq!(
            check_token(&rotated, "my-ep", Some(&t), 10),
            Err(Denied::Invalid),
            "a new secret revokes old tokens"
        );
        assert_eq!(check_token(&k, "my-ep", Some("garbage"), 10), Err(Denied::Invalid));
    }
}
