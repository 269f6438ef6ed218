//! Parallel oplog replay (`mb-apply --parallel N`): each document's
//! operations stay in order, documents that are one by value (`_id` 1,
//! NumberLong(1), 1.0; "A" and "a" under a case-insensitive collation) stay
//! on one worker, collections where documents depend on each other (a unique
//! index, a capped collection) replay in order, and commands and
//! transactions are barriers. Each restored chain is compared with the
//! source at the restore point (dbHash, options, indexes). Small batches
//! (`--oplog-batch`) spread each run over many batches on every worker, so a
//! broken partition shows as a reorder.

use mongodb::bson::{doc, Bson, Document};
use mongodb::Client;

use mb::format::records::Ts;

use crate::replay::{assert_same_as_source, now, run, Chain};
use crate::support::data::shape;
use crate::support::mongod::{block_on, Mongod};
use crate::support::{assert_fails_with, assert_ok, run_with_input, stage, stderr_of};

fn fresh(source: &Mongod, target: &Mongod, db: &str) -> Client {
    for server in [source, target] {
        let client = server.client();
        block_on(async { client.database(db).drop().await }).unwrap();
    }
    source.client()
}

/// Restores the chain with --drop and `args`, and compares `db` with the source at the chain's end.
#[track_caller]
fn restore_and_compare(chain: &Chain, db: &str, args: &[&str]) {
    let expected_shape = shape(&chain.source.client(), db);
    let target = Mongod::shared_standalone();
    let mut all = vec!["--drop", "-q"];
    all.extend(args);
    assert_ok(&chain.apply(target, &all));
    assert_same_as_source(chain.source, target, db, chain.end, &expected_shape);
}

/// What `db` is on `server` now: its collections' hashes, options and indexes.
fn snapshot(server: &Mongod, db: &str) -> (Document, Vec<(String, Document)>) {
    (server.db_hash(db).1, shape(&server.client(), db))
}

/// Restores the chain with --drop, `args` and --until `at`, and compares
/// `db` with `expected`, the source's [`snapshot`] at `at` (later DDL keeps
/// the server from reading that far back).
#[track_caller]
fn restore_until(chain: &Chain, db: &str, args: &[&str], at: Ts, expected: &(Document, Vec<(String, Document)>)) {
    let target = Mongod::shared_standalone();
    let until = at.to_string();
    let mut all = vec!["--drop", "-q", "--until", &until];
    all.extend(args);
    assert_ok(&chain.apply(target, &all));
    assert_eq!(&snapshot(target, db), expected, "{db} restored --until {at} differs from the source then");
}

#[test]
fn interleaved_updates_of_many_documents_keep_each_documents_order() {
    let source = Mongod::shared_replica_set();
    let db = "par_order";
    let client = fresh(source, Mongod::shared_standalone(), db);
    let docs: Vec<Document> = (0..100).map(|i| doc! {"_id": i, "n": 0, "s": "", "log": []}).collect();
    run(&client, db, doc! {"insert": "c", "documents": docs});
    let mut chain = Chain::full(source, &[db]);
    // Each round writes every document once, so one document's writes are
    // 100 entries apart and any reorder leaves another value behind.
    for round in 0..30 {
        let updates: Vec<Document> = (0..100)
            .map(|i| {
                let u = match (i + round) % 3 {
                    0 => doc! {"$inc": {"n": round + 1}},
                    1 => doc! {"$set": {"s": format!("r{round}"), "at": round}},
                    _ => doc! {"$push": {"log": round}},
                };
                doc! {"q": {"_id": i}, "u": u}
            })
            .collect();
        run(&client, db, doc! {"update": "c", "updates": updates, "ordered": false});
        if round % 10 == 9 {
            // Deleted and inserted again, with other content.
            let ids: Vec<i32> = (0..100).filter(|i| i % 7 == round % 7).collect();
            run(&client, db, doc! {"delete": "c", "deletes": [{"q": {"_id": {"$in": ids.clone()}}, "limit": 0}]});
            let again: Vec<Document> = ids.iter().map(|i| doc! {"_id": i, "n": round, "log": [round]}).collect();
            run(&client, db, doc! {"insert": "c", "documents": again});
        }
    }
    chain.slice();
    restore_and_compare(&chain, db, &["--parallel", "4", "--oplog-batch", "16"]);
    restore_and_compare(&chain, db, &["--parallel", "1"]);
}

