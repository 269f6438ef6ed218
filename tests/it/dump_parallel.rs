//! One big collection read in ranges of its record ids on several
//! connections: it must restore identical (dbHash at the dump's consistency
//! point) whatever the mix of `_id` types, while a writer inserts, updates
//! (growing documents) and deletes across the ranges, and when the record a
//! range starts after is deleted before that range is read; capped
//! collections stay on one reader.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use mb::format::records::Manifest;
use mongodb::bson::{doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, DateTime, Document};
use mongodb::Client;

use crate::support::mongod::{block_on, Mongod, Options};
use crate::support::{assert_ok, run_held, run_with_input, stage, stderr_of, temp_dir, wait_for_more};

/// The `_id` of document `i`: every type an `_id` may have, interleaved, so
/// that every range holds several and a few types have a single value.
fn mixed_id(i: i64) -> Bson {
    match i % 8 {
        0 => Bson::Int32(i as i32),
        1 => Bson::Int64(i * 1_000_003),
        2 => Bson::Double(i as f64 + 0.5),
        3 => Bson::String(format!("s{i:07}")),
        4 => Bson::ObjectId(ObjectId::from_bytes([
            (i % 251) as u8,
            7,
            0,
            0,
            0,
            0,
            0,
            0,
            (i >> 16) as u8,
            (i >> 8) as u8,
            i as u8,
            1,
        ])),
        5 => Bson::Document(doc! {"k": i, "t": "doc"}),
        6 => Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: i.to_be_bytes().to_vec() }),
        _ => Bson::DateTime(DateTime::from_millis(1_700_000_000_000 + i)),
    }
}

fn big_document(id: Bson, i: i64) -> Document {
    doc! {"_id": id, "n": i, "filler": "y".repeat(400)}
}

/// `count` documents with mixed `_id`s, plus the one-of-a-kind `_id`s
/// (null, booleans, MinKey, MaxKey) at the ends of the index.
fn insert_mixed(client: &Client, db: &str, count: i64) {
    let coll = client.database(db).collection::<Document>("big");
    block_on(async {
        coll.drop().await.unwrap();
        for start in (0..count).step_by(2000) {
            let docs = (start..(start + 2000).min(count)).map(|i| big_document(mixed_id(i), i));
            coll.insert_many(docs).await.unwrap();
        }
        let singles = [Bson::Null, Bson::Boolean(false), Bson::Boolean(true), Bson::MinKey, Bson::MaxKey];
        coll.insert_many(singles.into_iter().enumerate().map(|(k, id)| big_document(id, -(k as i64) - 1)))
            .await
            .unwrap();
    });
}

/// Inserts, updates and deletes documents of every `_id` type, spread over
/// the whole index (so across range boundaries), until stopped.
struct MixedWriter {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<()>,
}

impl MixedWriter {
    fn start(client: Client, db: &str, count: i64) -> MixedWriter {
        let (stop, ops) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (stop2, ops2, db) = (stop.clone(), ops.clone(), db.to_string());
        let handle = std::thread::spawn(move || {
            block_on(async move {
                let coll = client.database(&db).collection::<Document>("big");
                let mut n: i64 = 0;
                while !stop2.load(Ordering::Relaxed) {
                    n += 1;
                    // A stride coprime with 8 visits every type and every part of the index.
                    let i = (n * 7919) % count;
                    coll.insert_one(big_document(mixed_id(count + n), count + n)).await.unwrap();
                    coll.update_one(doc! {"_id": mixed_id(i)}, doc! {"$inc": {"n": 1}, "$set": {"w": n}})
                        .await
                        .unwrap();
                    coll.delete_one(doc! {"_id": mixed_id((i + count / 2) % count)}).await.unwrap();
                    ops2.fetch_add(3, Ordering::Relaxed);
                }
            })
        });
        MixedWriter { stop, ops, handle }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("writer thread");
        self.ops.load(Ordering::Relaxed)
    }
}

#[test]
fn big_collection_of_mixed_ids_dumps_in_ranges_during_writes_and_restores_identical() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "dp_mixed";
    let count = 8000; // ~3.5 MB: split above 1 MiB into 64 KiB-chunk ranges.
    insert_mixed(&source.client(), db, count);
    let dir = temp_dir();
    let manifest_path = dir.path().join("manifest.json");

    let writer = MixedWriter::start(source.client(), db, count);
    // Held open (its pipe full) while the writer goes on, so that the
    // writes land between the ranges' reads.
    let dump = run_held(
        stage("mb-dump")
            .args(["--uri", &source.uri(), "--db", db, "--parallel", "3", "--chunk-size", "64KiB"])
            .args(["--split-above", "1MiB", "--manifest"])
            .arg(&manifest_path),
        || wait_for_more(&writer.ops, 60),
    );
    let ops = writer.stop();
    assert_ok(&dump);
    assert!(ops > 0, "the writer never ran");
    let log = stderr_of(&dump);
    assert!(
        log.contains("reading dp_mixed.big (") && log.contains(" ranges of its record ids"),
        "big was not split: {log}"
    );

    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let consistent_at = manifest.consistent_at.expect("a replica-set dump has a consistency point");
    assert!(manifest.oplog.as_ref().is_some_and(|o| o.count > 0), "the writes during the dump are carried");
    let big = manifest.collections.iter().find(|c| c.name == "big").unwrap();
    assert!(big.chunks > 20, "big should span many chunks, got {}", big.chunks);

    // Chunk numbers, document counts and CRC-64s checked against the manifest.
    let check = run_with_input(stage("mb-apply").args(["--dry-run", "-q"]), &dump.stdout);
    assert_ok(&check);
    let apply = run_with_input(stage("mb-apply").args(["--uri", &target.uri(), "--drop", "-q"]), &dump.stdout);
    assert_ok(&apply);

    let (source_md5, source_collections) = source.db_hash_at(db, consistent_at);
    let (target_md5, target_collections) = target.db_hash(db);
    assert_eq!(source_collections, target_collections, "per-collection hashes differ");
    assert_eq!(source_md5, target_md5);
}

