//! Bad input to the admin router: malformed filters, cursors and bodies,
//! out-of-range limits and rates, unknown ids and queues. Each is refused
//! (400, 404, 413, 415) and none of them changes anything.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::admin::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let t = admin().await;
    let id = t.kill("emails", &["x"]).await[0];
    let unknown = sluice_core::JobId::new();
    for uri in [
        "/admin/v1/dead-letters?limit=0",
        "/admin/v1/dead-letters?limit=1001",
        "/admin/v1/dead-letters?limit=ten",
        "/admin/v1/dead-letters?limit=-1",
        "/admin/v1/dead-letters?cursor=not-a-cursor",
        "/admin/v1/dead-letters?cursor=MTIzOnh5eg",
        "/admin/v1/dead-letters?queue=no%20such!",
        "/admin/v1/dead-letters?colour=red",
        "/admin/v1/dead-letters?limit=1&limit=2",
        "/admin/v1/audit?limit=0",
        "/admin/v1/audit?limit=1001",
    ] {
        assert_problem(&t.get(uri).await, StatusCode::BAD_REQUEST);
    }
    let long = "e".repeat(1025);
    assert_problem(
        &t.get(&format!("/admin/v1/dead-letters?error_contains={long}"))
            .await,
        StatusCode::BAD_REQUEST,
    );
    // PostgreSQL holds no NUL character: a filter with one is bad input
    assert_problem(
        &t.get("/admin/v1/dead-letters?error_contains=a%00b").await,
        StatusCode::BAD_REQUEST,
    );
    for uri in [
        format!("/admin/v1/dead-letters/{unknown}"),
        "/admin/v1/dead-letters/not-a-uuid".to_string(),
        format!("/admin/v1/replays/{}", uuid::Uuid::new_v4()),
        "/admin/v1/replays/nope".to_string(),
    ] {
        assert_problem(&t.get(&uri).await, StatusCode::NOT_FOUND);
    }
    assert_problem(
        &t.delete(&format!("/admin/v1/dead-letters/{unknown}")).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &t.delete("/admin/v1/dead-letters/xyz").await,
        StatusCode::NOT_FOUND,
    );
    for uri in [
        format!("/admin/v1/dead-letters/{unknown}/replay"),
        "/admin/v1/dead-letters/xyz/replay".into(),
    ] {
        assert_problem(&t.post(&uri, None).await, StatusCode::NOT_FOUND);
    }
    for uri in [
        "/admin/v1/queues/nope/pause",
        "/admin/v1/queues/nope/resume",
    ] {
        assert_problem(&t.post(uri, None).await, StatusCode::NOT_FOUND);
    }
    let bulk = "/admin/v1/dead-letters/replay";
    for body in [
        json!({"rate_per_second": 0}),
        json!({"rate_per_second": -1.5}),
        json!({"rate_per_second": 1e9}),
        json!({"rate_per_second": "fast"}),
        json!({"limit": 0}),
        json!({"limit": 100_001}),
        json!({"limit": -3}),
        json!({"limit": 2.5}),
        json!({"limit": "5"}),
        json!({"ids": []}),
        json!({"ids": ["not-a-uuid"]}),
        json!({"queue": "bad name"}),
        json!({"error_contains": long}),
        json!({"error_contains": "a\u{0}b"}),
        json!({"colour": "red"}),
        json!({"dry_run": "yes"}),
        json!([1, 2]),
    ] {
        assert_problem(&t.post(bulk, Some(&body)).await, StatusCode::BAD_REQUEST);
    }
    let malformed = Request::post(bulk)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"queue\": "))
        .unwrap();
    assert_problem(&send(&t.app, malformed).await, StatusCode::BAD_REQUEST);
    let text = Request::post(bulk)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_problem(
        &send(&t.app, text).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    // over the 8 MiB admin body limit: a problem too, on both replay routes;
    // a body that is not JSON is refused for its type whatever its size
    let huge = format!("{{\"ids\": [\"{}\"]}}", "a".repeat(9 << 20));
    let single = format!("/admin/v1/dead-letters/{id}/replay");
    for (uri, content_type, status) in [
        (bulk, "application/json", StatusCode::PAYLOAD_TOO_LARGE),
        (
            single.as_str(),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (bulk, "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ] {
        let req = Request::post(uri)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(huge.clone()))
            .unwrap();
        let p = assert_problem(&send(&t.app, req).await, status);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            let detail = p["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(&(8 << 20).to_string()), "{p}");
        }
    }

    // Nothing changed: no audit entry, the dead letter is still dead, no
    // queue paused.
    assert!(t.audit().await.is_empty());
    assert_eq!(t.status(id).await, sluice_core::JobStatus::Dead);
    assert_eq!(t.dead_count().await, 1);
    assert!(t.store.paused_queues().await.unwrap().is_empty());
    assert_eq!(t.store.get_job(id).await.unwrap().replay_count, 0);
}
