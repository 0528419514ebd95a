//! [`Subscription`] over a consumer group member: one consumer thread per
//! subscription (see `consumer.rs`); `recv`, `ack` and `release` work on the
//! shared tracker.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::time::Instant;

use super::config::KafkaConfig;
use super::consumer::{self, Context, Shared};
use crate::{AckToken, BrokerError, Delivery, SubscribeOptions, Subscription};

/// A member of a consumer group on one topic. Offsets are committed only up
/// to the lowest delivery not yet acknowledged on each partition; dropping the
/// subscription commits what was acknowledged and leaves the group, so its
/// un-acknowledged deliveries go to the remaining members.
pub struct KafkaSubscription {
    shared: Arc<Shared>,
    max_in_flight: usize,
    stats: RecvStats,
}

/// What `recv` did, logged (debug) about once a second: how often it came
/// back empty (and how often because `max_in_flight` were held) and how long
/// the subscriber waited in it.
#[derive(Default)]
struct RecvStats {
    since: Option<std::time::Instant>,
    calls: usize,
    empty: usize,
    full: usize,
    delivered: usize,
    acked: usize,
    waited: Duration,
}

impl RecvStats {
    fn report(&mut self, topic: &str) {
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() < Duration::from_secs(1) {
            return;
        }
        let s = std::mem::take(self);
        tracing::debug!(
            topic,
            calls = s.calls,
            empty = s.empty,
            full = s.full,
            delivered = s.delivered,
            acked = s.acked,
            waited_ms = s.waited.as_millis() as u64,
            "kafka recv, last second"
        );
        self.since = Some(std::time::Instant::now());
    }
}

impl KafkaSubscription {
    /// Joins `options.group` on `topic` and waits (up to the request timeout)
    /// for the group's first assignment, so that messages published after this
    /// returns reach the group promptly. A new group starts at the earliest
    /// offset.
    pub(crate) async fn start(
        config: &KafkaConfig,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Self, BrokerError> {
        let max_in_flight = options.max_in_flight.max(1);
        let shared = Arc::new(Shared::new(topic));
        let context = Context {
            shared: shared.clone(),
        };
        let consumer: BaseConsumer<Context> = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap)
            .set("group.id", &options.group)
            .set("client.id", "sluice-worker")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "session.timeout.ms",
                config.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (config.session_timeout.as_millis() / 5)
                    .max(100)
                    .to_string(),
            )
            .set("fetch.wait.max.ms", "100")
            .set("queued.max.messages.kbytes", "16384")
            .create_with_context(context)
            .map_err(|e| BrokerError::Unavailable(format!("cannot create kafka consumer: {e}")))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| BrokerError::Unavailable(format!("cannot subscribe to {topic}: {e}")))?;
        let mut assignments = shared.assignments.subscribe();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("kafka-{topic}"))
            .spawn(move || consumer::run(consumer, thread_shared, max_in_flight))
            .map_err(|e| BrokerError::Unavailable(format!("cannot start consumer thread: {e}")))?;
        let subscription = Self {
            shared,
            max_in_flight,
            stats: RecvStats::default(),
        };
        let joined =
            tokio::time::timeout(config.request_timeout, assignments.wait_for(|n| *n > 0)).await;
        if !matches!(joined, Ok(Ok(_))) {
            tracing::warn!(topic, group = %options.group, "no partition assignment yet; consuming once the group settles");
        }
        Ok(subscription)
    }
}

/// How long dropping a subscription waits for its consumer to leave the group.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

impl Drop for KafkaSubscription {
    /// Stops the consumer thread and waits (briefly, bounded) until it has
    /// committed what was acknowledged and left the group.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        while !self.shared.stopped.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        self.stats.report(&self.shared.topic);
        self.stats.calls += 1;
        let t0 = Instant::now();
        let deadline = t0 + wait;
        loop {
            let woken = self.shared.wake.notified();
            let now = Instant::now();
            let (got, due, full) = {
                let mut t = self.shared.tracker();
                let got = t.take(max, self.max_in_flight, now.into_std());
                let full = t.in_flight() >= self.max_in_flight;
                (got, t.next_due(), full)
            };
            if !got.is_empty() {
                // The consumer thread may be holding for room in the buffer.
                self.shared.room.notify_one();
            }
            if !got.is_empty() || now >= deadline || max == 0 {
                self.stats.waited += t0.elapsed();
                self.stats.delivered += got.len();
                if got.is_empty() {
                    self.stats.empty += 1;
                    self.stats.full += usize::from(full);
                }
                return Ok(got);
            }
            if self.shared.stopped.load(Ordering::Acquire) {
                return Err(BrokerError::Closed(format!(
                    "kafka consumer of {} stopped",
                    self.shared.topic
                )));
            }
            let until = due.map_or(deadline, |d| Instant::from_std(d).min(deadline));
            let _ = tokio::time::timeout_at(until, woken).await;
        }
    }

    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), BrokerError> {
        self.stats.acked += tokens.len();
        self.shared.tracker().ack(tokens);
        Ok(())
    }

    async fn release(&mut self, tokens: &[AckToken], delay: Duration) -> Result<(), BrokerError> {
        let at = std::time::Instant::now() + delay;
        self.shared.tracker().release(tokens, at);
        self.shared.wake.notify_one();
        Ok(())
    }
}
