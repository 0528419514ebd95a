//! The `sluice` binary: every role, migrations, and the operators' CLI over
//! the admin API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod admin_token;
mod cli;
mod config;
mod otel;
mod roles;
mod telemetry;

use telemetry::LogFormat;

/// mimalloc: the request path allocates per request (HTTP, JSON); measured
/// 2-8% less CPU per ingest request than glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sluice: post jobs over HTTP, get 202 once they are durable, and let sluice
/// deliver them to a slow or flaky downstream with retries and dead letters.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (default: ./sluice.toml when present).
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SLUICE_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role in one process: ingest, relay, workers and admin.
    Serve(roles::Listen),
    /// Run the ingest HTTP API alone.
    Ingest(ListenArgs),
    /// Run the outbox relay alone (health and metrics on --listen).
    Relay(ListenArgs),
    /// Run the worker pools alone (health and metrics on --listen).
    Worker(WorkerArgs),
    /// Run the admin API alone (on --admin-listen, with health and metrics).
    Admin(AdminArgs),
    /// Apply store migrations and exit.
    Migrate,
    /// Show every queue's counts, pause state and concurrency; pause or
    /// resume one (over the admin API).
    Queues(cli::QueuesArgs),
    /// Dead letters: list, show, replay, delete (over the admin API).
    Dlq(cli::DlqArgs),
    /// Replays started by `dlq replay`: their progress (over the admin API).
    Replay(cli::ReplayArgs),
}

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Admin API listen address (overrides http.admin_listen).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Listen address (overrides http.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    listen: ListenArgs,
    /// Only these queues (default: all configured).
    #[arg(long = "queue")]
    queues: Vec<String>,
}

/// The runtime's worker threads from `TOKIO_WORKER_THREADS`, checked here
/// (tokio itself panics on `0` or a non-number; surrounding whitespace is
/// allowed here); `None` when it is unset, which means one per CPU.
fn worker_threads() -> Result<Option<usize>, String> {
    let Some(raw) = std::env::var_os("TOKIO_WORKER_THREADS") else {
        return Ok(None);
    };
    raw.to_str()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| format!("TOKIO_WORKER_THREADS must be a positive whole number (or unset: one per CPU), not {raw:?}"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let is_client = matches!(
        cli.command,
        Command::Queues(_) | Command::Dlq(_) | Command::Replay(_)
    );
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match worker_threads() {
        Ok(Some(n)) => {
            builder.worker_threads(n);
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The trace exporter runs on the runtime: build it inside.
    let tracing = if is_client {
        None
    } else {
        let _in_runtime = rt.enter();
        match otel::init(cli.command.role()) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
    };
    // Client commands keep stdout for their output and log warnings only.
    telemetry::init_logging(
        cli.log_format,
        is_client,
        tracing.as_ref().map(|t| &t.provider),
    );
    if tracing.as_ref().is_some_and(otel::Tracing::exporting) {
        tracing::info!(role = cli.command.role(), "exporting traces over OTLP");
    }
    let result = rt.block_on(run(cli));
    // Spans still batched are exported before exit (also after SIGTERM's drain).
    if let Some(t) = tracing {
        t.shutdown();
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if !is_client {
                tracing::error!("{e:#}");
            }
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

impl Command {
    /// The role a process reports in its traces (`service.name` is `sluice`).
    fn role(&self) -> &'static str {
        match self {
            Command::Serve(_) => "serve",
            Command::Ingest(_) => "ingest",
            Command::Relay(_) => "relay",
            Command::Worker(_) => "worker",
            Command::Admin(_) => "admin",
            Command::Migrate => "migrate",
            Command::Queues(_) | Command::Dlq(_) | Command::Replay(_) => "cli",
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config_path = cli.config.as_deref();
    let command = match cli.command {
        Command::Queues(a) => return cli::queues(config_path, a).await,
        Command::Dlq(a) => return cli::dlq(config_path, a).await,
        Command::Replay(a) => return cli::replay(config_path, a).await,
        other => other,
    };
    let (config, source) = config::load(config_path)?;
    tracing::debug!(source = %source, "configuration loaded");
    let listen = |listen: Option<SocketAddr>| roles::Listen {
        listen,
        admin_listen: None,
    };
    let (which, listen, only_queues) = match command {
        Command::Serve(l) => (roles::Roles::ALL, l, vec![]),
        Command::Ingest(a) => (roles::Roles::INGEST, listen(a.listen), vec![]),
        Command::Relay(a) => (roles::Roles::RELAY, listen(a.listen), vec![]),
        Command::Worker(a) => (roles::Roles::WORKER, listen(a.listen.listen), a.queues),
        Command::Admin(a) => {
            let l = roles::Listen {
                listen: None,
                admin_listen: a.admin_listen,
            };
            (roles::Roles::ADMIN, l, vec![])
        }
        Command::Migrate => {
            sluice_store::migrate(&config.store.url).await?;
            tracing::info!(store = %roles::redact(&config.store.url), "migrations applied");
            return Ok(());
        }
        Command::Queues(_) | Command::Dlq(_) | Command::Replay(_) => return Ok(()),
    };
    // the roles' schema files: a bad one is this file's error, found before
    // anything is opened or bound
    let schemas = config
        .load_schemas()
        .with_context(|| format!("config error in {source}"))?;
    roles::run_roles(config, schemas, which, listen, only_queues).await
}
