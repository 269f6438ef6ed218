//! Test data: a database with every BSON type, every kind of index and
//! collection option, and a writer that keeps changing it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use mongodb::bson::{
    doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, DateTime, Decimal128, Document, JavaScriptCodeWithScope,
    Regex, Timestamp,
};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};

use super::mongod::block_on;

/// A document holding every BSON type the server stores (DBPointer aside,
/// which the bson crate cannot build).
pub fn every_type(i: i64) -> Document {
    doc! {
        "_id": i,
        "double": 1.5 + i as f64,
        "string": format!("text {i} ünïcødé"),
        "document": {"nested": {"deeper": i}},
        "array": [1, "two", {"three": 3}, [4]],
        "binary": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 2, 255] },
        "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
        "undefined": Bson::Undefined,
        "objectid": ObjectId::new(),
        "bool": i % 2 == 0,
        "date": DateTime::from_millis(1_700_000_000_000 + i),
        "null": Bson::Null,
        "regex": Regex { pattern: "^a.*b$".into(), options: "i".into() },
        "code": Bson::JavaScriptCode("function() { return 1; }".into()),
        "symbol": Bson::Symbol("sym".into()),
        "code_with_scope": JavaScriptCodeWithScope { code: "x".into(), scope: doc! {"x": 1} },
        "int32": i as i32,
        "timestamp": Timestamp { time: 1_700_000_000, increment: i as u32 },
        "int64": i,
        "decimal": Decimal128::from_bytes([1; 16]),
        "minkey": Bson::MinKey,
        "maxkey": Bson::MaxKey,
        "negzero": -0.0f64,
        "nan": f64::NAN,
    }
}

/// Fills `db` with the round-trip test's collections: every BSON type,
/// unique/TTL/partial/compound/text/2dsphere indexes, a capped collection,
/// a validator, a collation, a clustered collection, a timeseries, a view,
/// and `big` with `big_docs` documents of ~1 KiB each.
pub fn populate(client: &Client, db_name: &str, big_docs: usize) {
    block_on(async {
        let db = client.database(db_name);
        db.drop().await.unwrap();
        db.collection::<Document>("types").insert_many((0..50).map(every_type)).await.unwrap();

        let indexed = db.collection::<Document>("indexed");
        indexed
            .insert_many((0..300).map(|i| {
                doc! {
                    "_id": i, "email": format!("user{i}@example.com"), "a": i % 7, "b": i % 11,
                    "created": DateTime::now(), "status": if i % 3 == 0 { "active" } else { "closed" },
                    "bio": format!("likes hiking and number {i}"),
                    "loc": {"type": "Point", "coordinates": [(i % 180) as f64 - 90.0, (i % 90) as f64 - 45.0]},
                }
            }))
            .await
            .unwrap();
        let index = |keys: Document, options: IndexOptions| IndexModel::builder().keys(keys).options(options).build();
        indexed
            .create_indexes([
                index(doc! {"email": 1}, IndexOptions::builder().unique(true).build()),
                index(
                    doc! {"created": 1},
                    IndexOptions::builder().expire_after(std::time::Duration::from_secs(365 * 86400)).build(),
                ),
                index(
                    doc! {"status": 1},
                    IndexOptions::builder().partial_filter_expression(doc! {"status": "active"}).build(),
                ),
                index(doc! {"a": 1, "b": -1}, IndexOptions::builder().build()),
                index(doc! {"bio": "text"}, IndexOptions::builder().build()),
                index(doc! {"loc": "2dsphere"}, IndexOptions::builder().build()),
            ])
            .await
            .unwrap();

        db.run_command(doc! {"create": "capped", "capped": true, "size": 65536, "max": 100}).await.unwrap();
        db.collection::<Document>("capped").insert_many((0..150).map(|i| doc! {"n": i})).await.unwrap();

        db.run_command(doc! {
            "create": "validated",
            "validator": {"$jsonSchema": {"bsonType": "object", "required": ["name"]}},
            "validationLevel": "strict", "validationAction": "error",
        })
        .await
        .unwrap();
        db.collection::<Document>("validated")
            .insert_many((0..20).map(|i| doc! {"name": format!("n{i}")}))
            .await
            .unwrap();

        db.run_command(doc! {"create": "collated", "collation": {"locale": "fr", "strength": 2}}).await.unwrap();
        db.collection::<Document>("collated")
            .insert_many(["côte", "cote", "Côté"].map(|w| doc! {"word": w}))
            .await
            .unwrap();

        db.run_command(doc! {"create": "clustered", "clusteredIndex": {"key": {"_id": 1}, "unique": true}})
            .await
            .unwrap();
        db.collection::<Document>("clustered").insert_many((0..30).map(|i| doc! {"_id": i, "v": i})).await.unwrap();

        db.run_command(
            doc! {"create": "metrics", "timeseries": {"timeField": "t", "metaField": "host", "granularity": "minutes"}},
        )
        .await
        .unwrap();
        db.collection::<Document>("metrics")
            .insert_many((0..100).map(|i| doc! {"t": DateTime::from_millis(1_700_000_000_000 + i * 60_000), "host": format!("h{}", i % 3), "cpu": i as f64 / 3.0}))
            .await
            .unwrap();

        db.run_command(
            doc! {"create": "active_users", "viewOn": "indexed", "pipeline": [{"$match": {"status": "active"}}]},
        )
        .await
        .unwrap();

        insert_big(client, db_name, 0, big_docs).await;
    });
}

