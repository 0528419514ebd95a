//! CloudEvents binary mode on Kafka: attributes as `ce_<name>` headers, the
//! content type as `content-type`, the job id or key as the message key.

use std::collections::BTreeMap;

use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::Message;

use crate::{AckToken, Delivery, OutgoingMessage};

const CE_PREFIX: &str = "ce_";
const CONTENT_TYPE: &str = "content-type";

/// The headers of an outgoing message.
pub(crate) fn outgoing_headers(m: &OutgoingMessage) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(m.attributes.len() + 1);
    for (name, value) in &m.attributes {
        headers = headers.insert(Header {
            key: &format!("{CE_PREFIX}{name}"),
            value: Some(value.as_bytes()),
        });
    }
    if let Some(ct) = &m.content_type {
        headers = headers.insert(Header {
            key: CONTENT_TYPE,
            value: Some(ct.as_bytes()),
        });
    }
    headers
}

/// The message key of an outgoing message: its key, else its job id.
pub(crate) fn outgoing_key(m: &OutgoingMessage) -> String {
    m.key.clone().unwrap_or_else(|| m.job_id.to_string())
}

/// A delivery (token still unset) from a fetched message: `ce_*` headers
/// become bare attribute names (values not UTF-8 are replaced lossily), the
/// `content-type` header (any case) the content type, and the position is
/// `topic/partition/offset`.
pub(crate) fn delivery(msg: &BorrowedMessage<'_>) -> Delivery {
    let mut attributes = BTreeMap::new();
    let mut content_type = None;
    if let Some(headers) = msg.headers() {
        for h in headers.iter() {
            let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
            if let Some(name) = h.key.strip_prefix(CE_PREFIX) {
                if !name.is_empty() {
                    attributes.insert(name.to_string(), value);
                }
            } else if h.key.eq_ignore_ascii_case(CONTENT_TYPE) {
                content_type = Some(value);
            }
        }
    }
    Delivery {
        token: AckToken(0),
        topic: msg.topic().to_string(),
        key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        attributes,
        content_type,
        body: msg.payload().unwrap_or_default().to_vec(),
        position: format!("{}/{}/{}", msg.topic(), msg.partition(), msg.offset()),
        redeliveries: 0,
    }
}
