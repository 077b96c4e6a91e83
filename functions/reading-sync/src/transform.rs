//! MongoDB document → `reading_analytics` row, and BSON → JSON. Pure functions, table-tested.
//!
//! | BSON | JSON in `payload` / `meta` |
//! |---|---|
//! | document, array | object, array. PostgreSQL's JSONB keeps one value per key (the last) and orders keys its own way (shorter first, then bytewise), as the old hub's table did; the SQLite store keeps the document's order |
//! | string, symbol, JavaScript code | string |
//! | int32, int64 | number (exact) |
//! | double | number; `NaN`, `Infinity`, `-Infinity` (no JSON number) as those strings |
//! | Decimal128 | string with its exact decimal value (`"1234.5600"`): a JSON number would lose digits |
//! | boolean, null | boolean, null; `undefined` → null |
//! | ObjectId | 24-character hex string |
//! | date | RFC 3339 UTC string with milliseconds (`"2024-05-01T12:00:00.000Z"`); a date outside years 1–9999 as `{"$date": <ms since epoch>}` |
//! | binary (any subtype) | base64 string (standard alphabet, padded) |
//! | regular expression | `"/pattern/options"` |
//! | timestamp | `{"t": seconds, "i": increment}` |
//! | JavaScript code with scope | `{"code": "...", "scope": {...}}` |
//! | MinKey / MaxKey | `{"$minKey": 1}` / `{"$maxKey": 1}` |
//! | DBPointer (deprecated) | its relaxed Extended JSON |
//!
//! A string containing a NUL character cannot be stored in PostgreSQL JSONB, so such a document
//! is rejected (dead-lettered) rather than altered. Each document's `_id` becomes its key,
//! `mongo_id`, as [`key_of`] says; an `_id` whose key would hold a NUL or pass
//! [`MAX_KEY_BYTES`] is dead-lettered under a `sha256:` key ([`dead_letter_key`]).

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use mongodb::bson::{Bson, Document};
use serde_json::{Map, Number, Value, json};
use sha2::{Digest, Sha256};

/// One row of `reading_analytics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub mongo_id: String,
    pub event_timestamp: DateTime<Utc>,
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub payload: Option<Value>,
    pub meta: Option<Value>,
}

/// Longest `mongo_id` accepted, in bytes. PostgreSQL's btree index rows stop at 2,704 bytes
/// (`reading_analytics.mongo_id` is unique, the dead-letter table's key too); a longer key would
/// fail its whole batch.
pub const MAX_KEY_BYTES: usize = 1024;

/// Prefixes that mark a typed key (see [`key_of`]); a string `_id` starting with one is typed too.
const TYPED_PREFIXES: [&str; 4] = ["string:", "int:", "bson:", "sha256:"];

/// The key (`mongo_id`) an `_id` is stored under. Distinct `_id`s always get distinct keys:
///
/// - ObjectId: its 24-character hex, as the old hub wrote it;
/// - string: the string as is, unless it could be mistaken for another key — empty, 24
///   lowercase hex characters (an ObjectId's key), or starting with `string:`, `int:`, `bson:`
///   or `sha256:` — then `string:<the string>`;
/// - int32 / int64 (which MongoDB treats as the same `_id`): `int:<decimal>`;
/// - any other type: `bson:<canonical Extended JSON>`, e.g. `bson:{"$numberDouble":"1.5"}`.
pub fn key_of(id: &Bson) -> String {
    match id {
        Bson::ObjectId(oid) => oid.to_hex(),
        Bson::String(s) if is_plain(s) => s.clone(),
        Bson::String(s) => format!("string:{s}"),
        Bson::Int32(i) => format!("int:{i}"),
        Bson::Int64(i) => format!("int:{i}"),
        other => format!("bson:{}", other.clone().into_canonical_extjson()),
    }
}

