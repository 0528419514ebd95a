//! Retention cases: what pruning deletes, and what it never touches.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::{now_ms, JobId, JobStatus};

use super::{
    claim, completion, deliver, enqueue, finish, keyed, mark_all, new_job, publish_only,
    sleep_past, start, start_all, started, LONG,
};
use crate::{Completion, Enqueued, NewJob, Outcome, Store, StoreError};

/// Starts and finishes `ids` (all published, attempt 1) as one batch each;
/// panics unless every one succeeds.
pub async fn succeed_all(store: &dyn Store, ids: &[JobId]) {
    let completions: Vec<Completion> = start_all(store, ids)
        .await
        .into_iter()
        .map(|r| completion(&started(r.unwrap()), Outcome::Succeeded))
        .collect();
    for r in store.finish_attempts(completions).await {
        r.unwrap();
    }
}

/// Enqueues `n` jobs, publishes them (giving back any other due row) and
/// lets each succeed.
async fn succeeded_jobs(store: &dyn Store, n: usize) -> Vec<JobId> {
    let ids = enqueue(store, (0..n).map(|_| new_job("q")).collect()).await;
    let mine = publish_only(store, |r| ids.contains(&r.job_id)).await;
    assert_eq!(mine.len(), n);
    succeed_all(store, &ids).await;
    ids
}

/// One job enqueued under idempotency key `key` of scope `s`.
async fn enqueue_keyed(store: &dyn Store, job: NewJob, key: &str, fingerprint: &str) -> Enqueued {
    let mut res = store
        .enqueue(vec![keyed(vec![job], "s", key, fingerprint)])
        .await;
    res.pop().unwrap().unwrap()
}

fn gone(r: Result<crate::JobRecord, StoreError>) -> bool {
    matches!(r, Err(StoreError::NotFound))
}

/// Old successes go, with their history and any outbox row naming them;
/// unfinished jobs, dead letters and newer successes stay.
pub async fn prune_deletes_old_successes_only(store: Arc<dyn Store>) {
    let store = &*store;
    let (retried, plain, redriven, waiting, failing, dead, late) = (
        new_job("q"),
        new_job("q"),
        new_job("q"),
        new_job("q"),
        new_job("q"),
        new_job("q"),
        new_job("q"),
    );
    enqueue(
        store,
        vec![
            retried.clone(),
            plain.clone(),
            redriven.clone(),
            failing.clone(),
            dead.clone(),
            late.clone(),
        ],
    )
    .await;
    // `retried` fails once, then succeeds: it has history
    let a = deliver(store, retried.id, LONG).await;
    let retry = Outcome::Retry {
        available_at: now_ms(),
        error: "HTTP 503".into(),
    };
    finish(store, &a, retry).await.unwrap();
    let c = claim(store, 100, LONG).await;
    assert_eq!(mark_all(store, &c).await, 6);
    // `redriven` gets a second outbox row for its attempt, then succeeds
    // before the relay publishes it
    let lost = store.lost_jobs("q", now_ms() + 1, 100).await.unwrap();
    let lost: Vec<_> = lost.into_iter().filter(|l| l.id == redriven.id).collect();
    assert_eq!(
        store.redrive_published("q", &lost).await.unwrap(),
        vec![redriven.id]
    );
    for (id, attempt) in [(retried.id, 2), (plain.id, 1), (redriven.id, 1)] {
        let a = started(start(store, id, Some(attempt), LONG).await);
        finish(store, &a, Outcome::Succeeded).await.unwrap();
    }
    // `failing` waits for a retry, `dead` is a dead letter, `waiting` is new
    let a = started(start(store, failing.id, Some(1), LONG).await);
    let later = Outcome::Retry {
        available_at: now_ms() + 60_000,
        error: "HTTP 500".into(),
    };
    finish(store, &a, later).await.unwrap();
    let a = started(start(store, dead.id, Some(1), LONG).await);
    let error = "schema violation".to_string();
    finish(store, &a, Outcome::Dead { error }).await.unwrap();
    let cutoff = now_ms() + 1;
    sleep_past(cutoff).await;
    enqueue(store, vec![waiting.clone()]).await;
    let newer = succeeded_jobs(store, 1).await[0];
    // `late` was created before the cutoff but succeeds after it: its age
    // counts from its success
    let a = started(start(store, late.id, Some(1), LONG).await);
    finish(store, &a, Outcome::Succeeded).await.unwrap();

    assert_eq!(store.prune_succeeded(cutoff, 100).await.unwrap(), 3);
    for id in [retried.id, plain.id, redriven.id] {
        assert!(gone(store.get_job(id).await), "{id} pruned");
    }
    for (id, status) in [
        (failing.id, JobStatus::Retrying),
        (dead.id, JobStatus::Dead),
        (waiting.id, JobStatus::Pending),
        (newer, JobStatus::Succeeded),
        (late.id, JobStatus::Succeeded),
    ] {
        assert_eq!(store.get_job(id).await.unwrap().status, status, "{id} kept");
    }
    let detail = store.get_dead_letter(dead.id).await.unwrap();
    assert_eq!(detail.history.len(), 1, "a dead letter keeps its history");
    // only `waiting`'s row and `dead`'s dead-letter row are left
    let c = claim(store, 100, LONG).await;
    let mut left: Vec<JobId> = c.rows.iter().map(|r| r.job_id).collect();
    left.sort();
    let mut want = vec![waiting.id, dead.id];
    want.sort();
    assert_eq!(left, want);
    assert_eq!(store.prune_succeeded(cutoff, 100).await.unwrap(), 0);
}

