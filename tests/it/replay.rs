//! Restore correctness of `mb-apply` into a server: the backup's scope
//! (cross-database transactions), `--drop` onto a target that holds other
//! data, conflicts with existing documents, every DDL the oplog carries, and
//! namespace patterns from the user.

use std::process::Output;

use mb::format::records::{Manifest, Ts};
use mongodb::bson::{doc, Document};
use mongodb::Client;

use crate::support::data::shape;
use crate::support::mongod::{block_on, Mongod};
use crate::support::{assert_fails_with, assert_ok, fixture, run_with_input, stage, stderr_of, temp_dir};

#[test]
fn bad_namespace_patterns_are_usage_errors() {
    for (from, to, needle) in [
        ("fixture.$c$", "nodot", "is not a namespace"),
        ("fixture.$c$", "copy.", "is not a namespace"),
        ("fixture.$c", "copy.$c$", "bad variable"),
    ] {
        let output = stage("mb-apply")
            .args(["--dry-run", "--ns-from", from, "--ns-to", to])
            .arg(fixture("mb-apply", "good.tar"))
            .output()
            .unwrap();
        assert_fails_with(&output, 2, needle);
    }
}

/// A backup chain taken with the stages themselves: a full dump, then oplog
/// slices, each ending at the source's newest oplog entry when taken.
pub struct Chain<'a> {
    pub source: &'a Mongod,
    pub databases: Vec<String>,
    pub streams: Vec<Vec<u8>>,
    /// Where the last stream ends (inclusive).
    pub end: Ts,
}

impl<'a> Chain<'a> {
    /// A full backup of `databases` on `source`.
    pub fn full(source: &'a Mongod, databases: &[&str]) -> Chain<'a> {
        let dir = temp_dir();
        let manifest = dir.path().join("manifest.json");
        let dump = stage("mb-dump")
            .args(["--uri", &source.uri(), "-q", "--db", &databases.join(","), "--manifest"])
            .arg(&manifest)
            .output()
            .unwrap();
        assert_ok(&dump);
        let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        let end = manifest.oplog.as_ref().map(|o| o.to).or(manifest.consistent_at).expect("a replica-set dump");
        Chain { source, databases: databases.iter().map(|d| d.to_string()).collect(), streams: vec![dump.stdout], end }
    }

    /// An oplog slice from the chain's end to the source's newest entry.
    pub fn slice(&mut self) -> Ts {
        let to = block_on(mb::mongo::oplog::newest(&self.source.client())).unwrap();
        let range = serde_json::json!({
            "format": "mb-range/1", "kind": "oplog", "from": self.end, "to": to, "databases": self.databases,
        });
        let dump = run_with_input(
            stage("mb-dump").args(["--uri", &self.source.uri(), "-q", "--range", "-"]),
            range.to_string().as_bytes(),
        );
        assert_ok(&dump);
        self.streams.push(dump.stdout);
        self.end = to;
        to
    }

    /// The whole chain, as `cat full slice...` gives it.
    pub fn bytes(&self) -> Vec<u8> {
        self.streams.concat()
    }

    /// `mb-apply --uri TARGET ARGS...` fed the whole chain.
    pub fn apply(&self, target: &Mongod, args: &[&str]) -> Output {
        run_with_input(stage("mb-apply").args(["--uri", &target.uri()]).args(args), &self.bytes())
    }
}

/// The newest oplog entry of `server`: a point after every write made so far.
pub fn now(server: &Mongod) -> Ts {
    block_on(mb::mongo::oplog::newest(&server.client())).unwrap()
}

/// Runs a command, panicking with the server's message if it fails.
pub fn run(client: &Client, db: &str, command: Document) -> Document {
    block_on(async { client.database(db).run_command(command.clone()).await })
        .unwrap_or_else(|e| panic!("{command} on {db}: {e}"))
}

fn drop_databases(server: &Mongod, databases: &[&str]) {
    let client = server.client();
    for db in databases {
        block_on(async { client.database(db).drop().await }).unwrap();
    }
}

fn database_names(server: &Mongod) -> Vec<String> {
    let client = server.client();
    block_on(async { client.list_database_names().await }).unwrap()
}

/// Asserts `db` on `target` equals `db` on the source at `at`: data and shape.
#[track_caller]
pub fn assert_same_as_source(source: &Mongod, target: &Mongod, db: &str, at: Ts, shape_then: &[(String, Document)]) {
    let (_, expected) = source.db_hash_at(db, at);
    let (_, restored) = target.db_hash(db);
    assert_eq!(restored, expected, "{db}: the restored collections' hashes differ from the source's at {at}");
    assert_eq!(shape(&target.client(), db), shape_then, "{db}: collection options or index specs differ");
}

#[test]
fn a_cross_database_transaction_restores_only_the_backed_up_database() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let client = source.client();
    drop_databases(source, &["txa", "txb"]);
    drop_databases(target, &["txa", "txb"]);
    run(&client, "txa", doc! {"insert": "x", "documents": (0..10).map(|i| doc! {"_id": i}).collect::<Vec<_>>()});
    run(&client, "txb", doc! {"insert": "y", "documents": [{"_id": 0}]});
    run(&client, "txa", doc! {"insert": "leaving", "documents": [{"_id": 0}]});
    let mut chain = Chain::full(source, &["txa"]);
    // Renamed out of the backed-up database: gone from txa, nothing in txb.
    run(&client, "admin", doc! {"renameCollection": "txa.leaving", "to": "txb.arrived"});
    block_on(async {
        let mut session = client.start_session().await?;
        session.start_transaction().await?;
        client.database("txa").collection::<Document>("x").insert_one(doc! {"_id": 100}).session(&mut session).await?;
        client.database("txb").collection::<Document>("y").insert_one(doc! {"_id": 100}).session(&mut session).await?;
        client
            .database("txa")
            .collection::<Document>("x")
            .update_one(doc! {"_id": 1}, doc! {"$set": {"in_txn": true}})
            .session(&mut session)
            .await?;
        session.commit_transaction().await?;
        // One over 16 MB, which the server splits into partialTxn entries.
        let filler = "f".repeat(1 << 20);
        let mut session = client.start_session().await?;
        session.start_transaction().await?;
        for i in 0..18 {
            let (db, coll) = if i % 2 == 0 { ("txa", "x") } else { ("txb", "y") };
            let document = doc! {"_id": 1000 + i, "filler": &filler};
            client.database(db).collection::<Document>(coll).insert_one(document).session(&mut session).await?;
        }
        session.commit_transaction().await
    })
    .unwrap();
    let end = chain.slice();
    let txa_shape = shape(&client, "txa");

