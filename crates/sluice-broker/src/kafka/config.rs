//! The `kafka://` URL: bootstrap brokers, topic layout and client timings.

use std::time::Duration;

use crate::BrokerError;

const SCHEME: &str = "kafka://";

/// Settings of a Kafka broker connection, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `host:port` list handed to librdkafka as `bootstrap.servers`.
    pub bootstrap: String,
    /// Partitions of topics `declare` creates (query option `partitions`,
    /// default 6). An existing topic with fewer partitions is a topology error.
    pub partitions: i32,
    /// Replication factor of topics `declare` creates (query option
    /// `replication_factor`; default: the broker's `default.replication.factor`).
    pub replication_factor: Option<i32>,
    /// How long a publish may wait for its delivery report before the outcome
    /// is unknown (query option `publish_timeout_ms`, librdkafka's
    /// `message.timeout.ms`; default 30 s).
    pub publish_timeout: Duration,
    /// Consumer group session timeout: how soon a dead worker's partitions go
    /// to the others (query option `session_timeout_ms`, default 10 s).
    pub session_timeout: Duration,
    /// Bound of metadata, admin and join waits (query option
    /// `request_timeout_ms`, default 30 s).
    pub request_timeout: Duration,
    /// How long the producer waits for more messages before it sends a
    /// partition's batch (query option `linger_ms`, librdkafka's
    /// `linger.ms`; default 1 ms, 0 sends at once; below
    /// `publish_timeout_ms`). A relay hands over a whole batch at once,
    /// so 1 ms adds at most that to a message's latency and gathers the
    /// batch into fewer, larger produce requests (see the README).
    pub linger: Duration,
}

/// The most `linger_ms` accepts.
const MAX_LINGER: Duration = Duration::from_secs(1);

impl KafkaConfig {
    /// Parses `kafka://host:port[,host:port...][?partitions=&replication_factor=
    /// &publish_timeout_ms=&session_timeout_ms=&request_timeout_ms=&linger_ms=]`.
    /// Errors never echo credentials.
    pub fn parse(url: &str) -> Result<Self, BrokerError> {
        let rest = url.strip_prefix(SCHEME).ok_or_else(|| {
            BrokerError::InvalidUrl(format!("kafka url does not start with {SCHEME:?}"))
        })?;
        let (hosts, query) = match rest.split_once('?') {
            Some((h, q)) => (h, q),
            None => (rest, ""),
        };
        if hosts.contains('@') {
            return Err(BrokerError::InvalidUrl(
                "credentials in kafka:// urls are not supported".into(),
            ));
        }
        let hosts = hosts.trim_end_matches('/');
        let mut servers = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            let valid = host
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !valid {
                return Err(BrokerError::InvalidUrl(format!(
                    "kafka broker {host:?} is not host:port (expected kafka://host:port,host:port)"
                )));
            }
            servers.push(host);
        }
        let mut config = Self {
            bootstrap: servers.join(","),
            partitions: 6,
            replication_factor: None,
            publish_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            linger: Duration::from_millis(1),
        };
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "partitions" => config.partitions = positive(&name, &value)?,
                "replication_factor" => config.replication_factor = Some(positive(&name, &value)?),
                "publish_timeout_ms" => config.publish_timeout = millis(&name, &value)?,
                "session_timeout_ms" => config.session_timeout = millis(&name, &value)?,
                "request_timeout_ms" => config.request_timeout = millis(&name, &value)?,
                "linger_ms" => config.linger = linger(&name, &value)?,
                other => {
                    return Err(BrokerError::InvalidUrl(format!(
                        "unknown kafka option {other:?} (expected partitions, replication_factor, \
                         publish_timeout_ms, session_timeout_ms, request_timeout_ms or linger_ms)"
                    )))
                }
            }
        }
        if config.linger >= config.publish_timeout {
            return Err(BrokerError::InvalidUrl(format!(
                "kafka option linger_ms={} must be below publish_timeout_ms={}",
                config.linger.as_millis(),
                config.publish_timeout.as_millis()
            )));
        }
        Ok(config)
    }
}

fn positive(name: &str, value: &str) -> Result<i32, BrokerError> {
    match value.parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(BrokerError::InvalidUrl(format!(
            "kafka option {name}={value:?} is not a positive integer"
        ))),
    }
}

fn millis(name: &str, value: &str) -> Result<Duration, BrokerError> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_millis(n)),
        _ => Err(BrokerError::InvalidUrl(format!(
            "kafka option {name}={value:?} is not a positive number of milliseconds"
        ))),
    }
}

fn linger(name: &str, value: &str) -> Result<Duration, BrokerError> {
    match value.parse::<u64>().map(Duration::from_millis) {
        Ok(d) if d <= MAX_LINGER => Ok(d),
        _ => Err(BrokerError::InvalidUrl(format!(
            "kafka option {name}={value:?} is not a number of milliseconds from 0 to {}",
            MAX_LINGER.as_millis()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_options() {
        let c = KafkaConfig::parse("kafka://a:9092, b:9093?partitions=3&publish_timeout_ms=500")
            .unwrap();
        assert_eq!(c.bootstrap, "a:9092,b:9093");
        assert_eq!(c.partitions, 3);
        assert_eq!(c.replication_factor, None);
        assert_eq!(c.publish_timeout, Duration::from_millis(500));
        assert_eq!(c.session_timeout, Duration::from_secs(10));
        assert_eq!(c.linger, Duration::from_millis(1));
        let c = KafkaConfig::parse("kafka://a:9092?linger_ms=0").unwrap();
        assert_eq!(c.linger, Duration::ZERO);
        let c = KafkaConfig::parse("kafka://a:9092?linger_ms=1000").unwrap();
        assert_eq!(c.linger, Duration::from_secs(1));
    }

    #[test]
    fn rejects_bad_urls_without_echoing_secrets() {
        for (url, needle) in [
            ("kafka://", "not host:port"),
            ("kafka://a:b", "not host:port"),
            ("kafka://a:9092?partitions=0", "partitions"),
            ("kafka://a:9092?speed=1", "\"speed\""),
            ("kafka://a:9092?linger_ms=-1", "linger_ms"),
            ("kafka://a:9092?linger_ms=1001", "from 0 to 1000"),
            (
                "kafka://a:9092?linger_ms=500&publish_timeout_ms=500",
                "below publish_timeout_ms",
            ),
            ("kafka://user:hunter2@a:9092", "credentials"),
        ] {
            let e = KafkaConfig::parse(url).unwrap_err();
            assert!(matches!(e, BrokerError::InvalidUrl(_)), "{url}: {e}");
            assert!(e.to_string().contains(needle), "{url}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }
}
