//! reading-sync's BSON → JSON mapping on documents decoded from arbitrary bytes (inputs that
//! are not a BSON document are skipped).
//!
//! Checks: `mongo_id`, `reading`, `to_json` and `raw_json` never panic; `raw_json` (the
//! dead-letter copy) is always JSON; a `reading` that is accepted has a non-empty id and no
//! NUL in what goes to JSONB.
#![no_main]

use bson::{Bson, Document};
use libfuzzer_sys::fuzz_target;
use reading_sync::transform::{has_nul, mongo_id, raw_json, reading, to_json};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = Document::from_reader(data) else {
        return;
    };
    let id = mongo_id(&doc);
    if let Ok(r) = reading(&doc) {
        assert_eq!(Ok(&r.mongo_id), id.as_ref());
        assert!(!r.mongo_id.is_empty());
        assert!(!r.payload.as_ref().is_some_and(has_nul));
        assert!(!r.meta.as_ref().is_some_and(has_nul));
    }
    let json = to_json(&Bson::Document(doc.clone()));
    assert!(json.is_object());
    let raw = raw_json(&doc);
    match serde_json::from_str::<Value>(&raw) {
        Ok(v) => assert!(v.is_object()),
        // serde_json refuses nesting deeper than 128 levels when reading; the text is still JSON.
        Err(e) if e.to_string().contains("recursion limit") => {}
        Err(e) => panic!("raw_json gave invalid JSON ({e}): {raw}"),
    }
});
