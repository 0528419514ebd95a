//! `schemas/admin-openapi.yaml` documents exactly the routes of
//! `admin_routes()`, each with bearer security and a `401` problem.

use std::collections::BTreeSet;

use serde_yaml::Value;
use sluice_api::admin_routes;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/admin-openapi.yaml"
    );
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let mut at = doc;
        for part in r.strip_prefix("#/").expect("local $ref").split('/') {
            at = at.get(part).unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        node = at;
    }
    node
}

#[test]
fn admin_openapi_paths_equal_admin_routes() {
    let doc = doc();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if METHODS.contains(&method) {
                documented.insert((method.to_uppercase(), path.as_str().unwrap().to_string()));
            }
        }
    }
    let routed: BTreeSet<_> = admin_routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed);
}

#[test]
fn every_admin_operation_needs_the_bearer_token() {
    let doc = doc();
    assert_eq!(
        doc["security"][0].get("bearer"),
        Some(&Value::Sequence(vec![]))
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (m, p, _) in admin_routes() {
        let op = &doc["paths"][p][m.as_str().to_lowercase()];
        assert!(op.get("security").is_none(), "{m} {p} overrides security");
        let r401 = resolve(&doc, &op["responses"]["401"]);
        assert!(r401["headers"].get("WWW-Authenticate").is_some(), "{m} {p}");
        assert!(
            r401["content"].get("application/problem+json").is_some(),
            "{m} {p}"
        );
    }
}
