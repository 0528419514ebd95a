//! Posts jobs at a steady pace, the way a careful producer does: each job
//! has its own `Idempotency-Key` and is posted again (after a pause) until
//! a `202` accepts it, so an ingest that died or a database that is down
//! delays jobs but never makes two of one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::Mode;

/// How long one job may take to be accepted before the test fails.
const ACCEPT_LIMIT: Duration = Duration::from_secs(120);

/// Jobs being posted in the background.
pub struct Poster {
    handle: JoinHandle<Vec<String>>,
}

impl Poster {
    /// Posts `jobs` healthy jobs to `queue` at `per_second`, at most 32 at
    /// once, to the ingest whose base URL `base` holds (it may change).
    pub fn spawn(
        client: reqwest::Client,
        base: Arc<Mutex<String>>,
        queue: String,
        jobs: usize,
        per_second: f64,
    ) -> Self {
        let handle = tokio::spawn(async move {
            let t0 = Instant::now();
            let gap = Duration::from_secs_f64(1.0 / per_second);
            futures::stream::iter(0..jobs)
                .map(|i| {
                    let (client, base, queue) = (client.clone(), base.clone(), queue.clone());
                    async move {
                        // keep the pace whatever the answers take
                        let due = t0 + gap * i as u32;
                        tokio::time::sleep_until(due.into()).await;
                        accept(&client, &base, &queue, i).await
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<String>>()
                .await
        });
        Self { handle }
    }

    /// The ids of every job, once all were accepted.
    pub async fn accepted(self) -> Vec<String> {
        self.handle.await.expect("poster")
    }
}

/// Posts `body` to `url()` under `key` until an answer comes back, posting
/// again (same key, `url()` asked again: the ingest may have moved) after a
/// transport error such as a connection reset, whose outcome is unknown;
/// fails the test after `limit`.
pub async fn post_until_answered(
    client: &reqwest::Client,
    url: impl Fn() -> String,
    key: &str,
    body: &Value,
    limit: Duration,
) -> reqwest::Response {
    let deadline = Instant::now() + limit;
    loop {
        let sent = client
            .post(url())
            .header("idempotency-key", key)
            .timeout(Duration::from_secs(10))
            .json(body)
            .send()
            .await;
        match sent {
            Ok(r) => return r,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{key}: no answer within {limit:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Posts job `i` until it is accepted; returns its id.
async fn accept(client: &reqwest::Client, base: &Mutex<String>, queue: &str, i: usize) -> String {
    let deadline = Instant::now() + ACCEPT_LIMIT;
    let key = format!("job-{i}");
    let body = json!({"payload": Mode::Ok.payload(i)});
    loop {
        let url = || format!("{}/v1/queues/{queue}/jobs", base.lock().unwrap());
        let left = deadline.saturating_duration_since(Instant::now());
        let r = post_until_answered(client, url, &key, &body, left).await;
        let status = r.status().as_u16();
        if status == 202 {
            let v: Value = r.json().await.expect("202 body");
            return v["id"].as_str().expect("job id").to_string();
        }
        // bad input is the test's bug, not a fault to ride out
        assert!(
            status == 503 || status == 500 || status == 429,
            "job {i}: unexpected {status}"
        );
        assert!(
            Instant::now() < deadline,
            "job {i} not accepted within {ACCEPT_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
