//! Cases for recording the outcomes of attempts, and for the dead letters
//! they publish through the outbox.

use super::*;

/// Success: status `succeeded`, the lease is released, no new row.
pub async fn finish_success(store: Arc<dyn Store>) {
    let store = &*store;
    let id = enqueue(store, vec![new_job("q")]).await[0];
    let a = deliver(store, id, LONG).await;
    finish(store, &a, Outcome::Succeeded).await.unwrap();
    let job = store.get_job(id).await.unwrap();
    assert_eq!(
        (job.status, job.attempts, job.last_error),
        (JobStatus::Succeeded, 1, None)
    );
    assert!(job.updated_at >= a.job.updated_at);
    assert!(matches!(
        finish(store, &a, Outcome::Succeeded).await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.next_due().await.unwrap(), None);
    assert_eq!(start(store, id, Some(2), LONG).await, StartOutcome::Stale);
}

/// Retry: status `retrying` with the error, and a row for the next attempt
/// claimable once due.
pub async fn finish_retry_requeues_next_attempt(store: Arc<dyn Store>) {
    let store = &*store;
    let job = new_job("q");
    enqueue(store, vec![job.clone()]).await;
    let a = deliver(store, job.id, LONG).await;
    let at = now_ms() + 300;
    finish(
        store,
        &a,
        Outcome::Retry {
            available_at: at,
            error: "HTTP 503".into(),
        },
    )
    .await
    .unwrap();
    let got = store.get_job(job.id).await.unwrap();
    assert_eq!(got.status, JobStatus::Retrying);
    assert_eq!(got.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(got.attempts, 1);
    assert!(claim(store, 10, LONG).await.rows.is_empty(), "not due yet");
    assert_eq!(store.next_due().await.unwrap(), Some(at));

    let c = claim_eventually(store, Duration::from_secs(3)).await;
    assert!(now_ms() >= at);
    assert_eq!(c.rows.len(), 1);
    let row = &c.rows[0];
    assert_eq!((row.job_id, row.attempt), (job.id, 2));
    assert_eq!(payload(row), job.payload);
    assert_eq!(
        store.mark_published(&c.lease, &[row.row_id]).await.unwrap(),
        1
    );
    let a2 = started(start(store, job.id, Some(2), LONG).await);
    assert_eq!(a2.attempt, 2);
    assert_eq!(a2.job.last_error.as_deref(), Some("HTTP 503"));
}

/// Dead: status `dead` with the error; nothing more runs.
pub async fn finish_dead(store: Arc<dyn Store>) {
    let store = &*store;
    let id = enqueue(store, vec![new_job("q")]).await[0];
    let a = deliver(store, id, LONG).await;
    finish(
        store,
        &a,
        Outcome::Dead {
            error: "schema violation".into(),
        },
    )
    .await
    .unwrap();
    let job = store.get_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.last_error.as_deref(), Some("schema violation"));
    assert_eq!(job.attempts, 1);
    // Only the dead letter's publication is left in the outbox.
    publish_dead_letter(store, id).await;
    assert_eq!(store.next_due().await.unwrap(), None);
    assert_eq!(start(store, id, Some(2), LONG).await, StartOutcome::Stale);
}

/// Each completion of a batch is fenced alone.
pub async fn finish_is_fenced_per_completion(store: Arc<dyn Store>) {
    let store = &*store;
    let (x, y) = (new_job("q"), new_job("q"));
    enqueue(store, vec![x.clone(), y.clone()]).await;
    let ax = started(start(store, x.id, Some(1), LONG).await);
    let ay = started(start(store, y.id, Some(1), LONG).await);
    let mut wrong_lease = completion(&ax, Outcome::Succeeded);
    wrong_lease.lease = crate::LeaseToken::new();
    let mut wrong_attempt = completion(&ax, Outcome::Dead { error: "x".into() });
    wrong_attempt.attempt = 2;
    let mut other_job = completion(&ax, Outcome::Succeeded);
    other_job.job_id = y.id;
    let res = store
        .finish_attempts(vec![
            wrong_lease,
            completion(&ay, Outcome::Succeeded),
            wrong_attempt,
            other_job,
        ])
        .await;
    assert_eq!(res.len(), 4);
    assert!(matches!(res[0], Err(StoreError::LeaseLost)), "{:?}", res[0]);
    assert!(res[1].is_ok(), "{:?}", res[1]);
    assert!(matches!(res[2], Err(StoreError::LeaseLost)), "{:?}", res[2]);
    assert!(matches!(res[3], Err(StoreError::LeaseLost)), "{:?}", res[3]);
    let jx = store.get_job(x.id).await.unwrap();
    assert_eq!(
        (jx.status, jx.attempts, jx.last_error),
        (JobStatus::Published, 1, None)
    );
    assert_eq!(status_of(store, y.id).await, JobStatus::Succeeded);
    finish(store, &ax, Outcome::Succeeded).await.unwrap();
    assert_eq!(status_of(store, x.id).await, JobStatus::Succeeded);
    assert!(store.finish_attempts(Vec::new()).await.is_empty());
    assert!(store.start_attempts(Vec::new(), LONG).await.is_empty());
}

/// Attempts are counted by the store across retries to a dead letter.
pub async fn attempts_count_through_retries(store: Arc<dyn Store>) {
    let store = &*store;
    let mut job = new_job("q");
    job.max_attempts = 3;
    enqueue(store, vec![job.clone()]).await;
    for n in 1..=3u32 {
        let a = deliver(store, job.id, LONG).await;
        assert_eq!(a.attempt, n);
        assert_eq!(a.job.attempts, n);
        assert_eq!(a.job.max_attempts, 3);
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
        assert_eq!(store.get_job(job.id).await.unwrap().attempts, n);
    }
    let got = store.get_job(job.id).await.unwrap();
    assert_eq!((got.status, got.attempts), (JobStatus::Dead, 3));
    assert_eq!(got.last_error.as_deref(), Some("fail 3"));
    let row = publish_dead_letter(store, job.id).await;
    assert_eq!(row.attempt, 3, "the attempt that died");
    assert!(claim(store, 10, LONG).await.rows.is_empty());

    // A success after a retry keeps the last error.
    let other = enqueue(store, vec![new_job("q")]).await[0];
    let a = deliver(store, other, LONG).await;
    finish(
        store,
        &a,
        Outcome::Retry {
            available_at: now_ms(),
            error: "once".into(),
        },
    )
    .await
    .unwrap();
    let a = deliver(store, other, LONG).await;
    finish(store, &a, Outcome::Succeeded).await.unwrap();
    let got = store.get_job(other).await.unwrap();
    assert_eq!((got.status, got.attempts), (JobStatus::Succeeded, 2));
    assert_eq!(got.last_error.as_deref(), Some("once"));
}

/// A dead letter is also an outbox row of kind `DeadLetter`, due at once,
/// carrying the error, the attempt that died and the job's payload, key and
/// trace context; committing it wakes the relay.
pub async fn dead_letter_is_published_through_the_outbox(store: Arc<dyn Store>) {
    let store = &*store;
    let mut job = new_job("dq");
    job.payload = json!({"to": "dead@example.com"});
    job.key = Some("k-dead".into());
    job.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    let id = enqueue(store, vec![job.clone()]).await[0];
    let a = deliver(store, id, LONG).await;
    assert!(
        claim(store, 10, LONG).await.rows.is_empty(),
        "nothing due before the death"
    );

    let notify = store.outbox_notify();
    let _ = tokio::time::timeout(Duration::from_millis(10), notify.notified()).await;
    let notified = notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let before = now_ms();
    finish(
        store,
        &a,
        Outcome::Dead {
            error: "HTTP 404: no such mailbox".into(),
        },
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(2), notified)
        .await
        .expect("a dead letter notifies");
    let due = store.next_due().await.unwrap().expect("a dead-letter row");
    assert!(due >= before && due <= now_ms(), "due now, got {due}");

    let c = claim(store, 10, LONG).await;
    assert_eq!(c.rows.len(), 1, "{:?}", c.rows);
    let row = &c.rows[0];
    assert_eq!(
        row.kind,
        OutboxKind::DeadLetter {
            error: "HTTP 404: no such mailbox".into()
        }
    );
    assert_eq!((row.job_id, row.queue.as_str(), row.attempt), (id, "dq", 1));
    assert_eq!(payload(row), job.payload);
    assert_eq!(row.key, job.key);
    assert_eq!(row.traceparent, job.traceparent);
    assert!(row.created_at >= before && row.created_at <= now_ms());
    assert!(
        claim(store, 10, LONG).await.rows.is_empty(),
        "a claimed dead-letter row is leased like any other"
    );
    // A failed publish gives it back like any other row.
    assert_eq!(
        store
            .release_outbox(&c.lease, &[row.row_id], now_ms())
            .await
            .unwrap(),
        1
    );
    let again = publish_dead_letter(store, id).await;
    assert_eq!(again.row_id, row.row_id);
    assert_eq!(store.next_due().await.unwrap(), None);
    assert!(claim(store, 10, LONG).await.rows.is_empty());
}

/// Marking a dead-letter row published removes it and nothing else: the job
/// stays dead, with its attempts, error, timestamps and dead-letter entry.
pub async fn publishing_a_dead_letter_never_changes_its_job(store: Arc<dyn Store>) {
    let store = &*store;
    let id = enqueue(store, vec![new_job("q")]).await[0];
    let a = deliver(store, id, LONG).await;
    finish(
        store,
        &a,
        Outcome::Dead {
            error: "bad".into(),
        },
    )
    .await
    .unwrap();
    let dead = store.get_job(id).await.unwrap();
    let entry = store.get_dead_letter(id).await.unwrap();
    let c = claim(store, 10, LONG).await;
    assert_eq!(c.rows.len(), 1);
    assert_eq!(c.rows[0].attempt, 1);
    let other = crate::LeaseToken::new();
    assert_eq!(
        store
            .mark_published(&other, &row_ids(&c.rows))
            .await
            .unwrap(),
        0,
        "fenced by the claim's lease"
    );
    assert_eq!(mark_all(store, &c).await, 1);
    assert_eq!(
        store.get_job(id).await.unwrap(),
        dead,
        "the job is untouched"
    );
    assert_eq!(store.get_dead_letter(id).await.unwrap(), entry);
    assert_eq!(start(store, id, Some(1), LONG).await, StartOutcome::Stale);
    assert_eq!(start(store, id, Some(2), LONG).await, StartOutcome::Stale);
    assert!(claim(store, 10, LONG).await.rows.is_empty());
    assert_eq!(store.next_due().await.unwrap(), None);
}

/// Retries and successes add no dead-letter row; only the job rows they
/// always had.
pub async fn retries_and_successes_publish_no_dead_letter(store: Arc<dyn Store>) {
    let store = &*store;
    let id = enqueue(store, vec![new_job("q")]).await[0];
    let a = deliver(store, id, LONG).await;
    finish(
        store,
        &a,
        Outcome::Retry {
            available_at: now_ms(),
            error: "flaky".into(),
        },
    )
    .await
    .unwrap();
    let c = claim(store, 10, LONG).await;
    let kinds: Vec<(JobId, u32, OutboxKind)> = c
        .rows
        .iter()
        .map(|r| (r.job_id, r.attempt, r.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![(id, 2, OutboxKind::Job)],
        "a retry is a job row"
    );
    store
        .release_outbox(&c.lease, &row_ids(&c.rows), now_ms())
        .await
        .unwrap();
    let a = deliver(store, id, LONG).await;
    finish(store, &a, Outcome::Succeeded).await.unwrap();
    assert!(claim(store, 10, LONG).await.rows.is_empty());
    assert_eq!(store.next_due().await.unwrap(), None);
    assert_eq!(status_of(store, id).await, JobStatus::Succeeded);
}

/// Several deaths in one batch (with a success and a fenced completion
/// among them) give one dead-letter row each, with each one's own error.
pub async fn dead_letters_of_a_batch_keep_their_errors(store: Arc<dyn Store>) {
    let store = &*store;
    let ids = enqueue(store, vec![new_job("a"), new_job("b"), new_job("a")]).await;
    let mut attempts = Vec::new();
    for &id in &ids {
        attempts.push(started(start(store, id, Some(1), LONG).await));
    }
    let mut fenced = completion(
        &attempts[2],
        Outcome::Dead {
            error: "late".into(),
        },
    );
    fenced.lease = crate::LeaseToken::new();
    let res = store
        .finish_attempts(vec![
            completion(
                &attempts[0],
                Outcome::Dead {
                    error: "first".into(),
                },
            ),
            completion(
                &attempts[1],
                Outcome::Dead {
                    error: "second".into(),
                },
            ),
            fenced,
        ])
        .await;
    assert!(res[0].is_ok() && res[1].is_ok(), "{res:?}");
    assert!(matches!(res[2], Err(StoreError::LeaseLost)), "{res:?}");
    // The enqueue's own job rows are still due too; look at dead letters only.
    let c = claim(store, 100, LONG).await;
    let mut got: Vec<(JobId, String, OutboxKind)> = c
        .rows
        .iter()
        .filter(|r| r.kind != OutboxKind::Job)
        .map(|r| (r.job_id, r.queue.clone(), r.kind.clone()))
        .collect();
    got.sort_by_key(|g| g.1.clone());
    assert_eq!(
        got,
        vec![
            (
                ids[0],
                "a".to_string(),
                OutboxKind::DeadLetter {
                    error: "first".into()
                }
            ),
            (
                ids[1],
                "b".to_string(),
                OutboxKind::DeadLetter {
                    error: "second".into()
                }
            ),
        ]
    );
    assert_eq!(status_of(store, ids[2]).await, JobStatus::Published);
}