    // A target without txb: the restore succeeds and says what it left out.
    let output = chain.apply(target, &["--drop"]);
    assert_ok(&output);
    assert!(
        stderr_of(&output).contains("oplog operation(s) outside the backup's scope (databases not backed up; txb: "),
        "out-of-scope operations are counted on stderr: {}",
        stderr_of(&output)
    );
    assert_same_as_source(source, target, "txa", end, &txa_shape);
    assert!(!database_names(target).contains(&"txb".to_string()), "txb was never backed up: nothing may create it");

    // A target that has txb.y: it is left exactly as it was.
    run(&target.client(), "txb", doc! {"insert": "y", "documents": [{"_id": 0, "target": true}]});
    let before = target.db_hash("txb");
    assert_ok(&chain.apply(target, &["--drop"]));
    assert_same_as_source(source, target, "txa", end, &txa_shape);
    assert_eq!(target.db_hash("txb"), before, "restoring txa wrote into txb");
}

/// One database as a user compares it: name, per-collection hashes, and
/// each collection's options and index specs.
pub type DbState = (String, Document, Vec<(String, Document)>);

/// What a user compares of each database: its collections' hashes, options and index specs.
pub fn state(server: &Mongod, databases: &[&str]) -> Vec<DbState> {
    databases.iter().map(|db| (db.to_string(), server.db_hash(db).1, shape(&server.client(), db))).collect()
}

