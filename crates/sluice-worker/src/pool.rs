//! The worker pool of one queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_broker::{AckToken, Broker, Delivery, SubscribeOptions, Subscription};
use sluice_core::{HandlerConfig, QueueConfig, TokenBucket};
use sluice_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ahead::{ahead_cap, prefetch_window, start_ahead};
use crate::attempt::Attempts;
use crate::breaker::{Breaker, Gate};
use crate::drain::Leftovers;
use crate::flush::Flusher;
use crate::launch::{release, Batch, Started, Starting};
use crate::limit::Limiter;
use crate::pause::PauseState;
use crate::report::report_limit;
use crate::slots::Slots;
use crate::stalled::Stalled;
use crate::{Handler, WorkerError};

/// Most deliveries one store round trip starts (received, or held after a
/// failed start).
const MAX_BATCH: usize = 256;

/// Batches whose attempts start in the store at once: a batch starts while
/// the one before it is still in its round trip (most of which is waiting
/// for the commit), so fast handlers are not held up by it. They launch in
/// the order they were received.
const STARTS_IN_FLIGHT: usize = 2;

/// A queue and how to handle its jobs.
#[derive(Clone)]
pub struct WorkerQueue {
    pub config: QueueConfig,
    /// The queue's payload schema, checked for direct producers' messages.
    pub schema: Option<Value>,
    pub handler: Arc<dyn Handler>,
}

/// Worker tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// Job lease = handler timeout + this margin.
    pub lease_margin: Duration,
    /// Timeout of handlers that have none configured (log, Rust handlers).
    pub default_timeout: Duration,
    /// How long a batch of outcomes waits for more after its first; zero
    /// writes what is waiting at once (outcomes that finish meanwhile form
    /// the next batch).
    pub flush_linger: Duration,
    /// Most outcomes written in one batch.
    pub flush_max: usize,
    /// How long one receive waits for messages.
    pub recv_wait: Duration,
    /// While deliveries wait for acknowledgement, a receive waits at most
    /// this long, so finished jobs are acked promptly.
    pub ack_interval: Duration,
    /// On shutdown, how long in-flight jobs may take to finish.
    pub drain_grace: Duration,
    /// How often the queue's pause state is read from the store.
    pub pause_check_interval: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            lease_margin: Duration::from_secs(5),
            default_timeout: Duration::from_secs(30),
            flush_linger: Duration::ZERO,
            flush_max: 512,
            recv_wait: Duration::from_millis(100),
            ack_interval: Duration::from_millis(5),
            drain_grace: Duration::from_secs(30),
            pause_check_interval: Duration::from_millis(500),
        }
    }
}

