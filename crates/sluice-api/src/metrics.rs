//! HTTP and ingest metrics through the `metrics` facade (the binary installs
//! the Prometheus recorder). Route labels are path templates, never raw paths.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Requests served, by `route` template, `method` and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "sluice_http_requests_total";
/// Request latency in seconds, by `route` template and `method`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "sluice_http_request_duration_seconds";
/// Jobs newly stored by ingest (idempotent replays excluded), by `queue`.
pub const JOBS_ACCEPTED_TOTAL: &str = "sluice_jobs_accepted_total";

/// Dead letters a replay handled, by `outcome` (`replayed` or `skipped`).
pub const REPLAY_JOBS_TOTAL: &str = "sluice_replay_jobs_total";

/// Route label of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// Registers the descriptions of this crate's metrics with the recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests served, by route template, method and status"
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request latency, by route template and method"
    );
    metrics::describe_counter!(
        JOBS_ACCEPTED_TOTAL,
        "jobs durably accepted by ingest, by queue"
    );
    metrics::describe_counter!(
        REPLAY_JOBS_TOTAL,
        "dead letters handled by admin replays, by outcome (replayed or skipped)"
    );
}

/// Counts `n` newly stored jobs of a configured queue.
pub(crate) fn jobs_accepted(queue: &str, n: usize) {
    metrics::counter!(JOBS_ACCEPTED_TOTAL, "queue" => queue.to_string()).increment(n as u64);
}

/// Middleware recording the request counter and latency histogram.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_string(), |p| p.as_str().to_string());
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "route" => route, "method" => method)
        .record(elapsed);
    resp
}

/// Standard methods by name; anything else as `other` (bounded cardinality).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
