//! Wires the roles of one process: ingest (HTTP API), relay, workers and
//! admin (its own listener), their health endpoints and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sluice_api::{Health, IngestQueue, IngestSettings, IngestState, ReadinessCheck};
use sluice_store::{GroupCommit, GroupCommitOptions};
use sluice_worker::{Worker, WorkerQueue};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::telemetry;

mod admin;
mod scaling;
mod support;

pub use support::redact;
use support::{bind, open_store, wait_for_signal, BrokerCheck, FirstFailure, StoreCheck};

/// Which roles a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub ingest: bool,
    pub relay: bool,
    pub worker: bool,
    pub admin: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        ingest: true,
        relay: true,
        worker: true,
        admin: true,
    };
    pub const INGEST: Roles = Roles::only(true, false, false, false);
    pub const RELAY: Roles = Roles::only(false, true, false, false);
    pub const WORKER: Roles = Roles::only(false, false, true, false);
    pub const ADMIN: Roles = Roles::only(false, false, false, true);

    const fn only(ingest: bool, relay: bool, worker: bool, admin: bool) -> Roles {
        Roles {
            ingest,
            relay,
            worker,
            admin,
        }
    }

    /// Whether a role besides admin runs (and so the main listener).
    fn main_listener(&self) -> bool {
        self.ingest || self.relay || self.worker
    }

    /// The roles of the main listener, e.g. `ingest+relay+worker`.
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

/// Listen addresses from flags (overriding `http.listen` / `http.admin_listen`).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Listen {
    /// Ingest (or health) listen address (overrides http.listen).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Admin API listen address (overrides http.admin_listen).
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
}

