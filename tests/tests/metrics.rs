//! `/metrics` of the real binary after a run with retries, dead letters, an
//! opened circuit and a replay, on the embedded default: every metric that
//! `docs/metrics.md` documents as appearing after such a run is there with
//! its documented type and labels, nothing undocumented is, and the job
//! counters have exact values.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_tests::jobs::{job_statuses, SERVE_EPHEMERAL};
use sluice_tests::prom::Exposition;
use sluice_tests::{eventually, Downstream, Mode, SluiceProcess};

/// One row of the table in docs/metrics.md.
#[derive(Debug)]
struct Documented {
    name: String,
    kind: String,
    labels: BTreeSet<String>,
    appears: String,
}

fn documented() -> Vec<Documented> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<Documented> = text
        .lines()
        .filter(|l| l.starts_with("| `sluice_"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert!(cells.len() >= 5, "short row in {}: {l}", path.display());
            Documented {
                name: cells[0].trim_matches('`').to_string(),
                kind: cells[1].to_string(),
                labels: cells[2]
                    .split(',')
                    .map(|s| s.trim().trim_matches('`').to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                appears: cells[4].to_string(),
            }
        })
        .collect();
    assert!(rows.len() > 20, "no metrics table in {}", path.display());
    rows
}

fn write_config(dir: &Path, downstream: &str) {
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "sqlite://./data/sluice.db"
[broker]
url = "embedded://./data/broker?poll_interval_ms=50"
[http]
scaling_refresh_ms = 200
[[queues]]
name = "m"
max_attempts = 3
backoff = {{ initial_ms = 50, max_ms = 200, multiplier = 2.0 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 5000 }}
circuit = {{ enabled = false }}
[[queues]]
name = "c"
max_attempts = 2
backoff = {{ initial_ms = 50, max_ms = 200, multiplier = 2.0 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 5000 }}
circuit = {{ consecutive_failures = 2, failure_ratio = 1.0, window = 10, min_attempts = 10, cooldown_ms = 200 }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

/// Queue `m`: 4 succeed, 3 fail once then succeed, 2 always answer 500
/// (3 attempts, dead), 1 answers 400 (dead at once). Queue `c`: one job
/// that always answers 503, whose two failures open the circuit.
fn jobs() -> Vec<(&'static str, Mode)> {
    let mut v = vec![("m", Mode::Ok); 4];
    v.extend(vec![("m", Mode::FailTimes(1)); 3]);
    v.extend(vec![("m", Mode::Always(500)); 2]);
    v.push(("m", Mode::Always(400)));
    v.push(("c", Mode::Always(503)));
    v
}

/// A metric, the labels that pick its series, and the value.
type Expected = (&'static str, &'static [(&'static str, &'static str)], f64);

/// Exact values after the run and the replay of the 400 job (which dies
/// again): (metric, labels, value).
const EXACT: &[Expected] = &[
    ("sluice_jobs_accepted_total", &[("queue", "m")], 10.0),
    ("sluice_jobs_accepted_total", &[("queue", "c")], 1.0),
    ("sluice_jobs_started_total", &[("queue", "m")], 18.0),
    ("sluice_jobs_started_total", &[("queue", "c")], 2.0),
    ("sluice_jobs_succeeded_total", &[("queue", "m")], 7.0),
    ("sluice_jobs_retried_total", &[("queue", "m")], 7.0),
    ("sluice_jobs_retried_total", &[("queue", "c")], 1.0),
    ("sluice_jobs_dead_total", &[("queue", "m")], 4.0),
    ("sluice_jobs_dead_total", &[("queue", "c")], 1.0),
    // 18 attempts' messages plus 4 dead-letter copies; 2 plus 1
    (
        "sluice_relay_published_messages_total",
        &[("queue", "m")],
        22.0,
    ),
    (
        "sluice_relay_published_messages_total",
        &[("queue", "c")],
        3.0,
    ),
    (
        "sluice_handler_duration_seconds_count",
        &[("queue", "m"), ("outcome", "success")],
        7.0,
    ),
    (
        "sluice_handler_duration_seconds_count",
        &[("queue", "m"), ("outcome", "failure")],
        11.0,
    ),
    (
        "sluice_http_requests_total",
        &[
            ("route", "/v1/queues/{queue}/jobs"),
            ("method", "POST"),
            ("status", "202"),
        ],
        11.0,
    ),
    ("sluice_replay_jobs_total", &[("outcome", "replayed")], 1.0),
    ("sluice_queue_dead_jobs", &[("queue", "m")], 3.0),
    ("sluice_queue_dead_jobs", &[("queue", "c")], 1.0),
    ("sluice_queue_backlog_jobs", &[("queue", "m")], 0.0),
    ("sluice_queue_in_flight_jobs", &[("queue", "m")], 0.0),
    ("sluice_queue_retrying_jobs", &[("queue", "m")], 0.0),
    ("sluice_queue_paused", &[("queue", "m")], 0.0),
];

/// What of [`EXACT`] does not hold, one line each.
fn mismatches(e: &Exposition) -> Vec<String> {
    EXACT
        .iter()
        .filter_map(|(name, labels, want)| {
            let got = e.value(name, labels);
            (got != Some(*want)).then(|| format!("{name}{labels:?}: {got:?}, want {want}"))
        })
        .collect()
}

async fn scrape(client: &reqwest::Client, url: &str) -> Option<Exposition> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    Some(Exposition::parse(&text).unwrap())
}

/// Waits until every job of `ids` succeeded or died, for up to 60 s.
async fn wait_final(client: &reqwest::Client, base: &str, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses = job_statuses(client, base, ids).await;
        let is_final = |s: &Option<String>| matches!(s.as_deref(), Some("succeeded" | "dead"));
        if statuses.iter().all(is_final) {
            return;
        }
        assert!(Instant::now() < deadline, "jobs not final: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `sluice serve` with [`write_config`]'s queues against a fresh
/// downstream; the downstream and the directory live as long as the tuple.
async fn serve() -> (Downstream, tempfile::TempDir, SluiceProcess) {
    let ds = Downstream::start(Duration::ZERO).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &ds.url());
    let sluice = SluiceProcess::start(dir.path(), SERVE_EPHEMERAL, &[]).unwrap();
    (ds, dir, sluice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_metrics_after_retries_dead_letters_and_a_replay() {
    let (_ds, dir, sluice) = serve().await;
    let admin = format!("http://{}", sluice.addr_of("admin").unwrap());
    let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let client = reqwest::Client::new();
    let base = sluice.url("");

    let mut ids = Vec::new();
    for (i, (queue, mode)) in jobs().into_iter().enumerate() {
        let resp = client
            .post(sluice.url(&format!("/v1/queues/{queue}/jobs")))
            .json(&json!({ "payload": mode.payload(i) }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let body: serde_json::Value = resp.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    wait_final(&client, &base, &ids).await;

    // replay the job that answered 400: it runs once more and dies again
    let bad = &ids[9];
    let resp = client
        .post(format!("{admin}/admin/v1/dead-letters/{bad}/replay"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());

    let url = sluice.url("/metrics");
    let last = std::sync::Mutex::new(Vec::new());
    let settled = eventually(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let e = scrape(&client, &url).await?;
            let m = mismatches(&e);
            *last.lock().unwrap() = m.clone();
            m.is_empty().then_some(e)
        },
    )
    .await;
    let e = settled.unwrap_or_else(|err| panic!("{err}: {:#?}", last.lock().unwrap()));
    assert!(e.value("sluice_circuit_opened_total", &[("queue", "c")]) >= Some(1.0));

    let docs = documented();
    let expected = docs
        .iter()
        .filter(|d| ["work", "replay", "circuit"].contains(&d.appears.as_str()));
    for d in expected {
        let samples: Vec<_> = e
            .samples
            .iter()
            .filter(|s| series_of(&s.name, &d.kind) == Some(d.name.as_str()))
            .collect();
        assert!(!samples.is_empty(), "documented {} is missing", d.name);
        assert_eq!(e.types.get(&d.name), Some(&d.kind), "type of {}", d.name);
        for s in samples {
            let labels: BTreeSet<String> =
                s.labels.keys().filter(|k| *k != "le").cloned().collect();
            assert_eq!(labels, d.labels, "labels of {s:?}");
        }
    }
    for name in e.types.keys().filter(|n| n.starts_with("sluice_")) {
        assert!(
            docs.iter().any(|d| &d.name == name),
            "{name} is emitted but not documented in docs/metrics.md"
        );
    }

    // nothing counted twice after the run settled
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = scrape(&client, &url).await.unwrap();
    assert_eq!(mismatches(&again), Vec::<String>::new());
}

/// docs/metrics.md: the worker's per-job series are present (counters at 0,
/// histograms empty) from a pool's start, before any job, so dashboards and
/// `rate()` see them from the first scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_series_are_present_before_the_first_job() {
    let (_ds, _dir, sluice) = serve().await;
    let client = reqwest::Client::new();
    let url = sluice.url("/metrics");
    let q = [("queue", "m")];
    let e = eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let e = scrape(&client, &url).await?;
            e.value("sluice_jobs_started_total", &q)
                .is_some()
                .then_some(e)
        },
    )
    .await
    .expect("the worker pool of queue m never registered its series");
    for counter in [
        "sluice_jobs_started_total",
        "sluice_jobs_succeeded_total",
        "sluice_jobs_retried_total",
        "sluice_jobs_dead_total",
    ] {
        assert_eq!(e.value(counter, &q), Some(0.0), "{counter}");
    }
    assert_eq!(
        e.value("sluice_job_start_delay_seconds_count", &q),
        Some(0.0)
    );
    for outcome in ["success", "failure"] {
        assert_eq!(
            e.value(
                "sluice_handler_duration_seconds_count",
                &[("queue", "m"), ("outcome", outcome)]
            ),
            Some(0.0),
            "{outcome}"
        );
    }
}

/// The metric a sample line belongs to: histograms have `_bucket`, `_sum`
/// and `_count` lines.
fn series_of<'a>(sample: &'a str, kind: &str) -> Option<&'a str> {
    if kind != "histogram" {
        return Some(sample);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| sample.strip_suffix(suffix))
}
