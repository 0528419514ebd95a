//! Cases for starting attempts and recording their outcomes.

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

/// An attempt whose lease expired is taken over as a new attempt; the old
/// holder's completion is fenced off and changes nothing.
pub async fn start_takes_over_expired_attempt(store: Arc<dyn Store>) {
    let store = &*store;
    let job = new_job("q");
    enqueue(store, vec![job.clone()]).await;
    let crashed = started(start(store, job.id, Some(1), SHORT).await);
    assert!(matches!(
        start(store, job.id, Some(1), LONG).await,
        StartOutcome::Busy { .. }
    ));
    sleep_past(crashed.lease_until).await;
    let taker = started(start(store, job.id, Some(1), LONG).await);
    assert_eq!(taker.attempt, 2, "the crashed attempt counts");
    assert_ne!(taker.lease, crashed.lease);
    assert_eq!(
        start(store, job.id, Some(2), LONG).await,
        StartOutcome::Busy {
            until: taker.lease_until
        }
    );

    let before = store.get_job(job.id).await.unwrap();
    assert!(matches!(
        finish(store, &crashed, Outcome::Succeeded).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        finish(
            store,
            &crashed,
            Outcome::Dead {
                error: "late".into()
            }
        )
        .await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(
        store.get_job(job.id).await.unwrap(),
        before,
        "fenced completion changes nothing"
    );

    finish(store, &taker, Outcome::Succeeded).await.unwrap();
    let after = store.get_job(job.id).await.unwrap();
    assert_eq!((after.status, after.attempts), (JobStatus::Succeeded, 2));
}

/// A takeover that dies too leaves the job one attempt ahead of its message:
/// delivered again, that message takes the job over once more (it was
/// stale before, and the job sat with a lapsed lease and no message).
pub async fn a_takeover_that_died_too_is_taken_over_again(store: Arc<dyn Store>) {
    let store = &*store;
    let job = new_job("q");
    enqueue(store, vec![job.clone()]).await;
    let first = started(start(store, job.id, Some(1), SHORT).await);
    sleep_past(first.lease_until).await;
    let second = started(start(store, job.id, Some(1), SHORT).await);
    assert_eq!(second.attempt, 2);
    sleep_past(second.lease_until).await;
    let third = started(start(store, job.id, Some(1), LONG).await);
    assert_eq!(third.attempt, 3, "both dead attempts count");
    for attempt in [Some(1), Some(2), Some(3), None] {
        assert_eq!(
            start(store, job.id, attempt, LONG).await,
            StartOutcome::Busy {
                until: third.lease_until
            }
        );
    }
    finish(store, &third, Outcome::Succeeded).await.unwrap();
    assert_eq!(
        start(store, job.id, Some(1), LONG).await,
        StartOutcome::Stale
    );
    let done = store.get_job(job.id).await.unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Succeeded, 3));
}

/// An abandoned start (its handler never ran) no longer counts: the same
/// message starts that attempt again at once. A lease lost to a takeover
/// abandons nothing.
pub async fn an_abandoned_attempt_starts_again_as_the_same_attempt(store: Arc<dyn Store>) {
    let store = &*store;
    let job = new_job("q");
    enqueue(store, vec![job.clone()]).await;
    let a = started(start(store, job.id, Some(1), LONG).await);
    let wrong = LeaseToken::new();
    assert!(!store
        .abandon_attempt(job.id, &wrong, 1, false)
        .await
        .unwrap());
    assert!(!store
        .abandon_attempt(job.id, &a.lease, 2, false)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = now_ms();
    assert!(store
        .abandon_attempt(job.id, &a.lease, 1, false)
        .await
        .unwrap());
    let after = store.get_job(job.id).await.unwrap();
    assert_eq!(after.attempts, 0, "the abandoned attempt is not counted");
    // a change like any other, for what reads "unchanged since" (redrive)
    assert!(
        after.updated_at >= before,
        "updated_at kept the start's time"
    );
    assert!(!store
        .abandon_attempt(job.id, &a.lease, 1, false)
        .await
        .unwrap());
    assert!(matches!(
        finish(store, &a, Outcome::Succeeded).await,
        Err(StoreError::LeaseLost)
    ));
    let b = started(start(store, job.id, Some(1), SHORT).await);
    assert_eq!((b.attempt, b.job.attempts), (1, 1));
    // taken over once its lease lapsed: the old holder abandons nothing
    sleep_past(b.lease_until).await;
    let c = started(start(store, job.id, Some(1), LONG).await);
    assert_eq!(c.attempt, 2);
    assert!(!store
        .abandon_attempt(job.id, &b.lease, 1, false)
        .await
        .unwrap());
    finish(store, &c, Outcome::Succeeded).await.unwrap();
    let done = store.get_job(job.id).await.unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Succeeded, 2));
}

/// An abandoned start that had taken over a lapsed lease leaves the job
/// under a lapsed lease again: the message of the attempt taken over, which
/// goes back to the broker, takes it over again when delivered again (it
/// is not stale, and the job is not left with no message to run it).
pub async fn an_abandoned_takeover_is_taken_over_again(store: Arc<dyn Store>) {
    let store = &*store;
    let job = new_job("q");
    enqueue(store, vec![job.clone()]).await;
    let a = started(start(store, job.id, Some(1), SHORT).await);
    sleep_past(a.lease_until).await;
    // the message of attempt 1, delivered again, takes the lapsed lease over
    let b = started(start(store, job.id, Some(1), LONG).await);
    assert_eq!(b.attempt, 2);
    assert!(store
        .abandon_attempt(job.id, &b.lease, 2, true)
        .await
        .unwrap());
    let after = store.get_job(job.id).await.unwrap();
    assert_eq!(after.attempts, 1, "the abandoned attempt is not counted");
    // the same message, delivered again, takes over at once
    let c = started(start(store, job.id, Some(1), LONG).await);
    assert_eq!(c.attempt, 2);
    assert!(matches!(
        finish(store, &b, Outcome::Succeeded).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        finish(store, &a, Outcome::Succeeded).await,
        Err(StoreError::LeaseLost)
    ));
    finish(store, &c, Outcome::Succeeded).await.unwrap();
    let done = store.get_job(job.id).await.unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Succeeded, 2));
}

/// A completion after the lease expired is accepted when nobody took over.
pub async fn late_completion_without_takeover_is_accepted(store: Arc<dyn Store>) {
    let store = &*store;
    let id = enqueue(store, vec![new_job("q")]).await[0];
    let a = started(start(store, id, Some(1), SHORT).await);
    sleep_past(a.lease_until).await;
    finish(store, &a, Outcome::Succeeded).await.unwrap();
    assert_eq!(status_of(store, id).await, JobStatus::Succeeded);
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
    assert_eq!(row.payload, job.payload);
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
    assert_eq!(row.payload, job.payload);
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
