//! Checks on what a client sends beside the job fields: payload JSON Schemas,
//! the content type, the `Idempotency-Key` and the W3C `traceparent` headers.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use crate::error::{Violation, MAX_LISTED_VIOLATIONS};
use crate::ApiError;

/// Longest accepted `Idempotency-Key` (after removing optional quotes).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A queue's compiled payload schema.
pub(crate) struct PayloadSchema(jsonschema::Validator);

impl PayloadSchema {
    /// Compiles `schema`; the error says why it is not a valid JSON Schema.
    pub fn compile(schema: &serde_json::Value) -> Result<Self, String> {
        jsonschema::validator_for(schema)
            .map(Self)
            .map_err(|e| e.to_string())
    }

    /// Appends the payload's violations, located under `prefix` (a JSON
    /// Pointer into the request body, e.g. `/jobs/3`), up to the listing cap.
    pub fn violations(
        &self,
        payload: &serde_json::Value,
        prefix: &str,
        job: Option<usize>,
        out: &mut Vec<Violation>,
    ) {
        for e in self.0.iter_errors(payload) {
            if out.len() > MAX_LISTED_VIOLATIONS {
                break;
            }
            out.push(Violation {
                job,
                pointer: format!("#{prefix}/payload{}", e.instance_path().as_str()),
                // Masked: the message names the rule, not the (possibly large) value.
                detail: e.masked().to_string(),
            });
        }
    }
}

/// `Ok` when the request declares a JSON body: `application/json` or
/// `application/<anything>+json`, with optional parameters; else `415`.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::UnsupportedMediaType)?;
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .and_then(|sub| sub.strip_suffix("+json"))
            .is_some_and(|s| !s.is_empty() && !s.contains('/'));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// The request's `Idempotency-Key`, if any: 1 to 255 visible ASCII
/// characters, optionally as a quoted structured-field string (quotes are
/// not part of the key). Anything else, or several such headers, is `400`.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = |why: &str| ApiError::BadRequest(format!("invalid Idempotency-Key header: {why}"));
    if values.next().is_some() {
        return Err(bad("sent more than once"));
    }
    let raw = value.as_bytes();
    let key = match raw {
        [b'"', inner @ .., b'"'] => inner,
        _ => raw,
    };
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(bad("must be 1 to 255 characters"));
    }
    if !key.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(bad("must be visible ASCII characters"));
    }
    // Checked above: visible ASCII only, so valid UTF-8.
    Ok(Some(String::from_utf8_lossy(key).into_owned()))
}

/// Hex SHA-256 of the raw request body: the idempotency fingerprint.
pub(crate) fn fingerprint(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The incoming W3C `traceparent` when valid (normalised to version `00`).
pub(crate) fn incoming_traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(sluice_trace::normalize)
}

/// A fresh `traceparent` (new trace id and span id, sampled), for when no
/// tracing layer gives the request a span of its own.
pub(crate) fn new_traceparent() -> String {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string();
    format!("00-{trace_id}-{}-01", &span[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/cloudevents+json",
        ] {
            assert!(require_json(&with("content-type", ok)).is_ok(), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/xml",
            "application/+json",
            "json",
            "application/jsonx",
        ] {
            assert!(require_json(&with("content-type", bad)).is_err(), "{bad}");
        }
        assert!(require_json(&HeaderMap::new()).is_err());
    }

    #[test]
    fn idempotency_keys() {
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            idempotency_key(&with("idempotency-key", "abc-1"))
                .unwrap()
                .as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            idempotency_key(&with("idempotency-key", "\"abc-1\""))
                .unwrap()
                .as_deref(),
            Some("abc-1")
        );
        assert!(idempotency_key(&with("idempotency-key", "a b")).is_err());
        assert!(idempotency_key(&with("idempotency-key", "\"\"")).is_err());
        assert!(idempotency_key(&with("idempotency-key", &"x".repeat(256))).is_err());
        assert!(idempotency_key(&with("idempotency-key", &"x".repeat(255))).is_ok());
        let mut two = with("idempotency-key", "a");
        two.append("idempotency-key", HeaderValue::from_static("b"));
        assert!(idempotency_key(&two).is_err());
    }

    #[test]
    fn traceparents() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            incoming_traceparent(&with("traceparent", tp)).as_deref(),
            Some(tp)
        );
        assert_eq!(incoming_traceparent(&with("traceparent", "junk")), None);
        assert_eq!(incoming_traceparent(&HeaderMap::new()), None);
        let fresh = new_traceparent();
        assert_eq!(
            sluice_trace::normalize(&fresh).as_deref(),
            Some(fresh.as_str())
        );
        assert_ne!(fresh, new_traceparent());
    }

    #[test]
    fn fingerprint_is_hex_sha256() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
