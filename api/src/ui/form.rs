//! Form bodies (`application/x-www-form-urlencoded`) for the console's
//! actions, refused in the API's one error shape like every other body.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

/// A form body of type `T`.
#[derive(Debug)]
pub struct FormBody<T>(pub T);

impl<T, S> FromRequest<S> for FormBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                if rejection.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                },
                "invalid_form",
                rejection.body_text(),
            )),
        }
    }
}
