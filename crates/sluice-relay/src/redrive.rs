//! Redrive: publishing again the jobs a broker lost.
//!
//! A job reads as `published` once the broker acknowledged it. A broker that
//! loses acknowledged messages (an unreplicated Kafka log whose tail is lost
//! on a crash, a RabbitMQ queue deleted by hand) would otherwise leave such a
//! job waiting for ever. So every so often, for each queue whose consumers
//! the broker reports as caught up (consumer lag 0: nothing waits on the
//! broker), jobs still `published` with no attempt started and unchanged for
//! at least `after` are listed, the lag is read again, and if it is still 0
//! they are given a new outbox row for the same attempt (see
//! [`sluice_store::OutboxStore::redrive_published`]). A copy of a message
//! that was not lost after all is harmless: workers start each attempt once.

use std::sync::Arc;
use std::time::Duration;

use sluice_broker::{consumer_lag_within, Broker};
use sluice_core::{now_ms, QueueConfig};
use sluice_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// Longest wait for one queue's consumer lag.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);
/// Most jobs redriven per queue and check.
const BATCH: usize = 1000;

/// When jobs count as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedriveConfig {
    /// How long a published job must have gone unchanged (since its enqueue,
    /// retry or redrive), with its queue caught up, before it counts as
    /// lost. Zero turns redrive off.
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
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for t in &self.targets {
                if let Err(e) = self.check(t).await {
                    tracing::warn!(queue = %t.queue, error = %e, "redrive check failed");
                }
            }
        }
    }

    /// Redrives the queue's lost jobs if its consumers are caught up;
    /// returns how many. The lag is read again after the jobs are listed:
    /// each was on the broker by then, so a lag of 0 means the workers read
    /// it (and started its attempt, which takes it off the list) or the
    /// broker lost it. The first read spares the store the listing while
    /// the queue is busy.
    async fn check(&self, t: &Target) -> Result<usize, StoreError> {
        if !self.caught_up(t).await {
            return Ok(0);
        }
        let after = i64::try_from(self.config.after.as_millis()).unwrap_or(i64::MAX);
        let lost = self
            .store
            .lost_jobs(&t.queue, now_ms().saturating_sub(after), BATCH)
            .await?;
        if lost.is_empty() || !self.caught_up(t).await {
            return Ok(0);
        }
        let ids = self.store.redrive_published(&t.queue, &lost).await?;
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
