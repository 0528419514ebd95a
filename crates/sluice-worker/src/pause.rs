//! The queue's pause state as the pool loop sees it.

use std::time::{Duration, Instant};

use sluice_store::Store;

/// The queue's pause state, read from the store at most once per interval.
#[derive(Default)]
pub(crate) struct PauseState {
    paused: bool,
    checked: Option<Instant>,
}

impl PauseState {
    pub(crate) async fn is_paused(
        &mut self,
        store: &dyn Store,
        queue: &str,
        every: Duration,
    ) -> bool {
        if self.checked.is_some_and(|t| t.elapsed() < every) {
            return self.paused;
        }
        self.checked = Some(Instant::now());
        match store.paused_queues().await {
            Ok(list) => {
                let paused = list.iter().any(|q| q == queue);
                if paused != self.paused {
                    tracing::info!(queue, paused, "queue pause state changed");
                }
                metrics::gauge!("sluice_queue_paused", "queue" => queue.to_string())
                    .set(if paused { 1.0 } else { 0.0 });
                self.paused = paused;
            }
            Err(e) => {
                tracing::warn!(queue, error = %e, "cannot read pause state; keeping the last known")
            }
        }
        self.paused
    }
}