/// Oldest change first, at most `limit` per call.
pub async fn prune_takes_oldest_first_up_to_limit(store: Arc<dyn Store>) {
    let store = &*store;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.extend(succeeded_jobs(store, 1).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let cutoff = now_ms() + 1;
    sleep_past(cutoff).await;
    assert_eq!(store.prune_succeeded(cutoff, 2).await.unwrap(), 2);
    assert!(gone(store.get_job(ids[0]).await));
    assert!(gone(store.get_job(ids[1]).await));
    assert_eq!(
        store.get_job(ids[2]).await.unwrap().status,
        JobStatus::Succeeded
    );
    assert_eq!(store.prune_succeeded(cutoff, 2).await.unwrap(), 1);
    assert!(gone(store.get_job(ids[2]).await));
}

/// Pruners running at once delete each job once, without failing.
pub async fn concurrent_pruners_delete_each_job_once(store: Arc<dyn Store>) {
    let ids = succeeded_jobs(&*store, 200).await;
    let cutoff = now_ms() + 1;
    sleep_past(cutoff).await;
    let prune = |s: Arc<dyn Store>| async move {
        let mut n = 0;
        loop {
            let k = s.prune_succeeded(cutoff, 30).await.unwrap();
            if k == 0 {
                return n;
            }
            n += k;
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(prune(store.clone())),
        tokio::spawn(prune(store.clone()))
    );
    assert_eq!(a.unwrap() + b.unwrap(), 200);
    for id in ids {
        assert!(gone(store.get_job(id).await));
    }
}

/// Keys older than the cutoff go, oldest first and at most `limit` per
/// call; a request repeating a pruned one is new again.
pub async fn prune_idempotency_keys_by_age(store: Arc<dyn Store>) {
    let store = &*store;
    let first = enqueue_keyed(store, new_job("q"), "a", "fa").await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let second = enqueue_keyed(store, new_job("q"), "b", "fb").await;
    let cutoff = now_ms() + 1;
    sleep_past(cutoff).await;
    let newer = enqueue_keyed(store, new_job("q"), "new", "fn").await;
    assert_eq!(store.prune_idempotency_keys(cutoff, 1).await.unwrap(), 1);
    let res = enqueue_keyed(store, new_job("q"), "b", "fb").await;
    let replay = Enqueued {
        ids: second.ids,
        replayed: true,
    };
    assert_eq!(res, replay, "the younger of the old keys is left");
    assert_eq!(store.prune_idempotency_keys(cutoff, 100).await.unwrap(), 1);
    assert_eq!(store.prune_idempotency_keys(cutoff, 100).await.unwrap(), 0);

    let again = new_job("q");
    let res = enqueue_keyed(store, again.clone(), "a", "fa").await;
    let fresh = Enqueued {
        ids: vec![again.id],
        replayed: false,
    };
    assert_eq!(res, fresh, "a pruned key is taken afresh");
    assert_ne!(res.ids, first.ids);
    let res = enqueue_keyed(store, new_job("q"), "new", "fn").await;
    let replay = Enqueued {
        ids: newer.ids,
        replayed: true,
    };
    assert_eq!(res, replay, "a newer key still replays");
}
