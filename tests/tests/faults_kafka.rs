//! The fault suite on PostgreSQL + Kafka (tansu): one scenario per test, see
//! `sluice_tests::faults::scenarios`.

sluice_tests::fault_suite!(sluice_tests::faults::Bus::Kafka);
