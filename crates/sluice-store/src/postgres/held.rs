//! Held claims: the relay's fast path on PostgreSQL.
//!
//! A held claim locks its rows (`FOR UPDATE SKIP LOCKED`, as a leased claim
//! does) without writing them, and keeps its transaction open, under the
//! claim's lease token, while the relay publishes them. Marking every row
//! is then one delete and the commit: a row lock and a delete per row,
//! where a leased claim writes each row twice (a new version carrying its
//! lease, then its delete). Until the commit other claims skip the rows,
//! every other reader still sees them unchanged, and a relay that dies
//! rolls the locks back with its connection. A relay that hangs instead has
//! its transaction ended by the server after 5 s idle, as every sluice
//! session's (`idle_in_transaction_session_timeout`).
//!
//! Rows whose lease lapsed are locked like free ones. Their old holder's
//! later changes wait for the claim and then find the rows gone or stamped
//! with the new lease, so they are fenced as a leased claim fences them.
//!
//! Anything but marking every row (a partial mark, a release, an
//! extension, a refusal), and [`HOLD`] passing first, turns the held claim
//! into an ordinary leased one: its rows, still locked, are stamped with
//! its token and lease and the stamp committed, so no other claim can take
//! them in between. A writer waiting for the rows (a dead letter deleted,
//! retention) waits at most for that commit and then follows the stamp to
//! the rows' new versions; the lease path does the rest. Held claims use at
//! most a quarter of the pool's connections; beyond that, claims are
//! leased.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::{now_ms, EpochMs};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{map_err, within, Fail};
use crate::{LeaseToken, StoreError};

/// Longest a claim stays held (half its lease if that is shorter).
pub(super) const HOLD: Duration = Duration::from_secs(1);

/// A held claim's transaction, taken by whoever settles it first.
type Slot = Arc<tokio::sync::Mutex<Option<Held>>>;

/// The claims held in open transactions, by lease token.
pub(super) struct HeldClaims {
    slots: Mutex<HashMap<LeaseToken, Slot>>,
    /// One per connection held claims may use.
    permits: Arc<Semaphore>,
    /// Bounds turning a claim into a leased one.
    op_timeout: Duration,
}

/// A held claim, run: its open transaction, its rows (as
/// `outbox_claim.sql` returns them, oldest first), their ids and when its
/// lease ends.
pub(super) struct Opened {
    tx: Transaction<'static, Postgres>,
    rows: Vec<PgRow>,
    ids: Vec<i64>,
    lease_until: EpochMs,
}

/// A held claim, open.
struct Held {
    tx: Transaction<'static, Postgres>,
    /// The rows it locked.
    ids: Vec<i64>,
    lease_until: EpochMs,
    _permit: OwnedSemaphorePermit,
}

/// Runs a held claim of up to `limit` rows under `token`. Rows whose job
/// is gone are stamped with the lease at once and left out, as a leased
/// claim leaves them: parked until it lapses, never published.
pub(super) async fn claim(
    pool: &PgPool,
    token: &LeaseToken,
    limit: i64,
    lease_ms: i64,
) -> Result<Opened, Fail> {
    let mut tx = pool.begin().await?;
    let now = now_ms();
    let lease_until = now.saturating_add(lease_ms);
    let locked = sqlx::query(include_str!("sql/outbox_claim_lock.sql"))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let mut rows = Vec::with_capacity(locked.len());
    let (mut ids, mut orphans) = (Vec::with_capacity(locked.len()), Vec::new());
    for row in locked {
        let id: i64 = row.try_get("row_id")?;
        if row.try_get::<Option<&str>, _>("payload")?.is_some() {
            ids.push(id);
            rows.push(row);
        } else {
            orphans.push(id);
        }
    }
    if !orphans.is_empty() {
        tracing::warn!(
            rows = orphans.len(),
            "outbox rows whose job is gone; parked under a lease, never published"
        );
        stamp(&mut tx, token, lease_until, &orphans).await?;
    }
    Ok(Opened {
        tx,
        rows,
        ids,
        lease_until,
    })
}

