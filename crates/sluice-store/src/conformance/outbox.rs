//! Cases for claiming, releasing and marking outbox rows.

use super::*;

/// Claims return due rows oldest `available_at` first, at most `limit`.
pub async fn claim_takes_oldest_first_up_to_limit(store: Arc<dyn Store>) {
    let store = &*store;
    let now = now_ms();
    let mut jobs = Vec::new();
    for age in [1000, 3000, 2000, 4000] {
        let mut j = new_job("q");
        j.available_at = now - age;
        jobs.push(j);
    }
    enqueue(store, jobs.clone()).await;
    let c = claim(store, 2, LONG).await;
    let got: Vec<JobId> = c.rows.iter().map(|r| r.job_id).collect();
    assert_eq!(got, vec![jobs[3].id, jobs[1].id]);
    let c = claim(store, 10, LONG).await;
    let got: Vec<JobId> = c.rows.iter().map(|r| r.job_id).collect();
    assert_eq!(got, vec![jobs[2].id, jobs[0].id]);
    assert!(claim(store, 10, LONG).await.rows.is_empty());
    assert!(claim(store, 0, LONG).await.rows.is_empty());
}

/// Two concurrent claims never share a row.
pub async fn concurrent_claims_are_disjoint(store: Arc<dyn Store>) {
    let jobs: Vec<NewJob> = (0..20).map(|_| new_job("q")).collect();
    enqueue(&*store, jobs).await;
    let (a, b) = tokio::join!(store.claim_outbox(20, LONG), store.claim_outbox(20, LONG));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.lease, b.lease);
    let ia: HashSet<i64> = row_ids(&a.rows).into_iter().collect();
    let ib: HashSet<i64> = row_ids(&b.rows).into_iter().collect();
    assert!(ia.is_disjoint(&ib));
    assert_eq!(ia.len() + ib.len(), 20);
}

/// Many claimers in parallel over 500 rows: each row is claimed exactly once.
pub async fn parallel_claimers_claim_each_row_once(store: Arc<dyn Store>) {
    let mut expected = HashSet::new();
    for _ in 0..5 {
        let jobs: Vec<NewJob> = (0..100).map(|_| new_job("q")).collect();
        expected.extend(enqueue(&*store, jobs).await);
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let c = store.claim_outbox(7, LONG).await.unwrap();
                if c.rows.is_empty() {
                    return got;
                }
                got.extend(c.rows.into_iter().map(|r| (r.row_id, r.job_id)));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 500, "every row claimed once");
    let rows: HashSet<i64> = all.iter().map(|(r, _)| *r).collect();
    assert_eq!(rows.len(), 500, "no row claimed twice");
    let jobs: HashSet<JobId> = all.iter().map(|(_, j)| *j).collect();
    assert_eq!(jobs, expected);
}

/// A row is not claimed before its `available_at`, and is once it passes.
pub async fn delayed_rows_wait_until_due(store: Arc<dyn Store>) {
    let store = &*store;
    let mut job = new_job("q");
    job.available_at = now_ms() + 300;
    enqueue(store, vec![job.clone()]).await;
    assert!(claim(store, 10, LONG).await.rows.is_empty());
    assert_eq!(store.next_due().await.unwrap(), Some(job.available_at));
    let c = claim_eventually(store, Duration::from_secs(3)).await;
    assert!(now_ms() >= job.available_at);
    assert_eq!(c.rows.len(), 1);
    assert_eq!(c.rows[0].job_id, job.id);
}

