//! Replays over the admin router: one dead letter, in bulk at a rate with
//! progress, dry runs, `max_replays` and `Idempotency-Key`.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::admin::*;
use common::*;
use serde_json::json;
use sluice_core::JobStatus;
use sluice_store::Outcome;

const BULK: &str = "/admin/v1/dead-letters/replay";

#[tokio::test]
async fn one_dead_letter_goes_back_to_the_outbox_with_the_same_id() {
    let t = admin().await;
    let id = t.kill("emails", &["boom"]).await[0];
    let r = t
        .post(&format!("/admin/v1/dead-letters/{id}/replay"), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"id": id.to_string(), "status": "pending", "replay_count": 1})
    );
    let job = t.store.get_job(id).await.unwrap();
    assert_eq!(
        (job.status, job.replay_count, job.attempts),
        (JobStatus::Pending, 1, 0)
    );
    assert_eq!(t.dead_count().await, 0);
    // The outbox holds it again, under the same job id.
    let c = t
        .store
        .claim_outbox(100, Duration::from_secs(5))
        .await
        .unwrap();
    // (the dead letter's own row, for the dead-letter topic, may still be due too)
    assert_eq!(
        c.rows
            .iter()
            .filter(|r| r.kind == sluice_store::OutboxKind::Job)
            .map(|r| r.job_id)
            .collect::<Vec<_>>(),
        vec![id]
    );
    let audit = t.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "replay");
    assert_eq!(audit[0]["target"], id.to_string());
    assert_eq!(audit[0]["count"], 1);
    // Not dead any more: 404.
    let r = t
        .post(&format!("/admin/v1/dead-letters/{id}/replay"), None)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn max_replays_is_refused_with_the_reason() {
    let t = admin_app_with(1).await;
    let id = t.kill("emails", &["boom"]).await[0];
    let uri = format!("/admin/v1/dead-letters/{id}/replay");
    assert_eq!(t.post(&uri, None).await.status, StatusCode::ACCEPTED);
    t.finish(
        id,
        Outcome::Dead {
            error: "again".into(),
        },
    )
    .await;
    let p = assert_problem(&t.post(&uri, None).await, StatusCode::CONFLICT);
    assert!(p["detail"].as_str().unwrap().contains("max_replays"), "{p}");
    assert_eq!(t.status(id).await, JobStatus::Dead);
    assert_eq!(t.audit().await.len(), 1, "only the first replay is audited");
    // In bulk it is skipped, not replayed.
    let r = t.post(BULK, Some(&json!({"ids": [id.to_string()]}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let done = t
        .wait_replay(
            r.json()["replay_id"].as_str().unwrap(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        (done["replayed"].clone(), done["skipped"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(t.status(id).await, JobStatus::Dead);
}

#[tokio::test]
async fn a_repeated_single_replay_replays_nothing_twice() {
    let t = admin().await;
    let ids = t.kill("emails", &["a", "b"]).await;
    let uri = format!("/admin/v1/dead-letters/{}/replay", ids[0]);
    let key = [("idempotency-key", "op-42")];
    let first = t.post_with(&uri, None, &key).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    // It dies again; the same request must not replay it a second time.
    t.finish(
        ids[0],
        Outcome::Dead {
            error: "again".into(),
        },
    )
    .await;
    let again = t.post_with(&uri, None, &key).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json(), first.json());
    assert_eq!(t.status(ids[0]).await, JobStatus::Dead);
    assert_eq!(t.store.get_job(ids[0]).await.unwrap().replay_count, 1);
    // The same key for another request is a conflict.
    let other = format!("/admin/v1/dead-letters/{}/replay", ids[1]);
    assert_problem(
        &t.post_with(&other, None, &key).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(t.status(ids[1]).await, JobStatus::Dead);
    assert_eq!(t.audit().await.len(), 1);
}

#[tokio::test]
async fn a_dry_run_counts_and_samples_without_changing_anything() {
    let t = admin().await;
    t.kill("emails", &["timeout"; 12]).await;
    t.kill("plain", &["refused"]).await;
    let r = t
        .post(BULK, Some(&json!({"queue": "emails", "dry_run": true})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["matched"], 12);
    assert_eq!(v["sample"].as_array().unwrap().len(), 10);
    assert_eq!(v["sample"][0]["queue"], "emails");
    let v = t
        .post(
            BULK,
            Some(&json!({"error_contains": "REFUSED", "dry_run": true})),
        )
        .await
        .json();
    assert_eq!(v["matched"], 1);
    let v = t
        .post(BULK, Some(&json!({"limit": 5, "dry_run": true})))
        .await
        .json();
    assert_eq!(
        (v["matched"].clone(), v["sample"].as_array().unwrap().len()),
        (json!(5), 5)
    );
    // an integer as JSON Schema has it (the spec declares `integer`)
    let v = t
        .post(BULK, Some(&json!({"limit": 4.0, "dry_run": true})))
        .await
        .json();
    assert_eq!(v["matched"], 4);
    assert_eq!(t.dead_count().await, 13);
    assert!(t.audit().await.is_empty());
}

#[tokio::test]
async fn a_bulk_replay_runs_at_its_rate_and_reports_progress() {
    let t = admin().await;
    let emails = t.kill("emails", &["e"; 30]).await;
    t.kill("plain", &["p"; 3]).await;
    let started = Instant::now();
    let r = t
        .post_with(
            BULK,
            Some(&json!({"queue": "emails", "rate_per_second": 20})),
            &[("sluice-actor", "bob")],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["matched"], 30);
    let id = v["replay_id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/admin/v1/replays/{id}").as_str())
    );
    // Progress is visible while it runs.
    let mut partial = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let v = t.get(&format!("/admin/v1/replays/{id}")).await.json();
        let pos = v["position"].as_u64().unwrap();
        partial |= v["status"] == "running" && pos > 0 && pos < 30;
        if v["status"] != "running" {
            break v;
        }
        assert!(Instant::now() < deadline, "replay did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    assert!(partial, "no intermediate progress was recorded");
    assert_eq!(done["status"], "completed");
    assert_eq!(
        (
            done["matched"].clone(),
            done["replayed"].clone(),
            done["skipped"].clone()
        ),
        (json!(30), json!(30), json!(0))
    );
    assert_eq!(done["position"], 30);
    assert_eq!(done["rate_per_second"], 20.0);
    assert!(done["finished_at"].as_str().is_some());
    // 30 jobs at 20/s take about 1.45 s (the first goes at once).
    assert!(
        elapsed >= Duration::from_millis(1300),
        "too fast: {elapsed:?}"
    );
    for id in emails {
        assert_eq!(t.status(id).await, JobStatus::Pending);
    }
    assert_eq!(
        t.dead_count().await,
        3,
        "the other queue's dead letters stay"
    );
    let audit = t.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0]["action"].as_str(), audit[0]["actor"].as_str()),
        (Some("replay_bulk"), Some("bob"))
    );
    assert_eq!(audit[0]["count"], 30);
}

#[tokio::test]
async fn a_bulk_replay_without_rate_and_with_ids_replays_only_those() {
    let t = admin().await;
    let ids = t.kill("emails", &["x"; 250]).await;
    let some: Vec<String> = ids.iter().step_by(2).map(|i| i.to_string()).collect();
    let r = t.post(BULK, Some(&json!({"ids": some}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["matched"], 125);
    let done = t
        .wait_replay(
            r.json()["replay_id"].as_str().unwrap(),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        (done["status"].as_str(), done["replayed"].as_u64()),
        (Some("completed"), Some(125))
    );
    assert_eq!(t.dead_count().await, 125);
    assert_eq!(t.status(ids[0]).await, JobStatus::Pending);
    assert_eq!(t.status(ids[1]).await, JobStatus::Dead);
}

#[tokio::test]
async fn a_repeated_bulk_replay_returns_the_same_replay() {
    let t = admin().await;
    let ids = t.kill("emails", &["x"; 3]).await;
    let body = json!({"queue": "emails"});
    let key = [("idempotency-key", "bulk-1")];
    let first = t.post_with(BULK, Some(&body), &key).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let id = first.json()["replay_id"].as_str().unwrap().to_string();
    t.wait_replay(&id, Duration::from_secs(10)).await;
    // They die again; the repeated request replays none of them.
    for i in &ids {
        t.finish(
            *i,
            Outcome::Dead {
                error: "again".into(),
            },
        )
        .await;
    }
    let again = t.post_with(BULK, Some(&body), &key).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json(), first.json());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.dead_count().await, 3);
    let other = t
        .post_with(BULK, Some(&json!({"queue": "plain"})), &key)
        .await;
    assert_problem(&other, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(t.dead_count().await, 3);
    assert_eq!(t.audit().await.len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn replays_are_counted_by_outcome() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The runner task runs on this thread too (current_thread runtime).
    let _guard = metrics::set_default_local_recorder(&recorder);
    let t = admin_app_with(1).await;
    let ids = t.kill("emails", &["x"; 3]).await;
    let one = format!("/admin/v1/dead-letters/{}/replay", ids[0]);
    assert_eq!(t.post(&one, None).await.status, StatusCode::ACCEPTED);
    t.finish(
        ids[0],
        Outcome::Dead {
            error: "again".into(),
        },
    )
    .await;
    let r = t.post(BULK, Some(&json!({"queue": "emails"}))).await;
    let id = r.json()["replay_id"].as_str().unwrap().to_string();
    t.wait_replay(&id, Duration::from_secs(10)).await;
    let text = handle.render();
    let value = |outcome: &str| {
        text.lines()
            .find(|l| l.starts_with("sluice_replay_jobs_total{") && l.contains(outcome))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    // One single and two bulk replays; the first job reached max_replays.
    assert_eq!(value("outcome=\"replayed\""), Some(3.0), "{text}");
    assert_eq!(value("outcome=\"skipped\""), Some(1.0), "{text}");
}

#[tokio::test]
async fn an_abandoned_replay_is_resumed_from_its_position() {
    let t = admin().await;
    let ids = t.kill("emails", &["x"; 4]).await;
    // A replay whose runner died right after replaying the first job, before
    // it recorded anything itself: the store call recorded the job's range
    // and count, so the resumed runner neither replays nor counts it again.
    let new = sluice_store::NewReplay {
        id: uuid::Uuid::now_v7(),
        request: json!({"queue": "emails"}),
        ids: ids.clone(),
        rate_per_second: None,
        max_replays: 3,
        idempotency: None,
        actor: "gone".into(),
    };
    let (rec, created) = t.store.create_replay(new).await.unwrap();
    assert!(created);
    t.store.replay_from_snapshot(rec.id, 0, 1, 3).await.unwrap();

    t.state.set_replay_stale_after(Duration::from_millis(300));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let supervisor = t.state.spawn_replay_supervisor(async {
        let _ = stopped.await;
    });
    let done = t
        .wait_replay(&rec.id.to_string(), Duration::from_secs(10))
        .await;
    assert_eq!(done["status"], "completed");
    assert_eq!(
        (done["replayed"].clone(), done["skipped"].clone()),
        (json!(4), json!(0))
    );
    assert_eq!(done["position"], 4);
    assert_eq!(t.dead_count().await, 0);
    for id in &ids {
        assert_eq!(
            t.store.get_job(*id).await.unwrap().replay_count,
            1,
            "replayed once"
        );
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), supervisor)
        .await
        .unwrap()
        .unwrap();
}
