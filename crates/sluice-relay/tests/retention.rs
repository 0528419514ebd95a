//! Retention on the real SQLite store: a round prunes batch after batch
//! until nothing old is left, keeps unfinished jobs, and the task prunes on
//! its interval until shut down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_core::{JobId, JobStatus};
use sluice_relay::{Retention, RetentionConfig};
use sluice_store::conformance::succeed_all;
use sluice_store::{EnqueueRequest, Idempotency, Store, StoreError};
use tokio_util::sync::CancellationToken;

mod common;

use common::{enqueue, job, rig};

const LEASE: Duration = Duration::from_secs(60);

/// Publishes every due row and lets the jobs `ids` succeed.
async fn succeed(store: &Arc<dyn Store>, ids: &[JobId]) {
    let c = store.claim_outbox(100_000, LEASE).await.unwrap();
    let rows: Vec<i64> = c.rows.iter().map(|r| r.row_id).collect();
    store.mark_published(&c.lease, &rows).await.unwrap();
    succeed_all(&**store, ids).await;
}

fn config(age: Duration) -> RetentionConfig {
    RetentionConfig {
        succeeded: age,
        idempotency_keys: age,
        interval: Duration::from_millis(50),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_prunes_every_old_success_in_batches() {
    let (_dir, store, _broker, _q) = rig().await;
    let n = sluice_relay::RETENTION_BATCH * 2 + 500;
    let done = enqueue(&store, n, 0).await;
    succeed(&store, &done).await;
    let keyed = EnqueueRequest {
        jobs: vec![job(0, 60_000)],
        idempotency: Some(Idempotency {
            scope: "r/jobs".into(),
            key: "k".into(),
            fingerprint: "f".into(),
        }),
    };
    store.enqueue(vec![keyed]).await.remove(0).unwrap();
    let waiting = enqueue(&store, 1, 60_000).await[0];
    tokio::time::sleep(Duration::from_millis(20)).await;

    let retention = Retention::new(store.clone(), config(Duration::from_millis(10)));
    let round = retention
        .prune_once(&CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(round, (n as u64, 1));
    for id in [done[0], done[n - 1]] {
        assert!(matches!(store.get_job(id).await, Err(StoreError::NotFound)));
    }
    let status = store.get_job(waiting).await.unwrap().status;
    assert_eq!(status, JobStatus::Pending);

    // a long age keeps what a short one would prune
    let fresh = enqueue(&store, 1, 0).await;
    succeed(&store, &fresh).await;
    let keep = Retention::new(store.clone(), config(Duration::from_secs(3600)));
    assert_eq!(
        keep.prune_once(&CancellationToken::new()).await.unwrap(),
        (0, 0)
    );
    let status = store.get_job(fresh[0]).await.unwrap().status;
    assert_eq!(status, JobStatus::Succeeded);
}

/// Waits (10 s at most) until every job of `ids` is gone.
async fn pruned(store: &Arc<dyn Store>, ids: &[JobId]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in ids {
        while store.get_job(*id).await.is_ok() {
            assert!(Instant::now() < deadline, "not pruned within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_prunes_on_its_interval_until_shut_down() {
    let (_dir, store, _broker, _q) = rig().await;
    let first = enqueue(&store, 3, 0).await;
    succeed(&store, &first).await;
    let shutdown = CancellationToken::new();
    let retention = Retention::new(store.clone(), config(Duration::from_millis(10)));
    let task = tokio::spawn(retention.run(shutdown.clone()));
    pruned(&store, &first).await;
    // succeeded after that round: only a later round prunes them
    let second = enqueue(&store, 3, 0).await;
    succeed(&store, &second).await;
    pruned(&store, &second).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops when shut down")
        .unwrap();
}

#[tokio::test]
async fn zero_ages_turn_it_off() {
    let (_dir, store, _broker, _q) = rig().await;
    let off = Retention::new(store.clone(), config(Duration::ZERO));
    let never_cancelled = CancellationToken::new();
    tokio::time::timeout(Duration::from_secs(5), off.run(never_cancelled))
        .await
        .expect("returns at once");
    let ids = enqueue(&store, 1, 0).await;
    succeed(&store, &ids).await;
    let off = Retention::new(store.clone(), config(Duration::ZERO));
    assert_eq!(
        off.prune_once(&CancellationToken::new()).await.unwrap(),
        (0, 0)
    );
    assert!(store.get_job(ids[0]).await.is_ok());
}
