//! Autoscaling signals of the ingest process: the store's per-queue figures
//! and the broker's consumer lag, refreshed in the background into gauges
//! and served by `GET /v1/queues/{queue}/scaling`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_api::{ConsumerLag, Scaling};
use sluice_broker::Broker;
use sluice_store::Store;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Longest wait for one queue's consumer lag: a broker that is down must
/// not hold up the store's figures (the lag is then `null`).
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// Consumer lag of each queue's topic for its workers' group.
struct BrokerLag {
    broker: Arc<dyn Broker>,
    /// Queue name → topic and the workers' group.
    topics: HashMap<String, (String, String)>,
}

#[async_trait]
impl ConsumerLag for BrokerLag {
    async fn consumer_lag(&self, queue: &str) -> Option<u64> {
        let (topic, group) = self.topics.get(queue)?;
        sluice_broker::consumer_lag_within(&*self.broker, topic, group, LAG_TIMEOUT).await
    }
}

/// The figures of every configured queue, with consumer lag when a broker
/// is open, refreshed every `http.scaling_refresh_ms` until `shutdown`.
pub(super) fn spawn(
    config: &Config,
    store: Arc<dyn Store>,
    broker: Option<Arc<dyn Broker>>,
    shutdown: &CancellationToken,
) -> Arc<Scaling> {
    let lag = broker.map(|broker| {
        let topics = config
            .queues
            .iter()
            .map(|q| (q.name.clone(), (q.topic(), q.worker_group())))
            .collect();
        Arc::new(BrokerLag { broker, topics }) as Arc<dyn ConsumerLag>
    });
    let queues = config.queues.iter().map(|q| q.name.clone()).collect();
    let scaling = Arc::new(Scaling::new(store, queues, lag));
    let interval = Duration::from_millis(config.http.scaling_refresh_ms.max(100));
    tokio::spawn(
        scaling
            .clone()
            .run(interval, shutdown.clone().cancelled_owned()),
    );
    scaling
}
