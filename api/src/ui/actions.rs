//! What the console's forms do: trigger, cancel and retry runs, promote or
//! roll back a version, quarantine a source and release a rule. Each checks
//! the operator's cookie and the form's CSRF token, then calls the function
//! the REST route calls (so the checks, the audit rows and the errors are
//! the API's), and sends the browser to the page showing the result.

use super::form::FormBody;
use super::session::Operator;
use crate::error::ApiError;
use crate::routes::input::PathParam;
use crate::routes::quarantine::{QuarantineRequest, add_rule, release_rule};
use crate::routes::runs::manual_run;
use crate::routes::versions::promote_to;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Redirect;
use retrain_steps::store::models::name_problem;
use serde::Deserialize;
use uuid::Uuid;

/// A form with nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct Bare {
    csrf: String,
}

/// A form with a reason.
#[derive(Debug, Deserialize)]
pub struct Reasoned {
    csrf: String,
    reason: String,
}

/// The trigger form.
#[derive(Debug, Deserialize)]
pub struct Trigger {
    csrf: String,
    model: String,
    #[serde(default)]
    reason: String,
}

/// `POST /ui/runs`: start a run (or join the model's active one) and show it.
pub async fn trigger(
    State(state): State<AppState>,
    operator: Operator,
    FormBody(form): FormBody<Trigger>,
) -> Result<Redirect, ApiError> {
    operator.check(&form.csrf)?;
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    let new = manual_run(&state, &operator.actor, &form.model, reason).await?;
    let created = state.engine.create_run(new).await?;
    Ok(Redirect::to(&format!("/ui/runs/{}", created.run().id)))
}

/// `POST /ui/runs/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    operator: Operator,
    PathParam(id): PathParam<Uuid>,
    FormBody(form): FormBody<Bare>,
) -> Result<Redirect, ApiError> {
    operator.check(&form.csrf)?;
    state.engine.cancel_run(id, &operator.actor).await?;
    Ok(Redirect::to(&format!("/ui/runs/{id}")))
}

/// `POST /ui/runs/{id}/retry`.
pub async fn retry(
    State(state): State<AppState>,
    operator: Operator,
    PathParam(id): PathParam<Uuid>,
    FormBody(form): FormBody<Bare>,
) -> Result<Redirect, ApiError> {
    operator.check(&form.csrf)?;
    state.engine.retry_run(id, &operator.actor).await?;
    Ok(Redirect::to(&format!("/ui/runs/{id}")))
}

/// `POST /ui/models/{name}/versions/{version}/promote`: a promotion, or a
/// rollback to an older version.
pub async fn promote(
    State(state): State<AppState>,
    operator: Operator,
    PathParam((name, version)): PathParam<(String, i32)>,
    FormBody(form): FormBody<Reasoned>,
) -> Result<Redirect, ApiError> {
    operator.check(&form.csrf)?;
    promote_to(&state, &operator.actor, &name, version, form.reason.trim()).await?;
    Ok(Redirect::to(&format!("/ui/models/{name}")))
}

/// The quarantine form.
#[derive(Debug, Deserialize)]
pub struct Quarantine {
    csrf: String,
    source: String,
    reason: String,
}

/// `POST /ui/models/{name}/quarantine`: leave a source's feedback out of
/// every future training set.
pub async fn quarantine(
    State(state): State<AppState>,
    operator: Operator,
    PathParam(name): PathParam<String>,
    FormBody(form): FormBody<Quarantine>,
) -> Result<Redirect, ApiError> {
    operator.check(&form.csrf)?;
    let request = QuarantineRequest {
        model: Some(name.clone()),
        source: Some(form.source.trim().to_owned()),
        received_from: None,
        received_until: None,
        reason: form.reason.trim().to_owned(),
    };
    add_rule(&state, &operator.actor, request).await?;
    Ok(Redirect::to(&format!("/ui/models/{name}")))
}

/// The release form, with the model whose page to go back to.
#[derive(Debug, Deserialize)]
pub struct Release {
    csrf: String,
    reason: String,
    model: String,
}

/// `POST /ui/quarantine/{id}/release`.
pub async fn release(
    State(state): State<AppState>,
    operator: Operator,
    PathParam(id): PathParam<i64>,
    FormBody(form): FormBody<Release>,
) -> Result<Redirect, ApiError> {
    operator.check(&form.csrf)?;
    release_rule(&state, &operator.actor, id, form.reason.trim()).await?;
    // Back to the model's page; a name that is not a model name (it came
    // from the browser) goes to the registry instead.
    let back = match name_problem(&form.model) {
        None => format!("/ui/models/{}", form.model),
        Some(_) => "/ui/models".to_owned(),
    };
    Ok(Redirect::to(&back))
}
