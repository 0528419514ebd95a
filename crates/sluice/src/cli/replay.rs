//! `sluice dlq replay` (one dead letter, or many by filter with a preview,
//! a rate and a progress bar) and `sluice replay status`.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use super::client::AdminClient;
use super::dlq::dead_letter_table;
use super::output::{cell, pretty};
use super::segment;

/// How often a running replay's progress is polled.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The dead letter to replay; omit to replay by filter.
    id: Option<String>,
    /// Only dead letters of this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only these job ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    ids: Vec<String>,
    /// Only dead letters whose last error contains this (case-insensitive).
    #[arg(long)]
    error_contains: Option<String>,
    /// Replay at most this many.
    #[arg(long)]
    limit: Option<u64>,
    /// Jobs per second (default: as fast as the store allows).
    #[arg(long)]
    rate: Option<f64>,
    /// Show how many match and a sample; replay nothing.
    #[arg(long)]
    dry_run: bool,
    /// Idempotency-Key: the same request repeated with it replays nothing twice.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Start a bulk replay and return without waiting for it.
    #[arg(long)]
    no_wait: bool,
}

impl ReplayArgs {
    fn has_filter(&self) -> bool {
        self.queue.is_some()
            || !self.ids.is_empty()
            || self.error_contains.is_some()
            || self.limit.is_some()
            || self.rate.is_some()
            || self.dry_run
    }

    fn body(&self) -> Value {
        let mut m = Map::new();
        if let Some(q) = &self.queue {
            m.insert("queue".into(), json!(q));
        }
        if !self.ids.is_empty() {
            m.insert("ids".into(), json!(self.ids));
        }
        if let Some(e) = &self.error_contains {
            m.insert("error_contains".into(), json!(e));
        }
        if let Some(l) = self.limit {
            m.insert("limit".into(), json!(l));
        }
        if let Some(r) = self.rate {
            m.insert("rate_per_second".into(), json!(r));
        }
        if self.dry_run {
            m.insert("dry_run".into(), json!(true));
        }
        Value::Object(m)
    }
}

pub async fn replay(client: &AdminClient, a: ReplayArgs, json: bool) -> anyhow::Result<()> {
    let key = a.idempotency_key.as_deref();
    if let Some(id) = &a.id {
        if a.has_filter() {
            bail!("give a dead letter id or filters (--queue, --ids, ...), not both");
        }
        let path = format!("/admin/v1/dead-letters/{}/replay", segment(id));
        let (_, v) = client.post(&path, None, key).await?;
        if json {
            println!("{}", pretty(&v));
        } else {
            println!(
                "replayed {} (replay {}): back in the outbox, status {}",
                cell(&v["id"]),
                cell(&v["replay_count"]),
                cell(&v["status"])
            );
        }
        return Ok(());
    }
    let (_, v) = client
        .post("/admin/v1/dead-letters/replay", Some(&a.body()), key)
        .await?;
    if a.dry_run {
        if json {
            println!("{}", pretty(&v));
        } else {
            let sample = v["sample"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            println!("{}", dead_letter_table(sample));
            println!(
                "dry run: {} dead letter(s) match; nothing was replayed",
                cell(&v["matched"])
            );
        }
        return Ok(());
    }
    let id = v["replay_id"].as_str().unwrap_or_default().to_string();
    if a.no_wait {
        if json {
            println!("{}", pretty(&v));
        } else {
            println!(
                "replay {id} started: {} dead letter(s) matched",
                cell(&v["matched"])
            );
            println!("follow it with: sluice replay status {id}");
        }
        return Ok(());
    }
    if !json {
        eprintln!(
            "replay {id}: {} dead letter(s) matched",
            cell(&v["matched"])
        );
    }
    let last = follow(client, &id, !json).await?;
    finish(&last, json)
}

/// Polls the replay until it is no longer `running`, showing progress on
/// stderr (a bar on a terminal, otherwise a line per change).
async fn follow(client: &AdminClient, id: &str, show: bool) -> anyhow::Result<Value> {
    let path = format!("/admin/v1/replays/{}", segment(id));
    let tty = std::io::stderr().is_terminal();
    let bar = (show && tty).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed_precise}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut shown = None;
    loop {
        let r = client.get(&path).await?;
        let (pos, matched) = (
            r["position"].as_u64().unwrap_or(0),
            r["matched"].as_u64().unwrap_or(0),
        );
        let msg = format!(
            "replayed {}, skipped {}",
            cell(&r["replayed"]),
            cell(&r["skipped"])
        );
        if let Some(bar) = &bar {
            bar.set_length(matched);
            bar.set_position(pos);
            bar.set_message(msg);
        } else if show && shown != Some(pos) {
            eprintln!("progress: {pos}/{matched} ({msg})");
            shown = Some(pos);
        }
        if r["status"] != "running" {
            if let Some(bar) = bar {
                bar.finish();
            }
            return Ok(r);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn finish(r: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", pretty(r));
    } else {
        println!(
            "replay {} {}: matched {}, replayed {}, skipped {}",
            cell(&r["id"]),
            cell(&r["status"]),
            cell(&r["matched"]),
            cell(&r["replayed"]),
            cell(&r["skipped"])
        );
    }
    if r["status"] == "completed" {
        Ok(())
    } else {
        bail!(
            "replay {} ended with status {}",
            cell(&r["id"]),
            cell(&r["status"])
        )
    }
}

/// `sluice replay status ID`.
pub async fn status(client: &AdminClient, id: &str, json: bool) -> anyhow::Result<()> {
    let r = client
        .get(&format!("/admin/v1/replays/{}", segment(id)))
        .await?;
    if json {
        println!("{}", pretty(&r));
        return Ok(());
    }
    for key in [
        "id",
        "status",
        "matched",
        "replayed",
        "skipped",
        "position",
        "rate_per_second",
        "created_at",
        "updated_at",
        "finished_at",
    ] {
        println!("{:<16} {}", format!("{key}:"), cell(&r[key]));
    }
    Ok(())
}
