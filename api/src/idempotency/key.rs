//! The key a client sends: the `Idempotency-Key` header parsed once, at the
//! edge, into an [`IdempotencyKey`], and a request's [`Claim`] on it (the key
//! with the hash of what the request asked).

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The request header carrying the key.
pub const HEADER: &str = "idempotency-key";
/// Longest key, in characters.
pub const MAX_KEY_LEN: usize = 200;

/// A valid key: 1 to 200 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// # Errors
    /// 422 `invalid_idempotency_key`.
    pub fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        if raw.is_empty() || raw.len() > MAX_KEY_LEN {
            return Err(invalid_key(format!(
                "Idempotency-Key must have 1 to {MAX_KEY_LEN} characters"
            )));
        }
        if !raw.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(invalid_key("Idempotency-Key must be printable ASCII".to_owned()));
        }
        // Checked ASCII above.
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn invalid_key(message: String) -> ApiError {
    ApiError::bad_request("invalid_idempotency_key", message)
}

/// The optional `Idempotency-Key` header, validated.
#[derive(Debug)]
pub struct KeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for KeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(invalid_key("send one Idempotency-Key header, not several".to_owned()));
        }
        Ok(Self(Some(IdempotencyKey::parse(value.as_bytes())?)))
    }
}

/// sha256 of a request's canonical JSON (the parsed request serialized
/// again), so whitespace or key order do not make a retry "another body".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHash(pub [u8; 32]);

impl RequestHash {
    pub fn of(request: &impl Serialize) -> Self {
        let bytes = serde_json::to_vec(request).unwrap_or_default();
        Self(Sha256::digest(&bytes).into())
    }
}

/// A keyed request: its key and what it asked.
#[derive(Debug, Clone)]
pub struct Claim {
    pub key: IdempotencyKey,
    pub hash: RequestHash,
}

impl Claim {
    pub fn new(key: IdempotencyKey, request: &impl Serialize) -> Self {
        Self {
            key,
            hash: RequestHash::of(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse(b"2b6f0cc9-1e6b-4a33-9a1c-5f1e0e8e7a11").is_ok());
        assert!(IdempotencyKey::parse(" ~".repeat(100).as_bytes()).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 201][..],
            b"tab\t",
            b"nul\0",
            "caf\u{e9}".as_bytes(),
            b"\x7f",
        ] {
            assert_eq!(
                IdempotencyKey::parse(bad).unwrap_err().code,
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
    }
}
