//! `MongoServer::seed` against a real PoloDB: a chunk that fails half way is retried with only
//! the documents that did not arrive, so every document is stored exactly once.

use futures::TryStreamExt;
use hub_testkit::MongoServer;
use mongodb::bson::{Document, doc};

#[tokio::test]
async fn a_failed_chunk_is_retried_without_duplicates() {
    let mongo = MongoServer::start();
    let docs: Vec<Document> = (0..700_i64).map(|n| doc! {"_id": n, "n": n}).collect();
    let coll = mongodb::Client::with_uri_str(mongo.uri())
        .await
        .expect("client")
        .database("seed")
        .collection::<Document>("docs");
    // Some documents of the first chunk are there already, as after a cut-off insert: the
    // first attempt fails on their ids, the retry inserts the rest.
    coll.insert_many(docs[100..200].to_vec())
        .await
        .expect("partial insert");
    mongo.seed("seed", "docs", docs).await;
    let stored: Vec<Document> = coll
        .find(doc! {})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("read");
    let mut ids: Vec<i64> = stored
        .iter()
        .map(|d| d.get_i64("_id").expect("int id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..700).collect::<Vec<_>>());
}
