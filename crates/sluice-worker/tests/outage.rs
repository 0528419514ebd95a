//! While the store cannot start attempts (an outage), a pool holds the
//! messages it received and starts them again once the store is back: none
//! is returned to the broker, which may count every return against a
//! delivery limit and drop the message (RabbitMQ quorum queues).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use sluice_broker::{
    AckToken, Broker, BrokerError, Delivery, Publisher, SubscribeOptions, Subscription,
};
use sluice_core::{HandlerConfig, JobStatus};
use sluice_store::testing::Wrapped;
use sluice_worker::{LogHandler, Worker, WorkerOptions, WorkerQueue};
use tokio_util::sync::CancellationToken;

mod common;

use common::{queue, Rig};

/// The rig's broker, counting the deliveries its subscriptions release.
struct Releases {
    inner: Arc<dyn Broker>,
    released: Arc<AtomicUsize>,
}

struct CountingSub {
    inner: Box<dyn Subscription>,
    released: Arc<AtomicUsize>,
}

#[async_trait]
impl Subscription for CountingSub {
    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        self.inner.recv(max, wait).await
    }

    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), BrokerError> {
        self.inner.ack(tokens).await
    }

    async fn release(&mut self, tokens: &[AckToken], delay: Duration) -> Result<(), BrokerError> {
        self.released.fetch_add(tokens.len(), Ordering::SeqCst);
        self.inner.release(tokens, delay).await
    }
}

#[async_trait]
impl Broker for Releases {
    fn publisher(&self) -> Arc<dyn Publisher> {
        self.inner.publisher()
    }

    async fn declare(&self, topics: &[String]) -> Result<(), BrokerError> {
        self.inner.declare(topics).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError> {
        Ok(Box::new(CountingSub {
            inner: self.inner.subscribe(topic, options).await?,
            released: self.released.clone(),
        }))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        self.inner.ping().await
    }

    async fn consumer_lag(&self, topic: &str, group: &str) -> Result<Option<u64>, BrokerError> {
        self.inner.consumer_lag(topic, group).await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_returns_no_message_to_the_broker() {
    let mut q = queue("outage", HandlerConfig::Log);
    // failed starts are the store's, not the downstream's
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let outage = Wrapped::new(rig.store.clone());
    let released = Arc::new(AtomicUsize::new(0));
    let broker = Arc::new(Releases {
        inner: rig.broker.clone(),
        released: released.clone(),
    });
    outage.set_down(true);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(rig.submit(json!({ "i": i }), BTreeMap::new()).await);
    }
    rig.start_relay();
    let wq = WorkerQueue {
        config: rig.queue.clone(),
        schema: None,
        handler: Arc::new(LogHandler),
    };
    let worker = Worker::new(outage.clone(), broker, wq, WorkerOptions::default()).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    // the pool takes only what it can start (its limit starts low): a
    // start failed, and was tried again after the pause
    let deadline = Instant::now() + Duration::from_secs(20);
    while outage.refused() < 4 {
        assert!(
            Instant::now() < deadline,
            "the pool tried {} starts",
            outage.refused()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    outage.set_down(false);
    for id in &ids {
        assert_eq!(rig.wait_final(*id).await.status, JobStatus::Succeeded);
    }
    assert_eq!(
        released.load(Ordering::SeqCst),
        0,
        "messages returned to the broker"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the pool did not stop")
        .unwrap()
        .unwrap();
}
