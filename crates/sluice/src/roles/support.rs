//! What every role's wiring shares: URL redaction for logs, readiness
//! checks, opening the store, a role's failure stopping the process, and
//! waiting for SIGTERM / Ctrl-C.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sluice_api::ReadinessCheck;
use sluice_broker::Broker;
use sluice_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The first failure of a role's task (a worker whose subscription closed),
/// which stops the process: it drains, then exits with that error for a
/// supervisor to restart it, rather than running on without the role.
#[derive(Clone)]
pub(crate) struct FirstFailure {
    first: Arc<Mutex<Option<anyhow::Error>>>,
    stop: CancellationToken,
}

impl FirstFailure {
    /// Failures cancel `stop`, the process's shutdown.
    pub fn new(stop: CancellationToken) -> Self {
        Self {
            first: Arc::default(),
            stop,
        }
    }

    /// Keeps `e` unless a failure came before it, and stops the process.
    pub fn fail(&self, e: anyhow::Error) {
        self.first.lock().expect("failure slot").get_or_insert(e);
        self.stop.cancel();
    }

    /// The first failure, if any.
    pub fn take(&self) -> Option<anyhow::Error> {
        self.first.lock().expect("failure slot").take()
    }
}

/// Hides the secrets of a URL: the password of its user info and the value
/// of every query parameter whose name says secret (`password`,
/// `sslpassword`, `token`, …), as in `scheme://user:****@host/db?password=****`.
/// The password runs from the first `:` after a plain user name to the last
/// `@` of the URL, so a password with an unencoded `@`, `/`, `?` or `#`
/// (which URL parsers reject or split elsewhere) is hidden whole; an `@` in
/// a path or query hides more than the password, never less.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    let password_end = rest.rmatch_indices('@').map(|(at, _)| at).find(|&at| {
        rest[..at]
            .split_once(':')
            .is_some_and(|(user, _)| !user.contains(['/', '?', '#', '[', ']', '@']))
    });
    let tail = match password_end {
        Some(at) => {
            let user = rest[..at].split_once(':').map_or("", |(user, _)| user);
            out.push_str(user);
            out.push_str(":****");
            &rest[at..]
        }
        None => rest,
    };
    let (path, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match path.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, _)) if secret_parameter(name) => {
                        out.push_str(name);
                        out.push_str("=****");
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(path),
    }
    out.push_str(fragment);
    out
}

/// Whether a URL query parameter of this name carries a secret.
fn secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "key"]
        .iter()
        .any(|s| name.contains(s))
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
    use super::{redact, FirstFailure};
    use tokio_util::sync::CancellationToken;

    #[test]
    fn the_first_failure_stops_the_process_and_is_kept() {
        let stop = CancellationToken::new();
        let failures = FirstFailure::new(stop.clone());
        assert!(failures.take().is_none());
        assert!(!stop.is_cancelled());
        failures
            .clone()
            .fail(anyhow::anyhow!("worker of queue a: subscription closed"));
        assert!(stop.is_cancelled());
        failures.fail(anyhow::anyhow!("worker of queue b: subscription closed"));
        let first = failures.take().expect("a failure");
        assert!(first.to_string().contains("queue a"), "{first}");
        assert!(failures.take().is_none());
    }

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

    #[test]
    fn an_unencoded_at_sign_in_a_password_hides_all_of_it() {
        // whatever ends the authority for URL parsers, the password is hidden whole
        let r = redact("postgres://u:p@ss@h:5432/db");
        assert_eq!(r, "postgres://u:****@h:5432/db");
        assert_eq!(redact("postgres://u:a/b@h/db"), "postgres://u:****@h/db");
        assert_eq!(redact("postgres://u:p?s#s@h/db"), "postgres://u:****@h/db");
        assert_eq!(redact("postgres://u:p@s/s@h/db"), "postgres://u:****@h/db");
        // an IPv6 host, and an `@` in a path with no user info
        assert_eq!(
            redact("postgres://u:p@[::1]:5432/db"),
            "postgres://u:****@[::1]:5432/db"
        );
        assert_eq!(redact("http://[::1]:8080/a@b"), "http://[::1]:8080/a@b");
    }

    #[test]
    fn secret_query_parameters_are_redacted() {
        let r = redact("postgres://app@db/sluice?sslmode=require&password=s3cret&PassWord=x#f");
        assert_eq!(
            r,
            "postgres://app@db/sluice?sslmode=require&password=****&PassWord=****#f"
        );
        let r = redact("postgres://db/x?sslpassword=a&application_name=sluice");
        assert_eq!(
            r,
            "postgres://db/x?sslpassword=****&application_name=sluice"
        );
        assert_eq!(redact("amqp://h/%2f?token=t"), "amqp://h/%2f?token=****");
    }
}