/// Adds `count` ~1 KiB documents to `big`, with `_id`s from `first`.
pub async fn insert_big(client: &Client, db_name: &str, first: usize, count: usize) {
    let big = client.database(db_name).collection::<Document>("big");
    let filler = "x".repeat(1000);
    for start in (first..first + count).step_by(5000) {
        let end = (start + 5000).min(first + count);
        big.insert_many((start..end).map(|i| doc! {"_id": i as i64, "filler": &filler, "n": i as i64})).await.unwrap();
    }
}

/// A writer that inserts, updates and deletes in `db` until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    /// Operations done so far.
    pub ops: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts writing to `indexed` and `big` of `db_name`.
    pub fn start(client: Client, db_name: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let (stop2, ops2, db_name) = (stop.clone(), ops.clone(), db_name.to_string());
        let handle = std::thread::spawn(move || {
            block_on(async move {
                let db = client.database(&db_name);
                let big = db.collection::<Document>("big");
                let indexed = db.collection::<Document>("indexed");
                let mut n: i64 = 0;
                while !stop2.load(Ordering::Relaxed) {
                    n += 1;
                    big.insert_one(doc! {"_id": 1_000_000 + n, "filler": "new", "n": n}).await.unwrap();
                    big.update_one(doc! {"_id": n % 500}, doc! {"$inc": {"n": 1}, "$set": {"touched": n}})
                        .await
                        .unwrap();
                    if n % 3 == 0 {
                        big.delete_one(doc! {"_id": 500 + n}).await.unwrap();
                    }
                    indexed.update_one(doc! {"_id": n % 300}, doc! {"$set": {"b": n}}).await.unwrap();
                    ops2.fetch_add(4, Ordering::Relaxed);
                }
            })
        });
        Writer { stop, ops, handle: Some(handle) }
    }

    /// Stops and waits; returns the operations done.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().expect("writer thread");
        self.ops.load(Ordering::Relaxed)
    }
}

/// What a user compares after a restore, besides the data: each collection's
/// type and options, and its index specs (sorted by name).
pub fn shape(client: &Client, db_name: &str) -> Vec<(String, Document)> {
    block_on(async {
        let db = client.database(db_name);
        let specs = super::mongod::cursor(&db, doc! {"listCollections": 1}).await;
        let mut out = Vec::new();
        for spec in specs {
            let name = spec.get_str("name").unwrap().to_string();
            let mut shape = doc! {"type": spec.get_str("type").unwrap_or(""), "options": spec.get_document("options").cloned().unwrap_or_default()};
            if spec.get_str("type") != Ok("view") {
                let mut indexes = super::mongod::cursor(&db, doc! {"listIndexes": &name}).await;
                indexes.sort_by(|a, b| a.get_str("name").unwrap_or("").cmp(b.get_str("name").unwrap_or("")));
                shape.insert("indexes", indexes);
            }
            out.push((name, shape));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    })
}
