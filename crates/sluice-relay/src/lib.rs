//! The outbox relay: claims due outbox rows under a lease, publishes them as
//! CloudEvents (binary mode) with confirms, and marks them published, all in
//! batches. It wakes at once when this process commits outbox rows and polls
//! as a fallback (other processes, delayed rows). Rows are fenced by the
//! claim's lease, so several relays on one store do not publish a row twice
//! in normal operation; a running relay extends the leases of the claims it
//! is still publishing, however long the broker takes to confirm. A crash
//! between publish and mark causes a duplicate publication, never a loss.
//!
//! Dead-letter rows ([`OutboxKind::DeadLetter`]) go to the queue's
//! dead-letter topic (`<topic>.dlq`) as the same CloudEvent (same id, key
//! and data) with `type` [`DEAD_LETTER_TYPE`] and the reason in the
//! [`ERROR_ATTR`] extension attribute, for outside consumers. A dead letter
//! replayed before its row was published is still published (a stale but
//! harmless event, with the job id of the now-replayed job).

mod leases;
mod redrive;
mod retention;

pub use redrive::{Redrive, RedriveConfig};
pub use retention::{Retention, RetentionConfig, BATCH as RETENTION_BATCH};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::Value;
use sluice_broker::{BrokerError, Confirms, OutgoingMessage, Publisher};
use sluice_core::{now_ms, Envelope, QueueConfig};
use sluice_store::{OutboxClaim, OutboxKind, OutboxRow, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::leases::Leases;

/// The CloudEvents `type` of a dead letter published to a dead-letter topic.
pub const DEAD_LETTER_TYPE: &str = "sluice.job.dead";
/// The CloudEvents extension attribute carrying why a job died.
pub const ERROR_ATTR: &str = "sluiceerror";

/// Relay tuning; see [`RelayConfig::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// Most rows claimed and published per round.
    pub batch_size: usize,
    /// How long a claim holds its rows unless extended; a running relay
    /// extends it each time half has passed while it publishes them.
    pub lease: Duration,
    /// Longest sleep between rounds when nothing wakes the relay.
    pub poll_interval: Duration,
    /// Delay before a row whose publish failed is tried again.
    pub retry_delay: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            retry_delay: Duration::from_secs(1),
        }
    }
}

impl RelayConfig {
    /// Checks the values make sense.
    pub fn validate(&self) -> Result<(), RelayError> {
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(RelayError::Config(
                "batch_size must be between 1 and 10000".into(),
            ));
        }
        if self.lease < Duration::from_secs(1) {
            return Err(RelayError::Config("lease must be at least 1 s".into()));
        }
        if self.poll_interval.is_zero() {
            return Err(RelayError::Config("poll_interval must be positive".into()));
        }
        Ok(())
    }
}

/// Failures of a relay round.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("invalid relay config: {0}")]
    Config(String),
}

/// Publishes the outbox of one store to one broker.
pub struct Relay {
    store: Arc<dyn Store>,
    publisher: Arc<dyn Publisher>,
    /// queue → (topic, dead-letter topic)
    topics: HashMap<String, (String, String)>,
    config: RelayConfig,
    /// The claims not yet settled, whose leases [`Relay::run`] extends.
    leases: Leases,
}

impl Relay {
    /// A relay publishing each queue to its configured topic and its dead
    /// letters to the queue's dead-letter topic (queues not in `queues` go to
    /// `sluice.<queue>` and `sluice.<queue>.dlq`).
    pub fn new(
        store: Arc<dyn Store>,
        publisher: Arc<dyn Publisher>,
        queues: &[QueueConfig],
        config: RelayConfig,
    ) -> Result<Self, RelayError> {
        config.validate()?;
        let topics = queues
            .iter()
            .map(|q| (q.name.clone(), (q.topic(), q.dlq_topic())))
            .collect();
        let leases = Leases::new(config.lease);
        Ok(Self {
            store,
            publisher,
            topics,
            config,
            leases,
        })
    }

    /// The message publishing `row`, whose body is the payload's JSON text
    /// as the store returned it. Its payload, key and traceparent move into
    /// the message; the row keeps what settling it needs.
    fn message(&self, row: &mut OutboxRow) -> OutgoingMessage {
        let mut env = Envelope::at(row.job_id, &row.queue, Value::Null, row.created_at);
        let key = row.key.take();
        env.sluicekey = key.clone();
        env.sluiceattempt = Some(row.attempt);
        env.traceparent = row.traceparent.take();
        if matches!(row.kind, OutboxKind::DeadLetter { .. }) {
            env.ty = DEAD_LETTER_TYPE.into();
        }
        let mut attributes = env.into_attributes();
        let payload = std::mem::replace(&mut row.payload, RawValue::NULL.to_owned());
        let body = Box::<str>::from(payload).into_boxed_bytes().into_vec();
        let dead_letter = match &row.kind {
            OutboxKind::Job => false,
            OutboxKind::DeadLetter { error } => {
                attributes.insert(ERROR_ATTR.to_string(), error.clone());
                true
            }
        };
        let topic = self.topic_of(&row.queue, dead_letter);
        OutgoingMessage {
            topic,
            job_id: row.job_id,
            key,
            attributes,
            content_type: Some("application/json".into()),
            body,
        }
    }

