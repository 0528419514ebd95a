//! Keeping a relay's claims leased while it publishes them.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_store::{LeaseToken, OutboxClaim, Store, StoreError};
use tokio::time::Instant;

/// The claims a relay holds (claimed and not yet settled). [`Leases::keep`]
/// extends each one's lease once half of it has passed, so that no other
/// relay takes rows this one still has to send or is waiting to hear about
/// from the broker (which may take the broker's whole publish timeout).
#[derive(Clone)]
pub(crate) struct Leases {
    lease: Duration,
    held: Arc<Mutex<HashMap<LeaseToken, Held>>>,
}

struct Held {
    /// The rows the lease still holds, as of its last extension.
    rows: HashSet<i64>,
    /// When to extend the lease next (passed: the lease may have lapsed).
    renew_at: Instant,
}

impl Leases {
    /// Keeps claims made under leases of `lease`.
    pub(crate) fn new(lease: Duration) -> Self {
        Self {
            lease,
            held: Arc::default(),
        }
    }

    /// Starts keeping `claim`, whose claim was asked for at `asked`.
    pub(crate) fn hold(&self, claim: &OutboxClaim, asked: Instant) {
        if claim.rows.is_empty() {
            return;
        }
        let held = Held {
            rows: claim.rows.iter().map(|r| r.row_id).collect(),
            renew_at: asked + self.lease / 2,
        };
        self.lock().insert(claim.lease.clone(), held);
    }

    /// Stops keeping the claim of `token` (settled, or given back).
    pub(crate) fn forget(&self, token: &LeaseToken) {
        self.lock().remove(token);
    }

    /// Readies a claim that waited to be sent (claimed ahead): when its
    /// extension is due, or the last one failed, extends it at once; then
    /// drops the rows it no longer holds (its lease lapsed and another claim
    /// took them, whose relay publishes them, or they were removed).
    pub(crate) async fn ready(&self, store: &dyn Store, claim: &mut OutboxClaim) {
        let due = self
            .lock()
            .get(&claim.lease)
            .map(|h| h.renew_at <= Instant::now());
        if due == Some(true) {
            self.extend(store, &claim.lease, &claim.row_ids()).await;
        }
        if let Some(h) = self.lock().get(&claim.lease) {
            if h.rows.len() < claim.rows.len() {
                claim.rows.retain(|r| h.rows.contains(&r.row_id));
            }
        }
    }

    /// Extends the leases of the held claims, each once half of it has
    /// passed, for as long as it runs (a failed extension is tried again
    /// within a second). Never returns.
    pub(crate) async fn keep(&self, store: &dyn Store) -> Infallible {
        loop {
            let next = self
                .lock()
                .values()
                .map(|h| h.renew_at)
                .min()
                .unwrap_or_else(|| Instant::now() + self.retry());
            tokio::time::sleep_until(next).await;
            let now = Instant::now();
            let due: Vec<(LeaseToken, Vec<i64>)> = self
                .lock()
                .iter()
                .filter(|(_, h)| h.renew_at <= now)
                .map(|(token, h)| (token.clone(), h.rows.iter().copied().collect()))
                .collect();
            for (token, rows) in due {
                self.extend(store, &token, &rows).await;
            }
        }
    }

    /// Extends the lease of `token` over `rows` and records what it still
    /// holds and when to extend it next; nothing when it was forgotten
    /// meanwhile.
    async fn extend(&self, store: &dyn Store, token: &LeaseToken, rows: &[i64]) {
        let asked = Instant::now();
        let extended = store.extend_claim(token, rows, self.lease).await;
        let outcome = {
            let mut held = self.lock();
            let Some(h) = held.get_mut(token) else {
                return;
            };
            match extended {
                Ok(kept) => {
                    h.rows = kept.into_iter().collect();
                    h.renew_at = asked + self.lease / 2;
                    Ok(rows.len() - h.rows.len().min(rows.len()))
                }
                Err(e) => {
                    h.renew_at = Instant::now() + self.retry();
                    Err(e)
                }
            }
        };
        log(outcome, rows.len());
    }

    /// How soon a failed extension is tried again.
    fn retry(&self) -> Duration {
        (self.lease / 4).min(Duration::from_secs(1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseToken, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn log(outcome: Result<usize, StoreError>, rows: usize) {
    match outcome {
        Ok(0) => {}
        Ok(lost) => tracing::warn!(
            lost,
            "some claimed rows are no longer held by the claim: its lease lapsed and another claim took them, or they were removed"
        ),
        Err(e) => {
            tracing::warn!(error = %e, rows, "cannot extend the claim lease; trying again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{now_ms, JobId};
    use sluice_store::{EnqueueRequest, NewJob};

    const LEASE: Duration = Duration::from_secs(1);

    async fn store_with(n: usize) -> Arc<dyn Store> {
        let store = sluice_store::open("sqlite::memory:").await.unwrap();
        let jobs = (0..n)
            .map(|i| NewJob {
                id: JobId::new(),
                queue: "r".into(),
                payload: serde_json::json!({ "i": i }),
                key: None,
                headers: Default::default(),
                max_attempts: 3,
                available_at: now_ms(),
                traceparent: None,
            })
            .collect();
        let request = EnqueueRequest {
            jobs,
            idempotency: None,
        };
        store.enqueue(vec![request]).await.remove(0).unwrap();
        store
    }

    /// A claim that waited past half its lease is extended before it is
    /// sent and keeps its rows; one whose lease lapsed and whose rows
    /// another claim took (the keeper could not extend it meanwhile) loses
    /// them, so they are not sent twice.
    #[tokio::test]
    async fn a_claim_that_waited_is_extended_or_loses_the_rows_taken_meanwhile() {
        let store = store_with(3).await;
        let leases = Leases::new(LEASE);
        let mut kept = store.claim_outbox(10, LEASE).await.unwrap();
        leases.hold(&kept, Instant::now());
        leases.ready(&*store, &mut kept).await;
        assert_eq!(kept.rows.len(), 3, "not due: left as claimed");
        tokio::time::sleep(LEASE * 3 / 4).await;
        leases.ready(&*store, &mut kept).await;
        assert_eq!(kept.rows.len(), 3);
        tokio::time::sleep(LEASE * 3 / 4).await;
        let other = store.claim_outbox(10, LEASE).await.unwrap();
        assert!(
            other.rows.is_empty(),
            "the extended claim's rows were taken"
        );

        let store = store_with(3).await;
        let mut lost = store.claim_outbox(10, LEASE).await.unwrap();
        leases.hold(&lost, Instant::now());
        tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
        let other = store.claim_outbox(10, LEASE).await.unwrap();
        assert_eq!(other.rows.len(), 3);
        leases.ready(&*store, &mut lost).await;
        assert!(lost.rows.is_empty(), "rows taken by another claim");
    }
}
