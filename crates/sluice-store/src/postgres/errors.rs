//! How a driver error is classified (unavailable, conflict, corrupt), and
//! how a failed batch is split so only its items at fault fail.

use std::future::Future;

use crate::StoreError;

/// Why a transaction body failed: a driver error (classified, and retried
/// when it is a conflict) or an already classified one.
pub(crate) enum Fail {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Serialization failure or deadlock: the transaction may simply be rerun.
pub(super) fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("40001" | "40P01"))
}

/// The database cannot be reached (or the connection is gone), as opposed
/// to a statement failing on a live connection.
pub(super) fn is_connection_error(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Io(_) | E::Tls(_) => true,
        E::Database(_) => sqlstate(e).is_some_and(|c| {
            c.starts_with("08") || c.starts_with("57P") || c.starts_with("28") || c == "3D000"
        }),
        _ => false,
    }
}

/// Whether a SQLSTATE means the server cannot serve now (retry later).
fn unavailable_state(code: &str) -> bool {
    matches!(
        code,
        // serialization failure, deadlock (after our own retries)
        "40001" | "40P01"
        // lock not available, query canceled (statement timeout),
        // read-only transaction (a standby after failover)
        | "55P03" | "57014" | "25006"
        // the server ended a session idle in its transaction (this store's
        // own timeout) or one past a transaction timeout: its work was
        // rolled back, and a new connection may run it again
        | "25P03" | "25P04"
    ) || code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources
        || code.starts_with("57P") // admin or crash shutdown, cannot connect now
        || code.starts_with("28") // authentication failed (credentials rotated)
        || code == "3D000" // the database does not exist (yet, or any more)
        || code.starts_with("58") // system error (I/O on the server)
        || code.starts_with("XX") // internal error
}

/// Classifies a sqlx error: connection, pool, shutdown and conflict trouble
/// is `Unavailable` (retry later); bad data is `Corrupt`. Messages never
/// carry the connection URL.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::RowNotFound => StoreError::NotFound,
        E::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        E::PoolClosed => StoreError::Unavailable("the database pool is closed".into()),
        E::WorkerCrashed => {
            StoreError::Unavailable("the database connection worker stopped".into())
        }
        E::Io(e) => StoreError::Unavailable(format!("database i/o error: {e}")),
        E::Tls(e) => StoreError::Unavailable(format!("database tls error: {e}")),
        E::Protocol(m) => StoreError::Unavailable(format!("database protocol error: {m}")),
        E::Configuration(e) => StoreError::InvalidUrl(e.to_string()),
        E::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            if unavailable_state(&code) {
                StoreError::Unavailable(format!("database unavailable ({code}): {}", d.message()))
            } else {
                StoreError::Corrupt(format!("database error ({code}): {}", d.message()))
            }
        }
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) | E::TypeNotFound { .. } => {
            StoreError::Corrupt(e.to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// The results of a batch of `n` items. A batch shares one transaction, so
/// when it fails for a reason other than availability (one item's data broke
/// it, and nothing of it was committed) each item is run again alone by
/// `one(index)`, and only the items at fault fail.
pub(crate) async fn split_on_failure<O, F, Fut>(
    first: Result<Vec<Result<O, StoreError>>, StoreError>,
    n: usize,
    mut one: F,
) -> Vec<Result<O, StoreError>>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Vec<Result<O, StoreError>>, StoreError>>,
{
    match first {
        Ok(results) => results,
        Err(e) if n > 1 && !e.is_transient() => {
            tracing::warn!(error = %e, items = n, "a postgres batch failed; running its items one by one");
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match one(i).await {
                    Ok(mut r) if r.len() == 1 => r.pop().expect("one result"),
                    Ok(_) => Err(StoreError::Corrupt("expected one result".into())),
                    Err(e) => Err(e),
                });
            }
            out
        }
        Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sqlstates_are_classified() {
        for code in [
            "08006", "57P01", "53300", "40001", "40P01", "55P03", "25006", "28P01", "3D000",
            "25P03", "25P04",
        ] {
            assert!(unavailable_state(code), "{code}");
        }
        for code in ["23505", "22P02", "42P01"] {
            assert!(!unavailable_state(code), "{code}");
        }
    }

    /// A session the server ended for idling in its transaction is a
    /// transient failure (the work is rolled back and may run again on a
    /// new connection), not bad data: a worker frozen past this store's
    /// idle-in-transaction timeout retries its outcomes, which its lease
    /// then fences.
    #[tokio::test]
    async fn a_session_ended_idle_in_its_transaction_is_transient() {
        let url = match std::env::var("SLUICE_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                assert_ne!(
                    std::env::var("SLUICE_TEST_REQUIRE_BACKENDS").as_deref(),
                    Ok("1"),
                    "SLUICE_TEST_POSTGRES_URL is not set: PostgreSQL is required"
                );
                return;
            }
        };
        use sqlx::Connection;
        let mut conn =
            tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&url))
                .await
                .expect("connects in time")
                .expect("connects");
        sqlx::query("SET idle_in_transaction_session_timeout = '100ms'")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let e = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::query("SELECT 1").execute(&mut conn),
        )
        .await
        .expect("answers in time")
        .expect_err("the server ended the session");
        let mapped = map_err(e);
        assert!(mapped.is_transient(), "{mapped:?}");
    }
}
