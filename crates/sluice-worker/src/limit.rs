//! Adaptive concurrency of one queue's pool, between `concurrency.min` and
//! `concurrency.max`: AIMD steered by errors and by a latency gradient.
//!
//! Finished attempts are grouped in windows of about `limit` samples. At the
//! end of a window:
//! - more than [`ERROR_RATIO`] of its attempts met an overload signal (a
//!   timeout, 429 or 503; other failures are the breaker's and the retry
//!   policy's business): the limit is cut to [`ERROR_BACKOFF`] of itself;
//! - else its mean latency against the long-term latency gives the gradient
//!   `TOLERANCE × long / mean`, clamped to `[0.5, 1]`; below 1 (the
//!   downstream slowed by more than the tolerance) the limit is multiplied
//!   by it;
//! - else, when the window used every slot, the limit grows: doubling until
//!   the first cut (slow start), by one slot after.
//!
//! The long-term latency is the latency at low load: it follows a faster
//! downstream at once, and a slower one only while the limit sits at `min`
//! (the pool cannot unload the downstream further, so the slowness is the
//! downstream's own). So load-made latency keeps the limit down, while a
//! downstream that stays slow for its own reasons is used fully again.
//! With `min == max` the limit is fixed.

use std::time::{Duration, Instant};

use sluice_core::Concurrency;

/// Overload signals in a window beyond this ratio cut the limit.
pub(crate) const ERROR_RATIO: f64 = 0.1;
/// The factor of a cut for errors.
pub(crate) const ERROR_BACKOFF: f64 = 0.75;
/// How much slower than the long-term latency a window may be before the
/// limit backs off.
pub(crate) const TOLERANCE: f64 = 2.0;
/// Latencies are compared from this floor up: below it, doubling is
/// scheduling noise of a busy host, not a downstream slowing down.
const LATENCY_FLOOR: f64 = 0.010;
/// How far the long-term latency moves towards a slower window's mean
/// measured at `min`.
const LONG_SMOOTHING: f64 = 0.5;
/// The weight of the newest attempt in the recent latency.
const RECENT_SMOOTHING: f64 = 0.1;
/// A window closes after this long even with fewer samples than the limit.
const MAX_WINDOW: Duration = Duration::from_secs(1);
/// The fewest samples a window closes on before `MAX_WINDOW`.
const MIN_SAMPLES: u32 = 4;

/// The limit and the measurements that move it.
#[derive(Debug)]
pub(crate) struct Limiter {
    min: f64,
    max: f64,
    limit: f64,
    slow_start: bool,
    /// Long-term mean attempt latency in seconds; `None` before a window.
    long: Option<f64>,
    /// Moving average of the latest attempts' latency in seconds; `None`
    /// before the first attempt finished.
    recent: Option<f64>,
    running: usize,
    window: Window,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    samples: u32,
    latency_sum: f64,
    overloaded: u32,
    peak_running: usize,
}

impl Window {
    fn new(now: Instant, running: usize) -> Self {
        Self {
            started: now,
            samples: 0,
            latency_sum: 0.0,
            overloaded: 0,
            peak_running: running,
        }
    }
}

impl Limiter {
    /// Starts at `concurrency.min`.
    pub(crate) fn new(c: Concurrency, now: Instant) -> Self {
        let min = f64::from(c.min.max(1));
        Self {
            min,
            max: f64::from(c.max).max(min),
            limit: min,
            slow_start: true,
            long: None,
            recent: None,
            running: 0,
            window: Window::new(now, 0),
        }
    }

    /// The number of attempts that may run at once.
    pub(crate) fn limit(&self) -> usize {
        self.limit as usize
    }

    /// The latest attempts' mean latency (a moving average over about the
    /// last ten); `None` before the first attempt finished.
    pub(crate) fn recent_latency(&self) -> Option<Duration> {
        self.recent.map(Duration::from_secs_f64)
    }

    /// An attempt was launched (it may still wait for its slot).
    pub(crate) fn started(&mut self) {
        self.running += 1;
        self.window.peak_running = self.window.peak_running.max(self.running);
    }

