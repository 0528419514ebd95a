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

/// Autoscaling gauges, by configured `queue` (see [`crate::scaling`]).
pub const QUEUE_BACKLOG_JOBS: &str = "sluice_queue_backlog_jobs";
pub const QUEUE_PENDING_JOBS: &str = "sluice_queue_pending_jobs";
pub const QUEUE_PUBLISHED_JOBS: &str = "sluice_queue_published_jobs";
pub const QUEUE_IN_FLIGHT_JOBS: &str = "sluice_queue_in_flight_jobs";
pub const QUEUE_RETRYING_JOBS: &str = "sluice_queue_retrying_jobs";
pub const QUEUE_DEAD_JOBS: &str = "sluice_queue_dead_jobs";
pub const QUEUE_OLDEST_PENDING_AGE_SECONDS: &str = "sluice_queue_oldest_pending_age_seconds";
/// Age of the queue's oldest due outbox row (the relay's own
/// `sluice_relay_lag_seconds` is a histogram of publish delays).
pub const OUTBOX_OLDEST_AGE_SECONDS: &str = "sluice_outbox_oldest_age_seconds";
/// Set only while the broker reports a lag.
pub const QUEUE_CONSUMER_LAG_MESSAGES: &str = "sluice_queue_consumer_lag_messages";

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
    for (name, help) in [
        (
            QUEUE_BACKLOG_JOBS,
            "jobs a worker could start now, by queue",
        ),
        (
            QUEUE_PENDING_JOBS,
            "jobs accepted and not yet on the broker, by queue",
        ),
        (
            QUEUE_PUBLISHED_JOBS,
            "jobs on the broker and not running, by queue",
        ),
        (
            QUEUE_IN_FLIGHT_JOBS,
            "attempts running under an unexpired lease, by queue",
        ),
        (QUEUE_RETRYING_JOBS, "jobs waiting to be retried, by queue"),
        (QUEUE_DEAD_JOBS, "dead letters, by queue"),
        (
            QUEUE_CONSUMER_LAG_MESSAGES,
            "messages the workers' consumer group has yet to consume, by queue",
        ),
    ] {
        metrics::describe_gauge!(name, help);
    }
    metrics::describe_gauge!(
        QUEUE_OLDEST_PENDING_AGE_SECONDS,
        metrics::Unit::Seconds,
        "how long the longest-waiting job a worker could start has waited, by queue"
    );
    metrics::describe_gauge!(
        OUTBOX_OLDEST_AGE_SECONDS,
        metrics::Unit::Seconds,
        "age of the oldest due outbox row, by queue"
    );
}

/// Sets a queue's autoscaling gauges.
pub(crate) fn queue_scaling(f: &crate::scaling::ScalingFigures) {
    let q = || f.queue.clone();
    let counts = [
        (QUEUE_BACKLOG_JOBS, f.backlog),
        (QUEUE_PENDING_JOBS, f.pending),
        (QUEUE_PUBLISHED_JOBS, f.published),
        (QUEUE_IN_FLIGHT_JOBS, f.in_flight),
        (QUEUE_RETRYING_JOBS, f.retrying),
        (QUEUE_DEAD_JOBS, f.dead),
    ];
    for (name, n) in counts {
        metrics::gauge!(name, "queue" => q()).set(n as f64);
    }
    metrics::gauge!(QUEUE_OLDEST_PENDING_AGE_SECONDS, "queue" => q())
        .set(f.oldest_pending_age_seconds);
    metrics::gauge!(OUTBOX_OLDEST_AGE_SECONDS, "queue" => q()).set(f.relay_lag_seconds);
    // NaN while the broker cannot tell: the last known lag would be a stale
    // figure that autoscaling and alerts take for a current one
    let lag = f.consumer_lag.map_or(f64::NAN, |lag| lag as f64);
    metrics::gauge!(QUEUE_CONSUMER_LAG_MESSAGES, "queue" => q()).set(lag);
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

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;
    use crate::scaling::ScalingFigures;

    /// The consumer lag sample of queue `q` in `text`.
    fn lag(text: &str) -> Option<String> {
        text.lines()
            .find(|l| l.starts_with("sluice_queue_consumer_lag_messages{") && l.contains("\"q\""))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    }

    #[test]
    fn a_consumer_lag_the_broker_cannot_tell_is_nan_not_the_last_one() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let mut f = ScalingFigures {
            queue: "q".into(),
            backlog: 0,
            pending: 0,
            published: 0,
            in_flight: 0,
            retrying: 0,
            dead: 0,
            oldest_pending_age_seconds: 0.0,
            relay_lag_seconds: 0.0,
            consumer_lag: Some(5),
        };
        queue_scaling(&f);
        assert_eq!(lag(&handle.render()).as_deref(), Some("5"));
        f.consumer_lag = None;
        queue_scaling(&f);
        assert_eq!(lag(&handle.render()).as_deref(), Some("NaN"));
    }
}
