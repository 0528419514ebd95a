//! `schemas/openapi.yaml` describes exactly the routes of the ingest router
//! and every status code of the contract.

use std::collections::BTreeSet;

use serde_yaml::Value;
use sluice_api::INGEST_ROUTES;

/// The contract's status codes per route (DESIGN.md, "HTTP API").
const CONTRACT: &[(&str, &str, &[u16])] = &[
    (
        "POST",
        "/v1/queues/{queue}/jobs",
        &[202, 400, 404, 413, 415, 422, 503],
    ),
    (
        "POST",
        "/v1/queues/{queue}/jobs/batch",
        &[202, 400, 404, 413, 415, 422, 503],
    ),
    ("GET", "/v1/jobs/{id}", &[200, 404]),
    ("GET", "/v1/queues/{queue}/scaling", &[200, 404, 503]),
    ("GET", "/healthz", &[200]),
    ("GET", "/readyz", &[200, 503]),
    ("GET", "/metrics", &[200]),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Follows a local `$ref` (`#/a/b`) until a non-reference node.
fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let mut at = doc;
        for part in r
            .strip_prefix("#/")
            .unwrap_or_else(|| panic!("non-local $ref {r}"))
            .split('/')
        {
            at = at.get(part).unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        node = at;
    }
    node
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    doc["paths"][path]
        .get(method.to_lowercase())
        .unwrap_or_else(|| panic!("{method} {path} undocumented"))
}

#[test]
fn openapi_is_3_1() {
    let doc = doc();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
}

#[test]
fn openapi_paths_equal_ingest_routes() {
    let doc = doc();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if METHODS.contains(&method) {
                documented.insert((method.to_uppercase(), path.as_str().unwrap().to_string()));
            }
        }
    }
    let routed: BTreeSet<_> = INGEST_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed);
    let contract: BTreeSet<_> = CONTRACT
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(contract, routed, "the test's contract table is out of date");
}

#[test]
fn openapi_documents_every_contract_status_code() {
    let doc = doc();
    for (method, path, codes) in CONTRACT {
        let responses = &operation(&doc, method, path)["responses"];
        for code in *codes {
            let resp = responses
                .get(code.to_string())
                .unwrap_or_else(|| panic!("{method} {path}: status {code} undocumented"));
            let resp = resolve(&doc, resp);
            assert!(
                resp["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{method} {path} {code}"
            );
            if *code >= 400 {
                let problem = resp["content"]
                    .get("application/problem+json")
                    .unwrap_or_else(|| panic!("{method} {path} {code}: not problem+json"));
                let schema = resolve(&doc, &problem["schema"]);
                let base = schema
                    .get("allOf")
                    .map_or(schema, |all| resolve(&doc, &all[0]));
                let required: Vec<_> = base["required"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(
                    required,
                    ["type", "title", "status", "detail"],
                    "{method} {path} {code}"
                );
            }
        }
    }
}

#[test]
fn store_unavailable_documents_retry_after_and_accepted_job_documents_location() {
    let doc = doc();
    for path in ["/v1/queues/{queue}/jobs", "/v1/queues/{queue}/jobs/batch"] {
        let r503 = resolve(&doc, &operation(&doc, "POST", path)["responses"]["503"]);
        assert!(r503["headers"].get("Retry-After").is_some(), "{path}");
    }
    let r202 = &operation(&doc, "POST", "/v1/queues/{queue}/jobs")["responses"]["202"];
    assert!(r202["headers"].get("Location").is_some());
}
