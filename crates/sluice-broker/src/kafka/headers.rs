//! CloudEvents binary mode on Kafka: attributes as `ce_<name>` headers and the
//! content type as `content-type`.

use std::collections::BTreeMap;

use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::Message;

use crate::{AckToken, Delivery, OutgoingMessage};

const CE_PREFIX: &str = "ce_";
const CONTENT_TYPE: &str = "content-type";

/// The headers of an outgoing message.
pub(crate) fn outgoing_headers(m: &OutgoingMessage) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(m.attributes.len() + 1);
    // one buffer for every header name (librdkafka copies each)
    let mut key = String::from(CE_PREFIX);
    for (name, value) in &m.attributes {
        key.truncate(CE_PREFIX.len());
        key.push_str(name);
        headers = headers.insert(Header {
            key: &key,
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

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::JobId;

    #[test]
    fn every_attribute_becomes_its_ce_header() {
        let names = [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "subject",
            "sluicequeue",
            "sluicekey",
            "sluiceattempt",
            "sluiceerror",
            "traceparent",
            "someextension",
        ];
        let m = OutgoingMessage {
            topic: "t".into(),
            job_id: JobId::new(),
            key: None,
            attributes: names
                .iter()
                .map(|n| (n.to_string(), format!("v-{n}")))
                .collect(),
            content_type: Some("application/json".into()),
            body: Vec::new(),
        };
        let headers = outgoing_headers(&m);
        let got: BTreeMap<String, String> = headers
            .iter()
            .map(|h| {
                let value = String::from_utf8(h.value.unwrap().to_vec()).unwrap();
                (h.key.to_string(), value)
            })
            .collect();
        let mut want: BTreeMap<String, String> = names
            .iter()
            .map(|n| (format!("ce_{n}"), format!("v-{n}")))
            .collect();
        want.insert("content-type".into(), "application/json".into());
        assert_eq!(got, want);
    }
}
