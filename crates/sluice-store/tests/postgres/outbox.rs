//! The outbox across stores and transactions: rows committed out of order
//! are all published, one NOTIFY per committed batch wakes relays of other
//! stores, concurrent stores migrate once and never share a claimed row,
//! a claim leases rows in place, and a claim held in an open transaction
//! commits its mark, dies with its session, and is leased after its hold.

use super::*;

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
        let store = PgStore::open(&leased_url(&db)).await.unwrap();
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

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

/// The lease tokens of the outbox rows (NULL: none), by row id.
async fn tokens(conn: &mut PgConnection) -> Vec<(i64, Option<String>)> {
    sqlx::query_as("SELECT row_id, lease_token FROM outbox ORDER BY row_id")
        .fetch_all(conn)
        .await
        .unwrap()
}

/// What [`tokens`] reads when exactly `rows` are stamped with `lease`.
fn stamped_with(rows: &[i64], lease: &LeaseToken) -> Vec<(i64, Option<String>)> {
    rows.iter().map(|r| (*r, Some(lease.0.clone()))).collect()
}

const ROWS: &str = "SELECT COUNT(*) FROM outbox";
const STAMPED: &str = "SELECT COUNT(*) FROM outbox WHERE lease_token IS NOT NULL";

/// A held claim's rows, locked by its open transaction and not written,
/// are still seen by other readers, skipped by other claims and by
/// `next_due`, and gone once it marks them all (a delete and the commit);
/// when its session dies they are due again at once, unleased, and its
/// mark marks nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_claim_commits_its_mark_or_dies_with_its_session() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        let other = PgStore::open(&with_param(&db.url, "application_name=sluice-other"))
            .await
            .unwrap();
        enqueue(&store, (0..4).map(|_| job("q")).collect()).await;
        let mut admin = db.admin().await;

        let first = store.claim_outbox(2, LONG).await.unwrap();
        assert_eq!(first.rows.len(), 2);
        assert_eq!(count(&mut admin, ROWS).await, 4, "held rows are still seen");
        assert_eq!(count(&mut admin, STAMPED).await, 0, "held, not stamped");
        let second = other.claim_outbox(10, LONG).await.unwrap();
        assert_eq!(second.rows.len(), 2, "another claim skipped the held rows");
        assert_eq!(
            store.next_due().await.unwrap(),
            None,
            "held rows are not due"
        );
        // the second claim's session ends at once, well within its hold
        let killed = count(
            &mut admin,
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND state = 'idle in transaction' \
               AND application_name = 'sluice-other'",
        )
        .await;
        assert_eq!(killed, 1, "the second claim's session");
        assert_eq!(
            store
                .mark_published(&first.lease, &first.row_ids())
                .await
                .unwrap(),
            2
        );
        assert_eq!(count(&mut admin, ROWS).await, 2);

        let deadline = Instant::now() + Duration::from_secs(10);
        let third = loop {
            let c = store.claim_outbox(10, LONG).await.unwrap();
            if !c.rows.is_empty() || Instant::now() > deadline {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(third.row_ids(), second.row_ids(), "due again at once");
        let late = other.mark_published(&second.lease, &second.row_ids()).await;
        assert!(!matches!(late, Ok(n) if n > 0), "{late:?}");
        assert_eq!(
            store
                .mark_published(&third.lease, &third.row_ids())
                .await
                .unwrap(),
            2
        );
        assert_eq!(count(&mut admin, ROWS).await, 0);
    });
}

