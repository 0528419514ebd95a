//! `sluice queues`: per-queue counts, pause state and concurrency.

use serde_json::Value;

use super::client::AdminClient;
use super::output::{cell, pretty, table};
use super::segment;

pub async fn list(client: &AdminClient, json: bool) -> anyhow::Result<()> {
    let v = client.get("/admin/v1/queues").await?;
    if json {
        println!("{}", pretty(&v));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = v["queues"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|q| {
            vec![
                cell(&q["name"]),
                cell(&q["pending"]),
                cell(&q["published"]),
                cell(&q["retrying"]),
                cell(&q["dead"]),
                age(&q["oldest_pending_age_seconds"]),
                if q["paused"] == Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                format!(
                    "{}-{}",
                    cell(&q["concurrency"]["min"]),
                    cell(&q["concurrency"]["max"])
                ),
                cell(&q["circuit"]),
            ]
        })
        .collect();
    let header = [
        "QUEUE",
        "PENDING",
        "PUBLISHED",
        "RETRYING",
        "DEAD",
        "OLDEST PENDING",
        "PAUSED",
        "CONCURRENCY",
        "CIRCUIT",
    ];
    println!("{}", table(&header, &rows));
    Ok(())
}

pub async fn set_paused(
    client: &AdminClient,
    queue: &str,
    pause: bool,
    json: bool,
) -> anyhow::Result<()> {
    let action = if pause { "pause" } else { "resume" };
    let path = format!("/admin/v1/queues/{}/{action}", segment(queue));
    let (_, v) = client.post(&path, None, None).await?;
    if json {
        println!("{}", pretty(&v));
    } else if pause {
        println!("queue {queue} paused: it accepts jobs, its workers start none until resumed");
    } else {
        println!("queue {queue} resumed");
    }
    Ok(())
}

/// Seconds as `12s`, `3m04s`, `2h05m`; `-` for none.
fn age(v: &Value) -> String {
    let Some(s) = v.as_f64() else {
        return "-".into();
    };
    let s = s.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn ages() {
        assert_eq!(super::age(&json!(null)), "-");
        assert_eq!(super::age(&json!(4.2)), "4s");
        assert_eq!(super::age(&json!(184)), "3m04s");
        assert_eq!(super::age(&json!(7500)), "2h05m");
    }
}
