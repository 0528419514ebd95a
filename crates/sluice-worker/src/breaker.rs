//! The circuit breaker of one queue's pool. Handler tasks record whether
//! the downstream answered healthily; the pool loop asks [`Breaker::gate`]
//! before every receive. The open/half-open record lives in the store, so
//! every worker process of the queue pauses together and exactly one of
//! them runs the probe job after the cooldown.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_core::{now_ms, CircuitConfig, EpochMs};
use sluice_store::{CircuitState, Store};

/// What the pool may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Receive and run jobs as usual.
    Run,
    /// Receive one job: it is the probe.
    Probe,
    /// Receive nothing: the circuit is open, or a probe is running.
    Wait,
}

/// The sliding window of the last `window` outcomes, and the current run
/// of consecutive failures.
#[derive(Debug)]
pub(crate) struct Window {
    config: CircuitConfig,
    outcomes: VecDeque<bool>,
    failures: u32,
    consecutive: u32,
}

impl Window {
    pub(crate) fn new(config: CircuitConfig) -> Self {
        Self {
            config,
            outcomes: VecDeque::new(),
            failures: 0,
            consecutive: 0,
        }
    }

    /// Records one outcome; returns whether the circuit should open.
    pub(crate) fn record(&mut self, healthy: bool) -> bool {
        self.outcomes.push_back(healthy);
        if !healthy {
            self.failures += 1;
            self.consecutive += 1;
        } else {
            self.consecutive = 0;
        }
        if self.outcomes.len() > self.config.window as usize
            && !self.outcomes.pop_front().unwrap_or(true)
        {
            self.failures -= 1;
        }
        let c = &self.config;
        (c.consecutive_failures > 0 && self.consecutive >= c.consecutive_failures)
            || (self.outcomes.len() >= c.min_attempts as usize
                && f64::from(self.failures) >= c.failure_ratio * self.outcomes.len() as f64)
    }

    fn reset(&mut self) {
        self.outcomes.clear();
        self.failures = 0;
        self.consecutive = 0;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Not started: the next job the pool starts is the probe.
    Idle,
    Running,
    Done {
        healthy: bool,
    },
}

/// What handler tasks write.
#[derive(Debug)]
struct Shared {
    window: Window,
    /// Outcomes count only while the circuit is closed.
    counting: bool,
    tripped: bool,
    probe: Probe,
}

/// Records outcomes from handler tasks.
#[derive(Clone)]
pub(crate) struct Recorder(Arc<Mutex<Shared>>);

impl Recorder {
    /// Marks the job about to start as the probe.
    pub(crate) fn probe_started(&self) {
        self.0.lock().unwrap().probe = Probe::Running;
    }

    /// The probe was handed back unrun: the next job started is the probe.
    pub(crate) fn probe_handed_back(&self) {
        self.0.lock().unwrap().probe = Probe::Idle;
    }

    /// Whether jobs other than the probe are kept from the downstream: the
    /// circuit tripped, or is not closed. A job started before then that
    /// has not run yet is handed back instead.
    pub(crate) fn holding(&self) -> bool {
        let s = self.0.lock().unwrap();
        s.window.config.enabled && (s.tripped || !s.counting)
    }

    /// Records a finished attempt: `healthy` unless the downstream failed
    /// transiently or asked to be retried later.
    pub(crate) fn record(&self, probe: bool, healthy: bool) {
        let mut s = self.0.lock().unwrap();
        if probe {
            s.probe = Probe::Done { healthy };
        } else if s.counting && s.window.record(healthy) {
            s.tripped = true;
        }
    }
}

/// This process's view of the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Closed,
    Open {
        until: EpochMs,
    },
    /// This process holds the probe claim.
    Probing,
    /// Another process holds it (until its claim lapses).
    OtherProbing {
        until: EpochMs,
    },
}

pub(crate) struct Breaker {
    queue: String,
    config: CircuitConfig,
    shared: Arc<Mutex<Shared>>,
    view: View,
    /// How long a probe claim lasts: the handler timeout plus margin.
    probe_lease: Duration,
    refresh_every: Duration,
    refreshed: Option<Instant>,
}

impl Breaker {
    pub(crate) fn new(
        queue: &str,
        config: CircuitConfig,
        probe_lease: Duration,
        refresh_every: Duration,
    ) -> Self {
        let shared = Shared {
            window: Window::new(config.clone()),
            counting: true,
            tripped: false,
            probe: Probe::Idle,
        };
        let breaker = Self {
            queue: queue.to_string(),
            config,
            shared: Arc::new(Mutex::new(shared)),
            view: View::Closed,
            probe_lease,
            refresh_every,
            refreshed: None,
        };
        breaker.publish_state();
        breaker
    }

    pub(crate) fn recorder(&self) -> Recorder {
        Recorder(self.shared.clone())
    }

