//! Wrappers of a broker for tests: a type that changes a few of the
//! broker's answers implements [`Forward`], overriding only those methods;
//! every other call goes to the broker it wraps, written once here.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Broker, BrokerError, ConsumerMark, Publisher, SubscribeOptions, Subscription};

/// A broker that forwards each [`Broker`] call to [`Forward::inner`] unless
/// it overrides the method of the same name. Every `Forward` is a `Broker`.
#[async_trait]
pub trait Forward: Send + Sync {
    /// The broker calls go to.
    fn inner(&self) -> &dyn Broker;

    fn publisher(&self) -> Arc<dyn Publisher> {
        self.inner().publisher()
    }
    async fn declare(&self, topics: &[String]) -> Result<(), BrokerError> {
        self.inner().declare(topics).await
    }
    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError> {
        self.inner().subscribe(topic, options).await
    }
    async fn ping(&self) -> Result<(), BrokerError> {
        self.inner().ping().await
    }
    async fn consumer_lag(&self, topic: &str, group: &str) -> Result<Option<u64>, BrokerError> {
        self.inner().consumer_lag(topic, group).await
    }
    async fn consumer_mark(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Option<ConsumerMark>, BrokerError> {
        self.inner().consumer_mark(topic, group).await
    }
    async fn consumer_passed(
        &self,
        topic: &str,
        group: &str,
        mark: &ConsumerMark,
    ) -> Result<Option<bool>, BrokerError> {
        self.inner().consumer_passed(topic, group, mark).await
    }
    fn owned_partitions(&self) -> bool {
        self.inner().owned_partitions()
    }
    fn backend(&self) -> &'static str {
        self.inner().backend()
    }
}

#[async_trait]
impl<T: Forward> Broker for T {
    fn publisher(&self) -> Arc<dyn Publisher> {
        Forward::publisher(self)
    }
    async fn declare(&self, topics: &[String]) -> Result<(), BrokerError> {
        Forward::declare(self, topics).await
    }
    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError> {
        Forward::subscribe(self, topic, options).await
    }
    async fn ping(&self) -> Result<(), BrokerError> {
        Forward::ping(self).await
    }
    async fn consumer_lag(&self, topic: &str, group: &str) -> Result<Option<u64>, BrokerError> {
        Forward::consumer_lag(self, topic, group).await
    }
    async fn consumer_mark(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Option<ConsumerMark>, BrokerError> {
        Forward::consumer_mark(self, topic, group).await
    }
    async fn consumer_passed(
        &self,
        topic: &str,
        group: &str,
        mark: &ConsumerMark,
    ) -> Result<Option<bool>, BrokerError> {
        Forward::consumer_passed(self, topic, group, mark).await
    }
    fn owned_partitions(&self) -> bool {
        Forward::owned_partitions(self)
    }
    fn backend(&self) -> &'static str {
        Forward::backend(self)
    }
}
