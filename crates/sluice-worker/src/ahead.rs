//! Starting attempts ahead of free slots. A job's attempt starts in the store
//! (one round trip, which also takes its lease) before its handler runs; a
//! pool that started jobs only for free slots would leave fast handlers idle
//! for every round trip. So while handlers are fast, a pool starts up to one
//! more limit's worth of jobs, which wait in order for the next free slots.

use std::time::Duration;

/// How many jobs may be started beyond the free slots: `limit` while the
/// recent handler latency is known and at most `budget`, else none. A job
/// started ahead waits for one of `limit` running handlers to finish, about
/// one handler latency, so `budget` (a fraction of the lease margin) keeps
/// that wait well inside its lease.
pub(crate) fn start_ahead(limit: usize, recent: Option<Duration>, budget: Duration) -> usize {
    match recent {
        Some(latency) if latency <= budget => limit,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_millis(250);

    #[test]
    fn none_before_any_latency_is_known() {
        assert_eq!(start_ahead(16, None, BUDGET), 0);
    }

    #[test]
    fn one_limit_ahead_while_handlers_are_fast() {
        assert_eq!(start_ahead(16, Some(Duration::from_millis(3)), BUDGET), 16);
        assert_eq!(start_ahead(4, Some(BUDGET), BUDGET), 4);
    }

    #[test]
    fn none_while_handlers_are_slow() {
        assert_eq!(start_ahead(16, Some(Duration::from_millis(251)), BUDGET), 0);
    }
}
