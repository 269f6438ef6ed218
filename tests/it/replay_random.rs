//! Randomized point-in-time restores: phases of random operations (inserts,
//! every update form, deletes, DDL, renames, a capped collection, capped
//! conversions, writes that bypass validation, time-series writes, user and
//! role DDL, small transactions) on two databases, backed up with their users
//! and roles, with backups between some phases; the chain restored `--until`
//! each phase's last write must equal the state recorded then: dbHash,
//! collection options and index specs, users and roles.
//!
//! The seed is fixed (reproducible) and printed with every failure; set
//! `MB_REPLAY_SEED=N` to try others.

use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::Client;

use crate::replay::{now, state};
use crate::support::assert_ok;
use crate::support::mongod::{block_on, Mongod};
use crate::zoo_cases::{full_with, slice_with};

const DATABASES: [&str; 2] = ["rnd_a", "rnd_b"];
const COLLECTIONS: [&str; 3] = ["c0", "c1", "c2"];
const PHASES: usize = 4;
const OPS_PER_PHASE: usize = 120;

/// xorshift64*: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn int(&mut self, n: i32) -> i32 {
        self.below(n as u64) as i32
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A random document: fields every update form below can work on.
fn random_doc(rng: &mut Rng, id: i32) -> Document {
    let arr: Vec<Bson> = (0..rng.int(4)).map(|x| Bson::Document(doc! {"x": x, "y": rng.int(10)})).collect();
    doc! {
        "_id": id,
        "a": rng.int(20),
        "b": format!("s{}", rng.int(50)),
        "arr": arr,
        "n": {"z": rng.int(5), "w": [rng.int(3), rng.int(3)]},
        // Far from expiring: TTL indexes on `t` must delete nothing during the test.
        "t": DateTime::now(),
    }
}

