//! The store conformance suite: every backend runs these cases unchanged.
//!
//! In a backend's test file (the crate needs `tokio` as a dependency):
//!
//! ```text
//! sluice_store::store_conformance!(async {
//!     // a fresh, empty store: an `Arc<dyn Store>`, or a pair
//!     // `(Arc<dyn Store>, guard)` whose guard lives as long as the case;
//!     // either wrapped in an `Option`, whose `None` skips the case
//! });
//! ```
//!
//! This expands to one `#[tokio::test]` per case, named after the case
//! function below, each bounded by [`CASE_TIMEOUT`].

mod admin;
mod attempts;
mod circuit;
mod dead_letters;
mod ingest;
mod outbox;
mod replay;
mod replay_runs;
mod retention;
mod scaling;
mod starts;
mod takeovers;

pub use admin::*;
pub use attempts::*;
pub use circuit::*;
pub use dead_letters::*;
pub use ingest::*;
pub use outbox::*;
pub use replay::*;
pub use replay_runs::*;
pub use retention::*;
pub use scaling::*;
pub use starts::*;
pub use takeovers::*;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_core::{now_ms, EpochMs, JobId, JobStatus};

use crate::{
    ActiveAttempt, Completion, EnqueueRequest, Enqueued, Idempotency, LeaseToken, LostJob, NewJob,
    OutboxClaim, OutboxKind, OutboxRow, Outcome, StartOutcome, StartRequest, Store, StoreError,
};

/// The longest any one case may run.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);
/// A lease meant to expire during a case.
pub(crate) const SHORT: Duration = Duration::from_millis(200);
/// A lease meant to outlive a case.
pub(crate) const LONG: Duration = Duration::from_secs(60);

/// What a backend's fixture expression yields: the store, and optionally a
/// guard (a temporary directory, a dropped-on-exit database) kept alive
/// until the case ends.
pub trait Fixture: Send {
    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;

    /// The store under test, or `None` when the fixture skips the case (its
    /// backend is not available here); the case then passes without running.
    fn try_store(&self) -> Option<Arc<dyn Store>> {
        Some(self.store())
    }
}

/// `None` skips the case (the fixture says why, e.g. an unset
/// `SLUICE_TEST_POSTGRES_URL`).
impl<F: Fixture> Fixture for Option<F> {
    fn store(&self) -> Arc<dyn Store> {
        self.as_ref()
            .expect("the fixture skipped this case: no store")
            .store()
    }

    fn try_store(&self) -> Option<Arc<dyn Store>> {
        self.as_ref().and_then(Fixture::try_store)
    }
}

impl Fixture for Arc<dyn Store> {
    fn store(&self) -> Arc<dyn Store> {
        self.clone()
    }
}

impl<G: Send> Fixture for (Arc<dyn Store>, G) {
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
}

