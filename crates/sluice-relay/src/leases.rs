//! Keeping a relay's claims leased while it publishes them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_store::{LeaseToken, OutboxClaim, Store};
use tokio::time::Instant;

/// The claims a relay holds (claimed and not yet settled). [`Leases::keep`]
/// extends each one's lease once half of it has passed, so that no other
/// relay takes rows this one still has to send or is waiting to hear about
/// from the broker (which may take the broker's whole publish timeout).
#[derive(Clone, Default)]
pub(crate) struct Leases {
    held: Arc<Mutex<HashMap<String, Held>>>,
}

struct Held {
    token: LeaseToken,
    /// The rows the lease still holds.
    rows: Vec<i64>,
    /// When to extend the lease next.
    renew_at: Instant,
}

impl Leases {
    /// Starts keeping `claim`, just claimed under a lease of `lease`.
    pub(crate) fn hold(&self, claim: &OutboxClaim, lease: Duration) {
        if claim.rows.is_empty() {
            return;
        }
        let held = Held {
            token: claim.lease.clone(),
            rows: claim.rows.iter().map(|r| r.row_id).collect(),
            renew_at: Instant::now() + lease / 2,
        };
        self.lock().insert(claim.lease.0.clone(), held);
    }

    /// Stops keeping the claim of `token` (settled, or given back).
    pub(crate) fn forget(&self, token: &LeaseToken) {
        self.lock().remove(&token.0);
    }

    /// Drops from `claim` the rows its lease lost to another claim while it
    /// waited to be sent: that claim's relay publishes them.
    pub(crate) fn drop_lost(&self, claim: &mut OutboxClaim) {
        let held = self.lock();
        let Some(h) = held.get(&claim.lease.0) else {
            return;
        };
        if h.rows.len() < claim.rows.len() {
            claim.rows.retain(|r| h.rows.contains(&r.row_id));
        }
    }

    /// Extends the leases of the held claims, each once half of it has
    /// passed, for as long as it runs (a failed extension is tried again
    /// within a second). Never returns.
    pub(crate) async fn keep(&self, store: &dyn Store, lease: Duration) -> Infallible {
        let retry = (lease / 4).min(Duration::from_secs(1));
        loop {
            let next = self
                .lock()
                .values()
                .map(|h| h.renew_at)
                .min()
                .unwrap_or_else(|| Instant::now() + retry);
            tokio::time::sleep_until(next).await;
            let now = Instant::now();
            let due: Vec<(LeaseToken, Vec<i64>)> = self
                .lock()
                .values()
                .filter(|h| h.renew_at <= now)
                .map(|h| (h.token.clone(), h.rows.clone()))
                .collect();
            for (token, rows) in due {
                let asked = Instant::now();
                let extended = store.extend_claim(&token, &rows, lease).await;
                let mut held = self.lock();
                let Some(h) = held.get_mut(&token.0) else {
                    continue; // settled meanwhile
                };
                match extended {
                    Ok(kept) => {
                        if kept.len() < rows.len() {
                            tracing::warn!(
                                lost = rows.len() - kept.len(),
                                "claim lease lapsed before it was extended; another relay took some rows and publishes them too"
                            );
                        }
                        h.rows = kept;
                        h.renew_at = asked + lease / 2;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, rows = rows.len(), "cannot extend the claim lease; trying again");
                        h.renew_at = Instant::now() + retry;
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}
