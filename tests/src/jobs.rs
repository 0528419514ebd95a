//! Helpers the end-to-end tests share: starting one role, reading job
//! statuses through `GET /v1/jobs/{id}`, waiting on the downstream, and
//! running the Python producers.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::{Downstream, SluiceProcess};

/// `sluice serve` with both listeners on ephemeral loopback ports (the admin
/// address is then `SluiceProcess::addr_of("admin")`).
pub const SERVE_EPHEMERAL: &[&str] = &[
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--admin-listen",
    "127.0.0.1:0",
];

/// `sluice <role> --listen 127.0.0.1:0` in `dir`; panics when it fails.
pub fn start_role(dir: &Path, role: &str) -> SluiceProcess {
    SluiceProcess::start(dir, &[role, "--listen", "127.0.0.1:0"], &[])
        .unwrap_or_else(|e| panic!("start {role}: {e}"))
}

/// The job's status, or `None` when the request or its body fails.
pub async fn job_status(client: &reqwest::Client, base: &str, id: &str) -> Option<String> {
    let v: Value = client
        .get(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(v["status"].as_str()?.to_string())
}

/// The statuses of `ids`, in order, 32 requests at a time.
pub async fn job_statuses(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
) -> Vec<Option<String>> {
    futures::stream::iter(ids)
        .map(|id| job_status(client, base, id))
        .buffered(32)
        .collect()
        .await
}

/// Waits until the downstream saw `n` deliveries; panics after 120 s.
pub async fn wait_deliveries(ds: &Downstream, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while ds.total() < n {
        assert!(
            Instant::now() < deadline,
            "stuck before {what}: {} deliveries",
            ds.total()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{what} at {} deliveries", ds.total());
}

/// Attempts a worker has started but not yet recorded, from its `/metrics`
/// page: `sluice_jobs_started_total` less every recorded outcome.
pub async fn attempts_in_flight(client: &reqwest::Client, metrics_url: &str) -> f64 {
    let m = crate::prom::scrape(client, metrics_url).await;
    m.total("sluice_jobs_started_total")
        - m.total("sluice_jobs_succeeded_total")
        - m.total("sluice_jobs_retried_total")
        - m.total("sluice_jobs_dead_total")
        - m.total("sluice_attempts_fenced_total")
}

/// Waits until the worker has an attempt in flight, so that killing it
/// right after loses work; panics after 30 s.
pub async fn wait_attempt_in_flight(client: &reqwest::Client, metrics_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while attempts_in_flight(client, metrics_url).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the worker had no attempt in flight for 30 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The Python with the producers' packages (`SLUICE_TEST_PYTHON`), or `None`
/// to skip; a missing one fails under `SLUICE_TEST_REQUIRE_BACKENDS=1`.
pub fn python() -> Option<String> {
    match std::env::var("SLUICE_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if crate::pg::backends_required() => {
            panic!("SLUICE_TEST_PYTHON is not set and SLUICE_TEST_REQUIRE_BACKENDS=1")
        }
        _ => {
            eprintln!("skipping: SLUICE_TEST_PYTHON is not set");
            None
        }
    }
}

/// Runs `python script args…` (bounded by 60 s), asserts it succeeded, and
/// returns the JSON lines it printed.
pub async fn run_python(python: &str, script: &Path, args: &[&str]) -> Vec<Value> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg(script)
            .args(args)
            .output(),
    )
    .await
    .expect("producer finishes within 60 s")
    .expect("run the python producer");
    assert!(
        out.status.success(),
        "producer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
