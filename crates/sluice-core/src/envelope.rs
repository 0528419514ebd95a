use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CoreError, JobId};

/// The CloudEvents spec version sluice speaks.
pub const CE_SPECVERSION: &str = "1.0";
/// Extension attribute naming the sluice queue.
pub const QUEUE_ATTR: &str = "sluicequeue";
/// Extension attribute carrying the attempt number (informational only: the
/// store is the source of truth for attempts).
pub const ATTEMPT_ATTR: &str = "sluiceattempt";

/// A job as it travels on the broker: a CloudEvents 1.0 event whose `data` is
/// the job payload, plus the extensions `sluicequeue`, `sluicekey`,
/// `sluiceattempt` and `traceparent`.
///
/// Its structured-mode JSON form is described by
/// `schemas/envelope/v1.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always `"1.0"`.
    pub specversion: String,
    /// The job id as a string (a UUID for every job sluice made).
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sluicequeue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sluicekey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sluiceattempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The payload.
    #[serde(default)]
    pub data: Value,
}

/// A message as a broker backend received it, before decoding. Backends
/// strip their own CloudEvents header prefix (`ce_`, `cloudEvents:`), so
/// `attributes` holds bare attribute names.
#[derive(Debug, Clone, Copy)]
pub struct RawMessage<'a> {
    /// CloudEvents binary-mode attributes found in the headers (may be empty).
    pub attributes: &'a BTreeMap<String, String>,
    /// The message's content type, when the broker carries one.
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// Where the message sits on the broker (`topic/partition/offset` or
    /// similar): the identity of a plain JSON message.
    pub position: &'a str,
}

/// Source used to derive ids of plain JSON messages from their position (the
/// `source` of their envelopes).
pub const POSITION_SOURCE: &str = "sluice:broker-position";

impl Envelope {
    /// A fresh envelope for a job sluice accepted itself, made now.
    pub fn new(id: JobId, queue: &str, data: Value) -> Self {
        Self::at(id, queue, data, crate::now_ms())
    }

    /// An envelope for a job sluice accepted itself at `time`.
    pub fn at(id: JobId, queue: &str, data: Value, time: crate::EpochMs) -> Self {
        Self {
            specversion: CE_SPECVERSION.into(),
            id: id.to_string(),
            source: SLUICE_SOURCE.into(),
            ty: "sluice.job".into(),
            time: Some(crate::format_ms(time)),
            datacontenttype: Some("application/json".into()),
            subject: None,
            sluicequeue: Some(queue.into()),
            sluicekey: None,
            sluiceattempt: None,
            traceparent: None,
            data,
        }
    }

    /// The job id: the CloudEvents `id` when it is a UUID, else a UUID v5 of
    /// `source` and `id`.
    pub fn job_id(&self) -> JobId {
        self.id
            .parse::<JobId>()
            .unwrap_or_else(|_| JobId::derived(&self.source, &self.id))
    }

    /// Binary-mode form: attributes (bare names) and the body (the payload JSON).
    pub fn into_binary(self) -> (BTreeMap<String, String>, Vec<u8>) {
        let body = serde_json::to_vec(&self.data).unwrap_or_default();
        (self.into_attributes(), body)
    }

    /// The binary-mode attributes alone (bare names), for a body that is
    /// the payload's JSON text as it is kept elsewhere; `data` is left out.
    pub fn into_attributes(self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert("specversion".to_string(), self.specversion);
        a.insert("id".to_string(), self.id);
        a.insert("source".to_string(), self.source);
        a.insert("type".to_string(), self.ty);
        let opt = [
            ("time", self.time),
            ("subject", self.subject),
            (QUEUE_ATTR, self.sluicequeue),
            ("sluicekey", self.sluicekey),
            (ATTEMPT_ATTR, self.sluiceattempt.map(|n| n.to_string())),
            ("traceparent", self.traceparent),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                a.insert(k.to_string(), v);
            }
        }
        a
    }

    fn check(self) -> Result<Self, CoreError> {
        if self.specversion != CE_SPECVERSION {
            return Err(CoreError::Decode(format!(
                "unsupported specversion {:?}",
                self.specversion
            )));
        }
        if self.id.is_empty() || self.source.is_empty() || self.ty.is_empty() {
            return Err(CoreError::Decode(
                "id, source and type must not be empty".into(),
            ));
        }
        Ok(self)
    }
}

fn parse_json(body: &[u8]) -> Result<Value, CoreError> {
    serde_json::from_slice(body).map_err(|e| CoreError::Decode(format!("body is not JSON: {e}")))
}

/// The `source` of the events sluice's relay publishes.
pub const SLUICE_SOURCE: &str = "sluice";