/// Stamps the rows `ids`, locked by `tx`, with the claim's token and lease.
async fn stamp(
    tx: &mut Transaction<'static, Postgres>,
    token: &LeaseToken,
    lease_until: EpochMs,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(include_str!("sql/outbox_claim_lease.sql"))
        .bind(&token.0)
        .bind(lease_until)
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl HeldClaims {
    /// Room for a quarter of a pool of `max_connections` (none below 4).
    pub(super) fn new(max_connections: u32, op_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            slots: Mutex::default(),
            permits: Arc::new(Semaphore::new(max_connections as usize / 4)),
            op_timeout,
        })
    }

    /// A connection's worth of room for a held claim, if there is any.
    pub(super) fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Keeps an [`Opened`] claim's transaction open under `token` until the
    /// claim is settled, or turned into a leased one after [`HOLD`] (half
    /// the `lease` if shorter); one that found nothing to publish is
    /// committed at once (with any rows it parked). Returns its rows.
    pub(super) async fn hold(
        self: &Arc<Self>,
        token: &LeaseToken,
        opened: Opened,
        lease: Duration,
        permit: OwnedSemaphorePermit,
    ) -> Result<Vec<PgRow>, StoreError> {
        let Opened {
            tx,
            rows,
            ids,
            lease_until,
        } = opened;
        if ids.is_empty() {
            self.bounded("commit an empty claim", tx.commit()).await?;
            return Ok(rows);
        }
        let held = Held {
            tx,
            ids,
            lease_until,
            _permit: permit,
        };
        let slot: Slot = Arc::new(tokio::sync::Mutex::new(Some(held)));
        self.lock().insert(token.clone(), slot);
        let (this, token) = (Arc::clone(self), token.clone());
        tokio::spawn(async move {
            tokio::time::sleep(HOLD.min(lease / 2)).await;
            this.unhold(&token).await;
        });
        Ok(rows)
    }

    /// Marks the claim of `token` by deleting its rows and committing, when
    /// it is held and `row_ids` names every row of it: `Some` of how many
    /// were marked. `None` when the caller must mark by the lease (a held
    /// claim named in part is turned into a leased one first).
    pub(super) async fn mark_all(
        &self,
        token: &LeaseToken,
        row_ids: &[i64],
    ) -> Option<Result<usize, StoreError>> {
        let slot = self.slot(token)?;
        let mut held = slot.lock().await;
        let named: HashSet<i64> = row_ids.iter().copied().collect();
        let all = held
            .as_ref()
            .is_some_and(|h| h.ids.iter().all(|r| named.contains(r)));
        let mut taken = held.take()?;
        self.lock().remove(token);
        if !all {
            self.lease(token, taken).await;
            return None;
        }
        let marked = async move {
            let gone = sqlx::query(include_str!("sql/outbox_claim_delete.sql"))
                .bind(&taken.ids)
                .execute(&mut *taken.tx)
                .await?;
            taken.tx.commit().await?;
            Ok(usize::try_from(gone.rows_affected()).unwrap_or(usize::MAX))
        };
        Some(self.bounded("mark published", marked).await)
    }

    /// Turns the claim of `token`, if still held, into a leased one; waits
    /// for one being turned meanwhile. After this the lease path applies.
    pub(super) async fn unhold(&self, token: &LeaseToken) {
        let Some(slot) = self.slot(token) else {
            return;
        };
        let mut held = slot.lock().await;
        if let Some(taken) = held.take() {
            self.lock().remove(token);
            self.lease(token, taken).await;
        }
    }

    /// Its rows, still locked, stamped with the claim's token and lease,
    /// committed. On failure the transaction rolls back: the rows are as
    /// they were before the claim (due again, free or with a lapsed lease).
    async fn lease(&self, token: &LeaseToken, held: Held) {
        let Held {
            mut tx,
            ids,
            lease_until,
            _permit,
        } = held;
        let n = ids.len();
        let turned = async move {
            stamp(&mut tx, token, lease_until, &ids).await?;
            tx.commit().await
        };
        if let Err(e) = self.bounded("lease a held outbox claim", turned).await {
            tracing::warn!(error = %e, rows = n, "cannot lease a held outbox claim; its rows are due again");
        }
    }

    /// `op` (statements of a held claim's transaction, which cannot be run
    /// again) bounded by the operation timeout, its error classified.
    async fn bounded<T>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        within(self.op_timeout, what, async { op.await.map_err(map_err) }).await
    }

    fn slot(&self, token: &LeaseToken) -> Option<Slot> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseToken, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}
