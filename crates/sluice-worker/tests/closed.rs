//! A subscription that closes for good (a Kafka consumer thread that ended)
//! stops its pool with an error, after recording what it ran, instead of the
//! pool polling a dead subscription for ever.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sluice_broker::{
    AckToken, Broker, BrokerError, Delivery, Publisher, SubscribeOptions, Subscription,
};
use sluice_core::{HandlerConfig, JobStatus};
use sluice_worker::{NoopHandler, Worker, WorkerError, WorkerOptions, WorkerQueue};
use tokio_util::sync::CancellationToken;

mod common;

use common::{queue, Rig};

/// The rig's broker, whose subscriptions close once they acked something.
struct Closing(Arc<dyn Broker>);

struct ClosingSub {
    inner: Box<dyn Subscription>,
    acked: bool,
}

#[async_trait]
impl Subscription for ClosingSub {
    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        match self.acked {
            true => Err(BrokerError::Closed("consumer thread ended".into())),
            false => self.inner.recv(max, wait).await,
        }
    }

    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), BrokerError> {
        self.acked |= !tokens.is_empty();
        self.inner.ack(tokens).await
    }

    async fn release(&mut self, tokens: &[AckToken], delay: Duration) -> Result<(), BrokerError> {
        self.inner.release(tokens, delay).await
    }
}

#[async_trait]
impl Broker for Closing {
    fn publisher(&self) -> Arc<dyn Publisher> {
        self.0.publisher()
    }

    async fn declare(&self, topics: &[String]) -> Result<(), BrokerError> {
        self.0.declare(topics).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError> {
        let inner = self.0.subscribe(topic, options).await?;
        Ok(Box::new(ClosingSub {
            inner,
            acked: false,
        }))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        self.0.ping().await
    }

    async fn consumer_lag(&self, topic: &str, group: &str) -> Result<Option<u64>, BrokerError> {
        self.0.consumer_lag(topic, group).await
    }

    fn backend(&self) -> &'static str {
        self.0.backend()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_subscription_stops_the_pool_with_its_error() {
    let rig = Rig::new(queue("closing", HandlerConfig::Noop)).await;
    let id = rig.submit(json!({"n": 1}), BTreeMap::new()).await;
    rig.start_relay();
    let wq = WorkerQueue {
        config: rig.queue.clone(),
        schema: None,
        handler: Arc::new(NoopHandler),
    };
    let broker = Arc::new(Closing(rig.broker.clone()));
    let worker = Worker::new(rig.store.clone(), broker, wq, WorkerOptions::default()).unwrap();
    let ran = tokio::time::timeout(
        Duration::from_secs(20),
        worker.run(CancellationToken::new()),
    )
    .await
    .expect("the pool kept running on a closed subscription");
    assert!(
        matches!(ran, Err(WorkerError::Broker(BrokerError::Closed(_)))),
        "{ran:?}"
    );
    // what it ran before the subscription closed is recorded
    assert_eq!(rig.wait_final(id).await.status, JobStatus::Succeeded);
}
