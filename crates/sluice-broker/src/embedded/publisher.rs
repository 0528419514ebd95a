//! Publishing: one write transaction per batch, confirmed once committed.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_core::now_ms;

use super::{unavailable, Shared};
use crate::{BrokerError, OutgoingMessage, Publisher};

const SQL_INSERT_MESSAGE: &str = include_str!("sql/insert_message.sql");

/// Publisher of an [`EmbeddedBroker`](super::EmbeddedBroker).
pub struct EmbeddedPublisher {
    shared: Arc<Shared>,
}

impl EmbeddedPublisher {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Inserts `messages` in one transaction; returns after the commit
    /// (durable with `synchronous=FULL`).
    async fn insert_all(&self, messages: &[&OutgoingMessage]) -> Result<(), BrokerError> {
        let mut tx = self
            .shared
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let now = now_ms();
        for m in messages {
            let attributes = serde_json::to_string(&m.attributes).map_err(|e| {
                BrokerError::Rejected(format!("attributes are not serializable: {e}"))
            })?;
            sqlx::query(SQL_INSERT_MESSAGE)
                .bind(&m.topic)
                .bind(m.job_id.to_string())
                .bind(m.key.as_deref())
                .bind(attributes)
                .bind(m.content_type.as_deref())
                .bind(m.body.as_slice())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }
}

#[async_trait]
impl Publisher for EmbeddedPublisher {
    /// Messages to undeclared topics are `Rejected`; the others are written in
    /// one transaction and all succeed or all fail (`Unavailable`) together.
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Vec<Result<(), BrokerError>> {
        if messages.is_empty() {
            return Vec::new();
        }
        let topics: BTreeSet<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
        let undeclared = match self.shared.undeclared(&topics).await {
            Ok(u) => u,
            Err(e) => return messages.iter().map(|_| Err(e.clone())).collect(),
        };
        let accepted: Vec<&OutgoingMessage> = messages
            .iter()
            .filter(|m| !undeclared.contains(m.topic.as_str()))
            .collect();
        let outcome = if accepted.is_empty() {
            Ok(())
        } else {
            self.insert_all(&accepted).await
        };
        if outcome.is_ok() {
            for topic in topics.iter().filter(|t| !undeclared.contains(*t)) {
                self.shared.wake(topic);
            }
        }
        messages
            .iter()
            .map(|m| {
                if undeclared.contains(m.topic.as_str()) {
                    Err(BrokerError::Rejected(format!(
                        "unknown topic {:?}: declare it first",
                        m.topic
                    )))
                } else {
                    outcome.as_ref().map(|_| ()).map_err(Clone::clone)
                }
            })
            .collect()
    }
}
