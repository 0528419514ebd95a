//! Messages waiting in a group's queue, for autoscalers: the queue's ready
//! message count from a passive declare (deliveries a consumer holds
//! unacknowledged are not counted).

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use super::connection::Connector;
use super::topology::{group_queue, NOT_FOUND};
use super::{reply_code, unavailable};
use crate::BrokerError;

/// Ready messages of the queue `group` consumes on `topic`; `None` when the
/// queue does not exist (topic not declared, or a group that never
/// subscribed).
pub(crate) async fn queue_depth(
    connector: &Connector,
    topic: &str,
    group: &str,
) -> Result<Option<u64>, BrokerError> {
    let queue = group_queue(topic, group);
    // A refused passive declare closes its channel: use a fresh one.
    let channel = connector.channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match channel
        .queue_declare(&queue, options, FieldTable::default())
        .await
    {
        Ok(q) => {
            let _ = channel.close(200, "counted").await;
            Ok(Some(u64::from(q.message_count())))
        }
        Err(e) if reply_code(&e) == Some(NOT_FOUND) => Ok(None),
        Err(e) => Err(unavailable(&format!("cannot inspect queue {queue:?}"), e)),
    }
}
