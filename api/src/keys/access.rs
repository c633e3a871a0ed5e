//! What a request may do: its `Authorization: Bearer` key resolved to a
//! [`Caller`], checked against the scope its route needs (a setting for
//! predictions and feedback; always `admin` for admin routes) and the key's
//! model, and charged against the key's limits.

use super::cache::KeyCache;
use super::limits::{LimitSettings, Limiter, Spend};
use super::{Caller, Scope, Secret};
use crate::error::ApiError;
use axum::http::{HeaderMap, StatusCode, header};
use sqlx::PgPool;
use std::sync::Arc;

/// Which routes are open to callers without a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRoutes {
    /// `POST /predict` and batches need no key (the default).
    pub predict: bool,
    /// `POST /feedback` needs no key (off by default): rows sent without one
    /// get the source `anonymous`.
    pub feedback: bool,
}

/// The API's keys: the bootstrap admin token, remembered lookups, limits.
#[derive(Debug)]
pub struct Access {
    admin_token: Secret,
    admin: Arc<Caller>,
    cache: KeyCache,
    limiter: Limiter,
    open: OpenRoutes,
}

impl Access {
    pub fn new(admin_token: Secret, open: OpenRoutes, limits: LimitSettings) -> Self {
        Self {
            admin_token,
            admin: Arc::new(Caller::bootstrap_admin()),
            cache: KeyCache::default(),
            limiter: Limiter::new(limits),
            open,
        }
    }

    /// The key a request presents as `Authorization: Bearer <key>`, if any.
    pub fn presented(headers: &HeaderMap) -> Option<Secret> {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|key| Secret::new(key.trim()))
    }

    /// The caller a key names: the bootstrap admin for the admin token, else
    /// a live client key.
    ///
    /// # Errors
    /// 401 `unauthorized` for an unknown or revoked key; the database's.
    pub async fn resolve(&self, pool: &PgPool, key: &Secret) -> Result<Arc<Caller>, ApiError> {
        if self.admin_token.matches(key.expose()) {
            return Ok(self.admin.clone());
        }
        self.cache
            .find(pool, super::hash(key.expose()))
            .await?
            .ok_or_else(|| unauthorized("the key is not valid (unknown or revoked)"))
    }

    /// The caller of a request that needs `scope` (for `model`, if the route
    /// names one); `None` for a caller without a key on an open route.
    ///
    /// # Errors
    /// As [`Access::require`].
    pub async fn authorize(
        &self,
        pool: &PgPool,
        headers: &HeaderMap,
        scope: Scope,
        model: Option<&str>,
    ) -> Result<Option<Arc<Caller>>, ApiError> {
        let open = match scope {
            Scope::Predict => self.open.predict,
            Scope::Feedback => self.open.feedback,
            Scope::Admin => false,
        };
        match Self::presented(headers) {
            None if open => Ok(None),
            key => self.check(pool, key, scope, model).await.map(Some),
        }
    }

    /// The caller of a request that needs `scope` whatever the open-route
    /// settings (admin routes are never open).
    ///
    /// # Errors
    /// 401 without a key, or with an unknown or revoked key; 403
    /// `forbidden` for a key without the scope or for another model.
    pub async fn require(
        &self,
        pool: &PgPool,
        headers: &HeaderMap,
        scope: Scope,
        model: Option<&str>,
    ) -> Result<Arc<Caller>, ApiError> {
        self.check(pool, Self::presented(headers), scope, model).await
    }

    /// [`Access::require`] for the key the request presented, if any.
    async fn check(
        &self,
        pool: &PgPool,
        key: Option<Secret>,
        scope: Scope,
        model: Option<&str>,
    ) -> Result<Arc<Caller>, ApiError> {
        let Some(key) = key else {
            return Err(unauthorized(&format!(
                "this endpoint needs a key with the {} scope: Authorization: Bearer <key>",
                scope.as_str()
            )));
        };
        let caller = self.resolve(pool, &key).await?;
        if !caller.has(scope) {
            return Err(forbidden(format!(
                "the key {:?} does not have the {} scope",
                caller.name,
                scope.as_str()
            )));
        }
        if let (Some(only), Some(model)) = (&caller.model, model)
            && only != model
        {
            return Err(forbidden(format!(
                "the key {:?} is for the model {only:?} only",
                caller.name
            )));
        }
        Ok(caller)
    }

    /// Charges `spend` to the caller's limits. Limits are per client key: a
    /// caller without a key (on an open route) and the bootstrap admin token
    /// (the operator's own) have none.
    ///
    /// # Errors
    /// 429 with Retry-After.
    pub fn spend(&self, caller: Option<&Caller>, spend: Spend) -> Result<(), ApiError> {
        match caller {
            Some(caller) if !caller.is_bootstrap() => self.limiter.spend(caller, spend),
            _ => Ok(()),
        }
    }

    /// Refuses the key named `name` at once in this process (it was revoked).
    pub fn forget(&self, name: &str) {
        self.cache.forget(name);
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}
