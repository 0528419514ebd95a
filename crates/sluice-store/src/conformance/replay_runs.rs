//! Cases for replays as operators see them: a replay returns its jobs to
//! the outbox, is created once per idempotency key, records its progress
//! and history, and is found again when its runner went away.

use super::admin::kill;
use super::dead_letters::{everything, ids_of};
use super::*;
use crate::{NewReplay, ReplayRecord, ReplaySkip};

fn replay_request(ids: Vec<JobId>, key: Option<(&str, &str)>) -> NewReplay {
    NewReplay {
        id: uuid::Uuid::new_v4(),
        request: json!({"queue": "q", "limit": ids.len()}),
        ids,
        rate_per_second: Some(2.5),
        max_replays: 3,
        idempotency: key.map(|(key, fingerprint)| Idempotency {
            scope: "admin/replay".into(),
            key: key.into(),
            fingerprint: fingerprint.into(),
        }),
        actor: "alice".into(),
    }
}

/// A replay puts the dead letter back in the outbox as attempt 1 of a new
/// run: pending, replay_count 1, attempts 0, the dead letter gone.
pub async fn replay_returns_job_to_outbox(store: Arc<dyn Store>) {
    let store = &*store;
    assert!(replay(store, &[], 1).await.unwrap().is_empty());
    let id = kill(store, "q", "boom").await;
    let other = kill(store, "q", "other").await;
    let alive = enqueue(store, vec![new_job("q")]).await[0];
    let before = store.get_job(id).await.unwrap();

    let notify = store.outbox_notify();
    let notified = notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let unknown = JobId::new();
    let res = replay(store, &[id, alive, unknown, id], 1).await.unwrap();
    assert_eq!(
        res,
        vec![
            Ok(()),
            Err(ReplaySkip::NotDead),
            Err(ReplaySkip::NotDead),
            Err(ReplaySkip::NotDead),
        ]
    );
    tokio::time::timeout(Duration::from_secs(2), notified)
        .await
        .expect("a replay notifies");

    let job = store.get_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.replay_count, 1);
    assert_eq!(job.attempts, 0);
    assert_eq!(job.last_error.as_deref(), Some("boom"), "last error kept");
    assert_eq!(job.payload, before.payload);
    assert_eq!(job.created_at, before.created_at);
    assert!(job.updated_at >= before.updated_at);
    assert!(matches!(
        store.get_dead_letter(id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        ids_of(
            &store
                .list_dead_letters(&everything(), None, 10)
                .await
                .unwrap()
        ),
        vec![other]
    );
    assert_eq!(status_of(store, other).await, JobStatus::Dead);

    let c = claim(store, 100, LONG).await;
    let mine: Vec<_> = c.rows.iter().filter(|r| r.job_id == id).collect();
    assert_eq!(mine.len(), 1, "one outbox row for the replayed job");
    assert_eq!(mine[0].attempt, 1);
    assert_eq!(mine[0].queue, "q");
    assert_eq!(payload(mine[0]), before.payload);
    assert_eq!(
        store
            .mark_published(&c.lease, &[mine[0].row_id])
            .await
            .unwrap(),
        1
    );
    assert_eq!(status_of(store, id).await, JobStatus::Published);
    let a = started(start(store, id, Some(1), LONG).await);
    assert_eq!((a.attempt, a.job.replay_count), (1, 1));

    // Replayed already: no longer dead.
    assert_eq!(
        replay(store, &[id], 5).await.unwrap(),
        vec![Err(ReplaySkip::NotDead)]
    );
    finish(store, &a, Outcome::Succeeded).await.unwrap();
    let job = store.get_job(id).await.unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1));
    assert_eq!(
        replay(store, &[id], 5).await.unwrap(),
        vec![Err(ReplaySkip::NotDead)]
    );
}

/// A job replayed `max_replays` times is skipped with its count; after a
/// replayed job dies again its history shows both runs.
pub async fn replay_limit_and_history_across_runs(store: Arc<dyn Store>) {
    let store = &*store;
    let id = kill(store, "q", "first death").await;
    assert_eq!(
        replay(store, &[id], 0).await.unwrap(),
        vec![Err(ReplaySkip::LimitReached(0))]
    );
    assert_eq!(
        status_of(store, id).await,
        JobStatus::Dead,
        "skip changes nothing"
    );
    assert_eq!(replay(store, &[id], 1).await.unwrap(), vec![Ok(())]);
    die(store, id, "second death").await;

    let detail = store.get_dead_letter(id).await.unwrap();
    assert_eq!(detail.dead_letter.replay_count, 1);
    assert_eq!(detail.dead_letter.attempts, 1);
    assert_eq!(detail.dead_letter.last_error, "second death");
    let got: Vec<(u32, u32, &str, Option<&str>)> = detail
        .history
        .iter()
        .map(|h| {
            (
                h.replay_count,
                h.attempt,
                h.outcome.as_str(),
                h.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 1, "dead", Some("first death")),
            (1, 1, "dead", Some("second death")),
        ]
    );

    assert_eq!(
        replay(store, &[id], 1).await.unwrap(),
        vec![Err(ReplaySkip::LimitReached(1))]
    );
    let job = store.get_job(id).await.unwrap();
    assert_eq!((job.status, job.replay_count), (JobStatus::Dead, 1));
    assert_eq!(store.count_dead_letters(&everything()).await.unwrap(), 1);
    assert!(claim(store, 100, LONG).await.rows.is_empty());

    // Under a higher limit it goes again, as run 2.
    assert_eq!(replay(store, &[id], 2).await.unwrap(), vec![Ok(())]);
    let job = store.get_job(id).await.unwrap();
    assert_eq!(
        (job.status, job.replay_count, job.attempts),
        (JobStatus::Pending, 2, 0)
    );
}