    /// The topic of `queue`'s jobs or of its dead letters; a queue not
    /// configured here gets the default names of [`QueueConfig::named`].
    fn topic_of(&self, queue: &str, dead_letter: bool) -> String {
        match (self.topics.get(queue), dead_letter) {
            (Some((topic, _)), false) => topic.clone(),
            (Some((_, dlq)), true) => dlq.clone(),
            (None, false) => QueueConfig::named(queue).topic(),
            (None, true) => QueueConfig::named(queue).dlq_topic(),
        }
    }

    /// One round: claim, publish, mark. Returns how many rows were claimed.
    pub async fn run_once(&self) -> Result<usize, RelayError> {
        let mut claim = self.claim().await?;
        if claim.rows.is_empty() {
            return Ok(0);
        }
        let results = self.publish(&mut claim).await;
        self.settle(&claim, results).await?;
        Ok(claim.rows.len())
    }

    /// Claims the next batch, held until it is settled: [`Relay::run`]
    /// extends its lease meanwhile.
    async fn claim(&self) -> Result<OutboxClaim, RelayError> {
        let asked = tokio::time::Instant::now();
        let claim = self
            .store
            .claim_outbox(self.config.batch_size, self.config.lease)
            .await?;
        self.leases.hold(&claim, asked);
        Ok(claim)
    }

    async fn publish(&self, claim: &mut OutboxClaim) -> Vec<Result<(), BrokerError>> {
        self.send(claim).await.await
    }

    /// Hands the claim's messages to the broker, after those of the batch
    /// sent before; the returned future waits for their confirms. The
    /// rows' payloads move into the messages (see [`Relay::message`]).
    async fn send(&self, claim: &mut OutboxClaim) -> Confirms {
        metrics::histogram!("sluice_relay_batch_size_rows").record(claim.rows.len() as f64);
        let messages = claim.rows.iter_mut().map(|r| self.message(r)).collect();
        self.publisher.send(messages).await
    }

    /// Marks the published rows, dead-letters the jobs whose messages the
    /// broker refused for good, and releases the other failed rows for a
    /// retry; then the claim's lease is no longer extended (a row a failure
    /// left leased is published again once it lapses).
    async fn settle(
        &self,
        claim: &OutboxClaim,
        results: Vec<Result<(), BrokerError>>,
    ) -> Result<(), RelayError> {
        let settled = self.settle_rows(claim, results).await;
        self.leases.forget(&claim.lease);
        settled
    }

