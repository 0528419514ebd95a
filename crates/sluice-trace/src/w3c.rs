//! The W3C Trace Context `traceparent` header: validation and conversion.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// A valid `traceparent` as version `00`, or `None` (W3C Trace Context §3.2:
/// lower-case hex, no all-zero ids, version `ff` invalid, later versions may
/// append fields).
pub fn normalize(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() < 55 || !s.is_ascii() {
        return None;
    }
    let (head, rest) = s.split_at(55);
    let version = &head[0..2];
    let lower_hex = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let parts: Vec<&str> = head.split('-').collect();
    let [v, trace_id, parent_id, flags] = parts.as_slice() else {
        return None;
    };
    let shape_ok = v.len() == 2
        && trace_id.len() == 32
        && parent_id.len() == 16
        && flags.len() == 2
        && parts.iter().all(|p| lower_hex(p));
    if !shape_ok
        || version == "ff"
        || trace_id.bytes().all(|b| b == b'0')
        || parent_id.bytes().all(|b| b == b'0')
    {
        return None;
    }
    let tail_ok = rest.is_empty() || (version != "00" && rest.starts_with('-'));
    tail_ok.then(|| format!("00-{trace_id}-{parent_id}-{flags}"))
}

/// The remote span context a valid `traceparent` names.
pub fn parse(s: &str) -> Option<SpanContext> {
    let tp = normalize(s)?;
    let trace_id = TraceId::from_hex(&tp[3..35]).ok()?;
    let span_id = SpanId::from_hex(&tp[36..52]).ok()?;
    let flags = u8::from_str_radix(&tp[53..55], 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    ))
}

/// The version `00` `traceparent` of a valid span context.
pub fn format(cx: &SpanContext) -> Option<String> {
    cx.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            cx.trace_id(),
            cx.span_id(),
            cx.trace_flags().to_u8()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_valid_and_refuses_invalid() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(normalize(tp).as_deref(), Some(tp));
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert_eq!(normalize(future).as_deref(), Some(tp));
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "garbage",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn parse_and_format_round_trip() {
        for tp in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ] {
            let cx = parse(tp).unwrap();
            assert!(cx.is_remote());
            assert_eq!(cx.is_sampled(), tp.ends_with("01"));
            assert_eq!(format(&cx).as_deref(), Some(tp));
        }
        assert_eq!(format(&SpanContext::empty_context()), None);
    }
}