/// Pruning old idempotency keys keeps the key of a replay still running (a
/// repeated request must get that replay, not start another, however long
/// it runs) and takes it once the replay is over.
pub async fn a_running_replays_key_outlives_pruning(store: Arc<dyn Store>) {
    let store = &*store;
    let running = replay_request(vec![JobId::new()], Some(("k-running", "fp-a")));
    let (running_rec, _) = store.create_replay(running.clone()).await.unwrap();
    let done = replay_request(vec![JobId::new()], Some(("k-done", "fp-b")));
    store.create_replay(done.clone()).await.unwrap();
    store
        .update_replay(done.id, 1, Some("completed"))
        .await
        .unwrap();
    let cutoff = now_ms() + 1;
    sleep_past(cutoff).await;
    assert_eq!(store.prune_idempotency_keys(cutoff, 100).await.unwrap(), 1);
    let again = replay_request(vec![JobId::new()], Some(("k-running", "fp-a")));
    let (got, created) = store.create_replay(again).await.unwrap();
    assert!(!created, "the running replay's key was pruned");
    assert_eq!(got.id, running_rec.id);
    let done_again = replay_request(vec![JobId::new()], Some(("k-done", "fp-b")));
    assert!(store.create_replay(done_again).await.unwrap().1);
    store
        .update_replay(running.id, 1, Some("completed"))
        .await
        .unwrap();
    assert_eq!(store.prune_idempotency_keys(cutoff, 100).await.unwrap(), 1);
}

