//! The MongoDB side: claims, read-back, marking. Only these operations are used, all of which
//! behave the same on MongoDB and on PoloDB's wire-protocol server (what the tests run against):
//!
//! - `find` with equality, `$in` and `_id` range (`$gt`/`$gte`/`$lte`) filters, `sort` on `_id`,
//!   and a negative `limit` (`singleBatch`: the answer comes in one reply and no server cursor
//!   is left open);
//! - `update_many` with `$set` and `$unset`, filtered the same ways and by `$lt` on a date.
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
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{ClientOptions, ConnectionString};
use mongodb::{Client, Collection};
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

    /// Claims up to `limit` of the oldest `ingested` documents and returns what this claim
    /// owns, oldest first; `None` when there was nothing to claim. Another runner may win some
    /// of them between the read and the update: the update only takes documents still
    /// `ingested`, and the read-back returns only what carries this claim, so no document is
    /// owned twice.
    pub async fn claim(&self, limit: usize) -> Result<Option<Claimed>, Error> {
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
        let Some(scope) = Scope::of(ids) else {
            return Ok(None);
        };
        let claim = uuid::Uuid::new_v4().to_string();
        let mut filter = scope.filter();
        filter.insert("status", INGESTED);
        self.coll
            .update_many(
                filter,
                doc! {"$set": {
                    "status": PROCESSING,
                    "sync_claim": &claim,
                    "sync_claimed_at": bson_time(Utc::now()),
                }},
            )
            .await?;
        // One reply holds at most 16 MiB on MongoDB: read on after the last `_id` returned
        // until a reply comes back empty.
        let mut docs: Vec<Document> = Vec::new();
        loop {
            let mut filter = match docs.last().and_then(|d| d.get("_id")) {
                Some(last) => scope.after(last),
                None => scope.filter(),
            };
            filter.insert("sync_claim", &claim);
            filter.insert("status", PROCESSING);
            let page: Vec<Document> = self
                .coll
                .find(filter)
                .sort(doc! {"_id": 1})
                .limit(single_batch(scope.len()))
                .await?
                .try_collect()
                .await?;
            if page.is_empty() {
                break;
            }
            docs.extend(page);
        }
        Ok(Some(Claimed { claim, scope, docs }))
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

    /// Ends a claim: the documents in `failed` become `failed`, every other document of the
    /// claim `processed`. Only call it once every document of the claim is in the database or
    /// the dead-letter table.
    pub async fn mark(&self, c: &Claimed, failed: Vec<Bson>) -> Result<(), Error> {
        if !failed.is_empty() {
            self.finish(
                doc! {"_id": {"$in": failed}, "sync_claim": &c.claim},
                doc! {"status": FAILED, "sync_failed_at": bson_time(Utc::now())},
            )
            .await?;
        }
        let mut rest = c.scope.filter();
        rest.insert("sync_claim", &c.claim);
        self.finish(
            rest,
            doc! {"status": PROCESSED, "synced_at": bson_time(Utc::now())},
        )
        .await
    }

    /// Gives a claim's documents back (`ingested`) when they could not be written.
    pub async fn release(&self, c: &Claimed) -> Result<(), Error> {
        let mut filter = c.scope.filter();
        filter.insert("sync_claim", &c.claim);
        self.finish(filter, doc! {"status": INGESTED}).await
    }

    async fn finish(&self, filter: Document, set: Document) -> Result<(), Error> {
        self.coll
            .update_many(
                filter,
                doc! {"$set": set, "$unset": {"sync_claim": "", "sync_claimed_at": ""}},
            )
            .await?;
        Ok(())
    }
}

/// The documents of one claim, as read back.
#[derive(Debug)]
pub struct Claimed {
    claim: String,
    scope: Scope,
    pub docs: Vec<Document>,
}

/// Which `_id`s a claim may cover. ObjectIds (what MongoDB assigns) are claimed as the range
/// from the first to the last candidate: on MongoDB that is one index range either way, but
/// PoloDB checks an `$in` list against every document of the collection, which made `$in` the
/// whole cost of a sync. An ingested document inserted inside the range meanwhile is simply
/// claimed too. Other `_id` types are claimed by `$in`, since MongoDB compares across types by
/// type first.
#[derive(Debug)]
enum Scope {
    Range(ObjectId, ObjectId, usize),
    Ids(Vec<Bson>),
}

impl Scope {
    fn of(ids: Vec<Bson>) -> Option<Self> {
        let oids: Option<Vec<ObjectId>> = ids
            .iter()
            .map(|id| match id {
                Bson::ObjectId(o) => Some(*o),
                _ => None,
            })
            .collect();
        match oids {
            Some(o) if !o.is_empty() => {
                let (first, last) = (o.iter().min()?, o.iter().max()?);
                Some(Scope::Range(*first, *last, o.len()))
            }
            _ if ids.is_empty() => None,
            _ => Some(Scope::Ids(ids)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Scope::Range(.., n) => *n,
            Scope::Ids(ids) => ids.len(),
        }
    }

    fn filter(&self) -> Document {
        match self {
            Scope::Range(first, last, _) => doc! {"_id": {"$gte": first, "$lte": last}},
            Scope::Ids(ids) => doc! {"_id": {"$in": ids.clone()}},
        }
    }

    /// The part of the scope after `last` (for reading a claim back page by page).
    fn after(&self, last: &Bson) -> Document {
        match self {
            Scope::Range(_, end, _) => doc! {"_id": {"$gt": last.clone(), "$lte": end}},
            Scope::Ids(ids) => {
                let key = id_key(last);
                let pos = ids
                    .iter()
                    .position(|id| id_key(id) == key)
                    .map_or(0, |p| p + 1);
                doc! {"_id": {"$in": ids[pos..].to_vec()}}
            }
        }
    }
}

/// A comparable key for an `_id` of any BSON type.
fn id_key(id: &Bson) -> String {
    id.clone().into_relaxed_extjson().to_string()
}

/// A `limit` that asks for one reply and no cursor (see the module docs).
fn single_batch(n: usize) -> i64 {
    -i64::try_from(n.max(1)).unwrap_or(i64::MAX)
}

fn bson_time(t: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(t.timestamp_millis())
}
