//! Records attempt outcomes in batches, then hands their deliveries back to
//! the pool loop for acknowledgement: a message is acked only after its
//! outcome is durable. One batch is written at a time (two at once measured
//! slower); outcomes that finish while it is written form the next batch, so
//! batches grow with the load without a timer holding back outcomes when the
//! load is light.

use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use sluice_broker::AckToken;
use sluice_store::{Completion, Outcome, Store, StoreError};
use tokio::sync::mpsc;

/// A finished attempt on its way to the store.
pub(crate) struct Done {
    pub token: AckToken,
    pub completion: Completion,
}

pub(crate) struct Flusher {
    store: Arc<dyn Store>,
    queue: String,
    max_batch: usize,
    /// How long a batch waits for more outcomes after its first.
    linger: Duration,
    /// The queue's outcome counters: succeeded, retried, dead.
    counts: [Counter; 3],
}

/// The next batch: the first outcome to come, then those already waiting
/// and any arriving within `linger`, at most `max` in all. `None` once every
/// sender is gone and nothing is left.
async fn gather<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    max: usize,
    linger: Duration,
) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(d) => batch.push(d),
            Err(_) => break,
        }
    }
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max && !linger.is_zero() {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(d)) => batch.push(d),
            _ => break,
        }
    }
    Some(batch)
}

impl Flusher {
    pub fn new(store: Arc<dyn Store>, queue: &str, max_batch: usize, linger: Duration) -> Self {
        let count = |name: &'static str| metrics::counter!(name, "queue" => queue.to_string());
        Self {
            store,
            queue: queue.to_string(),
            max_batch,
            linger,
            counts: [
                count("sluice_jobs_succeeded_total"),
                count("sluice_jobs_retried_total"),
                count("sluice_jobs_dead_total"),
            ],
        }
    }

    /// Runs until every sender of `done` is gone and all is flushed: the
    /// deliveries of recorded outcomes go to `acks`, those whose outcome
    /// cannot be recorded at all to `back`, to be handed back to the broker
    /// for `back_after`.
    pub async fn run(
        self,
        mut done: mpsc::UnboundedReceiver<Done>,
        acks: mpsc::UnboundedSender<Vec<AckToken>>,
        back: mpsc::UnboundedSender<(AckToken, Duration)>,
        back_after: Duration,
    ) {
        while let Some(batch) = gather(&mut done, self.max_batch, self.linger).await {
            let (tokens, failed) = self.flush(batch).await;
            let _ = acks.send(tokens);
            for t in failed {
                let _ = back.send((t, back_after));
            }
        }
    }

    /// Writes the batch, retrying what failed transiently, and returns the
    /// tokens to acknowledge and those whose outcome failed for good.
    async fn flush(&self, mut batch: Vec<Done>) -> (Vec<AckToken>, Vec<AckToken>) {
        let mut failed = Vec::new();
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
                    // handed back, not left un-acked: an un-acked delivery
                    // would hold its partition's offset and a slot of the
                    // window for as long as the subscription lives
                    Err(e) => {
                        tracing::error!(job_id = %d.completion.job_id, error = %e, "cannot record outcome; handing the message back for redelivery");
                        failed.push(d.token);
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
        (tokens, failed)
    }

    fn count(&self, outcome: &Outcome) {
        let i = match outcome {
            Outcome::Succeeded => 0,
            Outcome::Retry { .. } => 1,
            Outcome::Dead { .. } => 2,
        };
        self.counts[i].increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn by_default_outcomes_waiting_go_together_at_once() {
        let linger = crate::WorkerOptions::default().flush_linger;
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            gather(&mut rx, 512, linger).await,
            Some(vec![0, 1, 2, 3, 4])
        );
        assert_eq!(tokio::time::Instant::now(), t0, "waited for more outcomes");
        tx.send(5).unwrap();
        assert_eq!(gather(&mut rx, 512, linger).await, Some(vec![5]));
        assert_eq!(tokio::time::Instant::now(), t0, "waited for more outcomes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_holds_at_most_max_and_lingers_when_told() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert_eq!(
            gather(&mut rx, 3, Duration::ZERO).await,
            Some(vec![0, 1, 2])
        );
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            late.send(9).unwrap();
        });
        let got = gather(&mut rx, 10, Duration::from_millis(5)).await;
        assert_eq!(got, Some(vec![3, 4, 9]));
        drop(tx);
        assert_eq!(gather(&mut rx, 10, Duration::ZERO).await, None);
    }
}
