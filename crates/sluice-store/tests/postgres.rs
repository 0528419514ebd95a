//! The store conformance suite on PostgreSQL (a fresh database per case),
//! plus what only PostgreSQL has: rows committed out of order, one NOTIFY
//! per committed batch, LISTEN wake-ups across stores, concurrent
//! migrations, group commit, pruning that skips held rows, and outages (an
//! unreachable server, a severed connection, terminated backends) with
//! recovery and no password in errors. Every case ends by checking that no
//! outbox row names a missing job (the outbox has no foreign key).
//!
//! Needs `SLUICE_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`, a role that may create
//! databases). Without it every case is skipped, unless
//! `SLUICE_TEST_REQUIRE_BACKENDS=1`, which makes it a failure. Each case
//! creates its own database `sluice_t_<uuid>` and drops only that one.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_core::{now_ms, JobId};
use sluice_store::postgres::{PgStore, NOTIFY_CHANNEL};
use sluice_store::{
    AttemptStore, Completion, EnqueueRequest, GroupCommit, IngestStore, LeaseToken, NewJob,
    OutboxStore, Outcome, StartOutcome, StartRequest, Store, StoreError,
};
use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{Connection, Executor, Row};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const URL_ENV: &str = "SLUICE_TEST_POSTGRES_URL";
const LONG: Duration = Duration::from_secs(60);
/// The longest any PostgreSQL-specific case may run.
const TIMEOUT: Duration = Duration::from_secs(90);

/// The server URL from the environment; `None` skips the case (with a
/// note), unless backends are required.
fn server_url() -> Option<String> {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("SLUICE_TEST_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                "{URL_ENV} is not set and SLUICE_TEST_REQUIRE_BACKENDS=1: PostgreSQL is required"
            );
            eprintln!("skipping: {URL_ENV} is not set");
            None
        }
    }
}

