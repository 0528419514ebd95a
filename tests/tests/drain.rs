//! Graceful drain of `sluice serve` on SIGTERM: `/readyz` answers 503 at
//! once, intake refuses new jobs with 503 + Retry-After, jobs in flight
//! finish within the grace period, jobs that outlast it are left for other
//! workers, and the process exits 0.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_tests::jobs::job_statuses;
use sluice_tests::{eventually, Downstream, SluiceProcess};

/// `grace_ms` of drain; attempts time out after `timeout_ms`.
fn write_config(dir: &Path, downstream: &str, grace_ms: u64, timeout_ms: u64) {
    let cfg = format!(
        r#"
data_dir = "./data"
[worker]
drain_grace_ms = {grace_ms}
lease_margin_ms = 500
[[queues]]
name = "drain"
concurrency = {{ min = 4, max = 4 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = {timeout_ms} }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

async fn post(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client
        .post(url)
        .json(&json!({"payload": {"to": "a@example.com"}}))
        .send()
        .await
        .unwrap()
}

/// `sluice serve` on a fresh directory with `jobs` jobs posted and all of
/// them mid-attempt at the downstream (each delivery takes `delivery`).
struct Draining {
    ds: Downstream,
    dir: tempfile::TempDir,
    sluice: SluiceProcess,
    client: reqwest::Client,
    ids: Vec<String>,
}

async fn start_with_jobs_in_flight(
    delivery: Duration,
    grace_ms: u64,
    timeout_ms: u64,
    jobs: usize,
) -> Draining {
    let ds = Downstream::start(delivery).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &ds.url(), grace_ms, timeout_ms);
    let sluice =
        SluiceProcess::start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]).unwrap();
    let client = reqwest::Client::new();
    let jobs_url = sluice.url("/v1/queues/drain/jobs");
    let mut ids = Vec::new();
    for _ in 0..jobs {
        let r = post(&client, &jobs_url).await;
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async { (ds.total() == jobs).then_some(()) },
    )
    .await
    .expect("the jobs never reached the downstream");
    Draining {
        ds,
        dir,
        sluice,
        client,
        ids,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_intake_finishes_in_flight_jobs_and_exits_0() {
    // each delivery takes 2 s, so the jobs are mid-attempt at the signal
    let Draining {
        ds,
        dir,
        mut sluice,
        client,
        ids,
    } = start_with_jobs_in_flight(Duration::from_secs(2), 15_000, 10_000, 3).await;
    let jobs_url = sluice.url("/v1/queues/drain/jobs");

    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &sluice.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // at once: not ready, and no new jobs
    let ready = eventually(
        Duration::from_secs(1),
        Duration::from_millis(10),
        || async {
            let r = client.get(sluice.url("/readyz")).send().await.ok()?;
            (r.status() == 503).then_some(())
        },
    )
    .await;
    assert!(
        ready.is_ok(),
        "/readyz did not turn 503 within 1 s of SIGTERM"
    );
    let refused = post(&client, &jobs_url).await;
    assert_eq!(refused.status(), 503, "intake must stop while draining");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        signalled.elapsed() < Duration::from_millis(1500),
        "the checks above ran while the jobs were still in flight"
    );

    let code = sluice.terminate(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "a drained process exits 0");
    let took = signalled.elapsed();
    println!("drained and exited {took:?} after SIGTERM");

    // every job was delivered once and recorded succeeded before the exit
    let mut again =
        SluiceProcess::start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]).unwrap();
    let statuses = job_statuses(&client, &again.url(""), &ids).await;
    for (id, status) in ids.iter().zip(statuses) {
        assert_eq!(status.as_deref(), Some("succeeded"), "job {id}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ds.total(), 3, "a finished job was delivered again");
    assert_eq!(again.terminate(Duration::from_secs(20)).unwrap(), Some(0));
}

/// Jobs still running when the grace period ends are abandoned un-acked: the
/// process exits 0 without waiting for them, and once their lease lapses
/// another worker (here the restarted process) runs them to success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_outlasting_the_grace_period_are_left_for_other_workers() {
    // 4 s a delivery, a grace of 0.5 s, a lease of 5 s + 0.5 s
    let Draining {
        ds,
        dir,
        mut sluice,
        client,
        ids,
    } = start_with_jobs_in_flight(Duration::from_secs(4), 500, 5_000, 2).await;

    let signalled = Instant::now();
    let code = sluice.terminate(Duration::from_secs(20)).unwrap();
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "a drained process exits 0");
    assert!(
        took < Duration::from_secs(3),
        "exit took {took:?}: the drain waited for jobs past its grace period"
    );
    println!("exited {took:?} after SIGTERM with 2 jobs abandoned");

    let mut again =
        SluiceProcess::start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]).unwrap();
    let base = again.url("");
    eventually(Duration::from_secs(40), Duration::from_millis(200), || {
        let (client, base, ids) = (&client, &base, &ids);
        async move {
            let statuses = job_statuses(client, base, ids).await;
            statuses
                .iter()
                .all(|s| s.as_deref() == Some("succeeded"))
                .then_some(())
        }
    })
    .await
    .expect("the abandoned jobs never succeeded after the restart");
    let arrivals = ds.arrivals();
    for id in &ids {
        let a = &arrivals[id];
        assert_eq!(
            a.len(),
            2,
            "job {id}: the abandoned attempt, then the rerun"
        );
        assert_eq!(a[1].attempt, 2, "job {id}");
    }
    assert_eq!(again.terminate(Duration::from_secs(20)).unwrap(), Some(0));
}
