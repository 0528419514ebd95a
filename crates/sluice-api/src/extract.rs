//! Extractors whose rejections are [`ApiError`]s (so problem+json).

use axum::extract::FromRequestParts;

use crate::ApiError;

/// `axum::extract::Path` with an [`ApiError`] rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct PathParam<T>(pub T);
