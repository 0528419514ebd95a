//! Trace context through the routers, with spans captured in memory: the
//! ingest span continues the caller's trace and the job stores that span's
//! context; a replay's span sits in the job's trace, linked to the operator's.

mod common;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use common::admin::{admin, req};
use common::*;
use opentelemetry::trace::SpanId;
use serde_json::{json, Value};
use sluice_core::{now_ms, JobId};
use sluice_store::{EnqueueRequest, NewJob, Outcome};
use sluice_trace::testing::{capture, fresh_traceparent, ids, wait_for_span};

fn job_id(v: &Value) -> JobId {
    v["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn ingest_span_is_a_child_of_the_callers_and_its_context_is_stored() {
    capture();
    let t = app().await;
    let incoming = fresh_traceparent();
    let (trace_id, caller_span) = ids(&incoming);
    let body = json!({"payload": {"to": "a@example.com"}}).to_string();
    let r = send(
        &t.app,
        post(
            "/v1/queues/emails/jobs",
            body,
            &[("traceparent", &incoming)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let stored = t.store.get_job(job_id(&r.json())).await.unwrap();
    let stored = stored.traceparent.expect("a stored traceparent");
    let (stored_trace, stored_parent) = ids(&stored);
    assert_eq!(stored_trace, trace_id, "the caller's trace id is kept");
    assert_ne!(
        stored_parent, caller_span,
        "the job's parent is sluice's span"
    );
    let span = wait_for_span(trace_id, "job.ingest").await;
    assert_eq!(span.span_context.span_id(), stored_parent);
    assert_eq!(span.parent_span_id, caller_span);

    // a batch: every job carries the one request span's context
    let batch = json!({"jobs": [{"payload": {"to": "b"}}, {"payload": {"to": "c"}}]});
    let incoming = fresh_traceparent();
    let r = send(
        &t.app,
        post(
            "/v1/queues/emails/jobs/batch",
            batch.to_string(),
            &[("traceparent", &incoming)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let mut stored = Vec::new();
    for j in r.json()["jobs"].as_array().unwrap() {
        stored.push(t.store.get_job(job_id(j)).await.unwrap().traceparent);
    }
    assert_eq!(stored[0], stored[1]);
    let (trace, parent) = ids(stored[0].as_deref().unwrap());
    assert_eq!(trace, ids(&incoming).0);
    assert_eq!(
        wait_for_span(trace, "job.ingest")
            .await
            .span_context
            .span_id(),
        parent
    );
}

#[tokio::test]
async fn without_a_caller_trace_the_ingest_span_starts_one() {
    capture();
    let t = app().await;
    let body = json!({"payload": {"to": "a@example.com"}}).to_string();
    let r = send(
        &t.app,
        post("/v1/queues/emails/jobs", body, &[("traceparent", "junk")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let stored = t.store.get_job(job_id(&r.json())).await.unwrap();
    let (trace, parent) = ids(stored.traceparent.as_deref().unwrap());
    let span = wait_for_span(trace, "job.ingest").await;
    assert_eq!(span.span_context.span_id(), parent);
    assert_eq!(span.parent_span_id, SpanId::INVALID, "a root span");
}

#[tokio::test]
async fn replay_span_is_in_the_jobs_trace_and_linked_to_the_operators() {
    capture();
    let a = admin().await;
    let job_tp = fresh_traceparent();
    let (job_trace, job_parent) = ids(&job_tp);
    let job = NewJob {
        id: JobId::new(),
        queue: "emails".into(),
        payload: json!({"n": 1}),
        key: None,
        headers: BTreeMap::new(),
        max_attempts: 1,
        available_at: now_ms(),
        traceparent: Some(job_tp.clone()),
    };
    let id = job.id;
    let req_ = EnqueueRequest {
        jobs: vec![job],
        idempotency: None,
    };
    a.store.enqueue(vec![req_]).await.pop().unwrap().unwrap();
    a.finish(
        id,
        Outcome::Dead {
            error: "boom".into(),
        },
    )
    .await;

    let operator = fresh_traceparent();
    let uri = format!("/admin/v1/dead-letters/{id}/replay");
    let r = send(
        &a.app,
        req(Method::POST, &uri, None, &[("traceparent", &operator)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let span = wait_for_span(job_trace, "job.replay").await;
    assert_eq!(span.parent_span_id, job_parent);
    let linked: Vec<_> = span.links.iter().map(|l| l.span_context.clone()).collect();
    let (op_trace, op_span) = ids(&operator);
    assert!(
        linked
            .iter()
            .any(|c| c.trace_id() == op_trace && c.span_id() == op_span),
        "replay span not linked to the operator's request: {linked:?}"
    );
}