fn is_plain(s: &str) -> bool {
    let oid_like = s.len() == 24 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    !s.is_empty() && !oid_like && !TYPED_PREFIXES.iter().any(|p| s.starts_with(p))
}

/// The `mongo_id` of a document, or why it cannot have one (it is dead-lettered).
pub fn mongo_id(doc: &Document) -> Result<String, String> {
    let key = key_of(doc.get("_id").ok_or("document has no _id")?);
    if key.contains('\0') {
        Err("_id contains a NUL character, which PostgreSQL cannot store".into())
    } else if key.len() > MAX_KEY_BYTES {
        Err(format!(
            "_id is {} bytes long as a key; at most {MAX_KEY_BYTES} are accepted",
            key.len()
        ))
    } else {
        Ok(key)
    }
}

/// The dead-letter key of a document: its `mongo_id`, or, when the `_id` cannot be one,
/// `sha256:<hex digest of the key>` — bounded, storable, and still distinct per `_id`.
pub fn dead_letter_key(doc: &Document) -> String {
    mongo_id(doc).unwrap_or_else(|_| {
        let key = key_of(doc.get("_id").unwrap_or(&Bson::Null));
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    })
}

/// Maps one document; `Err` says why it cannot be stored (it goes to the dead-letter table).
pub fn reading(doc: &Document) -> Result<Reading, String> {
    Ok(Reading {
        mongo_id: mongo_id(doc)?,
        event_timestamp: timestamp(doc.get("timestamp"))?,
        source: optional_string(doc, "source")?,
        event_type: optional_string(doc, "event_type")?,
        payload: optional_json(doc, "payload")?,
        meta: optional_json(doc, "meta")?,
    })
}

fn optional_string(doc: &Document, key: &str) -> Result<Option<String>, String> {
    match doc.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) if s.contains('\0') => Err(format!("{key} contains a NUL character")),
        Some(Bson::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "{key} must be a string, not {:?}",
            other.element_type()
        )),
    }
}

fn optional_json(doc: &Document, key: &str) -> Result<Option<Value>, String> {
    match doc.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(v) => {
            let json = to_json(v);
            if has_nul(&json) {
                return Err(format!(
                    "{key} contains a NUL character, which PostgreSQL JSONB cannot store"
                ));
            }
            Ok(Some(json))
        }
    }
}

/// `timestamp`: a BSON date, or an ISO-8601 string with an offset (`2024-05-01T12:00:00Z`,
/// `…+02:00`, `…+0200`) or without one (read as UTC).
fn timestamp(v: Option<&Bson>) -> Result<DateTime<Utc>, String> {
    let t = match v {
        Some(Bson::DateTime(d)) => DateTime::from_timestamp_millis(d.timestamp_millis())
            .ok_or_else(|| format!("timestamp {d} is out of range"))?,
        Some(Bson::String(s)) => parse_iso8601(s)
            .ok_or_else(|| format!("timestamp {s:?} is not an ISO-8601 date-time"))?,
        Some(other) => {
            return Err(format!(
                "timestamp must be a date or an ISO-8601 string, not {:?}",
                other.element_type()
            ));
        }
        None => return Err("document has no timestamp".into()),
    };
    // PostgreSQL's timestamptz stops at year 294276; years outside 1–9999 are data errors.
    if !(1..=9999).contains(&chrono::Datelike::year(&t)) {
        return Err(format!("timestamp {t} is out of range"));
    }
    Ok(t)
}

fn parse_iso8601(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // `%z` takes the offset with or without its colon (`+0200`, `+02:00`); RFC 3339 wants one.
    let with_offset = ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"]
        .iter()
        .find_map(|f| DateTime::parse_from_str(s, f).ok())
        .map(|t| t.with_timezone(&Utc));
    with_offset.or_else(|| {
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .map(|n| n.and_utc())
    })
}

