//! The one error type of the API and its RFC 9457 `application/problem+json`
//! rendering. Responses never carry internal details: store and other
//! internal failures get a generic detail and are logged with `tracing`.

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_store::StoreError;

/// Media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Most violations listed in one response; the detail says how many there were.
pub const MAX_LISTED_VIOLATIONS: usize = 50;

/// One reason a request body was refused, located by a JSON Pointer into the
/// request body (RFC 9457 §3 "errors" extension style).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Index of the job in a batch request, when the body was a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<usize>,
    /// JSON Pointer fragment into the request body, e.g. `#/jobs/3/payload/email`.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
}

/// Every way an API request (or building the API) can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not well-formed JSON.
    #[error("malformed json: {0}")]
    MalformedJson(String),
    /// A header or path segment is invalid.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is JSON but not a valid request (missing or mistyped fields,
    /// unknown fields, values out of range).
    #[error("invalid request: {} violation(s)", .0.len())]
    InvalidRequest(Vec<Violation>),
    /// A payload fails its queue's JSON Schema.
    #[error("payload fails the queue's schema: {} violation(s)", .0.len())]
    SchemaViolation(Vec<Violation>),
    /// The path names a queue that is not configured.
    #[error("unknown queue")]
    UnknownQueue(String),
    /// No job has this id (or the id is malformed).
    #[error("job not found")]
    JobNotFound,
    /// No dead letter has this id (or the id is malformed).
    #[error("dead letter not found")]
    DeadLetterNotFound,
    /// No replay has this id (or the id is malformed).
    #[error("replay not found")]
    ReplayNotFound,
    /// A replay was refused (for example `max_replays` reached); the reason
    /// is shown.
    #[error("replay refused: {0}")]
    ReplayRefused(String),
    /// The admin bearer token is missing or wrong.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// No route matches the path.
    #[error("no route matches the path")]
    RouteNotFound,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body exceeds the configured limit.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The content type is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The `Idempotency-Key` was used before with a different body.
    #[error("idempotency key was already used with a different request body")]
    IdempotencyConflict,
    /// The store cannot be reached: retry later.
    #[error("store unavailable")]
    Unavailable,
    /// The process is not ready (a readiness check fails, or it is draining).
    #[error("not ready")]
    NotReady {
        failing: Vec<String>,
        draining: bool,
    },
    /// Any other store failure (logged, never shown).
    #[error("store error: {0}")]
    Store(StoreError),
    /// Any other extractor rejection, with its status and a generic detail.
    #[error("request rejected with status {0}")]
    Rejected(StatusCode),
    /// A queue's JSON Schema does not compile (raised by `IngestState::new`).
    #[error("queue {queue:?}: invalid json schema: {reason}")]
    InvalidSchema { queue: String, reason: String },
    /// Two queues share a name (raised by `IngestState::new`).
    #[error("queue {0:?} is configured twice")]
    DuplicateQueue(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                ApiError::Unavailable
            }
            StoreError::IdempotencyConflict => ApiError::IdempotencyConflict,
            StoreError::NotFound => ApiError::JobNotFound,
            other => ApiError::Store(other),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        tracing::debug!(rejection = %r.body_text(), "path rejected");
        match r.status() {
            s if s.is_server_error() => ApiError::Rejected(s),
            _ => ApiError::BadRequest("the path has an invalid parameter".into()),
        }
    }
}

impl ApiError {
    /// A body the server did not take, read under a limit of `limit`
    /// bytes: `413` naming that limit when it was over it.
    pub(crate) fn body_rejected(r: BytesRejection, limit: usize) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit },
            status => {
                tracing::debug!(rejection = %r.body_text(), "request body rejected");
                ApiError::Rejected(status)
            }
        }
    }

    /// The HTTP status this error is rendered with.
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MalformedJson(_) | BadRequest(_) => StatusCode::BAD_REQUEST,
            InvalidRequest(_) | SchemaViolation(_) | IdempotencyConflict => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            UnknownQueue(_) | JobNotFound | DeadLetterNotFound | ReplayNotFound | RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            ReplayRefused(_) => StatusCode::CONFLICT,
            Unauthorized => StatusCode::UNAUTHORIZED,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Unavailable | NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Rejected(s) => *s,
            Store(_) | InvalidSchema { .. } | DuplicateQueue(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let unavailable = matches!(
            self,
            ApiError::Unavailable | ApiError::NotReady { draining: true, .. }
        );
        let unauthorized = matches!(self, ApiError::Unauthorized);
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if unavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sluice-admin\""),
            );
        }
        resp
    }
}

/// Fallback for paths no route matches: a `404` problem.
pub(crate) async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// Fallback for a known path with another method: a `405` problem.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
