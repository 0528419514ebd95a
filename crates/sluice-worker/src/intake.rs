//! Turns deliveries into start requests: decoding, schema checks for direct
//! producers, and poison messages.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_broker::Delivery;
use sluice_core::{
    decode_message, json_holds_nul, json_without_nul, now_ms, relayed_job, without_nul, JobId,
    RawMessage, POSITION_SOURCE, SLUICE_SOURCE,
};
use sluice_store::{NewJob, StartRequest};

/// A delivery paired with what to ask the store.
pub(crate) struct Intake {
    pub request: StartRequest,
    /// Set when the message must be dead-lettered at once with this reason.
    pub poison: Option<String>,
    /// The job's id was made up for this delivery (a plain JSON message
    /// whose position is not stable): delivered again, the message would
    /// become another job.
    pub one_off: bool,
}

pub(crate) fn intake(
    d: &Delivery,
    queue: &str,
    max_attempts: u32,
    validator: Option<&jsonschema::Validator>,
) -> Intake {
    let raw = RawMessage {
        attributes: &d.attributes,
        content_type: d.content_type.as_deref(),
        body: &d.body,
        position: &d.position,
    };
    // the common case, read without building the payload
    if let Some((job_id, attempt)) = relayed_job(raw) {
        return Intake {
            request: StartRequest {
                job_id,
                attempt: Some(attempt),
                create: None,
                lease: None,
            },
            poison: None,
            one_off: false,
        };
    }
    let new_job =
        |id: JobId, payload: Value, key: Option<String>, traceparent: Option<String>| NewJob {
            id,
            queue: queue.to_string(),
            payload,
            key,
            headers: BTreeMap::new(),
            max_attempts,
            available_at: now_ms(),
            traceparent,
        };
    match decode_message(raw) {
        Ok(env) if env.source == SLUICE_SOURCE && env.sluiceattempt.is_some() => Intake {
            request: StartRequest {
                job_id: env.job_id(),
                attempt: env.sluiceattempt,
                create: None,
                lease: None,
            },
            poison: None,
            one_off: false,
        },
        Ok(env) => {
            let id = env.job_id();
            // a NUL character, which the HTTP API refuses, makes the job
            // dead at once, stored with U+FFFD in its place
            let (payload, poison) = if json_holds_nul(&env.data) {
                let reason =
                    "payload holds a NUL character (\\u0000), which sluice does not accept";
                (json_without_nul(env.data), Some(reason.to_string()))
            } else {
                let poison = validator.and_then(|v| schema_violation(v, &env.data));
                (env.data, poison)
            };
            let key = env.sluicekey.or_else(|| d.key.clone()).map(without_nul);
            // validated as the HTTP API does: anything else is dropped
            let traceparent = env.traceparent.as_deref().and_then(sluice_trace::normalize);
            Intake {
                request: StartRequest {
                    job_id: id,
                    attempt: None,
                    create: Some(new_job(id, payload, key, traceparent)),
                    lease: None,
                },
                poison,
                one_off: !d.stable_position && env.source == POSITION_SOURCE,
            }
        }
        Err(e) => {
            let id = JobId::derived("sluice:undecodable", &d.position);
            let body = String::from_utf8_lossy(&d.body)
                .chars()
                .take(64 * 1024)
                .collect::<String>();
            let body = without_nul(body);
            let key = d.key.clone().map(without_nul);
            Intake {
                request: StartRequest {
                    job_id: id,
                    attempt: None,
                    create: Some(new_job(id, Value::String(body), key, None)),
                    lease: None,
                },
                poison: Some(without_nul(e.to_string())),
                one_off: false,
            }
        }
    }
}

/// Why `payload` fails the queue's schema (its first five violations), or
/// `None` when it passes.
pub(crate) fn schema_violation(schema: &jsonschema::Validator, payload: &Value) -> Option<String> {
    let errors: Vec<String> = schema
        .iter_errors(payload)
        .take(5)
        // masked: the rule, not the value (the reason is logged)
        .map(|e| format!("{}: {}", e.instance_path(), e.masked()))
        .collect();
    (!errors.is_empty()).then(|| {
        without_nul(format!(
            "payload fails the queue schema: {}",
            errors.join("; ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_broker::{AckToken, IncomingMessage};

    fn plain(body: &[u8], key: Option<&str>) -> Delivery {
        Delivery::new(
            AckToken(1),
            0,
            IncomingMessage {
                topic: "sluice.q".into(),
                key: key.map(str::to_string),
                attributes: BTreeMap::new(),
                content_type: Some("application/json".into()),
                body: body.to_vec(),
                position: "sluice.q/0/7".into(),
                stable_position: true,
            },
        )
    }

    /// Only a plain JSON message whose position is made up per delivery
    /// has a one-off job id; a CloudEvent's id is its own, and a stable
    /// position gives every delivery the same id.
    #[test]
    fn a_job_id_is_one_off_only_for_plain_json_without_a_stable_position() {
        let stable = plain(br#"{"a":1}"#, None);
        assert!(!intake(&stable, "q", 5, None).one_off);
        let made_up = Delivery::new(
            AckToken(1),
            0,
            IncomingMessage {
                stable_position: false,
                ..(*plain(br#"{"a":1}"#, None).message).clone()
            },
        );
        let i = intake(&made_up, "q", 5, None);
        assert!(i.one_off);
        assert!(i.request.create.is_some());
        let event = Delivery::new(
            AckToken(1),
            0,
            IncomingMessage {
                attributes: BTreeMap::from([
                    ("specversion".to_string(), "1.0".to_string()),
                    ("id".to_string(), "order-1".to_string()),
                    ("source".to_string(), "shop".to_string()),
                    ("type".to_string(), "order.created".to_string()),
                ]),
                ..(*made_up.message).clone()
            },
        );
        let i = intake(&event, "q", 5, None);
        assert_eq!(i.request.job_id, JobId::derived("shop", "order-1"));
        assert!(!i.one_off);
    }

    fn created(i: &Intake) -> &NewJob {
        i.request.create.as_ref().expect("a new job")
    }

    /// PostgreSQL refuses NUL in text and jsonb: a direct producer's NUL
    /// never reaches the store (where it would fail the message for ever).
    #[test]
    fn nul_characters_of_direct_producers_never_reach_the_store() {
        // a binary key (a Java LongSerializer's 42) of a good message
        let i = intake(&plain(br#"{"a":1}"#, Some("\0\0*")), "q", 5, None);
        assert!(i.poison.is_none());
        assert_eq!(created(&i).key.as_deref(), Some("\u{FFFD}\u{FFFD}*"));
        // a payload with a NUL string: dead at once, stored without it
        let i = intake(&plain(br#"{"a":"x\u0000y"}"#, Some("k\0")), "q", 5, None);
        assert!(
            i.poison.as_deref().unwrap().contains("NUL"),
            "{:?}",
            i.poison
        );
        assert_eq!(created(&i).payload, serde_json::json!({"a": "x\u{FFFD}y"}));
        assert_eq!(created(&i).key.as_deref(), Some("k\u{FFFD}"));
        // not JSON, with a NUL byte: dead as before, its text without it
        let i = intake(&plain(b"not json \0", None), "q", 5, None);
        assert!(i.poison.is_some());
        assert_eq!(
            created(&i).payload,
            Value::String("not json \u{FFFD}".into())
        );
    }
}
