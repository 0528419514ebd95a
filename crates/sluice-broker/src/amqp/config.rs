//! The AMQP backend's settings, read from the broker URL's query string.

use url::Url;

use crate::BrokerError;

/// Which kind of queue [`declare`](crate::Broker::declare) creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    /// Quorum queues (replicated, RabbitMQ 3.8+); classic durable queues on
    /// servers that refuse the quorum type.
    Auto,
    /// Quorum queues only; a server without them is a topology error.
    Quorum,
    /// Classic durable queues.
    Classic,
}

/// Most channels the publisher spreads one batch over.
pub const DEFAULT_PUBLISHER_CHANNELS: usize = 4;
/// The largest message body sent, by default: RabbitMQ 4's default
/// `max_message_size` (16 MiB; 3.x allows 128 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;
/// RabbitMQ's own upper bound of `max_message_size` (512 MiB).
const MAX_MESSAGE_BYTES_LIMIT: usize = 512 << 20;

/// Settings of an `amqp://` or `amqps://` broker URL.
///
/// sluice's own query parameters are removed before the URL goes to lapin,
/// which understands the rest (`heartbeat`, `frame_max`, `channel_max`,
/// `connection_timeout`, `auth_mechanism`):
/// - `queue_type=auto|quorum|classic` (default `auto`);
/// - `publisher_channels=N` (1..=64, default 4): channels one publish batch
///   is spread over, each with pipelined confirms;
/// - `max_message_bytes=N` (1024..=536870912, default 16 MiB): the server's
///   `max_message_size`. A larger message is refused for good without being
///   sent, since the server would close the channel on it (and on every
///   message sent with it).
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// The URL handed to lapin (may hold a password: never log it).
    pub(crate) uri: String,
    /// The URL without its password, for logs and errors.
    pub redacted: String,
    pub queue_type: QueueType,
    pub publisher_channels: usize,
    pub max_message_bytes: usize,
}

impl std::fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &self.redacted)
            .field("queue_type", &self.queue_type)
            .field("publisher_channels", &self.publisher_channels)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

impl AmqpConfig {
    /// Parses an `amqp://` or `amqps://` URL; errors never echo a password.
    pub fn parse(url: &str) -> Result<Self, BrokerError> {
        let mut parsed = Url::parse(url)
            .map_err(|e| BrokerError::InvalidUrl(format!("malformed amqp url: {e}")))?;
        if !matches!(parsed.scheme(), "amqp" | "amqps") {
            return Err(BrokerError::InvalidUrl(format!(
                "expected amqp:// or amqps://, got {}://",
                parsed.scheme()
            )));
        }
        if parsed.host_str().unwrap_or("").is_empty() {
            return Err(BrokerError::InvalidUrl("amqp url names no host".into()));
        }
        let mut queue_type = QueueType::Auto;
        let mut publisher_channels = DEFAULT_PUBLISHER_CHANNELS;
        let mut max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES;
        let mut rest = Vec::new();
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "queue_type" => {
                    queue_type = match v.as_ref() {
                        "auto" => QueueType::Auto,
                        "quorum" => QueueType::Quorum,
                        "classic" => QueueType::Classic,
                        other => {
                            return Err(BrokerError::InvalidUrl(format!(
                                "queue_type must be auto, quorum or classic, not {other:?}"
                            )))
                        }
                    }
                }
                "publisher_channels" => {
                    publisher_channels = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| {
                            BrokerError::InvalidUrl(format!(
                                "publisher_channels must be between 1 and 64, not {v:?}"
                            ))
                        })?
                }
                "max_message_bytes" => {
                    max_message_bytes = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1024..=MAX_MESSAGE_BYTES_LIMIT).contains(n))
                        .ok_or_else(|| {
                            BrokerError::InvalidUrl(format!(
                                "max_message_bytes must be between 1024 and {MAX_MESSAGE_BYTES_LIMIT}, not {v:?}"
                            ))
                        })?
                }
                "heartbeat" | "frame_max" | "channel_max" | "connection_timeout"
                | "auth_mechanism" => rest.push((k.into_owned(), v.into_owned())),
                other => {
                    return Err(BrokerError::InvalidUrl(format!(
                        "unknown amqp url option {other:?}"
                    )))
                }
            }
        }
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(rest);
        }
        let uri = parsed.to_string();
        let mut shown = parsed.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        Ok(Self {
            uri,
            redacted: shown.to_string(),
            queue_type,
            publisher_channels,
            max_message_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sluice_options_are_taken_out_and_the_password_hidden() {
        let c = AmqpConfig::parse(
            "amqp://guest:secret@127.0.0.1:5672/%2f?queue_type=classic&heartbeat=10&publisher_channels=2",
        )
        .unwrap();
        assert_eq!(c.queue_type, QueueType::Classic);
        assert_eq!(c.publisher_channels, 2);
        assert_eq!(c.uri, "amqp://guest:secret@127.0.0.1:5672/%2f?heartbeat=10");
        assert!(!c.redacted.contains("secret"), "{}", c.redacted);
        assert!(!format!("{c:?}").contains("secret"));
        let d = AmqpConfig::parse("amqp://h/").unwrap();
        assert_eq!(d.queue_type, QueueType::Auto);
        assert_eq!(d.publisher_channels, DEFAULT_PUBLISHER_CHANNELS);
        assert_eq!(d.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        let m = AmqpConfig::parse("amqp://h/?max_message_bytes=134217728").unwrap();
        assert_eq!(m.max_message_bytes, 128 << 20);
        assert_eq!(m.uri, "amqp://h/");
        for bad in ["0", "1023", "536870913", "16MiB"] {
            let url = format!("amqp://h/?max_message_bytes={bad}");
            assert!(AmqpConfig::parse(&url).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_options_are_clear_errors_without_the_password() {
        for (url, needle) in [
            ("amqp://u:pw@h/?queue_type=stream", "queue_type"),
            ("amqp://u:pw@h/?publisher_channels=0", "publisher_channels"),
            ("amqp://u:pw@h/?speed=fast", "\"speed\""),
            ("amqp://", "no host"),
        ] {
            let e = AmqpConfig::parse(url).unwrap_err().to_string();
            assert!(e.contains(needle), "{url}: {e}");
            assert!(!e.contains("pw"), "{url}: {e}");
        }
    }
}