/// BSON → JSON, as the table in the module docs says.
pub fn to_json(v: &Bson) -> Value {
    match v {
        Bson::Double(f) => Number::from_f64(*f).map(Value::Number).unwrap_or_else(|| {
            Value::String(
                if f.is_nan() {
                    "NaN"
                } else if *f > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                }
                .into(),
            )
        }),
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => Value::String(s.clone()),
        Bson::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Bson::Document(d) => Value::Object(document_to_json(d)),
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::RegularExpression(r) => Value::String(format!("/{}/{}", r.pattern, r.options)),
        Bson::JavaScriptCodeWithScope(c) => {
            json!({"code": c.code, "scope": document_to_json(&c.scope)})
        }
        Bson::Int32(i) => json!(i),
        Bson::Int64(i) => json!(i),
        Bson::Timestamp(t) => json!({"t": t.time, "i": t.increment}),
        Bson::Binary(b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(&b.bytes))
        }
        Bson::ObjectId(oid) => Value::String(oid.to_hex()),
        Bson::DateTime(d) => match DateTime::from_timestamp_millis(d.timestamp_millis()) {
            Some(t) if (1..=9999).contains(&chrono::Datelike::year(&t)) => {
                Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
            }
            _ => json!({"$date": d.timestamp_millis()}),
        },
        Bson::Decimal128(d) => Value::String(d.to_string()),
        Bson::MinKey => json!({"$minKey": 1}),
        Bson::MaxKey => json!({"$maxKey": 1}),
        Bson::DbPointer(_) => v.clone().into_relaxed_extjson(),
    }
}

