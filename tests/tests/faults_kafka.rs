//! The fault suite on PostgreSQL + Kafka (tansu): one scenario per test, see
//! `sluice_tests::faults::scenarios`.
//!
//! `broker_restart` runs a tansu of its own on its PostgreSQL engine (a
//! PostgreSQL 16 server of the test's own), which keeps the log across the
//! restart. Should the broker lose records it acknowledged (tansu's S3
//! engine did: 17 of 6,000 from a plain confluent-kafka producer, in 1
//! SIGTERM restart of 3), sluice's redrive publishes such jobs again once
//! the workers' group has caught up, so none is lost.

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
