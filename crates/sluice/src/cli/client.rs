//! A small client of the admin API: bearer token, JSON in and out, and
//! server problems (RFC 9457) turned into readable errors.

use std::time::Duration;

use anyhow::{anyhow, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::settings::Target;

pub struct AdminClient {
    http: reqwest::Client,
    target: Target,
}

impl AdminClient {
    pub fn new(target: Target) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot build the http client")?;
        Ok(Self { http, target })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None, None)
            .await
            .map(|(_, v)| v)
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::DELETE, path, None, None)
            .await
            .map(|(_, v)| v)
    }

    /// A POST with an optional JSON body and `Idempotency-Key`.
    pub async fn post(
        &self,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send(Method::POST, path, body, idempotency_key).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.target.url);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(&self.target.token)
            .header("sluice-actor", actor());
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the admin API at {}: {e}", self.target.url))?;
        let status = resp.status();
        let text = resp.text().await.context("cannot read the response")?;
        if status.is_success() {
            let v = serde_json::from_str(&text).with_context(|| {
                format!("the admin API answered {status} with a body that is not JSON")
            })?;
            return Ok((status, v));
        }
        Err(problem(status, &text))
    }
}

/// Who acts, for the server's audit log: `$USER` when set.
fn actor() -> String {
    std::env::var("SLUICE_ACTOR")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .and_then(|a| sluice_api::admin::sanitize_actor(&a))
        .map_or_else(|| "cli".to_string(), |a| format!("cli:{a}"))
}

/// The problem's title and detail, or the status alone.
fn problem(status: StatusCode, body: &str) -> anyhow::Error {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let title = v["title"]
        .as_str()
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"));
    let mut msg = match v["detail"].as_str() {
        Some(d) if !d.is_empty() => format!("{title}: {d} (HTTP {})", status.as_u16()),
        _ => format!("{title} (HTTP {})", status.as_u16()),
    };
    if status == StatusCode::UNAUTHORIZED {
        msg.push_str("; check --token, SLUICE_ADMIN__TOKEN or <data_dir>/admin-token");
    }
    anyhow!(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_well() {
        let e = problem(
            StatusCode::CONFLICT,
            r#"{"title":"Replay refused","detail":"job x was already replayed 3 time(s)"}"#,
        );
        assert_eq!(
            e.to_string(),
            "Replay refused: job x was already replayed 3 time(s) (HTTP 409)"
        );
        let e = problem(StatusCode::BAD_GATEWAY, "<html>");
        assert_eq!(e.to_string(), "Bad Gateway (HTTP 502)");
        assert!(problem(StatusCode::UNAUTHORIZED, "{}")
            .to_string()
            .contains("--token"));
    }
}
