//! Turns deliveries into start requests: decoding, schema checks for direct
//! producers, and poison messages.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_broker::Delivery;
use sluice_core::{decode_message, now_ms, relayed_job, JobId, RawMessage, SLUICE_SOURCE};
use sluice_store::{NewJob, StartRequest};

/// A delivery paired with what to ask the store.
pub(crate) struct Intake {
    pub request: StartRequest,
    /// Set when the message must be dead-lettered at once with this reason.
    pub poison: Option<String>,
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
            },
            poison: None,
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
            },
            poison: None,
        },
        Ok(env) => {
            let id = env.job_id();
            let poison = validator.and_then(|v| {
                let errors: Vec<String> = v
                    .iter_errors(&env.data)
                    .take(5)
                    .map(|e| format!("{}: {}", e.instance_path(), e))
                    .collect();
                (!errors.is_empty())
                    .then(|| format!("payload fails the queue schema: {}", errors.join("; ")))
            });
            let key = env.sluicekey.clone().or_else(|| d.key.clone());
            Intake {
                request: StartRequest {
                    job_id: id,
                    attempt: None,
                    create: Some(new_job(id, env.data, key, env.traceparent)),
                },
                poison,
            }
        }
        Err(e) => {
            let id = JobId::derived("sluice:undecodable", &d.position);
            let body = String::from_utf8_lossy(&d.body)
                .chars()
                .take(64 * 1024)
                .collect::<String>();
            Intake {
                request: StartRequest {
                    job_id: id,
                    attempt: None,
                    create: Some(new_job(id, Value::String(body), d.key.clone(), None)),
                },
                poison: Some(e.to_string()),
            }
        }
    }
}
