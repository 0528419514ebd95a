//! The most single-job POSTs this machine serves under the benchmark's own
//! load: `wrk` against an axum server in this process that reads each
//! request's body and answers `202` with a fixed body the size of sluice's,
//! doing nothing else. An HTTP ingest on the same machine, driven the same
//! way, accepts at most this many jobs a second whatever it does behind the
//! socket, so it bounds what the ingest ratio can reach here.

use std::path::Path;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;

use crate::wrk::{self, WrkRun};

/// The answer of `POST /v1/queues/{queue}/jobs`, with a fixed id.
const ACCEPTED: &str = r#"{"id":"0193a7c2-5f1e-7c3d-9a4b-2e8f1c6d0a57","queue":"bench","status":"pending","status_url":"/v1/jobs/0193a7c2-5f1e-7c3d-9a4b-2e8f1c6d0a57"}"#;

async fn accept(
    body: Bytes,
) -> (
    StatusCode,
    [(header::HeaderName, &'static str); 1],
    &'static str,
) {
    std::hint::black_box(body);
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        ACCEPTED,
    )
}

/// POSTs `body` from wrk over `connections` connections for `secs` seconds
/// to the no-op server; wrk runs off the runtime's threads, which serve.
pub async fn noop_http(
    dir: &Path,
    body: &str,
    connections: usize,
    secs: u64,
) -> anyhow::Result<WrkRun> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/queues/bench/jobs", listener.local_addr()?);
    let app = Router::new().route("/v1/queues/bench/jobs", post(accept));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (dir, body) = (dir.to_path_buf(), body.to_string());
    let run =
        tokio::task::spawn_blocking(move || wrk::post(&dir, &url, &body, connections, secs)).await;
    server.abort();
    run?
}
