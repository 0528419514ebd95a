//! NUL characters, which no store holds alike: PostgreSQL refuses them in
//! `text` and in `jsonb` strings (`\u0000`), SQLite keeps them. Input over
//! HTTP that holds one is refused; text that arrives otherwise (a direct
//! producer's key, a downstream's error body) has them replaced.

use serde_json::Value;

/// The replacement of a NUL character, as for bytes that are not UTF-8.
const REPLACEMENT: char = '\u{FFFD}';

/// Whether any string or object key in `v` holds a NUL character.
pub fn json_holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(json_holds_nul),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains('\0') || json_holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// `s` with every NUL character replaced by U+FFFD.
pub fn without_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', REPLACEMENT.encode_utf8(&mut [0; 4]))
    } else {
        s
    }
}

/// `v` with every NUL character of its strings and keys replaced by U+FFFD.
pub fn json_without_nul(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(without_nul(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(json_without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (without_nul(k), json_without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_characters_are_found_and_replaced_anywhere() {
        for v in [
            json!("a\u{0}b"),
            json!([1, ["x\u{0}"]]),
            json!({"k": {"deep": "\u{0}"}}),
            json!({"k\u{0}": 1}),
        ] {
            assert!(json_holds_nul(&v), "{v}");
            let clean = json_without_nul(v.clone());
            assert!(!json_holds_nul(&clean), "{clean}");
            assert!(clean.to_string().contains(REPLACEMENT), "{clean}");
        }
        assert!(!json_holds_nul(&json!({"a": [1, "b", null, true]})));
        assert_eq!(without_nul("a\u{0}b".into()), "a\u{FFFD}b");
        assert_eq!(without_nul("ab".into()), "ab");
    }
}
