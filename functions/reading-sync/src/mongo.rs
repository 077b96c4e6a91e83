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
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, ConnectionString};
use mongodb::{Client, Collection};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const INGESTED: &str = "ingested";
pub const PROCESSING: &str = "processing";
pub const PROCESSED: &str = "processed";
pub const FAILED: &str = "failed";

pub type Error = mongodb::error::Error;

/// What a document is taken to weigh before any was read: a few KiB is typical.
const INITIAL_DOC_BYTES: u64 = 16 * 1024;

/// The collection documents are read from.
#[derive(Debug, Clone)]
pub struct Inbox {
    coll: Collection<Document>,
    /// The same collection, read without decoding, so a document's size is known for free.
    raw: Collection<RawDocumentBuf>,
    /// Average size of the documents read lately (see [`Inbox::claim`]).
    avg_doc_bytes: Arc<AtomicU64>,
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
        let coll = client.database(db).collection(collection);
        Ok(Self {
            raw: coll.clone_with_type(),
            coll,
            avg_doc_bytes: Arc::new(AtomicU64::new(INITIAL_DOC_BYTES)),
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

    /// Claims up to `limit` of the oldest `ingested` documents, about `max_bytes` of them, and
    /// returns what this claim owns, oldest first; `None` when there was nothing to claim.
    /// Another runner may win some of them between the read and the update: the update only
    /// takes documents still `ingested`, and the read-back returns only what carries this
    /// claim, so no document is owned twice.
    ///
    /// Bytes: how many documents are asked for at once follows the average size of the
    /// documents read lately, so one reply stays near `max_bytes`; the read-back stops once
    /// `max_bytes` are in hand and gives the rest of the claim back. A reply that still comes
    /// back too big to read (a few huge documents among small ones; PoloDB sends whole
    /// documents even for an `_id` projection and mangles replies over 16 MiB) is asked for
    /// again with half as many documents, down to one.
    pub async fn claim(&self, limit: usize, max_bytes: u64) -> Result<Option<Claimed>, Error> {
        let n = self.docs_within(max_bytes).min(limit);
        let candidates = self
            .read(doc! {"status": INGESTED}, n, Some(doc! {"_id": 1}))
            .await?;
        let ids: Vec<Bson> = candidates
            .iter()
            .filter_map(|d| d.get("_id").ok().flatten())
            .filter_map(|id| Bson::try_from(id).ok())
            .collect();
        drop(candidates);
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
        // A reply holds at most 16 MiB on MongoDB, and `max_bytes` may be reached first: read
        // on after the last `_id` returned until a reply comes back empty or the bytes are in.
        let mut docs: Vec<Document> = Vec::new();
        let mut bytes = 0u64;
        loop {
            let mut filter = match docs.last().and_then(|d| d.get("_id")) {
                Some(last) => scope.after(last),
                None => scope.filter(),
            };
            filter.insert("sync_claim", &claim);
            filter.insert("status", PROCESSING);
            let want = if docs.is_empty() {
                scope.len()
            } else {
                self.docs_within(max_bytes - bytes)
                    .min(scope.len().saturating_sub(docs.len()))
                    .max(1)
            };
            let page = self.read(filter, want, None).await?;
            if page.is_empty() {
                break;
            }
            let page_bytes: u64 = page.iter().map(|d| d.as_bytes().len() as u64).sum();
            self.avg_doc_bytes
                .store((page_bytes / page.len() as u64).max(1), Ordering::Relaxed);
            bytes += page_bytes;
            for raw in page {
                docs.push(raw.to_document()?);
            }
            if bytes >= max_bytes {
                break;
            }
        }
        let claimed = Claimed { claim, scope, docs };
        if bytes >= max_bytes {
            // The rest of the claim waits for the next batch.
            if let Some(last) = claimed.docs.last().and_then(|d| d.get("_id")) {
                let mut rest = claimed.scope.after(last);
                rest.insert("sync_claim", &claimed.claim);
                self.finish(rest, doc! {"status": INGESTED}).await?;
            }
        }
        Ok(Some(claimed))
    }

    /// How many documents of the recent average size fit in `bytes` (at least one).
    fn docs_within(&self, bytes: u64) -> usize {
        let avg = self.avg_doc_bytes.load(Ordering::Relaxed).max(1);
        usize::try_from(bytes / avg).unwrap_or(usize::MAX).max(1)
    }

    /// The first `n` documents matching `filter`, in `_id` order, in one reply; when the reply
    /// cannot be read (too big: see [`Inbox::claim`]), the first `n / 2`, and so on down to one.
    async fn read(
        &self,
        filter: Document,
        mut n: usize,
        projection: Option<Document>,
    ) -> Result<Vec<RawDocumentBuf>, Error> {
        loop {
            let find = self
                .raw
                .find(filter.clone())
                .sort(doc! {"_id": 1})
                .limit(single_batch(n));
            let find = match &projection {
                Some(p) => find.projection(p.clone()),
                None => find,
            };
            let found = async { find.await?.try_collect::<Vec<_>>().await }.await;
            match found {
                Err(e) if n > 1 && unreadable_reply(&e) => {
                    tracing::warn!(error = %e, documents = n, "a MongoDB reply was too big to read; asking for half as many documents");
                    n /= 2;
                }
                other => return other,
            }
        }
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

/// Whether an error says the reply itself could not be read (too big, mangled), rather than
/// that the server is unreachable or refused the command.
fn unreadable_reply(e: &Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::InvalidResponse { .. } | ErrorKind::BsonDeserialization(_) => true,
        ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// A `limit` that asks for one reply and no cursor (see the module docs).
fn single_batch(n: usize) -> i64 {
    -i64::try_from(n.max(1)).unwrap_or(i64::MAX)
}

fn bson_time(t: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(t.timestamp_millis())
}
