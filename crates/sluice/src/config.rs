//! The configuration contract: one TOML file, overridden by
//! `SLUICE_<SECTION>__<KEY>` environment variables. A config error names the
//! file, the key and what is wrong.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use sluice_core::QueueConfig;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where generated files live (admin token, embedded broker).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub broker: BrokerSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub relay: RelaySection,
    #[serde(default)]
    pub worker: WorkerSection,
    #[serde(default)]
    pub retention: RetentionSection,
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./sluice-data")
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    pub url: String,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: "sqlite://./sluice-data/sluice.db".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    pub url: String,
}

impl Default for BrokerSection {
    fn default() -> Self {
        Self {
            url: "embedded://".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub listen: String,
    pub admin_listen: String,
    pub max_body_bytes: usize,
    /// How often the ingest process refreshes the autoscaling gauges (and
    /// the figures of `GET /v1/queues/{queue}/scaling`), in milliseconds.
    pub scaling_refresh_ms: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:8081".into(),
            max_body_bytes: 1 << 20,
            scaling_refresh_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// The admin bearer token; unset: generated into `<data_dir>/admin-token`.
    pub token: Option<String>,
    /// How many times one job may be replayed from the dead letters.
    pub max_replays: u32,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            token: None,
            max_replays: sluice_api::admin::DEFAULT_MAX_REPLAYS,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySection {
    pub batch_size: usize,
    pub lease_ms: u64,
    pub poll_interval_ms: u64,
    /// Jobs published this long ago, never started, while the broker has
    /// nothing left for the queue's workers, are published again (the broker
    /// lost them); 0 turns this off.
    pub redrive_after_ms: u64,
}

impl Default for RelaySection {
    fn default() -> Self {
        let d = sluice_relay::RelayConfig::default();
        Self {
            batch_size: d.batch_size,
            lease_ms: d.lease.as_millis() as u64,
            poll_interval_ms: d.poll_interval.as_millis() as u64,
            redrive_after_ms: sluice_relay::RedriveConfig::default().after.as_millis() as u64,
        }
    }
}

impl RelaySection {
    pub fn relay_config(&self) -> sluice_relay::RelayConfig {
        sluice_relay::RelayConfig {
            batch_size: self.batch_size,
            lease: Duration::from_millis(self.lease_ms),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            ..Default::default()
        }
    }

    pub fn redrive_config(&self) -> sluice_relay::RedriveConfig {
        sluice_relay::RedriveConfig {
            after: Duration::from_millis(self.redrive_after_ms),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSection {
    /// Added to the handler timeout to make the job lease.
    pub lease_margin_ms: u64,
    /// On SIGTERM, how long in-flight jobs may take to finish.
    pub drain_grace_ms: u64,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self {
            lease_margin_ms: 5_000,
            drain_grace_ms: 30_000,
        }
    }
}

impl WorkerSection {
    pub fn options(&self) -> sluice_worker::WorkerOptions {
        sluice_worker::WorkerOptions {
            lease_margin: Duration::from_millis(self.lease_margin_ms),
            drain_grace: Duration::from_millis(self.drain_grace_ms),
            ..Default::default()
        }
    }
}

/// How long finished work is kept (relay processes prune it); 0 keeps it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Succeeded jobs (and their history), from their success.
    pub succeeded_ms: u64,
    /// Idempotency keys, from the request that stored them.
    pub idempotency_keys_ms: u64,
    /// How often a relay prunes.
    pub interval_ms: u64,
}

impl Default for RetentionSection {
    fn default() -> Self {
        let d = sluice_relay::RetentionConfig::default();
        Self {
            succeeded_ms: d.succeeded.as_millis() as u64,
            idempotency_keys_ms: d.idempotency_keys.as_millis() as u64,
            interval_ms: d.interval.as_millis() as u64,
        }
    }
}

impl RetentionSection {
    pub fn config(&self) -> sluice_relay::RetentionConfig {
        sluice_relay::RetentionConfig {
            succeeded: Duration::from_millis(self.succeeded_ms),
            idempotency_keys: Duration::from_millis(self.idempotency_keys_ms),
            interval: Duration::from_millis(self.interval_ms),
        }
    }
}

/// Highest accepted `admin.max_replays`.
const MAX_REPLAYS_LIMIT: u32 = 1000;

/// Top-level keys environment variables may set.
const SECTIONS: &[&str] = &[
    "data_dir",
    "store",
    "broker",
    "http",
    "admin",
    "relay",
    "worker",
    "retention",
];

/// Loads `path` (when given, it must exist; otherwise `./sluice.toml` when
/// present), then the environment; validates; fills in the default queue.
pub fn load(path: Option<&Path>) -> anyhow::Result<(Config, String)> {
    let (file, source) = match path {
        Some(p) => {
            if !p.is_file() {
                bail!("config error: file {} does not exist", p.display());
            }
            (Some(p.to_path_buf()), p.display().to_string())
        }
        None if Path::new("sluice.toml").is_file() => {
            (Some(PathBuf::from("sluice.toml")), "sluice.toml".into())
        }
        None => (None, "defaults and environment".into()),
    };
    // `[[queues]]` is a list of tables, which no variable can address: say
    // so rather than ignore one
    if let Some(k) = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .find(|k| {
            let k = k.to_ascii_uppercase();
            k == "SLUICE_QUEUES" || k.starts_with("SLUICE_QUEUES__")
        })
    {
        bail!(
            "config error: environment variable {k}: queues are set in the config file \
             (`[[queues]]`), not from the environment"
        );
    }
    let mut fig = Figment::new();
    if let Some(f) = &file {
        fig = fig.merge(Toml::file(f));
    }
    // keys arrive as written (upper case); only configuration sections count,
    // so SLUICE_TEST_* and the like are ignored
    let env = Env::prefixed("SLUICE_").split("__").filter(|k| {
        let k = k.as_str().to_ascii_lowercase();
        k != "admin.token"
            && SECTIONS
                .iter()
                .any(|s| k == *s || k.starts_with(&format!("{s}.")))
    });
    fig = fig.merge(env);
    let mut config: Config = fig.extract().map_err(|e| {
        let msgs: Vec<String> = e.into_iter().map(|e| describe(&e)).collect();
        anyhow::anyhow!("config error in {source}: {}", msgs.join("; "))
    })?;
    if let Some(token) = admin_token_from_env() {
        config.admin.token = Some(token);
    }
    if config.queues.is_empty() {
        config.queues.push(QueueConfig::named("default"));
    }
    config
        .validate()
        .with_context(|| format!("config error in {source}"))?;
    Ok((config, source))
}

/// The variable that sets `admin.token`.
const ADMIN_TOKEN_VAR: &str = "SLUICE_ADMIN__TOKEN";

/// `SLUICE_ADMIN__TOKEN` exactly as set. It bypasses figment, which reads an
/// environment value as TOML: an all-digit token would arrive as a number
/// (refused as "not a string", with its value in the error, or stripped of
/// leading zeros).
pub(crate) fn admin_token_from_env() -> Option<String> {
    std::env::vars_os().find_map(|(k, v)| {
        let k = k.into_string().ok()?;
        if k.eq_ignore_ascii_case(ADMIN_TOKEN_VAR) {
            v.into_string().ok()
        } else {
            None
        }
    })
}

/// One extraction error, naming its key and where the value came from; the
/// value of a secret key is never shown.
pub(crate) fn describe(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let origin = e
        .metadata
        .as_ref()
        .map(|m| m.name.to_string())
        .unwrap_or_default();
    let what = if key == "admin.token" {
        "must be a string".to_string()
    } else {
        e.kind.to_string()
    };
    match (key.is_empty(), origin.is_empty()) {
        (true, _) => what,
        (false, true) => format!("key `{key}`: {what}"),
        (false, false) => format!("key `{key}` ({origin}): {what}"),
    }
}

impl Config {
    /// Checks every value; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut names = HashSet::new();
        for (i, q) in self.queues.iter().enumerate() {
            if let Err((key, e)) = q.validate() {
                bail!("key `queues[{i}].{key}` (queue {:?}): {e}", q.name);
            }
            if !names.insert(q.name.as_str()) {
                bail!(
                    "key `queues[{i}].name`: queue {:?} is defined twice",
                    q.name
                );
            }
        }
        if self.http.max_body_bytes < 1024 || self.http.max_body_bytes > 64 << 20 {
            bail!(
                "key `http.max_body_bytes`: must be between 1024 and {}",
                64 << 20
            );
        }
        for (key, addr) in [
            ("http.listen", &self.http.listen),
            ("http.admin_listen", &self.http.admin_listen),
        ] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                bail!("key `{key}`: {addr:?} is not an address like 127.0.0.1:8080");
            }
        }
        if let Some(t) = &self.admin.token {
            if t.len() < 16 {
                bail!("key `admin.token`: must be at least 16 characters");
            }
        }
        if self.admin.max_replays > MAX_REPLAYS_LIMIT {
            bail!("key `admin.max_replays`: must be at most {MAX_REPLAYS_LIMIT}");
        }
        self.relay
            .relay_config()
            .validate()
            .map_err(|e| anyhow::anyhow!("key `relay`: {e}"))?;
        if self.retention.interval_ms == 0 {
            bail!("key `retention.interval_ms`: must be at least 1");
        }
        Ok(())
    }

    /// Reads every queue's JSON Schema file (relative paths are relative to
    /// the working directory) and checks that it is a valid schema; an error
    /// names the queue's key and the file.
    pub fn load_schemas(&self) -> anyhow::Result<Vec<Option<serde_json::Value>>> {
        self.queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let Some(path) = &q.schema else {
                    return Ok(None);
                };
                let key = format!("key `queues[{i}].schema`");
                let text =
                    std::fs::read(path).with_context(|| format!("{key}: cannot read {path}"))?;
                let v: serde_json::Value = serde_json::from_slice(&text)
                    .with_context(|| format!("{key}: {path} is not JSON"))?;
                if let Err(e) = jsonschema::validator_for(&v) {
                    bail!("{key}: {path} is not a valid JSON Schema: {e}");
                }
                Ok(Some(v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::HandlerConfig;

    fn with_file(body: &str) -> anyhow::Result<(Config, String)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sluice.toml");
        std::fs::write(&p, body).unwrap();
        load(Some(&p))
    }

    #[test]
    fn the_shipped_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/sluice.toml");
        let (config, _) = load(Some(&path)).unwrap();
        let emails = config.queues.iter().find(|q| q.name == "emails").unwrap();
        assert_eq!(emails.circuit.consecutive_failures, 10);
        assert_eq!(emails.circuit.cooldown_ms, 5000);
        assert_eq!(
            emails.rate_limit,
            Some(sluice_core::RateLimit {
                per_second: 50.0,
                burst: 10
            })
        );
    }

    #[test]
    fn a_bad_circuit_value_names_its_key() {
        let err =
            with_file("[[queues]]\nname = \"q\"\ncircuit = { failure_ratio = 2.0 }\n").unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("queues[0].circuit.failure_ratio"), "{err}");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let (c, _) = with_file("").unwrap();
        assert_eq!(c.store.url, "sqlite://./sluice-data/sluice.db");
        assert_eq!(c.broker.url, "embedded://");
        assert_eq!(c.queues.len(), 1);
        assert_eq!(c.queues[0].name, "default");
        assert_eq!(c.http.max_body_bytes, 1 << 20);
        assert_eq!(c.admin.max_replays, 3);
        assert_eq!(c.admin.token, None);
        assert_eq!(
            c.retention.config(),
            sluice_relay::RetentionConfig::default()
        );
    }

    #[test]
    fn retention_ages_parse_and_zero_interval_is_refused() {
        let (c, _) = with_file(
            "[retention]
succeeded_ms = 0
idempotency_keys_ms = 5000
",
        )
        .unwrap();
        let r = c.retention.config();
        assert_eq!(r.succeeded, Duration::ZERO);
        assert_eq!(r.idempotency_keys, Duration::from_secs(5));
        assert_eq!(r.interval, Duration::from_secs(60));
        let e = format!(
            "{:#}",
            with_file("[retention]\ninterval_ms = 0\n").unwrap_err()
        );
        assert!(e.contains("retention.interval_ms"), "{e}");
    }

    #[test]
    fn design_example_parses() {
        let (c, _) = with_file(
            r#"
[store]
url = "sqlite://./x.db"
[broker]
url = "embedded://"
[http]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:8081"
max_body_bytes = 1048576
[admin]
token = "change-me-change-me"
max_replays = 5
[[queues]]
name = "emails"
max_attempts = 5
backoff = { initial_ms = 200, max_ms = 60000, multiplier = 2.0, jitter = "full" }
concurrency = { min = 1, max = 32 }
handler = { type = "http", url = "http://127.0.0.1:9000/send", timeout_ms = 10000 }
"#,
        )
        .unwrap();
        assert_eq!(c.queues[0].name, "emails");
        assert_eq!(c.queues[0].concurrency.max, 32);
        assert_eq!(c.admin.max_replays, 5);
    }

    #[test]
    fn handler_types_parse() {
        let (c, _) = with_file(
            "[[queues]]\nname = \"a\"\nhandler = { type = \"noop\" }\n\
             [[queues]]\nname = \"b\"\nhandler = { type = \"log\" }\n",
        )
        .unwrap();
        assert_eq!(c.queues[0].handler, HandlerConfig::Noop);
        assert_eq!(c.queues[1].handler, HandlerConfig::Log);
        let e = format!(
            "{:#}",
            with_file("[[queues]]\nname = \"a\"\nhandler = { type = \"nop\" }\n").unwrap_err()
        );
        assert!(
            e.contains("queues.0.handler.type") && e.contains("noop"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = with_file("[store]\nurl = 5\n").unwrap_err().to_string();
        assert!(e.contains("sluice.toml") && e.contains("store.url"), "{e}");
        let e = with_file("[[queues]]\nname = \"q\"\nbackoff = { initial_ms = 10, max_ms = 1, multiplier = 2.0 }\n")
            .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("sluice.toml") && e.contains("queues[0].backoff"),
            "{e}"
        );
        let e = format!("{:#}", with_file("[htp]\nlisten = \"x\"\n").unwrap_err());
        assert!(e.contains("htp"), "{e}");
        let e = format!(
            "{:#}",
            with_file("[http]\nlisten = \"nope\"\n").unwrap_err()
        );
        assert!(e.contains("http.listen"), "{e}");
        let e = format!("{:#}", with_file("not toml [").unwrap_err());
        assert!(e.contains("sluice.toml"), "{e}");
    }
}
