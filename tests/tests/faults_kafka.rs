//! The fault suite on PostgreSQL + Kafka (tansu): one scenario per test, see
//! `sluice_tests::faults::scenarios`.
//!
//! `broker_restart` runs a tansu of its own on its S3 engine (a moto S3
//! server of the test's own), which keeps the log across the restart. That
//! engine sometimes loses records it acknowledged when it stops (seen with a
//! plain confluent-kafka producer too: 17 of 6,000 acknowledged records gone
//! after a SIGTERM restart, in 1 run of 3). sluice's redrive publishes such
//! jobs again once the workers' group has caught up, so none is lost.

sluice_tests::fault_suite!(
    sluice_tests::faults::Bus::Kafka;
    kill_relay,
    kill_worker,
    kill_ingest,
    broker_restart,
    postgres_restart,
    sigstop_worker,
    downstream_down,
    slow_downstream,
);