/// Expands to one `#[tokio::test]` per conformance case; the argument is an
/// expression (typically an `async` block) awaited once per case to get a
/// fresh, empty [`Fixture`]. `store_conformance!(@outbox (make))` expands to
/// the relay's cases alone.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@outbox ($make));
        $crate::store_conformance!(@cases ($make)
            enqueue_get_round_trip,
            enqueue_request_is_all_or_nothing,
            idempotency_same_fingerprint_replays,
            idempotency_conflict_fails_alone,
            start_fresh_then_duplicate_is_busy,
            a_start_asked_again_under_its_lease_resumes_its_attempt,
            a_batch_of_starts_answers_each_in_order,
            start_stale_and_final_attempts,
            start_takes_over_expired_attempt,
            a_takeover_that_died_too_is_taken_over_again,
            an_abandoned_attempt_starts_again_as_the_same_attempt,
            an_abandoned_takeover_is_taken_over_again,
            late_completion_without_takeover_is_accepted,
            start_missing_and_create_for_direct_producers,
            finish_success,
            finish_retry_requeues_next_attempt,
            finish_dead,
            dead_letter_is_published_through_the_outbox,
            publishing_a_dead_letter_never_changes_its_job,
            retries_and_successes_publish_no_dead_letter,
            dead_letters_of_a_batch_keep_their_errors,
            replay_and_delete_with_a_pending_dead_letter_row,
            finish_is_fenced_per_completion,
            attempts_count_through_retries,
            queue_stats_counts,
            queue_scaling_figures,
            published_jobs_wait_since_due,
            outbox_notify_fires,
            ping_and_backend,
            admin_pause_resume_round_trip,
            dead_letters_list_in_order_and_page_stably,
            dead_letters_filters_and_count,
            dead_letter_detail_has_full_history,
            delete_dead_letter_removes_job,
            replay_returns_job_to_outbox,
            replay_limit_and_history_across_runs,
            create_replay_is_idempotent,
            a_running_replays_key_outlives_pruning,
            replay_snapshot_ranges_and_progress,
            replay_snapshot_entries_are_taken_once,
            concurrent_snapshot_calls_replay_each_entry_once,
            stale_replays_are_running_and_old,
            audit_newest_first,
            circuit_open_probe_close,
            circuit_probe_claims_are_exclusive_and_lapse,
            concurrency_reports_sum_replace_and_lapse,
            prune_deletes_old_successes_only,
            prune_takes_oldest_first_up_to_limit,
            concurrent_pruners_delete_each_job_once,
            prune_idempotency_keys_by_age,
        );
    };
    // The relay's cases alone, for a backend with more than one way to claim.
    (@outbox ($make:expr)) => {
        $crate::store_conformance!(@cases ($make)
            claim_takes_oldest_first_up_to_limit,
            concurrent_claims_are_disjoint,
            parallel_claimers_claim_each_row_once,
            delayed_rows_wait_until_due,
            expired_claim_is_reclaimed_and_old_lease_fenced,
            release_makes_rows_due_again,
            next_due_ignores_leased_rows,
            extended_claims_outlive_their_lease_and_lost_rows_stay_lost,
            mark_published_sets_published,
            mark_published_never_overwrites_worker_progress,
            refused_rows_are_dead_lettered,
            redrive_republishes_only_lost_jobs,
            redrive_skips_jobs_changed_since_listed,
        );
    };
    (@cases ($make:expr) $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $make.await;
                let Some(store) = $crate::conformance::Fixture::try_store(&fixture) else {
                    return;
                };
                ::tokio::time::timeout($crate::conformance::CASE_TIMEOUT, $crate::conformance::$case(store))
                    .await
                    .expect(concat!(stringify!($case), " timed out"));
                drop(fixture);
            }
        )*
    };
}

// ---------------------------------------------------------------- helpers

/// A job due now in `queue`.
pub fn new_job(queue: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        queue: queue.into(),
        payload: json!({"n": 1}),
        key: None,
        headers: BTreeMap::new(),
        max_attempts: 5,
        available_at: now_ms(),
        traceparent: None,
    }
}

pub(crate) fn plain(jobs: Vec<NewJob>) -> EnqueueRequest {
    EnqueueRequest {
        jobs,
        idempotency: None,
    }
}

pub(crate) fn keyed(
    jobs: Vec<NewJob>,
    scope: &str,
    key: &str,
    fingerprint: &str,
) -> EnqueueRequest {
    EnqueueRequest {
        jobs,
        idempotency: Some(Idempotency {
            scope: scope.into(),
            key: key.into(),
            fingerprint: fingerprint.into(),
        }),
    }
}

/// Enqueues `jobs` as one request that must succeed; returns their ids.
pub(crate) async fn enqueue(store: &dyn Store, jobs: Vec<NewJob>) -> Vec<JobId> {
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    let mut res = store.enqueue(vec![plain(jobs)]).await;
    assert_eq!(res.len(), 1);
    let got = res.pop().unwrap().expect("enqueue succeeds");
    assert_eq!(
        got,
        Enqueued {
            ids: ids.clone(),
            replayed: false
        }
    );
    ids
}

pub(crate) async fn claim(store: &dyn Store, limit: usize, lease: Duration) -> OutboxClaim {
    store
        .claim_outbox(limit, lease)
        .await
        .expect("claim succeeds")
}

/// Marks every row of `c` published; returns how many the lease still held.
pub(crate) async fn mark_all(store: &dyn Store, c: &OutboxClaim) -> usize {
    store
        .mark_published(&c.lease, &row_ids(&c.rows))
        .await
        .expect("mark succeeds")
}

pub(crate) fn row_ids(rows: &[OutboxRow]) -> Vec<i64> {
    rows.iter().map(|r| r.row_id).collect()
}

/// Replays `ids` as one replay request does: a snapshot of them, replayed
/// in one call; each entry's outcome in order.
pub(crate) async fn replay(
    store: &dyn Store,
    ids: &[JobId],
    max_replays: u32,
) -> Result<Vec<Result<(), crate::ReplaySkip>>, StoreError> {
    let request = crate::NewReplay {
        id: uuid::Uuid::new_v4(),
        request: json!({"ids": ids.len()}),
        ids: ids.to_vec(),
        rate_per_second: None,
        max_replays,
        idempotency: None,
        actor: "conformance".into(),
    };
    let (rec, _) = store.create_replay(request).await?;
    let entries = store
        .replay_from_snapshot(rec.id, 0, ids.len(), max_replays)
        .await?;
    Ok(entries.into_iter().map(|(_, r)| r).collect())
}