fn document_to_json(d: &Document) -> Map<String, Value> {
    d.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

/// Whether any string or key in `v` holds a NUL, which PostgreSQL's JSONB cannot store.
pub fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The whole document for the dead-letter table: relaxed Extended JSON, which keeps every BSON
/// type recoverable.
pub fn raw_json(doc: &Document) -> String {
    Bson::Document(doc.clone())
        .into_relaxed_extjson()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;
    use mongodb::bson::spec::BinarySubtype;
    use mongodb::bson::{
        self as bson, Binary, Decimal128, JavaScriptCodeWithScope, Regex, Timestamp, doc,
    };
    use std::str::FromStr;

    #[test]
    fn bson_maps_to_json_as_documented() {
        let oid = ObjectId::from_str("65f1c0ffee0000000000abcd").expect("oid");
        let cases: Vec<(Bson, Value)> = vec![
            (Bson::Double(1.5), json!(1.5)),
            (Bson::Double(f64::NAN), json!("NaN")),
            (Bson::Double(f64::INFINITY), json!("Infinity")),
            (Bson::Double(f64::NEG_INFINITY), json!("-Infinity")),
            (Bson::String("é\"x".into()), json!("é\"x")),
            (Bson::Int32(-7), json!(-7)),
            (
                Bson::Int64(9_007_199_254_740_993),
                json!(9_007_199_254_740_993_i64),
            ),
            (
                Bson::Decimal128(Decimal128::from_str("1234.5600").expect("dec")),
                json!("1234.5600"),
            ),
            (Bson::Boolean(true), json!(true)),
            (Bson::Null, Value::Null),
            (Bson::Undefined, Value::Null),
            (Bson::ObjectId(oid), json!("65f1c0ffee0000000000abcd")),
            (
                Bson::DateTime(bson::DateTime::from_millis(1_714_564_800_123)),
                json!("2024-05-01T12:00:00.123Z"),
            ),
            (
                Bson::DateTime(bson::DateTime::from_millis(i64::MAX)),
                json!({"$date": i64::MAX}),
            ),
            (
                Bson::Binary(Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: vec![0, 1, 2, 253, 254, 255],
                }),
                json!("AAEC/f7/"),
            ),
            (
                Bson::RegularExpression(Regex {
                    pattern: "^a.*".into(),
                    options: "i".into(),
                }),
                json!("/^a.*/i"),
            ),
            (
                Bson::Timestamp(Timestamp {
                    time: 17,
                    increment: 3,
                }),
                json!({"t": 17, "i": 3}),
            ),
            (
                Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                    code: "f(x)".into(),
                    scope: doc! {"x": 1},
                }),
                json!({"code": "f(x)", "scope": {"x": 1}}),
            ),
            (Bson::MinKey, json!({"$minKey": 1})),
            (Bson::MaxKey, json!({"$maxKey": 1})),
            (
                Bson::Array(vec![Bson::Int32(1), Bson::Document(doc! {"a": [true]})]),
                json!([1, {"a": [true]}]),
            ),
        ];
        for (bson, want) in cases {
            assert_eq!(to_json(&bson), want, "{bson:?}");
        }
        // The mapping keeps the document's key order (JSONB then stores its own).
        let nested = to_json(&Bson::Document(doc! {"z": 1, "a": {"y": 2, "b": 3}}));
        assert_eq!(nested.to_string(), r#"{"z":1,"a":{"y":2,"b":3}}"#);
    }

    #[test]
    fn documents_map_to_rows() {
        let oid = ObjectId::new();
        let when = bson::DateTime::from_millis(1_714_564_800_000);
        let doc = doc! {
            "_id": oid, "source": "kindle", "event_type": "highlight", "timestamp": when,
            "payload": {"text": "hi", "page": 12}, "meta": {"tags": ["a"]}, "status": "ingested",
        };
        let r = reading(&doc).expect("valid");
        assert_eq!(r.mongo_id, oid.to_hex());
        assert_eq!(r.event_timestamp.timestamp_millis(), 1_714_564_800_000);
        assert_eq!(r.source.as_deref(), Some("kindle"));
        assert_eq!(r.event_type.as_deref(), Some("highlight"));
        assert_eq!(r.payload, Some(json!({"text": "hi", "page": 12})));
        assert_eq!(r.meta, Some(json!({"tags": ["a"]})));

        let minimal =
            reading(&doc! {"_id": "abc", "timestamp": "2024-05-01T14:00:00+02:00"}).expect("valid");
        assert_eq!(minimal.mongo_id, "abc");
        assert_eq!(
            minimal.event_timestamp.to_rfc3339(),
            "2024-05-01T12:00:00+00:00"
        );
        assert_eq!((minimal.source, minimal.payload), (None, None));
    }

    #[test]
    fn iso8601_strings_with_and_without_offset() {
        for (s, want) in [
            ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00+00:00"),
            ("2024-05-01T12:00:00.250Z", "2024-05-01T12:00:00.250+00:00"),
            ("2024-05-01T12:00:00-03:30", "2024-05-01T15:30:00+00:00"),
            ("2024-05-01T12:00:00", "2024-05-01T12:00:00+00:00"),
            ("2024-05-01 12:00:00.5", "2024-05-01T12:00:00.500+00:00"),
            // Offsets without the colon, as many loggers write them.
            ("2024-05-01T12:00:00+0200", "2024-05-01T10:00:00+00:00"),
            (
                "2024-05-01T12:00:00.5-0130",
                "2024-05-01T13:30:00.500+00:00",
            ),
            ("2024-05-01 12:00:00+0000", "2024-05-01T12:00:00+00:00"),
        ] {
            let t = timestamp(Some(&Bson::String(s.into()))).expect(s);
            assert_eq!(t.to_rfc3339(), want, "{s}");
        }
    }

    #[test]
    fn malformed_documents_say_why() {
        let cases = [
            (doc! {"timestamp": "2024-05-01T12:00:00Z"}, "no _id"),
            (
                doc! {"_id": "a\0b", "timestamp": "2024-05-01T12:00:00Z"},
                "_id contains a NUL",
            ),
            (
                doc! {"_id": "x".repeat(3000), "timestamp": "2024-05-01T12:00:00Z"},
                "3000 bytes long",
            ),
            (doc! {"_id": "a"}, "no timestamp"),
            (
                doc! {"_id": "a", "timestamp": "yesterday"},
                "not an ISO-8601",
            ),
            (doc! {"_id": "a", "timestamp": 12}, "timestamp must be"),
            (
                doc! {"_id": "a", "timestamp": bson::DateTime::from_millis(i64::MAX)},
                "out of range",
            ),
            (
                doc! {"_id": "a", "timestamp": "2024-05-01T12:00:00Z", "source": 3},
                "source must be a string",
            ),
            (
                doc! {"_id": "a", "timestamp": "2024-05-01T12:00:00Z", "payload": {"t": "a\0b"}},
                "NUL",
            ),
        ];
        for (doc, want) in cases {
            let err = reading(&doc).expect_err("must be rejected");
            assert!(err.contains(want), "{doc}: {err}");
        }
    }

    #[test]
    fn distinct_ids_never_share_a_key() {
        let oid = ObjectId::from_str("65f1c0ffee0000000000abcd").expect("oid");
        let ids: Vec<(Bson, &str)> = vec![
            (Bson::ObjectId(oid), "65f1c0ffee0000000000abcd"),
            // A string spelling an ObjectId's hex is not that ObjectId.
            (
                Bson::String(oid.to_hex()),
                "string:65f1c0ffee0000000000abcd",
            ),
            (
                Bson::String("65F1C0FFEE0000000000ABCD".into()),
                "65F1C0FFEE0000000000ABCD",
            ),
            (Bson::String("abc".into()), "abc"),
            (Bson::String(String::new()), "string:"),
            (Bson::String("42".into()), "42"),
            (Bson::Int32(42), "int:42"),
            (Bson::Int64(-42), "int:-42"),
            (Bson::String("int:42".into()), "string:int:42"),
            (Bson::String("string:x".into()), "string:string:x"),
            (Bson::String("sha256:ab".into()), "string:sha256:ab"),
            (Bson::Double(42.0), r#"bson:{"$numberDouble":"42.0"}"#),
            (Bson::String("bson:1".into()), "string:bson:1"),
        ];
        let mut seen = std::collections::HashSet::new();
        for (id, want) in &ids {
            let key = key_of(id);
            assert_eq!(key, *want, "{id:?}");
            assert!(seen.insert(key), "{id:?} shares its key");
        }
        // Every kind maps, so a document with any `_id` type is stored.
        let r = reading(&doc! {"_id": 42, "timestamp": "2024-05-01T12:00:00Z"}).expect("int id");
        assert_eq!(r.mongo_id, "int:42");
        let r = reading(&doc! {"_id": "", "timestamp": "2024-05-01T12:00:00Z"}).expect("empty id");
        assert_eq!(r.mongo_id, "string:");
    }

    #[test]
    fn unstorable_ids_get_bounded_distinct_dead_letter_keys() {
        let long = |c: &str| doc! {"_id": c.repeat(3000), "timestamp": "2024-05-01T12:00:00Z"};
        let (a, b) = (dead_letter_key(&long("a")), dead_letter_key(&long("b")));
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
        assert_ne!(a, b);
        let nul = dead_letter_key(&doc! {"_id": "a\0b"});
        assert!(nul.starts_with("sha256:") && !nul.contains('\0'), "{nul}");
        // A storable id keeps its own key even when the document fails for another reason.
        assert_eq!(dead_letter_key(&doc! {"_id": 7}), "int:7");
    }

    #[test]
    fn dead_letters_keep_every_bson_type() {
        let d =
            doc! {"_id": "x", "n": Bson::Decimal128(Decimal128::from_str("1.10").expect("dec"))};
        let raw: Value = serde_json::from_str(&raw_json(&d)).expect("json");
        assert_eq!(raw, json!({"_id": "x", "n": {"$numberDecimal": "1.10"}}));
    }
}
