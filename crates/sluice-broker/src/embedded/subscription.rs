//! Consuming: leases with a visibility timeout, acks and releases fenced by
//! the lease's receipt.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::now_ms;
use sqlx::Row;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{unavailable, Shared};
use crate::{AckToken, BrokerError, Delivery, IncomingMessage, SubscribeOptions, Subscription};

const SQL_HAS_WORK: &str = include_str!("sql/has_work.sql");
const SQL_LEASE_VISIBLE: &str = include_str!("sql/lease_visible.sql");
const SQL_GROUP_CURSOR: &str = include_str!("sql/group_cursor.sql");
const SQL_LEASE_NEW: &str = include_str!("sql/lease_new.sql");
const SQL_ADVANCE_CURSOR: &str = include_str!("sql/advance_cursor.sql");
const SQL_FETCH_MESSAGES: &str = include_str!("sql/fetch_messages.sql");
const SQL_ACK: &str = include_str!("sql/ack.sql");
const SQL_RELEASE: &str = include_str!("sql/release.sql");

/// One delivery this subscription holds: the message and the lease's receipt.
#[derive(Debug, Clone, Copy)]
struct Held {
    seq: i64,
    receipt: i64,
}

/// A subscription of one group to one topic of an
/// [`EmbeddedBroker`](super::EmbeddedBroker). Dropping it releases nothing:
/// its un-acked deliveries come back after the visibility timeout, as after a
/// crash.
pub struct EmbeddedSubscription {
    shared: Arc<Shared>,
    topic: String,
    group: String,
    max_in_flight: usize,
    wake: Arc<Notify>,
    /// Deliveries handed out and not yet acked or released, by token.
    held: HashMap<u64, Held>,
    next_token: u64,
}

impl EmbeddedSubscription {
    pub(crate) fn new(shared: Arc<Shared>, topic: String, options: SubscribeOptions) -> Self {
        let wake = shared.waker(&topic);
        Self {
            shared,
            topic,
            group: options.group,
            max_in_flight: options.max_in_flight.max(1),
            wake,
            held: HashMap::new(),
            next_token: 1,
        }
    }

