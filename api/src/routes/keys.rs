//! `POST /keys`, `GET /keys` and `POST /keys/{name}/revoke`: client keys,
//! made and revoked by an admin, audited (`client_key_events`). A new key
//! is in the answer to its creation and nowhere else.

use super::input::{Body, PathParam};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::keys::store::{self, KeyRecord, NewKey, Revoked};
use crate::keys::{ADMIN, ANONYMOUS, Scope};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A key to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The client's name: its feedback's source and its admin actions' actor. 1 to 64
    /// letters, digits and `.`, `_`, `@`, `-`, starting with a letter or digit; not
    /// `admin` or `anonymous`; never reused, even after a revocation.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
    pub name: String,
    /// What the key may do: one or more of `predict`, `feedback`, `admin`.
    pub scopes: Vec<Scope>,
    /// The one model the key may predict for and send feedback to (any if absent).
    pub model: Option<String>,
}

/// A new key: the only time the key itself is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key, to send as `Authorization: Bearer <key>`. Shown once: only its hash is kept.
    pub key: String,
    #[serde(flatten)]
    pub record: KeyRecord,
}

/// Every key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyRecord>,
}

/// Make a client key (shown once in the answer).
#[utoipa::path(post, path = "/keys", tag = "keys", request_body = CreateKey,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = CreatedKey),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "A key of that name exists or existed", body = ErrorBody),
        (status = 422, description = "An invalid name, or no or unknown scopes", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Body(request): Body<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    check_name(&request.name)?;
    if request.scopes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_scopes",
            "give the key one or more scopes",
        ));
    }
    if let Some(model) = &request.model {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM models WHERE name = $1)")
            .bind(model)
            .fetch_one(&state.pool)
            .await?;
        if !exists {
            return Err(ApiError::not_found(format!("no model named {model:?}")));
        }
    }
    let secret = crate::keys::generate();
    let key = NewKey {
        name: &request.name,
        scopes: &request.scopes,
        model: request.model.as_deref(),
        actor: &admin.actor,
    };
    let record = store::create(&state.pool, &key, &secret).await?.ok_or_else(|| {
        ApiError::conflict(
            "key_exists",
            format!(
                "a key named {:?} exists or existed; names are never reused",
                request.name
            ),
        )
    })?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: secret.expose().to_owned(),
            record,
        }),
    ))
}

/// Every client key, newest first, without the keys themselves.
#[utoipa::path(get, path = "/keys", tag = "keys",
    security(("admin_token" = [])),
    responses((status = 200, body = KeyList)))]
pub async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        keys: store::list(&state.pool).await?,
    }))
}

/// Revoke a key: refused from now on (on other replicas within 2 s).
#[utoipa::path(post, path = "/keys/{name}/revoke", tag = "keys",
    params(("name" = String, Path, description = "The key's name")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = KeyRecord, description = "Revoked now, or already"),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<Json<KeyRecord>, ApiError> {
    let revoked = store::revoke(&state.pool, &name, &admin.actor).await?;
    state.access.forget(&name);
    match revoked {
        Revoked::Now(record) | Revoked::Already(record) => Ok(Json(record)),
        Revoked::NoSuchKey => Err(ApiError::not_found(format!("no key named {name:?}"))),
    }
}

/// # Errors
/// 422 `invalid_key_name`.
fn check_name(name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !well_formed || [ADMIN, ANONYMOUS].contains(&name) {
        return Err(ApiError::bad_request(
            "invalid_key_name",
            "a key's name is 1 to 64 letters, digits and . _ @ -, starting with a letter or digit, \
             and not admin or anonymous",
        ));
    }
    Ok(())
}