pub(crate) async fn status_of(store: &dyn Store, id: JobId) -> JobStatus {
    store.get_job(id).await.expect("job exists").status
}

pub(crate) async fn start(
    store: &dyn Store,
    id: JobId,
    attempt: Option<u32>,
    lease: Duration,
) -> StartOutcome {
    let mut res = store
        .start_attempts(
            vec![StartRequest {
                job_id: id,
                attempt,
                create: None,
                lease: None,
            }],
            lease,
        )
        .await;
    assert_eq!(res.len(), 1);
    res.pop().unwrap().expect("start_attempts succeeds")
}

/// Starts attempt 1 of each of `ids` in one batch; the answers in order.
pub(crate) async fn start_all(
    store: &dyn Store,
    ids: &[JobId],
) -> Vec<Result<StartOutcome, StoreError>> {
    let requests = ids
        .iter()
        .map(|&job_id| StartRequest {
            job_id,
            attempt: Some(1),
            create: None,
            lease: None,
        })
        .collect();
    store.start_attempts(requests, LONG).await
}

pub(crate) fn started(outcome: StartOutcome) -> ActiveAttempt {
    match outcome {
        StartOutcome::Started(a) => a,
        other => panic!("expected Started, got {other:?}"),
    }
}

pub(crate) fn completion(a: &ActiveAttempt, outcome: Outcome) -> Completion {
    Completion {
        job_id: a.job.id,
        lease: a.lease.clone(),
        attempt: a.attempt,
        started_at: a.job.updated_at,
        outcome,
    }
}

pub(crate) async fn finish(
    store: &dyn Store,
    a: &ActiveAttempt,
    outcome: Outcome,
) -> Result<(), StoreError> {
    let mut res = store.finish_attempts(vec![completion(a, outcome)]).await;
    assert_eq!(res.len(), 1);
    res.pop().unwrap()
}

/// Claims every due row; marks those `mine` picks published (asserting the
/// lease still holds them all), gives the others back, and returns them.
pub(crate) async fn publish_only(
    store: &dyn Store,
    mine: impl Fn(&OutboxRow) -> bool,
) -> Vec<OutboxRow> {
    let c = claim(store, 10_000, LONG).await;
    let (mine, others): (Vec<OutboxRow>, Vec<OutboxRow>) =
        c.rows.iter().cloned().partition(|r| mine(r));
    store
        .release_outbox(&c.lease, &row_ids(&others), now_ms())
        .await
        .unwrap();
    assert_eq!(
        store
            .mark_published(&c.lease, &row_ids(&mine))
            .await
            .unwrap(),
        mine.len()
    );
    mine
}

/// Claims every due row, which must include one job row for `id`; marks
/// that one published, gives the others back, and starts the row's attempt.
pub(crate) async fn deliver(store: &dyn Store, id: JobId, lease: Duration) -> ActiveAttempt {
    let mine = publish_only(store, |r| r.job_id == id && r.kind == OutboxKind::Job).await;
    assert_eq!(mine.len(), 1, "one due job row for {id}");
    started(start(store, id, Some(mine[0].attempt), lease).await)
}

/// The payload a claimed row publishes, parsed.
pub(crate) fn payload(row: &OutboxRow) -> serde_json::Value {
    serde_json::from_str(row.payload.get()).expect("a claimed row's payload is JSON")
}

/// Claims every due row, which must include exactly one dead-letter row for
/// `id`; marks that one published (as the relay does once it is on the
/// dead-letter topic), gives the others back, and returns it.
pub(crate) async fn publish_dead_letter(store: &dyn Store, id: JobId) -> OutboxRow {
    let mut mine = publish_only(store, |r| {
        r.job_id == id && matches!(r.kind, OutboxKind::DeadLetter { .. })
    })
    .await;
    assert_eq!(mine.len(), 1, "one due dead-letter row for {id}: {mine:?}");
    mine.remove(0)
}

/// Sleeps until the clock is past `at` (bounded by the case timeout).
pub(crate) async fn sleep_past(at: EpochMs) {
    let wait = (at - now_ms()).max(0) + 30;
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
}

/// Claims until a row comes back or `within` passes.
pub(crate) async fn claim_eventually(store: &dyn Store, within: Duration) -> OutboxClaim {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let c = claim(store, 100, LONG).await;
        if !c.rows.is_empty() || tokio::time::Instant::now() >= deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
