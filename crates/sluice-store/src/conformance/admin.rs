//! Cases for the operators' operations: pause state, dead letters, replays
//! and the audit log.

use super::*;
use crate::{
    AuditEntry, DeadLetter, DeadLetterCursor, DeadLetterFilter, NewReplay, ReplayRecord, ReplaySkip,
};

/// Runs `job` to a dead letter through the public path (enqueue, claim,
/// mark, start, finish dead) with `error`; returns its id.
pub(crate) async fn kill_job(store: &dyn Store, job: NewJob, error: &str) -> JobId {
    let id = enqueue(store, vec![job]).await[0];
    die(store, id, error).await;
    id
}

/// A new job in `queue` that dies at once with `error`.
pub(crate) async fn kill(store: &dyn Store, queue: &str, error: &str) -> JobId {
    kill_job(store, new_job(queue), error).await
}

/// Delivers the due row of `id`, finishes that attempt dead, and publishes
/// the dead letter's outbox row as the relay would.
pub(crate) async fn die(store: &dyn Store, id: JobId, error: &str) {
    let a = deliver(store, id, LONG).await;
    finish(
        store,
        &a,
        Outcome::Dead {
            error: error.into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(status_of(store, id).await, JobStatus::Dead);
    let row = publish_dead_letter(store, id).await;
    assert_eq!(
        row.kind,
        OutboxKind::DeadLetter {
            error: error.into()
        }
    );
    assert_eq!(status_of(store, id).await, JobStatus::Dead);
}

fn ids_of(list: &[DeadLetter]) -> Vec<JobId> {
    list.iter().map(|d| d.id).collect()
}

fn cursor_of(d: &DeadLetter) -> DeadLetterCursor {
    DeadLetterCursor {
        died_at: d.died_at,
        id: d.id,
    }
}

fn everything() -> DeadLetterFilter {
    DeadLetterFilter::default()
}

/// Pages through every dead letter matching `filter`, `page` at a time.
async fn list_all(store: &dyn Store, filter: &DeadLetterFilter, page: usize) -> Vec<DeadLetter> {
    let mut out: Vec<DeadLetter> = Vec::new();
    loop {
        let after = out.last().map(cursor_of);
        let got = store.list_dead_letters(filter, after, page).await.unwrap();
        assert!(got.len() <= page);
        let done = got.len() < page;
        out.extend(got);
        if done {
            return out;
        }
    }
}

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

/// Pausing and resuming round-trips; the list holds exactly the paused queues.
pub async fn admin_pause_resume_round_trip(store: Arc<dyn Store>) {
    let store = &*store;
    assert!(store.paused_queues().await.unwrap().is_empty());
    store.set_paused("b", true).await.unwrap();
    store.set_paused("a", true).await.unwrap();
    store.set_paused("a", true).await.unwrap();
    let mut paused = store.paused_queues().await.unwrap();
    paused.sort();
    assert_eq!(paused, vec!["a".to_string(), "b".to_string()]);

    store.set_paused("a", false).await.unwrap();
    store.set_paused("never-paused", false).await.unwrap();
    assert_eq!(store.paused_queues().await.unwrap(), vec!["b".to_string()]);

    store.set_paused("b", false).await.unwrap();
    assert!(store.paused_queues().await.unwrap().is_empty());
    store.set_paused("a", true).await.unwrap();
    assert_eq!(store.paused_queues().await.unwrap(), vec!["a".to_string()]);
}

/// Dead letters list in `(died_at, id)` order; paging by cursor neither
/// skips nor repeats, also while new jobs die.
pub async fn dead_letters_list_in_order_and_page_stably(store: Arc<dyn Store>) {
    let store = &*store;
    assert!(store
        .list_dead_letters(&everything(), None, 10)
        .await
        .unwrap()
        .is_empty());
    // A job that is not dead is never listed.
    let alive = enqueue(store, vec![new_job("q")]).await[0];
    let mut killed = Vec::new();
    for n in 0..5 {
        let mut job = new_job("q");
        job.payload = json!({"n": n});
        killed.push(kill_job(store, job, &format!("boom {n}")).await);
    }
    let all = store
        .list_dead_letters(&everything(), None, 100)
        .await
        .unwrap();
    assert_eq!(ids_of(&all), killed, "death order");
    for pair in all.windows(2) {
        assert!((pair[0].died_at, pair[0].id) < (pair[1].died_at, pair[1].id));
    }
    let first = &all[0];
    assert_eq!(first.queue, "q");
    assert_eq!(first.payload, json!({"n": 0}));
    assert_eq!(first.attempts, 1);
    assert_eq!(first.last_error, "boom 0");
    assert_eq!(first.replay_count, 0);
    assert!(first.died_at > 0 && first.died_at <= now_ms());
    assert!(!ids_of(&all).contains(&alive));

    // Page by two; a job dying between pages shows up at the end, once.
    let page1 = store
        .list_dead_letters(&everything(), None, 2)
        .await
        .unwrap();
    assert_eq!(ids_of(&page1), killed[..2].to_vec());
    let late = kill(store, "q", "late").await;
    let page2 = store
        .list_dead_letters(&everything(), Some(cursor_of(&page1[1])), 2)
        .await
        .unwrap();
    assert_eq!(ids_of(&page2), killed[2..4].to_vec());
    let page3 = store
        .list_dead_letters(&everything(), Some(cursor_of(&page2[1])), 2)
        .await
        .unwrap();
    assert_eq!(ids_of(&page3), vec![killed[4], late]);
    let page4 = store
        .list_dead_letters(&everything(), Some(cursor_of(&page3[1])), 2)
        .await
        .unwrap();
    assert!(page4.is_empty());

    let paged = list_all(store, &everything(), 1).await;
    let mut expected = killed.clone();
    expected.push(late);
    assert_eq!(ids_of(&paged), expected);
    assert!(store
        .list_dead_letters(&everything(), None, 0)
        .await
        .unwrap()
        .is_empty());
}

/// Filters by queue, error substring (case-insensitive, `%` and `_`
/// literal) and ids, alone and combined; counts agree with listings.
pub async fn dead_letters_filters_and_count(store: Arc<dyn Store>) {
    let store = &*store;
    let timeout = kill(store, "mail", "SMTP timeout at 50% of body").await;
    let refused = kill(store, "mail", "smtp refused").await;
    let bad_input = kill(store, "sms", "bad_input: number").await;
    let schema = kill(store, "sms", "Schema violation").await;
    enqueue(store, vec![new_job("mail")]).await;

    let check = |filter: DeadLetterFilter, expected: Vec<JobId>| async move {
        let got = list_all(store, &filter, 100).await;
        assert_eq!(ids_of(&got), expected, "{filter:?}");
        assert_eq!(
            store.count_dead_letters(&filter).await.unwrap(),
            expected.len() as u64,
            "count of {filter:?}"
        );
    };
    check(everything(), vec![timeout, refused, bad_input, schema]).await;
    let queue = |q: &str| DeadLetterFilter {
        queue: Some(q.into()),
        ..everything()
    };
    let error = |e: &str| DeadLetterFilter {
        error_contains: Some(e.into()),
        ..everything()
    };
    check(queue("mail"), vec![timeout, refused]).await;
    check(queue("sms"), vec![bad_input, schema]).await;
    check(queue("nope"), vec![]).await;
    check(error("smtp"), vec![timeout, refused]).await;
    check(error("SCHEMA"), vec![schema]).await;
    check(error("50%"), vec![timeout]).await;
    check(error("%"), vec![timeout]).await;
    check(error("_"), vec![bad_input]).await;
    check(error("refused at"), vec![]).await;
    check(
        DeadLetterFilter {
            ids: Some(vec![schema, timeout, JobId::new()]),
            ..everything()
        },
        vec![timeout, schema],
    )
    .await;
    check(
        DeadLetterFilter {
            ids: Some(Vec::new()),
            ..everything()
        },
        vec![],
    )
    .await;
    check(
        DeadLetterFilter {
            queue: Some("mail".into()),
            error_contains: Some("Refused".into()),
            ids: None,
        },
        vec![refused],
    )
    .await;
    check(
        DeadLetterFilter {
            queue: Some("sms".into()),
            error_contains: Some("smtp".into()),
            ids: None,
        },
        vec![],
    )
    .await;
    check(
        DeadLetterFilter {
            queue: Some("mail".into()),
            error_contains: Some("smtp".into()),
            ids: Some(vec![refused, bad_input]),
        },
        vec![refused],
    )
    .await;
}

/// The detail of a dead letter carries every attempt with its outcome.
pub async fn dead_letter_detail_has_full_history(store: Arc<dyn Store>) {
    let store = &*store;
    let mut job = new_job("q");
    job.max_attempts = 3;
    job.key = Some("order-7".into());
    job.payload = json!({"order": 7});
    let id = enqueue(store, vec![job.clone()]).await[0];
    for n in 1..=3u32 {
        let a = deliver(store, id, LONG).await;
        let outcome = if n < 3 {
            Outcome::Retry {
                available_at: now_ms(),
                error: format!("fail {n}"),
            }
        } else {
            Outcome::Dead {
                error: "fail 3".into(),
            }
        };
        finish(store, &a, outcome).await.unwrap();
    }
    let record = store.get_job(id).await.unwrap();
    let detail = store.get_dead_letter(id).await.unwrap();
    assert_eq!(detail.dead_letter.id, id);
    assert_eq!(detail.dead_letter.queue, "q");
    assert_eq!(detail.dead_letter.payload, json!({"order": 7}));
    assert_eq!(detail.dead_letter.attempts, 3);
    assert_eq!(detail.dead_letter.last_error, "fail 3");
    assert_eq!(detail.dead_letter.replay_count, 0);
    assert_eq!(detail.key.as_deref(), Some("order-7"));
    assert_eq!(detail.max_attempts, 3);
    assert_eq!(detail.created_at, record.created_at);
    let listed = store
        .list_dead_letters(&everything(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![detail.dead_letter.clone()]);

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
            (0, 1, "retry", Some("fail 1")),
            (0, 2, "retry", Some("fail 2")),
            (0, 3, "dead", Some("fail 3")),
        ]
    );
    for h in &detail.history {
        assert!(h.started_at <= h.finished_at, "{h:?}");
        assert!(h.finished_at <= detail.dead_letter.died_at, "{h:?}");
    }

    let alive = enqueue(store, vec![new_job("q")]).await[0];
    assert!(matches!(
        store.get_dead_letter(alive).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_dead_letter(JobId::new()).await,
        Err(StoreError::NotFound)
    ));
}

/// Deleting a dead letter removes its job for good; a second delete, or a
/// delete of a job that is not dead, is NotFound.
pub async fn delete_dead_letter_removes_job(store: Arc<dyn Store>) {
    let store = &*store;
    let mut job = new_job("q");
    job.max_attempts = 2;
    let id = enqueue(store, vec![job]).await[0];
    let a = deliver(store, id, LONG).await;
    finish(
        store,
        &a,
        Outcome::Retry {
            available_at: now_ms(),
            error: "first".into(),
        },
    )
    .await
    .unwrap();
    die(store, id, "second").await;
    let kept = kill(store, "q", "kept").await;
    let alive = enqueue(store, vec![new_job("q")]).await[0];

    store.delete_dead_letter(id).await.unwrap();
    assert!(matches!(store.get_job(id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.get_dead_letter(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_dead_letter(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_dead_letter(alive).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(status_of(store, alive).await, JobStatus::Pending);
    assert!(matches!(
        store.delete_dead_letter(JobId::new()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        ids_of(
            &store
                .list_dead_letters(&everything(), None, 10)
                .await
                .unwrap()
        ),
        vec![kept]
    );
    assert_eq!(store.count_dead_letters(&everything()).await.unwrap(), 1);
    assert_eq!(
        replay(store, &[id], 5).await.unwrap(),
        vec![Err(ReplaySkip::NotDead)]
    );
    // Only the untouched job's row is due.
    let c = claim(store, 100, LONG).await;
    assert_eq!(
        c.rows.iter().map(|r| r.job_id).collect::<Vec<_>>(),
        vec![alive]
    );
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
    assert_eq!(mine[0].payload, before.payload);
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
        .update_replay(done.id, 1, 1, 0, Some("completed"))
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
        .update_replay(running.id, 1, 1, 0, Some("completed"))
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
    let progressed = store.update_replay(first.id, 1, 1, 0, None).await.unwrap();
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

/// The snapshot reads in its own order, by range; updates add to the
/// counters, move the position and finish the replay.
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
    assert_eq!(range(rec.id, 0, 2).await, ids[..2].to_vec());
    assert_eq!(range(rec.id, 2, 2).await, ids[2..4].to_vec());
    assert_eq!(range(rec.id, 4, 2).await, ids[4..].to_vec());
    assert!(range(rec.id, 5, 2).await.is_empty());
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

    let p1 = store.update_replay(rec.id, 2, 1, 1, None).await.unwrap();
    assert_eq!((p1.position, p1.replayed, p1.skipped), (2, 1, 1));
    assert_eq!((p1.status.as_str(), p1.finished_at), ("running", None));
    assert!(p1.updated_at >= rec.updated_at);
    assert_eq!(
        (p1.created_at, p1.matched, &p1.request),
        (rec.created_at, 5, &rec.request)
    );
    assert_eq!(store.get_replay(rec.id).await.unwrap(), p1);

    let p2 = store
        .update_replay(rec.id, 5, 2, 1, Some("completed"))
        .await
        .unwrap();
    assert_eq!((p2.position, p2.replayed, p2.skipped), (5, 3, 2));
    assert_eq!(p2.status, "completed");
    let finished = p2.finished_at.expect("finished");
    assert!(finished >= p1.updated_at && finished <= now_ms());
    assert_eq!(store.get_replay(rec.id).await.unwrap(), p2);

    let failed = store
        .update_replay(other.id, 0, 0, 0, Some("failed"))
        .await
        .unwrap();
    assert_eq!(failed.status, "failed");
    assert!(failed.finished_at.is_some());
    assert_eq!(store.get_replay(other.id).await.unwrap(), failed);

    assert!(matches!(
        store
            .update_replay(uuid::Uuid::new_v4(), 1, 1, 1, None)
            .await,
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
    let b = store.update_replay(b.id, 0, 0, 0, None).await.unwrap();
    let ids = |v: Vec<ReplayRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.stale_replays(200).await.unwrap()), vec![a.id]);
    let stale = store.stale_replays(200).await.unwrap();
    assert_eq!(stale[0], store.get_replay(a.id).await.unwrap());

    store
        .update_replay(a.id, 1, 1, 0, Some("completed"))
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

/// The audit log lists newest first, up to the limit, entries intact.
pub async fn audit_newest_first(store: Arc<dyn Store>) {
    let store = &*store;
    assert!(store.list_audit(10).await.unwrap().is_empty());
    let base = now_ms();
    let entry = |n: i64, action: &str| AuditEntry {
        at: base + n,
        actor: format!("actor-{n}"),
        action: action.into(),
        target: format!("target-{n}"),
        count: u64::try_from(n).unwrap() * 10,
        detail: json!({"n": n, "nested": {"ok": true}}),
    };
    let entries = vec![
        entry(0, "pause"),
        entry(1, "resume"),
        entry(2, "replay_bulk"),
        entry(2, "delete"),
    ];
    for e in &entries {
        store.record_audit(e.clone()).await.unwrap();
    }
    let mut newest_first = entries.clone();
    newest_first.reverse();
    assert_eq!(store.list_audit(10).await.unwrap(), newest_first);
    assert_eq!(
        store.list_audit(2).await.unwrap(),
        newest_first[..2].to_vec()
    );
    assert!(store.list_audit(0).await.unwrap().is_empty());
}

/// A dead letter replayed (or deleted) before the relay published its
/// dead-letter row: the replay works as usual and the stale row is still
/// published, under the same job id, without touching the replayed job
/// (whose attempt 1 is the attempt the row names); a delete takes the row
/// with the job.
pub async fn replay_and_delete_with_a_pending_dead_letter_row(store: Arc<dyn Store>) {
    let store = &*store;
    let id = enqueue(store, vec![new_job("q")]).await[0];
    let a = deliver(store, id, LONG).await;
    finish(
        store,
        &a,
        Outcome::Dead {
            error: "first death".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(replay(store, &[id], 3).await.unwrap(), vec![Ok(())]);
    let job = store.get_job(id).await.unwrap();
    assert_eq!(
        (job.status, job.attempts, job.replay_count),
        (JobStatus::Pending, 0, 1)
    );

    let c = claim(store, 100, LONG).await;
    let mut got: Vec<(JobId, u32, OutboxKind)> = c
        .rows
        .iter()
        .map(|r| (r.job_id, r.attempt, r.kind.clone()))
        .collect();
    got.sort_by_key(|g| g.2 != OutboxKind::Job);
    assert_eq!(
        got,
        vec![
            (id, 1, OutboxKind::Job),
            (
                id,
                1,
                OutboxKind::DeadLetter {
                    error: "first death".into()
                }
            ),
        ]
    );
    let job_row = c.rows.iter().find(|r| r.kind == OutboxKind::Job).unwrap();
    let dead_row = c.rows.iter().find(|r| r.kind != OutboxKind::Job).unwrap();
    // The stale dead letter is published first: the replayed job stays pending.
    assert_eq!(
        store
            .mark_published(&c.lease, &[dead_row.row_id])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.get_job(id).await.unwrap(),
        job,
        "the job is untouched"
    );
    // Its own row moves it on as usual.
    assert_eq!(
        store
            .mark_published(&c.lease, &[job_row.row_id])
            .await
            .unwrap(),
        1
    );
    assert_eq!(status_of(store, id).await, JobStatus::Published);

    // Dies again and is deleted before its dead letter is published.
    let a = started(start(store, id, Some(1), LONG).await);
    finish(
        store,
        &a,
        Outcome::Dead {
            error: "second death".into(),
        },
    )
    .await
    .unwrap();
    let alive = enqueue(store, vec![new_job("q")]).await[0];
    store.delete_dead_letter(id).await.unwrap();
    assert!(matches!(store.get_job(id).await, Err(StoreError::NotFound)));
    let c = claim(store, 100, LONG).await;
    assert_eq!(
        c.rows.iter().map(|r| r.job_id).collect::<Vec<_>>(),
        vec![alive],
        "the deleted job's dead-letter row went with it"
    );
}