/// `url` pointing at database `name`.
fn url_for(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("SLUICE_TEST_POSTGRES_URL is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// A database created for one case; dropped (only it) when the guard goes.
struct TestDb {
    server: String,
    name: String,
    url: String,
}

impl TestDb {
    async fn create() -> Option<TestDb> {
        let server = server_url()?;
        let name = format!("sluice_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn =
            tokio::time::timeout(Duration::from_secs(20), PgConnection::connect(&server))
                .await
                .expect("connecting to SLUICE_TEST_POSTGRES_URL timed out")
                .expect("connect to SLUICE_TEST_POSTGRES_URL");
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let url = url_for(&server, &name);
        Some(TestDb { server, name, url })
    }

    async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }
}

/// Outbox rows naming a job that does not exist. The outbox has no foreign
/// key to jobs (migration 0011): the statements that write it keep that
/// integrity, and every case checks it before its database goes.
const ORPHAN_OUTBOX_ROWS: &str = "SELECT CASE WHEN to_regclass('outbox') IS NULL THEN 0 ELSE \
     (SELECT COUNT(*) FROM outbox AS o WHERE NOT EXISTS \
        (SELECT 1 FROM jobs AS j WHERE j.id = o.job_id)) END";

impl Drop for TestDb {
    /// Drops the database; first, unless the case already failed, fails it
    /// if an outbox row names a missing job.
    fn drop(&mut self) {
        let (server, name, url) = (self.server.clone(), self.name.clone(), self.url.clone());
        let check = !std::thread::panicking();
        // Its own thread and runtime: Drop may run inside (or outside) the
        // case's runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(30), async {
                    let mut orphans: Result<i64, sqlx::Error> = Ok(0);
                    if check {
                        let mut db = PgConnection::connect(&url).await?;
                        orphans = sqlx::query_scalar(ORPHAN_OUTBOX_ROWS)
                            .fetch_one(&mut db)
                            .await;
                        let _ = db.close().await;
                    }
                    let mut conn = PgConnection::connect(&server).await?;
                    conn.execute(
                        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str(),
                    )
                    .await?;
                    conn.close().await?;
                    orphans
                })
                .await
                .map_err(|_| "timed out".to_string())?
                .map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => panic!(
                "{n} outbox rows of {} name a job that does not exist",
                self.name
            ),
            Ok(Err(e)) => eprintln!("could not check or drop test database {}: {e}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}

async fn fresh() -> Option<(Arc<dyn Store>, TestDb)> {
    let db = TestDb::create().await?;
    let store = PgStore::open(&db.url).await.expect("open the store");
    Some((Arc::new(store), db))
}

mod conformance {
    sluice_store::store_conformance!(super::fresh());
}

/// A store whose pool (3 connections) leaves no room for held claims: every
/// claim stamps its rows with its lease.
async fn fresh_leased() -> Option<(Arc<dyn Store>, TestDb)> {
    let db = TestDb::create().await?;
    let store = PgStore::open(&leased_url(&db))
        .await
        .expect("open the store");
    Some((Arc::new(store), db))
}

fn leased_url(db: &TestDb) -> String {
    with_param(&db.url, "max_connections=3")
}

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// The outbox cases again with leased claims, the path taken once held
/// claims use their quarter of the pool.
mod conformance_leased {
    sluice_store::store_conformance!(@outbox (super::fresh_leased()));
}

fn job(queue: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        queue: queue.into(),
        payload: json!({"k": "v"}),
        key: None,
        headers: BTreeMap::new(),
        max_attempts: 4,
        available_at: now_ms(),
        traceparent: None,
    }
}

fn plain(jobs: Vec<NewJob>) -> EnqueueRequest {
    EnqueueRequest {
        jobs,
        idempotency: None,
    }
}

async fn enqueue(store: &dyn Store, jobs: Vec<NewJob>) {
    for r in store.enqueue(vec![plain(jobs)]).await {
        r.unwrap();
    }
}

/// A statement with its parameters bound.
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// The plan of `sql` with `params` bound, with the session's planner settings.
async fn plan_of(
    conn: &mut PgConnection,
    sql: &str,
    bind: impl FnOnce(PgQuery<'_>) -> PgQuery<'_>,
) -> String {
    let explain = format!("EXPLAIN {sql}");
    let rows = bind(sqlx::query(&explain))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `case` with a fresh database (skipping when there is none), bounded.
macro_rules! pg_case {
    (|$db:ident| $body:block) => {{
        let Some($db) = TestDb::create().await else {
            return;
        };
        tokio::time::timeout(TIMEOUT, async { $body })
            .await
            .expect("case timed out");
        drop($db);
    }};
}

/// Receives notifications for `quiet` after the first one (which must come
/// within `first`); returns how many arrived.
async fn count_notifications(listener: &mut PgListener, first: Duration, quiet: Duration) -> usize {
    let mut n = 0;
    if tokio::time::timeout(first, listener.recv()).await.is_ok() {
        n += 1;
        while let Ok(got) = tokio::time::timeout(quiet, listener.recv()).await {
            got.unwrap();
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_coalesces_concurrent_requests() {
    pg_case!(|db| {
        let store: Arc<dyn Store> = Arc::new(PgStore::open(&db.url).await.unwrap());
        let mut listener = PgListener::connect(&db.url).await.unwrap();
        listener.listen(NOTIFY_CHANNEL).await.unwrap();
        let gc = Arc::new(GroupCommit::new(store.clone()));
        const N: usize = 200;
        let mut tasks = Vec::new();
        for _ in 0..N {
            let gc = gc.clone();
            tasks.push(tokio::spawn(async move {
                let j = job("q");
                let id = j.id;
                (id, gc.enqueue(vec![plain(vec![j])]).await.remove(0))
            }));
        }
        for t in tasks {
            let (id, res) = t.await.unwrap();
            assert_eq!(
                res.unwrap().ids,
                vec![id],
                "each caller gets its own answer"
            );
            assert_eq!(store.get_job(id).await.unwrap().id, id);
        }
        assert_eq!(store.queue_stats().await.unwrap()[0].pending, N as u64);
        // One notification per committed transaction: far fewer than requests.
        let commits = count_notifications(
            &mut listener,
            Duration::from_secs(5),
            Duration::from_millis(500),
        )
        .await;
        assert!(
            (1..N / 2).contains(&commits),
            "{commits} commits for {N} requests"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_breaks_the_batch_fails_alone() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        // PostgreSQL cannot store these (text has no NUL): the shared
        // transaction fails, and the batch is retried request by request.
        let mut bad = job("q");
        bad.traceparent = Some("00-\u{0}".into());
        let mut bad_key = job("q");
        bad_key.key = Some("nul\u{0}key".into());
        let good: Vec<NewJob> = (0..3).map(|_| job("q")).collect();
        let res = store
            .enqueue(vec![
                plain(vec![good[0].clone()]),
                plain(vec![job("q"), bad.clone()]),
                plain(vec![good[1].clone()]),
                plain(vec![bad_key.clone()]),
                plain(vec![good[2].clone()]),
            ])
            .await;
        assert_eq!(res.len(), 5);
        for (i, g) in [(0, &good[0]), (2, &good[1]), (4, &good[2])] {
            assert_eq!(res[i].as_ref().unwrap().ids, vec![g.id]);
            assert_eq!(store.get_job(g.id).await.unwrap().id, g.id);
        }
        for i in [1, 3] {
            assert!(
                matches!(res[i], Err(StoreError::Corrupt(_))),
                "request {i} fails alone: {:?}",
                res[i]
            );
        }
        for id in [bad.id, bad_key.id] {
            assert!(matches!(store.get_job(id).await, Err(StoreError::NotFound)));
        }
        let c = store.claim_outbox(100, LONG).await.unwrap();
        assert_eq!(c.rows.len(), 3, "only the good requests' rows");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn synchronous_commit_is_forced_on() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        assert_eq!(store.setting("synchronous_commit").await.unwrap(), "on");
        let sep = if db.url.contains('?') { '&' } else { '?' };
        let off = format!("{}{sep}options=-c%20synchronous_commit%3Doff", db.url);
        let store = PgStore::open(&off).await.unwrap();
        assert_eq!(store.setting("synchronous_commit").await.unwrap(), "on");
    });
}

/// A frozen process's open transaction must not hold its rows past the
/// leases of its jobs (the fault suite's SIGSTOP scenario caught a worker
/// frozen mid-transaction blocking the takeover of its jobs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_idle_in_a_transaction_are_ended_after_5_s() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let v = store
            .setting("idle_in_transaction_session_timeout")
            .await
            .unwrap();
        assert_eq!(v, "5s");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_and_dead_letters_are_stored_as_written() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let j = job("mail");
        enqueue(&store, vec![j.clone()]).await;
        for n in 1..=2u32 {
            let mut res = store
                .start_attempts(
                    vec![StartRequest {
                        job_id: j.id,
                        attempt: Some(n),
                        create: None,
                        lease: None,
                    }],
                    LONG,
                )
                .await;
            let StartOutcome::Started(a) = res.remove(0).unwrap() else {
                panic!("attempt {n} starts")
            };
            let outcome = if n == 1 {
                Outcome::Retry {
                    available_at: now_ms(),
                    error: "first\u{0}with a nul".into(),
                }
            } else {
                Outcome::Dead {
                    error: "second".into(),
                }
            };
            let c = Completion {
                job_id: j.id,
                lease: a.lease.clone(),
                attempt: a.attempt,
                started_at: 5,
                outcome,
            };
            store.finish_attempts(vec![c]).await.remove(0).unwrap();
        }
        let mut conn = db.admin().await;
        let rows = sqlx::query(
            "SELECT attempt, outcome, error, started_at FROM attempts WHERE job_id = $1 ORDER BY attempt",
        )
        .bind(j.id.as_uuid())
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let got: Vec<(i64, String, Option<String>, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "retry".into(), Some("first\u{FFFD}with a nul".into()), 5),
                (2, "dead".into(), Some("second".into()), 5)
            ]
        );
        let dl = sqlx::query("SELECT queue, error, attempts FROM dead_letters WHERE job_id = $1")
            .bind(j.id.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(dl.get::<String, _>(0), "mail");
        assert_eq!(dl.get::<String, _>(1), "second");
        assert_eq!(dl.get::<i64, _>(2), 2);
        let outbox: Vec<(String, i64, Option<String>)> =
            sqlx::query("SELECT kind, attempt, error FROM outbox ORDER BY row_id")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
        assert_eq!(
            outbox,
            vec![
                ("job".into(), 1, None),
                ("job".into(), 2, None),
                ("dead_letter".into(), 2, Some("second".into())),
            ],
            "the first row (never marked), the retry row and the dead letter's row"
        );
        let kinds: Vec<(String, String)> = sqlx::query(
            "SELECT json_typeof(payload), json_typeof(headers) FROM jobs WHERE id = $1",
        )
        .bind(j.id.as_uuid())
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        assert_eq!(
            kinds,
            vec![("object".into(), "object".into())],
            "json objects in the json columns"
        );
    });
}

#[path = "postgres/outage.rs"]
mod outage;
#[path = "postgres/outbox.rs"]
mod outbox;
#[path = "postgres/plans.rs"]
mod plans;
#[path = "postgres/retention.rs"]
mod retention;
#[path = "postgres/schema.rs"]
mod schema;
#[path = "postgres/starts.rs"]
mod starts;
