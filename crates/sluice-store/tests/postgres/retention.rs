//! Pruning on PostgreSQL: a pruner skips the jobs another transaction holds
//! (a start deciding on them, another pruner) instead of waiting for them.

use super::*;
use sluice_store::conformance::succeed_all;
use sluice_store::RetentionStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruner_skips_jobs_another_transaction_holds() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let jobs: Vec<NewJob> = (0..3).map(|_| job("q")).collect();
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        enqueue(&store, jobs).await;
        let c = store.claim_outbox(10, LONG).await.unwrap();
        let rows: Vec<i64> = c.rows.iter().map(|r| r.row_id).collect();
        assert_eq!(store.mark_published(&c.lease, &rows).await.unwrap(), 3);
        succeed_all(&store, &ids).await;
        let cutoff = now_ms() + 1;
        tokio::time::sleep(Duration::from_millis(20)).await;

        let mut holder = db.admin().await;
        holder.execute("BEGIN").await.unwrap();
        sqlx::query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(ids[1].as_uuid())
            .execute(&mut holder)
            .await
            .unwrap();
        let pruned =
            tokio::time::timeout(Duration::from_secs(10), store.prune_succeeded(cutoff, 100))
                .await
                .expect("the pruner does not wait for the held job");
        assert_eq!(pruned.unwrap(), 2);
        assert!(store.get_job(ids[1]).await.is_ok(), "the held job is kept");
        holder.execute("ROLLBACK").await.unwrap();
        assert_eq!(store.prune_succeeded(cutoff, 100).await.unwrap(), 1);
        assert!(matches!(
            store.get_job(ids[1]).await,
            Err(StoreError::NotFound)
        ));
    });
}
