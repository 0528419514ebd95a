//! The job request bodies and their field checks. A body that is JSON but not
//! a valid request (missing `payload`, mistyped or unknown fields, values out
//! of range, a batch that is empty or too long) is `422` with every violation
//! located by a JSON Pointer; malformed JSON is `400`.

use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use sluice_core::MAX_ATTEMPTS_LIMIT;

use crate::error::{Violation, MAX_LISTED_VIOLATIONS};
use crate::ApiError;

/// Longest accepted `delay_seconds`: 30 days.
pub const MAX_DELAY_SECONDS: f64 = 30.0 * 24.0 * 3600.0;
/// Most jobs in one batch request.
pub const MAX_BATCH_JOBS: usize = 1000;
/// Longest accepted job `key`, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Most entries in a job's `headers`.
pub const MAX_JOB_HEADERS: usize = 64;

/// Header names a job may not set: they belong to the transport or to sluice.
const RESERVED_HEADERS: &[&str] = &["content-length", "transfer-encoding", "host", "connection"];
const RESERVED_HEADER_PREFIX: &str = "sluice-";

/// A job's fields once checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobSpec {
    pub payload: Value,
    pub key: Option<String>,
    pub delay_ms: i64,
    pub max_attempts: Option<u32>,
    pub headers: BTreeMap<String, String>,
}

/// Parses the body as JSON (`400` when malformed).
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::MalformedJson(format!("the body is not valid JSON: {e}")))
}

/// The single-job body, or every violation (`422`).
pub(crate) fn single(body: Value) -> Result<JobSpec, ApiError> {
    let mut errors = Vec::new();
    match parse_job(body, "", None, &mut errors) {
        Some(job) if errors.is_empty() => Ok(job),
        _ => Err(ApiError::InvalidRequest(errors)),
    }
}

/// The batch body `{"jobs": [...]}` (1 to 1000 jobs), or every violation (`422`).
pub(crate) fn batch(body: Value) -> Result<Vec<JobSpec>, ApiError> {
    let mut errors = Vec::new();
    let Value::Object(mut obj) = body else {
        return Err(invalid(
            "#",
            None,
            "must be a JSON object with a \"jobs\" array",
        ));
    };
    let jobs = obj.remove("jobs");
    for name in obj.keys() {
        errors.push(violation(
            format!("#/{}", escape(name)),
            None,
            "unknown field",
        ));
    }
    let items = match jobs {
        Some(Value::Array(items)) if (1..=MAX_BATCH_JOBS).contains(&items.len()) => items,
        Some(Value::Array(_)) => {
            errors.push(violation(
                "#/jobs".into(),
                None,
                &format!("must hold 1 to {MAX_BATCH_JOBS} jobs"),
            ));
            return Err(ApiError::InvalidRequest(errors));
        }
        Some(_) => {
            errors.push(violation("#/jobs".into(), None, "must be an array of jobs"));
            return Err(ApiError::InvalidRequest(errors));
        }
        None => {
            errors.push(violation("#/jobs".into(), None, "is required"));
            return Err(ApiError::InvalidRequest(errors));
        }
    };
    let mut specs = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if errors.len() > MAX_LISTED_VIOLATIONS {
            break;
        }
        if let Some(spec) = parse_job(item, &format!("/jobs/{i}"), Some(i), &mut errors) {
            specs.push(spec);
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(ApiError::InvalidRequest(errors))
    }
}

/// Checks one job object located at `prefix`; pushes its violations and
/// returns it only when it had none.
fn parse_job(
    v: Value,
    prefix: &str,
    job: Option<usize>,
    errors: &mut Vec<Violation>,
) -> Option<JobSpec> {
    let before = errors.len();
    let at = |field: &str| format!("#{prefix}/{field}");
    let Value::Object(mut obj) = v else {
        errors.push(violation(
            format!("#{prefix}"),
            job,
            "must be a JSON object",
        ));
        return None;
    };
    let payload = obj.remove("payload");
    let key = take_opt(&mut obj, "key");
    let delay = take_opt(&mut obj, "delay_seconds");
    let attempts = take_opt(&mut obj, "max_attempts");
    let headers = take_opt(&mut obj, "headers");
    for name in obj.keys() {
        errors.push(violation(
            format!("#{prefix}/{}", escape(name)),
            job,
            "unknown field",
        ));
    }
    match &payload {
        None => errors.push(violation(at("payload"), job, "is required")),
        Some(p) if sluice_core::json_holds_nul(p) => errors.push(violation(
            at("payload"),
            job,
            "must not hold a NUL character (\\u0000) in any string",
        )),
        Some(_) => {}
    }
    let key = match key {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_KEY_LEN && !s.contains('\0') => {
            Some(s)
        }
        Some(_) => {
            errors.push(violation(
                at("key"),
                job,
                &format!("must be a string of 1 to {MAX_KEY_LEN} bytes without NUL characters"),
            ));
            None
        }
    };
    let delay_ms = match delay.as_ref().map(Value::as_f64) {
        None => 0,
        Some(Some(d)) if (0.0..=MAX_DELAY_SECONDS).contains(&d) => (d * 1000.0).round() as i64,
        Some(_) => {
            let msg = format!("must be a number from 0 to {MAX_DELAY_SECONDS} (30 days)");
            errors.push(violation(at("delay_seconds"), job, &msg));
            0
        }
    };
    let max_attempts = match attempts.as_ref().map(whole) {
        None => None,
        Some(Some(n)) if (1..=u64::from(MAX_ATTEMPTS_LIMIT)).contains(&n) => u32::try_from(n).ok(),
        Some(_) => {
            let msg = format!("must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}");
            errors.push(violation(at("max_attempts"), job, &msg));
            None
        }
    };
    let headers = parse_headers(headers, prefix, job, errors);
    if errors.len() > before {
        return None;
    }
    Some(JobSpec {
        payload: payload?,
        key,
        delay_ms,
        max_attempts,
        headers,
    })
}

