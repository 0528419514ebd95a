use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use sluice_core::{classify_http_status, Failure};
use tracing::field::Empty;
use tracing::Instrument;

use crate::{Handler, JobContext, WorkerError};

/// Headers a job may not set on the downstream request.
const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
    "sluice-job-id",
    "sluice-attempt",
    "traceparent",
];

/// POSTs the payload JSON to a URL with `Sluice-Job-Id`, `Sluice-Attempt`,
/// `traceparent` and `Content-Type: application/json`. 2xx is success; 408, 429, 5xx, timeouts
/// and connection errors are transient (honouring `Retry-After`); any other
/// status is permanent.
#[derive(Debug, Clone)]
pub struct HttpHandler {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
}

impl HttpHandler {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, WorkerError> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| WorkerError::Config(format!("handler url: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| WorkerError::Config(format!("http client: {e}")))?;
        Ok(Self {
            client,
            url,
            timeout,
        })
    }

    fn headers(ctx: &JobContext, traceparent: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in &ctx.headers {
            if RESERVED.contains(&k.to_ascii_lowercase().as_str()) {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(k.as_str()),
                HeaderValue::try_from(v.as_str()),
            ) {
                h.insert(n, v);
            }
        }
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            "sluice-job-id",
            HeaderValue::from_str(&ctx.id.to_string()).expect("uuid is a header value"),
        );
        h.insert("sluice-attempt", HeaderValue::from(ctx.attempt));
        if let Some(tp) = traceparent.and_then(|t| HeaderValue::from_str(t).ok()) {
            h.insert("traceparent", tp);
        }
        h
    }
}

/// Parses `Retry-After` as delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[async_trait]
impl Handler for HttpHandler {
    async fn handle(&self, ctx: &JobContext) -> Result<(), Failure> {
        let body = serde_json::to_vec(&ctx.payload)
            .map_err(|e| Failure::permanent(format!("payload: {e}")))?;
        // A client span under the attempt's; its context is the request's
        // `traceparent` (the attempt's own when no tracing layer is installed).
        let span = tracing::info_span!(
            "downstream.request",
            otel.kind = "client",
            http.request.method = "POST",
            server.address = self.url.host_str().unwrap_or_default(),
            http.response.status_code = Empty,
            trace_id = Empty,
            span_id = Empty,
        );
        let traceparent =
            sluice_trace::continue_trace(&span, None).or_else(|| ctx.traceparent.clone());
        let res = self
            .client
            .post(self.url.clone())
            .headers(Self::headers(ctx, traceparent.as_deref()))
            .body(body)
            .send()
            .instrument(span.clone())
            .await;
        let resp = match res {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(Failure::transient(format!(
                    "downstream timed out after {} ms",
                    self.timeout.as_millis()
                ))
                .overloaded())
            }
            Err(e) if e.is_connect() => {
                return Err(Failure::transient("downstream connection failed"))
            }
            Err(e) => {
                return Err(Failure::transient(format!(
                    "downstream request failed: {}",
                    e.without_url()
                )))
            }
        };
        let status = resp.status().as_u16();
        span.record("http.response.status_code", i64::from(status));
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let Some(kind) = classify_http_status(status, retry_after) else {
            return Ok(());
        };
        let snippet: String = match resp.text().await {
            Ok(t) => t.chars().take(200).collect(),
            Err(_) => String::new(),
        };
        let message = if snippet.is_empty() {
            format!("downstream answered {status}")
        } else {
            format!("downstream answered {status}: {snippet}")
        };
        Err(Failure {
            kind,
            message,
            overload: matches!(status, 429 | 503),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