/// After a claim's lease expires another claim gets the row, and the first
/// lease can no longer mark or release it.
pub async fn expired_claim_is_reclaimed_and_old_lease_fenced(store: Arc<dyn Store>) {
    let store = &*store;
    let id = enqueue(store, vec![new_job("q")]).await[0];
    let first = claim(store, 10, SHORT).await;
    assert_eq!(first.rows.len(), 1);
    assert!(
        claim(store, 10, LONG).await.rows.is_empty(),
        "leased row is not claimable"
    );
    sleep_past(now_ms() + 200).await;
    let second = claim(store, 10, LONG).await;
    assert_eq!(row_ids(&second.rows), row_ids(&first.rows));
    assert_ne!(second.lease, first.lease);

    let ids = row_ids(&first.rows);
    assert_eq!(store.mark_published(&first.lease, &ids).await.unwrap(), 0);
    assert_eq!(
        store
            .release_outbox(&first.lease, &ids, now_ms())
            .await
            .unwrap(),
        0
    );
    assert_eq!(status_of(store, id).await, JobStatus::Pending);
    assert!(
        claim(store, 10, LONG).await.rows.is_empty(),
        "still held by the second lease"
    );
    assert_eq!(store.mark_published(&second.lease, &ids).await.unwrap(), 1);
    assert_eq!(status_of(store, id).await, JobStatus::Published);
}

/// Released rows are due again at the given time; a released lease is gone.
pub async fn release_makes_rows_due_again(store: Arc<dyn Store>) {
    let store = &*store;
    let id = enqueue(store, vec![new_job("q")]).await[0];
    let c = claim(store, 10, LONG).await;
    let ids = row_ids(&c.rows);
    let at = now_ms() + 200;
    assert_eq!(store.release_outbox(&c.lease, &ids, at).await.unwrap(), 1);
    assert_eq!(store.release_outbox(&c.lease, &ids, at).await.unwrap(), 0);
    assert_eq!(store.mark_published(&c.lease, &ids).await.unwrap(), 0);
    assert!(claim(store, 10, LONG).await.rows.is_empty(), "not due yet");
    assert_eq!(store.next_due().await.unwrap(), Some(at));
    let again = claim_eventually(store, Duration::from_secs(3)).await;
    assert_eq!(row_ids(&again.rows), ids);
    assert_eq!(again.rows[0].job_id, id);
    assert_eq!(status_of(store, id).await, JobStatus::Pending);
}

/// An extended claim keeps its rows past its first lease, even one that
/// lapsed if no other claim took its rows; rows another claim took, or
/// that were marked, are not extended and stay with their holder.
pub async fn extended_claims_outlive_their_lease_and_lost_rows_stay_lost(store: Arc<dyn Store>) {
    let store = &*store;
    // the rows an extension still holds, in order
    async fn extend(store: &dyn Store, lease: &LeaseToken, ids: &[i64], d: Duration) -> Vec<i64> {
        let mut kept = store.extend_claim(lease, ids, d).await.unwrap();
        kept.sort_unstable();
        kept
    }
    enqueue(store, (0..3).map(|_| new_job("q")).collect()).await;
    let c = claim(store, 10, SHORT).await;
    let mut ids = row_ids(&c.rows);
    ids.sort_unstable();
    assert_eq!(ids.len(), 3);
    assert_eq!(extend(store, &c.lease, &ids, LONG).await, ids);
    sleep_past(now_ms() + SHORT.as_millis() as i64).await;
    assert!(
        claim(store, 10, LONG).await.rows.is_empty(),
        "an extended claim's rows were taken when its first lease ran out"
    );
    assert_eq!(store.mark_published(&c.lease, &ids[..1]).await.unwrap(), 1);
    let unmarked = ids[1..].to_vec();
    assert_eq!(
        extend(store, &c.lease, &ids, SHORT).await,
        unmarked,
        "a marked row was extended"
    );
    // lapsed, untaken: still held
    sleep_past(now_ms() + SHORT.as_millis() as i64).await;
    assert_eq!(extend(store, &c.lease, &ids, SHORT).await, unmarked);
    // lapsed and taken by another claim: lost to the first
    sleep_past(now_ms() + SHORT.as_millis() as i64).await;
    let other = claim(store, 10, LONG).await;
    assert_eq!(other.rows.len(), 2);
    assert!(extend(store, &c.lease, &ids, LONG).await.is_empty());
    assert_eq!(
        extend(store, &other.lease, &row_ids(&other.rows), LONG).await,
        unmarked
    );
    assert!(extend(store, &c.lease, &[], LONG).await.is_empty());
}