/// Consumes one queue with between `concurrency.min` and `concurrency.max`
/// jobs at once, the limit adapting to the downstream (see [`Limiter`]).
pub struct Worker {
    pub(crate) store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    pub(crate) queue: WorkerQueue,
    pub(crate) options: WorkerOptions,
    pub(crate) validator: Option<Arc<jsonschema::Validator>>,
    pub(crate) timeout: Duration,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        queue: WorkerQueue,
        options: WorkerOptions,
    ) -> Result<Self, WorkerError> {
        queue.config.validate().map_err(|(k, e)| {
            WorkerError::Config(format!("queue {}: {k}: {e}", queue.config.name))
        })?;
        let validator = match &queue.schema {
            Some(s) => Some(Arc::new(jsonschema::validator_for(s).map_err(|e| {
                WorkerError::Config(format!("queue {}: invalid schema: {e}", queue.config.name))
            })?)),
            None => None,
        };
        let timeout = match &queue.config.handler {
            HandlerConfig::Http { timeout_ms, .. } => Duration::from_millis(*timeout_ms),
            HandlerConfig::Log | HandlerConfig::Noop => options.default_timeout,
        };
        Ok(Self {
            store,
            broker,
            queue,
            options,
            validator,
            timeout,
        })
    }

    /// Runs until `shutdown` is cancelled, then drains: stops receiving, lets
    /// in-flight jobs finish within the grace period, records their outcomes
    /// and acknowledges them. Jobs still running after the grace period are
    /// abandoned un-acked, so the broker redelivers them. If the subscription
    /// closes for good ([`BrokerError::Closed`](sluice_broker::BrokerError)),
    /// it drains the same way and returns that error.
    ///
    /// The pool's per-job series go to the `metrics` recorder in effect
    /// when it starts: it registers them once, at 0 (see docs/metrics.md).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let cfg = &self.queue.config;
        let concurrency = cfg.concurrency.max as usize;
        let owned = self.broker.owned_partitions();
        let max_in_flight = prefetch_window(concurrency, owned);
        let options = SubscribeOptions {
            group: cfg.worker_group(),
            max_in_flight,
        };
        let mut sub = self.broker.subscribe(&cfg.topic(), options).await?;
        tracing::info!(queue = %cfg.name, topic = %cfg.topic(), concurrency, "worker started");
        let limiter = Arc::new(Mutex::new(Limiter::new(cfg.concurrency, Instant::now())));
        let slots = Slots::new(limiter.lock().expect("limiter lock").limit());
        // jobs started and launched, waiting for a slot
        let waiting = Arc::new(AtomicUsize::new(0));
        let reporting = CancellationToken::new();
        let reporter = tokio::spawn(report_limit(
            self.store.clone(),
            cfg.name.clone(),
            limiter.clone(),
            reporting.clone(),
        ));
        let limit_gauge =
            metrics::gauge!("sluice_worker_concurrency_limit_jobs", "queue" => cfg.name.clone());
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Vec<AckToken>>();
        // deliveries handed back to the broker, each with how long it should
        // keep it back: of jobs started ahead whose lease ran short while
        // they waited for a slot, and of outcomes the store refused for good
        let (back_tx, mut back_rx) = mpsc::unbounded_channel::<(AckToken, Duration)>();
        // deliveries of jobs started ahead that had not run when the circuit
        // tripped, held by the pool (see Stalled) to start again
        let (hold_tx, mut hold_rx) = mpsc::unbounded_channel::<Delivery>();
        let flusher = Flusher::new(
            self.store.clone(),
            &cfg.name,
            self.options.flush_max,
            self.options.flush_linger,
        );
        // a delivery whose outcome could not be recorded comes back once
        // the lease of its attempt may have lapsed: sooner, its start would
        // find the job still leased and hand it back again
        let lease = self.timeout + self.options.lease_margin;
        let flusher = tokio::spawn(flusher.run(done_rx, ack_tx, back_tx.clone(), lease));
        let attempts = Arc::new(Attempts::new(
            self.queue.handler.clone(),
            self.store.clone(),
            cfg.backoff.clone(),
            self.timeout,
            &cfg.name,
        ));
        let mut tasks = JoinSet::new();
        let mut acks: Vec<AckToken> = Vec::new();
        let mut errors = 0u32;
        let mut pause = PauseState::default();
        let mut breaker = Breaker::new(
            &cfg.name,
            cfg.circuit.clone(),
            self.timeout + self.options.lease_margin,
            self.options.pause_check_interval,
        );
        let mut bucket = cfg.rate_limit.map(TokenBucket::new);
        // Deliveries handed out and not yet acked or released. When the
        // broker's window is full, no receive can return anything until
        // acks go out, so the loop waits for outcomes instead.
        let mut unacked = 0usize;
        // A received batch, to start with the next receive.
        let mut pending: Option<Batch> = None;
        // Batches whose attempts are starting (one store round trip each),
        // oldest first, while the next receive runs.
        let mut starting: VecDeque<Starting> = VecDeque::new();
        // deliveries whose starts the store could not take, to start again
        let mut stalled = Stalled::default();
        // set when the subscription ends for good: the pool drains, then
        // fails, so that its process does not run on without the queue
        let mut closed = None;
        // what launching a started batch needs
        let started = Started {
            slots: &slots,
            waiting: &waiting,
            back_tx: &back_tx,
            hold_tx: &hold_tx,
            done_tx: &done_tx,
            attempts: &attempts,
            recorder: breaker.recorder(),
            limiter: &limiter,
        };
        while !shutdown.is_cancelled() {
            while let Ok(t) = ack_rx.try_recv() {
                acks.extend(t);
            }
            unacked = unacked.saturating_sub(self.ack(&mut *sub, &mut acks).await);
            // one release per delay (at once, or after a lease)
            let mut back: Vec<(Duration, Vec<AckToken>)> = Vec::new();
            while let Ok((t, delay)) = back_rx.try_recv() {
                match back.iter_mut().find(|(d, _)| *d == delay) {
                    Some((_, tokens)) => tokens.push(t),
                    None => back.push((delay, vec![t])),
                }
            }
            while let Ok(d) = hold_rx.try_recv() {
                stalled.hold(d, Instant::now());
            }
            for (delay, tokens) in back {
                tracing::debug!(queue = %cfg.name, count = tokens.len(), delay_ms = delay.as_millis() as u64, "handing deliveries back to the broker");
                release(&mut *sub, &tokens, delay).await;
                unacked = unacked.saturating_sub(tokens.len());
            }
            while tasks.try_join_next().is_some() {}
            let (limit, recent) = {
                let mut l = limiter.lock().expect("limiter lock");
                l.adjust(Instant::now());
                (l.limit(), l.recent_latency())
            };
            limit_gauge.set(limit as f64);
            slots.set_limit(limit);
            let paused = pause
                .is_paused(&*self.store, &cfg.name, self.options.pause_check_interval)
                .await;
            let gate = breaker.gate(&*self.store).await;
            // a probe runs alone: it is not started ahead of a slot
            let ahead = match gate {
                Gate::Probe => 0,
                _ => start_ahead(
                    limit,
                    recent,
                    self.options.lease_margin / 4,
                    ahead_cap(limit, max_in_flight, owned),
                ),
            };
            let now = Instant::now();
            // a batch received while the queue ran, when it has been paused
            // or its circuit opened since, is held instead of started (its
            // jobs would run into a downstream found failing, or beside the
            // probe); it starts once the gate lets it
            let held_back = paused
                || gate == Gate::Wait
                || (gate == Gate::Probe && pending.as_ref().is_some_and(|b| !b.probe));
            if held_back {
                for d in pending.take().map(|b| b.deliveries).unwrap_or_default() {
                    stalled.hold(d, now);
                }
            }
            // held deliveries whose pause is over start with the next batch
            // (a received one too: steady traffic must not hold them back)
            match (&mut pending, gate) {
                _ if paused => {}
                // first: the store decides a batch's requests in order, and
                // a held one may resume the attempt its lost start began,
                // before another message of its job takes that over
                (Some(batch), Gate::Run) => {
                    let held = stalled.take_due(now, MAX_BATCH);
                    if !held.is_empty() {
                        batch.deliveries.splice(0..0, held);
                    }
                }
                // a probe runs alone: not while another batch starts
                (None, Gate::Probe) if !starting.is_empty() => {}
                (None, Gate::Run | Gate::Probe) => {
                    let max = if gate == Gate::Probe { 1 } else { MAX_BATCH };
                    let again = stalled.take_due(now, max);
                    if !again.is_empty() {
                        pending = Some(Batch {
                            deliveries: again,
                            probe: gate == Gate::Probe,
                        });
                    }
                }
                _ => {}
            }
            let pending_len = pending.as_ref().map_or(0, |b| b.deliveries.len())
                + starting
                    .iter()
                    .map(|s| s.batch.deliveries.len())
                    .sum::<usize>()
                + stalled.len();
            let free = (slots.available() + ahead)
                .saturating_sub(pending_len + waiting.load(Ordering::Relaxed));
            let tokens = bucket.as_mut().map_or(usize::MAX, |b| b.available(now));
            let receive = !(free == 0
                || unacked >= max_in_flight
                || paused
                || gate == Gate::Wait
                || tokens == 0
                || (gate == Gate::Probe
                    && (pending.is_some() || !starting.is_empty() || stalled.len() > 0)));
            if !receive && pending.is_none() && starting.is_empty() {
                let nap = match bucket.as_mut() {
                    Some(b) if tokens == 0 => b.wait(now).min(self.options.recv_wait),
                    _ => self.options.recv_wait,
                };
                tokio::select! {
                    t = ack_rx.recv() => acks.extend(t.unwrap_or_default()),
                    _ = tokio::time::sleep(nap) => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            let wait = if unacked > 0 {
                self.options.recv_wait.min(self.options.ack_interval)
            } else {
                self.options.recv_wait
            };
            let max = if gate == Gate::Probe {
                1
            } else {
                free.min(MAX_BATCH).min(tokens)
            };
            if let Some(b) = pending.take() {
                starting.push_back(self.start(b, &mut stalled));
            }
            // the oldest start is awaited when it is done, when nothing is
            // received meanwhile, or when no other start may begin
            let take = !receive
                || starting.len() >= STARTS_IN_FLIGHT
                || starting.front().is_some_and(|s| s.outcomes.is_finished());
            let to_launch = if take { starting.pop_front() } else { None };
            let (received, started_batch) = tokio::join!(
                async {
                    match receive {
                        true => Some(sub.recv(max, wait).await),
                        false => None,
                    }
                },
                async {
                    match to_launch {
                        Some(s) => Some(s.started().await),
                        None => None,
                    }
                }
            );
            if let Some(batch) = started_batch {
                let released = self
                    .launch(
                        &mut *sub,
                        batch,
                        &started,
                        &mut tasks,
                        &mut acks,
                        &mut stalled,
                    )
                    .await;
                unacked = unacked.saturating_sub(released);
            }
            match received {
                None => {}
                Some(Ok(ds)) => {
                    errors = 0;
                    if !ds.is_empty() {
                        unacked += ds.len();
                        if let Some(b) = bucket.as_mut() {
                            b.take(ds.len());
                        }
                        pending = Some(Batch {
                            deliveries: ds,
                            probe: gate == Gate::Probe,
                        });
                    }
                }
                Some(Err(e @ sluice_broker::BrokerError::Closed(_))) => {
                    tracing::error!(queue = %cfg.name, error = %e, "subscription closed; the worker stops");
                    closed = Some(e);
                    break;
                }
                Some(Err(e)) => {
                    errors += 1;
                    let wait = Duration::from_millis(100 * u64::from(errors.min(50)));
                    tracing::warn!(queue = %cfg.name, error = %e, "receive failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let deadline = Instant::now() + self.options.drain_grace;
        let left = Leftovers {
            starting,
            pending,
            stalled,
        };
        self.drain_jobs(&mut *sub, left, &started, &mut tasks, &mut acks, deadline)
            .await;
        drop(done_tx);
        self.drain_outcomes(&mut *sub, flusher, &mut ack_rx, &mut acks, deadline)
            .await;
        reporting.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), reporter).await;
        tracing::info!(queue = %cfg.name, "worker stopped");
        match closed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Acks what is waiting; returns how many were acked.
    pub(crate) async fn ack(&self, sub: &mut dyn Subscription, acks: &mut Vec<AckToken>) -> usize {
        if acks.is_empty() {
            return 0;
        }
        match sub.ack(acks).await {
            Ok(()) => {
                let n = acks.len();
                acks.clear();
                n
            }
            Err(e) => {
                tracing::warn!(queue = %self.queue.config.name, error = %e, "ack failed; will retry");
                0
            }
        }
    }
}
