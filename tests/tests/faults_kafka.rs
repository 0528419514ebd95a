//! The fault suite on PostgreSQL + Kafka (tansu): one scenario per test, see
//! `sluice_tests::faults::scenarios`.

use sluice_tests::faults::Bus;

sluice_tests::fault_suite!(
    Bus::Kafka;
    kill_relay,
    kill_worker,
    kill_ingest,
    broker_restart,
    postgres_restart,
    sigstop_worker,
    downstream_down,
    slow_downstream,
);
