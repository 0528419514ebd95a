//! The end-to-end scenario shared by the e2e tests of each store and broker:
//! the real binary as a separate process, 2,000 jobs over HTTP to a local
//! downstream with transient and permanent failures.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::{Downstream, Mode, SluiceProcess};

const INITIAL_MS: u64 = 100;
const MAX_MS: u64 = 800;
const MAX_ATTEMPTS: u32 = 4;
/// Most a retry may arrive after its backoff (relay, broker and worker
/// latency): gaps up to 8.6 s were seen with load average 10 on two cores.
/// The policy itself is checked by the floor; this only catches stuck retries.
const DELIVERY_SLACK: Duration = Duration::from_secs(12);

fn write_config(dir: &Path, downstream: &str, store: &str, broker: &str, topic: &str) {
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "{store}"
[broker]
url = "{broker}"
[worker]
lease_margin_ms = 1000
[[queues]]
name = "e2e"
topic = "{topic}"
max_attempts = {MAX_ATTEMPTS}
backoff = {{ initial_ms = {INITIAL_MS}, max_ms = {MAX_MS}, multiplier = 2.0, jitter = "equal" }}
# a fixed pool, and no breaker: the scenario checks retry gaps against the
# policy, and its retry phase is nearly all failing attempts (503s) of a few
# jobs, on which adaptive concurrency would (rightly) back off and a breaker
# open, both stretching those gaps
concurrency = {{ min = 32, max = 32 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 3000 }}
circuit = {{ enabled = false }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

/// The mode of job `i`: 10% fail twice, 1% always 500, 1% 400, the rest ok.
fn mode_of(i: usize) -> Mode {
    match i % 100 {
        0..=9 => Mode::FailTimes(2),
        10 => Mode::Always(500),
        11 => Mode::Always(400),
        _ => Mode::Ok,
    }
}

async fn post_jobs(
    client: &reqwest::Client,
    base: &str,
    queue: &str,
    n: usize,
    mode: fn(usize) -> Mode,
) -> Vec<(String, Mode)> {
    let url = format!("{base}/v1/queues/{queue}/jobs");
    let results: Vec<(String, Mode)> = futures::stream::iter(0..n)
        .map(|i| {
            let url = url.clone();
            let client = client.clone();
            async move {
                let m = mode(i);
                let resp = client
                    .post(&url)
                    .json(&json!({"payload": m.payload(i)}))
                    .send()
                    .await
                    .expect("post");
                assert_eq!(resp.status(), 202, "job {i}");
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["status"], "pending");
                (body["id"].as_str().unwrap().to_string(), m)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results
}

async fn job(client: &reqwest::Client, base: &str, id: &str) -> Value {
    client
        .get(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until every job is final; returns their records.
async fn wait_final(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
    limit: Duration,
) -> HashMap<String, Value> {
    let mut done: HashMap<String, Value> = HashMap::new();
    let deadline = Instant::now() + limit;
    while done.len() < ids.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} jobs final after {limit:?}",
            done.len(),
            ids.len()
        );
        let pending: Vec<&String> = ids.iter().filter(|id| !done.contains_key(*id)).collect();
        let polled: Vec<(String, Value)> = futures::stream::iter(pending)
            .map(|id| async move { (id.clone(), job(client, base, id).await) })
            .buffer_unordered(32)
            .collect()
            .await;
        for (id, rec) in polled {
            if matches!(rec["status"].as_str(), Some("succeeded" | "dead")) {
                done.insert(id, rec);
            }
        }
        if done.len() < ids.len() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    done
}

/// Runs 2,000 jobs (10% fail twice, 1% always 500, 1% 400) through `serve`
/// on `store` and `broker` with queue `e2e` on `topic`; asserts statuses,
/// attempts, backoff gaps and no duplicates. Returns the dead jobs' ids.
pub async fn two_thousand_jobs_with_retries_and_dead_letters(
    store: &str,
    broker: &str,
    topic: &str,
) -> Vec<String> {
    let ds = Downstream::start(Duration::ZERO).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &ds.url(), store, broker, topic);
    let sluice =
        SluiceProcess::start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]).unwrap();
    let base = sluice.url("");
    let client = reqwest::Client::new();

    let t0 = Instant::now();
    let jobs = post_jobs(&client, &base, "e2e", 2000, mode_of).await;
    eprintln!("accepted 2000 jobs in {:?}", t0.elapsed());
    let ids: Vec<String> = jobs.iter().map(|(id, _)| id.clone()).collect();
    let records = wait_final(&client, &base, &ids, Duration::from_secs(180)).await;
    eprintln!("all final after {:?}", t0.elapsed());

    let arrivals = ds.arrivals();
    assert_eq!(
        ds.missing_headers(),
        0,
        "deliveries without Sluice-Job-Id/Sluice-Attempt/JSON"
    );
    let mut duplicates = 0;
    let mut dead = Vec::new();
    for (id, mode) in &jobs {
        let rec = &records[id];
        let seen = arrivals.get(id).cloned().unwrap_or_default();
        let (status, attempts) = match mode {
            Mode::Ok => ("succeeded", 1),
            Mode::FailTimes(k) => ("succeeded", k + 1),
            Mode::Always(500) => ("dead", MAX_ATTEMPTS),
            Mode::Always(_) => ("dead", 1),
        };
        assert_eq!(rec["status"], status, "job {id} ({mode:?}): {rec}");
        assert_eq!(rec["attempts"], attempts, "job {id} ({mode:?}): {rec}");
        assert_eq!(rec["max_attempts"], MAX_ATTEMPTS);
        assert!(
            seen.len() >= attempts as usize,
            "job {id}: downstream saw {} of {attempts} attempts",
            seen.len()
        );
        duplicates += seen.len() - attempts as usize;
        let numbers: Vec<u32> = seen.iter().map(|a| a.attempt).collect();
        let mut dedup = numbers.clone();
        dedup.dedup();
        assert_eq!(
            dedup,
            (1..=attempts).collect::<Vec<_>>(),
            "job {id}: attempt headers {numbers:?}"
        );
        if status == "dead" {
            dead.push(id.clone());
            let err = rec["last_error"].as_str().unwrap_or("");
            let code = if matches!(mode, Mode::Always(400)) {
                "400"
            } else {
                "500"
            };
            assert!(err.contains(code), "job {id}: last_error {err:?}");
        }
        // gaps between attempts follow the policy: equal jitter puts the
        // delay after attempt k in [ceiling(k)/2, ceiling(k)]; delivery adds
        // relay and broker latency on top, never less (the upper slack
        // allows for a loaded two-core machine)
        for k in 1..seen.len().min(attempts as usize) {
            let gap = seen[k].at.duration_since(seen[k - 1].at);
            let ceiling = Duration::from_millis((INITIAL_MS << (k - 1)).min(MAX_MS));
            let floor = ceiling / 2;
            assert!(
                gap + Duration::from_millis(5) >= floor && gap <= ceiling + DELIVERY_SLACK,
                "job {id}: gap after attempt {k} was {gap:?}, policy allows [{floor:?}, {ceiling:?}] plus delivery"
            );
        }
    }
    eprintln!("duplicate deliveries: {duplicates}");
    assert_eq!(duplicates, 0, "no duplicates expected without faults");
    dead
}
