//! The store URL: sluice's own parameters taken out, the rest passed to
//! sqlx, and the password kept aside so no error message carries it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::StoreError;

/// Connections of the pool unless the URL says `max_connections=`.
const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long an operation waits for a connection (and so for a down
/// database) before failing, unless the URL says `acquire_timeout_ms=`.
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one operation (all its retries) may take, unless the URL says
/// `op_timeout_ms=`: a lost TCP peer must not hang a caller forever.
const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed store URL.
pub(super) struct Config {
    pub(super) connect: PgConnectOptions,
    pub(super) max_connections: u32,
    pub(super) acquire_timeout: Duration,
    pub(super) op_timeout: Duration,
    /// To scrub from error messages.
    pub(super) password: Option<String>,
}

/// Removes `password` from `msg`.
fn redact(msg: String, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() && msg.contains(p) => msg.replace(p, "***"),
        _ => msg,
    }
}

pub(super) fn redact_err(e: StoreError, password: Option<&str>) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(redact(m, password)),
        StoreError::InvalidUrl(m) => StoreError::InvalidUrl(redact(m, password)),
        StoreError::Migration(m) => StoreError::Migration(redact(m, password)),
        StoreError::Corrupt(m) => StoreError::Corrupt(redact(m, password)),
        other => other,
    }
}

/// Decodes `%XX` escapes (as in the userinfo of a URL).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_ms(key: &str, value: &str) -> Result<Duration, StoreError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| StoreError::InvalidUrl(format!("{key} must be a positive integer")))
}

/// How long a session may sit idle inside a transaction before the server
/// ends it. sluice's transactions run their statements back to back, except
/// a relay's held claim (held.rs), idle for at most a second by design, so
/// a session idle that long belongs to a process that is frozen (SIGSTOP, a
/// VM pause) or starved; ending it frees the rows it locked, so other workers
/// can take its jobs over once their leases lapse, instead of waiting for the
/// process to wake up. Its own operation fails and is retried.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

pub(super) fn parse_url(url: &str) -> Result<Config, StoreError> {
    // Parse errors of the url crate never quote the input.
    let mut parsed = url::Url::parse(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(StoreError::InvalidUrl(
            "expected postgres:// or postgresql://".into(),
        ));
    }
    // the password given in the user info, or else as a query parameter
    // (as libpq and sqlx take it), hidden from every error alike
    let password = parsed.password().map(percent_decode).or_else(|| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.into_owned())
    });
    let mut max_connections = DEFAULT_MAX_CONNECTIONS;
    let mut acquire_timeout = DEFAULT_ACQUIRE_TIMEOUT;
    let mut op_timeout = DEFAULT_OP_TIMEOUT;
    let mut rest: Vec<(String, String)> = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match &*k {
            "max_connections" => {
                max_connections = v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    StoreError::InvalidUrl("max_connections must be a positive integer".into())
                })?;
            }
            "acquire_timeout_ms" => acquire_timeout = parse_ms(&k, &v)?,
            "op_timeout_ms" => op_timeout = parse_ms(&k, &v)?,
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let mut connect = PgConnectOptions::from_str(parsed.as_str())
        .map_err(|e| StoreError::InvalidUrl(redact(e.to_string(), password.as_deref())))?
        // Appended last, so they win over any `options=` of the URL.
        .options([
            ("synchronous_commit", "on"),
            (
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT,
            ),
        ]);
    if connect.get_application_name().is_none() {
        connect = connect.application_name("sluice");
    }
    Ok(Config {
        connect,
        max_connections,
        acquire_timeout,
        op_timeout,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_driver_params_and_take_sluice_ones() {
        let cfg = parse_url(
            "postgres://u:s3cr%40t@db.example:6543/app?max_connections=3&sslmode=disable&acquire_timeout_ms=250&op_timeout_ms=900",
        )
        .unwrap();
        assert_eq!(cfg.max_connections, 3);
        assert_eq!(cfg.acquire_timeout, Duration::from_millis(250));
        assert_eq!(cfg.op_timeout, Duration::from_millis(900));
        assert_eq!(cfg.password.as_deref(), Some("s3cr@t"));
        assert_eq!(cfg.connect.get_host(), "db.example");
        assert_eq!(cfg.connect.get_port(), 6543);
        assert_eq!(cfg.connect.get_database(), Some("app"));
        assert_eq!(cfg.connect.get_application_name(), Some("sluice"));

        let cfg = parse_url("postgresql://u@h/d").unwrap();
        assert_eq!(cfg.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(cfg.acquire_timeout, DEFAULT_ACQUIRE_TIMEOUT);
        assert_eq!(cfg.password, None);
        let cfg = parse_url("postgres://u@h/d?application_name=relay-1").unwrap();
        assert_eq!(cfg.connect.get_application_name(), Some("relay-1"));

        for bad in [
            "postgres://u@h/d?max_connections=0",
            "postgres://u@h/d?max_connections=x",
            "postgres://u@h/d?acquire_timeout_ms=-1",
            "mysql://u@h/d",
            "not a url",
        ] {
            assert!(
                matches!(parse_url(bad), Err(StoreError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("bad s3cr3t here".into(), Some("s3cr3t")),
            "bad *** here"
        );
        assert_eq!(redact("x".into(), Some("")), "x");
        let e = redact_err(
            StoreError::Unavailable("pw hunter2".into()),
            Some("hunter2"),
        );
        assert_eq!(e.to_string(), "store unavailable: pw ***");
        let cfg = parse_url("postgres://u@h/d?password=hunter%232").unwrap();
        assert_eq!(cfg.password.as_deref(), Some("hunter#2"));
    }
}
