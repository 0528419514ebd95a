//! W3C trace context for sluice's spans. A job's `traceparent` is stored with
//! it at ingest; the spans of its life (ingest, attempts, the downstream
//! request, replays) continue that trace through [`continue_trace`], and the
//! [`layer`] gives `tracing` spans their OpenTelemetry ids. Without the layer
//! (a library user who installs none) nothing here fails: the helpers return
//! `None` and callers fall back to the stored `traceparent`.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing::{Level, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[cfg(feature = "testing")]
pub mod testing;
mod w3c;

pub use w3c::{format, normalize, parse};

/// Name of the span fields that carry the ids into log lines.
pub const TRACE_ID_FIELD: &str = "trace_id";
pub const SPAN_ID_FIELD: &str = "span_id";

/// A span exporter that leaves the [`TRACE_ID_FIELD`] and [`SPAN_ID_FIELD`]
/// attributes out of what it passes on to `E`: those fields put the ids into
/// log lines, and an exported span carries them as its own ids already.
#[derive(Debug)]
pub struct WithoutIdFields<E>(pub E);

impl<E: SpanExporter> SpanExporter for WithoutIdFields<E> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &mut batch {
            span.attributes
                .retain(|kv| !matches!(kv.key.as_str(), TRACE_ID_FIELD | SPAN_ID_FIELD));
        }
        self.0.export(batch).await
    }

    fn shutdown_with_timeout(&mut self, timeout: std::time::Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}

/// Makes `span` a child of the remote `parent` (when it is a valid
/// `traceparent`; otherwise the span keeps its local parent or starts a
/// trace), records its `trace_id` and `span_id` fields when the span declares
/// them, and returns the span's own `traceparent`: `None` when no
/// OpenTelemetry layer sees the span.
pub fn continue_trace(span: &Span, parent: Option<&str>) -> Option<String> {
    if let Some(remote) = parent.and_then(parse) {
        // Fails only without the layer or for a disabled span: then the
        // caller falls back to the stored traceparent.
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
    let cx = span.context();
    let own = cx.span().span_context().clone();
    let tp = format(&own)?;
    // the ids as `format` wrote them, `00-<trace id>-<span id>-<flags>`;
    // displayed, so that text logs show them bare, not quoted
    span.record(TRACE_ID_FIELD, tracing::field::display(&tp[3..35]));
    span.record(SPAN_ID_FIELD, tracing::field::display(&tp[36..52]));
    Some(tp)
}

/// The `traceparent` of `span` itself, `None` without the layer.
pub fn traceparent(span: &Span) -> Option<String> {
    format(span.context().span().span_context())
}

/// Links `span` to the span a valid `traceparent` names (a related trace
/// that is not its parent); an invalid one is ignored.
pub fn link(span: &Span, traceparent: &str) {
    if let Some(cx) = parse(traceparent) {
        span.add_link(cx);
    }
}

/// The OpenTelemetry layer over `provider`: every span of sluice's crates
/// (any level) and their events at `INFO` and above, the latter recorded as
/// span events.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("sluice"))
        // Per span and per poll of an instrumented future, these cost more
        // than they tell: the thread a task happened to start on, busy and
        // idle time (two clock reads per poll), and making the span the
        // current OpenTelemetry context on every enter (sluice propagates
        // trace context from the `tracing` span itself). Code location stays.
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(filter_fn(|m| {
            m.target().starts_with("sluice") && (m.is_span() || *m.level() <= Level::INFO)
        }))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::Empty;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// What a text log layer wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A continued span's log lines carry its own trace and span ids, bare,
    /// as its `traceparent` spells them.
    #[test]
    fn a_continued_span_logs_its_own_ids() {
        let provider = SdkTracerProvider::builder().build();
        let written = Written::default();
        let writer = written.clone();
        let text = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry()
            .with(layer(&provider))
            .with(text);
        let (tp, trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let span = tracing::info_span!("job.attempt", trace_id = Empty, span_id = Empty);
            let tp = continue_trace(&span, Some(parent)).expect("the layer gives ids");
            span.in_scope(|| tracing::info!("inside the attempt"));
            let own = span.context().span().span_context().clone();
            (tp, own.trace_id().to_string(), own.span_id().to_string())
        });
        assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(span_id, "00f067aa0ba902b7", "a child span of its own");
        assert_eq!(tp, format!("00-{trace_id}-{span_id}-01"));
        let log = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        let fields =
            format!("job.attempt{{{TRACE_ID_FIELD}={trace_id} {SPAN_ID_FIELD}={span_id}}}");
        assert!(log.contains(&fields), "{fields} not in {log:?}");
    }
}
