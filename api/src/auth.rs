//! Admin access: mutating admin endpoints need `Authorization: Bearer
//! <token>`. The token comes from the environment, or is generated into a
//! file only its owner can read; it is never logged.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use rand::Rng;
use std::path::{Path, PathBuf};

/// Proof that the request carried the admin token; names the caller for the
/// audit trail (`X-Retrain-Actor`, else `admin`; an invalid one is refused).
#[derive(Debug, Clone)]
pub struct Admin {
    pub actor: String,
}

/// Header naming the person or system behind an admin call.
pub const ACTOR_HEADER: &str = "x-retrain-actor";

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("this endpoint needs an admin token: Authorization: Bearer <token>"))?;
        if !constant_time_eq(presented.trim().as_bytes(), state.admin_token.as_bytes()) {
            return Err(unauthorized("the admin token is not valid"));
        }
        Ok(Self {
            actor: actor(&parts.headers)?,
        })
    }
}

/// The caller named in `X-Retrain-Actor` (UTF-8, 1 to 200 characters, no
/// control characters), or `admin` without the header. A header that is
/// present but unusable is refused rather than replaced, so the audit trail
/// never records someone other than who the caller said they were.
///
/// # Errors
/// 422 `invalid_actor`.
fn actor(headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    let mut values = headers.get_all(ACTOR_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok("admin".to_owned());
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
    Ok(text.to_owned())
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        std::fs::remove_dir_all(dir).unwrap();
    }
}