    /// Leases up to `n` visible messages of the group in one write
    /// transaction: first expired or released deliveries, then messages past
    /// the group's cursor.
    async fn lease(&mut self, n: usize) -> Result<Vec<Delivery>, BrokerError> {
        let pool = &self.shared.pool;
        let now = now_ms();
        let has_work: bool = sqlx::query_scalar(SQL_HAS_WORK)
            .bind(&self.topic)
            .bind(&self.group)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(unavailable)?;
        if !has_work {
            return Ok(Vec::new());
        }
        let receipt = new_receipt();
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let now = now_ms();
        let until = now.saturating_add(self.shared.config.visibility_ms());
        let mut leased: Vec<(i64, i64)> = sqlx::query(SQL_LEASE_VISIBLE)
            .bind(&self.topic)
            .bind(&self.group)
            .bind(now)
            .bind(until)
            .bind(receipt)
            .bind(n as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if leased.len() < n {
            let cursor: Option<i64> = sqlx::query_scalar(SQL_GROUP_CURSOR)
                .bind(&self.topic)
                .bind(&self.group)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            let cursor = cursor.ok_or_else(|| {
                BrokerError::Topology(format!(
                    "consumer group {:?} of topic {:?} vanished",
                    self.group, self.topic
                ))
            })?;
            let fresh: Vec<(i64, i64)> = sqlx::query(SQL_LEASE_NEW)
                .bind(&self.topic)
                .bind(&self.group)
                .bind(cursor)
                .bind(until)
                .bind(receipt)
                .bind((n - leased.len()) as i64)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            if let Some(last) = fresh.iter().map(|(seq, _)| *seq).max() {
                sqlx::query(SQL_ADVANCE_CURSOR)
                    .bind(&self.topic)
                    .bind(&self.group)
                    .bind(last)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            leased.extend(fresh);
        }
        tx.commit().await.map_err(unavailable)?;
        if leased.is_empty() {
            return Ok(Vec::new());
        }
        leased.sort_unstable();
        self.load(&leased, receipt).await
    }

    /// Reads the leased messages and records them as held.
    async fn load(
        &mut self,
        leased: &[(i64, i64)],
        receipt: i64,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let seqs: Vec<i64> = leased.iter().map(|(seq, _)| *seq).collect();
        let rows = sqlx::query(SQL_FETCH_MESSAGES)
            .bind(serde_json::to_string(&seqs).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&self.shared.pool)
            .await
            .map_err(unavailable)?;
        let mut by_seq: HashMap<i64, sqlx::sqlite::SqliteRow> =
            rows.into_iter().map(|r| (r.get::<i64, _>(0), r)).collect();
        let mut out = Vec::with_capacity(leased.len());
        for &(seq, count) in leased {
            // Gone only if our lease expired meanwhile and another holder
            // acked it: nothing to deliver.
            let Some(row) = by_seq.remove(&seq) else {
                continue;
            };
            let attributes: String = row.get(2);
            let attributes: BTreeMap<String, String> =
                serde_json::from_str(&attributes).unwrap_or_default();
            let token = self.next_token;
            self.next_token += 1;
            self.held.insert(token, Held { seq, receipt });
            out.push(Delivery::new(
                AckToken(token),
                u32::try_from(count.saturating_sub(1)).unwrap_or(u32::MAX),
                IncomingMessage {
                    topic: self.topic.clone(),
                    key: row.get(1),
                    attributes,
                    content_type: row.get(3),
                    body: row.get(4),
                    position: format!("{}/{}", self.topic, seq),
                    stable_position: true,
                },
            ));
        }
        Ok(out)
    }

    /// `[seq, receipt]` pairs of the held deliveries among `tokens`.
    fn pairs(&self, tokens: &[AckToken]) -> Vec<(i64, i64)> {
        tokens
            .iter()
            .filter_map(|t| self.held.get(&t.0))
            .map(|h| (h.seq, h.receipt))
            .collect()
    }

    fn forget(&mut self, tokens: &[AckToken]) {
        for t in tokens {
            self.held.remove(&t.0);
        }
    }
}

/// A random, non-zero, positive lease receipt (0 means "released").
fn new_receipt() -> i64 {
    let (hi, _) = uuid::Uuid::new_v4().as_u64_pair();
    ((hi >> 1) as i64).max(1)
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    /// Leases up to `max` messages (and no more than `max_in_flight` minus
    /// those held), waiting up to `wait` for some.
    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        let wake = self.wake.clone();
        loop {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let room = max.min(self.max_in_flight.saturating_sub(self.held.len()));
            if room > 0 {
                let got = self.lease(room).await?;
                if !got.is_empty() {
                    return Ok(got);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let nap = (deadline - now).min(self.shared.config.poll_interval);
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    /// Deletes the deliveries whose lease is still ours; deliveries handed to
    /// someone else since (expired lease) are left alone. Unknown tokens are
    /// ignored.
    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), BrokerError> {
        let pairs = self.pairs(tokens);
        if !pairs.is_empty() {
            sqlx::query(SQL_ACK)
                .bind(&self.topic)
                .bind(&self.group)
                .bind(serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into()))
                .execute(&self.shared.pool)
                .await
                .map_err(unavailable)?;
        }
        self.forget(tokens);
        self.shared.maybe_compact(&self.topic).await;
        Ok(())
    }

    /// Makes the deliveries whose lease is still ours visible again after
    /// `delay`, without a new lease holder.
    async fn release(&mut self, tokens: &[AckToken], delay: Duration) -> Result<(), BrokerError> {
        let pairs = self.pairs(tokens);
        if !pairs.is_empty() {
            let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4);
            sqlx::query(SQL_RELEASE)
                .bind(&self.topic)
                .bind(&self.group)
                .bind(serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into()))
                .bind(now_ms().saturating_add(delay_ms))
                .execute(&self.shared.pool)
                .await
                .map_err(unavailable)?;
            if delay.is_zero() {
                self.shared.wake(&self.topic);
            }
        }
        self.forget(tokens);
        Ok(())
    }
}
