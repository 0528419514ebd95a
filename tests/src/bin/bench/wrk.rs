//! HTTP load from `wrk` (Debian package `wrk`): a C load generator, so the
//! client's own CPU cost is close to pgbench's when both share the machine.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

/// What one `wrk` run reported.
#[derive(Debug)]
pub struct WrkRun {
    pub requests_per_sec: f64,
    /// Responses that were not 2xx/3xx.
    pub non_2xx: u64,
    pub p50: Duration,
    pub p99: Duration,
}

/// POSTs `body` (JSON) to `url` over `connections` keep-alive connections
/// from 2 threads for `secs` seconds.
pub fn post(
    dir: &Path,
    url: &str,
    body: &str,
    connections: usize,
    secs: u64,
) -> anyhow::Result<WrkRun> {
    let script = dir.join("post.lua");
    let body = body.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = \"{body}\"\n"
        ),
    )?;
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", &connections.to_string()])
        .args(["-d", &format!("{secs}s"), "--latency", "-s"])
        .arg(&script)
        .arg(url)
        .output()
        .context("run wrk (Debian package wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

fn parse(text: &str) -> anyhow::Result<WrkRun> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_sec = field("Requests/sec:").context("no Requests/sec")?.parse()?;
    let non_2xx = field("Non-2xx or 3xx responses:").map_or(Ok(0), str::parse)?;
    Ok(WrkRun {
        requests_per_sec,
        non_2xx,
        p50: duration(field("50%").context("no 50% latency")?)?,
        p99: duration(field("99%").context("no 99% latency")?)?,
    })
}

/// `812.00us`, `1.23ms`, `2.01s`.
fn duration(v: &str) -> anyhow::Result<Duration> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        bail!("latency without unit: {v}");
    };
    Ok(Duration::from_secs_f64(num.parse::<f64>()? * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_latency_output() {
        let text = "Running 10s test @ http://127.0.0.1:1/\n  2 threads and 64 connections\n  Latency Distribution\n     50%    3.20ms\n     75%    4.00ms\n     90%    5.00ms\n     99%  812.00us\n  100 requests in 10.00s, 1.00MB read\n  Non-2xx or 3xx responses: 7\nRequests/sec:   1234.56\nTransfer/sec:    100.00KB\n";
        let run = parse(text).unwrap();
        assert_eq!(run.requests_per_sec, 1234.56);
        assert_eq!(run.non_2xx, 7);
        assert_eq!(run.p50, Duration::from_micros(3200));
        assert_eq!(run.p99, Duration::from_micros(812));
    }
}