/// One random operation. Errors are part of the game (a unique index
/// refusing a write, a rename onto nothing): a failed operation writes no
/// oplog entry, or only the part it did, which the restore must match too.
fn random_op(client: &Client, rng: &mut Rng, next_id: &mut i32) {
    let db_name = *rng.pick(&DATABASES);
    let coll = *rng.pick(&COLLECTIONS);
    let db = client.database(db_name);
    let mut id = || {
        *next_id += 1;
        *next_id
    };
    let known_id = rng.int(60);
    let command = match rng.below(112) {
        0..=19 => {
            let docs: Vec<Document> = (0..1 + rng.int(5)).map(|_| random_doc(rng, id())).collect();
            doc! {"insert": coll, "documents": docs, "ordered": false}
        }
        20..=24 => doc! {"insert": coll, "documents": [random_doc(rng, known_id)]},
        25..=29 => doc! {"update": coll, "updates": [{"q": {"_id": known_id}, "u": random_doc(rng, known_id)}]},
        30..=37 => doc! {"update": coll, "updates": [{"q": {"a": {"$lt": rng.int(20)}}, "multi": true, "u": {
            "$inc": {"a": 1}, "$set": {"n.z": rng.int(9), "b": format!("u{}", rng.int(9))},
            "$push": {"arr": {"x": rng.int(4), "y": rng.int(9)}}, "$unset": {"n.w": ""},
        }}]},
        38..=42 => doc! {"update": coll, "updates": [{"q": {"a": rng.int(20)}, "multi": true, "u": [
            {"$set": {"b": {"$concat": ["$b", "-p"]}, "sum": {"$add": ["$a", rng.int(9)]}}},
            {"$unset": "n"},
        ]}]},
        43..=47 => doc! {"update": coll, "updates": [{"q": {}, "multi": true,
        "u": {"$set": {"arr.$[e].y": rng.int(99)}}, "arrayFilters": [{"e.x": {"$gte": rng.int(4)}}]}]},
        48..=52 => doc! {"update": coll, "updates": [{"q": {"_id": id()}, "upsert": true,
        "u": {"$set": {"a": rng.int(20), "b": "upserted"}, "$setOnInsert": {"t": DateTime::now()}}}]},
        53..=55 => {
            doc! {"update": coll, "updates": [{"q": {"b": "nobody"}, "upsert": true, "u": random_doc(rng, id())}]}
        }
        56..=62 => doc! {"delete": coll, "deletes": [{"q": {"a": {"$gt": 15 + rng.int(5)}}, "limit": rng.int(2)}]},
        63..=66 => {
            let field = *rng.pick(&["a", "b", "arr.x", "n.z"]);
            let mut spec = doc! {"key": {field: 1}, "name": format!("{}_idx", field.replace('.', "_"))};
            if rng.chance(25) {
                spec.insert("unique", true);
            }
            doc! {"createIndexes": coll, "indexes": [spec]}
        }
        67..=68 => {
            doc! {"createIndexes": coll, "indexes": [{"key": {"t": 1}, "name": "t_ttl", "expireAfterSeconds": 1_000_000 + rng.int(1000)}]}
        }
        69..=74 => {
            // Index DDL on an index the collection has (listIndexes is as deterministic as the rest).
            let names = index_names(client, db_name, coll);
            if names.is_empty() {
                return;
            }
            let name = rng.pick(&names).clone();
            match rng.below(3) {
                0 => doc! {"dropIndexes": coll, "index": name},
                1 if name == "t_ttl" => {
                    doc! {"collMod": coll, "index": {"name": name, "expireAfterSeconds": 2_000_000 + rng.int(1000)}}
                }
                _ => doc! {"collMod": coll, "index": {"name": name, "hidden": rng.chance(50)}},
            }
        }
        75 => {
            doc! {"collMod": coll, "validator": {"a": {"$type": "int"}}, "validationLevel": *rng.pick(&["moderate", "off"])}
        }
        76..=77 => doc! {"drop": coll},
        78 => doc! {"create": coll, "collation": {"locale": "en", "strength": 2}},
        79..=82 => {
            let to_db = *rng.pick(&DATABASES);
            let command = doc! {
                "renameCollection": format!("{db_name}.{coll}"),
                "to": format!("{to_db}.{}", rng.pick(&["c0", "c1", "c2", "moved", "moved"])),
                "dropTarget": rng.chance(75),
            };
            let result = block_on(async { client.database("admin").run_command(command).await });
            trace("renameCollection", db_name, coll, result.map(|_| ()));
            return;
        }
        83..=89 => {
            let docs: Vec<Document> = (0..1 + rng.int(3)).map(|_| random_doc(rng, id())).collect();
            doc! {"insert": "capped", "documents": docs}
        }
        90..=99 => {
            // A small transaction over both databases.
            let ops: Vec<(String, Document, Option<Document>)> = (0..2 + rng.int(3))
                .map(|_| {
                    let db = rng.pick(&DATABASES).to_string();
                    if rng.chance(50) {
                        (db, random_doc(rng, id()), None)
                    } else {
                        (db, doc! {"_id": rng.int(60)}, Some(doc! {"$set": {"txn": rng.int(100)}}))
                    }
                })
                .collect();
            let result = block_on(async {
                let mut session = client.start_session().await?;
                session.start_transaction().await?;
                for (db, document, update) in ops {
                    // Now and then a collection the transaction creates.
                    let name = if document.contains_key("a") && document.get_i32("a").unwrap_or(0) == 0 {
                        format!("txn_new{}", document.get_i32("_id").unwrap_or(0))
                    } else {
                        "txn".to_string()
                    };
                    let collection = client.database(&db).collection::<Document>(&name);
                    match update {
                        None if name != "txn" => {
                            // An index built inside the transaction, on the collection it creates.
                            let index = mongodb::IndexModel::builder().keys(doc! {"b": 1}).build();
                            collection.create_index(index).session(&mut session).await?;
                            collection.insert_one(document).session(&mut session).await.map(|_| ())?
                        }
                        None => collection.insert_one(document).session(&mut session).await.map(|_| ())?,
                        Some(update) => {
                            collection.update_many(document, update).session(&mut session).await.map(|_| ())?
                        }
                    }
                }
                session.commit_transaction().await
            });
            trace("transaction", db_name, "txn", result);
            return;
        }
        100 => doc! {"convertToCapped": coll, "size": 1 << 20},
        101 => doc! {"cloneCollectionAsCapped": coll, "toCollection": format!("clone{}", rng.int(3)), "size": 1 << 20},
        102..=103 => {
            // Past the validator a collMod may have set (`a` an int).
            let mut document = random_doc(rng, id());
            document.insert("a", format!("not an int {}", rng.int(9)));
            doc! {"insert": coll, "documents": [document], "bypassDocumentValidation": true}
        }
        104 => doc! {"update": coll, "updates": [{"q": {"_id": known_id}, "u": {"$set": {"a": "text"}}}],
        "bypassDocumentValidation": true},
        105..=107 => {
            let points: Vec<Document> = (0..1 + rng.int(4))
                .map(|i| doc! {"t": DateTime::from_millis(1_790_000_000_000 + i64::from(rng.int(7200)) * 1000), "m": {"s": rng.int(3)}, "v": i})
                .collect();
            doc! {"insert": "series", "documents": points}
        }
        108 => doc! {"delete": "series", "deletes": [{"q": {"m.s": rng.int(3)}, "limit": 0}]},
        _ => user_ddl(rng),
    };
    let name = command.keys().next().cloned().unwrap_or_default();
    let result = block_on(async { db.run_command(command).await });
    trace(&name, db_name, coll, result.map(|_| ()));
}

