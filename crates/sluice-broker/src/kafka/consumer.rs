//! The consumer thread of a subscription: it alone polls librdkafka, so
//! rebalances, fetching, pausing and commits never interleave.
//!
//! Fetched messages wait in the tracker's buffer until the subscriber takes
//! them. When the buffer is full the thread stops draining librdkafka for a
//! moment (`HOLD`): librdkafka's own fetch queue, bounded by
//! `queued.max.messages.kbytes`, then stops fetching by itself and keeps what
//! it prefetched, so a subscriber that takes steadily never waits for a new
//! fetch. Only if the buffer stays full that long (the subscriber holds its
//! `max_in_flight` deliveries, or takes nothing) are the partitions paused,
//! and the thread keeps polling so that rebalances are served and the group
//! membership stays alive. Pausing drops librdkafka's prefetched messages and
//! a resume fetches again (see `Tracker::set_paused`), so the partitions are
//! resumed only once the subscriber has taken half of the buffer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::{watch, Notify};

use super::headers;
use super::tracker::{Fetch, Tracker};

/// What the consumer thread shares with its subscription.
pub(crate) struct Shared {
    pub topic: String,
    pub tracker: Mutex<Tracker>,
    /// Signalled when messages were fetched.
    pub wake: Notify,
    /// Signalled (with the tracker's lock) when the subscriber took messages
    /// out of the buffer.
    pub room: Condvar,
    /// Set by the subscription when it is dropped.
    pub stop: AtomicBool,
    /// Set by the thread when it has ended.
    pub stopped: AtomicBool,
    /// Counts assignments (rebalances that gave this member its share).
    pub assignments: watch::Sender<u64>,
}

impl Shared {
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            tracker: Mutex::new(Tracker::default()),
            wake: Notify::new(),
            room: Condvar::new(),
            stop: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            assignments: watch::channel(0).0,
        }
    }

    pub fn tracker(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Rebalance and log callbacks of the consumer, run on its thread.
pub(crate) struct Context {
    pub shared: Arc<Shared>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(topic = %self.shared.topic, error = %error, "kafka consumer: {reason}");
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = partitions_of(tpl, &self.shared.topic);
            tracing::info!(topic = %self.shared.topic, ?partitions, "kafka partitions revoked");
            // What was acknowledged since the last commit, lest the next
            // owner run it again.
            commit(consumer, &self.shared);
            self.shared.tracker().revoke(&partitions);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = partitions_of(tpl, &self.shared.topic);
                tracing::info!(topic = %self.shared.topic, ?partitions, "kafka partitions assigned");
                // Where fetching starts, to notice records a broker skips.
                let committed = consumer
                    .committed_offsets((*tpl).clone(), COMMITTED_TIMEOUT)
                    .map_err(|e| tracing::warn!(topic = %self.shared.topic, error = %e, "cannot read committed offsets"))
                    .ok();
                let starts: Vec<(i32, Option<i64>)> = partitions
                    .iter()
                    .map(|&p| {
                        let start = committed.as_ref().and_then(|c| {
                            match c.find_partition(&self.shared.topic, p)?.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            }
                        });
                        (p, start)
                    })
                    .collect();
                self.shared.tracker().assign(&starts);
                self.shared.assignments.send_modify(|n| *n += 1);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(topic = %self.shared.topic, error = %e, "kafka rebalance failed")
            }
        }
    }
}

/// librdkafka's log lines, through tracing.
pub(crate) fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "{fac}: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
    }
}

fn partitions_of(tpl: &TopicPartitionList, topic: &str) -> Vec<i32> {
    tpl.elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
}

const POLL: Duration = Duration::from_millis(20);
/// How long a full buffer may keep the thread from polling before the
/// partitions are paused (rebalances wait at most about this long).
const HOLD: Duration = Duration::from_millis(250);
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);
const STALL_CHECK: Duration = Duration::from_millis(250);
const STALL_AFTER: Duration = Duration::from_millis(500);
/// How often acknowledged offsets are committed (besides on revocation and
/// when the consumer stops): each commit is a synchronous round trip.
const COMMIT_EVERY: Duration = Duration::from_millis(100);

