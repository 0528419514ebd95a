//! The fault scenarios, each for either broker: one fault (or condition)
//! while jobs are posted at a steady pace, then the checker's verdict.

use std::time::{Duration, Instant};

use super::{Bus, Node, Options, Report, Rig};
use crate::jobs::{wait_attempt_in_flight, wait_deliveries};

/// Jobs posted per scenario, and their pace: about ten seconds of posting,
/// so each fault lands mid-run.
const JOBS: usize = 1500;
const PER_SECOND: f64 = 150.0;
/// How long a Kafka group may take to notice a member gone (its session
/// timeout is 6 s in the rig).
const REBALANCE_LIMIT: Duration = Duration::from_secs(60);
/// Longest wait for another worker to take over a frozen worker's attempts.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(30);

async fn rig(bus: Bus, opts: Options) -> Option<Rig> {
    Rig::start(bus, opts).await
}

/// A counter summed over its label sets on a process's `/metrics` page.
async fn counter(rig: &Rig, url: &str, name: &str) -> f64 {
    crate::prom::scrape(&rig.client, url).await.total(name)
}

/// Attempts of 100 ms: an attempt seen in flight is still running when a
/// fault lands just after (at 20 ms it could finish in between, and a worker
/// killed or frozen with nothing running tests nothing).
fn in_flight_options() -> Options {
    Options {
        downstream_delay: Duration::from_millis(100),
        ..Options::default()
    }
}

/// Waits for the posting and the drain, checks and returns the report.
async fn finish(rig: &Rig, scenario: &str, poster: super::Poster, last_fault: Instant) -> Report {
    let ids = poster.accepted().await;
    assert_eq!(ids.len(), JOBS);
    let report = rig.check(scenario, &ids, last_fault).await;
    if report.lost > 0 {
        rig.dump_logs();
    }
    report.assert_ok();
    report
}

/// `kill -9` of the relay mid-run; a new relay takes over its claims once
/// their lease lapses.
pub async fn kill_relay(bus: Bus) {
    let Some(mut rig) = rig(bus, Options::default()).await else {
        return;
    };
    let poster = rig.post(JOBS, PER_SECOND);
    wait_deliveries(&rig.ds, 300, "kill -9 relay").await;
    rig.relay.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.relay = rig.spawn("relay");
    finish(&rig, "kill -9 relay", poster, Instant::now()).await;
}

/// `kill -9` of a worker with attempts in flight; they run again elsewhere.
pub async fn kill_worker(bus: Bus) {
    let Some(mut rig) = rig(bus, in_flight_options()).await else {
        return;
    };
    let poster = rig.post(JOBS, PER_SECOND);
    wait_deliveries(&rig.ds, 300, "kill -9 worker").await;
    let before = rig.assignments(1);
    wait_attempt_in_flight(&rig.client, &rig.workers[0].url("/metrics")).await;
    rig.workers[0].kill9();
    let fault = Instant::now();
    if bus == Bus::Kafka {
        rig.until_rebalanced(1, before, REBALANCE_LIMIT).await;
    }
    rig.workers[0] = rig.spawn("worker");
    let report = finish(&rig, "kill -9 worker", poster, fault).await;
    assert!(report.retried > 0, "the kill hit no attempt in flight");
}

/// `kill -9` of ingest mid-run; producers post again to a new one.
pub async fn kill_ingest(bus: Bus) {
    let Some(mut rig) = rig(bus, Options::default()).await else {
        return;
    };
    let poster = rig.post(JOBS, PER_SECOND);
    wait_deliveries(&rig.ds, 300, "kill -9 ingest").await;
    rig.restart_ingest();
    finish(&rig, "kill -9 ingest", poster, Instant::now()).await;
}

/// The broker stops and starts again (Kafka: a tansu of the test's own on
/// persistent storage; RabbitMQ: the test's own node).
pub async fn broker_restart(bus: Bus) {
    let opts = Options {
        private_kafka: true,
        ..Options::default()
    };
    let Some(mut rig) = rig(bus, opts).await else {
        return;
    };
    let poster = rig.post(JOBS, PER_SECOND);
    wait_deliveries(&rig.ds, 300, "broker restart").await;
    match &mut rig.node {
        Node::Tansu(t) => {
            t.stop_server().expect("stop tansu");
            tokio::time::sleep(Duration::from_secs(2)).await;
            t.start_server().expect("start tansu again");
        }
        Node::Rabbit(r) => {
            r.stop_server().expect("stop RabbitMQ");
            tokio::time::sleep(Duration::from_secs(2)).await;
            r.start_server().expect("start RabbitMQ again");
        }
        Node::Shared => unreachable!("the rig has a broker of its own"),
    }
    eprintln!("broker back at {} deliveries", rig.ds.total());
    finish(&rig, "broker restart", poster, Instant::now()).await;
}

/// PostgreSQL stops for 3 s (fast shutdown: connections cut) and starts
/// again; ingest answers 503 meanwhile and the producer posts again.
pub async fn postgres_restart(bus: Bus) {
    let opts = Options {
        private_pg: true,
        ..Options::default()
    };
    let Some(rig) = rig(bus, opts).await else {
        return;
    };
    let poster = rig.post(JOBS, PER_SECOND);
    wait_deliveries(&rig.ds, 300, "PostgreSQL restart").await;
    rig.private_pg().stop_server().expect("stop PostgreSQL");
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.private_pg()
        .start_server()
        .expect("start PostgreSQL again");
    finish(&rig, "PostgreSQL restart", poster, Instant::now()).await;
}

/// Jobs the downstream has seen more than once.
fn twice(rig: &Rig) -> usize {
    rig.ds.arrivals().values().filter(|a| a.len() > 1).count()
}

