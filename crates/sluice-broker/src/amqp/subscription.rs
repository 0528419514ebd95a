//! Consuming one queue: manual acks, prefetch = `max_in_flight`, a new
//! channel after a lost one, and delayed releases that hold the delivery
//! until its delay has passed (never a hot requeue loop).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio::time::Instant;

use super::codec;
use super::connection::Connector;
use super::unavailable;
use crate::{AckToken, BrokerError, Delivery, Subscription};

/// After the first delivery, how long `recv` lingers for more to batch.
const LINGER: Duration = Duration::from_millis(2);
/// Longest pause of a `recv` that failed to (re)open its channel.
const REOPEN_PAUSE: Duration = Duration::from_millis(250);
/// Bits of an [`AckToken`] holding the delivery tag; the rest hold the
/// channel generation, so tokens of a lost channel are recognised as stale.
const TAG_BITS: u32 = 40;

/// A subscription to one queue on its own channel. Tokens name a delivery on
/// one channel: after the channel is lost (its deliveries go back to the
/// queue) older tokens are stale, and acking or releasing them does nothing.
pub struct AmqpSubscription {
    connector: Arc<Connector>,
    topic: String,
    queue: String,
    prefetch: u16,
    live: Option<Live>,
    /// Deliveries received but not yet returned by `recv`.
    buffered: VecDeque<lapin::message::Delivery>,
    held: Arc<Mutex<Held>>,
}

struct Live {
    channel: Channel,
    consumer: Consumer,
}

/// Deliveries of the current channel not yet acked or released.
#[derive(Default)]
struct Held {
    generation: u64,
    tags: BTreeSet<u64>,
}

impl Held {
    /// The delivery tags of `tokens` that are un-acked on the current
    /// channel, removed from the held set.
    fn take(&mut self, tokens: &[AckToken]) -> Vec<u64> {
        let tags = self.find(tokens);
        for t in &tags {
            self.tags.remove(t);
        }
        tags
    }

    /// The delivery tags of `tokens` that are un-acked on the current
    /// channel, sorted, left in the held set.
    fn find(&self, tokens: &[AckToken]) -> Vec<u64> {
        let mut tags: Vec<u64> = tokens
            .iter()
            .map(|t| split(*t))
            .filter(|(generation, tag)| *generation == self.generation && self.tags.contains(tag))
            .map(|(_, tag)| tag)
            .collect();
        tags.sort_unstable();
        tags
    }
}

fn token(generation: u64, tag: u64) -> AckToken {
    AckToken((generation << TAG_BITS) | (tag & ((1 << TAG_BITS) - 1)))
}

fn split(t: AckToken) -> (u64, u64) {
    (t.0 >> TAG_BITS, t.0 & ((1 << TAG_BITS) - 1))
}

impl AmqpSubscription {
    pub(crate) fn new(connector: Arc<Connector>, topic: &str, queue: &str, prefetch: u16) -> Self {
        Self {
            connector,
            topic: topic.to_string(),
            queue: queue.to_string(),
            prefetch,
            live: None,
            buffered: VecDeque::new(),
            held: Arc::new(Mutex::new(Held::default())),
        }
    }

    /// Opens the channel and consumer when there is none (or it was lost).
    pub(crate) async fn ensure_live(&mut self) -> Result<(), BrokerError> {
        if self
            .live
            .as_ref()
            .is_some_and(|l| l.channel.status().connected())
        {
            return Ok(());
        }
        if self.live.take().is_some() {
            tracing::warn!(queue = %self.queue, "amqp channel lost; its deliveries return to the queue");
        }
        self.buffered.clear();
        {
            let mut held = self.held.lock().unwrap();
            held.generation += 1;
            held.tags.clear();
        }
        let channel = self.connector.channel().await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| unavailable("cannot set prefetch", e))?;
        let consumer = channel
            .basic_consume(
                &self.queue,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| unavailable(&format!("cannot consume queue {:?}", self.queue), e))?;
        self.live = Some(Live { channel, consumer });
        Ok(())
    }

    /// The next delivery from the consumer, waiting until `deadline`;
    /// `Ok(None)` when none came.
    async fn next(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<lapin::message::Delivery>, BrokerError> {
        if let Some(d) = self.buffered.pop_front() {
            return Ok(Some(d));
        }
        let Some(live) = self.live.as_mut() else {
            return Ok(None);
        };
        match tokio::time::timeout_at(deadline, live.consumer.next()).await {
            Err(_) => Ok(None),
            Ok(Some(Ok(d))) => Ok(Some(d)),
            Ok(Some(Err(e))) => {
                self.live = None;
                Err(unavailable("amqp consumer failed", e))
            }
            Ok(None) => {
                self.live = None;
                Err(BrokerError::Unavailable(format!(
                    "amqp consumer of queue {:?} was cancelled",
                    self.queue
                )))
            }
        }
    }

    fn wrap(&self, d: lapin::message::Delivery) -> Delivery {
        let mut held = self.held.lock().unwrap();
        held.tags.insert(d.delivery_tag);
        let t = token(held.generation, d.delivery_tag);
        drop(held);
        codec::delivery(&self.topic, &self.queue, t, d)
    }

    fn channel(&self) -> Option<Channel> {
        self.live.as_ref().map(|l| l.channel.clone())
    }
}