/// The job id and attempt of a binary-mode message sluice's relay published
/// (`source` [`SLUICE_SOURCE`] and a numeric `sluiceattempt`), as
/// [`decode_message`] gives them, without building its payload: the store
/// holds that job's payload, so the body is only checked to be JSON. `None`
/// for any other message and for one [`decode_message`] refuses.
pub fn relayed_job(raw: RawMessage<'_>) -> Option<(JobId, u32)> {
    let present = |k: &str| raw.attributes.get(k).filter(|v| !v.is_empty());
    if raw.attributes.get("specversion")? != CE_SPECVERSION
        || present("source")? != SLUICE_SOURCE
        || present("type").is_none()
    {
        return None;
    }
    let id = present("id")?;
    let attempt = raw.attributes.get(ATTEMPT_ATTR)?.parse().ok()?;
    if !raw.body.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(raw.body).is_err() {
        return None;
    }
    let job_id = id
        .parse::<JobId>()
        .unwrap_or_else(|_| JobId::derived(SLUICE_SOURCE, id));
    Some((job_id, attempt))
}

/// Turns any message on a sluice topic into an envelope: CloudEvents binary
/// mode (attributes present), structured mode (content type
/// `application/cloudevents+json`), or a plain JSON body, which becomes the
/// payload with an id derived from the message's position.
pub fn decode_message(raw: RawMessage<'_>) -> Result<Envelope, CoreError> {
    let ct = raw.content_type.unwrap_or("").to_ascii_lowercase();
    if raw.attributes.contains_key("specversion") {
        let get = |k: &str| raw.attributes.get(k).cloned();
        let need = |k: &str| {
            get(k).ok_or_else(|| CoreError::Decode(format!("missing CloudEvents attribute {k:?}")))
        };
        let data = if raw.body.is_empty() {
            Value::Null
        } else {
            parse_json(raw.body)?
        };
        let attempt = match get(ATTEMPT_ATTR) {
            Some(s) => s.parse().ok(),
            None => None,
        };
        return Envelope {
            specversion: need("specversion")?,
            id: need("id")?,
            source: need("source")?,
            ty: need("type")?,
            time: get("time"),
            datacontenttype: get("datacontenttype")
                .or_else(|| raw.content_type.map(str::to_string)),
            subject: get("subject"),
            sluicequeue: get(QUEUE_ATTR),
            sluicekey: get("sluicekey"),
            sluiceattempt: attempt,
            traceparent: get("traceparent"),
            data,
        }
        .check();
    }
    let value = parse_json(raw.body)?;
    if ct.starts_with("application/cloudevents+json") {
        return structured(value);
    }
    let id = JobId::derived(POSITION_SOURCE, raw.position);
    let mut env = Envelope::new(id, "", value);
    env.sluicequeue = None;
    env.source = POSITION_SOURCE.into();
    Ok(env)
}

