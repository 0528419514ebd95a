//! Maps sluice messages to AMQP properties and back.
//!
//! Outgoing: persistent (`delivery_mode` 2), `message_id` = job id,
//! `content_type`, CloudEvents attributes as `cloudEvents:<name>` headers
//! (the AMQP binding of CloudEvents), the key as [`KEY_HEADER`] and the trace
//! context also as a plain `traceparent` header for AMQP-aware tracing.
//!
//! Incoming: attributes from `cloudEvents:` or `cloudEvents_` headers (bare
//! names), the key from [`KEY_HEADER`], and a position: the queue and the
//! `message_id` when the producer set one (stable across redeliveries, and
//! shared by every message published with that id), else a random one.
//! AMQP gives a message no identity of its own: two messages with the same
//! body and headers are two messages, so without a `message_id` each
//! delivery is a job of its own. A redelivery of such a message after a
//! crash (an unacknowledged delivery) is then a duplicate with a new id;
//! producers that want duplicates to share an id set `message_id`.

use std::collections::BTreeMap;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

use crate::{AckToken, Delivery, IncomingMessage, OutgoingMessage};

/// Header prefixes of CloudEvents attributes (binary mode): the binding's
/// `cloudEvents:` and the `cloudEvents_` some clients use instead.
pub const CE_PREFIXES: [&str; 2] = ["cloudEvents:", "cloudEvents_"];
/// Header carrying the message key (Kafka's message key).
pub const KEY_HEADER: &str = "sluice-key";
/// Quorum queues count deliveries in this header.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
/// AMQP persistent delivery mode.
const PERSISTENT: u8 = 2;

/// The properties of an outgoing message.
pub fn properties(m: &OutgoingMessage) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in &m.attributes {
        headers.insert(
            ShortString::from(format!("{}{name}", CE_PREFIXES[0])),
            AMQPValue::LongString(LongString::from(value.as_str())),
        );
    }
    if let Some(tp) = m.attributes.get("traceparent") {
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(tp.as_str())),
        );
    }
    if let Some(key) = &m.key {
        headers.insert(
            KEY_HEADER.into(),
            AMQPValue::LongString(LongString::from(key.as_str())),
        );
    }
    let mut props = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_message_id(ShortString::from(m.job_id.to_string()))
        .with_headers(headers);
    if let Some(ct) = &m.content_type {
        props = props.with_content_type(ShortString::from(ct.as_str()));
    }
    props
}

/// A received AMQP delivery as a sluice [`Delivery`].
pub fn delivery(
    topic: &str,
    queue: &str,
    token: AckToken,
    d: lapin::message::Delivery,
) -> Delivery {
    let props = &d.properties;
    let mut attributes = BTreeMap::new();
    let mut key = None;
    let mut delivery_count = None;
    if let Some(headers) = props.headers() {
        for (name, value) in headers.inner() {
            let name = name.as_str();
            if let Some(bare) = CE_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
                if let Some(v) = text(value) {
                    attributes.insert(bare.to_string(), v);
                }
            } else if name == KEY_HEADER {
                key = text(value);
            } else if name == DELIVERY_COUNT_HEADER {
                delivery_count = text(value).and_then(|v| v.parse::<u32>().ok());
            }
        }
    }
    let content_type = props.content_type().as_ref().map(|c| c.to_string());
    let (position, stable_position) = match props
        .message_id()
        .as_ref()
        .filter(|m| !m.as_str().is_empty())
    {
        Some(id) => (format!("{queue}/{id}"), true),
        None => (format!("{queue}/delivery:{}", uuid::Uuid::new_v4()), false),
    };
    let redeliveries = delivery_count.unwrap_or(0).max(u32::from(d.redelivered));
    Delivery::new(
        token,
        redeliveries,
        IncomingMessage {
            topic: topic.to_string(),
            key,
            attributes,
            content_type,
            body: d.data,
            position,
            stable_position,
        },
    )
}

/// A header value as text, where it has one.
fn text(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        // CloudEvents `time` as an AMQP timestamp (seconds since the epoch).
        AMQPValue::Timestamp(secs) => {
            sluice_core::format_ms(i64::try_from(*secs).ok()?.checked_mul(1000)?)
        }
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
        _ => return None,
    })
}
