//! End to end: the real binary as a separate process, 2,000 jobs over HTTP
//! to a local downstream with transient and permanent failures, on the
//! embedded default and on PostgreSQL with each broker.

use sluice_tests::scenario::two_thousand_jobs_with_retries_and_dead_letters;

/// The embedded broker, quick to redeliver.
const EMBEDDED: &str = "embedded://./data/broker?visibility_timeout_ms=5000&poll_interval_ms=50";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_embedded() {
    two_thousand_jobs_with_retries_and_dead_letters(
        "sqlite://./data/sluice.db",
        EMBEDDED,
        "sluice.e2e",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_embedded() {
    let Some(server) = sluice_tests::pg::server_url() else {
        return;
    };
    let db = sluice_tests::pg::TempDb::create(&server).await.unwrap();
    two_thousand_jobs_with_retries_and_dead_letters(&db.url, EMBEDDED, "sluice.e2e").await;
}
