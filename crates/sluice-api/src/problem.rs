//! The RFC 9457 `application/problem+json` body of each [`ApiError`].

use serde::Serialize;

use crate::error::{Violation, MAX_LISTED_VIOLATIONS};
use crate::ApiError;

/// The RFC 9457 body.
#[derive(Debug, Serialize)]
pub(crate) struct Problem {
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
    pub(crate) fn problem(self) -> Problem {
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
