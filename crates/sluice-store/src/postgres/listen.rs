//! The background `LISTEN` task that turns notifications into wake-ups of
//! this process's relays, reconnecting with backoff.

use std::sync::Weak;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

use super::{map_err, NOTIFY_CHANNEL};
use crate::StoreError;

/// Reconnect backoff of the `LISTEN` task.
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(100);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The background `LISTEN` task; aborted on drop.
pub(super) struct ListenerTask {
    pub(super) handle: AbortHandle,
    pub(super) pool: PgPool,
    pub(super) listening: watch::Receiver<bool>,
}

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

pub(super) fn wake(notify: &Notify) {
    notify.notify_waiters();
    notify.notify_one();
}

/// `d` scaled by a random factor in [0.5, 1.5).
pub(super) fn jittered(d: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    d * (500 + r) / 1000
}

/// The `LISTEN` loop: each notification (and each reconnection, after which
/// notifications may have been missed) wakes the relays of this process.
pub(super) async fn listen(pool: PgPool, notify: Weak<Notify>, listening: watch::Sender<bool>) {
    let mut backoff = LISTEN_BACKOFF_MIN;
    loop {
        match subscribe(&pool).await {
            Ok(mut listener) => {
                listening.send_replace(true);
                backoff = LISTEN_BACKOFF_MIN;
                loop {
                    let Some(notify) = notify.upgrade() else {
                        return;
                    };
                    match listener.try_recv().await {
                        Ok(Some(_)) => wake(&notify),
                        // The connection was lost and re-established:
                        // whatever was sent meanwhile is lost, so look.
                        Ok(None) => {
                            tracing::debug!("postgres LISTEN connection re-established");
                            wake(&notify);
                        }
                        Err(e) => {
                            tracing::warn!(error = %map_err(e), "postgres LISTEN connection lost; reconnecting");
                            listening.send_replace(false);
                            wake(&notify);
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                listening.send_replace(false);
                tracing::debug!(error = %e, "postgres LISTEN failed; retrying");
            }
        }
        if notify.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(pool).await.map_err(map_err)?;
    listener.listen(NOTIFY_CHANNEL).await.map_err(map_err)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d < Duration::from_millis(150));
        }
    }
}
