//! GroupCommit against a counting, gated SQLite store.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::json;
use sluice_core::now_ms;

use super::*;
use crate::sqlite::SqliteStore;
use crate::testing::Wrapped;
use crate::NewJob;

/// Counts inner `enqueue` calls, requests and calls in flight at once;
/// each call first waits for a permit of its gate, open or closed.
async fn counting(open_gate: bool) -> Arc<Wrapped> {
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
    match open_gate {
        true => Wrapped::new(inner),
        false => Wrapped::gated(inner, 0),
    }
}

fn request(n: usize) -> EnqueueRequest {
    EnqueueRequest {
        jobs: vec![NewJob {
            id: JobId::new(),
            queue: "q".into(),
            payload: json!({"n": n}),
            key: None,
            headers: BTreeMap::new(),
            max_attempts: 3,
            available_at: now_ms(),
            traceparent: None,
        }],
        idempotency: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_are_coalesced_and_all_stored() {
    let counting = counting(true).await;
    let gc = Arc::new(GroupCommit::new(counting.clone()));
    const N: usize = 200;
    let mut tasks = Vec::new();
    for n in 0..N {
        let gc = gc.clone();
        tasks.push(tokio::spawn(async move {
            let req = request(n);
            let id = req.jobs[0].id;
            let res = gc.enqueue(vec![req]).await;
            (id, res)
        }));
    }
    let work = async {
        for t in tasks {
            let (id, mut res) = t.await.unwrap();
            assert_eq!(res.len(), 1);
            let got = res.pop().unwrap().unwrap();
            assert_eq!(
                got,
                Enqueued {
                    ids: vec![id],
                    replayed: false
                }
            );
            let job = gc.get_job(id).await.unwrap();
            assert_eq!(job.id, id);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .expect("enqueues finish");
    let calls = counting.calls.load(Ordering::SeqCst);
    assert_eq!(counting.requests.load(Ordering::SeqCst), N);
    assert!(calls < N, "{calls} inner calls for {N} requests");
    let stats = counting.queue_stats().await.unwrap();
    assert_eq!(stats[0].pending, N as u64);
}

#[tokio::test]
async fn dropped_caller_does_not_break_the_batch() {
    let inner = SqliteStore::open("sqlite::memory:").await.unwrap();
    let gc = GroupCommit::with_options(
        Arc::new(inner),
        GroupCommitOptions {
            max_wait: Duration::from_millis(50),
            ..GroupCommitOptions::default()
        },
    );
    // This caller gives up while its request waits for the flush.
    let dropped = request(0);
    let dropped_id = dropped.jobs[0].id;
    let gave_up = tokio::time::timeout(Duration::from_millis(5), gc.enqueue(vec![dropped])).await;
    assert!(gave_up.is_err(), "flush waits for max_wait");
    let kept = request(1);
    let kept_id = kept.jobs[0].id;
    let res = tokio::time::timeout(Duration::from_secs(10), gc.enqueue(vec![kept]))
        .await
        .unwrap();
    assert_eq!(res[0].as_ref().unwrap().ids, vec![kept_id]);
    assert_eq!(gc.get_job(kept_id).await.unwrap().id, kept_id);
    assert!(matches!(
        gc.get_job(dropped_id).await,
        Err(StoreError::NotFound)
    ));
}

/// A group commit over a [`Counting`] store whose calls wait at its gate.
async fn gated(options: GroupCommitOptions) -> (Arc<Wrapped>, Arc<GroupCommit>) {
    let counting = counting(false).await;
    let gc = Arc::new(GroupCommit::with_options(counting.clone(), options));
    (counting, gc)
}

/// Opens the gate of `counting` and waits (bounded) for every task; each
/// request must have been stored.
async fn open_and_join(
    counting: &Wrapped,
    tasks: Vec<tokio::task::JoinHandle<Vec<Result<Enqueued, StoreError>>>>,
) {
    counting
        .gate
        .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    for t in tasks {
        let res = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
            .unwrap();
        assert!(res[0].is_ok(), "{res:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_flushes_let_the_next_batch_fill_up() {
    let (counting, gc) = gated(GroupCommitOptions {
        max_wait: Duration::from_millis(1),
        max_concurrent: 2,
        ..GroupCommitOptions::default()
    })
    .await;
    let spawn = |n: usize| {
        let gc = gc.clone();
        tokio::spawn(async move { gc.enqueue(vec![request(n)]).await })
    };
    let wait_calls = |want: usize| {
        let counting = counting.clone();
        async move {
            while counting.calls.load(Ordering::SeqCst) < want {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let limit = Duration::from_secs(10);
    // Two requests, well apart: two flushes, both held by the gate.
    let mut tasks = vec![spawn(0)];
    tokio::time::timeout(limit, wait_calls(1)).await.unwrap();
    tasks.push(spawn(1));
    tokio::time::timeout(limit, wait_calls(2)).await.unwrap();
    // Both slots are busy: these wait, in one batch, long past max_wait.
    for n in 2..10 {
        tasks.push(spawn(n));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        counting.calls.load(Ordering::SeqCst),
        2,
        "no third flush yet"
    );
    open_and_join(&counting, tasks).await;
    assert_eq!(
        counting.calls.load(Ordering::SeqCst),
        3,
        "8 requests, one flush"
    );
    assert_eq!(counting.requests.load(Ordering::SeqCst), 10);
    assert_eq!(counting.peak.load(Ordering::SeqCst), 2);
    assert_eq!(counting.queue_stats().await.unwrap()[0].pending, 10);
}

#[test]
fn a_batch_takes_its_share_only_while_other_slots_are_free() {
    let options = GroupCommitOptions {
        max_batch: 256,
        max_concurrent: 4,
        min_share: 24,
        ..GroupCommitOptions::default()
    };
    // Other slots free: a share of what waits, not below min_share.
    assert_eq!(batch_limit(&options, 40, 4), 24);
    assert_eq!(batch_limit(&options, 200, 2), 50);
    assert_eq!(batch_limit(&options, 2000, 3), 256);
    // Only the batch's own slot (or none) free: as many as max_batch.
    assert_eq!(batch_limit(&options, 40, 1), 256);
    assert_eq!(batch_limit(&options, 40, 0), 256);
    let single = GroupCommitOptions {
        max_concurrent: 1,
        ..options
    };
    assert_eq!(batch_limit(&single, 40, 1), 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_goes_to_the_free_slots_in_shares() {
    let (counting, gc) = gated(GroupCommitOptions {
        max_wait: Duration::from_millis(200),
        max_concurrent: 4,
        min_share: 4,
        ..GroupCommitOptions::default()
    })
    .await;
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let gc = gc.clone();
            tokio::spawn(async move { gc.enqueue(vec![request(n)]).await })
        })
        .collect();
    // The inner calls are held by the gate: a burst in one batch would be
    // one call; in shares it is several at once.
    tokio::time::timeout(Duration::from_secs(10), async {
        while counting.in_flight.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a second call in flight");
    open_and_join(&counting, tasks).await;
    let calls = counting.calls.load(Ordering::SeqCst);
    assert!((2..=16).contains(&calls), "{calls} calls");
    assert_eq!(counting.requests.load(Ordering::SeqCst), 16);
    assert_eq!(counting.queue_stats().await.unwrap()[0].pending, 16);
}
