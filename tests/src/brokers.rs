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
