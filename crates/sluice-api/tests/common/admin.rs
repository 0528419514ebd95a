//! Harness of the admin router tests: the admin app over a real SQLite
//! store, dead letters made through the store's own path (enqueue → claim →
//! publish → start → finish dead), and authenticated requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use serde_json::{json, Value};
use sluice_api::{admin_app, AdminState};
use sluice_core::{now_ms, JobId, JobStatus, QueueConfig};
use sluice_store::{
    Completion, DeadLetterFilter, EnqueueRequest, NewJob, OutboxKind, Outcome, StartOutcome,
    StartRequest, Store,
};
use tempfile::TempDir;

use super::{send, Resp};

/// The admin token of the test apps.
pub const TOKEN: &str = "test-admin-token-5f2c9a71d3";

const LEASE: Duration = Duration::from_secs(60);

pub struct AdminApp {
    pub app: Router,
    pub store: Arc<dyn Store>,
    pub state: AdminState,
    _dir: TempDir,
}

/// Queues `emails` (concurrency 2..8) and `plain`; `max_replays` as given.
pub async fn admin_app_with(max_replays: u32) -> AdminApp {
    let (store, dir) = super::open_store().await;
    let mut emails = QueueConfig::named("emails");
    emails.concurrency.min = 2;
    emails.concurrency.max = 8;
    let queues = vec![emails, QueueConfig::named("plain")];
    let state = AdminState::new(store.clone(), queues, TOKEN, max_replays);
    AdminApp {
        app: admin_app(state.clone()),
        store,
        state,
        _dir: dir,
    }
}

pub async fn admin() -> AdminApp {
    admin_app_with(3).await
}

/// A request with the admin token (and a JSON body when given).
pub fn req(
    method: Method,
    uri: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

impl AdminApp {
    pub async fn get(&self, uri: &str) -> Resp {
        send(&self.app, req(Method::GET, uri, None, &[])).await
    }

    pub async fn post(&self, uri: &str, body: Option<&Value>) -> Resp {
        send(&self.app, req(Method::POST, uri, body, &[])).await
    }

    pub async fn post_with(
        &self,
        uri: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        send(&self.app, req(Method::POST, uri, body, headers)).await
    }

    pub async fn delete(&self, uri: &str) -> Resp {
        send(&self.app, req(Method::DELETE, uri, None, &[])).await
    }

    /// New jobs in `queue`, one per error, each dead with its error.
    pub async fn kill(&self, queue: &str, errors: &[&str]) -> Vec<JobId> {
        let jobs: Vec<NewJob> = errors
            .iter()
            .enumerate()
            .map(|(n, _)| job(queue, n))
            .collect();
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        let res = self
            .store
            .enqueue(vec![EnqueueRequest {
                jobs,
                idempotency: None,
            }])
            .await;
        res.into_iter().next().unwrap().unwrap();
        for (id, e) in ids.iter().zip(errors) {
            self.finish(
                *id,
                Outcome::Dead {
                    error: e.to_string(),
                },
            )
            .await;
        }
        ids
    }

    /// Delivers the due outbox row of `id` and finishes that attempt with `outcome`.
    pub async fn finish(&self, id: JobId, outcome: Outcome) {
        let c = self.store.claim_outbox(10_000, LEASE).await.unwrap();
        // A dead letter's own outbox row (for the dead-letter topic) is not the job's.
        let (mine, others): (Vec<_>, Vec<_>) = c
            .rows
            .iter()
            .partition(|r| r.job_id == id && r.kind == OutboxKind::Job);
        assert_eq!(mine.len(), 1, "one due job row for {id}");
        let others: Vec<i64> = others.iter().map(|r| r.row_id).collect();
        self.store
            .release_outbox(&c.lease, &others, now_ms())
            .await
            .unwrap();
        self.store
            .mark_published(&c.lease, &[mine[0].row_id])
            .await
            .unwrap();
        let start = StartRequest {
            job_id: id,
            attempt: Some(mine[0].attempt),
            create: None,
            lease: None,
        };
        let started = self.store.start_attempts(vec![start], LEASE).await;
        let Ok(StartOutcome::Started(a)) = started.into_iter().next().unwrap() else {
            panic!("attempt of {id} did not start");
        };
        let done = Completion {
            job_id: id,
            lease: a.lease,
            attempt: a.attempt,
            started_at: now_ms(),
            outcome,
        };
        self.store
            .finish_attempts(vec![done])
            .await
            .pop()
            .unwrap()
            .unwrap();
    }

    pub async fn status(&self, id: JobId) -> JobStatus {
        self.store.get_job(id).await.unwrap().status
    }

    pub async fn dead_count(&self) -> u64 {
        self.store
            .count_dead_letters(&DeadLetterFilter::default())
            .await
            .unwrap()
    }

    pub async fn audit(&self) -> Vec<Value> {
        let r = self.get("/admin/v1/audit").await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["entries"].as_array().unwrap().clone()
    }

    /// Polls a replay until it is no longer running (at most `within`).
    pub async fn wait_replay(&self, id: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let r = self.get(&format!("/admin/v1/replays/{id}")).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            if v["status"] != "running" {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "replay still running: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn job(queue: &str, n: usize) -> NewJob {
    NewJob {
        id: JobId::new(),
        queue: queue.into(),
        payload: json!({ "n": n }),
        key: Some(format!("k{n}")),
        headers: BTreeMap::new(),
        max_attempts: 5,
        available_at: now_ms(),
        traceparent: None,
    }
}
