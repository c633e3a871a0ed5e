//! The operator console at `/ui`: server-rendered pages of runs, models and
//! the gate's evidence, with forms for the admin actions. Everything it
//! needs is in the binary (templates checked at compile time with maud,
//! charts drawn as inline SVG, one stylesheet), and every handler calls the
//! same library functions as the REST routes, so the console shows what the
//! API answers and acts as the API acts.
//!
//! - [`session`]: the admin token in an HttpOnly cookie, and CSRF tokens.
//! - [`runs`] and [`run`]: the runs list and one run with its timeline and
//!   [`evidence`]; [`models`]: the registry and one model.
//! - [`actions`]: the forms' targets; [`layout`], [`charts`] and [`format`]
//!   are shared by the pages.

mod actions;
mod charts;
mod evidence;
mod form;
mod format;
mod layout;
mod models;
mod run;
mod runs;
mod session;
mod timeline;

use crate::state::AppState;
use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};

/// The console's stylesheet, compiled into the binary.
const STYLESHEET: &str = include_str!("../../assets/ui/console.css");

/// The console's routes, under `/ui`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/console.css", get(stylesheet))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/runs", get(runs::page).post(actions::trigger))
        .route("/ui/runs/{id}", get(run::page))
        .route("/ui/runs/{id}/cancel", post(actions::cancel))
        .route("/ui/runs/{id}/retry", post(actions::retry))
        .route("/ui/models", get(models::list))
        .route("/ui/models/{name}", get(models::page))
        .route("/ui/models/{name}/versions/{version}/promote", post(actions::promote))
        .route("/ui/models/{name}/quarantine", post(actions::quarantine))
        .route("/ui/quarantine/{id}/release", post(actions::release))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}
