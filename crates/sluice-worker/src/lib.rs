//! Worker pools of sluice: consume a queue's topic, start each attempt under
//! a lease in the store, run the handler, and record outcomes in batches
//! (success, a retry row back in the outbox with backoff, or a dead letter)
//! before acknowledging the messages.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::HandlerConfig;

mod ahead;
mod attempt;
mod breaker;
mod drain;
mod flush;
mod handler;
mod http;
mod intake;
mod launch;
mod limit;
mod pause;
mod pool;
mod report;
mod slots;
mod stalled;

pub use ahead::{prefetch_window, PREFETCH_PER_SLOT, PREFETCH_PER_SLOT_OWNED};
pub use handler::{Handler, JobContext, LogHandler, NoopHandler};
pub use http::HttpHandler;
pub use pool::{Worker, WorkerOptions, WorkerQueue};

/// Failures that stop a worker from starting.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid worker config: {0}")]
    Config(String),
    #[error("broker: {0}")]
    Broker(#[from] sluice_broker::BrokerError),
}

/// The handler a queue's configuration names.
pub fn handler_for(config: &HandlerConfig) -> Result<Arc<dyn Handler>, WorkerError> {
    Ok(match config {
        HandlerConfig::Http { url, timeout_ms } => {
            Arc::new(HttpHandler::new(url, Duration::from_millis(*timeout_ms))?)
        }
        HandlerConfig::Log => Arc::new(LogHandler),
        HandlerConfig::Noop => Arc::new(NoopHandler),
    })
}
