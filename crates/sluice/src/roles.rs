//! Wires the roles of one process: ingest (HTTP API), relay and workers,
//! their health endpoints and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use sluice_api::{Health, IngestQueue, IngestSettings, IngestState, ReadinessCheck};
use sluice_broker::Broker;
use sluice_store::{GroupCommit, Store};
use sluice_worker::{Worker, WorkerQueue};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::telemetry;

/// Which roles a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub ingest: bool,
    pub relay: bool,
    pub worker: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        ingest: true,
        relay: true,
        worker: true,
    };
    pub const INGEST: Roles = Roles {
        ingest: true,
        relay: false,
        worker: false,
    };
    pub const RELAY: Roles = Roles {
        ingest: false,
        relay: true,
        worker: false,
    };
    pub const WORKER: Roles = Roles {
        ingest: false,
        relay: false,
        worker: true,
    };

    fn describe(&self) -> String {
        let mut v = Vec::new();
        for (on, name) in [
            (self.ingest, "ingest"),
            (self.relay, "relay"),
            (self.worker, "worker"),
        ] {
            if on {
                v.push(name);
            }
        }
        v.join("+")
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Ingest listen address (overrides http.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

pub async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    run_roles(config, Roles::ALL, args.listen, vec![]).await
}

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

struct StoreCheck(Arc<dyn Store>);

#[async_trait]
impl ReadinessCheck for StoreCheck {
    fn name(&self) -> &'static str {
        "store"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

struct BrokerCheck(Arc<dyn Broker>);

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
async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
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
            Err(e) => return Err(e).with_context(|| format!("cannot open store {}", redact(url))),
        }
    }
}

/// Runs `roles` until SIGTERM or Ctrl-C, then drains and returns.
pub async fn run_roles(
    config: Config,
    roles: Roles,
    listen: Option<SocketAddr>,
    only_queues: Vec<String>,
) -> anyhow::Result<()> {
    let addr: SocketAddr = match listen {
        Some(a) => a,
        None => config.http.listen.parse().context("http.listen")?,
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let what = if roles.ingest {
        "ingest API"
    } else {
        "health and metrics"
    };
    tracing::info!(
        "sluice {} listening on http://{local} ({what})",
        roles.describe()
    );
    tracing::info!(
        store = %redact(&config.store.url),
        broker = %redact(&config.broker.url),
        queues = %config.queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>().join(","),
        "backends"
    );
    let render = telemetry::init_metrics()?;
    let queues: Vec<_> = if only_queues.is_empty() {
        config.queues.clone()
    } else {
        for q in &only_queues {
            if !config.queues.iter().any(|c| &c.name == q) {
                bail!("--queue {q:?} is not a configured queue");
            }
        }
        config
            .queues
            .iter()
            .filter(|c| only_queues.contains(&c.name))
            .cloned()
            .collect()
    };
    let schemas = config.load_schemas()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;

    let store = open_store(&config.store.url).await?;
    let broker = sluice_broker::open(&config.broker.url, &config.data_dir)
        .await
        .with_context(|| format!("cannot open broker {}", redact(&config.broker.url)))?;
    let topics: Vec<String> = config
        .queues
        .iter()
        .flat_map(|q| [q.topic(), q.dlq_topic()])
        .collect();
    broker
        .declare(&topics)
        .await
        .context("cannot declare broker topics")?;

    let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
        Arc::new(StoreCheck(store.clone())),
        Arc::new(BrokerCheck(broker.clone())),
    ];
    let health = Health::new(checks);
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();

    if roles.relay {
        let relay = sluice_relay::Relay::new(
            store.clone(),
            broker.publisher(),
            &config.queues,
            config.relay.relay_config(),
        )?;
        tasks.spawn(relay.run(shutdown.child_token()));
    }
    if roles.worker {
        for q in &queues {
            let i = config
                .queues
                .iter()
                .position(|c| c.name == q.name)
                .unwrap_or(0);
            let wq = WorkerQueue {
                config: q.clone(),
                schema: schemas[i].clone(),
                handler: sluice_worker::handler_for(&q.handler)?,
            };
            let worker = Worker::new(store.clone(), broker.clone(), wq, config.worker.options())?;
            let token = shutdown.child_token();
            let name = q.name.clone();
            tasks.spawn(async move {
                if let Err(e) = worker.run(token).await {
                    tracing::error!(queue = %name, error = %e, "worker failed");
                }
            });
        }
    }

    let app = if roles.ingest {
        let settings = IngestSettings {
            max_body_bytes: config.http.max_body_bytes,
            queues: config
                .queues
                .iter()
                .zip(&schemas)
                .map(|(q, s)| IngestQueue {
                    config: q.clone(),
                    schema: s.clone(),
                })
                .collect(),
        };
        let ingest_store = Arc::new(GroupCommit::new(store.clone()));
        sluice_api::ingest_app(IngestState::new(
            ingest_store,
            settings,
            health.clone(),
            render,
        )?)
    } else {
        sluice_api::health_app(health.clone(), render)
    };

    let stop = shutdown.clone();
    let drain_health = health.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: draining");
        drain_health.set_draining();
        stop.cancel();
    });
    let result = server.await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!("sluice stopped");
    result.context("http server failed")
}

async fn wait_for_signal() {
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