/// A writer blocked by a held claim's row (a dead letter deleted,
/// retention) goes on once the claim is leased after its hold, and still
/// finds the row (it follows the stamp, an update of the row it waited
/// for); the claim keeps the rest, stamped with its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_claim_is_leased_after_its_hold_and_blocked_writers_go_on() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        enqueue(&store, (0..3).map(|_| job("q")).collect()).await;
        let claim = store.claim_outbox(10, LONG).await.unwrap();
        assert_eq!(claim.rows.len(), 3);
        let (victim, kept) = (claim.rows[0].job_id, claim.row_ids()[1..].to_vec());
        let mut admin = db.admin().await;
        let mut watcher = db.admin().await;
        let delete = sqlx::query("DELETE FROM outbox WHERE job_id = $1")
            .bind(victim.as_uuid())
            .execute(&mut admin);
        // while the claim is held, the writer waits for the row's lock
        let waited = async {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let waiting = count(
                    &mut watcher,
                    "SELECT COUNT(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .await;
                if waiting > 0 {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        };
        let (deleted, waited) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(20), delete),
            waited
        );
        assert!(waited, "the writer never waited for the held row");
        let deleted = deleted
            .expect("the writer waited past the hold")
            .unwrap()
            .rows_affected();
        assert_eq!(deleted, 1, "the writer skipped the row");
        // the writer goes on once the stamp commits
        let want = stamped_with(&kept, &claim.lease);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = tokens(&mut admin).await;
        while seen != want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            seen = tokens(&mut admin).await;
        }
        assert_eq!(seen, want);
        assert_eq!(
            store
                .mark_published(&claim.lease, &claim.row_ids())
                .await
                .unwrap(),
            2
        );
        assert!(tokens(&mut admin).await.is_empty());
    });
}

/// Marking part of a held claim marks that part; the rest stays with the
/// claim, stamped, to be released or marked by its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_claim_marked_in_part_keeps_the_rest_leased() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        enqueue(&store, (0..3).map(|_| job("q")).collect()).await;
        let claim = store.claim_outbox(10, LONG).await.unwrap();
        let ids = claim.row_ids();
        assert_eq!(ids.len(), 3);
        assert_eq!(
            store.mark_published(&claim.lease, &ids[..1]).await.unwrap(),
            1
        );
        let mut admin = db.admin().await;
        assert_eq!(
            tokens(&mut admin).await,
            stamped_with(&ids[1..], &claim.lease)
        );
        assert_eq!(
            store
                .release_outbox(&claim.lease, &ids[1..2], now_ms())
                .await
                .unwrap(),
            1
        );
        let again = store.claim_outbox(10, LONG).await.unwrap();
        assert_eq!(again.row_ids(), ids[1..2].to_vec());
        assert_eq!(
            store.mark_published(&claim.lease, &ids).await.unwrap(),
            1,
            "the row released meanwhile is another claim's"
        );
        assert_eq!(
            store
                .mark_published(&again.lease, &again.row_ids())
                .await
                .unwrap(),
            1
        );
        assert!(tokens(&mut admin).await.is_empty());
    });
}

/// An outbox row whose job is gone is never published: a held claim parks
/// it under its lease, as a leased claim does, so it is not due (and relays
/// do not spin on it) until that lease lapses, and publishes the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_claim_parks_rows_whose_job_is_gone() {
    pg_case!(|db| {
        let store = PgStore::open(&db.url).await.unwrap();
        enqueue(&store, vec![job("q")]).await;
        let mut admin = db.admin().await;
        sqlx::query(
            "INSERT INTO outbox (job_id, queue, attempt, available_at, created_at) \
             VALUES (gen_random_uuid(), 'q', 1, 0, 0)",
        )
        .execute(&mut admin)
        .await
        .unwrap();
        let claim = store.claim_outbox(10, LONG).await.unwrap();
        assert_eq!(claim.rows.len(), 1, "the job's row alone");
        assert_eq!(store.next_due().await.unwrap(), None);
        assert_eq!(
            store
                .mark_published(&claim.lease, &claim.row_ids())
                .await
                .unwrap(),
            1
        );
        let again = store.claim_outbox(10, LONG).await.unwrap();
        assert!(again.rows.is_empty(), "{again:?}");
        assert_eq!(count(&mut admin, ROWS).await, 1);
        assert_eq!(
            count(&mut admin, STAMPED).await,
            1,
            "parked with the commit"
        );
        assert_eq!(store.next_due().await.unwrap(), None);
        // every test database is checked for such rows when dropped
        sqlx::query("DELETE FROM outbox")
            .execute(&mut admin)
            .await
            .unwrap();
    });
}