    async fn settle_rows(
        &self,
        claim: &OutboxClaim,
        results: Vec<Result<(), BrokerError>>,
    ) -> Result<(), RelayError> {
        let (mut ok, mut failed) = (Vec::with_capacity(claim.rows.len()), Vec::new());
        let mut refused = Vec::new();
        // messages refused for good, of jobs and of dead letters
        let mut refusals = 0u64;
        let now = now_ms();
        let lag = metrics::histogram!("sluice_relay_lag_seconds");
        // published rows per queue, counted once per batch
        let mut published: Vec<(&str, u64)> = Vec::new();
        for (row, res) in claim.rows.iter().zip(results) {
            match res {
                Ok(()) => {
                    ok.push(row.row_id);
                    match published.iter_mut().find(|(q, _)| *q == row.queue) {
                        Some((_, n)) => *n += 1,
                        None => published.push((&row.queue, 1)),
                    }
                    let created = row.created_at.min(now);
                    lag.record((now - created) as f64 / 1000.0);
                }
                // the message itself can never go out: its job is dead (a
                // dead letter whose message is refused stays in the store)
                Err(BrokerError::Refused(reason)) => {
                    refusals += 1;
                    match row.kind {
                        OutboxKind::Job => {
                            tracing::error!(job_id = %row.job_id, queue = %row.queue, error = %reason, "broker refused the job's message for good; dead-lettering the job");
                            let reason = format!("broker refused the message: {reason}");
                            refused.push((row.row_id, reason));
                        }
                        OutboxKind::DeadLetter { .. } => {
                            tracing::error!(job_id = %row.job_id, queue = %row.queue, error = %reason, "broker refused the dead letter's message for good; it stays in the store only");
                            ok.push(row.row_id);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(job_id = %row.job_id, queue = %row.queue, error = %e, "publish failed; will retry");
                    failed.push(row.row_id);
                }
            }
        }
        for (queue, n) in published {
            metrics::counter!("sluice_relay_published_messages_total", "queue" => self.queue_label(queue))
                .increment(n);
        }
        if !ok.is_empty() {
            let marked = self.store.mark_published(&claim.lease, &ok).await?;
            if marked < ok.len() {
                tracing::warn!(
                    lost = ok.len() - marked,
                    "claim lease expired before marking; rows will be published again"
                );
            }
        }
        // after the published rows are marked: a failure here leaves only
        // the refused rows leased, to be refused and dead-lettered again
        if refusals > 0 {
            metrics::counter!("sluice_relay_refused_messages_total").increment(refusals);
        }
        if !refused.is_empty() {
            match self.store.dead_letter_refused(&claim.lease, &refused).await {
                Ok(dead) if dead.len() < refused.len() => tracing::warn!(
                    refused = refused.len(),
                    dead = dead.len(),
                    "some refused jobs were not dead-lettered: a worker had started them, or the claim lease expired"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, rows = refused.len(), "cannot dead-letter refused jobs; they are refused again after the claim lease")
                }
            }
        }
        if !failed.is_empty() {
            metrics::counter!("sluice_relay_publish_failures_total").increment(failed.len() as u64);
            let due = now_ms() + self.config.retry_delay.as_millis() as i64;
            self.store
                .release_outbox(&claim.lease, &failed, due)
                .await?;
        }
        Ok(())
    }

    fn queue_label(&self, queue: &str) -> String {
        if self.topics.contains_key(queue) {
            queue.to_string()
        } else {
            "other".to_string()
        }
    }

    /// Runs rounds until `shutdown` is cancelled: back to back while full
    /// batches come, otherwise waiting for a wake-up, the next due row or the
    /// poll interval; store errors back off up to 5 s.
    ///
    /// Batches are sent in claim order, each once the one before it is
    /// sent. While a full batch is sent, the next one is claimed and the
    /// one sent before is confirmed and marked, so the store's round trips
    /// overlap the broker's; with a publisher that sends ahead of confirms
    /// (see [`Publisher::send`]) the broker also has the next batch while it
    /// confirms one. The lease of every batch claimed and not yet settled is
    /// extended each time half of it has passed.
    pub async fn run(self, shutdown: CancellationToken) {
        let keeper = self.leases.clone();
        tokio::select! {
            () = self.rounds(shutdown) => {}
            never = keeper.keep(&*self.store) => match never {},
        }
    }

    async fn rounds(&self, shutdown: CancellationToken) {
        let notify = self.store.outbox_notify();
        let mut backoff = Duration::from_millis(100);
        let mut next: Option<OutboxClaim> = None;
        let mut confirming: Option<(OutboxClaim, Confirms)> = None;
        tracing::info!(batch_size = self.config.batch_size, "relay started");
        while !shutdown.is_cancelled() {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let claimed = match next.take() {
                Some(c) => Ok(c),
                None => self.claim().await,
            };
            let sleep = match claimed {
                Ok(claim) if claim.rows.is_empty() => {
                    backoff = Duration::from_millis(100);
                    self.settle_confirmed(confirming.take()).await;
                    self.idle_wait().await
                }
                Ok(mut claim) => {
                    backoff = Duration::from_millis(100);
                    let full = claim.rows.len() >= self.config.batch_size;
                    // a batch claimed ahead may have waited long enough
                    // for its lease to lapse and another relay to take rows
                    self.leases.ready(&*self.store, &mut claim).await;
                    let (confirms, claimed_next, ()) = tokio::join!(
                        self.send(&mut claim),
                        async {
                            match full {
                                true => Some(self.claim().await),
                                false => None,
                            }
                        },
                        self.settle_confirmed(confirming.take()),
                    );
                    confirming = Some((claim, confirms));
                    match claimed_next {
                        Some(Ok(c)) => next = Some(c),
                        Some(Err(e)) => tracing::warn!(error = %e, "relay claim failed"),
                        None => {}
                    }
                    if full {
                        continue;
                    }
                    self.settle_confirmed(confirming.take()).await;
                    self.idle_wait().await
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "relay round failed");
                    let b = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    b
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = &mut notified => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        self.settle_confirmed(confirming.take()).await;
        // a batch claimed ahead and never sent goes back at once, rather
        // than waiting out its lease after every restart
        if let Some(c) = next.take() {
            self.leases.forget(&c.lease);
            let rows = c.row_ids();
            if let Err(e) = self.store.release_outbox(&c.lease, &rows, now_ms()).await {
                tracing::warn!(error = %e, rows = rows.len(), "cannot release the rows claimed ahead; they are published once their lease runs out");
            }
        }
        tracing::info!("relay stopped");
    }

    /// Waits for the confirms of the batch sent last, if any, and settles
    /// it. A failure leaves its rows leased: they are published again once
    /// the lease runs out.
    async fn settle_confirmed(&self, confirming: Option<(OutboxClaim, Confirms)>) {
        if let Some((claim, confirms)) = confirming {
            let results = confirms.await;
            if let Err(e) = self.settle(&claim, results).await {
                tracing::warn!(error = %e, rows = claim.rows.len(), "cannot mark published rows; they will be published again after the claim lease");
            }
        }
    }

    async fn idle_wait(&self) -> Duration {
        let poll = self.config.poll_interval;
        match self.store.next_due().await {
            Ok(Some(due)) => {
                let ms = (due - now_ms()).max(0) as u64;
                poll.min(Duration::from_millis(ms.max(5)))
            }
            _ => poll,
        }
    }
}
