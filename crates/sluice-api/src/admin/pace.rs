//! Pacing of a replay at `rate_per_second`: a token bucket whose credit
//! follows the clock, so time spent in slow store calls is made up by the
//! next batch and the replay keeps its average rate on a busy host.

use std::time::Duration;

use tokio::time::Instant;

/// Shortest wait between batches; faster rates replay several jobs per batch.
const MIN_TICK: Duration = Duration::from_millis(10);
/// Most credit kept while the runner is held up (a store outage, a stop),
/// so a resumed replay bursts at most this much of its rate.
const MAX_BURST: Duration = Duration::from_secs(1);

/// Hands out how many jobs may be replayed now to keep `rate` per second.
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: f64,
    credit: f64,
    last: Instant,
}

impl Pacer {
    /// A pacer for `rate` jobs per second (above 0) whose first job may go
    /// at once.
    pub(crate) fn new(rate: f64) -> Self {
        Self {
            rate,
            credit: 1.0,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let burst = (self.rate * MAX_BURST.as_secs_f64()).max(1.0);
        self.credit = (self.credit + self.rate * (now - self.last).as_secs_f64()).min(burst);
        self.last = now;
    }

    /// How long until at least one job may go (zero when one may now).
    pub(crate) fn wait(&mut self) -> Duration {
        self.refill();
        if self.credit >= 1.0 - 1e-9 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.credit) / self.rate).max(MIN_TICK)
    }

    /// Takes the whole jobs the credit allows now (0 when it allows none).
    pub(crate) fn take(&mut self) -> usize {
        self.refill();
        let n = (self.credit + 1e-9).floor().max(0.0);
        self.credit -= n;
        n as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays `total` jobs, each batch costing `cost` of store time, and
    /// returns how long it took.
    async fn replay(rate: f64, total: usize, cost: Duration) -> Duration {
        let start = Instant::now();
        let mut pacer = Pacer::new(rate);
        let mut done = 0;
        while done < total {
            tokio::time::sleep(pacer.wait()).await;
            let n = pacer.take().min(total - done);
            done += n;
            if n > 0 {
                tokio::time::sleep(cost).await;
            }
        }
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_the_rate_when_store_calls_are_fast() {
        let took = replay(20.0, 81, Duration::ZERO).await;
        assert!((took.as_secs_f64() - 4.0).abs() < 0.05, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn makes_up_for_store_calls_slower_than_the_period() {
        // 90 ms per store call at 20/s (50 ms apart): batches grow instead
        // of the pace halving.
        let took = replay(20.0, 81, Duration::from_millis(90)).await;
        assert!(took.as_secs_f64() < 4.2, "{took:?}");
        assert!(took.as_secs_f64() > 3.9, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn high_rates_go_in_batches_of_several_jobs() {
        let mut pacer = Pacer::new(1000.0);
        pacer.take();
        let wait = pacer.wait();
        assert_eq!(wait, MIN_TICK);
        tokio::time::sleep(wait).await;
        assert_eq!(pacer.take(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_up_runner_bursts_at_most_one_second_of_rate() {
        let mut pacer = Pacer::new(5.0);
        pacer.take();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(pacer.take(), 5);
        assert!(pacer.wait() > Duration::ZERO);
    }
}
