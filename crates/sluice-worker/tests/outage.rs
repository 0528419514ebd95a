//! While the store cannot start attempts (an outage), a pool holds the
//! messages it received and starts them again once the store is back: none
//! is returned to the broker, which may count every return against a
//! delivery limit and drop the message (RabbitMQ quorum queues).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_core::{HandlerConfig, JobStatus};
use sluice_store::testing::Wrapped;
use sluice_worker::LogHandler;
use tokio_util::sync::CancellationToken;

mod common;

use common::broker::Watched;
use common::{queue, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_returns_no_message_to_the_broker() {
    let mut q = queue("outage", HandlerConfig::Log);
    // failed starts are the store's, not the downstream's
    q.circuit.enabled = false;
    let rig = Rig::new(q).await;
    let outage = Wrapped::new(rig.store.clone());
    let broker = Watched::new(rig.broker.clone());
    outage.set_down(true);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(rig.submit(json!({ "i": i }), BTreeMap::new()).await);
    }
    rig.start_relay();
    let worker = rig.worker(outage.clone(), broker.clone(), Arc::new(LogHandler));
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
    assert_eq!(broker.released(), 0, "messages returned to the broker");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the pool did not stop")
        .unwrap()
        .unwrap();
}
