//! Issue 18's replay and restore corners (the "zoo" runs), each compared
//! with the source as a user would: capped conversions after the full
//! backup, zero timestamps in the data, time series and views under
//! `--ns-include`, writes that bypassed validation, `system.js` under
//! `--drop`, and `--to-dir` of a cross-database transaction. Users and
//! roles are in `zoo_users.rs`.

use mb::format::records::Manifest;
use mongodb::bson::{doc, Bson, Document, Timestamp};

use crate::replay::{now, run, Chain};
use crate::support::data::shape;
use crate::support::mongod::{block_on, cursor, Mongod};
use crate::support::{assert_ok, run_with_input, stage, stderr_of, temp_dir};

/// A full backup of `databases` taken with `extra` dump flags (`--users-and-roles`).
pub fn full_with<'a>(source: &'a Mongod, databases: &[&str], extra: &[&str]) -> Chain<'a> {
    let dir = temp_dir();
    let manifest = dir.path().join("manifest.json");
    let dump = stage("mb-dump")
        .args(["--uri", &source.uri(), "-q", "--db", &databases.join(","), "--manifest"])
        .arg(&manifest)
        .args(extra)
        .output()
        .unwrap();
    assert_ok(&dump);
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let end = manifest.oplog.as_ref().map(|o| o.to).expect("a replica-set dump");
    Chain { source, databases: databases.iter().map(|d| d.to_string()).collect(), streams: vec![dump.stdout], end }
}

/// An oplog slice to the source's newest entry, taken with `extra` dump flags.
pub fn slice_with(chain: &mut Chain, extra: &[&str]) {
    let to = now(chain.source);
    let range = serde_json::json!({
        "format": "mb-range/1", "kind": "oplog", "from": chain.end, "to": to, "databases": chain.databases,
    });
    let dump = run_with_input(
        stage("mb-dump").args(["--uri", &chain.source.uri(), "-q", "--range", "-"]).args(extra),
        range.to_string().as_bytes(),
    );
    assert_ok(&dump);
    chain.streams.push(dump.stdout);
    chain.end = to;
}

/// Drops `databases` on each server.
pub fn fresh(servers: &[&Mongod], databases: &[&str]) {
    for server in servers {
        let client = server.client();
        for db in databases {
            block_on(async { client.database(db).drop().await }).unwrap();
        }
    }
}

/// Every document of `db.coll`, sorted by `_id`.
fn documents(server: &Mongod, db: &str, coll: &str) -> Vec<Document> {
    let db = server.client().database(db);
    block_on(cursor(&db, doc! {"find": coll, "sort": {"_id": 1}, "batchSize": 10_000}))
}

/// The documents of a `.bson` file.
pub fn bson_documents(mut data: &[u8]) -> Vec<Document> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let length = i32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
        out.push(Document::from_reader(&data[..length]).unwrap());
        data = &data[length..];
    }
    out
}

/// The restored database equals the source's now: data, options, indexes.
#[track_caller]
fn assert_restored(source: &Mongod, target: &Mongod, db: &str) {
    assert_eq!(target.db_hash(db).1, source.db_hash(db).1, "{db}: the restored data differs from the source's");
    assert_eq!(shape(&target.client(), db), shape(&source.client(), db), "{db}: options or indexes differ");
}

/// Item 1: the copies `convertToCapped` and `cloneCollectionAsCapped` make
/// are logged `fromMigrate`; replay keeps them.
#[test]
fn capped_conversions_after_the_full_backup_keep_their_data() {
    let (source, target) = (Mongod::shared_replica_set(), Mongod::shared_standalone());
    let db = "zoo_capped";
    fresh(&[source, target], &[db]);
    let client = source.client();
    let docs: Vec<Document> = (0..30).map(|i| doc! {"_id": i, "v": format!("value {i}")}).collect();
    for coll in ["converted", "original", "kept"] {
        run(&client, db, doc! {"insert": coll, "documents": docs.clone()});
    }
    let mut chain = Chain::full(source, &[db]);
    run(&client, db, doc! {"convertToCapped": "converted", "size": 1 << 20});
    run(&client, db, doc! {"cloneCollectionAsCapped": "original", "toCollection": "clone", "size": 1 << 20});
    run(&client, db, doc! {"insert": "clone", "documents": [{"_id": 100}]});
    chain.slice();
    assert_ok(&chain.apply(target, &["--drop", "-q"]));
    assert_eq!(documents(target, db, "converted").len(), 30, "the converted collection keeps its documents");
    assert_restored(source, target, db);
    // Only the converted collection: the server's temp copy maps with it.
    fresh(&[target], &[db]);
    assert_ok(&chain.apply(target, &["--drop", "-q", "--ns-include", &format!("{db}.converted")]));
    assert_eq!(documents(target, db, "converted"), documents(source, db, "converted"));
    assert_eq!(
        shape(&target.client(), db),
        shape(&source.client(), db).into_iter().filter(|(n, _)| n == "converted").collect::<Vec<_>>()
    );
}

