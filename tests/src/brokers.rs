//! Real brokers for tests: their addresses from the environment, skipping
//! when absent unless `SLUICE_TEST_REQUIRE_BACKENDS=1`, and unique names.

use crate::pg::backends_required;

fn from_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if backends_required() => panic!("{var} is not set and SLUICE_TEST_REQUIRE_BACKENDS=1"),
        _ => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

/// `host:port,...` of the Kafka brokers (`SLUICE_TEST_KAFKA_BROKERS`).
pub fn kafka_brokers() -> Option<String> {
    from_env("SLUICE_TEST_KAFKA_BROKERS")
}

/// The AMQP URL (`SLUICE_TEST_AMQP_URL`).
pub fn amqp_url() -> Option<String> {
    from_env("SLUICE_TEST_AMQP_URL")
}

/// A topic / queue name no other test uses: `sluice.<what>.<random>`.
pub fn unique_topic(what: &str) -> String {
    format!(
        "sluice.{what}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Deletes AMQP topics (exchange and queue, plus the queues of `groups`)
/// when dropped, even when the test panicked.
pub struct AmqpCleanup {
    url: String,
    topics: Vec<String>,
    groups: Vec<String>,
}

impl AmqpCleanup {
    /// Cleans up `topics` and their `.dlq` topics on the broker at `url`.
    pub fn topics_with_dlq(url: &str, topics: &[&str]) -> Self {
        Self {
            url: url.to_string(),
            topics: topics
                .iter()
                .flat_map(|t| [t.to_string(), format!("{t}.dlq")])
                .collect(),
            groups: Vec::new(),
        }
    }
}

impl Drop for AmqpCleanup {
    fn drop(&mut self) {
        let (url, topics, groups) = (
            self.url.clone(),
            std::mem::take(&mut self.topics),
            std::mem::take(&mut self.groups),
        );
        // Drop may run inside a runtime, which cannot be blocked: a thread
        // with its own runtime does the deleting.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let broker = sluice_broker::amqp::AmqpBroker::open(&url).await?;
                for t in &topics {
                    broker.delete_topic(t, &groups).await?;
                }
                Ok::<_, sluice_broker::BrokerError>(())
            })
        });
        match done.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot delete test topics: {e}"),
            Err(_) => eprintln!("cannot delete test topics: cleanup thread panicked"),
        }
    }
}
