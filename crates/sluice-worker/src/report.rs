//! Shares a pool's current concurrency limit through the store, so the
//! admin API shows each queue's total over every worker process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::now_ms;
use sluice_store::Store;
use tokio_util::sync::CancellationToken;

use crate::limit::Limiter;

/// How often the limit is reported.
const EVERY: Duration = Duration::from_secs(2);
/// A report lapses this long after it is made (a worker killed without
/// withdrawing its report drops out of the total after this).
const TTL: Duration = Duration::from_secs(10);

/// Reports the limit every [`EVERY`] until `stop`, then withdraws it.
/// Store failures are logged and retried at the next report.
pub(crate) async fn report_limit(
    store: Arc<dyn Store>,
    queue: String,
    limiter: Arc<Mutex<Limiter>>,
    stop: CancellationToken,
) {
    let worker = uuid::Uuid::new_v4().to_string();
    loop {
        let limit = limiter.lock().expect("limiter lock").limit() as u32;
        let expires = now_ms() + TTL.as_millis() as i64;
        if let Err(e) = store
            .report_concurrency(&queue, &worker, limit, expires)
            .await
        {
            tracing::debug!(queue = %queue, error = %e, "cannot report the concurrency limit");
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.cancelled() => break,
        }
    }
    if let Err(e) = store
        .report_concurrency(&queue, &worker, 0, now_ms() - 1)
        .await
    {
        tracing::debug!(queue = %queue, error = %e, "cannot withdraw the concurrency report");
    }
}
