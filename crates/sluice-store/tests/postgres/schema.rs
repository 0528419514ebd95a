//! What the PostgreSQL backend promises beyond the conformance suite: how
//! payloads are stored, that the partial index of unfinished jobs serves
//! the queries that read jobs by queue and status, that pruning has indexes
//! of its own, and which server settings it warns about.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payloads_are_stored_as_written_even_with_nul_escapes() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        // JSON may escape NUL (`\u0000`); the payload column keeps the text
        // as it is, as SQLite does (jsonb would refuse it).
        let mut j = job("q");
        j.payload = json!({"s": "a\u{0}b", "z": 1, "a": [true, null]});
        j.headers.insert("h".into(), "v\u{0}w".into());
        let res = store.enqueue(vec![plain(vec![j.clone()])]).await;
        assert_eq!(res[0].as_ref().unwrap().ids, vec![j.id]);
        let got = store.get_job(j.id).await.unwrap();
        assert_eq!(got.payload, j.payload);
        assert_eq!(got.headers, j.headers);
        let c = store.claim_outbox(10, LONG).await.unwrap();
        assert_eq!(c.rows.len(), 1);
        let published: serde_json::Value = serde_json::from_str(c.rows[0].payload.get()).unwrap();
        assert_eq!(published, j.payload);
    });
}

/// The plan of `sql` with `params` bound, sequential scans discouraged so
/// that any index that can serve it shows.
async fn plan(
    conn: &mut PgConnection,
    sql: &str,
    bind: impl FnOnce(PgQuery<'_>) -> PgQuery<'_>,
) -> String {
    conn.execute("SET enable_seqscan = off").await.unwrap();
    plan_of(conn, sql, bind).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_and_status_reads_use_the_index_of_unfinished_jobs() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        enqueue(&store, (0..10).map(|_| job("q")).collect()).await;
        let mut conn = db.admin().await;
        let now = now_ms();
        let scaling = plan(
            &mut conn,
            include_str!("../../src/postgres/sql/queue_scaling.sql"),
            |q| q.bind(now).bind(vec!["q".to_string()]),
        )
        .await;
        assert!(scaling.contains("jobs_unfinished"), "{scaling}");
        // the outbox is joined once, not probed per job for each use of
        // the derived status
        assert!(!scaling.contains("SubPlan"), "{scaling}");
        let lost = plan(
            &mut conn,
            include_str!("../../src/postgres/sql/outbox_lost.sql"),
            |q| q.bind("q").bind(now).bind(10_i64),
        )
        .await;
        assert!(lost.contains("jobs_unfinished"), "{lost}");
        let succeeded: bool = sqlx::query_scalar(
            "SELECT pg_get_indexdef('jobs_unfinished'::regclass) LIKE '%WHERE (status <> ''succeeded''::text)%'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(succeeded, "the index leaves succeeded jobs out");
    });
}

/// Pruning finds old successes and old keys through their own indexes, not
/// by scanning the tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pruning_reads_its_own_indexes() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        enqueue(&store, (0..10).map(|_| job("q")).collect()).await;
        let mut conn = db.admin().await;
        let now = now_ms();
        let jobs = plan(
            &mut conn,
            include_str!("../../src/postgres/sql/jobs_prune.sql"),
            |q| q.bind(now).bind(1000_i64),
        )
        .await;
        assert!(jobs.contains("jobs_succeeded"), "{jobs}");
        let keys = plan(
            &mut conn,
            include_str!("../../src/postgres/sql/idempotency_prune.sql"),
            |q| q.bind(now).bind(1000_i64),
        )
        .await;
        assert!(keys.contains("idempotency_created"), "{keys}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autovacuum_off_is_warned_about() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let off = store.setting("autovacuum").await.unwrap() == "off";
        let warned: Vec<&str> = store
            .server_warnings()
            .await
            .iter()
            .map(|w| w.setting)
            .collect();
        let expected: Vec<&str> = if off { vec!["autovacuum"] } else { vec![] };
        assert_eq!(warned, expected, "autovacuum off: {off}");
    });
}

/// Publishing removes the outbox row and leaves the job's row as it was
/// (no new row version, so no index entries and no rewrite of the payload);
/// the job reads as published all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_leaves_the_job_row_alone() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let j = job("q");
        enqueue(&store, vec![j.clone()]).await;
        let mut conn = db.admin().await;
        let version = "SELECT xmin::text FROM jobs WHERE id = $1";
        let before: String = sqlx::query_scalar(version)
            .bind(j.id.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let c = store.claim_outbox(10, LONG).await.unwrap();
        let rows: Vec<i64> = c.rows.iter().map(|r| r.row_id).collect();
        assert_eq!(store.mark_published(&c.lease, &rows).await.unwrap(), 1);
        let after: String = sqlx::query_scalar(version)
            .bind(j.id.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(before, after, "the job row was rewritten");
        let got = store.get_job(j.id).await.unwrap();
        assert_eq!(got.status, sluice_core::JobStatus::Published);
    });
}

/// A success is recorded on the job's row alone: no attempt-history row
/// (history holds failed attempts, which a dead letter's detail shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_adds_no_attempt_history_row() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let (ok, failed) = (job("q"), job("q"));
        enqueue(&store, vec![ok.clone(), failed.clone()]).await;
        let mut completions = Vec::new();
        for (j, outcome) in [
            (&ok, Outcome::Succeeded),
            (
                &failed,
                Outcome::Retry {
                    available_at: now_ms(),
                    error: "503 from downstream".into(),
                },
            ),
        ] {
            let request = StartRequest {
                job_id: j.id,
                attempt: Some(1),
                create: None,
                lease: None,
            };
            let Ok(StartOutcome::Started(a)) =
                store.start_attempts(vec![request], LONG).await.remove(0)
            else {
                panic!("attempt 1 of {} did not start", j.id);
            };
            completions.push(Completion {
                job_id: j.id,
                lease: a.lease,
                attempt: 1,
                started_at: now_ms(),
                outcome,
            });
        }
        for r in store.finish_attempts(completions).await {
            r.unwrap();
        }
        let mut conn = db.admin().await;
        let rows: Vec<(uuid::Uuid, String)> =
            sqlx::query_as("SELECT job_id, outcome FROM attempts ORDER BY job_id")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(rows, vec![(failed.id.as_uuid(), "retry".to_string())]);
        let got = store.get_job(ok.id).await.unwrap();
        assert_eq!(got.status, sluice_core::JobStatus::Succeeded);
        assert_eq!(got.attempts, 1);
    });
}
