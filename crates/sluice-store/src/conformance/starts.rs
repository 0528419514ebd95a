//! Cases for starting attempts: one start wins, a lost answer resumes, a
//! batch answers each in order, and stale, final and unknown jobs.

use super::*;

/// The first start of a job's next attempt wins; a duplicate sees Busy.
pub async fn start_fresh_then_duplicate_is_busy(store: Arc<dyn Store>) {
    let store = &*store;
    let job = new_job("q");
    enqueue(store, vec![job.clone()]).await;
    let before = now_ms();
    let a = started(start(store, job.id, Some(1), LONG).await);
    assert_eq!(a.attempt, 1);
    assert_eq!(a.job.id, job.id);
    assert_eq!(a.job.attempts, 1);
    assert_eq!(a.job.status, JobStatus::Published);
    assert_eq!(a.job.payload, job.payload);
    assert!(a.lease_until >= before + 60_000 && a.lease_until <= now_ms() + 60_000);
    assert_eq!(store.get_job(job.id).await.unwrap().attempts, 1);

    assert_eq!(
        start(store, job.id, Some(1), LONG).await,
        StartOutcome::Busy {
            until: a.lease_until
        }
    );
    assert_eq!(
        start(store, job.id, None, LONG).await,
        StartOutcome::Busy {
            until: a.lease_until
        }
    );
    assert_eq!(
        store.get_job(job.id).await.unwrap().attempts,
        1,
        "busy starts count nothing"
    );
}

/// A start asked again under the lease token it was first asked with (its
/// answer was lost) hands back the attempt it started, its lease running
/// from now, and counts nothing: alone, batched with another request of the
/// same job (which still waits), and after the lease lapsed; once the
/// attempt finishes, or another token took it over, the token resumes
/// nothing.
pub async fn a_start_asked_again_under_its_lease_resumes_its_attempt(store: Arc<dyn Store>) {
    let store = &*store;
    let job = new_job("q");
    enqueue(store, vec![job.clone()]).await;
    let token = LeaseToken::new();
    let ask = |lease: Option<LeaseToken>| StartRequest {
        job_id: job.id,
        attempt: Some(1),
        create: None,
        lease,
    };
    let first = store
        .start_attempts(vec![ask(Some(token.clone()))], Duration::from_secs(5))
        .await;
    let a = started(first.into_iter().next().unwrap().unwrap());
    assert_eq!((a.lease.clone(), a.attempt), (token.clone(), 1));

    let again = store
        .start_attempts(vec![ask(Some(token.clone()))], LONG)
        .await;
    let b = started(again.into_iter().next().unwrap().unwrap());
    assert_eq!(
        (b.lease.clone(), b.attempt, b.job.attempts),
        (token.clone(), 1, 1)
    );
    assert_eq!(b.job.payload, job.payload);
    assert!(b.lease_until > a.lease_until, "the lease runs from now");
    assert_eq!(store.get_job(job.id).await.unwrap().attempts, 1);

    // batched with a stranger's ask of the same job (the full path)
    let both = store
        .start_attempts(vec![ask(None), ask(Some(token.clone()))], LONG)
        .await;
    assert!(matches!(both[0], Ok(StartOutcome::Busy { .. })), "{both:?}");
    let c = started(both[1].as_ref().unwrap().clone());
    assert_eq!((c.lease.clone(), c.attempt), (token.clone(), 1));
    assert_eq!(store.get_job(job.id).await.unwrap().attempts, 1);

    finish(store, &c, Outcome::Succeeded).await.unwrap();
    let after = store.start_attempts(vec![ask(Some(token))], LONG).await;
    assert_eq!(after[0].as_ref().unwrap(), &StartOutcome::Stale);
    assert_eq!(store.get_job(job.id).await.unwrap().attempts, 1);

    // a lapsed lease: its own token resumes it, until another takes over
    let job = new_job("q");
    enqueue(store, vec![job.clone()]).await;
    let ask = |lease: LeaseToken| StartRequest {
        job_id: job.id,
        attempt: Some(1),
        create: None,
        lease: Some(lease),
    };
    let (mine, theirs) = (LeaseToken::new(), LeaseToken::new());
    let first = store.start_attempts(vec![ask(mine.clone())], SHORT).await;
    let a = started(first.into_iter().next().unwrap().unwrap());
    sleep_past(a.lease_until).await;
    let again = store.start_attempts(vec![ask(mine.clone())], SHORT).await;
    let b = started(again.into_iter().next().unwrap().unwrap());
    assert_eq!(
        (b.lease.clone(), b.attempt),
        (mine.clone(), 1),
        "lapsed, resumed"
    );
    sleep_past(b.lease_until).await;
    let other = store.start_attempts(vec![ask(theirs.clone())], LONG).await;
    let c = started(other.into_iter().next().unwrap().unwrap());
    assert_eq!((c.lease.clone(), c.attempt), (theirs, 2), "taken over");
    let late = store.start_attempts(vec![ask(mine)], LONG).await;
    assert_eq!(
        late[0].as_ref().unwrap(),
        &StartOutcome::Busy {
            until: c.lease_until
        }
    );
    assert_eq!(store.get_job(job.id).await.unwrap().attempts, 2);
}

