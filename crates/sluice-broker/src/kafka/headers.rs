//! CloudEvents binary mode on Kafka: attributes as `ce_<name>` headers and the
//! content type as `content-type`.

use std::collections::BTreeMap;

use rdkafka::bindings;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::Message;

use crate::{AckToken, Delivery, IncomingMessage, OutgoingMessage};

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
/// [`position`]'s.
pub(crate) fn delivery(msg: &BorrowedMessage<'_>) -> Delivery {
    let (attributes, content_type) = attributes_of(message_headers(msg));
    Delivery::new(
        AckToken(0),
        0,
        IncomingMessage {
            topic: msg.topic().to_string(),
            key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            attributes,
            content_type,
            body: msg.payload().unwrap_or_default().to_vec(),
            position: position(
                msg.topic(),
                msg.partition(),
                msg.offset(),
                msg.timestamp().to_millis(),
            ),
            stable_position: true,
        },
    )
}

/// A record's position, `topic/partition/offset/timestamp` (the timestamp
/// in epoch milliseconds, left out when the record has none): the same for
/// every delivery of the record, since the timestamp is stored with it. The
/// timestamp tells apart two records at one offset of one topic name, as
/// after the topic was deleted and made again, or the producers moved to
/// another cluster: by offset alone, a plain JSON record there would take
/// the id of an earlier job and be acknowledged as done without running.
fn position(topic: &str, partition: i32, offset: i64, timestamp: Option<i64>) -> String {
    match timestamp {
        Some(ms) => format!("{topic}/{partition}/{offset}/{ms}"),
        None => format!("{topic}/{partition}/{offset}"),
    }
}

/// The CloudEvents attributes and content type among `headers`. A header
/// whose name is not UTF-8 is neither, and is left out.
fn attributes_of<'a>(
    headers: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> (BTreeMap<String, String>, Option<String>) {
    let mut attributes = BTreeMap::new();
    let mut content_type = None;
    for (key, value) in headers {
        let Ok(key) = std::str::from_utf8(key) else {
            continue;
        };
        let value = String::from_utf8_lossy(value.unwrap_or_default()).into_owned();
        if let Some(name) = key.strip_prefix(CE_PREFIX) {
            if !name.is_empty() {
                attributes.insert(name.to_string(), value);
            }
        } else if key.eq_ignore_ascii_case(CONTENT_TYPE) {
            content_type = Some(value);
        }
    }
    (attributes, content_type)
}

/// Every header of `msg`, name and value as bytes. A producer may name a
/// header with any bytes, and rdkafka's own accessors (`Headers::iter`,
/// `get`, `try_get`) panic on a name that is not UTF-8, which would end the
/// consumer thread on one record; this reads them as librdkafka gives them,
/// borrowed from the message.
#[allow(unsafe_code)]
fn message_headers<'a>(
    msg: &'a BorrowedMessage<'_>,
) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> {
    let mut list: *mut bindings::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `msg.ptr()` is the live message `msg` borrows; librdkafka
    // sets `list` to the message's own header list (freed with the
    // message), or returns an error when it has none.
    let err = unsafe { bindings::rd_kafka_message_headers(msg.ptr(), &mut list) };
    let list = match err {
        bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => list.cast_const(),
        _ => std::ptr::null(),
    };
    // SAFETY: the list belongs to `msg`, which outlives `'a`
    unsafe { header_list(list) }
}

/// The headers of the librdkafka header list `list` (none when null), name
/// and value as bytes.
///
/// # Safety
/// A non-null `list` must stay alive and unchanged for `'a`.
#[allow(unsafe_code)]
unsafe fn header_list<'a>(
    list: *const bindings::rd_kafka_headers_t,
) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> {
    let mut idx = 0;
    std::iter::from_fn(move || {
        if list.is_null() {
            return None;
        }
        let mut name: *const std::ffi::c_char = std::ptr::null();
        let mut value: *const std::ffi::c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `list` is live (the caller's promise); librdkafka sets
        // `name` to a NUL-terminated string and `value` to `size` bytes or
        // null, both owned by the list, or returns an error past the last
        // header.
        let err = unsafe {
            bindings::rd_kafka_header_get_all(list, idx, &mut name, &mut value, &mut size)
        };
        if err != bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            return None;
        }
        idx += 1;
        // SAFETY: as above; the list, and so both, outlive `'a`.
        Some(unsafe {
            (
                std::ffi::CStr::from_ptr(name).to_bytes(),
                (!value.is_null()).then(|| std::slice::from_raw_parts(value.cast::<u8>(), size)),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;
    use sluice_core::JobId;

    /// A record whose header name is not UTF-8 (any bytes are allowed: Go
    /// clients take names as `[]byte`) is read, that header left out.
    #[test]
    #[allow(unsafe_code)]
    fn a_header_name_that_is_not_utf8_is_left_out() {
        let headers: [(&[u8], &[u8]); 4] = [
            (b"\xffk", b"x"),
            (b"ce_id", b"a"),
            (b"ce_\xfe", b"y"),
            (b"Content-Type", b"application/json"),
        ];
        // SAFETY: a list made, filled and destroyed here; names and values
        // are copied in by librdkafka
        let list = unsafe { bindings::rd_kafka_headers_new(headers.len()) };
        for (name, value) in headers {
            let err = unsafe {
                bindings::rd_kafka_header_add(
                    list,
                    name.as_ptr().cast(),
                    name.len() as isize,
                    value.as_ptr().cast(),
                    value.len() as isize,
                )
            };
            assert_eq!(
                err,
                bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            );
        }
        // SAFETY: the list lives until destroyed below, after its last use
        let read: Vec<_> = unsafe { header_list(list) }.collect();
        assert_eq!(read.len(), 4);
        assert_eq!(read[0], (&b"\xffk"[..], Some(&b"x"[..])));
        let (attributes, content_type) = attributes_of(unsafe { header_list(list) });
        drop(read);
        unsafe { bindings::rd_kafka_headers_destroy(list) };
        assert_eq!(
            attributes,
            BTreeMap::from([("id".to_string(), "a".to_string())])
        );
        assert_eq!(content_type.as_deref(), Some("application/json"));
    }

    /// Records at the same offset of the same topic name but written at
    /// other times (a topic made again) have other positions, so plain JSON
    /// records there get other job ids; one record has one position.
    #[test]
    fn a_position_tells_apart_records_at_one_offset_written_at_other_times() {
        let first = position("sluice.q", 0, 7, Some(1_700_000_000_000));
        assert_eq!(first, "sluice.q/0/7/1700000000000");
        assert_eq!(first, position("sluice.q", 0, 7, Some(1_700_000_000_000)));
        let again = position("sluice.q", 0, 7, Some(1_800_000_000_000));
        assert_ne!(first, again);
        assert_ne!(
            JobId::derived("sluice:broker-position", &first),
            JobId::derived("sluice:broker-position", &again)
        );
        assert_eq!(position("sluice.q", 1, 7, None), "sluice.q/1/7");
    }

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
