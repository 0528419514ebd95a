//! OpenTelemetry tracing of this process. The tracer provider always runs, so
//! spans have W3C ids and the `traceparent` flow works with export off; spans
//! are exported (OTLP over HTTP, protobuf, batched) only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//! set. The standard `OTEL_*` variables (service name, resource attributes,
//! headers, batch delay) apply.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// Variables that turn export on.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];
/// How long shutdown waits for the last batch to be exported.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The tracer provider of this process; [`Tracing::shutdown`] flushes it.
#[derive(Debug)]
pub struct Tracing {
    pub provider: SdkTracerProvider,
    exporting: bool,
}

/// Whether the environment asks for OTLP export.
fn export_configured(var: impl Fn(&str) -> Option<String>) -> bool {
    ENDPOINT_VARS
        .iter()
        .any(|k| var(k).is_some_and(|v| !v.trim().is_empty()))
}

/// The provider for a process running `role`. Must run inside the tokio
/// runtime (the batch exporter is a task on it).
pub fn init(role: &str) -> anyhow::Result<Tracing> {
    let env = |k: &str| std::env::var(k).ok();
    let mut resource =
        Resource::builder().with_attribute(KeyValue::new("sluice.role", role.to_string()));
    if env("OTEL_SERVICE_NAME").is_none_or(|v| v.is_empty()) {
        resource = resource.with_service_name("sluice");
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
    let exporting = export_configured(env);
    if exporting {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .context("OTLP span exporter (check OTEL_EXPORTER_OTLP_ENDPOINT)")?;
        let exporter = sluice_trace::WithoutIdFields(exporter);
        builder = builder.with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build());
    }
    Ok(Tracing {
        provider: builder.build(),
        exporting,
    })
}

impl Tracing {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Exports what is still batched and stops the exporter. Call it off
    /// the runtime's worker threads (it blocks) while the runtime still runs.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            if self.exporting {
                eprintln!("warning: flushing trace export: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_is_off_unless_an_endpoint_is_set() {
        assert!(!export_configured(|_| None));
        assert!(!export_configured(|_| Some(" ".into())));
        for var in ENDPOINT_VARS {
            assert!(export_configured(
                |k| (k == var).then(|| "http://127.0.0.1:4318".into())
            ));
        }
    }
}