/// A structured-mode event. Its data is `data` or else `data_base64`, whose
/// decoded bytes must be JSON as well: a payload is JSON, so an event
/// carrying other bytes is refused rather than run with no payload.
fn structured(mut value: Value) -> Result<Envelope, CoreError> {
    let encoded = value.as_object_mut().and_then(|o| {
        let b64 = o.remove("data_base64")?;
        Some((b64, o.contains_key("data")))
    });
    let mut env: Envelope = serde_json::from_value(value)
        .map_err(|e| CoreError::Decode(format!("invalid structured CloudEvent: {e}")))?;
    if let Some((b64, with_data)) = encoded {
        if with_data {
            return Err(CoreError::Decode(
                "invalid structured CloudEvent: both data and data_base64".into(),
            ));
        }
        let text = b64.as_str().ok_or_else(|| {
            CoreError::Decode("invalid structured CloudEvent: data_base64 is not a string".into())
        })?;
        let bytes = STANDARD.decode(text).map_err(|e| {
            CoreError::Decode(format!("invalid structured CloudEvent: data_base64: {e}"))
        })?;
        env.data = serde_json::from_slice(&bytes)
            .map_err(|e| CoreError::Decode(format!("data_base64 is not JSON: {e}")))?;
    }
    env.check()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw<'a>(
        attrs: &'a BTreeMap<String, String>,
        ct: Option<&'a str>,
        body: &'a [u8],
    ) -> RawMessage<'a> {
        RawMessage {
            attributes: attrs,
            content_type: ct,
            body,
            position: "sluice.q/0/7",
        }
    }

    /// What the worker took from a message before `relayed_job`.
    fn relayed_by_decoding(raw: RawMessage<'_>) -> Option<(JobId, u32)> {
        let env = decode_message(raw).ok()?;
        let attempt = env.sluiceattempt.filter(|_| env.source == SLUICE_SOURCE)?;
        Some((env.job_id(), attempt))
    }

    #[test]
    fn relayed_job_agrees_with_decoding() {
        let mut e = Envelope::new(JobId::new(), "q", json!({"a": [1, 2]}));
        e.sluiceattempt = Some(3);
        let (relayed, body) = e.into_binary();
        let with = |k: &str, v: Option<&str>| {
            let mut a = relayed.clone();
            match v {
                Some(v) => a.insert(k.to_string(), v.to_string()),
                None => a.remove(k),
            };
            a
        };
        let cases = [
            (relayed.clone(), body.clone()),
            (relayed.clone(), Vec::new()),
            (relayed.clone(), b"{not json".to_vec()),
            (relayed.clone(), b"{} trailing".to_vec()),
            (with(ATTEMPT_ATTR, None), body.clone()),
            (with(ATTEMPT_ATTR, Some("two")), body.clone()),
            (with("source", Some("producer")), body.clone()),
            (with("source", None), body.clone()),
            (with("id", Some("order-7")), body.clone()),
            (with("id", Some("")), body.clone()),
            (with("type", Some("")), body.clone()),
            (with("specversion", Some("0.3")), body.clone()),
        ];
        let mut some = 0;
        for (attrs, body) in &cases {
            let raw = raw(attrs, Some("application/json"), body);
            let want = relayed_by_decoding(raw);
            assert_eq!(relayed_job(raw), want, "{attrs:?} {body:?}");
            some += usize::from(want.is_some());
        }
        // the relay's message, its empty-body and its non-UUID-id variants
        assert_eq!(some, 3);
    }

    #[test]
    fn binary_round_trip() {
        let id = JobId::new();
        let mut e = Envelope::new(id, "q", json!({"a": 1}));
        e.sluicekey = Some("k".into());
        e.sluiceattempt = Some(2);
        let (attrs, body) = e.clone().into_binary();
        let d = decode_message(raw(&attrs, Some("application/json"), &body)).unwrap();
        assert_eq!(d, e);
        assert_eq!(d.job_id(), id);
    }

    #[test]
    fn structured_mode() {
        let body =
            br#"{"specversion":"1.0","id":"abc","source":"svc","type":"t","data":{"x":true}}"#;
        let none = BTreeMap::new();
        let d = decode_message(raw(
            &none,
            Some("application/cloudevents+json; charset=utf-8"),
            body,
        ))
        .unwrap();
        assert_eq!(d.data, json!({"x": true}));
        assert_eq!(d.job_id(), JobId::derived("svc", "abc"));
    }

    #[test]
    fn structured_data_base64_is_the_payload_when_it_is_json() {
        let none = BTreeMap::new();
        let ce = Some("application/cloudevents+json");
        let event = |rest: &str| {
            format!(r#"{{"specversion":"1.0","id":"a","source":"s","type":"t"{rest}}}"#)
        };
        // {"x":1}
        let body = event(r#","data_base64":"eyJ4IjoxfQ==""#);
        let d = decode_message(raw(&none, ce, body.as_bytes())).unwrap();
        assert_eq!(d.data, json!({"x": 1}));
        assert_eq!(d.job_id(), JobId::derived("s", "a"));
        // bytes that are not JSON, not base64, not a string, or both fields
        for (rest, says) in [
            (r#","data_base64":"/w==""#, "data_base64 is not JSON"),
            (r#","data_base64":"%%%""#, "data_base64"),
            (r#","data_base64":7"#, "not a string"),
            (r#","data":1,"data_base64":"MQ==""#, "both"),
        ] {
            let body = event(rest);
            let err = decode_message(raw(&none, ce, body.as_bytes())).unwrap_err();
            assert!(err.to_string().contains(says), "{rest}: {err}");
        }
    }

    #[test]
    fn plain_json_gets_position_id() {
        let none = BTreeMap::new();
        let d = decode_message(raw(&none, None, br#"[1,2]"#)).unwrap();
        assert_eq!(d.data, json!([1, 2]));
        let again = decode_message(raw(&none, None, br#"[1,2]"#)).unwrap();
        assert_eq!(d.job_id(), again.job_id());
    }

    #[test]
    fn bad_messages_are_errors() {
        let none = BTreeMap::new();
        assert!(decode_message(raw(&none, None, b"not json")).is_err());
        let mut attrs = BTreeMap::new();
        attrs.insert("specversion".to_string(), "1.0".to_string());
        let err = decode_message(raw(&attrs, None, b"{}")).unwrap_err();
        assert!(err.to_string().contains("\"id\""), "{err}");
        let bad_structured = br#"{"specversion":"0.3","id":"a","source":"s","type":"t"}"#;
        assert!(decode_message(raw(
            &none,
            Some("application/cloudevents+json"),
            bad_structured
        ))
        .is_err());
    }
}