fn parse_headers(
    v: Option<Value>,
    prefix: &str,
    job: Option<usize>,
    errors: &mut Vec<Violation>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let map = match v {
        None => return out,
        Some(Value::Object(m)) if m.len() <= MAX_JOB_HEADERS => m,
        Some(_) => {
            let msg = format!("must be an object of at most {MAX_JOB_HEADERS} string values");
            errors.push(violation(format!("#{prefix}/headers"), job, &msg));
            return out;
        }
    };
    for (name, value) in map {
        let at = format!("#{prefix}/headers/{}", escape(&name));
        let lower = name.to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(violation(at, job, "is not a valid HTTP header name"));
        } else if RESERVED_HEADERS.contains(&lower.as_str())
            || lower.starts_with(RESERVED_HEADER_PREFIX)
        {
            errors.push(violation(at, job, "is a reserved header name"));
        } else {
            match value {
                Value::String(s) if HeaderValue::from_str(&s).is_ok() => {
                    out.insert(name, s);
                }
                _ => errors.push(violation(
                    at,
                    job,
                    "must be a string valid as an HTTP header value",
                )),
            }
        }
    }
    out
}

/// Removes an optional field; JSON `null` counts as absent.
fn take_opt(obj: &mut Map<String, Value>, name: &str) -> Option<Value> {
    obj.remove(name).filter(|v| !v.is_null())
}

/// Escapes a JSON Pointer reference token (RFC 6901), shortened to 64 chars.
fn escape(token: &str) -> String {
    token
        .chars()
        .take(64)
        .collect::<String>()
        .replace('~', "~0")
        .replace('/', "~1")
}

fn violation(pointer: String, job: Option<usize>, detail: &str) -> Violation {
    Violation {
        job,
        pointer,
        detail: detail.to_string(),
    }
}

fn invalid(pointer: &str, job: Option<usize>, detail: &str) -> ApiError {
    ApiError::InvalidRequest(vec![violation(pointer.to_string(), job, detail)])
}

/// A non-negative integer as JSON Schema has it: 3 and 3.0 alike.
pub(crate) fn whole(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let f = v.as_f64()?;
        (f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f)).then_some(f as u64)
    })
}

/// Deserializes an optional field holding a [`whole`] number.
pub(crate) fn optional_whole<'de, D>(d: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => whole(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("expected a non-negative integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointers(e: ApiError) -> Vec<String> {
        match e {
            ApiError::InvalidRequest(v) => v.into_iter().map(|v| v.pointer).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn single_job_fields() {
        let j = single(
            json!({"payload": {"a": 1}, "key": "k", "delay_seconds": 1.5, "max_attempts": 3,
            "headers": {"X-Tenant": "t1"}}),
        )
        .unwrap();
        assert_eq!(j.payload, json!({"a": 1}));
        assert_eq!(
            (j.key.as_deref(), j.delay_ms, j.max_attempts),
            (Some("k"), 1500, Some(3))
        );
        assert_eq!(j.headers.get("X-Tenant").map(String::as_str), Some("t1"));
        // null payload is a payload; null optional fields are absent
        let j = single(json!({"payload": null, "key": null})).unwrap();
        assert_eq!((j.payload, j.key), (Value::Null, None));
    }

    #[test]
    fn single_job_violations_are_all_listed() {
        let e = single(
            json!({"key": 5, "delay_seconds": -1, "max_attempts": 0, "extra/x": 1,
            "headers": {"bad name": "v", "Sluice-Job-Id": "x", "ok": 1}}),
        )
        .unwrap_err();
        let mut p = pointers(e);
        p.sort();
        assert_eq!(
            p,
            [
                "#/delay_seconds",
                "#/extra~1x",
                "#/headers/Sluice-Job-Id",
                "#/headers/bad name",
                "#/headers/ok",
                "#/key",
                "#/max_attempts",
                "#/payload"
            ]
        );
        assert!(single(json!([1])).is_err());
        // PostgreSQL holds no NUL character, so no backend takes one
        assert_eq!(
            pointers(single(json!({"payload": {"a": ["\u{0}"]}, "key": "a\u{0}b"})).unwrap_err()),
            ["#/payload", "#/key"]
        );
        assert_eq!(
            pointers(single(json!({"payload": {"k\u{0}": 1}})).unwrap_err()),
            ["#/payload"]
        );
        assert!(single(json!({"payload": 1, "max_attempts": 1001})).is_err());
        assert!(single(json!({"payload": 1, "max_attempts": 2.5})).is_err());
        assert!(single(json!({"payload": 1, "delay_seconds": MAX_DELAY_SECONDS + 1.0})).is_err());
    }

    #[test]
    fn batch_bounds_and_indexes() {
        assert_eq!(
            batch(json!({"jobs": [{"payload": 1}, {"payload": 2}]}))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            pointers(batch(json!({"jobs": []})).unwrap_err()),
            ["#/jobs"]
        );
        let many: Vec<Value> = (0..=MAX_BATCH_JOBS)
            .map(|i| json!({"payload": i}))
            .collect();
        assert_eq!(
            pointers(batch(json!({ "jobs": many })).unwrap_err()),
            ["#/jobs"]
        );
        assert_eq!(
            pointers(batch(json!({"jobs": [{"payload": 1}, {"nope": 1}]})).unwrap_err()),
            ["#/jobs/1/nope", "#/jobs/1/payload"]
        );
        match batch(json!({"jobs": [{"payload": 1}, 7]})).unwrap_err() {
            ApiError::InvalidRequest(v) => assert_eq!(v[0].job, Some(1)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