/// Item 2: the server fills an empty timestamp on insert; a restore keeps it.
#[test]
fn zero_timestamps_in_the_full_backup_stay_zero() {
    let (source, target) = (Mongod::shared_replica_set(), Mongod::shared_standalone());
    let db = "zoo_zero_ts";
    fresh(&[source, target], &[db]);
    let client = source.client();
    run(&client, db, doc! {"insert": "t", "documents": [{"_id": 1, "a": 1}, {"_id": 2, "a": 2}, {"_id": 3}]});
    let zero = Bson::Timestamp(Timestamp { time: 0, increment: 0 });
    // Set, not inserted: an update keeps Timestamp(0,0) where an insert would not.
    let set = doc! {"ts": zero.clone(), "nested": {"ts": zero.clone()}, "later": zero.clone()};
    run(&client, db, doc! {"update": "t", "updates": [{"q": {"_id": {"$lte": 2}}, "u": {"$set": set}, "multi": true}]});
    let before = documents(source, db, "t");
    assert_eq!(before[0].get("ts"), Some(&zero), "the source holds a zero timestamp: {before:?}");
    let chain = Chain::full(source, &[db]);
    assert_ok(&chain.apply(target, &["--drop", "-q"]));
    assert_eq!(documents(target, db, "t"), before, "zero timestamps come back as they were");
    assert_restored(source, target, db);
}

