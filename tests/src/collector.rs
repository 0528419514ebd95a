//! A tiny OTLP/HTTP trace collector: `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest`, every span kept in memory. It is what the
//! in-memory span exporter is for a library test, for a separate process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One exported span (ids as lower-case hex).
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// The exporting process's `service.name` and `sluice.role`.
    pub service: String,
    pub role: String,
    /// The keys of the span's own attributes, in order.
    pub attributes: Vec<String>,
}

/// The running collector; it stops when dropped.
#[derive(Clone)]
pub struct Collector {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl Collector {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let c = Self {
            addr: listener.local_addr()?,
            spans: Arc::default(),
            _stop: Arc::new(tx),
        };
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(c.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(c)
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span of `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<CollectedSpan> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn receive(State(c): State<Collector>, body: Bytes) -> StatusCode {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut got = Vec::new();
    for rs in req.resource_spans {
        let attr = |key: &str| {
            rs.resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == key))
                .and_then(|kv| kv.value.as_ref()?.value.clone())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s,
                    other => format!("{other:?}"),
                })
                .unwrap_or_default()
        };
        let (service, role) = (attr("service.name"), attr("sluice.role"));
        for ss in rs.scope_spans {
            for s in ss.spans {
                got.push(CollectedSpan {
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    service: service.clone(),
                    role: role.clone(),
                    attributes: s.attributes.into_iter().map(|kv| kv.key).collect(),
                });
            }
        }
    }
    c.spans.lock().unwrap().extend(got);
    StatusCode::OK
}
