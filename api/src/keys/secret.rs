//! A key or token held in memory: never printed (its `Debug` is redacted and
//! it has no `Display`), compared in constant time.

use subtle::ConstantTimeEq;

/// A secret string: the admin token or a client key.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(text: impl Into<Box<str>>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for hashing or sending; never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `other` is this secret, in time that does not depend on where
    /// they differ.
    pub fn matches(&self, other: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), other.as_bytes())
    }
}

/// For flags and environment variables (`--admin-token`, `--token`).
impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Whether two byte strings are equal, in time that depends on their lengths
/// only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = Secret::new("rtk_0123456789abcdef");
        assert_eq!(format!("{secret:?}"), "Secret(redacted)");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(Secret(redacted))");
        assert!(secret.matches("rtk_0123456789abcdef"));
        assert!(!secret.matches("rtk_0123456789abcdeF"));
        assert!(!secret.matches("rtk_"));
    }
}
