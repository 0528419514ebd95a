//! Starting attempts on PostgreSQL: a start decides on the state of its jobs
//! as they are once it holds their rows, and concurrent batches of starts
//! neither deadlock nor start an attempt twice.

use super::*;

fn start(id: JobId, attempt: u32) -> StartRequest {
    StartRequest {
        job_id: id,
        attempt: Some(attempt),
        create: None,
        lease: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_racing_the_holders_success_starts_nothing() {
    // A worker takes over an attempt whose lease ran out, while the worker
    // that held it records the job's success: the takeover must see the
    // success (and start nothing), not the state before it.
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let j = job("q");
        let id = j.id;
        enqueue(&store, vec![j]).await;
        let first = store
            .start_attempts(vec![start(id, 1)], Duration::from_millis(1))
            .await;
        assert!(matches!(first[0], Ok(StartOutcome::Started(_))));
        tokio::time::sleep(Duration::from_millis(20)).await;

        // the old holder's completion, committed only after the takeover
        // has read the job
        let mut holder = db.admin().await;
        holder.execute("BEGIN").await.unwrap();
        sqlx::query(
            "UPDATE jobs SET status = 'succeeded', lease_token = NULL, lease_until = NULL \
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .execute(&mut holder)
        .await
        .unwrap();
        let store = Arc::new(store);
        let taker = store.clone();
        let takeover =
            tokio::spawn(async move { taker.start_attempts(vec![start(id, 1)], LONG).await });
        // commit only once the takeover waits for the job's row
        let mut watcher = db.admin().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            assert!(
                !takeover.is_finished(),
                "the takeover did not wait for the job's row"
            );
            assert!(
                Instant::now() < deadline,
                "the takeover never reached the job's row"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watcher.close().await.unwrap();
        holder.execute("COMMIT").await.unwrap();
        let got = takeover.await.unwrap();
        assert!(
            matches!(got[0], Ok(StartOutcome::Stale)),
            "the takeover did not decide on the state the success left: {got:?}"
        );
        let (status, attempts): (String, i64) =
            sqlx::query_as("SELECT status, attempts FROM jobs WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_one(&mut holder)
                .await
                .unwrap();
        assert_eq!((status.as_str(), attempts), ("succeeded", 1));
        holder.close().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_of_the_same_jobs_start_each_attempt_once() {
    pg_case!(|db| {
        let store = Arc::new(PgStore::open(&db.url).await.unwrap());
        let jobs: Vec<NewJob> = (0..200).map(|_| job("q")).collect();
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        enqueue(&*store, jobs).await;
        let mut tasks = JoinSet::new();
        for k in 0..6 {
            let (store, mut ids) = (store.clone(), ids.clone());
            if k % 2 == 1 {
                ids.reverse();
            }
            tasks.spawn(async move {
                let mut started = Vec::new();
                // batches of 25, as a worker starts them
                for chunk in ids.chunks(25) {
                    let requests = chunk.iter().map(|&id| start(id, 1)).collect();
                    for r in store.start_attempts(requests, LONG).await {
                        match r {
                            Ok(StartOutcome::Started(a)) => started.push(a.job.id),
                            Ok(StartOutcome::Busy { .. }) => {}
                            other => panic!("unexpected start outcome {other:?}"),
                        }
                    }
                }
                started
            });
        }
        let mut all = Vec::new();
        while let Some(t) = tasks.join_next().await {
            all.extend(t.unwrap());
        }
        let unique: HashSet<JobId> = all.iter().copied().collect();
        assert_eq!(
            all.len(),
            200,
            "some attempt was started twice, or not at all"
        );
        assert_eq!(unique.len(), 200);
        let mut conn = db.admin().await;
        let max: i64 = sqlx::query_scalar("SELECT MAX(attempts) FROM jobs")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(max, 1);
        conn.close().await.unwrap();
    });
}
