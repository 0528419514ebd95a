//! The `embedded://` URL: where the broker lives and its timings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::BrokerError;

const SCHEME: &str = "embedded://";
/// Default lease of a delivery before it becomes visible again.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_millis(30_000);
/// Default interval at which a waiting `recv` looks for messages published by
/// other processes.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Settings of an embedded broker, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Directory holding `broker.db`.
    pub dir: PathBuf,
    /// How long a delivery stays leased to its subscriber before it is handed
    /// out again (query option `visibility_timeout_ms`).
    pub visibility_timeout: Duration,
    /// How often a waiting `recv` polls for work from other processes (query
    /// option `poll_interval_ms`); publishes of this process wake it at once.
    pub poll_interval: Duration,
}

impl EmbeddedConfig {
    /// Parses `embedded://` (directory `<data_dir>/broker`),
    /// `embedded:///abs/dir` or `embedded://./rel/dir` (relative to the
    /// working directory), each with optional `?visibility_timeout_ms=&poll_interval_ms=`.
    pub fn parse(url: &str, data_dir: &Path) -> Result<Self, BrokerError> {
        let rest = url.strip_prefix(SCHEME).ok_or_else(|| {
            BrokerError::InvalidUrl(format!("{url:?} does not start with {SCHEME:?}"))
        })?;
        let (location, query) = match rest.split_once('?') {
            Some((l, q)) => (l, Some(q)),
            None => (rest, None),
        };
        if location.contains('#') {
            return Err(BrokerError::InvalidUrl(format!(
                "{url:?}: fragments are not supported"
            )));
        }
        let dir = if location.is_empty() {
            data_dir.join("broker")
        } else if location.starts_with('/')
            || location.starts_with("./")
            || location.starts_with("../")
            || location == "."
            || location == ".."
        {
            PathBuf::from(location)
        } else {
            return Err(BrokerError::InvalidUrl(format!(
                "{url:?}: expected embedded://, embedded:///absolute/dir or embedded://./relative/dir \
                 (hosts are not supported)"
            )));
        };
        let mut config = Self {
            dir,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
        };
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match name.as_ref() {
                "visibility_timeout_ms" => {
                    config.visibility_timeout = millis(url, &name, &value)?;
                }
                "poll_interval_ms" => config.poll_interval = millis(url, &name, &value)?,
                other => {
                    return Err(BrokerError::InvalidUrl(format!(
                        "{url:?}: unknown option {other:?} (expected visibility_timeout_ms or poll_interval_ms)"
                    )))
                }
            }
        }
        Ok(config)
    }

    /// The visibility timeout in milliseconds, as stored.
    pub(crate) fn visibility_ms(&self) -> i64 {
        i64::try_from(self.visibility_timeout.as_millis()).unwrap_or(i64::MAX / 4)
    }
}

fn millis(url: &str, name: &str, value: &str) -> Result<Duration, BrokerError> {
    match value.parse::<u64>() {
        Ok(ms) if ms > 0 && ms <= 86_400_000 => Ok(Duration::from_millis(ms)),
        _ => Err(BrokerError::InvalidUrl(format!(
            "{url:?}: option {name} must be a whole number of milliseconds between 1 and 86400000, got {value:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<EmbeddedConfig, BrokerError> {
        EmbeddedConfig::parse(url, Path::new("/data"))
    }

    #[test]
    fn default_dir_is_under_data_dir() {
        let c = parse("embedded://").unwrap();
        assert_eq!(c.dir, PathBuf::from("/data/broker"));
        assert_eq!(c.visibility_timeout, DEFAULT_VISIBILITY_TIMEOUT);
        assert_eq!(c.poll_interval, DEFAULT_POLL_INTERVAL);
    }

    #[test]
    fn absolute_and_relative_dirs() {
        assert_eq!(
            parse("embedded:///var/q").unwrap().dir,
            PathBuf::from("/var/q")
        );
        assert_eq!(
            parse("embedded://./rel/q").unwrap().dir,
            PathBuf::from("./rel/q")
        );
        assert_eq!(
            parse("embedded://../up").unwrap().dir,
            PathBuf::from("../up")
        );
    }

    #[test]
    fn options() {
        let c = parse("embedded:///q?visibility_timeout_ms=500&poll_interval_ms=20").unwrap();
        assert_eq!(c.visibility_timeout, Duration::from_millis(500));
        assert_eq!(c.poll_interval, Duration::from_millis(20));
        let c = parse("embedded://?poll_interval_ms=5").unwrap();
        assert_eq!(c.dir, PathBuf::from("/data/broker"));
        assert_eq!(c.poll_interval, Duration::from_millis(5));
    }

    #[test]
    fn errors_name_the_problem() {
        let msg = |u: &str| parse(u).unwrap_err().to_string();
        assert!(msg("embedded://?visibility_timeout_ms=abc").contains("visibility_timeout_ms"));
        assert!(msg("embedded://?visibility_timeout_ms=0").contains("visibility_timeout_ms"));
        assert!(msg("embedded://?nope=1").contains("\"nope\""));
        assert!(msg("embedded://somehost/dir").contains("hosts are not supported"));
        assert!(msg("embedded:/x").contains("does not start with"));
        assert!(matches!(
            parse("embedded://?x=1"),
            Err(BrokerError::InvalidUrl(_))
        ));
    }
}
