//! One claimed batch mapped into rows and dead letters.

use crate::{sink, transform};
use mongodb::bson::{Bson, Document};
use std::collections::HashSet;

/// One claimed batch, mapped.
pub(crate) struct Batch {
    pub(crate) readings: Vec<transform::Reading>,
    pub(crate) dead: Vec<sink::DeadLetter>,
    /// The `_id` values of the dead letters as stored, to mark them `failed`.
    pub(crate) bad_ids: Vec<Bson>,
}

impl Batch {
    pub(crate) fn map(docs: &[Document]) -> Self {
        let mut b = Batch {
            readings: Vec::with_capacity(docs.len()),
            dead: Vec::new(),
            bad_ids: Vec::new(),
        };
        let mut seen = HashSet::new();
        for doc in docs {
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            let mapped = transform::reading(doc).and_then(|r| {
                // A string `_id` equal to another document's ObjectId hex would make one
                // statement update the same row twice.
                if seen.insert(r.mongo_id.clone()) {
                    Ok(r)
                } else {
                    Err(format!(
                        "mongo_id {} appears twice in one batch",
                        r.mongo_id
                    ))
                }
            });
            match mapped {
                Ok(r) => b.readings.push(r),
                Err(error) => {
                    let mongo_id = transform::mongo_id(doc)
                        .unwrap_or_else(|_| id.clone().into_relaxed_extjson().to_string());
                    tracing::warn!(%mongo_id, %error, "document dead-lettered");
                    b.dead.push(sink::DeadLetter {
                        mongo_id,
                        error,
                        document: transform::raw_json(doc),
                    });
                    b.bad_ids.push(id);
                }
            }
        }
        b
    }
}