/// User and role DDL on the database the command runs on.
fn user_ddl(rng: &mut Rng) -> Document {
    let user = format!("user{}", rng.int(4));
    let role = format!("role{}", rng.int(3));
    match rng.below(6) {
        0 => doc! {"createUser": user, "pwd": format!("pw{}", rng.int(99)), "roles": ["read"]},
        1 => doc! {"updateUser": user, "pwd": format!("pw{}", rng.int(99))},
        2 => doc! {"dropUser": user},
        3 => doc! {"createRole": role, "privileges": [], "roles": []},
        4 => doc! {"grantRolesToUser": user, "roles": [role]},
        _ => doc! {"dropRole": role},
    }
}

/// The users and roles of `databases` as stored, sorted by `_id`.
fn users_and_roles(server: &Mongod) -> Vec<Document> {
    let admin = server.client().database("admin");
    let mut all = Vec::new();
    for collection in ["system.users", "system.roles"] {
        let filter = doc! {"db": {"$in": DATABASES.to_vec()}};
        let find = doc! {"find": collection, "filter": filter, "sort": {"_id": 1}};
        all.extend(block_on(crate::support::mongod::cursor(&admin, find)));
    }
    all
}

/// `MB_REPLAY_TRACE=1`: each operation and its outcome on stderr.
fn trace(name: &str, db: &str, coll: &str, result: mongodb::error::Result<()>) {
    if std::env::var_os("MB_REPLAY_TRACE").is_some() {
        let outcome = result.map_err(|e| e.to_string().chars().take(150).collect::<String>());
        eprintln!("{name} on {db}.{coll}: {outcome:?}");
    }
}

/// The names of a collection's indexes but `_id_`.
fn index_names(client: &Client, db: &str, coll: &str) -> Vec<String> {
    let db = client.database(db);
    let Ok(reply) = block_on(async { db.run_command(doc! {"listIndexes": coll}).await }) else { return Vec::new() };
    let batch = reply.get_document("cursor").and_then(|c| c.get_array("firstBatch")).cloned().unwrap_or_default();
    batch
        .iter()
        .filter_map(|spec| spec.as_document()?.get_str("name").ok().map(str::to_string))
        .filter(|name| name != "_id_")
        .collect()
}

#[test]
fn random_chains_restore_each_phase_exactly() {
    let seed: u64 = std::env::var("MB_REPLAY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_125);
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let client = source.client();
    let mut rng = Rng(seed | 1);
    let mut next_id = 1000;
    for db in DATABASES {
        for server in [source, target] {
            let database = server.client().database(db);
            block_on(async {
                database.drop().await?;
                database.run_command(doc! {"dropAllUsersFromDatabase": 1}).await?;
                database.run_command(doc! {"dropAllRolesFromDatabase": 1}).await
            })
            .unwrap();
        }
        let setup = client.database(db);
        block_on(async {
            setup.run_command(doc! {"create": "capped", "capped": true, "size": 16384, "max": 20}).await?;
            setup.run_command(doc! {"create": "series", "timeseries": {"timeField": "t", "metaField": "m"}}).await?;
            setup.run_command(doc! {"create": "txn"}).await?;
            let docs: Vec<Document> = (0..60).map(|i| random_doc(&mut rng, i)).collect();
            setup.run_command(doc! {"insert": "c0", "documents": docs.clone()}).await?;
            setup.run_command(doc! {"insert": "txn", "documents": docs}).await
        })
        .unwrap();
    }
    let users = ["--users-and-roles"];
    let mut chain = full_with(source, &DATABASES, &users);
    let mut phases = Vec::new();
    for phase in 0..PHASES {
        for _ in 0..OPS_PER_PHASE {
            random_op(&client, &mut rng, &mut next_id);
        }
        phases.push((now(source), state(source, &DATABASES), users_and_roles(source)));
        // Backups after some phases only: --until then falls inside a slice.
        if phase % 2 == 1 || phase + 1 == PHASES {
            slice_with(&mut chain, &users);
        }
    }
    for (phase, (at, expected, expected_users)) in phases.iter().enumerate() {
        let until = at.to_string();
        // Four workers and small batches: the replay interleaves across connections.
        let output =
            chain.apply(target, &["--drop", "-q", "--parallel", "4", "--oplog-batch", "16", "--until", &until]);
        assert_ok(&output);
        let restored = state(target, &DATABASES);
        for ((db, hashes, shape), (_, want_hashes, want_shape)) in restored.iter().zip(expected) {
            assert_eq!(hashes, want_hashes, "seed {seed}, phase {phase} (--until {until}): {db}'s data differs");
            assert_eq!(
                shape, want_shape,
                "seed {seed}, phase {phase} (--until {until}): {db}'s options or indexes differ"
            );
        }
        assert_eq!(
            &users_and_roles(target),
            expected_users,
            "seed {seed}, phase {phase} (--until {until}): users or roles differ"
        );
    }
}
