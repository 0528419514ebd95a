//! Cases for enqueue, reads, idempotency, stats, wake-ups and health.

use super::*;

/// Every field of a job survives enqueue, `get_job` and a claim.
pub async fn enqueue_get_round_trip(store: Arc<dyn Store>) {
    let store = &*store;
    assert!(store.enqueue(Vec::new()).await.is_empty());
    let before = now_ms();
    let mut job = new_job("emails");
    job.payload = json!({"to": "ada@example.com", "nested": {"list": [1, 2.5, null, true], "text": "héllo ✓"}});
    job.key = Some("customer-7".into());
    job.headers = BTreeMap::from([
        ("x-a".to_string(), "1".to_string()),
        ("x-b".to_string(), "two".to_string()),
    ]);
    job.max_attempts = 7;
    job.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    let second = new_job("emails");
    let ids = enqueue(store, vec![job.clone(), second.clone()]).await;
    let after = now_ms();
    assert_eq!(ids, vec![job.id, second.id]);

    let got = store.get_job(job.id).await.unwrap();
    assert_eq!(got.id, job.id);
    assert_eq!(got.queue, "emails");
    assert_eq!(got.status, JobStatus::Pending);
    assert_eq!(got.attempts, 0);
    assert_eq!(got.max_attempts, 7);
    assert_eq!(got.key, job.key);
    assert_eq!(got.payload, job.payload);
    assert_eq!(got.headers, job.headers);
    assert_eq!(got.traceparent, job.traceparent);
    assert_eq!(got.last_error, None);
    assert_eq!(got.replay_count, 0);
    assert!(
        before <= got.created_at && got.created_at <= after,
        "created_at {}",
        got.created_at
    );
    assert!(got.updated_at >= got.created_at);

    let c = claim(store, 10, LONG).await;
    assert_eq!(c.rows.len(), 2);
    let row = c
        .rows
        .iter()
        .find(|r| r.job_id == job.id)
        .expect("row of the job");
    assert_eq!(row.queue, "emails");
    assert_eq!(row.attempt, 1);
    assert_eq!(payload(row), job.payload);
    assert_eq!(row.key, job.key);
    assert_eq!(row.traceparent, job.traceparent);
    assert!(before <= row.created_at && row.created_at <= after);

    assert!(matches!(
        store.get_job(JobId::new()).await,
        Err(StoreError::NotFound)
    ));
}

/// A request with a bad job stores none of its jobs; other requests of the
/// same call are stored.
pub async fn enqueue_request_is_all_or_nothing(store: Arc<dyn Store>) {
    let store = &*store;
    let existing = new_job("q");
    enqueue(store, vec![existing.clone()]).await;

    let good = vec![new_job("q"), new_job("q")];
    let (b1, b2) = (new_job("q"), new_job("q"));
    let mut b3 = new_job("q");
    b3.id = b1.id; // duplicate id inside the request
    let mut clash = new_job("q");
    clash.id = existing.id; // id of a stored job
    clash.payload = json!("other");
    let res = store
        .enqueue(vec![
            plain(good.clone()),
            plain(vec![b1.clone(), b2.clone(), b3]),
            plain(vec![new_job("q"), clash]),
        ])
        .await;
    assert_eq!(res.len(), 3);
    assert_eq!(res[0].as_ref().unwrap().ids, vec![good[0].id, good[1].id]);
    assert!(
        res[1].is_err(),
        "duplicate id fails the request: {:?}",
        res[1]
    );
    assert!(
        res[2].is_err(),
        "existing id fails the request: {:?}",
        res[2]
    );
    for id in [b1.id, b2.id] {
        assert!(matches!(store.get_job(id).await, Err(StoreError::NotFound)));
    }
    assert_eq!(
        store.get_job(existing.id).await.unwrap().payload,
        existing.payload
    );

    let c = claim(store, 100, LONG).await;
    let claimed: HashSet<JobId> = c.rows.iter().map(|r| r.job_id).collect();
    assert_eq!(c.rows.len(), 3, "only the stored jobs have outbox rows");
    assert_eq!(
        claimed,
        HashSet::from([existing.id, good[0].id, good[1].id])
    );
}

/// The same key and fingerprint returns the first ids and stores nothing.
pub async fn idempotency_same_fingerprint_replays(store: Arc<dyn Store>) {
    let store = &*store;
    let x = new_job("q");
    let res = store
        .enqueue(vec![keyed(vec![x.clone()], "q", "k1", "f1")])
        .await;
    assert_eq!(
        res[0].as_ref().unwrap(),
        &Enqueued {
            ids: vec![x.id],
            replayed: false
        }
    );

    let y = new_job("q");
    let res = store
        .enqueue(vec![keyed(vec![y.clone()], "q", "k1", "f1")])
        .await;
    assert_eq!(
        res[0].as_ref().unwrap(),
        &Enqueued {
            ids: vec![x.id],
            replayed: true
        }
    );
    assert!(matches!(
        store.get_job(y.id).await,
        Err(StoreError::NotFound)
    ));

    // Twice in one call: the second replays the first.
    let (z, w) = (new_job("q"), new_job("q"));
    let res = store
        .enqueue(vec![
            keyed(vec![z.clone()], "q", "k2", "f2"),
            keyed(vec![w.clone()], "q", "k2", "f2"),
        ])
        .await;
    assert_eq!(
        res[0].as_ref().unwrap(),
        &Enqueued {
            ids: vec![z.id],
            replayed: false
        }
    );
    assert_eq!(
        res[1].as_ref().unwrap(),
        &Enqueued {
            ids: vec![z.id],
            replayed: true
        }
    );
    assert!(matches!(
        store.get_job(w.id).await,
        Err(StoreError::NotFound)
    ));

    let c = claim(store, 100, LONG).await;
    let claimed: HashSet<JobId> = c.rows.iter().map(|r| r.job_id).collect();
    assert_eq!(claimed, HashSet::from([x.id, z.id]));
    assert_eq!(c.rows.len(), 2);
}

