//! The admin router: authentication of every route, queues, pause and
//! resume, dead letters and the audit log, over a real SQLite store.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::admin::*;
use common::*;
use serde_json::json;
use sluice_api::admin_routes;
use sluice_store::Outcome;

/// Every route of the table with real values for its parameters.
fn concrete(path: &str, dead: &str, replay: &str) -> String {
    let id = if path.starts_with("/admin/v1/replays/") {
        replay
    } else {
        dead
    };
    path.replace("{queue}", "emails").replace("{id}", id)
}

#[tokio::test]
async fn every_route_and_unknown_path_needs_the_token() {
    let t = admin().await;
    let dead = t.kill("emails", &["boom"]).await[0].to_string();
    let other = t.kill("emails", &["boom"]).await[0];
    let r = t
        .post(&format!("/admin/v1/dead-letters/{other}/replay"), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let replay = t.audit().await[0]["detail"]["replay_id"]
        .as_str()
        .unwrap()
        .to_string();
    let audit_before = t.audit().await.len();

    let mut checked = Vec::new();
    let routes: Vec<(Method, String)> = admin_routes()
        .into_iter()
        .map(|(m, p, _)| (m, concrete(p, &dead, &replay)))
        .chain([
            (Method::GET, "/admin/v1/nope".to_string()),
            (Method::POST, "/admin".to_string()),
            (Method::GET, "/anything".to_string()),
            (Method::PUT, "/admin/v1/queues".to_string()),
        ])
        .collect();
    assert!(
        routes.len() >= 10,
        "the route table lists every admin route"
    );
    for (method, uri) in &routes {
        for auth in [
            None,
            Some("Bearer wrong-token".to_string()),
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Basic {TOKEN}")),
            Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        ] {
            let mut b = Request::builder().method(method.clone()).uri(uri.as_str());
            if let Some(a) = &auth {
                b = b.header(header::AUTHORIZATION, a.as_str());
            }
            let body = if *method == Method::POST {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from("{}")
            } else {
                Body::empty()
            };
            let r = send(&t.app, b.body(body).unwrap()).await;
            assert_problem(&r, StatusCode::UNAUTHORIZED);
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{method} {uri}"
            );
            assert!(
                !r.text().contains(TOKEN),
                "the token leaks in {method} {uri}"
            );
        }
        checked.push(format!("{method} {uri}"));
    }
    // Nothing was done by the refused requests.
    assert_eq!(t.audit().await.len(), audit_before);
    assert!(t.store.paused_queues().await.unwrap().is_empty());
    assert_eq!(t.dead_count().await, 1);
    // With the token the same requests pass authentication.
    for (method, uri) in &routes {
        let body = (*method == Method::POST).then(|| json!({"dry_run": true}));
        let r = send(&t.app, req(method.clone(), uri, body.as_ref(), &[])).await;
        assert_ne!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri}: {}",
            r.text()
        );
    }
    assert_eq!(checked.len(), routes.len());
}