#[test]
fn every_ddl_in_a_slice_is_replayed() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let dbs = ["ddl_one", "ddl_two", "ddl_three"];
    drop_databases(source, &dbs);
    drop_databases(target, &dbs);
    let client = source.client();
    let docs = |n: i32| {
        (0..n).map(|i| doc! {"_id": i, "k": i, "v": i % 7, "at": mongodb::bson::DateTime::now()}).collect::<Vec<_>>()
    };
    for coll in ["a", "moved", "across", "gone"] {
        run(&client, "ddl_one", doc! {"insert": coll, "documents": docs(20)});
    }
    run(&client, "ddl_three", doc! {"insert": "t", "documents": docs(5)});
    // A backup refuses a database that does not exist: ddl_two starts with one
    // collection, and gets the rest of its collections during the cycle.
    run(&client, "ddl_two", doc! {"insert": "first", "documents": docs(2)});
    run(&client, "ddl_one", doc! {"create": "series_gone", "timeseries": {"timeField": "at"}});
    run(&client, "ddl_one", doc! {"insert": "series_gone", "documents": docs(3)});
    run(&client, "ddl_one", doc! {"create": "view_gone", "viewOn": "a", "pipeline": []});
    run(
        &client,
        "ddl_one",
        doc! {"createIndexes": "a", "indexes": [
            {"key": {"k": 1}, "name": "k_unique", "unique": true},
            {"key": {"v": 1}, "name": "v_hidden"},
            {"key": {"at": 1}, "name": "at_ttl", "expireAfterSeconds": 3600},
            {"key": {"v": -1, "k": 1}, "name": "reused"},
        ]},
    );
    let mut chain = Chain::full(source, &dbs);

    // Index DDL: drop, hide, change a TTL, reuse a dropped index's name with another key.
    run(&client, "ddl_one", doc! {"dropIndexes": "a", "index": "k_unique"});
    run(&client, "ddl_one", doc! {"collMod": "a", "index": {"name": "v_hidden", "hidden": true}});
    run(&client, "ddl_one", doc! {"collMod": "a", "index": {"name": "at_ttl", "expireAfterSeconds": 60}});
    run(&client, "ddl_one", doc! {"dropIndexes": "a", "index": "reused"});
    run(&client, "ddl_one", doc! {"createIndexes": "a", "indexes": [{"key": {"k": -1}, "name": "reused"}]});
    run(&client, "ddl_one", doc! {"collMod": "a", "validator": {"k": {"$type": "int"}}, "validationLevel": "moderate"});
    // A duplicate k, which the dropped unique index would refuse.
    run(&client, "ddl_one", doc! {"insert": "a", "documents": [{"_id": 100, "k": 1}]});
    let middle = chain.slice();
    let middle_state = state(source, &dbs);

    // Collections: renames within and across databases, drop, creates with options, dropDatabase.
    run(&client, "admin", doc! {"renameCollection": "ddl_one.moved", "to": "ddl_one.moved_here"});
    run(&client, "admin", doc! {"renameCollection": "ddl_one.across", "to": "ddl_two.arrived"});
    run(&client, "ddl_one", doc! {"drop": "gone"});
    run(&client, "ddl_one", doc! {"drop": "series_gone"});
    run(&client, "ddl_one", doc! {"drop": "view_gone"});
    run(&client, "ddl_two", doc! {"create": "capped", "capped": true, "size": 8192, "max": 5});
    run(&client, "ddl_two", doc! {"insert": "capped", "documents": docs(9)});
    run(&client, "ddl_two", doc! {"create": "collated", "collation": {"locale": "fr", "strength": 2}});
    run(
        &client,
        "ddl_two",
        doc! {"create": "validated", "validator": {"$jsonSchema": {"required": ["k"]}}, "validationAction": "warn"},
    );
    run(&client, "ddl_two", doc! {"create": "clustered", "clusteredIndex": {"key": {"_id": 1}, "unique": true}});
    run(&client, "ddl_two", doc! {"insert": "clustered", "documents": docs(3)});
    run(&client, "ddl_two", doc! {"create": "series", "timeseries": {"timeField": "at", "metaField": "k"}});
    run(&client, "ddl_two", doc! {"insert": "series", "documents": docs(4)});
    run(&client, "ddl_two", doc! {"create": "a_view", "viewOn": "capped", "pipeline": [{"$match": {"v": 1}}]});
    run(
        &client,
        "ddl_two",
        doc! {"createIndexes": "collated", "indexes": [{"key": {"k": 1}, "name": "k_1", "partialFilterExpression": {"v": {"$gt": 2}}}]},
    );
    run(&client, "ddl_three", doc! {"dropDatabase": 1});
    let end = chain.slice();
    let end_state = state(source, &dbs);

    for (at, expected, until) in [(middle, &middle_state, Some(middle)), (end, &end_state, None)] {
        drop_databases(target, &dbs);
        let until = until.map(|t| t.to_string());
        let mut args = vec!["--drop"];
        if let Some(until) = &until {
            args.extend(["--until", until.as_str()]);
        }
        let output = chain.apply(target, &args);
        assert_ok(&output);
        assert_eq!(&state(target, &dbs), expected, "data, collection options and index specs restored to {at}");
        if until.is_some() {
            // Idempotent: the first slice applied again (an overlapping restart) changes nothing.
            let again = run_with_input(
                stage("mb-apply").args(["--uri", &target.uri(), "-q", "--oplog-only"]),
                &chain.streams[1],
            );
            assert_ok(&again);
            assert_eq!(&state(target, &dbs), expected, "the slice to {at} applied twice");
        }
    }
    assert!(!database_names(target).contains(&"ddl_three".to_string()), "dropDatabase is replayed");
}