/// Runs `roles` until SIGTERM or Ctrl-C, then drains and returns.
/// `schemas` are the queues' JSON Schemas, in `config.queues` order (from
/// [`Config::load_schemas`]).
pub async fn run_roles(
    config: Config,
    schemas: Vec<Option<serde_json::Value>>,
    roles: Roles,
    listen: Listen,
    only_queues: Vec<String>,
) -> anyhow::Result<()> {
    let token = if roles.admin {
        Some(admin::token(&config)?)
    } else {
        None
    };
    // Both listeners are bound before either is announced, and the main
    // one's line comes first: tools read the first "listening on" line as
    // the ingest (or health) address.
    let main = if roles.main_listener() {
        Some(bind(listen.listen, "http.listen", &config.http.listen).await?)
    } else {
        None
    };
    let admin_listener = if roles.admin {
        let (flag, configured) = (listen.admin_listen, &config.http.admin_listen);
        Some(bind(flag, "http.admin_listen", configured).await?)
    } else {
        None
    };
    if let Some(l) = &main {
        let what = if roles.ingest {
            "ingest API"
        } else {
            "health and metrics"
        };
        let (names, addr) = (roles.describe(), l.local_addr()?);
        tracing::info!("sluice {names} listening on http://{addr} ({what})");
    }
    if let Some(l) = &admin_listener {
        let addr = l.local_addr()?;
        tracing::info!("sluice admin listening on http://{addr} (admin API)");
    }
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
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;

    let store = open_store(&config.store.url).await?;
    let mut checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(StoreCheck(store.clone()))];
    // The admin role alone needs no broker.
    let broker = if roles.main_listener() {
        let broker = sluice_broker::open(&config.broker.url, &config.data_dir)
            .await
            .with_context(|| {
                format!(
                    "cannot open broker {} (key `broker.url`)",
                    redact(&config.broker.url)
                )
            })?;
        let topics: Vec<String> = config
            .queues
            .iter()
            .flat_map(|q| [q.topic(), q.dlq_topic()])
            .collect();
        broker
            .declare(&topics)
            .await
            .context("cannot declare broker topics")?;
        checks.push(Arc::new(BrokerCheck(broker.clone())));
        Some(broker)
    } else {
        None
    };
    let health = Health::new(checks);
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    // the first role that failed, which the process exits with
    let failures = FirstFailure::new(shutdown.clone());

    if let Some(broker) = &broker {
        if roles.relay {
            let relay = sluice_relay::Relay::new(
                store.clone(),
                broker.publisher(),
                &config.queues,
                config.relay.relay_config(),
            )?;
            tasks.spawn(relay.run(shutdown.child_token()));
            let redrive = sluice_relay::Redrive::new(
                store.clone(),
                broker.clone(),
                &config.queues,
                config.relay.redrive_config(),
            );
            tasks.spawn(redrive.run(shutdown.child_token()));
            let retention = sluice_relay::Retention::new(store.clone(), config.retention.config());
            tasks.spawn(retention.run(shutdown.child_token()));
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
                let worker =
                    Worker::new(store.clone(), broker.clone(), wq, config.worker.options())?;
                let token = shutdown.child_token();
                let name = q.name.clone();
                let failures = failures.clone();
                tasks.spawn(async move {
                    if let Err(e) = worker.run(token).await {
                        tracing::error!(queue = %name, error = %e, "worker failed; stopping");
                        failures
                            .fail(anyhow::Error::new(e).context(format!("worker of queue {name}")));
                    }
                });
            }
        }
    }

    // The listeners outlive the roles' drain: `/readyz` answers 503 and
    // intake refuses jobs while in-flight work finishes.
    let servers_stop = CancellationToken::new();
    let mut servers: JoinSet<anyhow::Result<()>> = JoinSet::new();
    // health and metrics on the admin listener only when it is the only one
    let admin_health = main.is_none();
    if let Some(listener) = main {
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
            let group = GroupCommitOptions {
                // SQLite has one writer: concurrent transactions only queue.
                max_concurrent: if store.backend() == "sqlite" { 1 } else { 4 },
                ..GroupCommitOptions::default()
            };
            let ingest_store = Arc::new(GroupCommit::with_options(store.clone(), group));
            let scaling = scaling::spawn(&config, store.clone(), broker.clone(), &shutdown);
            sluice_api::ingest_app(
                IngestState::new(ingest_store, settings, health.clone(), render.clone())?
                    .with_scaling(scaling),
            )
        } else {
            sluice_api::health_app(health.clone(), render.clone())
        };
        servers.spawn(serve(listener, app, servers_stop.clone(), "http server"));
    }
    let mut admin_state = None;
    if let (Some(listener), Some(token)) = (admin_listener, token) {
        let health = admin_health.then(|| (health.clone(), render));
        let (state, app) = admin::app(&config, store.clone(), &token, health);
        state.spawn_replay_supervisor(shutdown.clone().cancelled_owned());
        servers.spawn(serve(listener, app, servers_stop.clone(), "admin server"));
        admin_state = Some(state);
    }

    let stop = shutdown.clone();
    let drain_health = health.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = wait_for_signal() => {
                tracing::info!("shutdown requested: draining");
                drain_health.set_draining();
                stop.cancel();
            }
            _ = stop.cancelled() => {}
        }
    });
    let mut result = Ok(());
    // Until a signal (or a failing server), serve; then drain the roles
    // while the listeners still answer, and only then close them.
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = servers.join_next() => match r {
                Some(r) => {
                    let r = r.context("server task failed").and_then(|r| r);
                    if r.is_err() {
                        result = r;
                        break;
                    }
                }
                None => break,
            },
        }
    }
    health.set_draining();
    shutdown.cancel();
    if let Some(state) = admin_state {
        state.stop_replays(Duration::from_secs(5)).await;
    }
    while tasks.join_next().await.is_some() {}
    if let Some(e) = failures.take() {
        if result.is_ok() {
            result = Err(e);
        }
    }
    servers_stop.cancel();
    while let Some(r) = servers.join_next().await {
        let r = r.context("server task failed").and_then(|r| r);
        if r.is_err() && result.is_ok() {
            result = r;
        }
    }
    tracing::info!("sluice stopped");
    result
}

async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: CancellationToken,
    what: &'static str,
) -> anyhow::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context(what)
}