#[test]
fn ids_equal_by_value_and_by_collation_are_one_document() {
    let source = Mongod::shared_replica_set();
    let db = "par_ids";
    let client = fresh(source, Mongod::shared_standalone(), db);
    run(&client, db, doc! {"create": "numbers"});
    run(&client, db, doc! {"create": "nocase", "collation": {"locale": "en", "strength": 2}});
    let mut chain = Chain::full(source, &[db]);
    // Groups of _ids that are one document: each inserted, updated and
    // deleted in turn (the next comes as the one before leaves); the last of
    // each group stays at the end.
    let numbers = |v: i32| -> Vec<Vec<Bson>> {
        vec![
            vec![Bson::Int32(v), Bson::Int64(v.into()), Bson::Double(v.into())],
            vec![
                Bson::Document(doc! {"a": v, "b": [v]}),
                Bson::Document(doc! {"a": f64::from(v), "b": [i64::from(v)]}),
            ],
        ]
    };
    let cases = |v: i32| -> Vec<Vec<Bson>> {
        vec![vec![format!("KEY{v}X").into(), format!("key{v}x").into(), format!("Key{v}x").into()]]
    };
    let mut step = 0i64;
    for (coll, groups) in [("numbers", &numbers as &dyn Fn(i32) -> Vec<Vec<Bson>>), ("nocase", &cases)] {
        for turn in 0..3 {
            for v in 0..20 {
                for group in groups(v) {
                    for (k, id) in group.iter().enumerate() {
                        step += 1;
                        run(&client, db, doc! {"insert": coll, "documents": [{"_id": id.clone(), "turn": turn}]});
                        let update = doc! {"q": {"_id": id.clone()}, "u": {"$inc": {"step": step}}};
                        run(&client, db, doc! {"update": coll, "updates": [update]});
                        if turn < 2 || k + 1 < group.len() {
                            run(
                                &client,
                                db,
                                doc! {"delete": coll, "deletes": [{"q": {"_id": id.clone()}, "limit": 1}]},
                            );
                        }
                    }
                }
            }
        }
    }
    chain.slice();
    restore_and_compare(&chain, db, &["--parallel", "4", "--oplog-batch", "8"]);
}

#[test]
fn collections_whose_documents_depend_on_each_other_replay_in_order() {
    let source = Mongod::shared_replica_set();
    let db = "par_linked";
    let client = fresh(source, Mongod::shared_standalone(), db);
    let users: Vec<Document> = (0..40).map(|i| doc! {"_id": i, "email": format!("u{i}")}).collect();
    run(&client, db, doc! {"insert": "users", "documents": users});
    run(
        &client,
        db,
        doc! {"createIndexes": "users", "indexes": [{"key": {"email": 1}, "name": "email_1", "unique": true}]},
    );
    run(&client, db, doc! {"create": "log", "capped": true, "size": 65536, "max": 3});
    let mut chain = Chain::full(source, &[db]);
    let mut emails: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    for round in 0..6 {
        // Pairs swap their emails through a free value (one ordered command,
        // an oplog entry per write): each write is valid only after the one
        // before it, on another document.
        let mut updates = Vec::new();
        for a in (0..40).step_by(2) {
            let b = a + 1;
            updates.push(doc! {"q": {"_id": a as i32}, "u": {"$set": {"email": "free"}}});
            updates.push(doc! {"q": {"_id": b as i32}, "u": {"$set": {"email": &emails[a]}}});
            updates.push(doc! {"q": {"_id": a as i32}, "u": {"$set": {"email": &emails[b]}}});
            emails.swap(a, b);
        }
        run(&client, db, doc! {"update": "users", "updates": updates, "ordered": true});
        // A capped collection keeps the newest 3 by insertion order.
        let entries: Vec<Document> =
            (0..40).map(|i| doc! {"_id": round * 100 + (i * 37) % 40, "round": round}).collect();
        run(&client, db, doc! {"insert": "log", "documents": entries, "ordered": true});
    }
    chain.slice();
    restore_and_compare(&chain, db, &["--parallel", "4", "--oplog-batch", "4"]);
}

