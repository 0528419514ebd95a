//! Trace context through the worker, with spans captured in memory: each
//! attempt's span continues the job's stored trace, the downstream request
//! carries that trace on, and retries and dead letters show on the spans.

use std::collections::BTreeMap;

use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry::Value as OtelValue;
use serde_json::json;
use sluice_core::JobStatus;
use sluice_trace::testing::{
    attribute as attr, capture, fresh_traceparent, ids, spans_of, wait_for_span, SpanData,
};

mod common;

use common::{downstream, http, queue, Rig};

/// The attempt spans of a trace, by attempt number.
fn attempts(trace: TraceId) -> Vec<SpanData> {
    let mut v: Vec<_> = spans_of(trace)
        .into_iter()
        .filter(|s| s.name == "job.attempt")
        .collect();
    v.sort_by_key(|s| match attr(s, "attempt") {
        Some(OtelValue::I64(n)) => n,
        _ => 0,
    });
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_continue_the_jobs_trace_to_the_downstream() {
    capture();
    let (url, seen) = downstream(vec![(503, None)]).await;
    let rig = Rig::new(queue("traced", http(&url))).await;
    rig.start(
        sluice_worker::handler_for(&rig.queue.handler).unwrap(),
        None,
    );
    let tp = fresh_traceparent();
    let (trace, stored_parent) = ids(&tp);
    let id = rig
        .submit_traced(json!({"n": 1}), BTreeMap::new(), &tp)
        .await;
    let job = rig.wait_final(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.attempts, 2, "one retry, then success");
    wait_for_span(trace, "job.attempt").await;
    let received: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, h, _)| h["traceparent"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(received.len(), 2);

    let mut spans = attempts(trace);
    for _ in 0..200 {
        if spans.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        spans = attempts(trace);
    }
    assert_eq!(spans.len(), 2, "one span per attempt");
    let all = spans_of(trace);
    for (n, (attempt, header)) in spans.iter().zip(&received).enumerate() {
        assert_eq!(attempt.span_context.trace_id(), trace);
        assert_eq!(
            attempt.parent_span_id, stored_parent,
            "the attempt is a child of the job's stored context"
        );
        assert_eq!(attr(attempt, "attempt"), Some(OtelValue::I64(n as i64 + 1)));
        assert_eq!(
            attr(attempt, "job_id"),
            Some(OtelValue::from(id.to_string()))
        );
        assert_eq!(attr(attempt, "trace_id"), None, "ids are not attributes");
        assert_eq!(attr(attempt, "span_id"), None, "ids are not attributes");
        // the downstream got this trace, its parent being the client span
        // under this attempt
        let (header_trace, header_parent) = ids(header);
        assert_eq!(header_trace, trace, "downstream traceparent {header}");
        let client = all
            .iter()
            .find(|s| s.span_context.span_id() == header_parent)
            .expect("the downstream's parent span was exported");
        assert_eq!(client.name, "downstream.request");
        assert_eq!(client.parent_span_id, attempt.span_context.span_id());
    }
    assert_eq!(attr(&spans[0], "outcome"), Some(OtelValue::from("retry")));
    assert!(
        spans[0]
            .events
            .events
            .iter()
            .any(|e| e.name == "attempt failed; retrying"),
        "the retry is an event of the first attempt's span"
    );
    assert!(matches!(spans[0].status, Status::Error { .. }));
    assert_eq!(
        attr(&spans[1], "outcome"),
        Some(OtelValue::from("succeeded"))
    );
    assert_ne!(spans[1].parent_span_id, SpanId::INVALID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_shows_on_the_attempt_span() {
    capture();
    let (url, _seen) = downstream(vec![(404, None)]).await;
    let rig = Rig::new(queue("traced-dead", http(&url))).await;
    rig.start(
        sluice_worker::handler_for(&rig.queue.handler).unwrap(),
        None,
    );
    let tp = fresh_traceparent();
    let (trace, _) = ids(&tp);
    let id = rig
        .submit_traced(json!({"n": 2}), BTreeMap::new(), &tp)
        .await;
    assert_eq!(rig.wait_final(id).await.status, JobStatus::Dead);
    let span = wait_for_span(trace, "job.attempt").await;
    assert_eq!(attr(&span, "outcome"), Some(OtelValue::from("dead")));
    assert!(matches!(span.status, Status::Error { .. }));
    assert!(span
        .events
        .events
        .iter()
        .any(|e| e.name == "job dead-lettered"));
}