/// A worker frozen with SIGSTOP past its lease while its attempts run:
/// another worker takes them over; when it resumes, its late outcomes are
/// fenced off.
pub async fn sigstop_worker(bus: Bus) {
    let Some(mut rig) = rig(bus, in_flight_options()).await else {
        return;
    };
    let poster = rig.post(JOBS, PER_SECOND);
    wait_deliveries(&rig.ds, 300, "SIGSTOP worker").await;
    let before = rig.assignments(1);
    let frozen = rig.workers[0].url("/metrics");
    wait_attempt_in_flight(&rig.client, &frozen).await;
    rig.workers[0].signal("STOP").expect("SIGSTOP");
    let twice_before = twice(&rig);
    match bus {
        // the group drops the frozen member after its session timeout; a
        // joining member then takes its partitions (see `until_rebalanced`)
        Bus::Kafka => {
            rig.until_rebalanced(1, before, REBALANCE_LIMIT).await;
            let extra = rig.spawn("worker");
            rig.workers.push(extra);
        }
        // RabbitMQ closes the frozen connection after missed heartbeats
        // (2 s in the rig) and hands its unacked messages to the other worker
        Bus::Amqp => {}
    }
    // past the lease (handler timeout 2 s + margin 1 s) and the hand-over
    tokio::time::sleep(Duration::from_secs(8)).await;
    // and until another worker has started again a job the frozen one was
    // attempting (the job reaches the downstream a second time): only then
    // is a late outcome of the frozen worker certain to meet a newer lease
    let deadline = Instant::now() + TAKEOVER_LIMIT;
    while twice(&rig) <= twice_before {
        assert!(
            Instant::now() < deadline,
            "no other worker took over the frozen worker's attempts within {TAKEOVER_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.workers[0].signal("CONT").expect("SIGCONT");
    let report = finish(
        &rig,
        "SIGSTOP worker past its lease",
        poster,
        Instant::now(),
    )
    .await;
    // the other workers may drain the backlog before the resumed one has
    // recorded its late outcomes: give it a few seconds to
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut fenced = counter(&rig, &frozen, "sluice_attempts_fenced_total").await;
    while fenced == 0.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        fenced = counter(&rig, &frozen, "sluice_attempts_fenced_total").await;
    }
    eprintln!(
        "late outcomes fenced off: {fenced}; jobs attempted again: {}",
        report.retried
    );
    if fenced <= 0.0 {
        rig.dump_logs();
    }
    assert!(
        fenced > 0.0,
        "the resumed worker's late outcomes were not fenced"
    );
}

/// The downstream answers 503 to everything for 20 s: the breaker opens,
/// attempts stop, nothing is dead-lettered, and all succeed after.
pub async fn downstream_down(bus: Bus) {
    let Some(rig) = rig(bus, Options::default()).await else {
        return;
    };
    let poster = rig.post(JOBS, PER_SECOND);
    wait_deliveries(&rig.ds, 300, "downstream down").await;
    rig.ds.break_with(503);
    tokio::time::sleep(Duration::from_secs(20)).await;
    rig.ds.fix();
    let fault = Instant::now();
    finish(&rig, "downstream down 20 s", poster, fault).await;
    let mut opened = 0.0;
    for w in &rig.workers {
        opened += counter(&rig, &w.url("/metrics"), "sluice_circuit_opened_total").await;
    }
    eprintln!("circuit opened {opened} times");
    assert!(opened > 0.0, "the breaker never opened");
}

/// A downstream of limited capacity (20 ms a request up to 4 at once,
/// slower in proportion beyond) with pools of up to 64: at 128 concurrent
/// requests each would take 640 ms, past the 500 ms timeout. Adaptive
/// concurrency keeps the pools small enough that attempts do not time out:
/// few are attempted again, and the downstream never sees enough requests
/// at once to reach the timeout.
pub async fn slow_downstream(bus: Bus) {
    let opts = Options {
        downstream_capacity: Some(4),
        concurrency_max: 64,
        timeout_ms: 500,
        ..Options::default()
    };
    // Each request takes 20 ms per started 4 running, so at 97 or more at
    // once it reaches the 500 ms timeout. The limiter must hold the pools
    // below that; without it they reach 128. (Peaks seen: 21 to 67.)
    let capacity = opts.downstream_capacity.unwrap_or(1);
    let delay_ms = opts.downstream_delay.as_millis() as usize;
    let under_timeout = capacity * (opts.timeout_ms as usize / delay_ms - 1);
    let Some(rig) = rig(bus, opts).await else {
        return;
    };
    let start = Instant::now();
    // faster than the downstream can go: a backlog builds up
    let poster = rig.post(1000, 400.0);
    let ids = poster.accepted().await;
    let report = rig.check("slow downstream", &ids, start).await;
    report.assert_ok();
    let peak = rig.ds.peak();
    eprintln!(
        "downstream peak concurrency {peak} (pools of up to {}); jobs attempted again: {}",
        rig.in_flight_window(),
        report.retried
    );
    assert!(
        report.retried <= ids.len() / 50,
        "{} of {} jobs needed another attempt: a timeout storm",
        report.retried,
        ids.len()
    );
    assert!(
        peak <= under_timeout,
        "the downstream saw {peak} concurrent requests (more than {under_timeout} time out)"
    );
}

/// One `#[tokio::test]` per named scenario for `$bus`:
/// `fault_suite!(Bus::Amqp; kill_relay, kill_worker)`.
#[macro_export]
macro_rules! fault_suite {
    ($bus:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::faults::scenarios::$name($bus).await;
            }
        )*
    };
}
