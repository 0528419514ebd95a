//! The store conformance suite on SQLite (a fresh file per case, and an
//! in-memory database), plus checks only SQLite has: connection settings,
//! durability across reopen, and several stores (processes) on one file.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_core::{now_ms, JobId, JobStatus};
use sluice_store::sqlite::SqliteStore;
use sluice_store::{
    AttemptStore, Completion, EnqueueRequest, IngestStore, NewJob, OutboxStore, Outcome,
    StartOutcome, StartRequest, Store, StoreError,
};
use sqlx::Row;
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(60);

fn url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("data/sluice.db").display())
}

async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(&dir)).await.unwrap();
    (Arc::new(store), dir)
}

mod file {
    sluice_store::store_conformance!(super::fresh());
}

mod memory {
    sluice_store::store_conformance!(async {
        let store: std::sync::Arc<dyn sluice_store::Store> = std::sync::Arc::new(
            sluice_store::sqlite::SqliteStore::open("sqlite::memory:")
                .await
                .unwrap(),
        );
        store
    });
}

fn job(queue: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        queue: queue.into(),
        payload: json!({"k": "v"}),
        key: Some("key".into()),
        headers: BTreeMap::from([("h".to_string(), "1".to_string())]),
        max_attempts: 4,
        available_at: now_ms(),
        traceparent: None,
    }
}

async fn enqueue(store: &dyn Store, jobs: Vec<NewJob>) {
    for r in store
        .enqueue(vec![EnqueueRequest {
            jobs,
            idempotency: None,
        }])
        .await
    {
        r.unwrap();
    }
}

#[tokio::test]
async fn pragmas_hold_on_every_pooled_connection() {
    let (_, dir) = fresh().await;
    let store = SqliteStore::open(&url(&dir)).await.unwrap();
    let all = tokio::time::timeout(TIMEOUT, store.pragmas())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.len(), 5, "the writer and every reader");
    for p in all {
        assert_eq!(p.journal_mode, "wal");
        assert_eq!(p.synchronous, 2, "synchronous=FULL");
        assert_eq!(p.busy_timeout_ms, 10_000);
        assert!(p.foreign_keys);
    }
    let mem = SqliteStore::open("sqlite::memory:").await.unwrap();
    let all = mem.pragmas().await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].foreign_keys);
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let j = job("q");
    {
        let store = SqliteStore::open(&url(&dir)).await.unwrap();
        enqueue(&store, vec![j.clone()]).await;
        store.close().await;
        assert!(
            matches!(store.ping().await, Err(StoreError::Unavailable(_))),
            "closed store is unavailable"
        );
    }
    let store = SqliteStore::open(&url(&dir)).await.unwrap();
    let got = store.get_job(j.id).await.unwrap();
    assert_eq!(
        (got.status, got.payload, got.key, got.headers),
        (JobStatus::Pending, j.payload, j.key, j.headers)
    );
    let c = store.claim_outbox(10, LONG).await.unwrap();
    assert_eq!(c.rows.len(), 1);
    assert_eq!(c.rows[0].job_id, j.id);
    // Through the URL entry point as well.
    let again = sluice_store::open(&url(&dir)).await.unwrap();
    assert_eq!(again.backend(), "sqlite");
    assert_eq!(again.get_job(j.id).await.unwrap().id, j.id);
}

