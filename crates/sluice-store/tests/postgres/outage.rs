//! Outages: an unreachable server, bad URLs, a severed connection and
//! terminated backends fail as unavailable, quickly and without the
//! password, and the store recovers without being reopened.

use super::*;

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
