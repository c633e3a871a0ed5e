//! The OpenAPI document at `/openapi.json` and Swagger UI at `/docs`,
//! served from files vendored into the binary (no internet needed).

use crate::state::AppState;
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// The API's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Retrain", description = "Closed-loop retraining: predictions, feedback, retrain runs, models."),
    paths(
        super::predict::predict, super::predict::predict_batch, super::feedback::feedback, super::quarantine::quarantine,
        super::models::info, super::models::list, super::models::show, super::models::promote,
        super::runs::trigger, super::runs::list, super::runs::show, super::runs::cancel, super::runs::retry,
        super::health::health, super::health::ready, super::health::metrics,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&AdminToken),
    tags(
        (name = "serving", description = "Predictions from the champion"),
        (name = "feedback", description = "Correct labels from users"),
        (name = "models", description = "The model registry, promotion and rollback"),
        (name = "runs", description = "Retrain runs"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
