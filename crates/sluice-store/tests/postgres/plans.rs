//! The batch statements of the relay, the worker and ingest's idempotency
//! keys read their rows by primary key whatever the batch size and the
//! table's physical order: as plain joins (or a bound `= ANY`), a batch of a
//! few percent of a table was planned as a sequential scan of the whole
//! table, whose time grows with the table, not the batch. Each plan is
//! checked both as a first (custom) plan and as the generic plan a cached
//! statement may switch to.

use super::*;

/// Jobs in the table; the batches below are 2.5% of it, spread over it.
const TABLE: usize = 20_000;
const BATCH: usize = 500;

/// A store holding [`TABLE`] pending jobs with their outbox rows, the jobs
/// stored in random order (as updates and reused space leave a table that
/// has lived a while, unlike ids inserted in order), analysed.
async fn filled(db: &TestDb) -> Vec<JobId> {
    let store = PgStore::open(&db.url).await.unwrap();
    let mut ids = Vec::with_capacity(TABLE);
    for _ in 0..TABLE / 1000 {
        let jobs: Vec<NewJob> = (0..1000).map(|_| job("q")).collect();
        ids.extend(jobs.iter().map(|j| j.id));
        enqueue(&store, jobs).await;
    }
    let mut conn = db.admin().await;
    for sql in [
        "CREATE TEMP TABLE shuffled AS SELECT * FROM jobs",
        "TRUNCATE jobs CASCADE",
        "INSERT INTO jobs SELECT * FROM shuffled ORDER BY random()",
        "ANALYZE jobs, outbox",
    ] {
        conn.execute(sql).await.unwrap();
    }
    let correlation: f32 = sqlx::query_scalar(
        "SELECT correlation FROM pg_stats WHERE tablename = 'jobs' AND attname = 'id'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(
        correlation.abs() < 0.2,
        "jobs still in id order: {correlation}"
    );
    ids
}

