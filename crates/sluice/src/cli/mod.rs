//! The operators' CLI over the admin API: `sluice queues`, `sluice dlq
//! list|show|replay|delete` and `sluice replay status`. Tables for people,
//! `--json` for scripts; server errors are shown as the problem's title and
//! detail, with a non-zero exit.

use std::path::Path;

use clap::{Args, Subcommand};

mod client;
mod dlq;
mod output;
mod queues;
mod replay;
mod settings;

use client::AdminClient;

/// How to reach the admin API, and the output format.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Admin API base URL (default: http://<http.admin_listen>).
    #[arg(long, global = true, env = "SLUICE_ADMIN_URL")]
    admin_url: Option<String>,
    /// Admin bearer token (default: admin.token, else <data_dir>/admin-token).
    #[arg(
        long,
        global = true,
        env = "SLUICE_ADMIN__TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct QueuesArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    action: Option<QueuesAction>,
}

#[derive(Debug, Subcommand)]
enum QueuesAction {
    /// Pause a queue: it still accepts jobs, its workers start none.
    Pause { queue: String },
    /// Resume a paused queue.
    Resume { queue: String },
}

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead letters, oldest first, a page at a time.
    List(dlq::ListArgs),
    /// Show one dead letter with every attempt's error.
    Show { id: String },
    /// Replay one dead letter, or many by filter (with a rate and a preview).
    Replay(replay::ReplayArgs),
    /// Delete a dead letter for good.
    Delete { id: String },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: ReplayCommand,
}

#[derive(Debug, Subcommand)]
enum ReplayCommand {
    /// Show a replay's progress.
    Status { id: String },
}

fn connect(config: Option<&Path>, conn: &Conn) -> anyhow::Result<AdminClient> {
    let target = settings::resolve(config, conn.admin_url.clone(), conn.token.clone())?;
    AdminClient::new(target)
}

/// `sluice queues [pause|resume QUEUE]`.
pub async fn queues(config: Option<&Path>, args: QueuesArgs) -> anyhow::Result<()> {
    let client = connect(config, &args.conn)?;
    match args.action {
        None => queues::list(&client, args.conn.json).await,
        Some(QueuesAction::Pause { queue }) => {
            queues::set_paused(&client, &queue, true, args.conn.json).await
        }
        Some(QueuesAction::Resume { queue }) => {
            queues::set_paused(&client, &queue, false, args.conn.json).await
        }
    }
}

/// `sluice dlq ...`.
pub async fn dlq(config: Option<&Path>, args: DlqArgs) -> anyhow::Result<()> {
    let client = connect(config, &args.conn)?;
    let json = args.conn.json;
    match args.command {
        DlqCommand::List(a) => dlq::list(&client, a, json).await,
        DlqCommand::Show { id } => dlq::show(&client, &id, json).await,
        DlqCommand::Delete { id } => dlq::delete(&client, &id, json).await,
        DlqCommand::Replay(a) => replay::replay(&client, a, json).await,
    }
}

/// `sluice replay status ID`.
pub async fn replay(config: Option<&Path>, args: ReplayArgs) -> anyhow::Result<()> {
    let client = connect(config, &args.conn)?;
    match args.command {
        ReplayCommand::Status { id } => replay::status(&client, &id, args.conn.json).await,
    }
}

/// A path segment from user input, percent-encoded.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
