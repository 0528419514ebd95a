//! A local HTTP downstream that behaves as each job's payload asks and
//! records every delivery it sees.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// How the downstream answers a job, read from the payload's `"mode"`:
/// `"ok"`, `{"fail_times": n}` (503 for the first n deliveries, then 200),
/// `{"status": code}` (always that status).
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Ok,
    FailTimes(u32),
    Always(u16),
}

impl Mode {
    pub fn payload(&self, n: usize) -> Value {
        let mode = match self {
            Mode::Ok => serde_json::json!("ok"),
            Mode::FailTimes(k) => serde_json::json!({"fail_times": k}),
            Mode::Always(s) => serde_json::json!({"status": s}),
        };
        serde_json::json!({"n": n, "mode": mode})
    }

    fn from_payload(v: &Value) -> Mode {
        let m = &v["mode"];
        if let Some(k) = m.get("fail_times").and_then(Value::as_u64) {
            return Mode::FailTimes(k as u32);
        }
        if let Some(s) = m.get("status").and_then(Value::as_u64) {
            return Mode::Always(s as u16);
        }
        Mode::Ok
    }
}

/// One delivery the downstream saw.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub attempt: u32,
    pub at: Instant,
    pub status: u16,
    /// The request's W3C `traceparent` header, when it had one.
    pub traceparent: Option<String>,
}

#[derive(Default)]
struct Inner {
    by_job: HashMap<String, Vec<Arrival>>,
    missing_headers: usize,
    /// While set, every request is answered with this status.
    broken: Option<u16>,
}

/// The running downstream; it stops when dropped.
#[derive(Clone)]
pub struct Downstream {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    delay: Duration,
    /// Requests it serves at `delay`; beyond, each waits `delay` times the
    /// number of requests in progress over this (a service of limited
    /// capacity that slows under load). `None`: never slows.
    capacity: Option<usize>,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl Downstream {
    /// Starts on an ephemeral loopback port; every answer waits `delay`.
    pub async fn start(delay: Duration) -> anyhow::Result<Self> {
        Self::start_with(delay, None).await
    }

    /// Like [`Downstream::start`], slowing beyond `capacity` requests in
    /// progress (see the field).
    pub async fn start_with(delay: Duration, capacity: Option<usize>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let ds = Self {
            addr,
            inner: Arc::default(),
            delay,
            capacity,
            running: Arc::default(),
            peak: Arc::default(),
            _stop: Arc::new(tx),
        };
        let app = Router::new()
            .route("/work", post(handle))
            .with_state(ds.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(ds)
    }

    pub fn url(&self) -> String {
        format!("http://{}/work", self.addr)
    }

    /// Deliveries per job id.
    pub fn arrivals(&self) -> HashMap<String, Vec<Arrival>> {
        self.inner.lock().unwrap().by_job.clone()
    }

    /// The ids of `ids` the downstream never saw: accepted jobs lost.
    pub fn never_delivered<'a>(&self, ids: &'a [String]) -> Vec<&'a String> {
        let inner = self.inner.lock().unwrap();
        ids.iter()
            .filter(|id| !inner.by_job.contains_key(*id))
            .collect()
    }

    /// Requests that lacked `Sluice-Job-Id`, `Sluice-Attempt` or a JSON content type.
    pub fn missing_headers(&self) -> usize {
        self.inner.lock().unwrap().missing_headers
    }

    /// Answers every request with `status` until [`Downstream::fix`].
    pub fn break_with(&self, status: u16) {
        self.inner.lock().unwrap().broken = Some(status);
    }

    /// Back to answering as each payload asks.
    pub fn fix(&self) {
        self.inner.lock().unwrap().broken = None;
    }

    /// The most requests it had in progress at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Total deliveries seen.
    pub fn total(&self) -> usize {
        self.inner
            .lock()
            .unwrap()
            .by_job
            .values()
            .map(Vec::len)
            .sum()
    }
}

async fn handle(
    State(ds): State<Downstream>,
    headers: HeaderMap,
    Json(payload): Json<Value>,
) -> StatusCode {
    let at = Instant::now();
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let id = headers
        .get("sluice-job-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let attempt = headers
        .get("sluice-attempt")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (Some(id), Some(attempt), true) = (id, attempt, json) else {
        ds.inner.lock().unwrap().missing_headers += 1;
        return StatusCode::BAD_REQUEST;
    };
    // recorded on arrival: a delivery counts even if the caller dies before the answer
    let status = {
        let mut inner = ds.inner.lock().unwrap();
        let seen = inner.by_job.get(&id).map_or(0, Vec::len) as u32;
        let status = match inner
            .broken
            .map_or(Mode::from_payload(&payload), Mode::Always)
        {
            Mode::Ok => 200,
            Mode::FailTimes(k) if seen < k => 503,
            Mode::FailTimes(_) => 200,
            Mode::Always(s) => s,
        };
        inner.by_job.entry(id).or_default().push(Arrival {
            attempt,
            at,
            status,
            traceparent,
        });
        status
    };
    let running = ds.running.fetch_add(1, Ordering::SeqCst) + 1;
    // counts down also when the caller gives up and the request is dropped
    let _running = InProgress(ds.running.clone());
    ds.peak.fetch_max(running, Ordering::SeqCst);
    let load = ds.capacity.map_or(1, |c| running.div_ceil(c).max(1)) as u32;
    if !ds.delay.is_zero() {
        tokio::time::sleep(ds.delay * load).await;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// One request in progress; counted down when dropped.
struct InProgress(Arc<AtomicUsize>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
