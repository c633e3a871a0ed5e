//! Paging, the same for every list endpoint: `?limit=` rows (1 to
//! [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) after the keyset cursor
//! `?after=` (the last row's key: a run id, a version number, a model name).
//! The body stays a plain JSON array; when more rows follow, a
//! `Link: <...>; rel="next"` header gives the next page's URL, with the same
//! filters. Keysets, not offsets: a page costs the same at any depth, and
//! rows added meanwhile neither repeat nor go missing.

use crate::error::ApiError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::IntoParams;

/// Rows of a page unless `?limit=` says otherwise.
pub const DEFAULT_LIMIT: i64 = 50;
/// Most rows of a page.
pub const MAX_LIMIT: i64 = 500;

/// The query of a list without filters of its own.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Rows of the page (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The key of the previous page's last row (the `after` of its `Link: rel="next"` URL).
    pub after: Option<String>,
}

/// A checked page request over keys of type `K`.
#[derive(Debug)]
pub struct Page<K> {
    pub limit: i64,
    pub after: Option<K>,
}

impl<K: FromStr> Page<K> {
    /// Checks a limit and a cursor as a request gives them.
    ///
    /// # Errors
    /// 400 `invalid_query` for a limit out of range or a cursor that is not a key.
    pub fn of(limit: Option<i64>, after: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let after = after
            .map(|key| {
                key.parse()
                    .map_err(|_| invalid(format!("after {key:?} is not a key of this list")))
            })
            .transpose()?;
        Ok(Self { limit, after })
    }

    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

/// Answers a page of `rows` (fetched with [`Page::fetch`]): at most `limit`
/// rows, and the next page's URL if more follow, made from the request's
/// `uri` with `after` set to the last row's `key`.
pub fn answer<K, T: Serialize>(page: &Page<K>, mut rows: Vec<T>, uri: &Uri, key: impl Fn(&T) -> String) -> Response {
    let more = rows.len() as i64 > page.limit;
    rows.truncate(page.limit as usize);
    let next = rows.last().filter(|_| more).map(|last| next_link(uri, &key(last)));
    let mut response = Json(rows).into_response();
    if let Some(value) = next.and_then(|link| HeaderValue::from_str(&link).ok()) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

/// `<path?query>; rel="next"` with `after` replaced. Keys are ids, numbers
/// and model names, which need no escaping in a URL.
fn next_link(uri: &Uri, after: &str) -> String {
    let kept = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("after="));
    let query: Vec<String> = kept.map(str::to_owned).chain([format!("after={after}")]).collect();
    format!("<{}?{}>; rel=\"next\"", uri.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_keeps_the_filters_and_replaces_the_cursor() {
        let uri: Uri = "/runs?status=failed&after=old&limit=2".parse().unwrap();
        assert_eq!(
            next_link(&uri, "new"),
            "</runs?status=failed&limit=2&after=new>; rel=\"next\""
        );
        let bare: Uri = "/models".parse().unwrap();
        assert_eq!(next_link(&bare, "wine"), "</models?after=wine>; rel=\"next\"");
    }
}