#[test]
fn commands_and_transactions_between_writes_are_barriers() {
    let source = Mongod::shared_replica_set();
    let db = "par_barriers";
    let client = fresh(source, Mongod::shared_standalone(), db);
    let docs = |from: i32| (from..from + 50).map(|i| doc! {"_id": i, "v": i, "k": i}).collect::<Vec<_>>();
    run(&client, db, doc! {"insert": "a", "documents": docs(0)});
    let mut chain = Chain::full(source, &[db]);
    let bump = |coll: &str, by: i32| {
        let updates: Vec<Document> =
            (0..50).map(|i| doc! {"q": {"_id": i}, "u": {"$inc": {"v": by}, "$push": {"h": by}}}).collect();
        run(&client, db, doc! {"update": coll, "updates": updates, "ordered": false});
    };
    let transaction = |coll: &str, by: i32| {
        block_on(async {
            let mut session = client.start_session().await?;
            session.start_transaction().await?;
            let c = client.database(db).collection::<Document>(coll);
            for i in 0..50 {
                c.update_one(doc! {"_id": i}, doc! {"$set": {"v": by * 1000 + i}}).session(&mut session).await?;
            }
            c.delete_one(doc! {"_id": 49}).session(&mut session).await?;
            c.insert_one(doc! {"_id": 49, "v": by, "k": 49}).session(&mut session).await?;
            session.commit_transaction().await
        })
        .unwrap()
    };
    bump("a", 1);
    transaction("a", 2);
    // Restored up to the transaction: the writes before it must not land after it.
    let (after_transaction, then) = (now(source), snapshot(source, db));
    bump("a", 3);
    // A unique index right after writes that would break it if they ran after it.
    run(&client, db, doc! {"update": "a", "updates": [{"q": {}, "u": {"$inc": {"k": 1000}}, "multi": true}]});
    run(&client, db, doc! {"update": "a", "updates": [{"q": {"_id": 1}, "u": {"$set": {"k": 1000}}}]});
    run(&client, db, doc! {"update": "a", "updates": [{"q": {"_id": 1}, "u": {"$set": {"k": 1001}}}]});
    run(&client, db, doc! {"createIndexes": "a", "indexes": [{"key": {"k": 1}, "name": "k_1", "unique": true}]});
    bump("a", 4);
    // Learned before the index (documents in parallel), now unique: pairs
    // swap k through a free value, in order or a duplicate key.
    let mut swaps = Vec::new();
    for round in 0..4 {
        for a in (0..48).step_by(2) {
            let (ka, kb) = if round % 2 == 0 { (a + 1000, a + 1001) } else { (a + 1001, a + 1000) };
            swaps.push(doc! {"q": {"_id": a}, "u": {"$set": {"k": -1}}});
            swaps.push(doc! {"q": {"_id": a + 1}, "u": {"$set": {"k": ka}}});
            swaps.push(doc! {"q": {"_id": a}, "u": {"$set": {"k": kb}}});
        }
    }
    run(&client, db, doc! {"update": "a", "updates": swaps, "ordered": true});
    run(&client, db, doc! {"dropIndexes": "a", "index": "k_1"});
    run(&client, db, doc! {"update": "a", "updates": [{"q": {}, "u": {"$set": {"k": 0}}, "multi": true}]});
    run(&client, db, doc! {"collMod": "a", "validator": {"v": {"$exists": true}}});
    run(&client, "admin", doc! {"renameCollection": format!("{db}.a"), "to": format!("{db}.b")});
    bump("b", 5);
    run(&client, db, doc! {"insert": "a", "documents": docs(0)});
    bump("a", 6);
    transaction("b", 7);
    bump("b", 8);
    run(&client, db, doc! {"drop": "a"});
    run(&client, db, doc! {"create": "a", "collation": {"locale": "fr", "strength": 1}});
    run(&client, db, doc! {"insert": "a", "documents": docs(0)});
    bump("a", 9);
    chain.slice();
    restore_and_compare(&chain, db, &["--parallel", "4", "--oplog-batch", "8"]);
    restore_until(&chain, db, &["--parallel", "4", "--oplog-batch", "8"], after_transaction, &then);
}

#[test]
fn a_write_that_fails_in_one_worker_fails_the_restore_naming_it() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "par_fail";
    let client = fresh(source, target, db);
    run(&client, db, doc! {"insert": "x", "documents": (0..10).map(|i| doc! {"_id": i, "k": i}).collect::<Vec<_>>()});
    run(&client, db, doc! {"insert": "y", "documents": [{"_id": 0}]});
    let mut chain = Chain::full(source, &[db]);
    run(&client, db, doc! {"insert": "y", "documents": (1..400).map(|i| doc! {"_id": i}).collect::<Vec<_>>()});
    run(&client, db, doc! {"insert": "x", "documents": [{"_id": 10, "k": 3}]});
    run(&client, db, doc! {"insert": "y", "documents": (400..800).map(|i| doc! {"_id": i}).collect::<Vec<_>>()});
    chain.slice();
    // The target's x has a unique index the source's has not: the duplicate k fails there.
    let full = run_with_input(stage("mb-apply").args(["--uri", &target.uri(), "--drop", "-q"]), &chain.streams[0]);
    assert_ok(&full);
    run(
        &target.client(),
        db,
        doc! {"createIndexes": "x", "indexes": [{"key": {"k": 1}, "name": "k_1", "unique": true}]},
    );
    let slice = run_with_input(
        stage("mb-apply").args(["--uri", &target.uri(), "--oplog-only", "--parallel", "4", "--oplog-batch", "16"]),
        &chain.streams[1],
    );
    assert_fails_with(&slice, 1, "on par_fail.x: ");
    let stderr = stderr_of(&slice);
    assert!(stderr.contains("mb-apply: applying oplog entry ") && stderr.contains("duplicate key"), "{stderr}");
    assert!(slice.stdout.is_empty(), "no record of a restore that failed");
}
