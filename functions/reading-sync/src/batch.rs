//! One claimed batch mapped into rows and dead letters, and written so that one row the
//! database refuses cannot hold the others back.

use crate::{sink, transform};
use hub_runtime::Store;
use hub_runtime::store::StoreError;
use mongodb::bson::{Bson, Document};
use std::collections::HashSet;
use std::ops::Range;

/// One claimed batch, mapped.
pub(crate) struct Batch<'a> {
    docs: &'a [Document],
    pub(crate) readings: Vec<transform::Reading>,
    /// For each reading, the index of its document in `docs`.
    sources: Vec<usize>,
    pub(crate) dead: Vec<sink::DeadLetter>,
    /// The `_id` values of the dead letters as stored, to mark them `failed`.
    pub(crate) bad_ids: Vec<Bson>,
}

impl<'a> Batch<'a> {
    pub(crate) fn map(docs: &'a [Document]) -> Self {
        let mut b = Batch {
            docs,
            readings: Vec::with_capacity(docs.len()),
            sources: Vec::with_capacity(docs.len()),
            dead: Vec::new(),
            bad_ids: Vec::new(),
        };
        let mut seen = HashSet::new();
        for (i, doc) in docs.iter().enumerate() {
            let mapped = transform::reading(doc).and_then(|r| {
                // Keys are distinct per `_id`, so this only trips on a server that returned one
                // document twice; one statement must not update the same row twice.
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
                Ok(r) => {
                    b.readings.push(r);
                    b.sources.push(i);
                }
                Err(error) => b.dead_letter(i, error),
            }
        }
        b
    }

    fn dead_letter(&mut self, i: usize, error: String) {
        let doc = &self.docs[i];
        let mongo_id = transform::dead_letter_key(doc);
        tracing::warn!(%mongo_id, %error, "document dead-lettered");
        self.dead.push(sink::DeadLetter {
            mongo_id,
            error,
            document: transform::raw_json(doc),
        });
        self.bad_ids
            .push(doc.get("_id").cloned().unwrap_or(Bson::Null));
    }

    /// Writes the batch. When the database refuses it for a reason in the data (not the
    /// connection: see [`StoreError::is_data_error`]), the readings are written again in halves,
    /// down to single rows, and each row still refused is dead-lettered with the database's
    /// reason — so the rest commit and every later run is not stopped by the same document.
    /// Pieces commit one by one; that is safe because the documents are marked in MongoDB only
    /// after this returns, and a re-read replaces its row.
    pub(crate) async fn write(&mut self, store: &Store) -> Result<(), StoreError> {
        let first = match sink::write_batch(store, &self.readings, &self.dead).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_data_error() => e,
            Err(e) => return Err(e),
        };
        tracing::warn!(error = %first, rows = self.readings.len(), "the database refused a batch; isolating the rows it refuses");
        if !self.dead.is_empty() {
            sink::write_batch(store, &[], &self.dead).await?;
        }
        let mut refused: Vec<(usize, String)> = Vec::new();
        let mut pending: Vec<Range<usize>> = Vec::new();
        pending.push(0..self.readings.len());
        while let Some(range) = pending.pop() {
            match sink::write_batch(store, &self.readings[range.clone()], &[]).await {
                Ok(()) => {}
                Err(e) if !e.is_data_error() => return Err(e),
                Err(e) if range.len() == 1 => refused.push((range.start, database_reason(&e))),
                Err(_) => {
                    let mid = range.start + range.len() / 2;
                    pending.push(mid..range.end);
                    pending.push(range.start..mid);
                }
            }
        }
        let already_dead = self.dead.len();
        // Highest index first, so removing one does not shift the others.
        refused.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        for (i, reason) in refused {
            self.readings.remove(i);
            let doc = self.sources.remove(i);
            self.dead_letter(doc, format!("the database refused the row: {reason}"));
        }
        sink::write_batch(store, &[], &self.dead[already_dead..]).await
    }
}

/// The database's own message for a refused row (not the wrapper's "store query failed").
fn database_reason(e: &StoreError) -> String {
    match e {
        StoreError::Query(sqlx::Error::Database(db)) => db.message().to_owned(),
        other => other.to_string(),
    }
}