/// `next_due` is the earliest `available_at` of rows no lease holds.
pub async fn next_due_ignores_leased_rows(store: Arc<dyn Store>) {
    let store = &*store;
    assert_eq!(store.next_due().await.unwrap(), None);
    let now_job = new_job("q");
    let mut later = new_job("q");
    later.available_at = now_ms() + 60_000;
    enqueue(store, vec![now_job.clone(), later.clone()]).await;
    assert_eq!(store.next_due().await.unwrap(), Some(now_job.available_at));
    let c = claim(store, 10, LONG).await;
    assert_eq!(c.rows.len(), 1);
    assert_eq!(store.next_due().await.unwrap(), Some(later.available_at));
    assert_eq!(mark_all(store, &c).await, 1);
    assert_eq!(store.next_due().await.unwrap(), Some(later.available_at));
}

/// Marking removes the rows of the lease; their pending jobs read as published.
pub async fn mark_published_sets_published(store: Arc<dyn Store>) {
    let store = &*store;
    let ids = enqueue(store, vec![new_job("q"), new_job("q"), new_job("q")]).await;
    let c = claim(store, 10, LONG).await;
    let rows = row_ids(&c.rows);
    let other = crate::LeaseToken::new();
    assert_eq!(store.mark_published(&other, &rows).await.unwrap(), 0);
    assert_eq!(store.mark_published(&c.lease, &[]).await.unwrap(), 0);
    assert_eq!(store.mark_published(&c.lease, &rows[..2]).await.unwrap(), 2);
    assert_eq!(store.mark_published(&c.lease, &rows).await.unwrap(), 1);
    for id in ids {
        let job = store.get_job(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Published);
        assert_eq!(job.attempts, 0);
    }
    assert_eq!(store.next_due().await.unwrap(), None);
}

/// A worker that started (or finished) the attempt before the relay marked
/// its row keeps its status.
pub async fn mark_published_never_overwrites_worker_progress(store: Arc<dyn Store>) {
    let store = &*store;
    let (s, d, r) = (new_job("q"), new_job("q"), new_job("q"));
    enqueue(store, vec![s.clone(), d.clone(), r.clone()]).await;
    let c = claim(store, 10, LONG).await;
    assert_eq!(c.rows.len(), 3);
    // Fast workers start and finish before the relay marks.
    let a = started(start(store, s.id, Some(1), LONG).await);
    finish(store, &a, Outcome::Succeeded).await.unwrap();
    let a = started(start(store, d.id, Some(1), LONG).await);
    finish(
        store,
        &a,
        Outcome::Dead {
            error: "bad".into(),
        },
    )
    .await
    .unwrap();
    let a = started(start(store, r.id, Some(1), LONG).await);
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

    assert_eq!(mark_all(store, &c).await, 3);
    assert_eq!(status_of(store, s.id).await, JobStatus::Succeeded);
    assert_eq!(status_of(store, d.id).await, JobStatus::Dead);
    assert_eq!(status_of(store, r.id).await, JobStatus::Retrying);

    // The retry's own row (attempt 2) does move it to published; the dead
    // letter's row does not touch its job.
    let c = claim(store, 10, LONG).await;
    let mut got: Vec<(JobId, u32, crate::OutboxKind)> = c
        .rows
        .iter()
        .map(|r| (r.job_id, r.attempt, r.kind.clone()))
        .collect();
    got.sort_by_key(|g| g.2 != crate::OutboxKind::Job);
    assert_eq!(
        got,
        vec![
            (r.id, 2, crate::OutboxKind::Job),
            (
                d.id,
                1,
                crate::OutboxKind::DeadLetter {
                    error: "bad".into()
                }
            ),
        ]
    );
    assert_eq!(mark_all(store, &c).await, 2);
    assert_eq!(status_of(store, r.id).await, JobStatus::Published);
    assert_eq!(status_of(store, d.id).await, JobStatus::Dead);
}

