//! Router tests of the ingest routes over the real SQLite store: every status
//! code of the contract, and that a refused request stored nothing.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use sluice_core::{now_ms, JobId, JobStatus};
use sluice_store::StoreError;

const JOBS: &str = "/v1/queues/emails/jobs";
const BATCH: &str = "/v1/queues/emails/jobs/batch";

fn job_id(v: &Value) -> JobId {
    v["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn single_job_202_with_location_then_status() {
    let t = app().await;
    let r = post_json(&t.app, JOBS, &json!({"payload": {"to": "a@example.com"}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    let id = job_id(&body);
    let url = format!("/v1/jobs/{id}");
    assert_eq!(
        body,
        json!({"id": id.to_string(), "queue": "emails", "status": "pending", "status_url": url})
    );
    assert_eq!(r.header("location"), Some(url.as_str()));
    assert_eq!(total_jobs(&t.store).await, 1);

    let s = send(&t.app, get(&url)).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    let v = s.json();
    assert_eq!(v["id"], json!(id.to_string()));
    assert_eq!(v["queue"], "emails");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["attempts"], 0);
    assert_eq!(
        v["max_attempts"], EMAILS_MAX_ATTEMPTS,
        "queue default applies"
    );
    assert_eq!(v["key"], Value::Null);
    assert_eq!(v["last_error"], Value::Null);
    for t in ["created_at", "updated_at"] {
        let s = v[t].as_str().unwrap();
        assert!(
            s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T',
            "{t} not RFC 3339: {s}"
        );
    }
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attempts",
            "created_at",
            "id",
            "key",
            "last_error",
            "max_attempts",
            "queue",
            "status",
            "updated_at"
        ]
    );
}

#[tokio::test]
async fn delay_max_attempts_key_headers_and_traceparent_are_stored() {
    let t = app().await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = json!({"payload": {"to": "x"}, "key": "user-9", "delay_seconds": 60, "max_attempts": 3,
        "headers": {"X-Tenant": "t1"}});
    let before = now_ms();
    let r = send(&t.app, post(JOBS, body.to_string(), &[("traceparent", tp)])).await;
    let after = now_ms();
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let job = t.store.get_job(job_id(&r.json())).await.unwrap();
    assert_eq!(job.max_attempts, 3);
    assert_eq!(job.key.as_deref(), Some("user-9"));
    assert_eq!(job.headers.get("X-Tenant").map(String::as_str), Some("t1"));
    assert_eq!(job.traceparent.as_deref(), Some(tp));
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.payload, json!({"to": "x"}));
    // the only outbox row is due in 60 s, so nothing is claimable now
    let due = t.store.next_due().await.unwrap().expect("an outbox row");
    assert!(
        (before + 60_000..=after + 60_000).contains(&due),
        "due {due} not now+60s"
    );
    let claim = t
        .store
        .claim_outbox(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(claim.rows.is_empty(), "a delayed job was claimable");

    // without a (valid) traceparent a fresh one is generated
    let r = send(
        &t.app,
        post(
            JOBS,
            json!({"payload": {"to": "y"}}).to_string(),
            &[("traceparent", "junk")],
        ),
    )
    .await;
    let job = t.store.get_job(job_id(&r.json())).await.unwrap();
    let fresh = job.traceparent.unwrap();
    assert!(
        fresh.len() == 55 && fresh.starts_with("00-") && fresh != tp,
        "{fresh}"
    );
    assert_eq!(job.max_attempts, EMAILS_MAX_ATTEMPTS);

    // an integer as JSON Schema (and the OpenAPI spec) has it: 4.0 is 4,
    // 2.5 is not an integer
    let body = r#"{"payload": {"to": "z"}, "max_attempts": 4.0}"#;
    let r = send(&t.app, post(JOBS, body, &[])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let job = t.store.get_job(job_id(&r.json())).await.unwrap();
    assert_eq!(job.max_attempts, 4);
    let body = r#"{"payload": {"to": "z"}, "max_attempts": 2.5}"#;
    let p = assert_problem(
        &send(&t.app, post(JOBS, body, &[])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(pointers(&p), ["#/max_attempts"]);
}

/// A payload is stored as sent, up to insignificant whitespace: numbers
/// keep every digit (beyond 64 bits, beyond a double's precision, in their
/// notation, but for the case and sign of an exponent) and objects keep
/// their key order.
#[tokio::test]
async fn payload_numbers_and_key_order_are_kept_as_sent() {
    let t = app().await;
    let payload = concat!(
        r#"{"z":1,"a":123456789012345678901234567890,"d":0.1000000000000000055511151231257827,"#,
        r#""e":1E+2,"f":1.10,"big":1e400,"neg":-98765432109876543210,"m":{"y":[2,1],"b":null}}"#
    );
    for (uri, body) in [
        (
            "/v1/queues/plain/jobs",
            format!("{{\"payload\": {payload}}}"),
        ),
        (
            "/v1/queues/plain/jobs/batch",
            format!("{{\"jobs\": [{{\"payload\": {payload}}}]}}"),
        ),
    ] {
        let r = send(&t.app, post(uri, body, &[])).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let v = r.json();
        let id = job_id(if uri.ends_with("batch") {
            &v["jobs"][0]
        } else {
            &v
        });
        let stored = t.store.get_job(id).await.unwrap().payload;
        // exponents are written in one form, the same number
        let expected = payload.replace("1E+2", "1e+2").replace("1e400", "1e+400");
        assert_eq!(serde_json::to_string(&stored).unwrap(), expected);
    }
    // a schema checks such numbers (as doubles: an integer beyond 64 bits
    // is an integer) and the stored payload keeps them whole
    let huge = r#"{"to":"a@example.com","n":123456789012345678901234567890}"#;
    let r = send(&t.app, post(JOBS, format!("{{\"payload\": {huge}}}"), &[])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let stored = t.store.get_job(job_id(&r.json())).await.unwrap().payload;
    assert_eq!(serde_json::to_string(&stored).unwrap(), huge);
}

#[tokio::test]
async fn batch_202_in_order_then_status() {
    let t = app().await;
    let jobs: Vec<Value> = (0..3)
        .map(|i| json!({"payload": {"to": format!("{i}")}, "key": format!("k{i}")}))
        .collect();
    let r = post_json(&t.app, BATCH, &json!({ "jobs": jobs })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let items = r.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3);
    for (i, item) in items.iter().enumerate() {
        let id = job_id(item);
        assert_eq!(item["status"], "pending");
        assert_eq!(item["queue"], "emails");
        assert_eq!(item["status_url"], json!(format!("/v1/jobs/{id}")));
        let s = send(&t.app, get(&format!("/v1/jobs/{id}"))).await;
        assert_eq!(s.status, StatusCode::OK);
        assert_eq!(
            s.json()["key"],
            json!(format!("k{i}")),
            "ids are in request order"
        );
    }
    assert_eq!(total_jobs(&t.store).await, 3);
}

#[tokio::test]
async fn batch_of_exactly_1000_is_accepted() {
    let t = app().await;
    let jobs: Vec<Value> = (0..1000)
        .map(|i| json!({"payload": {"to": "x", "n": i}}))
        .collect();
    let r = post_json(&t.app, BATCH, &json!({ "jobs": jobs })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["jobs"].as_array().unwrap().len(), 1000);
    assert_eq!(total_jobs(&t.store).await, 1000);
}

#[tokio::test]
async fn batch_empty_or_over_1000_is_422_and_stores_nothing() {
    let t = app().await;
    let many: Vec<Value> = (0..1001).map(|_| json!({"payload": {"to": "x"}})).collect();
    for body in [
        json!({"jobs": []}),
        json!({ "jobs": many }),
        json!({}),
        json!({"jobs": {}}),
    ] {
        let r = post_json(&t.app, BATCH, &body).await;
        let p = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(pointers(&p), ["#/jobs"]);
        assert_eq!(p["type"], "urn:sluice:problem:invalid-request");
    }
    assert_eq!(total_jobs(&t.store).await, 0);
}

#[tokio::test]
async fn batch_with_one_bad_job_stores_nothing() {
    let t = app().await;
    // field error in job 1
    let body =
        json!({"jobs": [{"payload": {"to": "a"}}, {"max_attempts": 0}, {"payload": {"to": "c"}}]});
    let p = assert_problem(
        &post_json(&t.app, BATCH, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let mut ptrs = pointers(&p);
    ptrs.sort();
    assert_eq!(ptrs, ["#/jobs/1/max_attempts", "#/jobs/1/payload"]);
    assert!(
        p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["job"] == 1),
        "{p}"
    );
    // schema error in job 2
    let body = json!({"jobs": [{"payload": {"to": "a"}}, {"payload": {"to": "b"}}, {"payload": {"to": 3}}]});
    let p = assert_problem(
        &post_json(&t.app, BATCH, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(p["type"], "urn:sluice:problem:schema-violation");
    assert_eq!(pointers(&p), ["#/jobs/2/payload/to"]);
    assert_eq!(p["errors"][0]["job"], 2);
    assert_eq!(total_jobs(&t.store).await, 0);
}

#[tokio::test]
async fn idempotent_replay_returns_the_same_response_and_stores_one_job() {
    let t = app().await;
    let body = json!({"payload": {"to": "a"}}).to_string();
    let key = [("idempotency-key", "order-42")];
    let first = send(&t.app, post(JOBS, body.clone(), &key)).await;
    let second = send(&t.app, post(JOBS, body.clone(), &key)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(first.body, second.body, "replay body differs");
    assert_eq!(first.header("location"), second.header("location"));
    assert_eq!(second.json()["status"], "pending");
    assert_eq!(total_jobs(&t.store).await, 1);

    // the quoted structured-field form is the same key
    let quoted = send(
        &t.app,
        post(JOBS, body.clone(), &[("idempotency-key", "\"order-42\"")]),
    )
    .await;
    assert_eq!(quoted.body, first.body);
    // the same key on another queue is another scope
    let other = send(&t.app, post("/v1/queues/plain/jobs", body.clone(), &key)).await;
    assert_eq!(other.status, StatusCode::ACCEPTED);
    assert_ne!(other.json()["id"], first.json()["id"]);
    assert_eq!(total_jobs(&t.store).await, 2);

    // batch replay
    let batch = json!({"jobs": [{"payload": {"to": "a"}}, {"payload": {"to": "b"}}]}).to_string();
    let b1 = send(
        &t.app,
        post(BATCH, batch.clone(), &[("idempotency-key", "b-1")]),
    )
    .await;
    let b2 = send(&t.app, post(BATCH, batch, &[("idempotency-key", "b-1")])).await;
    assert_eq!(b1.status, StatusCode::ACCEPTED);
    assert_eq!(b1.body, b2.body);
    assert_eq!(total_jobs(&t.store).await, 4);
}

#[tokio::test]
async fn idempotency_key_with_another_body_is_422() {
    let t = app().await;
    let key = [("idempotency-key", "order-43")];
    let r = send(
        &t.app,
        post(JOBS, json!({"payload": {"to": "a"}}).to_string(), &key),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = send(
        &t.app,
        post(JOBS, json!({"payload": {"to": "b"}}).to_string(), &key),
    )
    .await;
    let p = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["type"], "urn:sluice:problem:idempotency-conflict");
    assert_eq!(total_jobs(&t.store).await, 1);
}

#[tokio::test]
async fn invalid_idempotency_key_is_400() {
    let t = app().await;
    let body = json!({"payload": {"to": "a"}}).to_string();
    let long = "k".repeat(256);
    for bad in ["has space", "\"\"", long.as_str()] {
        let r = send(
            &t.app,
            post(JOBS, body.clone(), &[("idempotency-key", bad)]),
        )
        .await;
        let p = assert_problem(&r, StatusCode::BAD_REQUEST);
        assert!(
            p["detail"].as_str().unwrap().contains("Idempotency-Key"),
            "{p}"
        );
    }
    assert_eq!(total_jobs(&t.store).await, 0);
}

#[tokio::test]
async fn malformed_json_is_400() {
    let t = app().await;
    for (uri, body) in [(JOBS, "{\"payload\": "), (BATCH, "not json"), (JOBS, "")] {
        let p = assert_problem(
            &send(&t.app, post(uri, body, &[])).await,
            StatusCode::BAD_REQUEST,
        );
        assert_eq!(p["type"], "urn:sluice:problem:malformed-json");
    }
    assert_eq!(total_jobs(&t.store).await, 0);
}

#[tokio::test]
async fn unknown_queue_is_404() {
    let t = app().await;
    for uri in ["/v1/queues/nope/jobs", "/v1/queues/nope/jobs/batch"] {
        let r = post_json(&t.app, uri, &json!({"payload": 1})).await;
        let p = assert_problem(&r, StatusCode::NOT_FOUND);
        assert_eq!(p["type"], "urn:sluice:problem:unknown-queue");
        assert!(p["detail"].as_str().unwrap().contains("nope"));
    }
    // a name that is not UTF-8 once decoded names no queue either
    for uri in ["/v1/queues/%FF/jobs", "/v1/queues/%C3%28/jobs/batch"] {
        let r = post_json(&t.app, uri, &json!({"payload": 1})).await;
        let p = assert_problem(&r, StatusCode::NOT_FOUND);
        assert_eq!(p["type"], "urn:sluice:problem:unknown-queue");
    }
    assert_eq!(total_jobs(&t.store).await, 0);
}

#[tokio::test]
async fn body_over_the_limit_is_413_just_under_is_202() {
    const LIMIT: usize = 2048;
    let t = app_with_limit(LIMIT).await;
    // {"payload":{"to":"xxx…"}} padded to an exact length
    let body_of = |len: usize| {
        let frame = r#"{"payload":{"to":""}}"#.len();
        format!(r#"{{"payload":{{"to":"{}"}}}}"#, "x".repeat(len - frame))
    };
    let r = send(&t.app, post(JOBS, body_of(LIMIT), &[])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(total_jobs(&t.store).await, 1);
    for uri in [JOBS, BATCH] {
        let r = send(&t.app, post(uri, body_of(LIMIT + 1), &[])).await;
        let p = assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(p["detail"].as_str().unwrap().contains("2048"), "{p}");
    }
    // also without a Content-Length (streamed body)
    let stream = futures_stream(body_of(LIMIT + 1));
    let req = Request::post(JOBS)
        .header("content-type", "application/json")
        .body(stream)
        .unwrap();
    assert_problem(&send(&t.app, req).await, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(total_jobs(&t.store).await, 1);
}

/// A body of unknown length (no `Content-Length`, no exact size hint).
fn futures_stream(s: String) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        s.into_bytes().chunks(100).map(|c| Ok(c.to_vec())).collect();
    Body::from_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let t = app().await;
    let body = json!({"payload": {"to": "a"}}).to_string();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        None,
    ] {
        for uri in [JOBS, BATCH] {
            let mut b = Request::post(uri);
            if let Some(ct) = ct {
                b = b.header("content-type", ct);
            }
            let r = send(&t.app, b.body(Body::from(body.clone())).unwrap()).await;
            let p = assert_problem(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            assert_eq!(p["type"], "urn:sluice:problem:unsupported-media-type");
        }
    }
    assert_eq!(total_jobs(&t.store).await, 0);
    // JSON with parameters and +json suffixes are accepted
    for ct in [
        "application/json; charset=utf-8",
        "application/vnd.acme+json",
    ] {
        let req = Request::post(JOBS)
            .header("content-type", ct)
            .body(Body::from(body.clone()))
            .unwrap();
        assert_eq!(send(&t.app, req).await.status, StatusCode::ACCEPTED, "{ct}");
    }
}

#[tokio::test]
async fn schema_violations_are_422_with_the_list() {
    let t = app().await;
    let r = post_json(&t.app, JOBS, &json!({"payload": {"to": 5, "n": "x"}})).await;
    let p = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["type"], "urn:sluice:problem:schema-violation");
    let mut ptrs = pointers(&p);
    ptrs.sort();
    assert_eq!(ptrs, ["#/payload/n", "#/payload/to"]);
    for e in p["errors"].as_array().unwrap() {
        assert!(e["detail"].as_str().unwrap().contains("type"), "{e}");
        assert!(
            e.get("job").is_none(),
            "single requests name no job index: {e}"
        );
    }
    let r = post_json(&t.app, JOBS, &json!({"payload": {}})).await;
    let p = assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers(&p), ["#/payload"]);
    assert!(
        p["errors"][0]["detail"].as_str().unwrap().contains("to"),
        "{p}"
    );
    assert_eq!(total_jobs(&t.store).await, 0);
    // the queue without a schema takes any payload
    let r = post_json(
        &t.app,
        "/v1/queues/plain/jobs",
        &json!({"payload": [1, "two"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn violations_listed_are_capped() {
    let t = app().await;
    let jobs: Vec<Value> = (0..200).map(|_| json!({"payload": {"to": 1}})).collect();
    let p = assert_problem(
        &post_json(&t.app, BATCH, &json!({ "jobs": jobs })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(
        p["errors"].as_array().unwrap().len(),
        sluice_api::MAX_LISTED_VIOLATIONS
    );
    assert!(p["detail"].as_str().unwrap().contains("more than"), "{p}");
    assert_eq!(total_jobs(&t.store).await, 0);
}

#[tokio::test]
async fn invalid_fields_are_422_with_the_list() {
    let t = app().await;
    let body = json!({"payload": {"to": "a"}, "surprise": 1, "max_attempts": 1001, "delay_seconds": -1,
        "key": "", "headers": {"Content-Length": "1", "X-Ok": 2}});
    let p = assert_problem(
        &post_json(&t.app, JOBS, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(p["type"], "urn:sluice:problem:invalid-request");
    let mut ptrs = pointers(&p);
    ptrs.sort();
    assert_eq!(
        ptrs,
        [
            "#/delay_seconds",
            "#/headers/Content-Length",
            "#/headers/X-Ok",
            "#/key",
            "#/max_attempts",
            "#/surprise"
        ]
    );
    let p = assert_problem(
        &post_json(&t.app, JOBS, &json!({"key": "k"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(pointers(&p), ["#/payload"]);
    let p = assert_problem(
        &post_json(&t.app, JOBS, &json!([1])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(pointers(&p), ["#"]);
    // a NUL character (which PostgreSQL cannot store) in the payload or key
    let body = json!({"payload": {"note": "a\u{0}b"}, "key": "k\u{0}"});
    let p = assert_problem(
        &post_json(&t.app, JOBS, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(pointers(&p), ["#/payload", "#/key"]);
    assert_eq!(total_jobs(&t.store).await, 0);
}

#[tokio::test]
async fn unknown_or_malformed_job_id_is_404() {
    let t = app().await;
    for id in [JobId::new().to_string().as_str(), "not-a-uuid", "%FF"] {
        let r = send(&t.app, get(&format!("/v1/jobs/{id}"))).await;
        let p = assert_problem(&r, StatusCode::NOT_FOUND);
        assert_eq!(p["type"], "urn:sluice:problem:job-not-found", "{id}");
    }
}

#[tokio::test]
async fn store_unavailable_is_503_with_retry_after_and_no_internals() {
    let t = app().await;
    let down =
        failing_app(|| StoreError::Unavailable("connect 10.0.0.7:5432 password=hunter2".into()));
    let checks = [
        post(JOBS, json!({"payload": {"to": "a"}}).to_string(), &[]),
        post(
            BATCH,
            json!({"jobs": [{"payload": {"to": "a"}}]}).to_string(),
            &[],
        ),
        get(&format!("/v1/jobs/{}", JobId::new())),
    ];
    for req in checks {
        let r = send(&down, req).await;
        let p = assert_problem(&r, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(p["type"], "urn:sluice:problem:unavailable");
        assert!(
            !r.text().contains("hunter2") && !r.text().contains("10.0.0.7"),
            "{}",
            r.text()
        );
    }
    assert_eq!(total_jobs(&t.store).await, 0);
}

#[tokio::test]
async fn other_store_errors_are_500_without_internals() {
    let broken = failing_app(|| StoreError::Corrupt("row 17: secret-column".into()));
    let r = post_json(&broken, JOBS, &json!({"payload": {"to": "a"}})).await;
    let p = assert_problem(&r, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!r.text().contains("secret-column"), "{p}");
    assert_eq!(r.header("retry-after"), None);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let t = app().await;
    let p = assert_problem(
        &send(&t.app, get("/v2/nothing")).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(p["type"], "about:blank");
    let r = send(&t.app, get(JOBS)).await;
    assert_problem(&r, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = send(&t.app, post("/v1/jobs/x", "{}", &[])).await;
    assert_problem(&r, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(total_jobs(&t.store).await, 0);
}

#[tokio::test]
async fn invalid_settings_are_refused_naming_the_queue() {
    use sluice_api::{ApiError, Health, IngestQueue, IngestSettings, IngestState};
    use sluice_core::QueueConfig;
    let make = |queues| {
        let settings = IngestSettings {
            max_body_bytes: 1024,
            queues,
        };
        IngestState::new(
            std::sync::Arc::new(Failing(|| StoreError::NotFound)),
            settings,
            Health::new(vec![]),
            render_fixed(),
        )
    };
    let bad = vec![IngestQueue {
        config: QueueConfig::named("orders"),
        schema: Some(json!({"type": 12})),
    }];
    let err = make(bad).unwrap_err();
    assert!(
        matches!(&err, ApiError::InvalidSchema { queue, .. } if queue == "orders"),
        "{err:?}"
    );
    assert!(err.to_string().contains("orders"), "{err}");
    let dup = vec![
        IngestQueue {
            config: QueueConfig::named("a"),
            schema: None,
        },
        IngestQueue {
            config: QueueConfig::named("a"),
            schema: None,
        },
    ];
    assert!(matches!(make(dup).unwrap_err(), ApiError::DuplicateQueue(q) if q == "a"));
}