/// A range resumes the collection scan after its first record; when that
/// record is deleted before the range is read, the range resumes further back
/// and skips what is not its own.
#[test]
fn a_range_whose_first_record_was_deleted_resumes_further_back() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "dp_deleted";
    let client = source.client();
    let coll = client.database(db).collection::<Document>("big");
    block_on(async {
        coll.drop().await.unwrap();
        for start in (0..12_000).step_by(2000) {
            coll.insert_many((start..start + 2000).map(|i: i64| doc! {"_id": i, "filler": "d".repeat(400)}))
                .await
                .unwrap();
        }
    });
    let dir = temp_dir();
    let manifest_path = dir.path().join("manifest.json");
    // ~5.4 MB in 8 ranges, 2 read at once: the dump blocks on its full pipe
    // within the first ranges, so the later ones start after the deletes.
    // All but every 20th document deleted while the dump is held: the later
    // ranges' first records are gone.
    let dump = run_held(
        stage("mb-dump")
            .args(["--uri", &source.uri(), "--db", db, "--parallel", "2", "--chunk-size", "64KiB", "-v", "-v"])
            .args(["--split-above", "1MiB", "--manifest"])
            .arg(&manifest_path),
        || {
            block_on(async { coll.delete_many(doc! {"_id": {"$not": {"$mod": [20, 0]}}}).await.unwrap() });
        },
    );
    assert_ok(&dump);
    let log = stderr_of(&dump);
    assert!(log.contains("was deleted during the dump; resuming further back"), "no range resumed further back: {log}");

    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let consistent_at = manifest.consistent_at.expect("a replica-set dump has a consistency point");
    let apply = run_with_input(stage("mb-apply").args(["--uri", &target.uri(), "--drop", "-q"]), &dump.stdout);
    assert_ok(&apply);
    assert_eq!(source.db_hash_at(db, consistent_at), target.db_hash(db));
    let left = block_on(async {
        target.client().database(db).collection::<Document>("big").count_documents(doc! {}).await.unwrap()
    });
    assert_eq!(left, 600, "every 20th of 12,000 documents is left");
}

#[test]
fn capped_collections_stay_on_one_reader_and_collated_ones_split() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "dp_single";
    let client = source.client();
    block_on(async {
        let database = client.database(db);
        database.drop().await.unwrap();
        database.run_command(doc! {"create": "capped", "capped": true, "size": 8 << 20}).await.unwrap();
        database.run_command(doc! {"create": "collated", "collation": {"locale": "fr", "strength": 1}}).await.unwrap();
        for name in ["capped", "collated", "plain"] {
            let coll = database.collection::<Document>(name);
            let docs = (0..3000).map(|i| doc! {"_id": format!("é{i:05}"), "filler": "z".repeat(400)});
            coll.insert_many(docs).await.unwrap();
        }
    });
    let dump = stage("mb-dump")
        .args(["--uri", &source.uri(), "--db", db, "--parallel", "3", "--chunk-size", "64KiB"])
        .args(["--split-above", "512KiB"])
        .output()
        .unwrap();
    assert_ok(&dump);
    let log = stderr_of(&dump);
    // A collation orders the `_id` index, not the record ids.
    for split in ["plain", "collated"] {
        assert!(log.contains(&format!("reading dp_single.{split} (")), "{split} should be split: {log}");
    }
    assert!(!log.contains("dp_single.capped ("), "capped should be read in insertion order: {log}");
    let apply = run_with_input(stage("mb-apply").args(["--uri", &target.uri(), "--drop", "-q"]), &dump.stdout);
    assert_ok(&apply);
    assert_eq!(source.db_hash(db), target.db_hash(db));
}

/// The built-in `backup` role is enough to split (`$collStats`, `$sample`).
#[test]
fn backup_role_splits_too() {
    let admin = Some(("admin".to_string(), "adminpw".to_string()));
    let source = Mongod::start(Options { replica_set: false, auth: admin, ..Options::default() });
    let db = "dp_priv";
    let client = source.client();
    block_on(async {
        let coll = client.database(db).collection::<Document>("big");
        coll.insert_many((0..3000).map(|i| doc! {"_id": i, "filler": "p".repeat(400)})).await.unwrap();
    });
    source.command(
        "admin",
        doc! {"createUser": "backupUser", "pwd": "b-pw", "roles": [{"role": "backup", "db": "admin"}]},
    );
    let dir = temp_dir();
    let manifest_path = dir.path().join("manifest.json");
    let dump = stage("mb-dump")
        .args(["--uri", &source.uri_with_auth("backupUser", "b-pw"), "--db", db, "--chunk-size", "64KiB"])
        .args(["--split-above", "512KiB", "-o", "/dev/null", "--manifest"])
        .arg(&manifest_path)
        .output()
        .unwrap();
    assert_ok(&dump);
    let log = stderr_of(&dump);
    assert!(log.contains("reading dp_priv.big ("), "big was not split with the backup role: {log}");
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest.collections.iter().map(|c| c.docs).sum::<u64>(), 3000);
}
