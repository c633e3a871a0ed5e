//! Who is at the console. An operator signs in with a key that has the
//! `admin` scope (the admin token is one), which the browser then keeps in an
//! HttpOnly, SameSite=Strict cookie (scripts cannot read it, other sites'
//! pages cannot send it), with the name the audit trail records (as
//! `auth::actor_of` says). Every form carries a CSRF token derived from the
//! key, which a page on another origin cannot know. Without the
//! cookie the pages are read-only, or refused if `--ui-requires-token` says
//! reading needs the token too.

use super::form::FormBody;
use super::layout;
use crate::error::ApiError;
use crate::keys::secret::constant_time_eq;
use crate::keys::{Scope, Secret};
use crate::routes::input::check_text;
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The cookie holding the admin token.
const TOKEN_COOKIE: &str = "retrain_token";
/// The cookie holding the operator's name for the audit trail.
const ACTOR_COOKIE: &str = "retrain_actor";

/// An operator who presented the admin token.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Recorded as the actor of every action.
    pub actor: String,
    /// The value every form must send back.
    pub csrf: String,
}

impl Operator {
    /// Checks a form's CSRF token.
    ///
    /// # Errors
    /// 403 `csrf` if it is not this console's.
    pub fn check(&self, csrf: &str) -> Result<(), ApiError> {
        if constant_time_eq(csrf.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "the form's CSRF token is missing or wrong; reload the page and try again",
            ))
        }
    }
}

/// The CSRF token of forms: a hash of the operator's key, so it is the same
/// in every replica and changes with the key.
fn csrf_of(key: &Secret) -> String {
    let digest = Sha256::digest(format!("retrain-ui-csrf:{}", key.expose()).as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The value of cookie `name` in the request, if any.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// The operator whose cookie carries a live key with the `admin` scope, if any.
async fn operator(headers: &HeaderMap, state: &AppState) -> Option<Operator> {
    let key = Secret::new(cookie(headers, TOKEN_COOKIE).and_then(decode)?);
    let caller = state.access.resolve(&state.pool, &key).await.ok()?;
    if !caller.has(Scope::Admin) {
        return None;
    }
    let name = cookie(headers, ACTOR_COOKIE)
        .and_then(decode)
        .filter(|name| check_text(name, "name", 200, "invalid_actor").is_ok())
        .unwrap_or_else(|| "console".to_owned());
    Some(Operator {
        actor: crate::auth::actor_of(&caller, Some(&name)),
        csrf: csrf_of(&key),
    })
}

/// An action's caller: refused without the admin token.
impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        operator(&parts.headers, state).await.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this action needs a key with the admin scope: sign in at /ui/login",
            )
        })
    }
}

/// A page's reader: anyone, an operator or not, unless reading needs the
/// token, when a reader without it is sent to sign in.
#[derive(Debug, Clone)]
pub struct Viewer(pub Option<Operator>);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let operator = operator(&parts.headers, state).await;
        if operator.is_none() && state.ui_requires_token {
            return Err(Redirect::to("/ui/login").into_response());
        }
        Ok(Self(operator))
    }
}

/// The sign-in form.
pub async fn login_page() -> Response {
    login_form(StatusCode::OK, None)
}

fn login_form(status: StatusCode, problem: Option<&str>) -> Response {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
        p { "A key with the admin scope (the admin token is one) unlocks the actions. The name is recorded with every action you take." }
        form.stack method="post" action="/ui/login" {
            label { "Admin key" input type="password" name="token" required autocomplete="current-password"; }
            label { "Your name" input type="text" name="name" required maxlength="200" placeholder="ops@example.com"; }
            button type="submit" { "Sign in" }
        }
    };
    (status, layout::page("Sign in", None, false, body)).into_response()
}

/// What the sign-in form sends.
#[derive(Debug, Deserialize)]
pub struct Login {
    token: Secret,
    name: String,
}

/// Signs in: the token and name go into cookies only the server reads.
pub async fn login(State(state): State<AppState>, FormBody(login): FormBody<Login>) -> Response {
    let key = Secret::new(login.token.expose().trim());
    let admits = state
        .access
        .resolve(&state.pool, &key)
        .await
        .is_ok_and(|c| c.has(Scope::Admin));
    if !admits {
        return login_form(
            StatusCode::UNAUTHORIZED,
            Some("The key is not valid or has no admin scope."),
        );
    }
    let name = login.name.trim();
    if let Err(problem) = check_text(name, "name", 200, "invalid_actor") {
        return login_form(StatusCode::UNPROCESSABLE_ENTITY, Some(&problem.message));
    }
    let mut response = Redirect::to("/ui/runs").into_response();
    for cookie in [
        set_cookie(TOKEN_COOKIE, &encode(key.expose()), None),
        set_cookie(ACTOR_COOKIE, &encode(name), None),
    ] {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// What the sign-out form sends.
#[derive(Debug, Deserialize)]
pub struct Logout {
    csrf: String,
}

/// Signs out: both cookies expire.
pub async fn logout(operator: Operator, FormBody(form): FormBody<Logout>) -> Result<Response, ApiError> {
    operator.check(&form.csrf)?;
    let mut response = Redirect::to("/ui/runs").into_response();
    for name in [TOKEN_COOKIE, ACTOR_COOKIE] {
        response
            .headers_mut()
            .append(header::SET_COOKIE, set_cookie(name, "", Some(0)));
    }
    Ok(response)
}

/// A cookie for the console's pages only, out of scripts' reach and never
/// sent with a request another site starts. `value` is [`encode`]d: printable
/// ASCII, so the header is always valid and the fallback (no cookie, so no
/// sign-in) unreachable.
fn set_cookie(name: &str, value: &str, max_age: Option<u32>) -> HeaderValue {
    let age = max_age
        .map(|seconds| format!("; Max-Age={seconds}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict{age}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Text as a cookie value (a token or a name, which may hold any
/// character): percent-encoded bytes outside `[A-Za-z0-9._@-]`.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'@' | b'-' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The inverse of [`encode`]; `None` if it is not UTF-8 text.
fn decode(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_the_cookie() {
        for name in ["ops@example.com", "Zoë Ünal; admin=1", "a b%20c"] {
            let encoded = encode(name);
            assert!(!encoded.contains([' ', ';', '=', ',']), "{encoded}");
            assert_eq!(decode(&encoded).as_deref(), Some(name));
        }
        assert_eq!(decode("%G1"), None);
    }

    #[test]
    fn the_cookie_is_read_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; retrain_token=t0k; b=2"));
        assert_eq!(cookie(&headers, TOKEN_COOKIE), Some("t0k"));
        assert_eq!(cookie(&headers, ACTOR_COOKIE), None);
    }
}
