//! The worker pool with the real SQLite store, embedded broker and relay:
//! the HTTP handler's contract with a local downstream, and direct producers
//! publishing straight to the topic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use sluice_core::{Envelope, Failure, HandlerConfig, JobId, JobStatus};
use sluice_worker::{Handler, JobContext};

mod common;

use common::{downstream, http, queue, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_handler_sends_the_contract_headers() {
    let (url, seen) = downstream(vec![]).await;
    let rig = Rig::new(queue("hdr", http(&url))).await;
    rig.start(
        sluice_worker::handler_for(&rig.queue.handler).unwrap(),
        None,
    );
    let mut headers = BTreeMap::new();
    headers.insert("x-tenant".to_string(), "acme".to_string());
    headers.insert("sluice-attempt".to_string(), "99".to_string());
    let id = rig.submit(json!({"to": "x"}), headers).await;
    let job = rig.wait_final(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (_, h, body) = &seen[0];
    assert_eq!(body, &json!({"to": "x"}));
    assert_eq!(h["sluice-job-id"], id.to_string().as_str());
    assert_eq!(
        h["sluice-attempt"], "1",
        "a job header must not override Sluice-Attempt"
    );
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-tenant"], "acme");
    assert_eq!(
        h["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_then_success() {
    let (url, seen) = downstream(vec![(429, Some("1")), (503, None)]).await;
    let rig = Rig::new(queue("ra", http(&url))).await;
    rig.start(
        sluice_worker::handler_for(&rig.queue.handler).unwrap(),
        None,
    );
    let id = rig.submit(json!(1), BTreeMap::new()).await;
    let job = rig.wait_final(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.attempts, 3);
    let seen = seen.lock().unwrap();
    let attempts: Vec<&str> = seen
        .iter()
        .map(|(_, h, _)| h["sluice-attempt"].to_str().unwrap())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let gap = seen[1].0 - seen[0].0;
    assert!(
        gap >= Duration::from_millis(990),
        "Retry-After: 1 not honoured: retried after {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_permanent_and_exhaustion_is_dead() {
    let (url, seen) = downstream(vec![(404, None)]).await;
    let rig = Rig::new(queue("perm", http(&url))).await;
    rig.start(
        sluice_worker::handler_for(&rig.queue.handler).unwrap(),
        None,
    );
    let id = rig.submit(json!(1), BTreeMap::new()).await;
    let job = rig.wait_final(id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Dead, 1));
    let err = job.last_error.unwrap();
    assert!(err.contains("permanent") && err.contains("404"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    // outside consumers see the dead letter on sluice.perm.dlq
    let dead = rig.dead_letters(1).await;
    assert_eq!(dead.len(), 1, "no dead letter on {}", rig.queue.dlq_topic());
    assert_eq!(dead[0].topic, "sluice.perm.dlq");
    assert_eq!(dead[0].attributes["id"], id.to_string());
    assert_eq!(dead[0].attributes["type"], "sluice.job.dead");
    assert_eq!(dead[0].attributes["sluiceerror"], err);
    assert_eq!(
        serde_json::from_slice::<Value>(&dead[0].body).unwrap(),
        json!(1)
    );
    assert_eq!(
        rig.store.get_job(id).await.unwrap().status,
        JobStatus::Dead,
        "publishing the dead letter leaves the job dead"
    );

    // a downstream that refuses connections: transient until max_attempts
    let mut q = queue("gone", http("http://127.0.0.1:9/nothing"));
    q.max_attempts = 2;
    let rig = Rig::new(q).await;
    rig.start(
        sluice_worker::handler_for(&rig.queue.handler).unwrap(),
        None,
    );
    let id = rig.submit(json!(1), BTreeMap::new()).await;
    let job = rig.wait_final(id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Dead, 2));
    let err = job.last_error.unwrap();
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    let dead = rig.dead_letters(1).await;
    assert_eq!(dead.len(), 1, "no dead letter on {}", rig.queue.dlq_topic());
    assert_eq!(dead[0].attributes["id"], id.to_string());
    assert_eq!(dead[0].attributes["sluiceattempt"], "2");
    assert_eq!(dead[0].attributes["sluiceerror"], err);
}

/// Records what it handled; fails payloads `{"fail": true}` permanently.
#[derive(Default)]
struct Recorder(Mutex<Vec<JobContext>>);

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, ctx: &JobContext) -> Result<(), Failure> {
        self.0.lock().unwrap().push(ctx.clone());
        if ctx.payload["fail"] == json!(true) {
            return Err(Failure::permanent("asked to fail"));
        }
        Ok(())
    }
}

/// CloudEvents binary-mode attributes of event `id` from `/billing`.
fn binary(id: &str) -> BTreeMap<String, String> {
    [
        ("specversion", "1.0"),
        ("id", id),
        ("source", "/billing"),
        ("type", "invoice"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_producers_binary_structured_plain_and_poison() {
    let rig = Rig::new(queue("direct", HandlerConfig::Log)).await;
    let recorder = Arc::new(Recorder::default());
    let schema = json!({"type": "object", "required": ["n"]});
    rig.start(recorder.clone(), Some(schema));

    // CloudEvents binary mode with a non-UUID id: the job id is a v5 of source and id
    rig.publish_direct(binary("order-1"), Some("application/json"), br#"{"n": 1}"#)
        .await;
    // structured mode with a UUID id: that is the job id
    let uuid_id = JobId::new();
    let structured = json!({"specversion": "1.0", "id": uuid_id.to_string(), "source": "s", "type": "t", "data": {"n": 2}});
    rig.publish_direct(
        BTreeMap::new(),
        Some("application/cloudevents+json"),
        structured.to_string().as_bytes(),
    )
    .await;
    // not JSON, then failing the schema: dead at once, never blocking the rest
    rig.publish_direct(BTreeMap::new(), None, b"\x00 definitely not json")
        .await;
    rig.publish_direct(BTreeMap::new(), Some("application/json"), br#"{"m": 3}"#)
        .await;
    // plain JSON
    rig.publish_direct(BTreeMap::new(), Some("application/json"), br#"{"n": 4}"#)
        .await;

    let binary = rig.wait_final(JobId::derived("/billing", "order-1")).await;
    assert_eq!(
        (binary.status, binary.payload.clone()),
        (JobStatus::Succeeded, json!({"n": 1}))
    );
    let structured = rig.wait_final(uuid_id).await;
    assert_eq!(
        (structured.status, structured.payload.clone()),
        (JobStatus::Succeeded, json!({"n": 2}))
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    while recorder.0.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "plain JSON message not handled");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let handled: Vec<Value> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.payload.clone())
        .collect();
    assert!(handled.contains(&json!({"n": 4})), "{handled:?}");
    assert!(
        !handled.contains(&json!({"m": 3})),
        "a schema-failing message reached the handler"
    );
    let plain = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.payload == json!({"n": 4}))
        .unwrap()
        .id;
    assert_eq!(rig.wait_final(plain).await.status, JobStatus::Succeeded);

    // the two poison messages are dead with their reasons
    let stats = rig.store.queue_stats().await.unwrap();
    let s = stats.iter().find(|s| s.queue == "direct").unwrap();
    assert_eq!((s.succeeded, s.dead), (3, 2), "{s:?}");
}

/// Replays `id` from the dead letters, as the admin API does.
async fn replay(rig: &Rig, id: JobId) {
    let request = sluice_store::NewReplay {
        id: uuid::Uuid::new_v4(),
        request: json!({"ids": 1}),
        ids: vec![id],
        rate_per_second: None,
        max_replays: 3,
        idempotency: None,
        actor: "test".into(),
    };
    let (r, _) = rig.store.create_replay(request).await.unwrap();
    let done = rig.store.replay_from_snapshot(r.id, 0, 1, 3).await.unwrap();
    assert!(matches!(done[..], [(_, Ok(()))]), "{done:?}");
}

/// Waits (at most 20 s) until `id` is final after its first replay.
async fn wait_replayed_final(rig: &Rig, id: JobId) -> sluice_store::JobRecord {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j = rig.store.get_job(id).await.unwrap();
        if j.replay_count == 1 && j.status.is_final() {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "replayed job {id} not final in time"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A replayed job meets the queue's schema again: a direct producer's
/// message that died for its payload dies again at once instead of reaching
/// the handler, while a replayed job that passes runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_job_that_fails_the_schema_never_reaches_the_handler() {
    let rig = Rig::new(queue("replayed", HandlerConfig::Log)).await;
    let recorder = Arc::new(Recorder::default());
    rig.start(
        recorder.clone(),
        Some(json!({"type": "object", "required": ["n"]})),
    );
    rig.publish_direct(binary("bad-1"), Some("application/json"), br#"{"m": 3}"#)
        .await;
    let bad = JobId::derived("/billing", "bad-1");
    assert_eq!(rig.wait_final(bad).await.status, JobStatus::Dead);
    let good = rig
        .submit(json!({"n": 1, "fail": true}), BTreeMap::new())
        .await;
    assert_eq!(rig.wait_final(good).await.status, JobStatus::Dead);

    replay(&rig, bad).await;
    replay(&rig, good).await;
    let bad_job = wait_replayed_final(&rig, bad).await;
    assert_eq!(bad_job.status, JobStatus::Dead);
    let error = bad_job.last_error.unwrap_or_default();
    assert!(error.contains("schema"), "{error}");
    let good_job = wait_replayed_final(&rig, good).await;
    assert_eq!(good_job.status, JobStatus::Dead, "asked to fail again");
    let handled: Vec<JobId> = recorder.0.lock().unwrap().iter().map(|c| c.id).collect();
    assert!(
        !handled.contains(&bad),
        "a schema-failing payload reached the handler"
    );
    assert_eq!(handled.iter().filter(|id| **id == good).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_handler_permanent_failure_is_dead_once() {
    let rig = Rig::new(queue("rust", HandlerConfig::Log)).await;
    let recorder = Arc::new(Recorder::default());
    rig.start(recorder.clone(), None);
    let id = rig.submit(json!({"fail": true}), BTreeMap::new()).await;
    let job = rig.wait_final(id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Dead, 1));
    assert!(job.last_error.unwrap().contains("asked to fail"));
    let ok = rig
        .submit(
            Envelope::new(JobId::new(), "rust", json!(5)).data,
            BTreeMap::new(),
        )
        .await;
    assert_eq!(rig.wait_final(ok).await.status, JobStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_queue_accepts_but_starts_nothing_until_resumed() {
    let rig = Rig::new(queue("paused", HandlerConfig::Log)).await;
    let recorder = Arc::new(Recorder::default());
    rig.store.set_paused("paused", true).await.unwrap();
    rig.start(recorder.clone(), None);
    let id = rig.submit(json!(1), BTreeMap::new()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        recorder.0.lock().unwrap().is_empty(),
        "a paused queue started a job"
    );
    let job = rig.store.get_job(id).await.unwrap();
    assert!(!job.status.is_final() && job.attempts == 0, "{job:?}");
    rig.store.set_paused("paused", false).await.unwrap();
    assert_eq!(rig.wait_final(id).await.status, JobStatus::Succeeded);
    assert_eq!(recorder.0.lock().unwrap().len(), 1);
}
