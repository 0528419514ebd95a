//! The fault suite on PostgreSQL + RabbitMQ (a node of each test's own): one
//! scenario per test, see `sluice_tests::faults::scenarios`.

sluice_tests::fault_suite!(
    sluice_tests::faults::Bus::Amqp;
    kill_relay,
    kill_worker,
    kill_ingest,
    broker_restart,
    postgres_restart,
    sigstop_worker,
    downstream_down,
    slow_downstream,
);
