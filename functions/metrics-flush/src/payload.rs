//! What PostgreSQL's JSONB can store, checked before a batch is written, so a payload it would
//! refuse answers 400 naming the metric (the agent moves the sample aside) instead of 503 (the
//! agent would retry it forever). The same rules apply on SQLite, so both stores take the same
//! batches.
//!
//! Refused: `\u0000` in a string or key (JSONB has no NUL), a lone UTF-16 surrogate escape, a
//! number beyond f64 (`1e999999`), nesting deeper than [`MAX_DEPTH`]. The payload is walked
//! without building a tree (the gateway keeps it as raw text).

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Deepest nesting of arrays and objects accepted in one metric's payload.
pub const MAX_DEPTH: usize = 32;

/// `Err(reason)` when the payload `json` could not be stored as JSONB.
pub fn check(json: &str) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(json);
    Walk { depth: 0 }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| {
            let text = e.to_string();
            // serde_json names a lone surrogate by what it expected next ("unexpected end of
            // hex escape"); say what is wrong with the data instead.
            if text.contains("surrogate") || text.contains("hex escape") {
                format!(
                    "string has a lone UTF-16 surrogate escape, which PostgreSQL cannot store ({text})"
                )
            } else {
                text
            }
        })
}

struct Walk {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Walk {
    fn nested<E: serde::de::Error>(&self) -> Result<Walk, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(Walk {
            depth: self.depth + 1,
        })
    }
}

fn text<E: serde::de::Error>(s: &str) -> Result<(), E> {
    if s.contains('\0') {
        return Err(E::custom(
            "string contains \\u0000, which PostgreSQL cannot store",
        ));
    }
    Ok(())
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        // serde_json already refuses overflowing literals; this keeps the rule explicit.
        if v.is_finite() {
            Ok(())
        } else {
            Err(E::custom("number out of range"))
        }
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        text(s)
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq
            .next_element_seed(Walk { depth: inner.depth })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            text::<A::Error>(&key).map_err(|e| A::Error::custom(format!("key: {e}")))?;
            map.next_value_seed(Walk { depth: inner.depth })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_jsonb_stores_passes_and_what_it_refuses_is_named() {
        for ok in [
            r#"{"usage": 12.5, "core_temps": {"core_0": 41}}"#,
            r#"[1, -2, 3.5e10, true, null, "text", "\\u0000 is only text here"]"#,
            r#""\ud83d\ude00""#,
            r#"{"a": "tab\tand é"}"#,
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        let deep_ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check(&deep_ok), Ok(()));
        let too_deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        for (bad, want) in [
            (r#"{"s": "a\u0000b"}"#, "\\u0000"),
            (r#"{"a\u0000": 1}"#, "key: string contains \\u0000"),
            (r#"{"s": "\ud800"}"#, "surrogate"),
            (r#"{"n": 1e999999}"#, "number out of range"),
            (too_deep.as_str(), "nested deeper than 32 levels"),
        ] {
            let err = check(bad).expect_err(bad);
            assert!(err.contains(want), "{bad}: {err}");
        }
    }
}
