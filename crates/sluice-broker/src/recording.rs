//! A broker wrapper for backends' tests: it records the topics declared and
//! the groups subscribed through it, so a test can delete them afterwards,
//! and forwards everything to the broker it wraps.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::{Broker, BrokerError, ConsumerMark, Publisher, SubscribeOptions, Subscription};

/// What was declared or subscribed through a [`Recording`] broker.
#[derive(Debug, Default, Clone)]
pub struct Created {
    pub topics: BTreeSet<String>,
    /// (topic, group) of every subscription.
    pub groups: BTreeSet<(String, String)>,
}

/// Wraps `inner`, recording into `created`.
pub struct Recording {
    pub inner: Arc<dyn Broker>,
    pub created: Arc<Mutex<Created>>,
}

impl Recording {
    /// Around `inner`, with a record of its own (see [`Recording::created`]).
    pub fn new(inner: Arc<dyn Broker>) -> Self {
        Self {
            inner,
            created: Arc::default(),
        }
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Created> {
        self.created.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Broker for Recording {
    fn publisher(&self) -> Arc<dyn Publisher> {
        self.inner.publisher()
    }
    async fn declare(&self, topics: &[String]) -> Result<(), BrokerError> {
        self.record().topics.extend(topics.iter().cloned());
        self.inner.declare(topics).await
    }
    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError> {
        self.record()
            .groups
            .insert((topic.to_string(), options.group.clone()));
        self.inner.subscribe(topic, options).await
    }
    async fn ping(&self) -> Result<(), BrokerError> {
        self.inner.ping().await
    }
    async fn consumer_lag(&self, topic: &str, group: &str) -> Result<Option<u64>, BrokerError> {
        self.inner.consumer_lag(topic, group).await
    }
    async fn consumer_mark(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Option<ConsumerMark>, BrokerError> {
        self.inner.consumer_mark(topic, group).await
    }
    async fn consumer_passed(
        &self,
        topic: &str,
        group: &str,
        mark: &ConsumerMark,
    ) -> Result<Option<bool>, BrokerError> {
        self.inner.consumer_passed(topic, group, mark).await
    }
    fn owned_partitions(&self) -> bool {
        self.inner.owned_partitions()
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}
