//! The OpenAPI document at `/openapi.json` and Swagger UI at `/docs`,
//! served from files vendored into the binary (no internet needed).

use crate::state::AppState;
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// The API's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Retrain", description = "Closed-loop retraining: predictions, feedback, retrain runs, models."),
    paths(
        super::predict::predict, super::predict::predict_batch, super::predict::predict_named,
        super::predict::predict_batch_named, super::feedback::feedback, super::feedback::feedback_named,
        super::quarantine::quarantine, super::quarantine::list, super::quarantine::release,
        super::models::info, super::models::list, super::models::show, super::models::change,
        super::datasets::create, super::datasets::import,
        super::versions::list, super::versions::show, super::versions::promote, super::versions::reproduce,
        super::runs::trigger, super::runs::trigger_named, super::runs::list, super::runs::show, super::runs::cancel, super::runs::retry,
        super::runs::list_named,
        super::health::health, super::health::ready, super::health::metrics,
        super::keys::create, super::keys::list, super::keys::revoke,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&KeySchemes, &CommonRefusals),
    tags(
        (name = "serving", description = "Predictions from the champion"),
        (name = "feedback", description = "Correct labels from users"),
        (name = "models", description = "The model registry, promotion and rollback"),
        (name = "runs", description = "Retrain runs"),
        (name = "keys", description = "Client keys: who may predict, send feedback or administer"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The bearer key schemes, one per scope (`admin_token` keeps its name from
/// before keys had scopes).
struct KeySchemes;

impl Modify for KeySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                "admin_token",
                "A key with the admin scope: the bootstrap admin token (the key named `admin`), or one made \
                 with `POST /keys`. Admin actions record the key's name as their actor.",
            ),
            (
                "feedback_key",
                "A key with the feedback scope. The feedback's source is the key's name; the body's `source` \
                 is only a sub-label. Needed unless RETRAIN_FEEDBACK_OPEN=true.",
            ),
            (
                "predict_key",
                "A key with the predict scope: optional unless RETRAIN_PREDICT_OPEN=false; a key that is sent \
                 is checked and charged against its rate limit.",
            ),
        ] {
            let mut scheme = Http::new(HttpAuthScheme::Bearer);
            scheme.description = Some(description.to_owned());
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// Documents, on every operation, the refusals that come from shared
/// machinery rather than the handler, so the document lists every status
/// the server can answer: bad bodies (400, 408, 413, 415, 422), bad path or
/// query parameters (400), admin checks (401, and 422 for an invalid
/// `X-Retrain-Actor`, whose header it also documents), and 503 with
/// `Retry-After` (database away, no model yet, or past the 30 s deadline).
/// A status a handler documents keeps the handler's description.
struct CommonRefusals;

impl Modify for CommonRefusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let has = |place: ParameterIn| operation.parameters.iter().flatten().any(|p| p.parameter_in == place);
                let (path_params, query_params) = (has(ParameterIn::Path), has(ParameterIn::Query));
                let responses = &mut operation.responses.responses;
                let mut refuse = |status: &str, description: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description, false));
                };
                if operation.request_body.is_some() {
                    refuse("400", "Malformed JSON");
                    refuse("408", "The body stalled: no bytes for 10 s");
                    refuse("413", "Body too large");
                    refuse("415", "A body that is not application/json");
                    refuse("422", "A body that does not fit the request schema");
                }
                if path_params {
                    refuse("400", "Invalid path parameter");
                }
                if query_params {
                    refuse("400", "Invalid query parameter");
                }
                let admin =
                    operation.security.iter().flatten().any(|requirement| {
                        serde_json::to_value(requirement).is_ok_and(|v| v.get("admin_token").is_some())
                    });
                if admin {
                    refuse("401", "Missing, unknown or revoked key");
                    refuse("403", "The key lacks the admin scope");
                    refuse("422", "Invalid X-Retrain-Actor header");
                }
                if !matches!(path.as_str(), "/health" | "/metrics") {
                    responses.entry("503".to_owned()).or_insert_with(|| {
                        error_response(
                            "Unavailable: the database is away, no model is loaded yet, or the request took longer \
                             than 30 s; retry after the Retry-After delay",
                            true,
                        )
                    });
                }
                if admin {
                    let parameters = operation.parameters.get_or_insert_with(Vec::new);
                    if !parameters.iter().any(|p| p.name == "X-Retrain-Actor") {
                        parameters.extend(ActorParam::into_params(|| None));
                    }
                }
            }
        }
    }
}

/// A response with the API's error body, optionally with `Retry-After`.
fn error_response(description: &str, retry_after: bool) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, ResponseBuilder, Type};
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    response.build().into()
}

/// The `Idempotency-Key` request header of `POST /feedback` and `POST /runs`.
#[derive(Debug, IntoParams)]
#[allow(dead_code, reason = "documents a header; never built")]
#[into_params(names("Idempotency-Key"), parameter_in = Header)]
pub struct IdempotencyKeyParam(
    /// Makes the request safe to retry: a retry with the same key within 24 hours gets the
    /// first answer (same status and body, header `Idempotent-Replayed: true`) and stores
    /// nothing new; the same key with another body gets 409 `idempotency_key_reused`.
    /// 1 to 200 printable ASCII characters, e.g. a UUID; else 422 `invalid_idempotency_key`.
    #[param(min_length = 1, max_length = 200, pattern = r"^[ -~]+$")]
    pub Option<String>,
);

/// The `X-Retrain-Actor` request header of the admin endpoints.
#[derive(Debug, IntoParams)]
#[allow(dead_code, reason = "documents a header; never built")]
#[into_params(names("X-Retrain-Actor"), parameter_in = Header)]
pub struct ActorParam(
    /// Who is calling, for the audit trail: with a named key, recorded as a note on the key's
    /// name (`ci-bot (alice)`); with the shared bootstrap admin token, recorded as the actor
    /// (default `admin`). 1 to 200 characters of UTF-8 text without control characters, else
    /// 422 `invalid_actor`.
    #[param(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$")]
    pub Option<String>,
);

pub fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
