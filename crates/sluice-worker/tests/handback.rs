//! A delivery whose outcome the store refuses for good (not a transient
//! failure, which is retried) is handed back to the broker, due again once
//! the attempt's lease may have lapsed, so the job runs again once the store
//! can take it, instead of the delivery staying
//! un-acked for as long as the subscription lives (on Kafka, holding its
//! partition's offset).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sluice_core::{Failure, HandlerConfig, JobStatus};
use sluice_worker::{Handler, JobContext, WorkerOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

mod common;

use common::{queue, Rig};

/// On its first call, breaks its job's row behind the store's back (a
/// column the store cannot decode, so recording the outcome fails for good)
/// and mends it 300 ms later; records the attempts it ran.
struct Breaking {
    url: String,
    attempts: Mutex<Vec<u32>>,
}

impl Breaking {
    async fn set_replay_count(url: &str, id: &str, value: &str) {
        let mut conn = SqliteConnectOptions::from_str(url)
            .unwrap()
            .busy_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        let sql = format!("UPDATE jobs SET replay_count = {value} WHERE id = ?1");
        sqlx::query(&sql).bind(id).execute(&mut conn).await.unwrap();
    }
}

#[async_trait]
impl Handler for Breaking {
    async fn handle(&self, ctx: &JobContext) -> Result<(), Failure> {
        let first = {
            let mut a = self.attempts.lock().unwrap();
            a.push(ctx.attempt);
            a.len() == 1
        };
        if first {
            let id = ctx.id.to_string();
            Self::set_replay_count(&self.url, &id, "'broken'").await;
            let url = self.url.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Self::set_replay_count(&url, &id, "0").await;
            });
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_the_store_refuses_hands_its_delivery_back() {
    let rig = Rig::new(queue("handback", HandlerConfig::Log)).await;
    let handler = Arc::new(Breaking {
        url: rig.store_url(),
        attempts: Mutex::new(Vec::new()),
    });
    // a short lease, so the attempt whose outcome was lost is taken over
    // soon; the embedded broker would redeliver an un-acked delivery only
    // after its 30 s visibility timeout, past wait_final's 20 s
    let options = WorkerOptions {
        default_timeout: Duration::from_millis(1000),
        lease_margin: Duration::from_millis(200),
        ..WorkerOptions::default()
    };
    rig.start_with(handler.clone(), None, options);
    let id = rig.submit(json!({"n": 1}), BTreeMap::new()).await;
    let job = rig.wait_final(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(*handler.attempts.lock().unwrap(), vec![1, 2]);
    assert!(
        rig.watched.released() >= 1,
        "the delivery was not handed back"
    );
}
