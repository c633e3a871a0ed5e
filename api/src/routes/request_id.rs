//! Request ids and request spans: every request gets an id (the client's
//! `x-request-id` if it is sane, else a new UUID), every response carries it
//! back in `x-request-id`, and everything logged while the request is handled
//! (an error's log line above all) is inside a `request` span that names it,
//! so a client's report and the server's log meet on one string.

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The header carrying the id, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client id kept, in bytes.
pub const MAX_LEN: usize = 200;

/// Wraps `router` so every request has an id and a span, and every response
/// the id. Outermost, so answers made by other layers (the deadline's 503)
/// carry it too.
pub fn traced<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(drop_insane_id))
            .layer(SetRequestIdLayer::new(HEADER, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(HEADER))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    // Failures are logged once, by `ApiError`, inside the span.
                    .on_failure(()),
            ),
    )
}

/// A client id is kept if it is 1 to [`MAX_LEN`] ASCII letters, digits or
/// `-_.:+/=` (UUIDs, trace ids, base64): anything else could forge or break
/// log lines, so it is replaced.
pub fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b))
}

/// Removes a client id that is not sane, or sent more than once, so that a
/// new one is made in its place.
async fn drop_insane_id(mut request: Request, next: Next) -> Response {
    let mut ids = request.headers().get_all(&HEADER).iter();
    let keep = match (ids.next(), ids.next()) {
        (Some(id), None) => is_sane(id.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !keep {
        request.headers_mut().remove(&HEADER);
    }
    next.run(request).await
}

fn request_span<B>(request: &axum::http::Request<B>) -> Span {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    )
}

#[cfg(test)]
mod tests {
    use super::is_sane;

    #[test]
    fn ids_are_kept_only_when_sane() {
        for sane in [
            "0b9e1c52-7d1f-4a33-9a1c-5f1e0e8e7a11",
            "a",
            "Root=1-5759e988:bd862e3f/x+y_z.w",
        ] {
            assert!(is_sane(sane.as_bytes()), "{sane:?}");
        }
        let long = "k".repeat(201);
        for insane in [
            "",
            "two words",
            "line\nbreak",
            "quote\"",
            "caf\u{e9}",
            "\u{1b}[31mred",
            long.as_str(),
        ] {
            assert!(!is_sane(insane.as_bytes()), "{insane:?}");
        }
    }
}
