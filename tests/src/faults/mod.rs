//! The fault suite's rig: PostgreSQL plus Kafka or RabbitMQ, with `ingest`,
//! `relay` and two `worker`s as separate processes of the real binary, a
//! downstream that records every delivery, a paced poster of jobs, and the
//! checker that reports lost, duplicated and wrongly dead-lettered jobs.

mod checker;
mod diagnose;
mod poster;
pub mod scenarios;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use checker::Report;
pub use poster::{post_until_answered, Poster};

use crate::brokers::{amqp_url, kafka_brokers, unique_topic};
use crate::jobs::start_role;
use crate::kafka::{kafka_url, KafkaTopics};
use crate::pg::{server_url, PrivatePg, TempDb};
use crate::rabbit::PrivateRabbit;
use crate::tansu::PrivateTansu;
use crate::{Downstream, SluiceProcess};

/// The broker of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    Kafka,
    Amqp,
}

impl Bus {
    pub fn name(self) -> &'static str {
        match self {
            Bus::Kafka => "PostgreSQL + Kafka",
            Bus::Amqp => "PostgreSQL + RabbitMQ",
        }
    }
}

/// What a scenario changes from the defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// A PostgreSQL server of the test's own, to restart.
    pub private_pg: bool,
    /// For Kafka, a tansu of the test's own on persistent storage, to
    /// restart. RabbitMQ scenarios always get a node of their own.
    pub private_kafka: bool,
    pub downstream_delay: Duration,
    /// See [`Downstream::start_with`].
    pub downstream_capacity: Option<usize>,
    /// `concurrency.max` of each worker process.
    pub concurrency_max: u32,
    /// The http handler's timeout.
    pub timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            private_pg: false,
            private_kafka: false,
            downstream_delay: Duration::from_millis(20),
            downstream_capacity: None,
            concurrency_max: 8,
            timeout_ms: 2000,
        }
    }
}