#[async_trait]
impl Subscription for AmqpSubscription {
    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        let deadline = Instant::now() + wait;
        if let Err(e) = self.ensure_live().await {
            tokio::time::sleep(wait.min(REOPEN_PAUSE)).await;
            return Err(e);
        }
        let mut got = Vec::new();
        if max == 0 {
            return Ok(got);
        }
        let first = match self.next(deadline).await {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(got),
            Err(e) => return Err(e),
        };
        got.push(self.wrap(first));
        let linger = Instant::now() + LINGER;
        while got.len() < max {
            match self.next(linger).await {
                Ok(Some(d)) => got.push(self.wrap(d)),
                // What arrived so far is handed out; the error shows again
                // on the next call.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(got)
    }

    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), BrokerError> {
        let Some(channel) = self.channel() else {
            return Ok(()); // stale: the channel is gone and its deliveries with it
        };
        // One multiple-ack covers the acked tags below every still-held one.
        let (tags, upto) = {
            let mut held = self.held.lock().unwrap();
            let before: Vec<u64> = held.tags.iter().copied().collect();
            let tags = held.take(tokens);
            let acked: HashSet<u64> = tags.iter().copied().collect();
            let upto = before
                .iter()
                .take_while(|t| acked.contains(t))
                .last()
                .copied();
            (tags, upto)
        };
        if tags.is_empty() {
            return Ok(());
        }
        let mut sends = Vec::new();
        if let Some(upto) = upto {
            sends.push(channel.basic_ack(upto, BasicAckOptions { multiple: true }));
        }
        for &t in tags.iter().filter(|t| upto.is_none_or(|u| **t > u)) {
            sends.push(channel.basic_ack(t, BasicAckOptions { multiple: false }));
        }
        for r in futures::future::join_all(sends).await {
            r.map_err(|e| unavailable("ack failed; the messages will be redelivered", e))?;
        }
        Ok(())
    }

    async fn release(&mut self, tokens: &[AckToken], delay: Duration) -> Result<(), BrokerError> {
        let Some(channel) = self.channel() else {
            return Ok(());
        };
        let valid: Vec<AckToken> = {
            let held = self.held.lock().unwrap();
            tokens
                .iter()
                .copied()
                .filter(|t| {
                    let (g, tag) = split(*t);
                    g == held.generation && held.tags.contains(&tag)
                })
                .collect()
        };
        if valid.is_empty() {
            return Ok(());
        }
        if delay.is_zero() {
            let tags = self.held.lock().unwrap().take(&valid);
            return requeue(&channel, &tags).await;
        }
        // Held (still un-acked, so still counted by the prefetch) until the
        // delay has passed, then handed back to the queue.
        let held = self.held.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // Still held while the nack is on its way: a concurrent
            // multiple-ack stops below a held tag, so it cannot ack these.
            let tags = held.lock().unwrap().find(&valid);
            if let Err(e) = requeue(&channel, &tags).await {
                tracing::debug!(error = %e, "delayed release failed; the channel is gone and the messages with it");
            }
            held.lock().unwrap().take(&valid);
        });
        Ok(())
    }
}

async fn requeue(channel: &Channel, tags: &[u64]) -> Result<(), BrokerError> {
    let options = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    let sends = tags.iter().map(|t| channel.basic_nack(*t, options));
    for r in futures::future::join_all(sends).await {
        r.map_err(|e| {
            unavailable(
                "release failed; the messages come back when the channel closes",
                e,
            )
        })?;
    }
    Ok(())
}

impl Drop for AmqpSubscription {
    fn drop(&mut self) {
        // Stale every token (pending delayed releases included) and close the
        // channel, so its un-acked deliveries go back to the queue now.
        self.held.lock().unwrap().generation += 1;
        if let Some(live) = self.live.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = live.channel.close(200, "subscription dropped").await;
                });
            }
        }
    }
}
