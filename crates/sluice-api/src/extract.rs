//! Extractors whose rejections are [`ApiError`]s (so problem+json).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::ApiError;

/// The `{queue}` of a path. A name that does not decode (not UTF-8 once
/// percent-decoded) names no configured queue: `404`, as an unknown one.
#[derive(Debug)]
pub(crate) struct QueueParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for QueueParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(queue)) => Ok(Self(queue)),
            Err(r) if r.status().is_server_error() => Err(ApiError::from(r)),
            Err(_) => Err(ApiError::UnknownQueue(String::new())),
        }
    }
}
