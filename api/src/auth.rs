//! Admin access: admin endpoints need `Authorization: Bearer <key>` with a
//! key that has the `admin` scope (see [`crate::keys`]); the bootstrap admin
//! token is such a key, named `admin`. The token comes from the environment,
//! or is generated into a file only its owner can read; it is never logged,
//! and the service refuses to start with a short or well-known one.

use crate::error::ApiError;
use crate::keys::{Caller, Scope};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::Rng;
use std::path::{Path, PathBuf};

/// Proof that the request carried a key with the `admin` scope; names the
/// actor for the audit trail (see [`actor_of`]).
#[derive(Debug, Clone)]
pub struct Admin {
    pub actor: String,
}

/// Header naming the person or system behind an admin call.
pub const ACTOR_HEADER: &str = "x-retrain-actor";

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = state
            .access
            .require(&state.pool, &parts.headers, Scope::Admin, None)
            .await?;
        Ok(Self {
            actor: actor_of(&caller, header_actor(&parts.headers)?.as_deref()),
        })
    }
}

/// Who the audit trail records for an admin action by `caller`, with the
/// person it names (`X-Retrain-Actor`, the console's sign-in name), if any.
/// A named key is the actor, the person a note on it: `ci-bot (alice)`. The
/// bootstrap admin token is shared, so the person it names is the actor, as
/// before keys existed; without one it is `admin`.
pub fn actor_of(caller: &Caller, person: Option<&str>) -> String {
    match person {
        None => caller.name.to_string(),
        Some(person) if caller.is_bootstrap() => person.to_owned(),
        Some(person) => format!("{} ({person})", caller.name),
    }
}

/// The caller named in `X-Retrain-Actor` (UTF-8, 1 to 200 characters, no
/// control characters), if sent. A header that is present but unusable is
/// refused rather than dropped, so the audit trail never records someone
/// other than who the caller said they were.
///
/// # Errors
/// 422 `invalid_actor`.
fn header_actor(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(ACTOR_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_actor",
            "send one X-Retrain-Actor header, not several",
        ));
    }
    let text = std::str::from_utf8(value.as_bytes())
        .map_err(|_| ApiError::bad_request("invalid_actor", "X-Retrain-Actor must be UTF-8 text"))?
        .trim();
    crate::routes::input::check_text(text, "X-Retrain-Actor", 200, "invalid_actor")?;
    Ok(Some(text.to_owned()))
}

/// Tokens anyone would try first; the service refuses to start with one.
const PLACEHOLDERS: [&str; 12] = [
    "change-me",
    "changeme",
    "change_me",
    "admin",
    "secret",
    "password",
    "token",
    "test",
    "example",
    "default",
    "retrain",
    "letmein",
];

/// Shortest admin token the service starts with.
pub const MIN_TOKEN_LEN: usize = 24;

/// Checks an admin token before the service starts with it.
///
/// # Errors
/// Why it is refused (never the token itself).
pub fn check_token(token: &str) -> Result<(), String> {
    // Letters and digits only: `change-me`, `CHANGEME` and `changeme-changeme-changeme` are one placeholder.
    let letters: String = token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let repeats = |p: &str| {
        let p: String = p.chars().filter(char::is_ascii_alphanumeric).collect();
        !letters.is_empty() && letters.len().is_multiple_of(p.len()) && letters == p.repeat(letters.len() / p.len())
    };
    if PLACEHOLDERS.iter().any(|p| repeats(p)) {
        return Err(
            "the admin token is a well-known placeholder; set a random one (or unset it to have one generated)".into(),
        );
    }
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "the admin token has fewer than {MIN_TOKEN_LEN} characters; set a longer random one (or unset it to have one generated)"
        ));
    }
    Ok(())
}

/// Where a generated token goes when no file is configured.
pub fn default_token_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("retrain").join("admin-token")
}

/// The configured token, else the one in `file`, else a new one written to
/// `file` with mode 0600. Returns the token and where it came from.
///
/// # Errors
/// The file cannot be read or written.
pub fn resolve_token(configured: Option<&str>, file: &Path) -> std::io::Result<(String, TokenSource)> {
    if let Some(token) = configured.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok((token.to_owned(), TokenSource::Environment));
    }
    if let Ok(existing) = std::fs::read_to_string(file) {
        let token = existing.trim().to_owned();
        if !token.is_empty() {
            return Ok((token, TokenSource::File(file.to_owned())));
        }
    }
    let token: String = {
        let mut rng = rand::thread_rng();
        (0..32).map(|_| format!("{:02x}", rng.r#gen::<u8>())).collect()
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_private(file, &token)?;
    Ok((token, TokenSource::Generated(file.to_owned())))
}

#[cfg(unix)]
fn write_private(file: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)?;
    out.write_all(token.as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(not(unix))]
fn write_private(file: &Path, token: &str) -> std::io::Result<()> {
    std::fs::write(file, format!("{token}\n"))
}

/// Where the admin token came from, for the startup log (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Environment,
    File(PathBuf),
    Generated(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("retrain-token-{}", uuid::Uuid::new_v4()));
        let file = dir.join("admin-token");
        let (token, source) = resolve_token(None, &file).unwrap();
        assert_eq!(source, TokenSource::Generated(file.clone()));
        assert_eq!(token.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (again, source) = resolve_token(None, &file).unwrap();
        assert_eq!(
            (again.as_str(), source),
            (token.as_str(), TokenSource::File(file.clone()))
        );
        let (configured, source) = resolve_token(Some("s3cret"), &file).unwrap();
        assert_eq!((configured.as_str(), source), ("s3cret", TokenSource::Environment));
        assert_eq!(check_token(&token), Ok(()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn short_and_placeholder_tokens_are_refused() {
        for token in [
            "s3cret",
            "change-me",
            "CHANGE-ME-change-me-change-me",
            "password-password-password",
        ] {
            assert!(check_token(token).is_err(), "{token}");
        }
        assert_eq!(check_token("faults-admin-token-long-enough"), Ok(()));
    }

    #[test]
    fn a_named_key_is_the_actor_and_the_shared_token_names_the_person() {
        let admin = Caller::bootstrap_admin();
        let bot = Caller {
            name: "ci-bot".into(),
            ..Caller::bootstrap_admin()
        };
        assert_eq!(actor_of(&admin, None), "admin");
        assert_eq!(actor_of(&admin, Some("alice")), "alice");
        assert_eq!(actor_of(&bot, None), "ci-bot");
        assert_eq!(actor_of(&bot, Some("alice")), "ci-bot (alice)");
    }
}