/// An idempotency key returns the earlier replay for the same fingerprint
/// and conflicts for another; without a key every call creates one.
pub async fn create_replay_is_idempotent(store: Arc<dyn Store>) {
    let store = &*store;
    let ids = vec![JobId::new(), JobId::new()];
    let first = replay_request(ids.clone(), Some(("k1", "fp-a")));
    let before = now_ms();
    let (rec, created) = store.create_replay(first.clone()).await.unwrap();
    assert!(created);
    assert_eq!(rec.id, first.id);
    assert_eq!(rec.request, first.request);
    assert_eq!(rec.status, "running");
    assert_eq!(rec.matched, 2);
    assert_eq!((rec.replayed, rec.skipped, rec.position), (0, 0, 0));
    assert_eq!(rec.rate_per_second, Some(2.5));
    assert_eq!(rec.max_replays, 3);
    assert!(rec.created_at >= before && rec.created_at <= now_ms());
    assert_eq!(rec.updated_at, rec.created_at);
    assert_eq!(rec.finished_at, None);
    assert_eq!(store.get_replay(first.id).await.unwrap(), rec);

    // Same key and fingerprint: the earlier replay, nothing created.
    let again = replay_request(vec![JobId::new()], Some(("k1", "fp-a")));
    let (got, created) = store.create_replay(again.clone()).await.unwrap();
    assert!(!created);
    assert_eq!(got, rec);
    assert!(matches!(
        store.get_replay(again.id).await,
        Err(StoreError::NotFound)
    ));

    // Same key, another fingerprint: conflict, nothing created.
    let other = replay_request(ids.clone(), Some(("k1", "fp-b")));
    assert!(matches!(
        store.create_replay(other.clone()).await,
        Err(StoreError::IdempotencyConflict)
    ));
    assert!(matches!(
        store.get_replay(other.id).await,
        Err(StoreError::NotFound)
    ));

    // Another key, and no key: new replays.
    let second = replay_request(ids.clone(), Some(("k2", "fp-a")));
    let (rec2, created) = store.create_replay(second.clone()).await.unwrap();
    assert!(created);
    assert_eq!(rec2.id, second.id);
    let mut unkeyed = replay_request(Vec::new(), None);
    unkeyed.rate_per_second = None;
    let (rec3, created) = store.create_replay(unkeyed.clone()).await.unwrap();
    assert!(created);
    assert_eq!((rec3.id, rec3.matched), (unkeyed.id, 0));
    assert_eq!(rec3.rate_per_second, None);
    let (rec4, created) = store
        .create_replay(replay_request(Vec::new(), None))
        .await
        .unwrap();
    assert!(created);
    assert_ne!(rec4.id, rec3.id);

    // Progress made since is what the key returns.
    let progressed = store.update_replay(first.id, 1, None).await.unwrap();
    let (got, created) = store
        .create_replay(replay_request(Vec::new(), Some(("k1", "fp-a"))))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(got, progressed);

    assert!(matches!(
        store.get_replay(uuid::Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));
}

/// The snapshot reads in its own order, by range, and each range is
/// recorded in the replay's progress; updates move the position (never
/// back) and finish the replay.
pub async fn replay_snapshot_ranges_and_progress(store: Arc<dyn Store>) {
    let store = &*store;
    // Not in id order: the snapshot keeps the order given.
    let mut ids: Vec<JobId> = (0..5).map(|_| JobId::new()).collect();
    ids.reverse();
    let new = replay_request(ids.clone(), None);
    let (rec, _) = store.create_replay(new.clone()).await.unwrap();
    assert_eq!(rec.matched, 5);
    // ids of the entries of a range (none of them a dead letter)
    let range = |id: uuid::Uuid, from: u64, limit: usize| async move {
        let entries = store
            .replay_from_snapshot(id, from, limit, 3)
            .await
            .unwrap();
        entries
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<JobId>>()
    };
    sleep_past(rec.updated_at).await;
    assert_eq!(range(rec.id, 0, 2).await, ids[..2].to_vec());
    let first = store.get_replay(rec.id).await.unwrap();
    assert!(
        first.updated_at > rec.updated_at,
        "a range is a sign of life"
    );
    assert_eq!(range(rec.id, 2, 2).await, ids[2..4].to_vec());
    assert_eq!(range(rec.id, 4, 2).await, ids[4..].to_vec());
    assert!(range(rec.id, 5, 2).await.is_empty());
    assert!(range(rec.id, 7, 2).await.is_empty(), "past the end");
    assert_eq!(range(rec.id, 0, 100).await, ids, "taken entries too");
    assert_eq!(range(rec.id, 3, 100).await, ids[3..].to_vec());
    assert!(range(rec.id, 0, 0).await.is_empty());
    // Another replay's snapshot is separate.
    let (other, _) = store
        .create_replay(replay_request(vec![ids[0]], None))
        .await
        .unwrap();
    assert_eq!(
        store
            .replay_from_snapshot(other.id, 0, 10, 3)
            .await
            .unwrap(),
        vec![(ids[0], Err(ReplaySkip::NotDead))]
    );

    // five entries skipped (none is a dead letter), each counted once; the
    // position stops at the snapshot's end
    let ranges = store.get_replay(rec.id).await.unwrap();
    assert_eq!(
        (ranges.position, ranges.replayed, ranges.skipped),
        (5, 0, 5)
    );

    let p1 = store.update_replay(rec.id, 2, None).await.unwrap();
    assert_eq!(
        (p1.position, p1.replayed, p1.skipped),
        (5, 0, 5),
        "never back"
    );
    assert_eq!((p1.status.as_str(), p1.finished_at), ("running", None));
    assert!(p1.updated_at >= rec.updated_at);
    assert_eq!(
        (p1.created_at, p1.matched, &p1.request),
        (rec.created_at, 5, &rec.request)
    );
    assert_eq!(store.get_replay(rec.id).await.unwrap(), p1);

    let p2 = store
        .update_replay(rec.id, 5, Some("completed"))
        .await
        .unwrap();
    assert_eq!((p2.position, p2.replayed, p2.skipped), (5, 0, 5));
    assert_eq!(p2.status, "completed");
    let finished = p2.finished_at.expect("finished");
    assert!(finished >= p1.updated_at && finished <= now_ms());
    assert_eq!(store.get_replay(rec.id).await.unwrap(), p2);

    let failed = store
        .update_replay(other.id, 0, Some("failed"))
        .await
        .unwrap();
    assert_eq!(failed.status, "failed");
    assert!(failed.finished_at.is_some());
    assert_eq!(store.get_replay(other.id).await.unwrap(), failed);

    assert!(matches!(
        store.update_replay(uuid::Uuid::new_v4(), 1, None).await,
        Err(StoreError::NotFound)
    ));
}

/// Stale replays are the running ones not updated for `stale_ms`.
pub async fn stale_replays_are_running_and_old(store: Arc<dyn Store>) {
    let store = &*store;
    let (a, _) = store
        .create_replay(replay_request(vec![JobId::new()], None))
        .await
        .unwrap();
    let (b, _) = store
        .create_replay(replay_request(vec![JobId::new()], None))
        .await
        .unwrap();
    assert!(store.stale_replays(60_000).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = store.update_replay(b.id, 0, None).await.unwrap();
    let ids = |v: Vec<ReplayRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.stale_replays(200).await.unwrap()), vec![a.id]);
    let stale = store.stale_replays(200).await.unwrap();
    assert_eq!(stale[0], store.get_replay(a.id).await.unwrap());

    store
        .update_replay(a.id, 1, Some("completed"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        ids(store.stale_replays(200).await.unwrap()),
        vec![b.id],
        "a finished replay is never stale"
    );
    assert!(store.stale_replays(60_000).await.unwrap().is_empty());
}
