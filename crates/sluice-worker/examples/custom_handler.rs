//! sluice as a library: a Rust function as the downstream.
//!
//! Enqueues a few jobs into a SQLite store, runs the relay and a worker pool
//! on the embedded broker, and handles the jobs with `Thumbnailer`, which
//! fails transiently once to show the retry path.
//!
//! ```sh
//! cargo run -p sluice-worker --example custom_handler
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sluice_core::{now_ms, Failure, JobId, QueueConfig};
use sluice_store::{EnqueueRequest, NewJob};
use sluice_worker::{Handler, JobContext, Worker, WorkerOptions, WorkerQueue};
use tokio_util::sync::CancellationToken;

/// Our downstream: a Rust function. Fails the very first call transiently.
struct Thumbnailer {
    calls: AtomicU32,
    done: AtomicU32,
}

#[async_trait]
impl Handler for Thumbnailer {
    async fn handle(&self, ctx: &JobContext) -> Result<(), Failure> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Failure::transient("image service warming up"));
        }
        let Some(url) = ctx.payload["url"].as_str() else {
            return Err(Failure::permanent("payload has no url"));
        };
        println!(
            "thumbnail for {url} (job {}, attempt {})",
            ctx.id, ctx.attempt
        );
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = sluice_store::open(&format!("sqlite://{}/sluice.db", dir.path().display())).await?;
    let broker = sluice_broker::open("embedded://", dir.path()).await?;
    let mut queue = QueueConfig::named("thumbnails");
    queue.backoff.initial_ms = 50;
    broker.declare(&[queue.topic()]).await?;

    let jobs = (0..3)
        .map(|i| NewJob {
            id: JobId::new(),
            queue: queue.name.clone(),
            payload: json!({"url": format!("https://example.com/{i}.png")}),
            key: None,
            headers: Default::default(),
            max_attempts: queue.max_attempts,
            available_at: now_ms(),
            traceparent: None,
        })
        .collect();
    store
        .enqueue(vec![EnqueueRequest {
            jobs,
            idempotency: None,
        }])
        .await
        .remove(0)?;

    let shutdown = CancellationToken::new();
    let relay = sluice_relay::Relay::new(
        store.clone(),
        broker.publisher(),
        std::slice::from_ref(&queue),
        Default::default(),
    )?;
    let relay = tokio::spawn(relay.run(shutdown.child_token()));
    let handler = Arc::new(Thumbnailer {
        calls: AtomicU32::new(0),
        done: AtomicU32::new(0),
    });
    let worker = Worker::new(
        store.clone(),
        broker.clone(),
        WorkerQueue {
            config: queue,
            schema: None,
            handler: handler.clone(),
        },
        WorkerOptions::default(),
    )?;
    let worker = tokio::spawn(worker.run(shutdown.child_token()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handler.done.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    relay.await?;
    worker.await??;
    println!(
        "handled {} jobs in {} calls",
        handler.done.load(Ordering::SeqCst),
        handler.calls.load(Ordering::SeqCst)
    );
    Ok(())
}
