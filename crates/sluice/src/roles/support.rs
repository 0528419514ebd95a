//! What every role's wiring shares: URL redaction for logs, readiness
//! checks, opening the store, and waiting for SIGTERM / Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sluice_api::ReadinessCheck;
use sluice_broker::Broker;
use sluice_store::Store;
use tokio::net::TcpListener;

/// Hides the password of a URL (`scheme://user:****@host`).
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:****{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

pub struct StoreCheck(pub Arc<dyn Store>);

#[async_trait]
impl ReadinessCheck for StoreCheck {
    fn name(&self) -> &'static str {
        "store"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

pub struct BrokerCheck(pub Arc<dyn Broker>);

#[async_trait]
impl ReadinessCheck for BrokerCheck {
    fn name(&self) -> &'static str {
        "broker"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// Opens the store, retrying a transiently unavailable one for up to a minute.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let mut wait = Duration::from_millis(200);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match sluice_store::open(url).await {
            Ok(s) => return Ok(s),
            Err(e) if e.is_transient() && tokio::time::Instant::now() < give_up => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "store not reachable yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot open store {} (key `store.url`)", redact(url))
                })
            }
        }
    }
}

/// Binds the flag's address, else the configured one (`key` names it in errors).
pub async fn bind(
    flag: Option<SocketAddr>,
    key: &str,
    configured: &str,
) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = match flag {
        Some(a) => a,
        None => configured.parse().with_context(|| key.to_string())?,
    };
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:****@h/db");
        assert_eq!(
            redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:****@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("sqlite://./x.db"), "sqlite://./x.db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
