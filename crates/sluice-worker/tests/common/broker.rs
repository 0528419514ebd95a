//! The rig's broker behind a wrapper that watches its subscriptions: it
//! counts the deliveries they release and, when asked, closes each for good
//! once it acked something (as a Kafka consumer thread that ended).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_broker::forward::Forward;
use sluice_broker::{AckToken, Broker, BrokerError, Delivery, SubscribeOptions, Subscription};

pub struct Watched {
    inner: Arc<dyn Broker>,
    released: Arc<AtomicUsize>,
    close_after_ack: bool,
    /// What it says of its partitions (the inner broker's, unless set).
    owned_partitions: AtomicBool,
}

impl Watched {
    pub fn new(inner: Arc<dyn Broker>) -> Arc<Self> {
        Self::with(inner, false)
    }

    /// Its subscriptions close once they acked something.
    pub fn closing(inner: Arc<dyn Broker>) -> Arc<Self> {
        Self::with(inner, true)
    }

    fn with(inner: Arc<dyn Broker>, close_after_ack: bool) -> Arc<Self> {
        let owned = inner.owned_partitions();
        Arc::new(Self {
            inner,
            released: Arc::default(),
            close_after_ack,
            owned_partitions: AtomicBool::new(owned),
        })
    }

    /// Says each partition has one consumer in a group (as Kafka), for
    /// pools subscribing from now on.
    pub fn claim_owned_partitions(&self) {
        self.owned_partitions.store(true, Ordering::SeqCst);
    }

    /// Deliveries released (handed back) so far.
    pub fn released(&self) -> usize {
        self.released.load(Ordering::SeqCst)
    }
}

struct WatchedSub {
    inner: Box<dyn Subscription>,
    released: Arc<AtomicUsize>,
    close_after_ack: bool,
    acked: bool,
}

#[async_trait]
impl Subscription for WatchedSub {
    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        match self.close_after_ack && self.acked {
            true => Err(BrokerError::Closed("consumer thread ended".into())),
            false => self.inner.recv(max, wait).await,
        }
    }

    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), BrokerError> {
        self.acked |= !tokens.is_empty();
        self.inner.ack(tokens).await
    }

    async fn release(&mut self, tokens: &[AckToken], delay: Duration) -> Result<(), BrokerError> {
        self.released.fetch_add(tokens.len(), Ordering::SeqCst);
        self.inner.release(tokens, delay).await
    }
}

#[async_trait]
impl Forward for Watched {
    fn inner(&self) -> &dyn Broker {
        &*self.inner
    }

    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError> {
        Ok(Box::new(WatchedSub {
            inner: self.inner.subscribe(topic, options).await?,
            released: self.released.clone(),
            close_after_ack: self.close_after_ack,
            acked: false,
        }))
    }

    fn owned_partitions(&self) -> bool {
        self.owned_partitions.load(Ordering::SeqCst)
    }
}
