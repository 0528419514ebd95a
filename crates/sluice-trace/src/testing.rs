//! Spans captured in memory, for tests of the crates that make them.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry::Value;
pub use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::trace::{
    IdGenerator, InMemorySpanExporter, RandomIdGenerator, SdkTracerProvider,
};
use tracing_subscriber::layer::SubscriberExt;

/// Installs (once per test binary) a global subscriber whose OpenTelemetry
/// layer exports every finished span synchronously to an in-memory exporter,
/// through [`crate::WithoutIdFields`] as a served process does.
pub fn capture() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(crate::WithoutIdFields(exporter.clone()))
            .build();
        let subscriber = tracing_subscriber::registry().with(crate::layer(&provider));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        exporter
    })
}

/// The finished spans of one trace.
pub fn spans_of(trace_id: TraceId) -> Vec<SpanData> {
    capture()
        .get_finished_spans()
        .expect("in-memory exporter")
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect()
}

/// The finished span of `trace_id` named `name`, when there is one.
pub fn span_named(trace_id: TraceId, name: &str) -> Option<SpanData> {
    spans_of(trace_id).into_iter().find(|s| s.name == name)
}

/// The finished span of `trace_id` named `name`, waiting up to five seconds
/// for it to end; panics (naming the spans of the trace) when it does not.
pub async fn wait_for_span(trace_id: TraceId, name: &str) -> SpanData {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = span_named(trace_id, name) {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            let seen: Vec<_> = spans_of(trace_id).into_iter().map(|s| s.name).collect();
            panic!("no span {name} in trace {trace_id}; its spans: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Trace id and parent span id of a `traceparent`.
pub fn ids(traceparent: &str) -> (TraceId, SpanId) {
    let cx = crate::parse(traceparent).expect("a valid traceparent");
    (cx.trace_id(), cx.span_id())
}

/// A sampled `traceparent` of a new trace (no other test shares it).
pub fn fresh_traceparent() -> String {
    let ids = RandomIdGenerator::default();
    let cx = SpanContext::new(
        ids.new_trace_id(),
        ids.new_span_id(),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    crate::format(&cx).expect("random ids are valid")
}

/// The value of a span's attribute.
pub fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}