/// Job rows the broker refused for good are removed and their jobs dead,
/// with a dead letter and its row, unless a worker already started the
/// attempt; another lease's refusal, and a dead letter's row, change nothing.
pub async fn refused_rows_are_dead_lettered(store: Arc<dyn Store>) {
    let store = &*store;
    let (a, b, c) = (new_job("q"), new_job("q"), new_job("q"));
    enqueue(store, vec![a.clone(), b.clone(), c.clone()]).await;
    let claimed = claim(store, 10, LONG).await;
    let row = |id: JobId| claimed.rows.iter().find(|r| r.job_id == id).unwrap().row_id;
    let refused = |id: JobId| (row(id), "message too large".to_string());
    let other = crate::LeaseToken::new();
    let none = store.dead_letter_refused(&other, &[refused(a.id)]).await;
    assert_eq!(none.unwrap(), Vec::<JobId>::new());
    assert_eq!(status_of(store, a.id).await, JobStatus::Pending);
    // a worker took b from an earlier copy of its message
    let running = started(start(store, b.id, Some(1), LONG).await);
    let dead = store
        .dead_letter_refused(&claimed.lease, &[refused(a.id), refused(b.id)])
        .await
        .unwrap();
    assert_eq!(dead, vec![a.id]);
    let job = store.get_job(a.id).await.unwrap();
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.last_error.as_deref(), Some("message too large"));
    assert_eq!(job.attempts, 0);
    let letter = store.get_dead_letter(a.id).await.unwrap().dead_letter;
    assert_eq!(letter.last_error, "message too large");
    assert_eq!(letter.attempts, 0);
    // b runs on; its row is gone all the same, c's is still claimed
    assert_eq!(status_of(store, b.id).await, JobStatus::Published);
    finish(store, &running, Outcome::Succeeded).await.unwrap();
    assert_eq!(status_of(store, b.id).await, JobStatus::Succeeded);
    assert_eq!(
        store
            .mark_published(&claimed.lease, &[row(b.id)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(mark_all(store, &claimed).await, 1);
    // the dead letter's row, for the dead-letter topic; refusing it again
    // leaves it for the relay to settle
    let letters = claim(store, 10, LONG).await;
    let got: Vec<_> = letters
        .rows
        .iter()
        .map(|r| (r.job_id, r.kind.clone()))
        .collect();
    assert_eq!(
        got,
        vec![(
            a.id,
            crate::OutboxKind::DeadLetter {
                error: "message too large".into()
            }
        )]
    );
    let again = [(letters.rows[0].row_id, "too large".to_string())];
    let none = store.dead_letter_refused(&letters.lease, &again).await;
    assert_eq!(none.unwrap(), Vec::<JobId>::new());
    assert_eq!(mark_all(store, &letters).await, 1);
    assert_eq!(status_of(store, a.id).await, JobStatus::Dead);
    assert_eq!(status_of(store, c.id).await, JobStatus::Published);
}

/// Redrive gives new rows only to jobs published and unchanged since before
/// the cutoff that no worker started since and that have no row, in the
/// asked queue; their attempt is the one that was lost, and a redriven job
/// is redriven once.
pub async fn redrive_republishes_only_lost_jobs(store: Arc<dyn Store>) {
    let store = &*store;
    let (a, b, c, o) = (new_job("q"), new_job("q"), new_job("q"), new_job("other"));
    let before_enqueue = now_ms() - 1;
    enqueue(store, vec![a.clone(), b.clone(), c.clone(), o.clone()]).await;
    let cl = claim(store, 10, LONG).await;
    store
        .mark_published(&cl.lease, &row_ids(&cl.rows))
        .await
        .unwrap();
    // b is running; c failed once and its retry was published too
    started(start(store, b.id, Some(1), LONG).await);
    let attempt = started(start(store, c.id, Some(1), LONG).await);
    let retry = Outcome::Retry {
        available_at: now_ms(),
        error: "flaky".into(),
    };
    finish(store, &attempt, retry).await.unwrap();
    let cl = claim(store, 10, LONG).await;
    store
        .mark_published(&cl.lease, &row_ids(&cl.rows))
        .await
        .unwrap();
    // d still waits for the relay
    let d = new_job("q");
    enqueue(store, vec![d.clone()]).await;

    let none = store.lost_jobs("q", before_enqueue, 10).await;
    assert_eq!(
        none.unwrap(),
        Vec::<LostJob>::new(),
        "changed after the cutoff"
    );
    assert!(store
        .lost_jobs("q", now_ms() + 1, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(store.redrive_published("q", &[]).await.unwrap().is_empty());
    let cutoff = now_ms() + 1;
    let lost = store.lost_jobs("q", cutoff, 10).await.unwrap();
    let listed: Vec<JobId> = lost.iter().map(|l| l.id).collect();
    assert_eq!(listed, vec![a.id, c.id]);
    assert!(
        store
            .redrive_published("other", &lost)
            .await
            .unwrap()
            .is_empty(),
        "another queue's jobs"
    );
    let redriven = store.redrive_published("q", &lost).await.unwrap();
    assert_eq!(redriven, vec![a.id, c.id]);
    assert_eq!(status_of(store, a.id).await, JobStatus::Pending);
    assert_eq!(status_of(store, b.id).await, JobStatus::Published);
    assert_eq!(status_of(store, c.id).await, JobStatus::Retrying);
    assert_eq!(status_of(store, o.id).await, JobStatus::Published);
    let again = store.redrive_published("q", &lost).await.unwrap();
    assert!(again.is_empty(), "a redriven job has its row");
    let lost_again = store.lost_jobs("q", now_ms() + 1, 10).await.unwrap();
    assert!(lost_again.is_empty(), "a redriven job has its row");

    let cl = claim(store, 10, LONG).await;
    let mut rows: Vec<(JobId, u32)> = cl.rows.iter().map(|r| (r.job_id, r.attempt)).collect();
    rows.sort();
    let mut want = vec![(a.id, 1), (c.id, 2), (d.id, 1)];
    want.sort();
    assert_eq!(rows, want);
    store
        .mark_published(&cl.lease, &row_ids(&cl.rows))
        .await
        .unwrap();
    assert_eq!(status_of(store, a.id).await, JobStatus::Published);
    started(start(store, a.id, Some(1), LONG).await);
    started(start(store, c.id, Some(2), LONG).await);
}

/// A job listed as lost that changed before the redrive is left alone,
/// even when it looks lost again: here a worker ran it (its message was not
/// lost after all), it failed, and its retry was published.
pub async fn redrive_skips_jobs_changed_since_listed(store: Arc<dyn Store>) {
    let store = &*store;
    let (x, y) = (new_job("q"), new_job("q"));
    enqueue(store, vec![x.clone(), y.clone()]).await;
    let cl = claim(store, 10, LONG).await;
    store
        .mark_published(&cl.lease, &row_ids(&cl.rows))
        .await
        .unwrap();
    let lost = store.lost_jobs("q", now_ms() + 1, 10).await.unwrap();
    assert_eq!(lost.len(), 2);
    // updated_at is in milliseconds: let the change land in a later one
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let a = started(start(store, x.id, Some(1), LONG).await);
    let retry = Outcome::Retry {
        available_at: now_ms(),
        error: "flaky".into(),
    };
    finish(store, &a, retry).await.unwrap();
    let cl = claim(store, 10, LONG).await;
    store
        .mark_published(&cl.lease, &row_ids(&cl.rows))
        .await
        .unwrap();
    let again = store.lost_jobs("q", now_ms() + 1, 10).await.unwrap();
    assert_eq!(again.len(), 2, "x looks lost again");
    let redriven = store.redrive_published("q", &lost).await.unwrap();
    assert_eq!(redriven, vec![y.id]);
    assert_eq!(status_of(store, x.id).await, JobStatus::Published);
    let cl = claim(store, 10, LONG).await;
    let rows: Vec<(JobId, u32)> = cl.rows.iter().map(|r| (r.job_id, r.attempt)).collect();
    assert_eq!(rows, vec![(y.id, 1)]);
}
