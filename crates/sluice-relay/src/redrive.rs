//! Redrive: publishing again the jobs a broker lost.
//!
//! A job reads as `published` once the broker acknowledged it. A broker that
//! loses acknowledged messages (an unreplicated Kafka log whose tail is lost
//! on a crash, a RabbitMQ queue deleted by hand) would otherwise leave such a
//! job waiting for ever. So every so often each queue's jobs still
//! `published` with no attempt started and unchanged for at least `after`
//! are listed, and given a new outbox row for the same attempt (see
//! [`sluice_store::OutboxStore::redrive_published`]) once the broker shows
//! that the queue's workers have read everything published before the
//! listing:
//! - at once, when the queue's consumer lag reads 0 before and after the
//!   listing (every backend);
//! - on a queue that stays busy (Kafka, whose messages have positions): at a
//!   later check, once the workers' group has consumed up to a mark of the
//!   topic's end taken after the listing
//!   ([`sluice_broker::Broker::consumer_mark`]), whatever was published
//!   after the mark. This needs exact marks: a broker that reports a
//!   partition's end short (tansu 0.6 may, after a batch of several records)
//!   can make needless copies.
//!
//! Jobs started or changed meanwhile are left alone by the store. A copy of a
//! message that was not lost after all is harmless: workers start each
//! attempt once.

use std::sync::Arc;
use std::time::Duration;

use sluice_broker::{answer_within, consumer_lag_within, Broker, ConsumerMark};
use sluice_core::{now_ms, QueueConfig};
use sluice_store::{LostJob, Store, StoreError};
use tokio_util::sync::CancellationToken;

/// Longest wait for one queue's consumer lag.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a mark of a topic's end or the group's positions (one
/// request per partition on Kafka, one after another).
const MARK_TIMEOUT: Duration = Duration::from_secs(30);
/// Most jobs redriven per queue and check.
const BATCH: usize = 1000;

/// When jobs count as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedriveConfig {
    /// How long a published job must have gone unchanged (since its enqueue,
    /// retry or redrive) before it is listed, to count as lost once the
    /// queue's workers have read everything published before the listing.
    /// Zero turns redrive off.
    pub after: Duration,
}

impl Default for RedriveConfig {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(600),
        }
    }
}

impl RedriveConfig {
    /// How often queues are checked: a quarter of `after`, from 1 s to 60 s.
    pub fn interval(&self) -> Duration {
        (self.after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }
}

/// A queue's names on the broker.
struct Target {
    queue: String,
    topic: String,
    group: String,
}

/// Jobs listed as lost, waiting for the workers' group to pass `mark`.
struct Waiting {
    mark: ConsumerMark,
    lost: Vec<LostJob>,
}

/// Checks the configured queues for lost jobs; see the module documentation.
pub struct Redrive {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    targets: Vec<Target>,
    config: RedriveConfig,
}

impl Redrive {
    pub fn new(
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        queues: &[QueueConfig],
        config: RedriveConfig,
    ) -> Self {
        let targets = queues
            .iter()
            .map(|q| Target {
                queue: q.name.clone(),
                topic: q.topic(),
                group: q.worker_group(),
            })
            .collect();
        Self {
            store,
            broker,
            targets,
            config,
        }
    }

    /// Checks every queue each [`RedriveConfig::interval`] until `shutdown`;
    /// returns at once when redrive is off.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.config.after.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval(self.config.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut waiting: Vec<Option<Waiting>> = self.targets.iter().map(|_| None).collect();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (t, waiting) in self.targets.iter().zip(&mut waiting) {
                if let Err(e) = self.check(t, waiting).await {
                    tracing::warn!(queue = %t.queue, error = %e, "redrive check failed");
                }
            }
        }
    }

    /// Redrives the queue's lost jobs once its consumers have read
    /// everything published before they were listed; returns how many.
    /// Jobs waiting for a mark go first, whatever the lag, once the group
    /// passed it; while they wait, nothing else is listed. With the consumer
    /// lag at 0, the jobs are listed and the lag is read again: each listed
    /// job was on the broker by then, so a lag of 0 means the workers read
    /// it (and started its attempt, which takes it off the list) or the
    /// broker lost it. Otherwise the jobs listed wait in `waiting` with a
    /// mark of the topic's end taken after the listing, for a later check
    /// (a broker without positions gives no mark: they are listed again
    /// next time).
    async fn check(&self, t: &Target, waiting: &mut Option<Waiting>) -> Result<usize, StoreError> {
        if let Some(w) = waiting {
            if self.passed(t, &w.mark).await == Some(true) {
                let lost = std::mem::take(&mut w.lost);
                *waiting = None;
                return self.redrive(t, &lost).await;
            }
        }
        let caught_up = self.caught_up(t).await;
        if !caught_up && waiting.is_some() {
            return Ok(0);
        }
        let lost = self.list(t).await?;
        if lost.is_empty() {
            *waiting = None;
            return Ok(0);
        }
        if caught_up && self.caught_up(t).await {
            *waiting = None;
            return self.redrive(t, &lost).await;
        }
        *waiting = self.mark(t).await.map(|mark| Waiting { mark, lost });
        Ok(0)
    }

    async fn list(&self, t: &Target) -> Result<Vec<LostJob>, StoreError> {
        let after = i64::try_from(self.config.after.as_millis()).unwrap_or(i64::MAX);
        self.store
            .lost_jobs(&t.queue, now_ms().saturating_sub(after), BATCH)
            .await
    }

    async fn redrive(&self, t: &Target, lost: &[LostJob]) -> Result<usize, StoreError> {
        let ids = self.store.redrive_published(&t.queue, lost).await?;
        if !ids.is_empty() {
            metrics::counter!("sluice_relay_redriven_jobs_total", "queue" => t.queue.clone())
                .increment(ids.len() as u64);
            tracing::warn!(
                queue = %t.queue,
                jobs = ids.len(),
                first_job_id = %ids[0],
                "jobs published long ago were never delivered and the broker has nothing left for the queue's workers; publishing them again"
            );
        }
        Ok(ids.len())
    }

    /// Whether the broker reports that the queue's consumers read everything.
    async fn caught_up(&self, t: &Target) -> bool {
        consumer_lag_within(&*self.broker, &t.topic, &t.group, LAG_TIMEOUT).await == Some(0)
    }

    /// Where the queue's topic ends now; `None` when the backend has no
    /// positions or the broker cannot say in time.
    async fn mark(&self, t: &Target) -> Option<ConsumerMark> {
        let mark = self.broker.consumer_mark(&t.topic, &t.group);
        answer_within("the topic's end", &t.topic, MARK_TIMEOUT, mark).await
    }

    /// Whether the queue's consumers passed `mark`; `None` when the broker
    /// cannot say in time.
    async fn passed(&self, t: &Target, mark: &ConsumerMark) -> Option<bool> {
        let passed = self.broker.consumer_passed(&t.topic, &t.group, mark);
        answer_within("the consumers' positions", &t.topic, MARK_TIMEOUT, passed).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_quarter_of_after_within_bounds() {
        let every = |s| RedriveConfig {
            after: Duration::from_secs(s),
        };
        assert_eq!(every(600).interval(), Duration::from_secs(60));
        assert_eq!(every(20).interval(), Duration::from_secs(5));
        assert_eq!(every(2).interval(), Duration::from_secs(1));
    }
}
