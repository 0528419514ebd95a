//! Cases for attempts whose lease ran out or that were abandoned: another
//! start takes them over, and a late completion without a takeover counts.

use super::*;

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
