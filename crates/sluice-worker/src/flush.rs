//! Records attempt outcomes in batches, then hands their deliveries back to
//! the pool loop for acknowledgement: a message is acked only after its
//! outcome is durable.

use std::sync::Arc;
use std::time::Duration;

use sluice_broker::AckToken;
use sluice_store::{Completion, Outcome, Store, StoreError};
use tokio::sync::mpsc;

/// A finished attempt on its way to the store.
pub(crate) struct Done {
    pub token: AckToken,
    pub completion: Completion,
}

pub(crate) struct Flusher {
    pub store: Arc<dyn Store>,
    pub queue: String,
    pub max_batch: usize,
    pub interval: Duration,
}

impl Flusher {
    /// Runs until every sender of `done` is gone and all is flushed.
    pub async fn run(
        self,
        mut done: mpsc::UnboundedReceiver<Done>,
        acks: mpsc::UnboundedSender<Vec<AckToken>>,
    ) {
        while let Some(first) = done.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.interval;
            while batch.len() < self.max_batch {
                match tokio::time::timeout_at(deadline, done.recv()).await {
                    Ok(Some(d)) => batch.push(d),
                    _ => break,
                }
            }
            let tokens = self.flush(batch).await;
            let _ = acks.send(tokens);
        }
    }

    /// Writes the batch, retrying what failed transiently, and returns the
    /// tokens to acknowledge.
    async fn flush(&self, mut batch: Vec<Done>) -> Vec<AckToken> {
        let mut tokens = Vec::with_capacity(batch.len());
        let mut backoff = Duration::from_millis(50);
        while !batch.is_empty() {
            let results = self
                .store
                .finish_attempts(batch.iter().map(|d| d.completion.clone()).collect())
                .await;
            let mut retry = Vec::new();
            for (d, r) in batch.into_iter().zip(results) {
                match r {
                    Ok(()) => {
                        self.count(&d.completion.outcome);
                        tokens.push(d.token);
                    }
                    Err(StoreError::LeaseLost) => {
                        metrics::counter!("sluice_attempts_fenced_total", "queue" => self.queue.clone()).increment(1);
                        tracing::warn!(job_id = %d.completion.job_id, "attempt outcome fenced off: lease lost");
                        tokens.push(d.token);
                    }
                    Err(e) if e.is_transient() => retry.push(d),
                    Err(e) => {
                        tracing::error!(job_id = %d.completion.job_id, error = %e, "cannot record outcome; message will be redelivered");
                    }
                }
            }
            if !retry.is_empty() {
                tracing::warn!(
                    count = retry.len(),
                    retry_in_ms = backoff.as_millis() as u64,
                    "store unavailable while recording outcomes"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            batch = retry;
        }
        tokens
    }

    fn count(&self, outcome: &Outcome) {
        let name = match outcome {
            Outcome::Succeeded => "sluice_jobs_succeeded_total",
            Outcome::Retry { .. } => "sluice_jobs_retried_total",
            Outcome::Dead { .. } => "sluice_jobs_dead_total",
        };
        metrics::counter!(name, "queue" => self.queue.clone()).increment(1);
    }
}
