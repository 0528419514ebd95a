//! The rig shared by the worker's integration tests: the real SQLite store,
//! embedded broker and relay in a temporary directory, and a scripted
//! downstream.
#![allow(dead_code)]

pub mod broker;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use sluice_broker::{Broker, OutgoingMessage};
use sluice_core::{now_ms, HandlerConfig, JobId, QueueConfig};
use sluice_store::{EnqueueRequest, JobRecord, NewJob, Store};
use sluice_worker::{Handler, Worker, WorkerOptions, WorkerQueue};
use tokio_util::sync::CancellationToken;

pub struct Rig {
    dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub broker: Arc<dyn Broker>,
    /// The broker as the pools [`Rig::start`] runs see it.
    pub watched: Arc<broker::Watched>,
    pub queue: QueueConfig,
    shutdown: CancellationToken,
}

impl Rig {
    pub async fn new(queue: QueueConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = sluice_store::open(&format!("sqlite://{}/s.db", dir.path().display()))
            .await
            .unwrap();
        let broker = sluice_broker::open("embedded://?poll_interval_ms=20", dir.path())
            .await
            .unwrap();
        // as the binary does: the queue's topic and its dead-letter topic
        broker
            .declare(&[queue.topic(), queue.dlq_topic()])
            .await
            .unwrap();
        Self {
            dir,
            store,
            watched: broker::Watched::new(broker.clone()),
            broker,
            queue,
            shutdown: CancellationToken::new(),
        }
    }

    pub fn start(&self, handler: Arc<dyn Handler>, schema: Option<Value>) {
        self.start_with(handler, schema, WorkerOptions::default());
    }

    pub fn start_with(
        &self,
        handler: Arc<dyn Handler>,
        schema: Option<Value>,
        options: WorkerOptions,
    ) {
        self.start_relay();
        let (store, broker) = (self.store.clone(), self.watched.clone());
        let worker = self.worker_with(store, broker, handler, schema, options);
        tokio::spawn(worker.run(self.shutdown.child_token()));
    }

    /// The URL of the rig's SQLite database, to reach behind the store.
    pub fn store_url(&self) -> String {
        format!("sqlite://{}/s.db", self.dir.path().display())
    }

    /// A pool of the rig's queue over `store` and `broker` (the rig's own or
    /// wrappers of them), for a test to run itself.
    pub fn worker(
        &self,
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        handler: Arc<dyn Handler>,
    ) -> Worker {
        self.worker_with(store, broker, handler, None, WorkerOptions::default())
    }

    /// [`Rig::worker`] with the queue's `schema` and `options`.
    pub fn worker_with(
        &self,
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        handler: Arc<dyn Handler>,
        schema: Option<Value>,
        options: WorkerOptions,
    ) -> Worker {
        let wq = WorkerQueue {
            config: self.queue.clone(),
            schema,
            handler,
        };
        Worker::new(store, broker, wq, options).unwrap()
    }

    /// Starts the relay alone (stopped with the rig).
    pub fn start_relay(&self) {
        let relay = sluice_relay::Relay::new(
            self.store.clone(),
            self.broker.publisher(),
            std::slice::from_ref(&self.queue),
            Default::default(),
        )
        .unwrap();
        tokio::spawn(relay.run(self.shutdown.child_token()));
    }

    pub async fn submit(&self, payload: Value, headers: BTreeMap<String, String>) -> JobId {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        self.submit_traced(payload, headers, tp).await
    }

    /// Submits a job stored with this `traceparent`.
    pub async fn submit_traced(
        &self,
        payload: Value,
        headers: BTreeMap<String, String>,
        traceparent: &str,
    ) -> JobId {
        let mut job = self.new_job(payload);
        job.headers = headers;
        job.traceparent = Some(traceparent.into());
        self.submit_all(vec![job]).await[0]
    }

    /// A job of the rig's queue, due now.
    pub fn new_job(&self, payload: Value) -> NewJob {
        NewJob {
            id: JobId::new(),
            queue: self.queue.name.clone(),
            payload,
            key: None,
            headers: BTreeMap::new(),
            max_attempts: self.queue.max_attempts,
            available_at: now_ms(),
            traceparent: None,
        }
    }

    /// Submits the jobs in one transaction, so the outbox (and the topic)
    /// holds them in this order; returns their ids.
    pub async fn submit_all(&self, jobs: Vec<NewJob>) -> Vec<JobId> {
        let ids = jobs.iter().map(|j| j.id).collect();
        self.store
            .enqueue(vec![EnqueueRequest {
                jobs,
                idempotency: None,
            }])
            .await
            .remove(0)
            .unwrap();
        ids
    }

    pub async fn wait_final(&self, id: JobId) -> JobRecord {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(j) = self.store.get_job(id).await {
                if j.status.is_final() {
                    return j;
                }
            }
            assert!(Instant::now() < deadline, "job {id} not final in time");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Receives from the queue's dead-letter topic (as an outside consumer)
    /// until `n` messages arrived or 20 s passed.
    pub async fn dead_letters(&self, n: usize) -> Vec<sluice_broker::Delivery> {
        let mut sub = self
            .broker
            .subscribe(
                &self.queue.dlq_topic(),
                sluice_broker::SubscribeOptions {
                    group: "outside".into(),
                    max_in_flight: 100,
                },
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            let batch = sub.recv(100, Duration::from_millis(100)).await.unwrap();
            let tokens: Vec<_> = batch.iter().map(|d| d.token).collect();
            sub.ack(&tokens).await.unwrap();
            got.extend(batch);
        }
        got
    }

    pub async fn publish_direct(
        &self,
        attributes: BTreeMap<String, String>,
        content_type: Option<&str>,
        body: &[u8],
    ) {
        let msg = OutgoingMessage {
            topic: self.queue.topic(),
            job_id: JobId::new(),
            key: None,
            attributes,
            content_type: content_type.map(str::to_string),
            body: body.to_vec(),
        };
        for r in self.broker.publisher().publish(vec![msg]).await {
            r.unwrap();
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn queue(name: &str, handler: HandlerConfig) -> QueueConfig {
    let mut q = QueueConfig::named(name);
    q.max_attempts = 3;
    q.backoff.initial_ms = 20;
    q.backoff.max_ms = 50;
    q.handler = handler;
    q
}

/// A downstream answering with the scripted statuses in turn (then 200) and
/// recording the request headers.
pub async fn downstream(
    script: Vec<(u16, Option<&'static str>)>,
) -> (String, Arc<Mutex<Vec<(Instant, HeaderMap, Value)>>>) {
    let seen: Arc<Mutex<Vec<(Instant, HeaderMap, Value)>>> = Arc::default();
    let script = Arc::new(Mutex::new(script.into_iter()));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let seen = s2.clone();
            let script = script.clone();
            async move {
                seen.lock().unwrap().push((Instant::now(), headers, body.0));
                let (code, retry_after) = script.lock().unwrap().next().unwrap_or((200, None));
                let mut h = HeaderMap::new();
                if let Some(ra) = retry_after {
                    h.insert("retry-after", ra.parse().unwrap());
                }
                (StatusCode::from_u16(code).unwrap(), h, "downstream says hi")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

pub fn http(url: &str) -> HandlerConfig {
    HandlerConfig::Http {
        url: url.into(),
        timeout_ms: 2000,
    }
}
