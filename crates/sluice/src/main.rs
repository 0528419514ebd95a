//! The `sluice` binary: every role, migrations, and (later) the operator CLI.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod config;
mod roles;
mod telemetry;

use telemetry::LogFormat;

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
    /// Run every role in one process: ingest, relay and workers.
    Serve(roles::ServeArgs),
    /// Run the ingest HTTP API alone.
    Ingest(ListenArgs),
    /// Run the outbox relay alone (health and metrics on --listen).
    Relay(ListenArgs),
    /// Run the worker pools alone (health and metrics on --listen).
    Worker(WorkerArgs),
    /// Apply store migrations and exit.
    Migrate,
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (config, source) = config::load(cli.config.as_deref())?;
    tracing::debug!(source = %source, "configuration loaded");
    match cli.command {
        Command::Serve(args) => roles::serve(config, args).await,
        Command::Ingest(args) => {
            roles::run_roles(config, roles::Roles::INGEST, args.listen, vec![]).await
        }
        Command::Relay(args) => {
            roles::run_roles(config, roles::Roles::RELAY, args.listen, vec![]).await
        }
        Command::Worker(args) => {
            roles::run_roles(
                config,
                roles::Roles::WORKER,
                args.listen.listen,
                args.queues,
            )
            .await
        }
        Command::Migrate => {
            sluice_store::migrate(&config.store.url).await?;
            tracing::info!(store = %roles::redact(&config.store.url), "migrations applied");
            Ok(())
        }
    }
}
