//! Crash safety on the embedded default: `kill -9` of `sluice serve` while
//! 2,000 accepted jobs are in flight, then a restart: every job that got a
//! `202` reaches `succeeded`. Duplicate deliveries are counted and printed.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use sluice_tests::jobs::job_statuses;
use sluice_tests::{eventually, Downstream, Mode, SluiceProcess};

fn write_config(dir: &Path, downstream: &str, store: &str) {
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "{store}"
[broker]
url = "embedded://./data/broker?visibility_timeout_ms=3000&poll_interval_ms=50"
[relay]
lease_ms = 5000
[worker]
lease_margin_ms = 500
[[queues]]
name = "crash"
max_attempts = 10
backoff = {{ initial_ms = 50, max_ms = 500, multiplier = 2.0 }}
concurrency = {{ min = 1, max = 16 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 2000 }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_sqlite_embedded() {
    kill_dash_nine_loses_no_accepted_job("sqlite://./data/sluice.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_postgres_embedded() {
    let Some(server) = sluice_tests::pg::server_url() else {
        return;
    };
    let db = sluice_tests::pg::TempDb::create(&server).await.unwrap();
    kill_dash_nine_loses_no_accepted_job(&db.url).await;
}

async fn kill_dash_nine_loses_no_accepted_job(store: &str) {
    // a slowish downstream keeps work in flight when the process dies
    let ds = Downstream::start(Duration::from_millis(25)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &ds.url(), store);
    let mut sluice =
        SluiceProcess::start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]).unwrap();
    let client = reqwest::Client::new();
    let url = sluice.url("/v1/queues/crash/jobs");

    let ids: Vec<String> = futures::stream::iter(0..2000usize)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let resp = client
                    .post(&url)
                    .json(&json!({"payload": Mode::Ok.payload(i)}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 202);
                let v: Value = resp.json().await.unwrap();
                v["id"].as_str().unwrap().to_string()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let before = ds.total();
    sluice.kill9();
    eprintln!("killed with {before} of 2000 jobs delivered");
    assert!(
        before < 2000,
        "the kill came too late to test anything: all jobs were already delivered"
    );

    let sluice =
        SluiceProcess::start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]).unwrap();
    let base = sluice.url("");
    let t0 = Instant::now();
    eventually(Duration::from_secs(120), Duration::from_millis(500), || {
        let client = client.clone();
        let ids = ids.clone();
        let base = base.clone();
        async move {
            let statuses = job_statuses(&client, &base, &ids).await;
            let ok = statuses
                .iter()
                .filter(|s| s.as_deref() == Some("succeeded"))
                .count();
            (ok == 2000).then_some(())
        }
    })
    .await
    .expect("every accepted job succeeds after the restart");

    let arrivals = ds.arrivals();
    let missing = ds.never_delivered(&ids);
    assert!(
        missing.is_empty(),
        "{} accepted jobs never reached the downstream",
        missing.len()
    );
    let duplicates: usize = arrivals.values().map(|a| a.len() - 1).sum();
    eprintln!(
        "recovered in {:?}; duplicate deliveries seen by the downstream: {duplicates}",
        t0.elapsed()
    );
}

/// Runs sluice with `args` in a directory holding `files` (name, text);
/// asserts it fails naming each of `parts` and stores nothing.
fn fails_naming(files: &[(&str, &str)], args: &[&str], parts: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (code, out) =
        sluice_tests::process::run_to_end(dir.path(), args, Duration::from_secs(60)).unwrap();
    assert_ne!(code, Some(0), "{out}");
    for part in parts {
        assert!(out.contains(part), "{part:?} missing: {out}");
    }
    assert!(
        !dir.path().join("sluice-data").exists(),
        "a broken config must store nothing"
    );
}

#[test]
fn broken_config_names_file_and_key() {
    fails_naming(
        &[("bad.toml", "[[queues]]\nname = \"q\"\nmax_attempts = 0\n")],
        &["--config", "bad.toml", "migrate"],
        &["bad.toml", "queues[0].max_attempts"],
    );
}

/// A queue's schema file that is JSON but no valid JSON Schema is a config
/// error naming the config file, the key and the schema file, found before
/// anything is stored or bound.
#[test]
fn an_invalid_schema_file_names_file_key_and_schema() {
    fails_naming(
        &[
            ("bad.schema.json", r#"{"type": 5}"#),
            (
                "bad.toml",
                "[[queues]]\nname = \"q\"\nschema = \"bad.schema.json\"\n",
            ),
        ],
        &["--config", "bad.toml", "serve", "--listen", "127.0.0.1:0"],
        &[
            "bad.toml",
            "queues[0].schema",
            "bad.schema.json",
            "not a valid JSON Schema",
        ],
    );
}