enum Pg {
    Shared(#[allow(dead_code)] TempDb),
    Private(PrivatePg),
}

/// The broker node a scenario may restart.
pub enum Node {
    /// The shared test broker.
    Shared,
    Tansu(PrivateTansu),
    Rabbit(PrivateRabbit),
}

/// Worker processes of the rig.
pub const WORKERS: usize = 2;

/// A running system under test. Dropping it stops every process and removes
/// what it created.
pub struct Rig {
    pub bus: Bus,
    pub opts: Options,
    pub ds: Downstream,
    pub client: reqwest::Client,
    pub queue: String,
    /// The queue's topic.
    pub topic: String,
    /// Kafka: the bootstrap servers the rig's processes use.
    pub kafka_brokers: Option<String>,
    pub ingest: SluiceProcess,
    pub relay: SluiceProcess,
    pub workers: Vec<SluiceProcess>,
    pub node: Node,
    pub db_url: String,
    base: Arc<Mutex<String>>,
    pg: Pg,
    _topics: Option<KafkaTopics>,
    dir: tempfile::TempDir,
}

impl Rig {
    /// Starts everything, or `None` when the backends are not configured
    /// (a skip; a failure under `SLUICE_TEST_REQUIRE_BACKENDS=1`).
    pub async fn start(bus: Bus, opts: Options) -> Option<Self> {
        let server = server_url()?;
        let shared_kafka = match bus {
            Bus::Kafka => Some(kafka_brokers()?),
            Bus::Amqp => {
                amqp_url()?;
                None
            }
        };
        let pg = match opts.private_pg {
            true => Pg::Private(PrivatePg::start().expect("private PostgreSQL")),
            false => Pg::Shared(TempDb::create(&server).await.expect("test database")),
        };
        let db_url = match &pg {
            Pg::Private(p) => p.url(),
            Pg::Shared(db) => db.url.clone(),
        };
        let queue = format!(
            "faults_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let topic = unique_topic("faults");
        let mut kafka_brokers = None;
        let (node, broker_url, topics) = match (bus, shared_kafka) {
            (Bus::Kafka, Some(shared)) => {
                let (node, brokers) = match opts.private_kafka {
                    true => {
                        let t = PrivateTansu::start().expect("private tansu");
                        let b = t.brokers();
                        (Node::Tansu(t), b)
                    }
                    false => (Node::Shared, shared),
                };
                let url = format!("{}&session_timeout_ms=6000", kafka_url(&brokers, 4));
                kafka_brokers = Some(brokers.clone());
                let topics =
                    matches!(node, Node::Shared).then(|| KafkaTopics::of_queue(&brokers, &topic));
                (node, url, topics)
            }
            _ => {
                let rabbit = PrivateRabbit::start().expect("private RabbitMQ node");
                let url = format!("{}?heartbeat=2", rabbit.url());
                (Node::Rabbit(rabbit), url, None)
            }
        };
        let ds = Downstream::start_with(opts.downstream_delay, opts.downstream_capacity)
            .await
            .expect("downstream");
        let dir = tempfile::tempdir().expect("temp dir");
        write_config(
            dir.path(),
            &opts,
            &ds.url(),
            &db_url,
            &broker_url,
            &queue,
            &topic,
        );
        let (status, out) =
            crate::process::run_to_end(dir.path(), &["migrate"], Duration::from_secs(60))
                .expect("sluice migrate");
        assert_eq!(status, Some(0), "sluice migrate: {out}");
        let ingest = start_role(dir.path(), "ingest");
        let relay = start_role(dir.path(), "relay");
        let workers = (0..WORKERS)
            .map(|_| start_role(dir.path(), "worker"))
            .collect();
        Some(Self {
            bus,
            base: Arc::new(Mutex::new(ingest.url(""))),
            opts,
            ds,
            client: reqwest::Client::new(),
            queue,
            topic,
            kafka_brokers,
            ingest,
            relay,
            workers,
            node,
            db_url,
            pg,
            _topics: topics,
            dir,
        })
    }

    /// Starts posting `jobs` jobs at `per_second` (see [`Poster`]).
    pub fn post(&self, jobs: usize, per_second: f64) -> Poster {
        Poster::spawn(
            self.client.clone(),
            self.base.clone(),
            self.queue.clone(),
            jobs,
            per_second,
        )
    }

    /// A new process of `role` in the rig's directory.
    pub fn spawn(&self, role: &str) -> SluiceProcess {
        start_role(self.dir.path(), role)
    }

    /// `kill -9` of ingest, and a new one (on a new port the poster follows).
    pub fn restart_ingest(&mut self) {
        self.ingest.kill9();
        self.ingest = self.spawn("ingest");
        *self.base.lock().unwrap() = self.ingest.url("");
    }

    /// The private PostgreSQL server, for restart scenarios.
    pub fn private_pg(&self) -> &PrivatePg {
        match &self.pg {
            Pg::Private(p) => p,
            Pg::Shared(_) => panic!("the rig was started without private_pg"),
        }
    }

    /// How many partition assignments worker `i` has logged (Kafka).
    pub fn assignments(&self, i: usize) -> usize {
        self.workers[i]
            .log_text()
            .matches("kafka partitions assigned")
            .count()
    }

    /// Kafka: waits until worker `i` logged more than `before` assignments,
    /// the group rebalanced after a member's session expired; panics after
    /// `limit`. A replacement worker must not join before that: tansu 0.6's
    /// group coordinator keeps an expired member's assignment until a new
    /// generation, and a member joining while the dead one is still in the
    /// group leaves the dead one's partitions with it for good (Apache Kafka
    /// reassigns them on the expiry).
    pub async fn until_rebalanced(&self, i: usize, before: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.assignments(i) <= before {
            assert!(
                Instant::now() < deadline,
                "worker {i} saw no rebalance within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Prints the last lines of every process's log (for a failed check).
    pub fn dump_logs(&self) {
        let procs = [("ingest", &self.ingest), ("relay", &self.relay)]
            .into_iter()
            .chain(self.workers.iter().map(|w| ("worker", w)));
        for (role, p) in procs {
            let text = p.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "---- {role} (pid {}), last lines:\n{}",
                p.pid(),
                tail.join("\n")
            );
        }
    }

    /// Upper bound of duplicate deliveries one fault may cause: every attempt
    /// in flight in the system at that moment.
    pub fn in_flight_window(&self) -> usize {
        WORKERS * self.opts.concurrency_max as usize
    }

    /// Waits for the backlog to drain (60 s after `last_fault` at most) and
    /// reports what came out of the accepted jobs.
    pub async fn check(&self, scenario: &str, ids: &[String], last_fault: Instant) -> Report {
        checker::check(self, scenario, ids, last_fault).await
    }
}

fn write_config(
    dir: &Path,
    opts: &Options,
    downstream: &str,
    store: &str,
    broker: &str,
    queue: &str,
    topic: &str,
) {
    let cfg = format!(
        r#"
data_dir = "./data"
[store]
url = "{store}"
[broker]
url = "{broker}"
[relay]
lease_ms = 3000
batch_size = 200
# well inside the drain limit: a job the broker lost is published again
redrive_after_ms = 10000
[worker]
lease_margin_ms = 1000
[[queues]]
name = "{queue}"
topic = "{topic}"
max_attempts = 20
backoff = {{ initial_ms = 50, max_ms = 1000, multiplier = 2.0 }}
concurrency = {{ min = 1, max = {max} }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = {timeout} }}
"#,
        max = opts.concurrency_max,
        timeout = opts.timeout_ms,
    );
    std::fs::write(dir.join("sluice.toml"), cfg).expect("write sluice.toml");
}
