//! Starting received batches' attempts in the store. A start is one store
//! transaction per batch; with a fast handler, a pool that waited for each
//! before starting the next would be bound by that round trip while the
//! store has cores to spare. So up to [`START_DEPTH`] batches start at once,
//! each in a task of its own, and they are handed back in the order they
//! were received (jobs of one partition are launched in order).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use sluice_broker::Delivery;
use sluice_store::{StartOutcome, Store, StoreError};
use tokio::task::JoinHandle;

use crate::intake::{intake, Intake};

/// Most batches whose attempts start at once.
pub(crate) const START_DEPTH: usize = 2;

/// Deliveries received together, waiting for their attempts to start.
pub(crate) struct Batch {
    pub deliveries: Vec<Delivery>,
    /// Received while the circuit was half-open: its first job is the probe.
    pub probe: bool,
}

/// A batch and what the store said to each of its start requests.
pub(crate) struct StartedBatch {
    pub batch: Batch,
    pub intakes: Vec<Intake>,
    pub outcomes: Vec<Result<StartOutcome, StoreError>>,
}

/// What a start needs besides the batch.
pub(crate) struct Starter {
    pub store: Arc<dyn Store>,
    pub queue: String,
    pub max_attempts: u32,
    pub validator: Option<Arc<jsonschema::Validator>>,
    /// The lease each started attempt takes.
    pub lease: Duration,
}

/// A batch whose start is in flight.
struct InFlight {
    batch: Batch,
    intakes: Vec<Intake>,
    outcomes: JoinHandle<Vec<Result<StartOutcome, StoreError>>>,
}

/// Batches whose attempts are starting, oldest first.
pub(crate) struct Starts {
    starter: Starter,
    in_flight: VecDeque<InFlight>,
}

impl Starts {
    pub fn new(starter: Starter) -> Self {
        Self {
            starter,
            in_flight: VecDeque::with_capacity(START_DEPTH),
        }
    }

    /// Decodes the batch's deliveries and starts their attempts in a task.
    pub fn push(&mut self, batch: Batch) {
        let s = &self.starter;
        let intakes: Vec<Intake> = batch
            .deliveries
            .iter()
            .map(|d| intake(d, &s.queue, s.max_attempts, s.validator.as_deref()))
            .collect();
        let requests = intakes.iter().map(|i| i.request.clone()).collect();
        let (store, lease) = (s.store.clone(), s.lease);
        let outcomes = tokio::spawn(async move { store.start_attempts(requests, lease).await });
        self.in_flight.push_back(InFlight {
            batch,
            intakes,
            outcomes,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Whether no further batch may start before the oldest is taken.
    pub fn is_full(&self) -> bool {
        self.in_flight.len() >= START_DEPTH
    }

    /// Whether the oldest batch's start has finished.
    pub fn oldest_done(&self) -> bool {
        self.in_flight
            .front()
            .is_some_and(|f| f.outcomes.is_finished())
    }

    /// Deliveries in batches not yet taken.
    pub fn deliveries(&self) -> usize {
        self.in_flight
            .iter()
            .map(|f| f.batch.deliveries.len())
            .sum()
    }

    /// Waits for the oldest batch's start; `None` when nothing is starting.
    /// A start whose task failed answers every request with an error, so
    /// its deliveries are released like those of a failed store call.
    pub async fn next(&mut self) -> Option<StartedBatch> {
        let f = self.in_flight.pop_front()?;
        let outcomes = match f.outcomes.await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(queue = %self.starter.queue, error = %e, "attempt start task failed");
                f.batch
                    .deliveries
                    .iter()
                    .map(|_| Err(StoreError::Unavailable("attempt start task failed".into())))
                    .collect()
            }
        };
        Some(StartedBatch {
            batch: f.batch,
            intakes: f.intakes,
            outcomes,
        })
    }
}