/// Probes partitions that fetched nothing for a while by seeking back a
/// little: a broker may skip the rest of a record batch when a fetch starts
/// inside it and then serve nothing until newer records arrive (tansu 0.6 also
/// misreports the high watermark, so it cannot tell). Records before the
/// expected offset are ignored; each expected offset is probed until an
/// earlier record shows up, then left alone until fetching resumes after a
/// pause (see `Tracker::set_paused`).
fn unstick(consumer: &BaseConsumer<Context>, shared: &Shared) {
    let idle = shared.tracker().idle(STALL_AFTER);
    for (partition, expected) in idle {
        let Some(to) = shared.tracker().stuck(partition, expected) else {
            continue;
        };
        tracing::debug!(topic = %shared.topic, partition, expected, seek_to = to, "kafka partition idle; probing for skipped records");
        if let Err(e) = consumer.seek(&shared.topic, partition, Offset::Offset(to), SEEK_TIMEOUT) {
            tracing::warn!(topic = %shared.topic, partition, error = %e, "kafka seek failed");
        }
    }
}

/// Runs the consumer until the subscription stops it: commits what was
/// acknowledged, then leaves the group (revoking, so committing nothing more).
/// `buffer` is how many fetched messages may wait before fetching pauses.
pub(crate) fn run(client: BaseConsumer<Context>, shared: Arc<Shared>, buffer: usize) {
    // however the thread ends (a panic too), the subscription learns it,
    // after the consumer (declared later, dropped first) has left the group
    let _stopped = StoppedOnExit(shared.clone());
    let consumer = client;
    let buffer = buffer.max(1);
    let mut stall_check = std::time::Instant::now();
    let mut last_commit = std::time::Instant::now();
    // Since when the buffer is full, while it is.
    let mut full_since: Option<std::time::Instant> = None;
    let mut paused = false;
    let mut stats = Stats::default();
    while !shared.stop.load(Ordering::Acquire) {
        stats.report(&shared);
        if last_commit.elapsed() >= COMMIT_EVERY {
            last_commit = std::time::Instant::now();
            commit(&consumer, &shared);
            stats.commits += 1;
            stats.commit_time += last_commit.elapsed();
        }
        let buffered = shared.tracker().buffered();
        if buffered < buffer {
            if full_since.take().is_some() && !paused {
                // Not fetching meanwhile was not idleness.
                shared.tracker().restart_idle_clocks();
            }
        } else {
            full_since.get_or_insert_with(std::time::Instant::now);
        }
        paused = if paused {
            buffered > buffer / 2
        } else {
            full_since.is_some_and(|t| t.elapsed() >= HOLD)
        };
        stats.pause_changes += set_pause(&consumer, &shared, paused);
        if full_since.is_some() && !paused {
            // Hold: leave the prefetched messages in librdkafka until the
            // subscriber makes room.
            let t = shared.tracker();
            if t.buffered() >= buffer {
                stats.holds += 1;
                let _ = shared.room.wait_timeout(t, POLL);
            }
            continue;
        }
        if stall_check.elapsed() >= STALL_CHECK {
            stall_check = std::time::Instant::now();
            unstick(&consumer, &shared);
        }
        // Drains what librdkafka has fetched, up to the buffer's room (none
        // while paused, when polling serves rebalances and errors only).
        let room = buffer.saturating_sub(buffered).max(1);
        let mut fetched = 0;
        let mut timeout = POLL;
        while fetched < room {
            let t = std::time::Instant::now();
            let polled = consumer.poll(timeout);
            stats.poll_time += t.elapsed();
            stats.polls += 1;
            let verdict = match polled {
                None => break,
                Some(Ok(msg)) => {
                    let (partition, offset) = (msg.partition(), msg.offset());
                    let verdict = shared
                        .tracker()
                        .fetched(partition, offset, || headers::delivery(&msg));
                    (partition, offset, verdict)
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = %shared.topic, error = %e, "kafka consumer error");
                    break;
                }
            };
            match verdict {
                (_, _, Fetch::Accepted) => fetched += 1,
                (_, _, Fetch::Ignored) => stats.ignored += 1,
                (partition, offset, Fetch::SeekBack(to)) => {
                    stats.seek_backs += 1;
                    tracing::info!(topic = %shared.topic, partition, offset, seek_to = to, "kafka records skipped by the broker; seeking back");
                    let at = Offset::Offset(to);
                    if let Err(e) = consumer.seek(&shared.topic, partition, at, SEEK_TIMEOUT) {
                        tracing::warn!(topic = %shared.topic, partition, error = %e, "kafka seek failed");
                    }
                }
            }
            timeout = Duration::ZERO;
        }
        stats.fetched += fetched;
        if fetched > 0 {
            shared.wake.notify_one();
        }
    }
    commit(&consumer, &shared);
    drop(consumer); // closes: leaves the group, revoking every partition
}