/// One batch of starts answers each request in its place, whatever the
/// job's state: next attempts start, a busy, a final and a missing job are
/// answered as they would be alone.
pub async fn a_batch_of_starts_answers_each_in_order(store: Arc<dyn Store>) {
    let store = &*store;
    let ids = enqueue(store, (0..4).map(|_| new_job("q")).collect()).await;
    let busy = started(start(store, ids[1], Some(1), LONG).await);
    let done = started(start(store, ids[2], Some(1), LONG).await);
    finish(store, &done, Outcome::Succeeded).await.unwrap();
    let missing = JobId::new();
    let res: Vec<StartOutcome> = start_all(store, &[ids[0], ids[1], ids[2], missing, ids[3]])
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(res.len(), 5);
    let first = started(res[0].clone());
    assert_eq!((first.job.id, first.attempt), (ids[0], 1));
    assert_eq!(
        res[1],
        StartOutcome::Busy {
            until: busy.lease_until
        }
    );
    assert_eq!(res[2], StartOutcome::Stale);
    assert_eq!(res[3], StartOutcome::Missing);
    let last = started(res[4].clone());
    assert_eq!((last.job.id, last.attempt), (ids[3], 1));
    // Completions of all sorts in one batch, the fenced one refused.
    let results = store
        .finish_attempts(vec![
            completion(&first, Outcome::Succeeded),
            completion(&done, Outcome::Succeeded),
            completion(&last, Outcome::Succeeded),
        ])
        .await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(StoreError::LeaseLost)));
    for id in [ids[0], ids[3]] {
        assert_eq!(
            store.get_job(id).await.unwrap().status,
            JobStatus::Succeeded
        );
    }
}

/// Messages for finished or superseded attempts, or final jobs, are stale.
pub async fn start_stale_and_final_attempts(store: Arc<dyn Store>) {
    let store = &*store;
    let job = new_job("q");
    enqueue(store, vec![job.clone()]).await;
    let a1 = started(start(store, job.id, Some(1), LONG).await);
    finish(
        store,
        &a1,
        Outcome::Retry {
            available_at: now_ms(),
            error: "e".into(),
        },
    )
    .await
    .unwrap();
    // The finished attempt 1 (lease cleared) is stale; attempt 3 is not current.
    assert_eq!(
        start(store, job.id, Some(1), LONG).await,
        StartOutcome::Stale
    );
    assert_eq!(
        start(store, job.id, Some(3), LONG).await,
        StartOutcome::Stale
    );
    let a2 = started(start(store, job.id, Some(2), LONG).await);
    assert_eq!(a2.attempt, 2);
    // an older attempt's message waits for the running one: had attempt 2
    // taken over from it, it would be the job's only message
    assert_eq!(
        start(store, job.id, Some(1), LONG).await,
        StartOutcome::Busy {
            until: a2.lease_until
        },
        "older attempt while busy"
    );
    finish(store, &a2, Outcome::Succeeded).await.unwrap();
    for attempt in [Some(1), Some(2), Some(3), None] {
        assert_eq!(
            start(store, job.id, attempt, LONG).await,
            StartOutcome::Stale
        );
    }
    let job = store.get_job(job.id).await.unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 2));
}

/// Unknown jobs are Missing; direct producers' jobs are created once, with
/// no outbox row.
pub async fn start_missing_and_create_for_direct_producers(store: Arc<dyn Store>) {
    let store = &*store;
    assert_eq!(
        start(store, JobId::new(), Some(1), LONG).await,
        StartOutcome::Missing
    );
    assert_eq!(
        start(store, JobId::new(), None, LONG).await,
        StartOutcome::Missing
    );

    let mut job = new_job("direct");
    job.payload = json!({"from": "producer"});
    job.key = Some("k".into());
    let req = StartRequest {
        job_id: job.id,
        attempt: None,
        create: Some(job.clone()),
        lease: None,
    };
    let mut res = store.start_attempts(vec![req.clone()], LONG).await;
    let a = started(res.remove(0).unwrap());
    assert_eq!(a.attempt, 1);
    assert_eq!(a.job.queue, "direct");
    assert_eq!(a.job.payload, job.payload);
    assert_eq!(a.job.key, job.key);
    assert_eq!(a.job.status, JobStatus::Published);
    assert!(
        claim(store, 10, LONG).await.rows.is_empty(),
        "no outbox row for direct jobs"
    );

    // Redelivery of the same message while in flight, then after success.
    let mut dup = req.clone();
    if let Some(j) = dup.create.as_mut() {
        j.payload = json!("changed");
    }
    let res = store.start_attempts(vec![dup.clone()], LONG).await;
    assert_eq!(
        res[0].as_ref().unwrap(),
        &StartOutcome::Busy {
            until: a.lease_until
        }
    );
    finish(store, &a, Outcome::Succeeded).await.unwrap();
    let res = store.start_attempts(vec![dup], LONG).await;
    assert_eq!(res[0].as_ref().unwrap(), &StartOutcome::Stale);
    let stored = store.get_job(job.id).await.unwrap();
    assert_eq!(stored.payload, job.payload);
    assert_eq!((stored.status, stored.attempts), (JobStatus::Succeeded, 1));

    // Several requests in one call answer in order.
    let other = new_job("direct");
    let res = store
        .start_attempts(
            vec![
                StartRequest {
                    job_id: JobId::new(),
                    attempt: None,
                    create: None,
                    lease: None,
                },
                StartRequest {
                    job_id: other.id,
                    attempt: None,
                    create: Some(other.clone()),
                    lease: None,
                },
                StartRequest {
                    job_id: job.id,
                    attempt: None,
                    create: None,
                    lease: None,
                },
            ],
            LONG,
        )
        .await;
    assert_eq!(res[0].as_ref().unwrap(), &StartOutcome::Missing);
    assert!(matches!(res[1].as_ref().unwrap(), StartOutcome::Started(a) if a.job.id == other.id));
    assert_eq!(res[2].as_ref().unwrap(), &StartOutcome::Stale);
}
