//! How a stopping pool drains: the jobs it started run to their end (within
//! the drain grace), and their outcomes are written and acked; what it could
//! not finish is left unacked, for the broker to deliver again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sluice_broker::{AckToken, Subscription};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::launch::{Batch, Started, Starting};
use crate::pool::Worker;
use crate::stalled::Stalled;

/// How long a stopping pool keeps trying to write outcomes after its last
/// job ended, at least, when its drain grace ends sooner.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// What the pool loop leaves to the drain of its jobs.
pub(crate) struct Leftovers {
    /// Batches whose attempts are starting, oldest first.
    pub starting: VecDeque<Starting>,
    /// A batch received and not started.
    pub pending: Option<Batch>,
    /// Deliveries held after a failed (or unanswered) start.
    pub stalled: Stalled,
}

impl Worker {
    /// Runs what was started until `deadline`: batches still starting are
    /// launched, the attempts of starts that went unanswered are undone, and
    /// the running jobs are awaited (then abandoned, for redelivery).
    pub(crate) async fn drain_jobs(
        &self,
        sub: &mut dyn Subscription,
        left: Leftovers,
        started: &Started<'_>,
        tasks: &mut JoinSet<()>,
        acks: &mut Vec<AckToken>,
        deadline: Instant,
    ) {
        let queue = &self.queue.config.name;
        let Leftovers {
            mut starting,
            pending,
            mut stalled,
        } = left;
        // batches whose attempts are starting run in the drain: their jobs
        // are leased, and left unrun they would wait out their leases; a
        // store that does not answer within the drain grace is left behind
        // (the leases fence those attempts, the broker delivers them again)
        while let Some(s) = starting.pop_front() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(batch) = tokio::time::timeout(left, s.started()).await else {
                tracing::warn!(%queue, "attempts still starting at the end of the drain grace; their messages are delivered again");
                break;
            };
            self.launch(sub, batch, started, tasks, acks, &mut stalled)
                .await;
        }
        // held after a start that went unanswered: the store may have
        // started those attempts, leased to nobody; asked again under their
        // tokens, the attempts it hands back are undone, so that their
        // messages, delivered again, start at once and count them once
        let unheard = stalled.take_unheard();
        if !unheard.is_empty() {
            let batch = Batch {
                deliveries: unheard,
                probe: false,
            };
            let s = self.start(batch, &mut stalled);
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.started()).await {
                Ok(batch) => {
                    let undone = batch.undo(started.attempts).await;
                    tracing::info!(%queue, undone, "undid the attempts of starts that went unanswered");
                }
                Err(_) => {
                    tracing::warn!(%queue, "cannot undo the attempts of starts that went unanswered within the drain grace; they are taken over once their leases lapse")
                }
            }
        }
        // a batch received but not started (or held after a failed start):
        // nothing of it is in the store; left unacked, the broker delivers
        // it again
        drop(pending);
        drop(stalled);
        tracing::info!(%queue, in_flight = tasks.len(), "worker draining");
        while !tasks.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, tasks.join_next()).await.is_err() {
                tracing::warn!(%queue, abandoned = tasks.len(), "drain grace over; abandoning jobs for redelivery");
                tasks.abort_all();
                break;
            }
        }
    }

    /// Waits for the flusher (whose input has closed) to write the last
    /// outcomes, until `deadline` and for at least [`FLUSH_GRACE`], then
    /// acks what it wrote.
    pub(crate) async fn drain_outcomes(
        &self,
        sub: &mut dyn Subscription,
        mut flusher: JoinHandle<()>,
        ack_rx: &mut mpsc::UnboundedReceiver<Vec<AckToken>>,
        acks: &mut Vec<AckToken>,
        deadline: Instant,
    ) {
        // a store that stays down must not keep the process from exiting:
        // what is left unwritten stays unacked, so the broker delivers it
        // again (the lease fences the old attempt)
        let flush_until = deadline.max(Instant::now() + FLUSH_GRACE);
        let flushing = tokio::time::timeout_at(flush_until.into(), &mut flusher);
        if flushing.await.is_err() {
            tracing::warn!(queue = %self.queue.config.name, "store unavailable at the end of the drain; outcomes left unwritten, their messages are delivered again");
            flusher.abort();
        }
        while let Ok(t) = ack_rx.try_recv() {
            acks.extend(t);
        }
        self.ack(sub, acks).await;
    }
}