/// Marks the consumer thread ended when dropped, and wakes the subscriber.
struct StoppedOnExit(Arc<Shared>);

impl Drop for StoppedOnExit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(topic = %self.0.topic, "kafka consumer thread panicked; its subscription is closed");
        }
        self.0.stopped.store(true, Ordering::Release);
        self.0.wake.notify_one();
    }
}

/// Pauses or resumes every assigned partition whose state differs; returns
/// how many changed. A resumed partition is sought to the offset after the
/// last one fetched, so nothing prefetched before the pause is skipped.
fn set_pause(consumer: &BaseConsumer<Context>, shared: &Shared, pause: bool) -> usize {
    let changes = shared.tracker().set_paused(pause);
    let n = changes.len();
    for (partition, next) in changes {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&shared.topic, partition);
        let result = if pause {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl).and_then(|()| match next {
                Some(offset) => consumer.seek(
                    &shared.topic,
                    partition,
                    Offset::Offset(offset),
                    SEEK_TIMEOUT,
                ),
                None => Ok(()),
            })
        };
        if let Err(e) = result {
            tracing::warn!(topic = %shared.topic, partition, pause, error = %e, "kafka pause/resume failed; will retry");
            shared.tracker().pause_unknown(partition);
        }
    }
    n
}

/// What the consumer thread did, logged (debug) about once a second.
#[derive(Default)]
struct Stats {
    since: Option<std::time::Instant>,
    polls: usize,
    fetched: usize,
    ignored: usize,
    seek_backs: usize,
    pause_changes: usize,
    holds: usize,
    commits: usize,
    poll_time: Duration,
    pause_time: Duration,
    commit_time: Duration,
}

impl Stats {
    fn report(&mut self, shared: &Shared) {
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() < Duration::from_secs(1) {
            return;
        }
        if self.polls > 0 && tracing::enabled!(tracing::Level::DEBUG) {
            let buffered = shared.tracker().buffered();
            tracing::debug!(
                topic = %shared.topic,
                polls = self.polls,
                fetched = self.fetched,
                ignored = self.ignored,
                seek_backs = self.seek_backs,
                pause_changes = self.pause_changes,
                holds = self.holds,
                commits = self.commits,
                poll_ms = self.poll_time.as_millis() as u64,
                pause_ms = self.pause_time.as_millis() as u64,
                commit_ms = self.commit_time.as_millis() as u64,
                buffered,
                "kafka consumer thread, last second"
            );
        }
        *self = Stats {
            since: Some(std::time::Instant::now()),
            ..Stats::default()
        };
    }
}

/// Commits, synchronously, each partition's contiguously acknowledged offset
/// where it moved. Runs between polls, so no rebalance happens meanwhile.
fn commit(consumer: &BaseConsumer<Context>, shared: &Shared) {
    let commits = shared.tracker().commits();
    if commits.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for &(partition, offset, _) in &commits {
        if let Err(e) = tpl.add_partition_offset(&shared.topic, partition, Offset::Offset(offset)) {
            tracing::warn!(topic = %shared.topic, error = %e, "kafka offset not committable");
            return;
        }
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => shared.tracker().committed(&commits),
        Err(e) => {
            tracing::warn!(topic = %shared.topic, error = %e, "kafka offset commit failed; will retry")
        }
    }
}
