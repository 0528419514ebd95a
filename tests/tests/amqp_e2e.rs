//! End to end on PostgreSQL + RabbitMQ: the shared 2,000-job scenario with
//! retries and dead letters, through the AMQP backend. Its exchanges and
//! queues are unique to the run and deleted after.

use sluice_tests::brokers::{amqp_url, unique_topic, AmqpCleanup};
use sluice_tests::pg::{server_url, TempDb};
use sluice_tests::scenario::two_thousand_jobs_with_retries_and_dead_letters;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_amqp() {
    let (Some(server), Some(amqp)) = (server_url(), amqp_url()) else {
        return;
    };
    let db = TempDb::create(&server).await.unwrap();
    let topic = unique_topic("e2e");
    let _cleanup = AmqpCleanup::topics_with_dlq(&amqp, &[&topic]);
    two_thousand_jobs_with_retries_and_dead_letters(&db.url, &amqp, &topic).await;
}
