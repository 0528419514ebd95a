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

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: 0 },
            status => {
                tracing::debug!(rejection = %r.body_text(), "request body rejected");
                ApiError::Rejected(status)
            }
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

/// The RFC 9457 body.
#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<Violation>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failing_checks: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    draining: Option<bool>,
}

impl ApiError {
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

    fn problem(self) -> Problem {
        use ApiError::*;
        let status = self.status();
        let p = |kind, title, detail: String| Problem {
            kind,
            title,
            status: status.as_u16(),
            detail,
            errors: None,
            failing_checks: None,
            draining: None,
        };
        match self {
            MalformedJson(d) => p("urn:sluice:problem:malformed-json", "Malformed JSON", d),
            BadRequest(d) => p("urn:sluice:problem:bad-request", "Bad request", d),
            InvalidRequest(v) => with_violations(
                p(
                    "urn:sluice:problem:invalid-request",
                    "Invalid request body",
                    String::new(),
                ),
                "the request body is not a valid job request",
                v,
            ),
            SchemaViolation(v) => with_violations(
                p(
                    "urn:sluice:problem:schema-violation",
                    "Payload fails the queue's schema",
                    String::new(),
                ),
                "the payload does not satisfy the queue's JSON Schema",
                v,
            ),
            UnknownQueue(q) => {
                let detail = if sluice_core::valid_queue_name(&q) {
                    format!("no queue named {q:?} is configured")
                } else {
                    "no such queue is configured".to_string()
                };
                p("urn:sluice:problem:unknown-queue", "Unknown queue", detail)
            }
            JobNotFound => p(
                "urn:sluice:problem:job-not-found",
                "Job not found",
                "no job has this id".into(),
            ),
            DeadLetterNotFound => p(
                "urn:sluice:problem:dead-letter-not-found",
                "Dead letter not found",
                "no dead letter has this id".into(),
            ),
            ReplayNotFound => p(
                "urn:sluice:problem:replay-not-found",
                "Replay not found",
                "no replay has this id".into(),
            ),
            ReplayRefused(reason) => p(
                "urn:sluice:problem:replay-refused",
                "Replay refused",
                reason,
            ),
            Unauthorized => p(
                "urn:sluice:problem:unauthorized",
                "Unauthorized",
                "a valid admin bearer token is required (Authorization: Bearer <token>)".into(),
            ),
            RouteNotFound => p(
                "about:blank",
                "Not Found",
                "no route matches this path".into(),
            ),
            MethodNotAllowed => p(
                "about:blank",
                "Method Not Allowed",
                "this route does not accept this method".into(),
            ),
            PayloadTooLarge { limit } => {
                let detail = if limit > 0 {
                    format!("the request body exceeds the limit of {limit} bytes")
                } else {
                    "the request body exceeds the size limit".to_string()
                };
                p(
                    "urn:sluice:problem:payload-too-large",
                    "Payload too large",
                    detail,
                )
            }
            UnsupportedMediaType => p(
                "urn:sluice:problem:unsupported-media-type",
                "Unsupported media type",
                "send the body as application/json (or application/*+json)".into(),
            ),
            IdempotencyConflict => p(
                "urn:sluice:problem:idempotency-conflict",
                "Idempotency key reused",
                "this Idempotency-Key was already used with a different request body".into(),
            ),
            Unavailable => p(
                "urn:sluice:problem:unavailable",
                "Service unavailable",
                "the job store is temporarily unavailable; retry later".into(),
            ),
            NotReady { failing, draining } => {
                let mut detail = Vec::new();
                if draining {
                    detail.push("the process is draining".to_string());
                }
                if !failing.is_empty() {
                    detail.push(format!("failing checks: {}", failing.join(", ")));
                }
                let mut pr = p(
                    "urn:sluice:problem:not-ready",
                    "Not ready",
                    detail.join("; "),
                );
                pr.failing_checks = Some(failing);
                pr.draining = Some(draining);
                pr
            }
            Rejected(s) => p(
                "about:blank",
                s.canonical_reason().unwrap_or("Error"),
                "the request was rejected".into(),
            ),
            Store(e) => {
                tracing::error!(error = %e, "store error while serving a request");
                internal(p)
            }
            e @ (InvalidSchema { .. } | DuplicateQueue(_)) => {
                tracing::error!(error = %e, "configuration error rendered as a response");
                internal(p)
            }
        }
    }
}

fn internal(p: impl Fn(&'static str, &'static str, String) -> Problem) -> Problem {
    p(
        "about:blank",
        "Internal Server Error",
        "an internal error occurred".into(),
    )
}

fn with_violations(mut p: Problem, what: &str, mut v: Vec<Violation>) -> Problem {
    let total = v.len();
    v.truncate(MAX_LISTED_VIOLATIONS);
    // Collectors stop soon after the cap, so `total` is only exact below it.
    p.detail = if total > v.len() {
        format!("{what}: more than {MAX_LISTED_VIOLATIONS} violations, the first {MAX_LISTED_VIOLATIONS} listed")
    } else {
        format!("{what}: {total} violation(s)")
    };
    p.errors = Some(v);
    p
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let unavailable = matches!(self, ApiError::Unavailable);
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
