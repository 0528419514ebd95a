//! A subscription that closes for good (a Kafka consumer thread that ended)
//! stops its pool with an error, after recording what it ran, instead of the
//! pool polling a dead subscription for ever.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_broker::BrokerError;
use sluice_core::{HandlerConfig, JobStatus};
use sluice_worker::{NoopHandler, WorkerError};
use tokio_util::sync::CancellationToken;

mod common;

use common::broker::Watched;
use common::{queue, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_subscription_stops_the_pool_with_its_error() {
    let rig = Rig::new(queue("closing", HandlerConfig::Noop)).await;
    let id = rig.submit(json!({"n": 1}), BTreeMap::new()).await;
    rig.start_relay();
    let broker = Watched::closing(rig.broker.clone());
    let worker = rig.worker(rig.store.clone(), broker, Arc::new(NoopHandler));
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
