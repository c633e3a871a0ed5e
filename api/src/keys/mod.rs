//! Client keys: who may predict, send feedback or administer, by name.
//!
//! A key is `rtk_` and 64 hex digits: 256 random bits, shown once when it is
//! created. The database keeps only its sha256 (and a prefix of it, safe to
//! show). A plain hash suffices where passwords need a slow or keyed one: a
//! 256-bit random key cannot be guessed, so a stolen hash table reveals no key
//! and needs no server pepper to protect; and a plain hash can be looked up
//! by index in one query. The bootstrap admin token (`RETRAIN_ADMIN_TOKEN` or
//! the generated file) is the key named `admin` with every scope; it lives in
//! the process only.
//!
//! [`store`] keeps keys and their audited history; [`cache`] remembers
//! lookups for a second, so a revoked key is refused on every replica within
//! that second; [`limits`] holds each key's rate buckets and hourly cap;
//! [`access`] decides what a request may do.

pub mod access;
pub mod cache;
pub mod limits;
pub mod secret;
pub mod store;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use utoipa::ToSchema;

pub use access::Access;
pub use secret::Secret;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `POST /predict` and batches, when predictions need a key.
    Predict,
    /// `POST /feedback`.
    Feedback,
    /// Every admin route: runs, models, quarantine, keys.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Predict, Scope::Feedback, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Predict => "predict",
            Scope::Feedback => "feedback",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The name of the bootstrap admin key (the admin token).
pub const ADMIN: &str = "admin";
/// The source of feedback sent without a key where feedback is open.
pub const ANONYMOUS: &str = "anonymous";

/// A request's key, once resolved: who the caller is and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name: feedback's source and the actor of admin actions.
    pub name: Arc<str>,
    pub scopes: Vec<Scope>,
    /// The one model the key may predict for and send feedback to.
    pub model: Option<String>,
    /// A quarantine rule in force names the key as its source: its hourly
    /// feedback cap is the lower one.
    pub flagged: bool,
}

impl Caller {
    /// The bootstrap admin key.
    pub fn bootstrap_admin() -> Self {
        Self {
            name: ADMIN.into(),
            scopes: Scope::ALL.to_vec(),
            model: None,
            flagged: false,
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether this is the shared bootstrap admin token rather than a named key.
    pub fn is_bootstrap(&self) -> bool {
        &*self.name == ADMIN
    }
}

/// A new random key.
pub fn generate() -> Secret {
    let mut rng = rand::thread_rng();
    let hex: String = (0..32).map(|_| format!("{:02x}", rng.r#gen::<u8>())).collect();
    Secret::new(format!("rtk_{hex}"))
}

/// What the database keeps of a key: its sha256.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The part of a key that may be shown to tell keys apart: `rtk_` and 8
/// hex digits (32 of the key's 256 bits).
pub fn prefix(key: &str) -> String {
    key.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_only_their_prefix_is_shown() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 68);
        assert!(a.expose().starts_with("rtk_"));
        assert_eq!(prefix(a.expose()).len(), 12);
        assert!(a.expose().starts_with(&prefix(a.expose())));
        assert_ne!(hash(a.expose()), hash(b.expose()));
    }
}