#[test]
fn drop_makes_the_target_equal_to_the_source_whatever_it_held() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "drop_chain";
    drop_databases(source, &[db]);
    drop_databases(target, &[db]);
    let client = source.client();
    run(&client, db, doc! {"insert": "a", "documents": (0..20).map(|i| doc! {"_id": i, "v": i}).collect::<Vec<_>>()});
    let mut chain = Chain::full(source, &[db]);
    // Created during the cycle: only the slice has it.
    run(
        &client,
        db,
        doc! {"insert": "later", "documents": (0..5).map(|i| doc! {"_id": i, "v": i}).collect::<Vec<_>>()},
    );
    run(&client, db, doc! {"update": "later", "updates": [{"q": {"_id": 1}, "u": {"$inc": {"v": 10}}}]});
    chain.slice();
    let expected = state(source, &[db]);

    // The target holds other documents in `later`, an extra collection, and
    // one the user excludes from the restore.
    let target_client = target.client();
    run(&target_client, db, doc! {"insert": "later", "documents": [{"_id": 1, "old": true}, {"_id": 99, "old": true}]});
    run(&target_client, db, doc! {"createIndexes": "later", "indexes": [{"key": {"old": 1}, "name": "old_1"}]});
    run(&target_client, db, doc! {"insert": "extra", "documents": [{"_id": 1}]});
    run(&target_client, db, doc! {"insert": "a", "documents": [{"_id": 1000}]});
    // Without --drop, replaying into a collection the target already had is said.
    let output = chain.apply(target, &[]);
    assert!(
        stderr_of(&output).contains("drop_chain.later already exists on the target"),
        "replay onto the target's own documents is loud: {}",
        stderr_of(&output)
    );
    assert_ok(&chain.apply(target, &["--drop"]));
    assert_eq!(state(target, &[db]), expected, "after --drop the database equals the source's");

    // With a filter, --drop leaves what the filter excludes.
    run(&target_client, db, doc! {"insert": "kept", "documents": [{"_id": 1}]});
    assert_ok(&chain.apply(target, &["--drop", "--ns-exclude", "drop_chain.kept"]));
    let kept = run(&target_client, db, doc! {"count": "kept"});
    assert_eq!(kept.get_i32("n").unwrap(), 1, "an excluded collection is not dropped");
}

#[test]
fn conflicts_with_the_targets_documents_are_counted_and_fail_the_restore() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "conflicts";
    drop_databases(source, &[db]);
    drop_databases(target, &[db]);
    let users = |ids: std::ops::Range<i32>| ids.map(|i| doc! {"_id": i, "email": format!("u{i}")}).collect::<Vec<_>>();
    let unique_email =
        doc! {"createIndexes": "users", "indexes": [{"key": {"email": 1}, "name": "email_1", "unique": true}]};
    run(&source.client(), db, doc! {"insert": "users", "documents": users(0..200)});
    run(&source.client(), db, unique_email.clone());
    let chain = Chain::full(source, &[db]);

    // The target already has users: 190 with the same emails under other
    // _ids, one _id with other content, one identical document.
    let target_client = target.client();
    run(&target_client, db, unique_email);
    let mut held: Vec<Document> = (0..190).map(|i| doc! {"_id": 1000 + i, "email": format!("u{i}")}).collect();
    held.push(doc! {"_id": 195, "email": "someone-else"});
    held.push(doc! {"_id": 196, "email": "u196"});
    run(&target_client, db, doc! {"insert": "users", "documents": held});

    let output = chain.apply(target, &[]);
    assert_fails_with(&output, 4, "191 document(s) of the backup were not restored: 1 conflict with another document with the same _id, 190 with another unique index");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("restored 1 collections, 8 documents"),
        "the count of restored documents is true: {stderr}"
    );
    assert!(stderr.contains("1 document(s) were already there, identical"), "{stderr}");
    assert_eq!(run(&target_client, db, doc! {"count": "users"}).get_i32("n").unwrap(), 200);

    // Asked to keep the target's documents: the same counts, exit 0.
    let output = chain.apply(target, &["--keep-existing"]);
    assert_ok(&output);
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (&record["documents"], &record["duplicates"], &record["id_conflicts"], &record["unique_conflicts"]),
        (&0.into(), &9.into(), &1.into(), &190.into()),
        "{record}"
    );
    assert!(stderr_of(&output).contains("--keep-existing: the target's documents stay"));
}
