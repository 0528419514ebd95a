//! Publishing with confirms: every message persistent and `mandatory`, a
//! batch spread over a few confirm-mode channels, each channel's messages
//! pipelined (all published, then all confirms awaited together). A channel
//! is held only while a batch's messages are sent on it, so the next batch
//! can be sent while the broker confirms this one.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use futures::FutureExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

use super::codec;
use super::connection::Connector;
use super::topology::NOT_FOUND;
use super::{reply_code, unavailable};
use crate::{BrokerError, Confirms, OutgoingMessage, Publisher};

/// Messages of a batch below which one channel carries them all.
const MIN_PER_CHANNEL: usize = 64;
/// Longest wait for one channel's share of a batch to be sent, and then
/// for it to be confirmed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// The AMQP publisher. A result is `Ok` only once the broker confirmed the
/// message (`basic.ack`) without returning it; a returned message (no queue
/// bound to the topic's exchange) is [`BrokerError::Rejected`], a `nack` or a
/// lost channel [`BrokerError::Unavailable`]. Publishing to a topic whose
/// exchange does not exist is rejected without touching a channel, and a
/// body larger than the server's `max_message_size` is
/// [`BrokerError::Refused`] without being sent (the server would close the
/// channel, failing the messages sent with it).
pub struct AmqpPublisher {
    connector: Arc<Connector>,
    /// Confirm-mode channels, opened on first use and after failures.
    channels: Arc<[tokio::sync::Mutex<Option<Channel>>]>,
    /// Exchanges known to exist.
    known: Arc<Mutex<HashSet<String>>>,
    /// The largest body sent (the server's `max_message_size`).
    max_message_bytes: usize,
}

impl AmqpPublisher {
    pub(crate) fn new(
        connector: Arc<Connector>,
        channels: usize,
        max_message_bytes: usize,
        known: Arc<Mutex<HashSet<String>>>,
    ) -> Self {
        Self {
            connector,
            channels: (0..channels.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect::<Vec<_>>()
                .into(),
            known,
            max_message_bytes,
        }
    }

    /// Whether the topic's exchange exists (a passive declaration on a
    /// throwaway channel, since a missing exchange closes the channel).
    async fn exists(&self, topic: &str) -> Result<bool, BrokerError> {
        if self.known.lock().unwrap().contains(topic) {
            return Ok(true);
        }
        let channel = self.connector.channel().await?;
        let options = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        match channel
            .exchange_declare(topic, ExchangeKind::Fanout, options, FieldTable::default())
            .await
        {
            Ok(()) => {
                let _ = channel.close(200, "checked").await;
                self.known.lock().unwrap().insert(topic.to_string());
                Ok(true)
            }
            Err(e) if reply_code(&e) == Some(NOT_FOUND) => Ok(false),
            Err(e) => Err(unavailable("cannot check the topic's exchange", e)),
        }
    }

    /// Sends `messages` on channel slot `slot`, holding the slot only while
    /// they are sent; the returned future waits for their confirms.
    async fn send_on(&self, slot: usize, messages: Vec<(usize, &OutgoingMessage)>) -> LaneConfirms {
        let mut guard = self.channels[slot].lock().await;
        let channel = match open_channel(&self.connector, &mut guard).await {
            Ok(c) => c,
            Err(e) => return std::future::ready(fail_all(&messages, &e)).boxed(),
        };
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let sends = messages.iter().map(|(_, m)| {
            channel.basic_publish(&m.topic, "", options, &m.body, codec::properties(m))
        });
        let sent = match tokio::time::timeout(CONFIRM_TIMEOUT, join_all(sends)).await {
            Ok(sent) => sent,
            Err(_) => {
                *guard = None;
                let e = BrokerError::Unavailable(format!(
                    "messages not sent within {} s",
                    CONFIRM_TIMEOUT.as_secs()
                ));
                return std::future::ready(fail_all(&messages, &e)).boxed();
            }
        };
        drop(guard);
        let lane: Vec<(usize, String)> = messages
            .iter()
            .map(|(i, m)| (*i, m.topic.clone()))
            .collect();
        let channels = self.channels.clone();
        async move {
            let waits = sent
                .into_iter()
                .zip(&lane)
                .map(|(sent, (_, topic))| async move {
                    let confirm = sent.map_err(|e| unavailable("publish failed", e))?;
                    match confirm.await {
                        Ok(Confirmation::Ack(None)) => Ok(()),
                        Ok(Confirmation::Ack(Some(returned))) => {
                            Err(BrokerError::Rejected(format!(
                                "returned by the broker: {} (no queue bound to topic {topic:?})",
                                returned.reply_text
                            )))
                        }
                        Ok(Confirmation::Nack(_)) => Err(BrokerError::Unavailable(
                            "the broker did not confirm the message (nack)".into(),
                        )),
                        Ok(Confirmation::NotRequested) => Err(BrokerError::Unavailable(
                            "channel is not in confirm mode".into(),
                        )),
                        Err(e) => Err(unavailable("publish not confirmed", e)),
                    }
                });
            let results = match tokio::time::timeout(CONFIRM_TIMEOUT, join_all(waits)).await {
                Ok(results) => results,
                Err(_) => {
                    forget(&channels[slot], &channel).await;
                    let e = BrokerError::Unavailable(format!(
                        "no confirms within {} s",
                        CONFIRM_TIMEOUT.as_secs()
                    ));
                    return lane
                        .iter()
                        .map(|(i, _)| (*i, Err(BrokerError::Unavailable(e.to_string()))))
                        .collect();
                }
            };
            if results
                .iter()
                .any(|r| matches!(r, Err(BrokerError::Unavailable(_))))
                && !channel.status().connected()
            {
                forget(&channels[slot], &channel).await;
            }
            lane.iter().map(|(i, _)| *i).zip(results).collect()
        }
        .boxed()
    }
}

/// One channel's confirms of its share of a batch, by index in the batch.
type LaneConfirms = futures::future::BoxFuture<'static, Vec<(usize, Result<(), BrokerError>)>>;

/// Drops `channel` from its slot (it failed), unless the slot already holds
/// another one.
async fn forget(slot: &tokio::sync::Mutex<Option<Channel>>, channel: &Channel) {
    let mut guard = slot.lock().await;
    if guard.as_ref().is_some_and(|c| c.id() == channel.id()) {
        *guard = None;
    }
}

/// The slot's channel, opened in confirm mode when missing or closed.
async fn open_channel(
    connector: &Connector,
    slot: &mut Option<Channel>,
) -> Result<Channel, BrokerError> {
    if let Some(c) = slot.as_ref().filter(|c| c.status().connected()) {
        return Ok(c.clone());
    }
    *slot = None;
    let channel = connector.channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| unavailable("cannot enable publisher confirms", e))?;
    *slot = Some(channel.clone());
    Ok(channel)
}

