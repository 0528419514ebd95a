//! The batch statements of the relay and the worker fetch their rows by
//! primary key whatever the batch size: joined to a batch alone, a batch of
//! a few percent of a table was planned as a sequential scan of the whole
//! table (its time grew with the table, not the batch).

use super::*;

/// Jobs in the table; the batches below are 2.5% of it, spread over it.
const TABLE: usize = 20_000;
const BATCH: usize = 500;

/// A statement with its parameters bound.
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// The plan of `sql` with `params` bound, with the session's planner settings.
pub(crate) async fn plan_of(
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

/// A store holding [`TABLE`] pending jobs with their outbox rows, analysed.
async fn filled(db: &TestDb) -> (PgStore, Vec<JobId>) {
    let store = PgStore::open(&db.url).await.unwrap();
    let mut ids = Vec::with_capacity(TABLE);
    for _ in 0..TABLE / 1000 {
        let jobs: Vec<NewJob> = (0..1000).map(|_| job("q")).collect();
        ids.extend(jobs.iter().map(|j| j.id));
        enqueue(&store, jobs).await;
    }
    let mut conn = db.admin().await;
    conn.execute("ANALYZE jobs, outbox").await.unwrap();
    (store, ids)
}

fn assert_by_key(plan: &str) {
    // the plan's nodes, without the bound arrays
    let nodes: Vec<String> = plan
        .lines()
        .map(|l| l.chars().take(100).collect())
        .collect();
    assert!(!plan.contains("Seq Scan"), "{}", nodes.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_claim_reads_outbox_rows_and_jobs_by_key() {
    pg_case!(|db| {
        let (_store, _) = filled(&db).await;
        let mut conn = db.admin().await;
        let now = now_ms();
        let claim = plan_of(
            &mut conn,
            include_str!("../../src/postgres/sql/outbox_claim.sql"),
            |q| {
                q.bind("lease")
                    .bind(now + 30_000)
                    .bind(now)
                    .bind(BATCH as i64)
            },
        )
        .await;
        assert_by_key(&claim);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_start_and_finish_batches_read_jobs_by_key() {
    pg_case!(|db| {
        let (_store, ids) = filled(&db).await;
        let batch: Vec<uuid::Uuid> = ids
            .iter()
            .step_by(TABLE / BATCH)
            .map(JobId::as_uuid)
            .collect();
        assert_eq!(batch.len(), BATCH);
        let tokens: Vec<String> = (0..BATCH).map(|i| format!("t{i}")).collect();
        let zeros = vec![0i64; BATCH];
        let mut conn = db.admin().await;
        let now = now_ms();
        let start = plan_of(
            &mut conn,
            include_str!("../../src/postgres/sql/attempt_start.sql"),
            |q| {
                q.bind(now + 30_000)
                    .bind(now)
                    .bind(batch.clone())
                    .bind(tokens.clone())
                    .bind(zeros.clone())
            },
        )
        .await;
        assert_by_key(&start);
        let idx: Vec<i64> = (0..BATCH as i64).collect();
        let status = vec!["succeeded".to_string(); BATCH];
        let none_text: Vec<Option<String>> = vec![None; BATCH];
        let none_due: Vec<Option<i64>> = vec![None; BATCH];
        let finish = plan_of(
            &mut conn,
            include_str!("../../src/postgres/sql/attempt_finish.sql"),
            |q| {
                q.bind(now)
                    .bind(idx)
                    .bind(batch)
                    .bind(tokens)
                    .bind(vec![1i64; BATCH])
                    .bind(status)
                    .bind(none_text)
                    .bind(none_due)
            },
        )
        .await;
        assert_by_key(&finish);
    });
}
