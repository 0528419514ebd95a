//! Logging (text or JSON, with trace ids) and the Prometheus metrics recorder.

use std::io::IsTerminal;
use std::sync::Arc;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the tracing subscriber; `RUST_LOG` refines the default `info`.
/// A `client` command (the CLI) logs warnings and errors to stderr only.
/// With a tracer provider, sluice's spans get OpenTelemetry ids and log
/// lines inside them carry their `trace_id` and `span_id` fields. The filter
/// is global (spans need sluice's targets at `info`, the default): a
/// per-layer log filter beside the tracing layer's lost events on the AMQP
/// path.
pub fn init_logging(format: LogFormat, client: bool, tracer: Option<&SdkTracerProvider>) {
    let default = if client {
        "warn"
    } else {
        "info,sqlx=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // colours only for a terminal (not for files or a log collector), and
    // not when NO_COLOR asks for none
    let terminal = match client {
        true => std::io::stderr().is_terminal(),
        false => std::io::stdout().is_terminal(),
    };
    let ansi = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi);
    let fmt = match (format, client) {
        (LogFormat::Text, false) => fmt.boxed(),
        (LogFormat::Json, false) => fmt.json().flatten_event(true).boxed(),
        (LogFormat::Text, true) => fmt.with_writer(std::io::stderr).boxed(),
        (LogFormat::Json, true) => fmt
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(tracer.map(sluice_trace::layer))
        .init();
}

/// Renders the Prometheus text exposition of every metric of this process.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Installs the global metrics recorder and returns its renderer.
pub fn init_metrics() -> anyhow::Result<RenderMetrics> {
    let latency = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)?
        .set_buckets_for_metric(
            Matcher::Suffix("_rows".into()),
            &[1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
        )?
        .install_recorder()?;
    sluice_api::metrics::describe_metrics();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(Arc::new(move || handle.render()))
}
