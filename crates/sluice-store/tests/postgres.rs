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
    AttemptStore, Completion, EnqueueRequest, GroupCommit, IngestStore, NewJob, OutboxStore,
    Outcome, StartOutcome, StartRequest, Store, StoreError,
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
async fn rows_committed_out_of_order_are_all_published() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let insert = |id: JobId| {
            let now = now_ms();
            (
                sqlx::query(
                    "INSERT INTO jobs (id, queue, status, payload, max_attempts, created_at, updated_at) \
                     VALUES ($1, 'q', 'pending', '{}', 3, $2, $2)",
                )
                .bind(id.as_uuid())
                .bind(now),
                sqlx::query(
                    "INSERT INTO outbox (job_id, queue, attempt, available_at, created_at) \
                     VALUES ($1, 'q', 1, $2, $2) RETURNING row_id",
                )
                .bind(id.as_uuid())
                .bind(now),
            )
        };
        let (early, late) = (JobId::new(), JobId::new());
        let mut a = db.admin().await;
        let mut b = db.admin().await;
        // A takes the lower row id but commits last.
        let mut tx_a = a.begin().await.unwrap();
        let (job_a, row_a) = insert(early);
        job_a.execute(&mut *tx_a).await.unwrap();
        let row_a: i64 = row_a.fetch_one(&mut *tx_a).await.unwrap().get(0);
        let mut tx_b = b.begin().await.unwrap();
        let (job_b, row_b) = insert(late);
        job_b.execute(&mut *tx_b).await.unwrap();
        let row_b: i64 = row_b.fetch_one(&mut *tx_b).await.unwrap().get(0);
        assert!(row_a < row_b, "A holds the earlier row id");
        tx_b.commit().await.unwrap();

        let first = store.claim_outbox(10, LONG).await.unwrap();
        assert_eq!(
            first.rows.iter().map(|r| r.row_id).collect::<Vec<_>>(),
            vec![row_b],
            "the uncommitted row is invisible"
        );
        assert_eq!(
            store.mark_published(&first.lease, &[row_b]).await.unwrap(),
            1
        );

        tx_a.commit().await.unwrap();
        // A relay remembering the highest row id it published would skip A.
        let second = store.claim_outbox(10, LONG).await.unwrap();
        assert_eq!(
            second
                .rows
                .iter()
                .map(|r| (r.row_id, r.job_id))
                .collect::<Vec<_>>(),
            vec![(row_a, early)],
            "the row committed late is still published"
        );
        assert_eq!(
            store.mark_published(&second.lease, &[row_a]).await.unwrap(),
            1
        );
        assert_eq!(store.next_due().await.unwrap(), None);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_notification_per_committed_batch() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let mut listener = PgListener::connect(&db.url).await.unwrap();
        listener.listen(NOTIFY_CHANNEL).await.unwrap();
        let first = Duration::from_secs(5);
        let quiet = Duration::from_millis(500);

        // 100 requests of one job, one call: one transaction, one NOTIFY.
        let reqs: Vec<EnqueueRequest> = (0..100).map(|_| plain(vec![job("q")])).collect();
        for r in store.enqueue(reqs).await {
            r.unwrap();
        }
        assert_eq!(count_notifications(&mut listener, first, quiet).await, 1);

        // One request of 100 jobs.
        enqueue(&store, (0..100).map(|_| job("q")).collect()).await;
        assert_eq!(count_notifications(&mut listener, first, quiet).await, 1);

        // Claiming and marking add no rows: no notification.
        let c = store.claim_outbox(1000, LONG).await.unwrap();
        assert_eq!(c.rows.len(), 200);
        let ids: Vec<i64> = c.rows.iter().map(|r| r.row_id).collect();
        assert_eq!(store.mark_published(&c.lease, &ids).await.unwrap(), 200);
        assert_eq!(
            count_notifications(&mut listener, quiet, quiet).await,
            0,
            "claims and marks do not notify"
        );

        // Ten retries finished in one call: one NOTIFY.
        let starts: Vec<StartRequest> = c
            .rows
            .iter()
            .take(10)
            .map(|r| StartRequest {
                job_id: r.job_id,
                attempt: Some(1),
                create: None,
                lease: None,
            })
            .collect();
        let mut completions = Vec::new();
        for res in store.start_attempts(starts, LONG).await {
            let StartOutcome::Started(a) = res.unwrap() else {
                panic!("starts")
            };
            completions.push(Completion {
                job_id: a.job.id,
                lease: a.lease,
                attempt: a.attempt,
                started_at: now_ms(),
                outcome: Outcome::Retry {
                    available_at: now_ms(),
                    error: "again".into(),
                },
            });
        }
        for r in store.finish_attempts(completions).await {
            r.unwrap();
        }
        assert_eq!(count_notifications(&mut listener, first, quiet).await, 1);
        assert_eq!(store.claim_outbox(100, LONG).await.unwrap().rows.len(), 10);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listen_wakes_relays_of_another_store() {
    pg_case!(|db| {
        let ingest = PgStore::open(&db.url).await.unwrap();
        let relay = PgStore::open(&db.url).await.unwrap();
        assert!(relay.is_listening(), "open waits for LISTEN");
        let notify = relay.outbox_notify();
        for _ in 0..3 {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            enqueue(&ingest, vec![job("q")]).await;
            tokio::time::timeout(Duration::from_secs(5), notified)
                .await
                .expect("a commit in another store wakes this one's relay");
        }
        assert_eq!(relay.claim_outbox(10, LONG).await.unwrap().rows.len(), 3);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_opening_a_fresh_database_at_once_migrate_it_once() {
    pg_case!(|db| {
        let url = db.url.as_str();
        let (a, b, c, d) = tokio::join!(
            PgStore::open(url),
            PgStore::open(url),
            PgStore::open(url),
            sluice_store::open(url),
        );
        let (a, b, c, d) = (a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap());
        assert_eq!(d.backend(), "postgres");
        let mut conn = db.admin().await;
        let rows = sqlx::query("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let got: Vec<(i64, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        // one row per migration file, each applied once
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/postgres/migrations");
        let files = std::fs::read_dir(dir).unwrap().count() as i64;
        assert!(files >= 12, "{files} migrations in {dir}");
        let all: Vec<(i64, bool)> = (1..=files).map(|v| (v, true)).collect();
        assert_eq!(got, all, "each migration applied once");
        let j = job("q");
        enqueue(&a, vec![j.clone()]).await;
        for s in [&b as &dyn Store, &c, &*d] {
            assert_eq!(s.get_job(j.id).await.unwrap().id, j.id);
        }
        // Reopening an up-to-date database changes nothing.
        PgStore::open(url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, got.len() as i64);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_never_share_a_claimed_row() {
    pg_case!(|db| {
        let a = Arc::new(PgStore::open(&db.url).await.unwrap());
        let b = Arc::new(PgStore::open(&db.url).await.unwrap());
        for _ in 0..3 {
            enqueue(&*a, (0..100).map(|_| job("q")).collect()).await;
        }
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let c = store.claim_outbox(5, LONG).await.unwrap();
                    if c.rows.is_empty() {
                        return got;
                    }
                    got.extend(c.rows.iter().map(|r| r.row_id));
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let unique: HashSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), 300);
        assert_eq!(unique.len(), 300);
    });
}

/// The page of each outbox row, by row id.
async fn outbox_pages(conn: &mut PgConnection) -> BTreeMap<i64, f64> {
    sqlx::query("SELECT row_id, (ctid::text::point)[0] AS page FROM outbox")
        .fetch_all(conn)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("row_id"), r.get("page")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_leases_rows_in_place() {
    // Every new version stays on its page (a HOT update: no index entries),
    // even when a claim leases every row of the page at once.
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let mut jobs: Vec<NewJob> = (0..1000).map(|_| job("q")).collect();
        for j in &mut jobs {
            j.payload = json!({});
        }
        enqueue(&store, jobs).await;
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let before = outbox_pages(&mut conn).await;
        let claim = store.claim_outbox(1000, LONG).await.unwrap();
        assert_eq!(claim.rows.len(), 1000);
        let after = outbox_pages(&mut conn).await;
        let moved = before
            .iter()
            .filter(|(id, p)| after.get(id) != Some(p))
            .count();
        assert_eq!(
            moved, 0,
            "{moved} of 1000 leased rows moved to another page"
        );
        conn.close().await.unwrap();
    });
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_unavailable_quickly_without_the_password() {
    if server_url().is_none() {
        return;
    }
    let secret = "hunter2-not-for-logs";
    let url = format!("postgres://sluice:{secret}@127.0.0.1:1/sluice");
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(20), PgStore::open(&url))
        .await
        .expect("open gives up on its own");
    let took = started.elapsed();
    let err = res.expect_err("nothing listens on port 1");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(!err.to_string().contains(secret) && !format!("{err:?}").contains(secret));

    let err = sluice_store::open(&format!("{url}?acquire_timeout_ms=300"))
        .await
        .err()
        .expect("unreachable");
    assert!(err.is_transient(), "{err:?}");
    assert!(!format!("{err:?}").contains(secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_database_and_bad_urls_never_show_the_password() {
    let Some(server) = server_url() else {
        return;
    };
    let secret = "s3cr3t-Pa55";
    let mut u = url::Url::parse(&url_for(&server, "sluice_t_does_not_exist")).unwrap();
    u.set_password(Some(secret)).unwrap();
    let err = PgStore::open(u.as_str())
        .await
        .expect_err("no such database");
    assert!(err.is_transient(), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");

    for bad in [
        format!("postgres://u:{secret}@h/d?max_connections=0"),
        format!("postgres://u:{secret}@h:99999/d"),
        format!("postgres://u:{secret}@h/d?sslmode=bogus"),
    ] {
        let err = PgStore::open(&bad).await.expect_err("bad url");
        assert!(matches!(err, StoreError::InvalidUrl(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
    }
}

/// A TCP relay to the PostgreSQL server that can be cut and restored on the
/// same port: a database outage, as the store sees it.
struct Cable {
    addr: std::net::SocketAddr,
    target: String,
    tasks: Option<JoinSet<()>>,
}

impl Cable {
    async fn new(target: String) -> Cable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cable = Cable {
            addr,
            target,
            tasks: None,
        };
        cable.serve(listener);
        cable
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target.clone();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Closes the port and every connection through it.
    async fn cut(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.shutdown().await;
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_is_unavailable_then_recovers_without_reopening() {
    pg_case!(|db| {
        let server = url::Url::parse(&db.url).unwrap();
        let target = format!(
            "{}:{}",
            server.host_str().unwrap_or("127.0.0.1"),
            server.port().unwrap_or(5432)
        );
        let mut cable = Cable::new(target).await;
        let mut via = server.clone();
        via.set_host(Some("127.0.0.1")).unwrap();
        via.set_port(Some(cable.addr.port())).unwrap();
        via.query_pairs_mut()
            .append_pair("acquire_timeout_ms", "1000");
        let store = PgStore::open(via.as_str()).await.unwrap();
        let direct = PgStore::open(&db.url).await.unwrap();
        enqueue(&store, vec![job("q")]).await;
        assert!(store.is_listening());

        cable.cut().await;
        let started = Instant::now();
        let res = store.enqueue(vec![plain(vec![job("q")])]).await.remove(0);
        assert!(matches!(res, Err(StoreError::Unavailable(_))), "{res:?}");
        assert!(store.ping().await.unwrap_err().is_transient());
        assert!(
            store
                .claim_outbox(10, LONG)
                .await
                .unwrap_err()
                .is_transient(),
            "claims fail too"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.is_listening() {
            assert!(Instant::now() < deadline, "the listener notices the outage");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        cable.restore().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let res = store.enqueue(vec![plain(vec![job("q")])]).await.remove(0);
            match res {
                Ok(_) => break,
                Err(e) => {
                    assert!(e.is_transient(), "{e:?}");
                    assert!(Instant::now() < deadline, "recovers: {e:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        store.ping().await.unwrap();
        while !store.is_listening() {
            assert!(Instant::now() < deadline, "the listener reconnects");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Wake-ups flow again: a commit elsewhere reaches this store.
        let notify = store.outbox_notify();
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        enqueue(&direct, vec![job("q")]).await;
        tokio::time::timeout(Duration::from_secs(5), notified)
            .await
            .expect("LISTEN works after the outage");
        assert_eq!(store.queue_stats().await.unwrap()[0].pending, 3);
        cable.cut().await;
    });
}

/// Enqueues one job on a store whose backends were all terminated: at most
/// one attempt fails, as unavailable (the caller's 503), and the next one,
/// after the hold-down, finds every dead connection pinged and replaced.
async fn enqueue_after_outage(store: &dyn Store) {
    let mut failures = Vec::new();
    for _ in 0..2 {
        match store.enqueue(vec![plain(vec![job("q")])]).await.remove(0) {
            Ok(_) => return,
            Err(e) => {
                assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                failures.push(e);
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
        }
    }
    panic!("enqueue still failing after the hold-down: {failures:?}");
}

/// Terminates every other session of `admin`'s database, as a server
/// restart or an operator does, and waits (bounded) until they are gone;
/// returns their pids.
async fn terminate_sessions(admin: &mut PgConnection) -> Vec<i32> {
    let killed: Vec<i32> = sqlx::query_scalar(
        // Materialized first: the filter must run before the function,
        // which would otherwise be free to see every session.
        "WITH victims AS MATERIALIZED ( \
             SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
         ) \
         SELECT pid FROM victims WHERE pg_terminate_backend(pid)",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    assert!(!killed.is_empty());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alive: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                .bind(&killed)
                .fetch_one(&mut *admin)
                .await
                .unwrap();
        if alive == 0 {
            return killed;
        }
        assert!(Instant::now() < deadline, "terminated backends exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_the_server_dropped_are_replaced_unseen() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        enqueue(&store, vec![job("q")]).await;
        terminate_sessions(&mut db.admin().await).await;
        // Idle longer than PING_IDLE_AFTER (500 ms): each pooled connection
        // is pinged before use, and a dead one replaced, so no operation
        // sees the outage.
        tokio::time::sleep(Duration::from_millis(700)).await;
        enqueue(&store, vec![job("q")]).await;
        assert_eq!(store.queue_stats().await.unwrap()[0].pending, 2);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminated_backends_are_replaced() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let other = PgStore::open(&db.url).await.unwrap();
        enqueue(&store, vec![job("q")]).await;
        let mut admin = db.admin().await;
        let killed = terminate_sessions(&mut admin).await;
        // A dead pooled connection used less than PING_IDLE_AFTER ago fails
        // one operation, transiently; then every dead one is replaced.
        enqueue_after_outage(&store).await;
        assert_eq!(store.queue_stats().await.unwrap()[0].pending, 2);

        // The listener subscribes again on a new backend.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listening: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query ILIKE 'LISTEN%' \
                   AND NOT (pid = ANY($1))",
            )
            .bind(&killed)
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if listening >= 2 {
                break;
            }
            assert!(Instant::now() < deadline, "listeners come back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let notify = store.outbox_notify();
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        enqueue_after_outage(&other).await;
        tokio::time::timeout(Duration::from_secs(5), notified)
            .await
            .expect("LISTEN works again");
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

#[path = "postgres/plans.rs"]
mod plans;
#[path = "postgres/retention.rs"]
mod retention;
#[path = "postgres/schema.rs"]
mod schema;
#[path = "postgres/starts.rs"]
mod starts;
