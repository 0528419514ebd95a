//! Operators end to end with the real binary: dead letters from a broken
//! downstream are listed, filtered, paged, previewed and replayed at a set
//! pace once the downstream is fixed; the replay cap; pause and resume.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use sluice_tests::jobs::job_statuses;
use sluice_tests::{Downstream, Mode, SluiceProcess};

fn write_config(dir: &Path, downstream: &str) {
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "sqlite://./data/sluice.db"
[broker]
url = "embedded://./data/broker?poll_interval_ms=50"
[admin]
max_replays = 1
[[queues]]
name = "mail"
max_attempts = 2
backoff = {{ initial_ms = 20, max_ms = 50, multiplier = 2.0 }}
concurrency = {{ min = 1, max = 8 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 2000 }}
# the downstream fails every job: dead letters, not a paused queue, are the point
circuit = {{ enabled = false }}
[[queues]]
name = "other"
max_attempts = 1
handler = {{ type = "http", url = "{downstream}", timeout_ms = 2000 }}
circuit = {{ enabled = false }}
"#
    );
    std::fs::write(dir.join("sluice.toml"), cfg).unwrap();
}

struct Admin {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

async fn post_jobs(client: &reqwest::Client, url: &str, n: usize, offset: usize) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let r = client
                .post(url)
                .json(&json!({"payload": Mode::Ok.payload(offset + i)}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .buffer_unordered(16)
        .collect()
        .await
}

async fn wait_status(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
    status: &str,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let statuses = job_statuses(client, base, ids).await;
        let ok = statuses
            .iter()
            .filter(|s| s.as_deref() == Some(status))
            .count();
        if ok == ids.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ok} of {} jobs {status} after {limit:?}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_listed_previewed_and_replayed_at_pace() {
    let ds = Downstream::start(Duration::ZERO).await.unwrap();
    ds.break_with(500);
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &ds.url());
    let sluice = SluiceProcess::start(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .unwrap();
    let admin_addr = sluice.addr_of("admin").unwrap();
    let token_path = dir.path().join("data/admin-token");
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "admin-token mode");
    }
    assert!(
        !sluice.log_text().contains(&token),
        "the token leaked into the log"
    );
    let client = reqwest::Client::new();
    let admin = Admin {
        client: client.clone(),
        base: format!("http://{admin_addr}"),
        token: token.clone(),
    };
    let unauthorised = client
        .get(format!("http://{admin_addr}/admin/v1/queues"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    // beside the main listener, which serves health and metrics, every
    // path of the admin listener needs the token
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = client
            .get(format!("http://{admin_addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} on the admin listener");
        let r = client.get(sluice.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} on the main listener");
    }

    // 80 jobs die against the broken downstream (500 twice = max_attempts)
    let base = sluice.url("");
    let ids = post_jobs(&client, &sluice.url("/v1/queues/mail/jobs"), 80, 0).await;
    let other = post_jobs(&client, &sluice.url("/v1/queues/other/jobs"), 5, 1000).await;
    wait_status(&client, &base, &ids, "dead", Duration::from_secs(60)).await;
    wait_status(&client, &base, &other, "dead", Duration::from_secs(60)).await;

    let (s, queues) = admin.get("/admin/v1/queues").await;
    assert_eq!(s, 200, "{queues}");
    let mail = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "mail")
        .unwrap()
        .clone();
    assert_eq!(mail["dead"], 80, "{mail}");

    // list, filter and page through them in a stable order
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path =
            "/admin/v1/dead-letters?queue=mail&error_contains=ANSWERED%20500&limit=30".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = admin.get(&path).await;
        assert_eq!(s, 200, "{page}");
        let items = page["dead_letters"].as_array().unwrap();
        assert!(items.len() <= 30);
        for d in items {
            assert_eq!(d["queue"], "mail");
            assert_eq!(d["attempts"], 2);
            seen.push(d["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) if !items.is_empty() => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    assert_eq!(
        seen.len(),
        80,
        "paging returned {} dead letters",
        seen.len()
    );
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        80,
        "a dead letter appeared on two pages"
    );
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
    let (_, none) = admin
        .get("/admin/v1/dead-letters?queue=mail&error_contains=no-such-error")
        .await;
    assert_eq!(none["dead_letters"].as_array().unwrap().len(), 0);
    let (s, detail) = admin
        .get(&format!("/admin/v1/dead-letters/{}", ids[0]))
        .await;
    assert_eq!(s, 200);
    assert_eq!(detail["history"].as_array().unwrap().len(), 2, "{detail}");

    // dry run: a count and a sample, nothing changed
    let (s, dry) = admin
        .post(
            "/admin/v1/dead-letters/replay",
            json!({"queue": "mail", "dry_run": true}),
        )
        .await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(dry["matched"], 80);
    assert!(!dry["sample"].as_array().unwrap().is_empty());
    let (_, q2) = admin.get("/admin/v1/queues").await;
    let mail2 = q2["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "mail")
        .unwrap()
        .clone();
    assert_eq!(mail2["dead"], 80, "a dry run changed something");

    // fix the downstream, replay at 20/s
    ds.fix();
    let before: HashMap<String, usize> = ds
        .arrivals()
        .into_iter()
        .map(|(k, v)| (k, v.len()))
        .collect();
    let t0 = Instant::now();
    let (s, started) = admin
        .post(
            "/admin/v1/dead-letters/replay",
            json!({"queue": "mail", "rate_per_second": 20}),
        )
        .await;
    assert_eq!(s, 202, "{started}");
    assert_eq!(started["matched"], 80);
    let replay_id = started["replay_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let progress = loop {
        let (_, p) = admin.get(&format!("/admin/v1/replays/{replay_id}")).await;
        if p["status"] == "completed" {
            break p;
        }
        assert!(Instant::now() < deadline, "replay not completed: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (progress["replayed"].as_u64(), progress["skipped"].as_u64()),
        (Some(80), Some(0)),
        "{progress}"
    );
    eprintln!("replay of 80 at 20/s completed in {:?}", t0.elapsed());
    wait_status(&client, &base, &ids, "succeeded", Duration::from_secs(30)).await;

    // the pace, from the downstream's arrival times of the replayed attempts
    let arrivals = ds.arrivals();
    let mut times: Vec<Instant> = ids
        .iter()
        .map(|id| arrivals[id][before.get(id).copied().unwrap_or(0)].at)
        .collect();
    times.sort();
    let span = times[times.len() - 1].duration_since(times[0]);
    let rate = (times.len() - 1) as f64 / span.as_secs_f64();
    eprintln!(
        "replayed deliveries: {} over {span:?} = {rate:.1}/s (asked 20/s)",
        times.len()
    );
    assert!(
        span >= Duration::from_secs(3),
        "replay span {span:?} too short to judge the pace"
    );
    assert!(
        (16.0..=24.0).contains(&rate),
        "replay pace {rate:.1}/s is not 20/s ±20%"
    );
    for id in &ids {
        let v: Value = client
            .get(format!("{base}/v1/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "succeeded");
    }

    // the replay cap (max_replays = 1): the other queue's jobs die again
    ds.break_with(400);
    let (s, r) = admin
        .post(
            &format!("/admin/v1/dead-letters/{}/replay", other[0]),
            json!({}),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    wait_status(&client, &base, &other[..1], "dead", Duration::from_secs(30)).await;
    let (s, refused) = admin
        .post(
            &format!("/admin/v1/dead-letters/{}/replay", other[0]),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "{refused}");
    assert!(refused.to_string().contains("replay"), "{refused}");

    // pause and resume: accepted while paused, started only after resume
    ds.fix();
    let (s, _) = admin.post("/admin/v1/queues/mail/pause", json!({})).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let held = post_jobs(&client, &sluice.url("/v1/queues/mail/jobs"), 3, 2000).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in &held {
        let v: Value = client
            .get(format!("{base}/v1/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            v["status"] == "pending" || v["status"] == "published",
            "paused queue ran a job: {v}"
        );
        assert_eq!(v["attempts"], 0);
    }
    let (_, q3) = admin.get("/admin/v1/queues").await;
    assert_eq!(
        q3["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "mail")
            .unwrap()["paused"],
        true
    );
    let (s, _) = admin.post("/admin/v1/queues/mail/resume", json!({})).await;
    assert_eq!(s, 200);
    wait_status(&client, &base, &held, "succeeded", Duration::from_secs(30)).await;

    let (_, audit) = admin.get("/admin/v1/audit?limit=50").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .or_else(|| audit["audit"].as_array())
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    for a in ["pause", "resume"] {
        assert!(actions.contains(&a), "audit log lacks {a}: {audit}");
    }
    assert!(
        actions.iter().any(|a| a.starts_with("replay")),
        "audit log lacks replays: {audit}"
    );
}

/// `sluice admin` alone has no other listener: its health routes and
/// metrics answer without the token (for probes and scrapers), the admin
/// API still needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_role_alone_serves_health_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "http://127.0.0.1:9/unused");
    let sluice =
        SluiceProcess::start(dir.path(), &["admin", "--admin-listen", "127.0.0.1:0"], &[]).unwrap();
    let admin = format!("http://{}", sluice.addr_of("admin").unwrap());
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client.get(format!("{admin}/readyz")).send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the admin role never got ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in ["/healthz", "/metrics"] {
        let r = client.get(format!("{admin}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = client
        .get(format!("{admin}/admin/v1/queues"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
