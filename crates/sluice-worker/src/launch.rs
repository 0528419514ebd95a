//! Starting received batches' attempts in the store, and launching the
//! handlers of the jobs started: each waits for a slot, in launch order,
//! then runs, unless its lease ran short or the circuit tripped meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_broker::{AckToken, Delivery, Subscription};
use sluice_core::now_ms;
use sluice_store::{Outcome, StartOutcome, StoreError};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::attempt::{done, Attempts};
use crate::breaker::Recorder;
use crate::flush::Done;
use crate::intake::{intake, schema_violation, Intake};
use crate::limit::Limiter;
use crate::slots::Slots;
use crate::stalled::Stalled;
use crate::Worker;

impl Worker {
    /// Starts the batch's attempts in the store (one round trip, in a task
    /// of its own), each under the lease token of its last unanswered start
    /// when it has one (see [`Stalled`]).
    pub(crate) fn start(&self, batch: Batch, stalled: &mut Stalled) -> Starting {
        let cfg = &self.queue.config;
        let intakes: Vec<Intake> = batch
            .deliveries
            .iter()
            .map(|d| {
                let mut i = intake(d, &cfg.name, cfg.max_attempts, self.validator.as_deref());
                i.request.lease = Some(stalled.lease_for(d.token));
                i
            })
            .collect();
        let requests = intakes.iter().map(|i| i.request.clone()).collect();
        let lease = self.timeout + self.options.lease_margin;
        let store = self.store.clone();
        Starting {
            batch,
            intakes,
            outcomes: tokio::spawn(async move { store.start_attempts(requests, lease).await }),
        }
    }

    /// Spawns the handlers of a started batch and settles the deliveries
    /// that need no attempt; returns how many it released to the broker.
    pub(crate) async fn launch(
        &self,
        sub: &mut dyn Subscription,
        batch: StartedBatch,
        started: &Started<'_>,
        tasks: &mut JoinSet<()>,
        acks: &mut Vec<AckToken>,
        stalled: &mut Stalled,
    ) -> usize {
        let mut released = 0;
        let mut held = 0;
        let mut probe_taken = false;
        let cfg = &self.queue.config;
        let StartedBatch {
            batch,
            intakes,
            outcomes,
        } = batch;
        let probe_batch = batch.probe;
        for ((d, i), outcome) in batch.deliveries.into_iter().zip(intakes).zip(outcomes) {
            match outcome {
                Ok(StartOutcome::Started(active)) => {
                    // a replayed job meets the queue's schema again, on its
                    // run's first attempt: a direct producer's message that
                    // died for its payload reaches the handler only if the
                    // schema now takes it
                    let poison = i.poison.or_else(|| {
                        let schema = self.validator.as_deref();
                        (active.job.replay_count > 0 && active.attempt == 1)
                            .then(|| schema.and_then(|v| schema_violation(v, &active.job.payload)))
                            .flatten()
                    });
                    if let Some(reason) = poison {
                        tracing::warn!(job_id = %active.job.id, queue = %cfg.name, reason = %reason, "undecodable or invalid message dead-lettered");
                        let _ = started.done_tx.send(done(
                            d.token,
                            active.job.id,
                            active.lease,
                            active.attempt,
                            now_ms(),
                            Outcome::Dead { error: reason },
                        ));
                        continue;
                    }
                    let slots = started.slots.clone();
                    let waiting = started.waiting.clone();
                    let back = started.back_tx.clone();
                    let hold = started.hold_tx.clone();
                    let timeout_ms = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
                    let attempts = started.attempts.clone();
                    let tx = started.done_tx.clone();
                    let recorder = started.recorder.clone();
                    // the probe is the first job this batch starts
                    let probe = !probe_taken && probe_batch;
                    let message_attempt = i.request.attempt.unwrap_or(1);
                    let one_off = i.one_off;
                    if probe {
                        probe_taken = true;
                        recorder.probe_started();
                    }
                    // counted from launch: a job waiting for its slot is
                    // demand the limit must see
                    started.limiter.lock().expect("limiter lock").started();
                    let limiter = started.limiter.clone();
                    waiting.fetch_add(1, Ordering::Relaxed);
                    // slots are handed out in launch order
                    let place = slots.line_up().await;
                    tasks.spawn(async move {
                        let (slot, waited) = match place {
                            Ok(s) => (s, false),
                            Err(wait) => (wait.await, true),
                        };
                        waiting.fetch_sub(1, Ordering::Relaxed);
                        // A job is not run when it waited for its slot until
                        // its lease can no longer cover the handler (another
                        // worker may take it over: its delivery goes back to
                        // the broker), or when the circuit tripped or opened
                        // since it started (only the probe meets the
                        // downstream then: the pool holds its delivery, to
                        // start it again once the circuit lets it). Either
                        // way its start is undone in the store first (the
                        // attempt never ran, so it must not count). A job
                        // whose id was made up for this delivery runs all the
                        // same: delivered again, its message would become
                        // another job (and no other delivery can take this
                        // one over).
                        let short =
                            waited && now_ms().saturating_add(timeout_ms) > active.lease_until;
                        let halted = !probe && recorder.holding();
                        if (short || halted) && !one_off {
                            limiter.lock().expect("limiter lock").abandoned();
                            if probe {
                                recorder.probe_handed_back();
                            }
                            // the next job in line need not wait for the store
                            drop(slot);
                            attempts.abandon(&active, message_attempt).await;
                            match short {
                                true => {
                                    let _ = back.send((d.token, Duration::ZERO));
                                }
                                false => {
                                    let _ = hold.send(d);
                                }
                            }
                            return;
                        }
                        let t0 = Instant::now();
                        let (done, health) = attempts.run(active, d.token).await;
                        limiter
                            .lock()
                            .expect("limiter lock")
                            .finished(t0.elapsed(), health.overload);
                        recorder.record(probe, health.healthy);
                        let _ = tx.send(done);
                        drop(slot);
                    });
                }
                Ok(StartOutcome::Stale) | Ok(StartOutcome::Missing) => acks.push(d.token),
                Ok(StartOutcome::Busy { until }) => {
                    let delay = Duration::from_millis((until - now_ms()).max(0) as u64 + 100);
                    release(sub, &[d.token], delay).await;
                    released += 1;
                }
                // kept, not returned to the broker (see Stalled)
                Err(e) if e.is_transient() => {
                    if held == 0 {
                        tracing::warn!(queue = %cfg.name, error = %e, "cannot start attempts; holding the messages to start them again");
                    }
                    held += 1;
                    // it may have started: asked again under its lease
                    stalled.hold_unheard(d, i.request.lease, Instant::now());
                }
                Err(e) => {
                    tracing::warn!(queue = %cfg.name, error = %e, "cannot start attempt; releasing message");
                    release(sub, &[d.token], Duration::from_secs(1)).await;
                    released += 1;
                }
            }
        }
        released
    }
}