/// Another fingerprint fails that request alone and stores nothing.
pub async fn idempotency_conflict_fails_alone(store: Arc<dyn Store>) {
    let store = &*store;
    let x = new_job("q");
    store
        .enqueue(vec![keyed(vec![x.clone()], "q", "k", "f1")])
        .await
        .remove(0)
        .unwrap();

    let (y, v, u) = (new_job("q"), new_job("q"), new_job("q"));
    let res = store
        .enqueue(vec![
            keyed(vec![y.clone()], "q", "k", "f2"),
            plain(vec![v.clone()]),
            keyed(vec![u.clone()], "other-scope", "k", "f2"),
        ])
        .await;
    assert!(
        matches!(res[0], Err(StoreError::IdempotencyConflict)),
        "{:?}",
        res[0]
    );
    assert_eq!(res[1].as_ref().unwrap().ids, vec![v.id]);
    assert_eq!(
        res[2].as_ref().unwrap(),
        &Enqueued {
            ids: vec![u.id],
            replayed: false
        }
    );
    assert!(matches!(
        store.get_job(y.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_job(v.id).await.unwrap().id, v.id);

    // The conflict did not replace the stored key.
    let again = store
        .enqueue(vec![keyed(vec![new_job("q")], "q", "k", "f1")])
        .await
        .remove(0)
        .unwrap();
    assert_eq!(
        again,
        Enqueued {
            ids: vec![x.id],
            replayed: true
        }
    );
    assert_eq!(claim(store, 100, LONG).await.rows.len(), 3);
}

/// Per-queue counts by status and the oldest pending job's age.
pub async fn queue_stats_counts(store: Arc<dyn Store>) {
    let store = &*store;
    assert!(store.queue_stats().await.unwrap().is_empty());
    // Queue b: one job in each non-pending status.
    let (published, succeeded, dead, retrying) =
        (new_job("b"), new_job("b"), new_job("b"), new_job("b"));
    enqueue(
        store,
        vec![
            published.clone(),
            succeeded.clone(),
            dead.clone(),
            retrying.clone(),
        ],
    )
    .await;
    let c = claim(store, 10, LONG).await;
    assert_eq!(mark_all(store, &c).await, 4);
    let a = started(start(store, succeeded.id, Some(1), LONG).await);
    finish(store, &a, Outcome::Succeeded).await.unwrap();
    let a = started(start(store, dead.id, Some(1), LONG).await);
    finish(store, &a, Outcome::Dead { error: "x".into() })
        .await
        .unwrap();
    let a = started(start(store, retrying.id, Some(1), LONG).await);
    finish(
        store,
        &a,
        Outcome::Retry {
            available_at: now_ms() + 60_000,
            error: "x".into(),
        },
    )
    .await
    .unwrap();
    // Queue a: three pending jobs, enqueued at different times.
    let first = enqueue(store, vec![new_job("a")]).await[0];
    tokio::time::sleep(Duration::from_millis(5)).await;
    enqueue(store, vec![new_job("a"), new_job("a")]).await;

    let stats = store.queue_stats().await.unwrap();
    let mut stats = stats.clone();
    stats.sort_by(|x, y| x.queue.cmp(&y.queue));
    let oldest = store.get_job(first).await.unwrap().created_at;
    assert_eq!(
        stats,
        vec![
            crate::QueueStats {
                queue: "a".into(),
                pending: 3,
                published: 0,
                retrying: 0,
                succeeded: 0,
                dead: 0,
                oldest_pending_at: Some(oldest),
            },
            crate::QueueStats {
                queue: "b".into(),
                pending: 0,
                published: 1,
                retrying: 1,
                succeeded: 1,
                dead: 1,
                oldest_pending_at: None,
            },
        ]
    );
}

/// Committing new outbox rows (enqueue, retry) wakes a waiting relay.
pub async fn outbox_notify_fires(store: Arc<dyn Store>) {
    let store = &*store;
    let notify = store.outbox_notify();
    let wait = Duration::from_secs(2);

    let notified = notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let id = enqueue(store, vec![new_job("q")]).await[0];
    tokio::time::timeout(wait, notified)
        .await
        .expect("enqueue notifies");

    let a = deliver(store, id, LONG).await;
    // Use up a wake-up a backend may have stored for a later waiter.
    let _ = tokio::time::timeout(Duration::from_millis(10), notify.notified()).await;
    let notified = notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    finish(
        store,
        &a,
        Outcome::Retry {
            available_at: now_ms(),
            error: "e".into(),
        },
    )
    .await
    .unwrap();
    tokio::time::timeout(wait, notified)
        .await
        .expect("a retry notifies");
}

/// The store answers a ping and names its backend.
pub async fn ping_and_backend(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    assert!(!store.backend().is_empty());
}
