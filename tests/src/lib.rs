//! Test harness: the real `sluice` binary as a child process, a local HTTP
//! downstream that records every delivery, and an HTTP client.

pub mod brokers;
pub mod collector;
pub mod cpu;
pub mod downstream;
pub mod faults;
pub mod jobs;
pub mod kafka;
pub mod pg;
pub mod process;
pub mod prom;
pub mod rabbit;
pub mod scenario;
pub mod tansu;

pub use downstream::{Arrival, Downstream, Mode};
pub use process::{sluice_bin, SluiceProcess};

use std::time::Duration;

/// Polls `f` every `every` until it returns `Some`, or fails after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, every: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("condition not met within {limit:?}");
        }
        tokio::time::sleep(every).await;
    }
}
