//! Parsing and checking of admin query strings, path ids and cursors. Every
//! malformed or out-of-range value is a `400` problem naming the parameter.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Path;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sluice_core::JobId;
use sluice_store::DeadLetterCursor;

use super::{MAX_ADMIN_BODY_BYTES, MAX_ERROR_FILTER_LEN};
use crate::ApiError;

/// A query string as distinct parameters; unknown names, repeated names and
/// undecodable strings are `400`.
#[derive(Debug, Default)]
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    /// Parses `raw` allowing only the names in `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let (k, v) = (k.into_owned(), v.into_owned());
            if !allowed.contains(&k.as_str()) {
                return Err(bad(&format!(
                    "unknown query parameter {k:?} (allowed: {})",
                    allowed.join(", ")
                )));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(bad(&format!("query parameter {k:?} is given twice")));
            }
        }
        Ok(Self(map))
    }

    /// The parameter, with an empty value counted as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `limit` between 1 and `max`, `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => check_limit(v.parse().ok(), max),
        }
    }
}

/// A limit from 1 to `max`, else `400`.
pub(crate) fn check_limit(limit: Option<u64>, max: usize) -> Result<usize, ApiError> {
    match limit {
        Some(n) if n >= 1 && n <= max as u64 => Ok(n as usize),
        _ => Err(bad(&format!("limit must be an integer from 1 to {max}"))),
    }
}

/// A queue filter: a valid queue name, else `400`.
pub(crate) fn queue_filter(q: Option<&str>) -> Result<Option<String>, ApiError> {
    match q {
        None => Ok(None),
        Some(q) if sluice_core::valid_queue_name(q) => Ok(Some(q.to_string())),
        Some(_) => Err(bad("queue is not a valid queue name")),
    }
}

/// An `error_contains` filter: at most [`MAX_ERROR_FILTER_LEN`] bytes, no
/// NUL character (no stored error holds one).
pub(crate) fn error_filter(e: Option<&str>) -> Result<Option<String>, ApiError> {
    match e {
        Some(e) if e.len() > MAX_ERROR_FILTER_LEN => Err(bad(&format!(
            "error_contains must be at most {MAX_ERROR_FILTER_LEN} bytes"
        ))),
        Some(e) if e.contains('\0') => Err(bad("error_contains must not hold a NUL character")),
        Some(e) if !e.is_empty() => Ok(Some(e.to_string())),
        _ => Ok(None),
    }
}

/// The opaque cursor of a dead-letter page: base64url of `died_at:id`.
pub(crate) fn encode_cursor(c: DeadLetterCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", c.died_at, c.id))
}

/// Decodes [`encode_cursor`]'s output, else `400`.
pub(crate) fn decode_cursor(s: &str) -> Result<DeadLetterCursor, ApiError> {
    let invalid = || bad("cursor is not a cursor this API returned");
    let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let (at, id) = text.split_once(':').ok_or_else(invalid)?;
    Ok(DeadLetterCursor {
        died_at: at.parse().map_err(|_| invalid())?,
        id: id.parse().map_err(|_| invalid())?,
    })
}

/// A job id from the path; malformed ids are `not_found` (like ingest's
/// `GET /v1/jobs/{id}`: a malformed id names nothing).
pub(crate) fn job_id(
    p: Result<Path<String>, PathRejection>,
    not_found: ApiError,
) -> Result<JobId, ApiError> {
    p.ok().and_then(|Path(s)| s.parse().ok()).ok_or(not_found)
}

/// A replay id from the path; malformed ids are `404`.
pub(crate) fn replay_id(p: Result<Path<String>, PathRejection>) -> Result<uuid::Uuid, ApiError> {
    p.ok()
        .and_then(|Path(s)| uuid::Uuid::parse_str(&s).ok())
        .ok_or(ApiError::ReplayNotFound)
}

pub(crate) fn bad(detail: &str) -> ApiError {
    ApiError::BadRequest(detail.to_string())
}

/// A request body, or its rejection as a problem: `413` naming the admin
/// body limit when it is over it.
pub(crate) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| ApiError::body_rejected(r, MAX_ADMIN_BODY_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let c = DeadLetterCursor {
            died_at: 1_700_000_000_123,
            id: JobId::new(),
        };
        assert_eq!(decode_cursor(&encode_cursor(c)).unwrap(), c);
        for bad in ["", "!!", "bm9wZQ", "MTIzOm5vdC1hLXV1aWQ"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries() {
        let q = Query::parse(
            Some("queue=a&limit=5&cursor="),
            &["queue", "limit", "cursor"],
        )
        .unwrap();
        assert_eq!(q.get("queue"), Some("a"));
        assert_eq!(q.get("cursor"), None);
        assert_eq!(q.limit(50, 10).unwrap(), 5);
        assert!(Query::parse(Some("nope=1"), &["queue"]).is_err());
        assert!(Query::parse(Some("queue=a&queue=b"), &["queue"]).is_err());
        let q = Query::parse(Some("limit=0"), &["limit"]).unwrap();
        assert!(q.limit(50, 10).is_err());
        let q = Query::parse(Some("limit=11"), &["limit"]).unwrap();
        assert!(q.limit(50, 10).is_err());
        let q = Query::parse(Some("limit=-1"), &["limit"]).unwrap();
        assert!(q.limit(50, 10).is_err());
    }
}
