//! One AMQP connection, reopened with backoff when it is lost.

use std::sync::Arc;
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::AmqpConfig;
use super::unavailable;
use crate::BrokerError;

/// First wait after a failed connection attempt; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands out channels of a live connection. When the connection is gone the
/// next caller reconnects; after a failed attempt, callers get
/// [`BrokerError::Unavailable`] at once until the backoff (100 ms doubling to
/// 5 s) has passed, so a broker outage costs no connection storm.
pub(crate) struct Connector {
    config: AmqpConfig,
    /// What the connection is for, in its client properties and in logs.
    role: &'static str,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    connection: Option<Arc<Connection>>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Connections opened so far (1 = the first, more = reconnections).
    opened: u64,
}

impl Connector {
    pub(crate) fn new(config: AmqpConfig, role: &'static str) -> Self {
        Self {
            config,
            role,
            state: Mutex::new(State::default()),
        }
    }

    /// The live connection, opened or reopened when needed.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, BrokerError> {
        let mut state = self.state.lock().await;
        if let Some(c) = &state.connection {
            if c.status().connected() {
                return Ok(c.clone());
            }
            tracing::warn!(role = self.role, url = %self.config.redacted, "amqp connection lost; reconnecting");
            state.connection = None;
        }
        if let Some(at) = state.retry_at {
            if Instant::now() < at {
                return Err(BrokerError::Unavailable(format!(
                    "amqp broker {} unreachable; next attempt in {} ms",
                    self.config.redacted,
                    at.saturating_duration_since(Instant::now()).as_millis()
                )));
            }
        }
        let props = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current())
            .with_connection_name(format!("sluice {}", self.role).into());
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.config.uri, props),
        )
        .await;
        let result = match attempt {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(unavailable(
                &format!("cannot connect to {}", self.config.redacted),
                e,
            )),
            Err(_) => Err(BrokerError::Unavailable(format!(
                "cannot connect to {}: timed out after {} s",
                self.config.redacted,
                CONNECT_TIMEOUT.as_secs()
            ))),
        };
        match result {
            Ok(c) => {
                state.opened += 1;
                if state.opened > 1 {
                    tracing::info!(role = self.role, url = %self.config.redacted, "amqp connection reopened");
                }
                state.failures = 0;
                state.retry_at = None;
                let c = Arc::new(c);
                state.connection = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << state.failures.min(10).saturating_sub(1))
                    .min(MAX_BACKOFF);
                state.retry_at = Some(Instant::now() + backoff);
                Err(e)
            }
        }
    }

    /// A new channel on the live connection.
    pub(crate) async fn channel(&self) -> Result<Channel, BrokerError> {
        let connection = self.connection().await?;
        connection
            .create_channel()
            .await
            .map_err(|e| unavailable("cannot open an amqp channel", e))
    }
}
