//! Starting attempts ahead of free slots. A job's attempt starts in the store
//! (one round trip, which also takes its lease) before its handler runs; a
//! pool that started jobs only for free slots would leave fast handlers idle
//! for every round trip, and a store round trip costs much the same for one
//! job as for hundreds. So while handlers are fast, a pool starts more jobs
//! than it has slots, which wait in order for the next free slots. The
//! pool's prefetch window bounds them, with the jobs running and those
//! whose outcomes are being written.

use std::time::Duration;

/// Deliveries a pool holds per concurrency slot where a group's subscribers
/// share a queue (its prefetch window is `concurrency.max` × this): each
/// delivery waits on two store round trips (start, outcome) besides its
/// handler, so a window of only one per slot would idle fast handlers. Jobs
/// started ahead stay bounded apart (see [`ahead_cap`]); the rest of the
/// window is messages not yet started, which the broker hands to another
/// consumer at once if this one goes away, but which wait for this one's
/// slots while it lives (and do not count in the queue's ready messages).
/// A RabbitMQ no-op worker of 64 slots on PostgreSQL went from 0.69–0.73 to
/// 0.86–0.87 of a raw consumer with the same prefetch, with 8 instead of
/// Celery's 4 (`scripts/bench amqp`, 2026-12-08).
pub const PREFETCH_PER_SLOT: usize = 8;

/// [`PREFETCH_PER_SLOT`] on a broker whose partitions each have one
/// consumer in a group (Kafka), where a deeper window keeps nothing from
/// other workers: it lets fast handlers' jobs start in larger batches,
/// which cost the store less per job, and keeps more of them between the
/// store's round trips. A Kafka no-op worker of 64 slots on PostgreSQL went
/// from 0.62 to 0.64–0.70 of a raw consumer's rate with 16 instead of 8,
/// and to 0.70–0.74 with 32 (`scripts/bench kafka`, 2026-12-08); 16 takes
/// most of that gain for half the memory (the window holds whole messages).
pub const PREFETCH_PER_SLOT_OWNED: usize = 16;

/// The prefetch window of a pool of `concurrency` slots: most deliveries
/// it holds un-acked, started or not (see [`sluice_broker::Broker::owned_partitions`]).
pub fn prefetch_window(concurrency: usize, owned_partitions: bool) -> usize {
    let per_slot = match owned_partitions {
        true => PREFETCH_PER_SLOT_OWNED,
        false => PREFETCH_PER_SLOT,
    };
    concurrency.max(1).saturating_mul(per_slot)
}

/// The most jobs a pool of `limit` slots and a window of `window`
/// deliveries may start ahead. With owned partitions (Kafka), what the
/// window holds beside the running jobs. Where a group's subscribers share
/// a queue, one limit: jobs started ahead are leased to this pool, kept
/// from workers that may be idle (and there a deeper start measured slower:
/// RabbitMQ's no-op worker fell from 20,000 to 15,000 jobs/s).
pub(crate) fn ahead_cap(limit: usize, window: usize, owned_partitions: bool) -> usize {
    match owned_partitions {
        true => window.saturating_sub(limit),
        false => limit,
    }
}

/// How many jobs may be started beyond the free slots, while the recent
/// handler latency is known and at most `budget`: as many as `limit`
/// handlers are expected to get through within `budget`, in whole rounds of
/// `limit` (at least one), and at most `cap`; otherwise none. The last job
/// started ahead then waits about `budget` for its slot, and `budget` (a
/// fraction of the lease margin) keeps that wait well inside its lease; a
/// job that waited too long all the same is handed back unrun.
pub(crate) fn start_ahead(
    limit: usize,
    recent: Option<Duration>,
    budget: Duration,
    cap: usize,
) -> usize {
    match recent {
        Some(latency) if latency <= budget => {
            let rounds = budget
                .as_nanos()
                .checked_div(latency.as_nanos())
                .unwrap_or(u128::MAX);
            let rounds = usize::try_from(rounds).unwrap_or(usize::MAX);
            limit.saturating_mul(rounds).min(cap)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_millis(250);
    const CAP: usize = 100_000;

    #[test]
    fn none_before_any_latency_is_known() {
        assert_eq!(start_ahead(16, None, BUDGET, CAP), 0);
    }

    #[test]
    fn as_many_rounds_of_the_limit_as_fit_the_budget() {
        // 250 ms / 100 ms: two whole rounds
        assert_eq!(
            start_ahead(16, Some(Duration::from_millis(100)), BUDGET, CAP),
            32
        );
        assert_eq!(start_ahead(4, Some(BUDGET), BUDGET, CAP), 4);
        assert_eq!(
            start_ahead(16, Some(Duration::from_millis(3)), BUDGET, CAP),
            16 * 83
        );
    }

    #[test]
    fn fast_handlers_are_started_ahead_up_to_the_cap() {
        assert_eq!(
            start_ahead(16, Some(Duration::from_micros(2)), BUDGET, 48),
            48
        );
        assert_eq!(start_ahead(16, Some(Duration::ZERO), BUDGET, 48), 48);
        assert_eq!(start_ahead(16, Some(Duration::ZERO), BUDGET, 0), 0);
    }

    #[test]
    fn the_window_is_deeper_where_a_partition_has_one_consumer() {
        assert_eq!(prefetch_window(16, false), 16 * PREFETCH_PER_SLOT);
        assert_eq!(prefetch_window(16, true), 16 * PREFETCH_PER_SLOT_OWNED);
        assert_eq!(prefetch_window(0, false), PREFETCH_PER_SLOT);
    }

    #[test]
    fn a_shared_queue_starts_one_limit_ahead_at_most() {
        let owned = prefetch_window(16, true);
        assert_eq!(ahead_cap(16, owned, true), owned - 16);
        assert_eq!(ahead_cap(16, prefetch_window(16, false), false), 16);
        let cap = ahead_cap(16, prefetch_window(16, false), false);
        assert_eq!(start_ahead(16, Some(Duration::ZERO), BUDGET, cap), 16);
    }

    #[test]
    fn none_while_handlers_are_slow() {
        assert_eq!(
            start_ahead(16, Some(Duration::from_millis(251)), BUDGET, CAP),
            0
        );
    }
}
