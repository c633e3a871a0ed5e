//! Request ids and request spans: every request gets an id (the client's
//! `x-request-id` if it is sane, else a new UUID), every response carries it
//! back in `x-request-id`, and every log line written while the request is
//! handled (an error's above all) names it, so a client's report and the
//! server's log meet on one string.
//!
//! The id reaches log lines through a task-local ([`current`]), not through
//! a span: an INFO span per request cost about 15 % of `/predict`
//! throughput at 64 connections (BENCHMARKS.md, "Request ids"). The
//! per-request span of tower-http's `TraceLayer` (method, path, id) is
//! therefore at DEBUG: on with `RUST_LOG=debug`, free otherwise.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The header carrying the id, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client id kept, in bytes.
pub const MAX_LEN: usize = 200;

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

/// The id of the request being handled on this task, for log lines; empty
/// outside a request.
pub fn current() -> String {
    REQUEST_ID
        .try_with(|id| id.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// Wraps `router` so every request has an id (and, at DEBUG, a span), and
/// every response the id. Outermost, so answers made by other layers (the
/// deadline's 503) carry it too.
pub fn traced<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // Failures are logged once, by `ApiError`, with the id.
                .on_failure(()),
        )
        .layer(middleware::from_fn(with_request_id))
}

/// A client id is kept if it is 1 to [`MAX_LEN`] ASCII letters, digits or
/// `-_.:+/=` (UUIDs, trace ids, base64): anything else could forge or break
/// log lines, so it is replaced.
pub fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b))
}

/// Keeps the client's id if it is sane and sent once, else makes one; runs
/// the request with the id in scope for log lines, and answers with it.
async fn with_request_id(mut request: Request, next: Next) -> Response {
    let mut ids = request.headers().get_all(&HEADER).iter();
    let kept = match (ids.next(), ids.next()) {
        (Some(id), None) if is_sane(id.as_bytes()) => Some(id.clone()),
        _ => None,
    };
    let id = kept.unwrap_or_else(|| {
        let made = uuid::Uuid::new_v4().hyphenated().to_string();
        HeaderValue::from_str(&made).expect("a UUID is a valid header value")
    });
    request.headers_mut().insert(HEADER, id.clone());
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    response.headers_mut().insert(HEADER, id);
    response
}

fn request_span<B>(request: &axum::http::Request<B>) -> Span {
    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
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
