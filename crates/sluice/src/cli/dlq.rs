//! `sluice dlq list|show|delete`.

use clap::Args;
use serde_json::Value;

use super::client::AdminClient;
use super::output::{cell, pretty, table, truncate};
use super::segment;

/// Widest `last_error` shown in the list table.
const ERROR_WIDTH: usize = 60;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only dead letters whose last error contains this (case-insensitive).
    #[arg(long)]
    error_contains: Option<String>,
    /// Page size (1 to 1000; default 50).
    #[arg(long)]
    limit: Option<u32>,
    /// Continue after this cursor (printed under the previous page).
    #[arg(long)]
    cursor: Option<String>,
}

pub async fn list(client: &AdminClient, a: ListArgs, json: bool) -> anyhow::Result<()> {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(v) = &a.queue {
        q.append_pair("queue", v);
    }
    if let Some(v) = &a.error_contains {
        q.append_pair("error_contains", v);
    }
    if let Some(v) = a.limit {
        q.append_pair("limit", &v.to_string());
    }
    if let Some(v) = &a.cursor {
        q.append_pair("cursor", v);
    }
    let q = q.finish();
    let path = if q.is_empty() {
        "/admin/v1/dead-letters".to_string()
    } else {
        format!("/admin/v1/dead-letters?{q}")
    };
    let v = client.get(&path).await?;
    if json {
        println!("{}", pretty(&v));
        return Ok(());
    }
    let items = v["dead_letters"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    println!("{}", dead_letter_table(items));
    match v["next_cursor"].as_str() {
        Some(c) => println!("next cursor: {c}"),
        None => println!("({} dead letter(s), last page)", items.len()),
    }
    Ok(())
}

/// The list table of dead letters.
pub fn dead_letter_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            vec![
                cell(&d["id"]),
                cell(&d["queue"]),
                cell(&d["attempts"]),
                cell(&d["died_at"]),
                cell(&d["replay_count"]),
                truncate(&cell(&d["last_error"]), ERROR_WIDTH),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "QUEUE",
            "ATTEMPTS",
            "DIED AT",
            "REPLAYS",
            "LAST ERROR",
        ],
        &rows,
    )
}

pub async fn show(client: &AdminClient, id: &str, json: bool) -> anyhow::Result<()> {
    let d = client
        .get(&format!("/admin/v1/dead-letters/{}", segment(id)))
        .await?;
    if json {
        println!("{}", pretty(&d));
        return Ok(());
    }
    for key in [
        "id",
        "queue",
        "key",
        "attempts",
        "max_attempts",
        "replay_count",
        "created_at",
        "died_at",
        "last_error",
    ] {
        println!("{:<13} {}", format!("{key}:"), cell(&d[key]));
    }
    println!("payload:\n{}", pretty(&d["payload"]));
    let rows: Vec<Vec<String>> = d["history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|h| {
            vec![
                cell(&h["replay_count"]),
                cell(&h["attempt"]),
                cell(&h["started_at"]),
                cell(&h["finished_at"]),
                cell(&h["outcome"]),
                cell(&h["error"]),
            ]
        })
        .collect();
    println!("history:");
    println!(
        "{}",
        table(
            &[
                "RUN",
                "ATTEMPT",
                "STARTED AT",
                "FINISHED AT",
                "OUTCOME",
                "ERROR"
            ],
            &rows
        )
    );
    Ok(())
}

pub async fn delete(client: &AdminClient, id: &str, json: bool) -> anyhow::Result<()> {
    let v = client
        .delete(&format!("/admin/v1/dead-letters/{}", segment(id)))
        .await?;
    if json {
        println!("{}", pretty(&v));
    } else {
        println!("deleted dead letter {id}");
    }
    Ok(())
}