#[tokio::test]
async fn queues_show_counts_pause_state_and_concurrency() {
    let t = admin().await;
    t.kill("emails", &["a", "b"]).await;
    let req = sluice_store::EnqueueRequest {
        jobs: vec![sluice_store::NewJob {
            id: sluice_core::JobId::new(),
            queue: "plain".into(),
            payload: json!({}),
            key: None,
            headers: Default::default(),
            max_attempts: 5,
            available_at: sluice_core::now_ms() - 2_000,
            traceparent: None,
        }],
        idempotency: None,
    };
    t.store.enqueue(vec![req]).await.pop().unwrap().unwrap();
    // two worker processes report their adaptive limits for `emails`;
    // a third one's report lapsed
    let now = sluice_core::now_ms();
    for (worker, limit, expires) in [
        ("w1", 3, now + 60_000),
        ("w2", 5, now + 60_000),
        ("w3", 7, now - 1),
    ] {
        t.store
            .report_concurrency("emails", worker, limit, expires)
            .await
            .unwrap();
    }
    // a worker opened the breaker of `plain`
    assert!(t
        .store
        .open_circuit("plain", sluice_core::now_ms() + 60_000)
        .await
        .unwrap());
    let r = t.get("/admin/v1/queues").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let qs = v["queues"].as_array().unwrap();
    assert_eq!(qs.len(), 2);
    assert_eq!(qs[0]["name"], "emails");
    assert_eq!(qs[0]["dead"], 2);
    assert_eq!(qs[0]["pending"], 0);
    assert_eq!(qs[0]["oldest_pending_age_seconds"], json!(null));
    assert_eq!(
        qs[0]["concurrency"],
        json!({"min": 2, "max": 8, "limit": 8, "workers": 2})
    );
    assert_eq!(qs[0]["paused"], false);
    assert_eq!(qs[0]["circuit"], "closed");
    assert_eq!(qs[1]["name"], "plain");
    assert_eq!(qs[1]["circuit"], "open");
    assert_eq!(qs[1]["concurrency"]["workers"], 0);
    assert_eq!(qs[1]["pending"], 1);
    assert_eq!(qs[1]["dead"], 0);
    assert!(qs[1]["oldest_pending_age_seconds"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn pause_and_resume_are_audited() {
    let t = admin().await;
    let hdr = [("sluice-actor", "alice<ops>")];
    let r = t
        .post_with("/admin/v1/queues/emails/pause", None, &hdr)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"queue": "emails", "paused": true}));
    assert_eq!(t.store.paused_queues().await.unwrap(), vec!["emails"]);
    let v = t.get("/admin/v1/queues").await.json();
    assert_eq!(v["queues"][0]["paused"], true);
    assert_eq!(v["queues"][1]["paused"], false);

    let r = t.post("/admin/v1/queues/emails/resume", None).await;
    assert_eq!(r.json(), json!({"queue": "emails", "paused": false}));
    assert!(t.store.paused_queues().await.unwrap().is_empty());

    let audit = t.audit().await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0]["action"], "resume");
    assert_eq!(audit[0]["actor"], "admin");
    assert_eq!(audit[1]["action"], "pause");
    assert_eq!(audit[1]["actor"], "alice_ops_");
    assert_eq!(audit[1]["target"], "emails");
    assert_eq!(audit[1]["count"], 1);
    assert!(audit[1]["at"].as_str().unwrap().ends_with('Z'));
    let r = t.get("/admin/v1/audit?limit=1").await;
    assert_eq!(r.json()["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn dead_letters_page_stably_with_filters() {
    let t = admin().await;
    let emails = t
        .kill(
            "emails",
            &[
                "Timeout 1",
                "timeout 2",
                "TIMEOUT 3",
                "timeout 4",
                "timeout 5",
            ],
        )
        .await;
    let plain = t.kill("plain", &["http 500", "http 503"]).await;
    let mut seen = Vec::new();
    let mut uri = "/admin/v1/dead-letters?limit=2".to_string();
    for page in 0.. {
        assert!(page < 10, "pagination does not end");
        let v = t.get(&uri).await.json();
        for d in v["dead_letters"].as_array().unwrap() {
            seen.push(d["id"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => uri = format!("/admin/v1/dead-letters?limit=2&cursor={c}"),
            None => break,
        }
    }
    let all: Vec<String> = emails.iter().chain(&plain).map(|i| i.to_string()).collect();
    assert_eq!(seen, all, "every dead letter once, in death order");

    let v = t.get("/admin/v1/dead-letters?queue=plain").await.json();
    let d = &v["dead_letters"][0];
    assert_eq!(d["id"], plain[0].to_string());
    assert_eq!(d["queue"], "plain");
    assert_eq!(d["payload"], json!({"n": 0}));
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_error"], "http 500");
    assert_eq!(d["replay_count"], 0);
    assert!(d["died_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["next_cursor"], json!(null));
    let v = t
        .get("/admin/v1/dead-letters?error_contains=timeout&queue=emails")
        .await
        .json();
    assert_eq!(v["dead_letters"].as_array().unwrap().len(), 5);
    let v = t
        .get("/admin/v1/dead-letters?error_contains=503")
        .await
        .json();
    assert_eq!(v["dead_letters"][0]["id"], plain[1].to_string());
}

#[tokio::test]
async fn a_dead_letter_shows_every_attempt() {
    let t = admin().await;
    let id = t.kill("emails", &["first"]).await[0];
    // Replay it, fail once (retry), then die again.
    assert_eq!(
        t.post(&format!("/admin/v1/dead-letters/{id}/replay"), None)
            .await
            .status,
        202
    );
    let retry = Outcome::Retry {
        available_at: sluice_core::now_ms(),
        error: "flaky".into(),
    };
    t.finish(id, retry).await;
    t.finish(
        id,
        Outcome::Dead {
            error: "second".into(),
        },
    )
    .await;
    let r = t.get(&format!("/admin/v1/dead-letters/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["id"], id.to_string());
    assert_eq!(v["replay_count"], 1);
    assert_eq!(v["attempts"], 2);
    assert_eq!(v["last_error"], "second");
    assert_eq!(v["key"], "k0");
    assert_eq!(v["max_attempts"], 5);
    let h = v["history"].as_array().unwrap();
    let brief: Vec<_> = h
        .iter()
        .map(|a| {
            (
                a["replay_count"].clone(),
                a["attempt"].clone(),
                a["outcome"].clone(),
                a["error"].clone(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        vec![
            (json!(0), json!(1), json!("dead"), json!("first")),
            (json!(1), json!(1), json!("retry"), json!("flaky")),
            (json!(1), json!(2), json!("dead"), json!("second")),
        ]
    );
    assert!(h[0]["started_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn delete_removes_a_dead_letter_and_is_audited() {
    let t = admin().await;
    let id = t.kill("emails", &["x"]).await[0];
    let r = t.delete(&format!("/admin/v1/dead-letters/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"id": id.to_string(), "deleted": true}));
    assert_problem(
        &t.get(&format!("/admin/v1/dead-letters/{id}")).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &t.delete(&format!("/admin/v1/dead-letters/{id}")).await,
        StatusCode::NOT_FOUND,
    );
    let audit = t.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0]["action"].as_str(), audit[0]["target"].as_str()),
        (Some("delete"), Some(id.to_string().as_str()))
    );
}