/// Fails when a plan of `sql` (`what`) scans a whole table, as the first
/// (custom) plan or as the generic plan a cached statement may switch to;
/// shows the plan's lines (cut short: bound arrays are long).
async fn assert_by_key(
    conn: &mut PgConnection,
    what: &str,
    sql: &str,
    bind: impl Fn(PgQuery<'_>) -> PgQuery<'_>,
) {
    for mode in ["auto", "force_generic_plan"] {
        conn.execute(format!("SET plan_cache_mode = {mode}").as_str())
            .await
            .unwrap();
        let plan = plan_of(conn, sql, &bind).await;
        let lines: Vec<String> = plan
            .lines()
            .map(|l| l.chars().take(100).collect())
            .collect();
        assert!(
            !plan.contains("Seq Scan"),
            "{what} ({mode}):\n{}",
            lines.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_claim_reads_outbox_rows_and_jobs_by_key() {
    pg_case!(|db| {
        filled(&db).await;
        let mut conn = db.admin().await;
        let now = now_ms();
        assert_by_key(
            &mut conn,
            "claim",
            include_str!("../../src/postgres/sql/outbox_claim.sql"),
            |q| {
                q.bind("lease")
                    .bind(now + 30_000)
                    .bind(now)
                    .bind(BATCH as i64)
            },
        )
        .await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_lock_start_finish_and_redrive_batches_read_jobs_by_key() {
    pg_case!(|db| {
        let ids = filled(&db).await;
        let batch: Vec<uuid::Uuid> = ids
            .iter()
            .step_by(TABLE / BATCH)
            .map(JobId::as_uuid)
            .collect();
        assert_eq!(batch.len(), BATCH);
        let tokens: Vec<String> = (0..BATCH).map(|i| format!("t{i}")).collect();
        let mut conn = db.admin().await;
        let now = now_ms();
        assert_by_key(
            &mut conn,
            "lock",
            include_str!("../../src/postgres/sql/jobs_state_lock.sql"),
            |q| q.bind(batch.clone()),
        )
        .await;
        assert_by_key(
            &mut conn,
            "start",
            include_str!("../../src/postgres/sql/attempt_start.sql"),
            |q| {
                q.bind(now + 30_000)
                    .bind(now)
                    .bind(batch.clone())
                    .bind(tokens.clone())
                    .bind(vec![0i64; BATCH])
            },
        )
        .await;
        assert_by_key(
            &mut conn,
            "resume",
            include_str!("../../src/postgres/sql/attempt_resume.sql"),
            |q| {
                q.bind(now + 30_000)
                    .bind(now)
                    .bind(batch.clone())
                    .bind(tokens.clone())
                    .bind(vec![1i64; BATCH])
            },
        )
        .await;
        assert_by_key(
            &mut conn,
            "finish",
            include_str!("../../src/postgres/sql/attempt_finish.sql"),
            |q| {
                q.bind(now)
                    .bind((0..BATCH as i64).collect::<Vec<_>>())
                    .bind(batch.clone())
                    .bind(tokens.clone())
                    .bind(vec![1i64; BATCH])
                    .bind(vec!["succeeded".to_string(); BATCH])
                    .bind(vec![None::<String>; BATCH])
                    .bind(vec![None::<i64>; BATCH])
            },
        )
        .await;
        assert_by_key(
            &mut conn,
            "redrive",
            include_str!("../../src/postgres/sql/outbox_redrive.sql"),
            |q| {
                q.bind("q")
                    .bind(batch.clone())
                    .bind(vec![now; BATCH])
                    .bind(now)
            },
        )
        .await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_idempotency_keys_are_read_by_key() {
    pg_case!(|db| {
        PgStore::open(&db.url).await.unwrap();
        let mut conn = db.admin().await;
        for sql in [
            "INSERT INTO idempotency (scope, key, fingerprint, job_ids, created_at) \
             SELECT 'scope', 'key-' || n, 'f', '[]', 0 \
             FROM generate_series(1, 20000) AS n ORDER BY random()",
            "ANALYZE idempotency",
        ] {
            conn.execute(sql).await.unwrap();
        }
        let keys: Vec<String> = (0..BATCH)
            .map(|i| format!("key-{}", 1 + i * (TABLE / BATCH)))
            .collect();
        let scopes = vec!["scope".to_string(); BATCH];
        assert_by_key(
            &mut conn,
            "idempotency",
            include_str!("../../src/postgres/sql/idempotency_get.sql"),
            |q| q.bind(scopes.clone()).bind(keys.clone()),
        )
        .await;
    });
}

/// The autoscaling figures, read every few seconds by every ingest process,
/// never scan the jobs table, however many dead jobs it holds (they are
/// kept until an operator acts): dead jobs are counted from their dead
/// letters, unfinished ones through their partial index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaling_figures_do_not_scan_the_dead_jobs() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        enqueue(&store, (0..200).map(|_| job("q")).collect()).await;
        let mut conn = db.admin().await;
        for sql in [
            "INSERT INTO jobs (id, queue, status, payload, max_attempts, attempts, \
             last_error, created_at, updated_at) \
             SELECT gen_random_uuid(), 'q', 'dead', '{}', 3, 3, 'boom', n, n \
             FROM generate_series(1, 60000) AS n",
            "INSERT INTO dead_letters (job_id, queue, died_at, error, attempts, replay_count) \
             SELECT id, queue, updated_at, last_error, attempts, 0 FROM jobs \
             WHERE status = 'dead'",
            "ANALYZE jobs, dead_letters, outbox",
        ] {
            conn.execute(sql).await.unwrap();
        }
        let queues = vec!["q".to_string()];
        for mode in ["auto", "force_generic_plan"] {
            conn.execute(format!("SET plan_cache_mode = {mode}").as_str())
                .await
                .unwrap();
            let plan = plan_of(
                &mut conn,
                include_str!("../../src/postgres/sql/queue_scaling.sql"),
                |q| q.bind(now_ms()).bind(queues.clone()),
            )
            .await;
            assert!(!plan.contains("Seq Scan on jobs"), "{mode}:\n{plan}");
        }
        let figures = store.queue_scaling(&queues, now_ms()).await.unwrap();
        assert_eq!((figures[0].dead, figures[0].pending), (60_000, 200));
    });
}
