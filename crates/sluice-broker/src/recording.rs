//! A broker wrapper for backends' tests: it records the topics declared and
//! the groups subscribed through it, so a test can delete them afterwards,
//! and forwards everything else to the broker it wraps (see [`Forward`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::forward::Forward;
use crate::{Broker, BrokerError, SubscribeOptions, Subscription};

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
impl Forward for Recording {
    fn inner(&self) -> &dyn Broker {
        &*self.inner
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
}
