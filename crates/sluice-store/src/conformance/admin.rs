//! Cases for the operators' operations: pause state, the audit log, and a
//! replay and a delete racing a dead letter not yet published; and the
//! helpers that kill jobs for the dead-letter and replay cases.

use super::*;
use crate::AuditEntry;

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