fn fail_all(
    messages: &[(usize, &OutgoingMessage)],
    e: &BrokerError,
) -> Vec<(usize, Result<(), BrokerError>)> {
    messages
        .iter()
        .map(|(i, _)| (*i, Err(BrokerError::Unavailable(e.to_string()))))
        .collect()
}

#[async_trait]
impl Publisher for AmqpPublisher {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Vec<Result<(), BrokerError>> {
        self.send(messages).await.await
    }

    async fn send(&self, messages: Vec<OutgoingMessage>) -> Confirms {
        let mut results: Vec<Option<Result<(), BrokerError>>> =
            messages.iter().map(|_| None).collect();
        let mut topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        let mut missing = HashSet::new();
        for topic in topics {
            match self.exists(topic).await {
                Ok(true) => {}
                Ok(false) => {
                    missing.insert(topic.to_string());
                }
                Err(e) => {
                    let failed = messages
                        .iter()
                        .map(|_| Err(BrokerError::Unavailable(e.to_string())))
                        .collect();
                    return Box::pin(std::future::ready(failed));
                }
            }
        }
        let mut todo = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            if missing.contains(&m.topic) {
                results[i] = Some(Err(BrokerError::Rejected(format!(
                    "unknown topic {:?}: no such exchange",
                    m.topic
                ))));
            } else if m.body.len() > self.max_message_bytes {
                results[i] = Some(Err(BrokerError::Refused(format!(
                    "message of {} bytes is larger than the broker's max_message_size ({} bytes; amqp url option max_message_bytes)",
                    m.body.len(),
                    self.max_message_bytes
                ))));
            } else {
                todo.push((i, m));
            }
        }
        let lanes = self
            .channels
            .len()
            .min(todo.len().div_ceil(MIN_PER_CHANNEL))
            .max(1);
        let per_lane = todo.len().div_ceil(lanes).max(1);
        let chunks: Vec<Vec<(usize, &OutgoingMessage)>> =
            todo.chunks(per_lane).map(<[_]>::to_vec).collect();
        let lanes = join_all(
            chunks
                .into_iter()
                .enumerate()
                .map(|(slot, chunk)| self.send_on(slot, chunk)),
        )
        .await;
        Box::pin(async move {
            for (i, r) in join_all(lanes).await.into_iter().flatten() {
                results[i] = Some(r);
            }
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(BrokerError::Unavailable("not published".into()))))
                .collect()
        })
    }
}
