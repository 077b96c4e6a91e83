//! The MongoDB side: claims, read-back, marking. Only these operations are used, all of which
//! behave the same on MongoDB and on PoloDB's wire-protocol server (what the tests run against):
//!
//! - `find` with an equality / `$in` filter, `sort` on `_id`, and a negative `limit`
//!   (`singleBatch`: the answer comes in one reply and no server cursor is left open);
//! - `update_many` with `$set` and `$unset`, filtered by equality, `$in` and `$lt` on a date.
//!
//! Not used, on purpose: `findAndModify` (PoloDB lacks it), `update_one` (PoloDB updates every
//! match), aggregation and so `count_documents` (PoloDB's `$group` is wrong), transactions, and
//! `getMore`: PoloDB numbers cursors by how many are open, so two clients reading at once can
//! get each other's cursor ("cursor not found"). PoloDB returns documents in `_id` order and
//! ignores `sort` and `projection`; MongoDB honours both, with the same result here.
//!
//! Document lifecycle (`status`): `ingested` → `processing` (with `sync_claim` and
//! `sync_claimed_at`) → `processed` (with `synced_at`) or `failed` (with `sync_failed_at`; the
//! reason is in the dead-letter table). A claim older than the claim timeout is released back to
//! `ingested`, so documents held by a runner that died are picked up again.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{ClientOptions, ConnectionString};
use mongodb::{Client, Collection};
use std::collections::HashMap;
use std::time::Duration;

pub const INGESTED: &str = "ingested";
pub const PROCESSING: &str = "processing";
pub const PROCESSED: &str = "processed";
pub const FAILED: &str = "failed";

pub type Error = mongodb::error::Error;

/// The collection documents are read from.
#[derive(Debug, Clone)]
pub struct Inbox {
    coll: Collection<Document>,
}

impl Inbox {
    /// Builds the client; the driver connects lazily, so an unreachable server shows up as an
    /// error of the first operation, after `timeout` (server selection).
    pub async fn connect(
        uri: ConnectionString,
        db: &str,
        collection: &str,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let mut opts = ClientOptions::parse(uri).await?;
        opts.app_name = Some(crate::NAME.into());
        opts.server_selection_timeout = Some(timeout);
        opts.connect_timeout = Some(timeout);
        let client = Client::with_options(opts)?;
        Ok(Self {
            coll: client.database(db).collection(collection),
        })
    }

    /// Puts claims older than `cutoff` back to `ingested`; returns how many.
    pub async fn release_stale(&self, cutoff: DateTime<Utc>) -> Result<u64, Error> {
        let res = self
            .coll
            .update_many(
                doc! {"status": PROCESSING, "sync_claimed_at": {"$lt": bson_time(cutoff)}},
                doc! {"$set": {"status": INGESTED}, "$unset": {"sync_claim": "", "sync_claimed_at": ""}},
            )
            .await?;
        Ok(res.modified_count)
    }

    /// Claims up to `limit` of the oldest `ingested` documents for `claim` and returns the ones
    /// this claim owns, oldest first. Another runner may win some of them between the read and
    /// the update: the update only takes documents still `ingested`, and the read-back returns
    /// only what carries this claim, so no document is owned twice.
    pub async fn claim(&self, claim: &str, limit: usize) -> Result<Vec<Document>, Error> {
        let candidates: Vec<Document> = self
            .coll
            .find(doc! {"status": INGESTED})
            .sort(doc! {"_id": 1})
            .limit(single_batch(limit))
            .projection(doc! {"_id": 1})
            .await?
            .try_collect()
            .await?;
        let ids: Vec<Bson> = candidates
            .into_iter()
            .filter_map(|mut d| d.remove("_id"))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.coll
            .update_many(
                doc! {"_id": {"$in": ids.clone()}, "status": INGESTED},
                doc! {"$set": {
                    "status": PROCESSING,
                    "sync_claim": claim,
                    "sync_claimed_at": bson_time(Utc::now()),
                }},
            )
            .await?;
        // One reply holds at most 16 MiB on MongoDB: read until every claimed id came back.
        let mut remaining: HashMap<String, Bson> =
            ids.into_iter().map(|id| (id_key(&id), id)).collect();
        let mut owned = Vec::new();
        while !remaining.is_empty() {
            let page: Vec<Document> = self
                .coll
                .find(doc! {
                    "_id": {"$in": remaining.values().cloned().collect::<Vec<_>>()},
                    "sync_claim": claim,
                    "status": PROCESSING,
                })
                .sort(doc! {"_id": 1})
                .limit(single_batch(remaining.len()))
                .await?
                .try_collect()
                .await?;
            if page.is_empty() {
                break;
            }
            for d in &page {
                if let Some(id) = d.get("_id") {
                    remaining.remove(&id_key(id));
                }
            }
            owned.extend(page);
        }
        owned.sort_by_key(|d| d.get("_id").map(id_key));
        Ok(owned)
    }

    /// Whether any document is still waiting. Used to tell "nothing left" from "lost every
    /// candidate to another runner".
    pub async fn any_waiting(&self) -> Result<bool, Error> {
        let first: Vec<Document> = self
            .coll
            .find(doc! {"status": INGESTED})
            .limit(single_batch(1))
            .projection(doc! {"_id": 1})
            .await?
            .try_collect()
            .await?;
        Ok(!first.is_empty())
    }

    /// Ends a claim on `ids`: sets `status` (and a time field), drops the claim fields.
    async fn finish(
        &self,
        claim: &str,
        ids: Vec<Bson>,
        status: &str,
        time_field: Option<&str>,
    ) -> Result<u64, Error> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut set = doc! {"status": status};
        if let Some(field) = time_field {
            set.insert(field, bson_time(Utc::now()));
        }
        let res = self
            .coll
            .update_many(
                doc! {"_id": {"$in": ids}, "sync_claim": claim},
                doc! {"$set": set, "$unset": {"sync_claim": "", "sync_claimed_at": ""}},
            )
            .await?;
        Ok(res.modified_count)
    }

    pub async fn mark_processed(&self, claim: &str, ids: Vec<Bson>) -> Result<u64, Error> {
        self.finish(claim, ids, PROCESSED, Some("synced_at")).await
    }

    pub async fn mark_failed(&self, claim: &str, ids: Vec<Bson>) -> Result<u64, Error> {
        self.finish(claim, ids, FAILED, Some("sync_failed_at"))
            .await
    }

    /// Gives claimed documents back (`ingested`) when they could not be written.
    pub async fn release(&self, claim: &str, ids: Vec<Bson>) -> Result<u64, Error> {
        self.finish(claim, ids, INGESTED, None).await
    }
}

/// A `limit` that asks for one reply and no cursor (see the module docs).
fn single_batch(n: usize) -> i64 {
    -i64::try_from(n.max(1)).unwrap_or(i64::MAX)
}

/// A hashable key for an `_id` of any BSON type.
fn id_key(id: &Bson) -> String {
    id.clone().into_relaxed_extjson().to_string()
}

fn bson_time(t: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(t.timestamp_millis())
}
