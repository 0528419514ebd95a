use serde::{Deserialize, Serialize};

use crate::{CircuitConfig, CoreError, RetryPolicy};

/// Largest `max_attempts` a queue or job may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;

/// One queue's configuration, shared by every role (the `[[queues]]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub backoff: RetryPolicy,
    #[serde(default)]
    pub concurrency: Concurrency,
    /// Path of a JSON Schema the payloads must satisfy.
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub handler: HandlerConfig,
    /// Broker topic / queue name; default `sluice.<name>`.
    #[serde(default)]
    pub topic: Option<String>,
    /// The circuit breaker guarding the queue's downstream.
    #[serde(default)]
    pub circuit: CircuitConfig,
    /// At most this many job starts per second, per worker process.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket: `per_second` tokens a second, holding at most `burst`;
/// every job start takes one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: f64,
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    1
}

fn default_max_attempts() -> u32 {
    5
}

/// Worker pool size bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    pub min: u32,
    pub max: u32,
}

impl Default for Concurrency {
    fn default() -> Self {
        Self { min: 1, max: 16 }
    }
}

/// What a worker does with a job of the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum HandlerConfig {
    /// POST the payload to `url`.
    Http {
        url: String,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
    /// Log the job and succeed.
    #[default]
    Log,
    /// Succeed at once, logging nothing: a handler that costs nothing, for
    /// measuring sluice itself.
    Noop,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl QueueConfig {
    /// The default queue of a configuration-less `sluice serve`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            max_attempts: default_max_attempts(),
            backoff: RetryPolicy::default(),
            concurrency: Concurrency::default(),
            schema: None,
            handler: HandlerConfig::Log,
            topic: None,
            circuit: CircuitConfig::default(),
            rate_limit: None,
        }
    }

    /// The broker topic of this queue.
    pub fn topic(&self) -> String {
        self.topic
            .clone()
            .unwrap_or_else(|| format!("sluice.{}", self.name))
    }

    /// The consumer group (Kafka) or consumer name (RabbitMQ) of the
    /// queue's workers.
    pub fn worker_group(&self) -> String {
        format!("sluice-workers.{}", self.name)
    }

    /// The topic dead letters are also published to.
    pub fn dlq_topic(&self) -> String {
        format!("{}.dlq", self.topic())
    }

    /// Checks every value; the error names the key (relative to the queue).
    pub fn validate(&self) -> Result<(), (String, CoreError)> {
        let err = |key: &str, m: String| Err((key.to_string(), CoreError::InvalidValue(m)));
        if !valid_queue_name(&self.name) {
            return err(
                "name",
                format!(
                    "{:?} is not a queue name (1-128 of A-Z a-z 0-9 . _ -, starting alphanumeric)",
                    self.name
                ),
            );
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return err(
                "max_attempts",
                format!(
                    "must be between 1 and {MAX_ATTEMPTS_LIMIT}, got {}",
                    self.max_attempts
                ),
            );
        }
        self.backoff
            .validate()
            .map_err(|e| ("backoff".to_string(), e))?;
        let c = self.concurrency;
        if c.min == 0 || c.max < c.min || c.max > 10_000 {
            return err(
                "concurrency",
                format!(
                    "need 1 <= min <= max <= 10000, got min={} max={}",
                    c.min, c.max
                ),
            );
        }
        self.circuit
            .validate()
            .map_err(|(k, e)| (format!("circuit.{k}"), e))?;
        if let Some(r) = self.rate_limit {
            if !(r.per_second > 0.0 && r.per_second <= 1_000_000.0) {
                return err(
                    "rate_limit.per_second",
                    format!("must be in (0, 1000000], got {}", r.per_second),
                );
            }
            if r.burst == 0 || r.burst > 100_000 {
                return err(
                    "rate_limit.burst",
                    format!("must be between 1 and 100000, got {}", r.burst),
                );
            }
        }
        if let HandlerConfig::Http { url, timeout_ms } = &self.handler {
            // the worker's HTTP client takes any URL this accepts
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
                Ok(_) => return err("handler.url", "must be an http:// or https:// URL".into()),
                Err(e) => return err("handler.url", format!("not a URL: {e}")),
            }
            if *timeout_ms == 0 || *timeout_ms > 3_600_000 {
                return err(
                    "handler.timeout_ms",
                    format!("must be between 1 and 3600000, got {timeout_ms}"),
                );
            }
        }
        Ok(())
    }
}

/// Whether `s` may name a queue: 1-128 characters of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit.
pub fn valid_queue_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        QueueConfig::named("default").validate().unwrap();
        assert_eq!(QueueConfig::named("q").topic(), "sluice.q");
        assert_eq!(QueueConfig::named("q").dlq_topic(), "sluice.q.dlq");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut q = QueueConfig::named("q");
        q.concurrency = Concurrency { min: 4, max: 2 };
        assert_eq!(q.validate().unwrap_err().0, "concurrency");
        let mut q = QueueConfig::named("bad name");
        q.max_attempts = 3;
        assert_eq!(q.validate().unwrap_err().0, "name");
        let mut q = QueueConfig::named("q");
        q.max_attempts = 0;
        assert_eq!(q.validate().unwrap_err().0, "max_attempts");
        let mut q = QueueConfig::named("q");
        q.backoff.multiplier = 0.1;
        assert_eq!(q.validate().unwrap_err().0, "backoff");
        let mut q = QueueConfig::named("q");
        q.handler = HandlerConfig::Http {
            url: "ftp://x".into(),
            timeout_ms: 10,
        };
        assert_eq!(q.validate().unwrap_err().0, "handler.url");
        for bad in [
            "http://",
            "https://exa mple.com/",
            "http//x",
            "http://[::1/",
        ] {
            q.handler = HandlerConfig::Http {
                url: bad.into(),
                timeout_ms: 10,
            };
            assert_eq!(q.validate().unwrap_err().0, "handler.url", "{bad}");
        }
        q.handler = HandlerConfig::Http {
            url: "http://127.0.0.1:9000/hook?x=1".into(),
            timeout_ms: 10,
        };
        q.validate().unwrap();
        let mut q = QueueConfig::named("q");
        q.rate_limit = Some(RateLimit {
            per_second: 0.0,
            burst: 1,
        });
        assert_eq!(q.validate().unwrap_err().0, "rate_limit.per_second");
        q.rate_limit = Some(RateLimit {
            per_second: 5.0,
            burst: 0,
        });
        assert_eq!(q.validate().unwrap_err().0, "rate_limit.burst");
    }
}