#[tokio::test]
async fn bad_urls_are_rejected() {
    assert!(matches!(
        sluice_store::open("mysql://x").await,
        Err(StoreError::InvalidUrl(_))
    ));
    assert!(matches!(
        sluice_store::open("sqlite://").await,
        Err(StoreError::InvalidUrl(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_opening_a_new_file_at_once_both_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let u = url(&dir);
    let (a, b) = tokio::join!(SqliteStore::open(&u), SqliteStore::open(&u));
    let (a, b) = (a.unwrap(), b.unwrap());
    let j = job("q");
    enqueue(&a, vec![j.clone()]).await;
    assert_eq!(b.get_job(j.id).await.unwrap().id, j.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_never_share_a_claimed_row() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(SqliteStore::open(&url(&dir)).await.unwrap());
    let b = Arc::new(SqliteStore::open(&url(&dir)).await.unwrap());
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
    let all = tokio::time::timeout(TIMEOUT, async {
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    })
    .await
    .unwrap();
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 300);
    assert_eq!(unique.len(), 300);
}

#[tokio::test]
async fn history_and_dead_letter_rows_are_written_for_failures_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(&dir)).await.unwrap();
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
                error: "first".into(),
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
    // a success is recorded on the job's row alone
    let ok = job("mail");
    enqueue(&store, vec![ok.clone()]).await;
    let mut res = store
        .start_attempts(
            vec![StartRequest {
                job_id: ok.id,
                attempt: Some(1),
                create: None,
                lease: None,
            }],
            LONG,
        )
        .await;
    let StartOutcome::Started(a) = res.remove(0).unwrap() else {
        panic!("the other job's attempt starts")
    };
    let c = Completion {
        job_id: ok.id,
        lease: a.lease,
        attempt: 1,
        started_at: 5,
        outcome: Outcome::Succeeded,
    };
    store.finish_attempts(vec![c]).await.remove(0).unwrap();
    store.close().await;

    let pool = sqlx::SqlitePool::connect(&format!("{}?mode=ro", url(&dir)))
        .await
        .unwrap();
    let successes: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts WHERE job_id = ?")
        .bind(ok.id.to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(successes, 0, "a success adds no history row");
    let id = j.id.to_string();
    let rows = sqlx::query("SELECT attempt, outcome, error, started_at FROM attempts WHERE job_id = ? ORDER BY attempt")
        .bind(&id)
        .fetch_all(&pool)
        .await
        .unwrap();
    let got: Vec<(i64, String, Option<String>, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.get("attempt"),
                r.get("outcome"),
                r.get("error"),
                r.get("started_at"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "retry".into(), Some("first".into()), 5),
            (2, "dead".into(), Some("second".into()), 5)
        ]
    );
    let dl = sqlx::query(
        "SELECT queue, error, attempts, replay_count, died_at FROM dead_letters WHERE job_id = ?",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(dl.get::<String, _>("queue"), "mail");
    assert_eq!(dl.get::<String, _>("error"), "second");
    assert_eq!(dl.get::<i64, _>("attempts"), 2);
    assert_eq!(dl.get::<i64, _>("replay_count"), 0);
    assert!(dl.get::<i64, _>("died_at") > 0);
    let outbox: Vec<(String, i64, Option<String>)> =
        sqlx::query("SELECT kind, attempt, error FROM outbox WHERE job_id = ? ORDER BY row_id")
            .bind(&id)
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("kind"), r.get("attempt"), r.get("error")))
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
}

/// A database migrated before outbox kinds existed, with a row waiting,
/// upgrades in place: the row is a job row and publishes as before.
#[tokio::test]
async fn outbox_rows_written_before_kinds_stay_job_rows() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old-migrations");
    std::fs::create_dir(&old).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sqlite/migrations");
    for name in ["0001_init.sql", "0002_admin.sql"] {
        std::fs::copy(src.join(name), old.join(name)).unwrap();
    }
    let path = dir.path().join("old.db");
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let id = JobId::new();
    sqlx::query(
        "INSERT INTO jobs (id, queue, status, payload, max_attempts, created_at, updated_at)
         VALUES (?1, 'q', 'pending', '{\"old\":true}', 3, 1, 1)",
    )
    .bind(id.to_string())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox (job_id, queue, attempt, available_at, created_at)
         VALUES (?1, 'q', 1, 1, 1)",
    )
    .bind(id.to_string())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let c = store.claim_outbox(10, LONG).await.unwrap();
    assert_eq!(c.rows.len(), 1);
    assert_eq!(c.rows[0].job_id, id);
    assert_eq!(c.rows[0].kind, sluice_store::OutboxKind::Job);
    let payload: serde_json::Value = serde_json::from_str(c.rows[0].payload.get()).unwrap();
    assert_eq!(payload, json!({"old": true}));
    assert_eq!(
        store
            .mark_published(&c.lease, &[c.rows[0].row_id])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.get_job(id).await.unwrap().status,
        JobStatus::Published
    );
}