    /// Decides what the pool may do, moving the circuit on as outcomes and
    /// the shared record say. Store errors keep the current view.
    pub(crate) async fn gate(&mut self, store: &dyn Store) -> Gate {
        if !self.config.enabled {
            return Gate::Run;
        }
        let (tripped, probe) = {
            let s = self.shared.lock().unwrap();
            // left set until the circuit opens (set_view clears it), so
            // that jobs meanwhile are held too
            (s.tripped, s.probe)
        };
        if tripped && self.view == View::Closed {
            self.open(store, "failures crossed the threshold").await;
        }
        if self.view == View::Probing {
            match probe {
                Probe::Idle => return Gate::Probe,
                Probe::Running => return Gate::Wait,
                Probe::Done { healthy: true } => self.close(store).await,
                Probe::Done { healthy: false } => self.open(store, "the probe failed").await,
            }
        }
        if self
            .refreshed
            .is_none_or(|t| t.elapsed() >= self.refresh_every)
        {
            self.refresh(store).await;
        }
        let now = now_ms();
        match self.view {
            View::Closed => Gate::Run,
            View::Probing => Gate::Probe,
            View::Open { until } | View::OtherProbing { until } if now >= until => {
                match store
                    .claim_probe(&self.queue, now + self.probe_lease.as_millis() as i64)
                    .await
                {
                    Ok(true) => {
                        tracing::info!(queue = %self.queue, "circuit half-open: running one probe job");
                        self.set_view(View::Probing);
                        self.shared.lock().unwrap().probe = Probe::Idle;
                        Gate::Probe
                    }
                    Ok(false) => {
                        self.refreshed = None;
                        Gate::Wait
                    }
                    Err(e) => {
                        tracing::warn!(queue = %self.queue, error = %e, "cannot claim the circuit probe");
                        Gate::Wait
                    }
                }
            }
            View::Open { .. } | View::OtherProbing { .. } => Gate::Wait,
        }
    }

    async fn open(&mut self, store: &dyn Store, why: &str) {
        let until = now_ms() + self.config.cooldown_ms as i64;
        match store.open_circuit(&self.queue, until).await {
            Ok(opened) => {
                if opened {
                    metrics::counter!("sluice_circuit_opened_total", "queue" => self.queue.clone())
                        .increment(1);
                }
                tracing::warn!(queue = %self.queue, cooldown_ms = self.config.cooldown_ms, reason = why, "circuit open: consumption paused");
                self.set_view(View::Open { until });
                // another process may have opened it first: read its time
                self.refreshed = None;
            }
            Err(e) => {
                tracing::warn!(queue = %self.queue, error = %e, "cannot record the open circuit; pausing here only");
                self.set_view(View::Open { until });
            }
        }
    }

    async fn close(&mut self, store: &dyn Store) {
        match store.close_circuit(&self.queue).await {
            Ok(()) => {
                tracing::info!(queue = %self.queue, "probe succeeded: circuit closed");
                self.set_view(View::Closed);
            }
            Err(e) => {
                // keep the probe's result and try again on the next gate
                tracing::warn!(queue = %self.queue, error = %e, "cannot close the circuit");
            }
        }
    }

    /// Reads the shared record (another process may have opened, closed or
    /// claimed the probe).
    async fn refresh(&mut self, store: &dyn Store) {
        self.refreshed = Some(Instant::now());
        let record = match store.circuits().await {
            Ok(list) => list.into_iter().find(|c| c.queue == self.queue),
            Err(e) => {
                tracing::warn!(queue = %self.queue, error = %e, "cannot read the circuit state; keeping the last known");
                return;
            }
        };
        let view = match record {
            None => View::Closed,
            Some(c) => {
                let until = c.until.unwrap_or(0);
                match (c.state, self.view) {
                    (CircuitState::Closed, _) => View::Closed,
                    (CircuitState::Open, _) => View::Open { until },
                    (CircuitState::HalfOpen, View::Probing) => View::Probing,
                    (CircuitState::HalfOpen, _) => View::OtherProbing { until },
                }
            }
        };
        if view != self.view && (view == View::Closed || self.view == View::Closed) {
            tracing::info!(queue = %self.queue, state = ?view, "circuit state changed by another worker");
        }
        self.set_view(view);
    }

    fn set_view(&mut self, view: View) {
        if view == self.view {
            return;
        }
        let closed = view == View::Closed;
        {
            let mut s = self.shared.lock().unwrap();
            s.counting = closed;
            if closed || self.view == View::Closed {
                s.window.reset();
                s.tripped = false;
            }
        }
        self.view = view;
        self.publish_state();
    }

    fn publish_state(&self) {
        let value = match self.view {
            View::Closed => 0.0,
            View::Open { .. } => 1.0,
            View::Probing | View::OtherProbing { .. } => 2.0,
        };
        metrics::gauge!("sluice_circuit_state", "queue" => self.queue.clone()).set(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CircuitConfig {
        CircuitConfig {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            window: 10,
            min_attempts: 6,
            ..CircuitConfig::default()
        }
    }

    #[test]
    fn consecutive_failures_trip() {
        let mut w = Window::new(config());
        assert!(!w.record(false));
        assert!(!w.record(false));
        assert!(!w.record(true), "a success breaks the run");
        assert!(!w.record(false));
        assert!(!w.record(false));
        assert!(w.record(false));
    }

    #[test]
    fn failure_ratio_trips_once_the_window_has_enough() {
        let mut c = config();
        c.consecutive_failures = 0;
        let mut w = Window::new(c);
        // alternate: 50% failures, but judged only from the 6th attempt
        for i in 0..5 {
            assert!(!w.record(i % 2 == 0), "attempt {i} judged too early");
        }
        assert!(w.record(false), "3 of 6 failed");
    }

    #[test]
    fn old_outcomes_slide_out_of_the_window() {
        let mut c = config();
        c.consecutive_failures = 0;
        let mut w = Window::new(c);
        for _ in 0..4 {
            w.record(false);
        }
        for _ in 0..10 {
            w.record(true);
        }
        assert_eq!(w.failures, 0);
        assert_eq!(w.outcomes.len(), 10);
        for _ in 0..4 {
            assert!(!w.record(false));
        }
        assert!(w.record(false), "5 of the last 10 failed");
    }
}
