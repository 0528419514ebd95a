//! Exchanges and queues: what [`Broker::declare`](crate::Broker::declare)
//! creates and verifies, and the queues of consumer groups.
//!
//! Each topic `T` is a durable fanout exchange `T` bound to a durable queue
//! `T` (quorum or classic, see [`QueueType`]). Publishing goes to the
//! exchange with `mandatory`, so a topic without queues fails the publish.
//! Direct producers may publish to the exchange or to the queue through the
//! default exchange. The workers' group ([`is_primary_group`]) consumes queue
//! `T`; every other group gets its own queue `T.group.<group>` bound to the
//! exchange, created when it first subscribes and kept (durable) after.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::ExchangeKind;

use super::config::QueueType;
use super::connection::Connector;
use super::{reply_code, unavailable};
use crate::BrokerError;

/// Consumer groups starting with this consume the topic's own queue.
pub const PRIMARY_GROUP_PREFIX: &str = "sluice-workers";

/// AMQP reply code of a declaration that contradicts what exists.
const PRECONDITION_FAILED: u16 = 406;
/// AMQP reply code of something that does not exist.
pub(crate) const NOT_FOUND: u16 = 404;

/// Whether `group` consumes the topic's queue itself (sluice's workers).
pub fn is_primary_group(group: &str) -> bool {
    group.starts_with(PRIMARY_GROUP_PREFIX)
}

/// The queue a group of a topic consumes.
pub fn group_queue(topic: &str, group: &str) -> String {
    if is_primary_group(group) {
        topic.to_string()
    } else {
        format!("{topic}.group.{group}")
    }
}

/// Declares (or verifies) the exchange `topic` and the queue `queue` bound
/// to it. Each step uses a fresh channel, since a refused declaration closes
/// its channel.
pub(crate) async fn declare(
    connector: &Connector,
    topic: &str,
    queue: &str,
    queue_type: QueueType,
) -> Result<(), BrokerError> {
    let channel = connector.channel().await?;
    let options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(topic, ExchangeKind::Fanout, options, FieldTable::default())
        .await
        .map_err(|e| refused(e, || format!("exchange {topic:?} exists with another type or flags (sluice needs a durable fanout exchange)")))?;
    let channel = match queue_type {
        QueueType::Classic => declare_queue(channel, queue, "classic").await?,
        QueueType::Quorum => declare_queue(channel, queue, "quorum").await?,
        QueueType::Auto => match declare_queue(channel, queue, "quorum").await {
            Err(BrokerError::Topology(m)) if m.contains("does not support") => {
                tracing::info!(
                    queue,
                    "server refuses quorum queues; declaring a classic durable queue"
                );
                declare_queue(connector.channel().await?, queue, "classic").await?
            }
            other => other?,
        },
    };
    channel
        .queue_bind(
            queue,
            topic,
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| {
            unavailable(
                &format!("cannot bind queue {queue:?} to exchange {topic:?}"),
                e,
            )
        })?;
    let _ = channel.close(200, "declared").await;
    Ok(())
}

/// Declares a durable queue of type `kind`; returns the channel when it
/// is still open.
async fn declare_queue(
    channel: lapin::Channel,
    queue: &str,
    kind: &str,
) -> Result<lapin::Channel, BrokerError> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from(kind)),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    match channel.queue_declare(queue, options, args).await {
        Ok(_) => Ok(channel),
        Err(e) => match reply_code(&e) {
            Some(PRECONDITION_FAILED) => Err(BrokerError::Topology(format!(
                "queue {queue:?} exists with other arguments than a durable {kind} queue: {}",
                server_text(&e)
            ))),
            Some(code) if code >= 500 => Err(BrokerError::Topology(format!(
                "server does not support {kind} queue {queue:?}: {}",
                server_text(&e)
            ))),
            _ => Err(unavailable(&format!("cannot declare queue {queue:?}"), e)),
        },
    }
}

/// Deletes the topic's exchange, its queue and the queues of `groups`
/// (tests and tools; sluice itself never deletes topology).
pub(crate) async fn delete(
    connector: &Connector,
    topic: &str,
    groups: &[String],
) -> Result<(), BrokerError> {
    let channel = connector.channel().await?;
    let mut queues = vec![topic.to_string()];
    queues.extend(groups.iter().map(|g| group_queue(topic, g)));
    queues.dedup();
    for queue in queues {
        channel
            .queue_delete(&queue, QueueDeleteOptions::default())
            .await
            .map_err(|e| unavailable(&format!("cannot delete queue {queue:?}"), e))?;
    }
    channel
        .exchange_delete(topic, ExchangeDeleteOptions::default())
        .await
        .map_err(|e| unavailable(&format!("cannot delete exchange {topic:?}"), e))?;
    let _ = channel.close(200, "deleted").await;
    Ok(())
}

/// Maps a refused declaration to a topology error, anything else to
/// unavailable.
fn refused(e: lapin::Error, what: impl FnOnce() -> String) -> BrokerError {
    match reply_code(&e) {
        Some(PRECONDITION_FAILED) => {
            BrokerError::Topology(format!("{}: {}", what(), server_text(&e)))
        }
        _ => unavailable("cannot declare topology", e),
    }
}

fn server_text(e: &lapin::Error) -> String {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => p.get_message().to_string(),
        _ => e.to_string(),
    }
}
