//! Conformance cases of `Store::queue_scaling`.

use std::sync::Arc;

use sluice_core::now_ms;

use super::{claim, enqueue, finish, mark_all, new_job, row_ids, start, started, LONG};
use crate::{Outcome, QueueScaling, Store};

fn names(queues: &[&str]) -> Vec<String> {
    queues.iter().map(|q| q.to_string()).collect()
}

/// Exact figures per queue: counts by state, backlog, the longest wait and
/// the relay's lag, at a given `now` (in-flight leases and retry backoffs
/// run out as `now` moves on); queues come back in the order asked for.
pub async fn queue_scaling_figures(store: Arc<dyn Store>) {
    let store = &*store;
    let queues = names(&["a", "b", "none"]);
    let got = store.queue_scaling(&queues, now_ms()).await.unwrap();
    let empty: Vec<QueueScaling> = queues.iter().map(|q| QueueScaling::empty(q)).collect();
    assert_eq!(got, empty);

    // Queue b: five jobs published; one left waiting, one running, one
    // retrying in a minute, one retrying now and one dead.
    let b: Vec<_> = (0..5).map(|_| new_job("b")).collect();
    enqueue(store, b.clone()).await;
    let c = claim(store, 10, LONG).await;
    assert_eq!(c.rows.len(), 5);
    let marked = store.mark_published(&c.lease, &row_ids(&c.rows)).await;
    assert_eq!(marked.unwrap(), 5);
    let t0 = now_ms();
    let running = started(start(store, b[1].id, Some(1), LONG).await);
    for (job, outcome) in [
        (&b[2], retry(t0 + 60_000)),
        (&b[3], retry(t0)),
        (&b[4], Outcome::Dead { error: "x".into() }),
    ] {
        let a = started(start(store, job.id, Some(1), LONG).await);
        finish(store, &a, outcome).await.unwrap();
    }
    let waiting_since = store.get_job(b[0].id).await.unwrap().updated_at;
    assert!(waiting_since <= t0);
    // Queue a: one job due since ten seconds ago, one delayed by an hour.
    let mut due = new_job("a");
    due.available_at = t0 - 10_000;
    let mut later = new_job("a");
    later.available_at = t0 + 3_600_000;
    enqueue(store, vec![due, later]).await;

    let a_figures = QueueScaling {
        queue: "a".into(),
        pending: 2,
        backlog: 1,
        oldest_backlog_since: Some(t0 - 10_000),
        oldest_outbox_due: Some(t0 - 10_000),
        ..QueueScaling::default()
    };
    let b_now = QueueScaling {
        queue: "b".into(),
        pending: 0,
        published: 1,
        in_flight: 1,
        retrying: 2,
        dead: 1,
        // b[0] published, b[3]'s retry row due.
        backlog: 2,
        oldest_backlog_since: Some(waiting_since),
        // b[3]'s retry row; b[4]'s dead-letter row is due since later.
        oldest_outbox_due: Some(t0),
    };
    let got = store.queue_scaling(&queues, now_ms()).await.unwrap();
    assert_eq!(
        got,
        vec![
            a_figures.clone(),
            b_now.clone(),
            QueueScaling::empty("none")
        ]
    );

    // Once the running attempt's lease has run out, it waits again (since
    // its lease ended), and the later retry is due as well.
    let later_now = running.lease_until + 1;
    assert!(later_now > t0 + 60_000);
    let b_later = QueueScaling {
        published: 2,
        in_flight: 0,
        backlog: 4,
        ..b_now
    };
    let asked = names(&["none", "b", "a"]);
    let got = store.queue_scaling(&asked, later_now).await.unwrap();
    assert_eq!(got, vec![QueueScaling::empty("none"), b_later, a_figures]);
    assert!(store
        .queue_scaling(&[], later_now)
        .await
        .unwrap()
        .is_empty());
}

fn retry(available_at: i64) -> Outcome {
    Outcome::Retry {
        available_at,
        error: "x".into(),
    }
}

/// A published job has waited since it was due, not since it was enqueued
/// or failed: a delayed job, or a retry after its backoff, is neither old
/// for autoscaling nor out long enough for redrive the moment it is
/// published.
pub async fn published_jobs_wait_since_due(store: Arc<dyn Store>) {
    let store = &*store;
    let queues = names(&["d"]);
    let mut delayed = new_job("d");
    let due = now_ms() + 300;
    delayed.available_at = due;
    let retried = new_job("d");
    enqueue(store, vec![delayed.clone(), retried.clone()]).await;
    let c = claim(store, 10, LONG).await;
    assert_eq!(c.rows.len(), 1, "only the job due now");
    assert_eq!(mark_all(store, &c).await, 1);
    let a = started(start(store, retried.id, Some(1), LONG).await);
    finish(store, &a, retry(due)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let c = claim(store, 10, LONG).await;
    assert_eq!(c.rows.len(), 2, "both due by now");
    assert_eq!(mark_all(store, &c).await, 2);
    let got = store.queue_scaling(&queues, now_ms()).await.unwrap();
    assert_eq!(got[0].published, 2);
    let since = got[0].oldest_backlog_since.expect("published jobs wait");
    assert!(since >= due, "waiting since {since}, before due at {due}");
    let lost = store.lost_jobs("d", due, 10).await.unwrap();
    assert!(
        lost.is_empty(),
        "out on the broker only since {due}: {lost:?}"
    );
    assert_eq!(
        store.lost_jobs("d", now_ms() + 1, 10).await.unwrap().len(),
        2
    );
}