/// What starting a batch's jobs needs from the pool loop.
pub(crate) struct Started<'a> {
    pub slots: &'a Arc<Slots>,
    /// Jobs launched and waiting for a slot.
    pub waiting: &'a Arc<AtomicUsize>,
    /// Deliveries to hand back to the broker.
    pub back_tx: &'a mpsc::UnboundedSender<(AckToken, Duration)>,
    /// Deliveries for the pool to hold and start again.
    pub hold_tx: &'a mpsc::UnboundedSender<Delivery>,
    pub done_tx: &'a mpsc::UnboundedSender<Done>,
    pub attempts: &'a Arc<Attempts>,
    pub recorder: Recorder,
    pub limiter: &'a Arc<Mutex<Limiter>>,
}

/// Deliveries received together, waiting for their attempts to start.
pub(crate) struct Batch {
    pub deliveries: Vec<Delivery>,
    /// Received while the circuit was half-open: its first job is the probe.
    pub probe: bool,
}

/// A batch whose attempts are starting.
pub(crate) struct Starting {
    pub batch: Batch,
    intakes: Vec<Intake>,
    pub outcomes: JoinHandle<Vec<Result<StartOutcome, StoreError>>>,
}

impl Starting {
    /// The batch once the store answered. A start task that failed (it
    /// panicked) answers as a store that cannot be reached, so the
    /// deliveries are held to start again.
    pub async fn started(self) -> StartedBatch {
        let n = self.batch.deliveries.len();
        let outcomes = self.outcomes.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "start task failed");
            (0..n)
                .map(|_| Err(StoreError::Unavailable("start task failed".into())))
                .collect()
        });
        StartedBatch {
            batch: self.batch,
            intakes: self.intakes,
            outcomes,
        }
    }
}

/// A batch and what the store said to each of its start requests.
pub(crate) struct StartedBatch {
    batch: Batch,
    intakes: Vec<Intake>,
    outcomes: Vec<Result<StartOutcome, StoreError>>,
}

impl StartedBatch {
    /// Undoes every attempt the batch started (none of them will run), so
    /// that their messages, delivered again, start at once without the
    /// attempts counted; returns how many.
    pub async fn undo(self, attempts: &Attempts) -> usize {
        let mut undone = 0;
        for (i, outcome) in self.intakes.iter().zip(self.outcomes) {
            if let Ok(StartOutcome::Started(active)) = outcome {
                attempts
                    .abandon(&active, i.request.attempt.unwrap_or(1))
                    .await;
                undone += 1;
            }
        }
        undone
    }
}

pub(crate) async fn release(sub: &mut dyn Subscription, tokens: &[AckToken], delay: Duration) {
    if let Err(e) = sub.release(tokens, delay).await {
        tracing::warn!(error = %e, "release failed; the message comes back after its visibility timeout");
    }
}