/// Item 4: a time-series collection's writes are logged on its buckets, its
/// definition (and a view's) in `system.views`; `--ns-include` maps both.
#[test]
fn ns_include_carries_time_series_and_views() {
    let (source, target) = (Mongod::shared_replica_set(), Mongod::shared_standalone());
    let db = "zoo_series";
    fresh(&[source, target], &[db]);
    let client = source.client();
    let at = |i: i64| mongodb::bson::DateTime::from_millis(1_790_000_000_000 + i * 1000);
    let points =
        |from: i64| (from..from + 10).map(|i| doc! {"t": at(i), "m": {"s": i % 3}, "v": i}).collect::<Vec<_>>();
    run(&client, db, doc! {"create": "metrics", "timeseries": {"timeField": "t", "metaField": "m"}});
    run(&client, db, doc! {"insert": "metrics", "documents": points(0)});
    run(&client, db, doc! {"insert": "base", "documents": [{"_id": 1, "k": 1}, {"_id": 2, "k": 2}]});
    run(&client, db, doc! {"create": "old_view", "viewOn": "base", "pipeline": [{"$match": {"k": 1}}]});
    run(&client, db, doc! {"create": "left_out", "viewOn": "base", "pipeline": []});
    let mut chain = Chain::full(source, &[db]);
    run(&client, db, doc! {"insert": "metrics", "documents": points(100)});
    run(&client, db, doc! {"delete": "metrics", "deletes": [{"q": {"m.s": 0}, "limit": 0}]});
    run(&client, db, doc! {"create": "fresh", "timeseries": {"timeField": "t"}});
    run(&client, db, doc! {"insert": "fresh", "documents": points(200)});
    run(&client, db, doc! {"create": "new_view", "viewOn": "base", "pipeline": [{"$project": {"k": 1}}]});
    run(&client, db, doc! {"collMod": "old_view", "viewOn": "base", "pipeline": [{"$match": {"k": 2}}]});
    chain.slice();
    let names = ["metrics", "fresh", "base", "old_view", "new_view"];
    let mut args = vec!["--drop".to_string(), "-q".to_string()];
    for name in names {
        args.extend(["--ns-include".to_string(), format!("{db}.{name}")]);
    }
    let output = chain.apply(target, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ok(&output);
    let wanted: Vec<(String, Document)> =
        shape(&source.client(), db).into_iter().filter(|(n, _)| n != "left_out").collect();
    assert_eq!(shape(&target.client(), db), wanted, "collections, views and their options");
    for coll in ["metrics", "fresh", "old_view", "new_view"] {
        let sorted = |server: &Mongod| {
            let db = server.client().database(db);
            block_on(cursor(&db, doc! {"find": coll, "sort": {"t": 1, "_id": 1}, "projection": {"_id": 0}}))
        };
        assert_eq!(sorted(target), sorted(source), "{coll}'s documents");
    }
}

/// Item 7: writes the source accepted past a validator replay; a failing
/// replay names the server's reason.
#[test]
fn writes_that_bypassed_validation_replay_and_failures_say_why() {
    let (source, target) = (Mongod::shared_replica_set(), Mongod::shared_standalone());
    let db = "zoo_bypass";
    fresh(&[source, target], &[db]);
    let client = source.client();
    run(&client, db, doc! {"create": "strict", "validator": {"a": {"$type": "int"}}});
    run(&client, db, doc! {"insert": "strict", "documents": [{"_id": 1, "a": 1}, {"_id": 2, "a": 2}]});
    run(&client, db, doc! {"insert": "unique", "documents": [{"_id": 1, "u": 1}]});
    let mut chain = Chain::full(source, &[db]);
    run(
        &client,
        db,
        doc! {"insert": "strict", "documents": [{"_id": 3, "a": "three"}], "bypassDocumentValidation": true},
    );
    run(
        &client,
        db,
        doc! {"update": "strict", "updates": [{"q": {"_id": 1}, "u": {"$set": {"a": "one"}}}], "bypassDocumentValidation": true},
    );
    run(&client, db, doc! {"insert": "strict", "documents": [{"_id": 4, "a": 4}]});
    run(&client, db, doc! {"insert": "unique", "documents": [{"_id": 2, "u": 2}]});
    chain.slice();
    assert_ok(&chain.apply(target, &["--drop", "-q"]));
    assert_restored(source, target, db);

    // A target whose unique index refuses a replayed write: the error says so.
    fresh(&[target], &[db]);
    run(&target.client(), db, doc! {"insert": "unique", "documents": [{"_id": 9, "u": 2}]});
    run(
        &target.client(),
        db,
        doc! {"createIndexes": "unique", "indexes": [{"key": {"u": 1}, "name": "u", "unique": true}]},
    );
    let output = chain.apply(target, &["-q"]);
    assert!(!output.status.success(), "the replay cannot succeed");
    let last = stderr_of(&output).lines().last().unwrap_or("").to_string();
    assert!(last.contains("duplicate key"), "the error names the server's reason: {last}");
}

/// Item 8: `system.js` cannot be dropped: `--drop` empties it.
#[test]
fn drop_empties_system_js_instead_of_dropping_it() {
    let (source, target) = (Mongod::shared_replica_set(), Mongod::shared_standalone());
    let (with_js, without_js) = ("zoo_js", "zoo_js_none");
    fresh(&[source, target], &[with_js, without_js]);
    let code = |text: &str| Bson::JavaScriptCode(text.to_string());
    run(
        &source.client(),
        with_js,
        doc! {"insert": "system.js", "documents": [{"_id": "now", "value": code("function() { return 2; }")}]},
    );
    run(&source.client(), without_js, doc! {"insert": "c", "documents": [{"_id": 1}]});
    for db in [with_js, without_js] {
        run(
            &target.client(),
            db,
            doc! {"insert": "system.js", "documents": [{"_id": "stale", "value": code("function() { return 1; }")}]},
        );
    }
    let chain = Chain::full(source, &[with_js, without_js]);
    let output = chain.apply(target, &["--drop"]);
    assert_ok(&output);
    assert!(stderr_of(&output).contains("system.js"), "the emptied system.js is said: {}", stderr_of(&output));
    assert_eq!(documents(target, with_js, "system.js"), documents(source, with_js, "system.js"));
    assert_eq!(documents(target, without_js, "system.js"), Vec::<Document>::new(), "nothing stale is left");
    assert_eq!(target.db_hash(without_js).1.get("c"), source.db_hash(without_js).1.get("c"));
}

/// Item 9: `--to-dir` writes the in-scope part of a cross-database transaction.
#[test]
fn to_dir_oplog_holds_only_the_backed_up_part_of_a_transaction() {
    let source = Mongod::shared_replica_set();
    let (inside, outside) = ("zoo_txn_in", "zoo_txn_out");
    fresh(&[source], &[inside, outside]);
    let client = source.client();
    run(&client, inside, doc! {"insert": "x", "documents": [{"_id": 0}]});
    run(&client, outside, doc! {"insert": "y", "documents": [{"_id": 0}]});
    let mut chain = Chain::full(source, &[inside]);
    block_on(async {
        let mut session = client.start_session().await?;
        session.start_transaction().await?;
        for i in 1..4 {
            let (a, b) = (client.database(inside), client.database(outside));
            a.collection::<Document>("x").insert_one(doc! {"_id": i}).session(&mut session).await?;
            b.collection::<Document>("y").insert_one(doc! {"_id": i}).session(&mut session).await?;
        }
        session.commit_transaction().await
    })
    .unwrap();
    run(&client, outside, doc! {"insert": "y", "documents": [{"_id": 10}]});
    chain.slice();
    let dir = temp_dir();
    let out = dir.path().join("dump");
    assert_ok(&run_with_input(stage("mb-apply").arg("--to-dir").arg(&out).arg("-q"), &chain.bytes()));
    let oplog = std::fs::read(out.join("oplog.bson")).unwrap();
    let mut namespaces = Vec::new();
    for entry in bson_documents(&oplog) {
        let inner = entry.get_document("o").ok().and_then(|o| o.get_array("applyOps").ok());
        match inner {
            Some(ops) => {
                namespaces.extend(ops.iter().map(|op| op.as_document().unwrap().get_str("ns").unwrap().to_string()))
            }
            None => namespaces.push(entry.get_str("ns").unwrap().to_string()),
        }
    }
    assert!(namespaces.iter().all(|ns| !ns.starts_with(outside)), "only {inside}'s operations: {namespaces:?}");
    let inserted = namespaces.iter().filter(|ns| *ns == &format!("{inside}.x")).count();
    assert_eq!(inserted, 3, "the transaction's {inside} operations are kept: {namespaces:?}");
}