    /// An attempt counted by [`Limiter::started`] that will not run.
    pub(crate) fn abandoned(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    /// An attempt finished after `latency`; `overload` when it met an
    /// overload signal (see [`crate::attempt::Health`]).
    pub(crate) fn finished(&mut self, latency: Duration, overload: bool) {
        self.running = self.running.saturating_sub(1);
        self.window.samples += 1;
        let l = latency.as_secs_f64();
        self.window.latency_sum += l;
        let r = self.recent.get_or_insert(l);
        *r += RECENT_SMOOTHING * (l - *r);
        if overload {
            self.window.overloaded += 1;
        }
    }

    /// Closes the window when it is complete and moves the limit; returns
    /// whether the limit changed.
    pub(crate) fn adjust(&mut self, now: Instant) -> bool {
        let w = &self.window;
        let complete = w.samples >= MIN_SAMPLES.max(self.limit as u32)
            || (w.samples > 0 && now.duration_since(w.started) >= MAX_WINDOW);
        if !complete || self.min >= self.max {
            return false;
        }
        let before = self.limit();
        let n = f64::from(w.samples);
        let mean = w.latency_sum / n;
        let errors = f64::from(w.overloaded) / n > ERROR_RATIO;
        let long = *self.long.get_or_insert(mean);
        let saturated = w.peak_running >= self.limit();
        let at_min = self.limit <= self.min;
        if errors {
            self.cut(ERROR_BACKOFF);
        } else {
            let gradient = if mean > 0.0 {
                (TOLERANCE * long.max(LATENCY_FLOOR) / mean).clamp(0.5, 1.0)
            } else {
                1.0
            };
            if gradient < 1.0 {
                self.cut(gradient);
            } else if saturated {
                self.limit = match self.slow_start {
                    true => self.limit * 2.0,
                    false => self.limit + 1.0,
                }
                .min(self.max);
            }
            if mean < long {
                self.long = Some(mean);
            } else if at_min {
                self.long = Some(long + LONG_SMOOTHING * (mean - long));
            }
        }
        self.window = Window::new(now, self.running);
        self.limit() != before
    }

    fn cut(&mut self, factor: f64) {
        self.slow_start = false;
        self.limit = (self.limit * factor).floor().max(self.min);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(min: u32, max: u32) -> (Limiter, Instant) {
        let t = Instant::now();
        (Limiter::new(Concurrency { min, max }, t), t)
    }

    /// Runs one window of `limit` attempts at `latency` (all slots used),
    /// `failures` of them overloaded.
    fn window(l: &mut Limiter, now: Instant, latency: Duration, failures: usize) -> bool {
        let n = l.limit().max(MIN_SAMPLES as usize);
        for _ in 0..n {
            l.started();
        }
        for i in 0..n {
            l.finished(latency, i < failures);
        }
        l.adjust(now)
    }

    const FAST: Duration = Duration::from_millis(10);

    #[test]
    fn slow_start_doubles_to_max_while_healthy() {
        let (mut l, t) = limiter(1, 64);
        assert_eq!(l.limit(), 1);
        let mut seen = vec![];
        for _ in 0..8 {
            window(&mut l, t, FAST, 0);
            seen.push(l.limit());
        }
        assert_eq!(seen, [2, 4, 8, 16, 32, 64, 64, 64]);
    }

    #[test]
    fn an_unused_limit_does_not_grow() {
        let (mut l, t) = limiter(2, 64);
        for _ in 0..4 {
            l.started();
            l.finished(FAST, false);
        }
        assert!(!l.adjust(t));
        assert_eq!(l.limit(), 2);
    }

    #[test]
    fn errors_cut_the_limit_down_to_min() {
        let (mut l, t) = limiter(2, 64);
        while l.limit() < 64 {
            window(&mut l, t, FAST, 0);
        }
        window(&mut l, t, FAST, 32);
        assert_eq!(l.limit(), 48);
        for _ in 0..20 {
            window(&mut l, t, FAST, 64);
        }
        assert_eq!(l.limit(), 2);
        // after a cut, growth is additive
        window(&mut l, t, FAST, 0);
        assert_eq!(l.limit(), 3);
    }

    #[test]
    fn a_few_errors_are_tolerated() {
        let (mut l, t) = limiter(1, 64);
        while l.limit() < 64 {
            window(&mut l, t, FAST, 0);
        }
        window(&mut l, t, FAST, 6);
        assert_eq!(l.limit(), 64);
    }

    #[test]
    fn latency_beyond_the_tolerance_backs_off_and_within_it_does_not() {
        let (mut l, t) = limiter(1, 64);
        while l.limit() < 16 {
            window(&mut l, t, FAST, 0);
        }
        window(&mut l, t, FAST * 2, 0);
        assert_eq!(l.limit(), 32, "twice as slow is within the tolerance");
        window(&mut l, t, FAST * 4, 0);
        assert!(l.limit() < 32, "{}", l.limit());
    }

    /// A downstream whose latency grows with the load it gets settles well
    /// below `max`, where latency stays within the tolerance.
    #[test]
    fn a_load_dependent_downstream_settles_below_max() {
        let (mut l, t) = limiter(1, 128);
        // 10 ms alone; beyond 4 concurrent requests it queues
        let latency = |c: usize| FAST * (c.max(4) as u32) / 4;
        for _ in 0..300 {
            let c = l.limit();
            window(&mut l, t, latency(c), 0);
        }
        let settled = l.limit();
        assert!((2..=16).contains(&settled), "settled at {settled}");
    }

    #[test]
    fn a_downstream_that_stays_slow_is_used_fully_again() {
        let (mut l, t) = limiter(1, 32);
        while l.limit() < 32 {
            window(&mut l, t, FAST, 0);
        }
        for _ in 0..400 {
            window(&mut l, t, FAST * 10, 0);
        }
        assert_eq!(l.limit(), 32);
    }

    #[test]
    fn a_short_window_closes_after_max_window() {
        let (mut l, t) = limiter(1, 8);
        l.started();
        l.finished(FAST, false);
        assert!(!l.adjust(t + Duration::from_millis(10)));
        assert!(l.adjust(t + MAX_WINDOW));
        assert_eq!(l.limit(), 2);
    }

    #[test]
    fn millisecond_jitter_of_a_fast_downstream_is_not_a_slowdown() {
        let (mut l, t) = limiter(1, 32);
        window(&mut l, t, Duration::from_millis(1), 0);
        window(&mut l, t, Duration::from_millis(8), 0);
        assert_eq!(l.limit(), 4, "1 ms to 8 ms is under the floor");
    }

    #[test]
    fn a_fixed_pool_never_moves() {
        let (mut l, t) = limiter(8, 8);
        window(&mut l, t, FAST, 8);
        window(&mut l, t, FAST * 100, 0);
        assert_eq!(l.limit(), 8);
    }
}
