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
//! therefore at DEBUG, and only there when DEBUG is on as the router is
//! built (`RUST_LOG=debug`): otherwise it costs nothing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tower_http::trace::TraceLayer;
use tracing::{Level, Span};

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

/// Wraps `router` so every request has an id and every response carries it.
/// Outermost, so answers made by other layers (the deadline's 503) carry it
/// too. The per-request span is added only when DEBUG is on for this module
/// as the router is built: even disabled, tower-http's `TraceLayer` wraps
/// every body and calls its hooks (BENCHMARKS.md, "Request ids").
pub fn traced<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let router = if tracing::enabled!(Level::DEBUG) {
        router.layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // Failures are logged once, by `ApiError`, with the id.
                .on_failure(()),
        )
    } else {
        router
    };
    router.layer(RequestIdLayer)
}

/// A client id is kept if it is 1 to [`MAX_LEN`] ASCII letters, digits or
/// `-_.:+/=` (UUIDs, trace ids, base64): anything else could forge or break
/// log lines, so it is replaced.
pub fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b))
}

/// The client's id if it is sane and sent once, else a new UUID.
fn request_id(request: &Request) -> HeaderValue {
    let mut ids = request.headers().get_all(&HEADER).iter();
    match (ids.next(), ids.next()) {
        (Some(id), None) if is_sane(id.as_bytes()) => id.clone(),
        _ => {
            let made = uuid::Uuid::new_v4().hyphenated().to_string();
            HeaderValue::from_str(&made).expect("a UUID is a valid header value")
        }
    }
}

/// Gives each request its id: a hand-written layer rather than
/// `middleware::from_fn`, which boxes the inner service's future and clones
/// the service on every request.
#[derive(Clone, Copy)]
struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = WithRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithRequestId { inner }
    }
}

#[derive(Clone)]
struct WithRequestId<S> {
    inner: S,
}

impl<S> Service<Request> for WithRequestId<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Answered<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    /// Runs the request with the id in scope for log lines and in its
    /// headers for handlers, and answers with it.
    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = request_id(&request);
        request.headers_mut().insert(HEADER, id.clone());
        Answered {
            inner: REQUEST_ID.scope(id.clone(), self.inner.call(request)),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, with the request id added to its headers.
    struct Answered<F> {
        #[pin]
        inner: TaskLocalFuture<HeaderValue, F>,
        id: Option<HeaderValue>,
    }
}

impl<F, E> Future for Answered<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut answer = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(id)) = (&mut answer, this.id.take()) {
            response.headers_mut().insert(HEADER, id);
        }
        Poll::Ready(answer)
    }
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
