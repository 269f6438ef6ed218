//! Incremental backups against a real replica set: a workload with DDL runs
//! while a full and several incremental backups happen; the chain restores
//! to each checkpoint and to a point in time; an oplog rollover starts a new
//! cycle instead of leaving a hole.

use std::time::{Duration, Instant};

use mongodb::bson::{doc, Document};

use crate::support::data::{populate, shape, Writer};
use crate::support::mongod::{block_on, Mongod, Options};
use crate::support::setup::{restore_fresh, Setup};
use crate::support::{assert_fails_with, assert_ok, stage, stderr_of};

#[test]
fn chain_restores_to_the_last_checkpoint_and_to_a_point_in_time() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "inc_chain";
    populate(&source.client(), db, 1000);
    let setup = Setup::new(source, db, true);
    let writer = Writer::start(source.client(), db);

    assert_ok(&setup.backup());
    assert_eq!(setup.state().seq, 0);
    // DDL between backups: a new collection with an index, a rename, a drop.
    let client = source.client();
    block_on(async {
        let shop = client.database(db);
        shop.collection::<Document>("ddl_new").insert_many((0..50).map(|i| doc! {"k": i})).await?;
        shop.collection::<Document>("ddl_new")
            .create_index(mongodb::IndexModel::builder().keys(doc! {"k": -1}).build())
            .await?;
        client
            .database("admin")
            .run_command(doc! {"renameCollection": format!("{db}.validated"), "to": format!("{db}.validated_renamed")})
            .await?;
        shop.collection::<Document>("collated").drop().await?;
        // A small transaction (one applyOps entry) and one over 16 MB, which
        // the server splits into partialTxn entries chained to its commit.
        for (docs, size) in [(3, 100), (20, 1 << 20)] {
            let mut session = client.start_session().await?;
            session.start_transaction().await?;
            let filler = "t".repeat(size);
            let txn = shop.collection::<Document>("txn");
            for i in 0..docs {
                txn.insert_one(doc! {"size": size as i64, "i": i, "filler": &filler}).session(&mut session).await?;
            }
            shop.collection::<Document>("indexed")
                .update_one(doc! {"_id": 1}, doc! {"$set": {"txn": size as i64}})
                .session(&mut session)
                .await?;
            session.commit_transaction().await?;
        }
        Ok::<_, mongodb::error::Error>(())
    })
    .unwrap();
    let mut checkpoints = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        let run = setup.backup();
        assert_ok(&run);
        checkpoints.push(setup.state().to);
    }
    let ops = writer.stop();
    assert!(ops > 100, "the workload barely ran ({ops} operations)");
    assert_eq!(setup.state().seq, 3);
    let last = *checkpoints.last().unwrap();

    let (_, restored) = restore_fresh(&setup, target, db, &[]);
    let (_, expected) = source.db_hash_at(db, last);
    assert_eq!(restored, expected, "the whole chain restores to the last checkpoint");
    assert_eq!(shape(&source.client(), db), shape(&target.client(), db), "options and indexes");

    // Point in time: between two checkpoints, at an exact oplog timestamp.
    let middle = checkpoints[1];
    let until = format!("{},{}", middle.t, middle.i);
    let (_, restored_at) = restore_fresh(&setup, target, db, &["--until", &until]);
    let (_, expected_at) = source.db_hash_at(db, middle);
    assert_eq!(restored_at, expected_at, "--until {until} restores the source as it was then");
}

#[test]
fn an_oplog_rollover_starts_a_new_cycle_instead_of_a_hole() {
    let source = Mongod::start(Options { oplog_size_mb: 1, sync_delay_secs: Some(1), ..Options::default() });
    let db = "inc_rollover";
    populate(&source.client(), db, 100);
    let setup = Setup::new(&source, db, true);
    assert_ok(&setup.backup());
    let first = setup.state();

    // Write until the oplog no longer holds the checkpoint.
    let client = source.client();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut batch = 0;
    loop {
        batch += 1;
        block_on(crate::support::data::insert_big(&client, db, 1_000_000 + batch * 2000, 2000));
        let oldest = block_on(mb::mongo::oplog::oldest(&client)).unwrap();
        if oldest > first.to {
            break;
        }
        assert!(Instant::now() < deadline, "the 1 MB oplog never rolled past {} (oldest {oldest})", first.to);
        std::thread::sleep(Duration::from_millis(200));
    }

    // A slice from the lost checkpoint is refused by mb-dump itself...
    let range = format!(
        r#"{{"format":"mb-range/1","kind":"oplog","from":{{"t":{},"i":{}}},"to":{{"t":{},"i":{}}},"databases":["{db}"]}}"#,
        first.to.t,
        first.to.i,
        u32::MAX,
        0
    );
    let dump = crate::support::run_with_input(
        stage("mb-dump").args(["--uri", &source.uri(), "--range", "-"]),
        range.as_bytes(),
    );
    assert_fails_with(&dump, 5, "no longer reaches back");

    // ...and the next backup run starts a new cycle, saying why.
    std::thread::sleep(Duration::from_millis(1100));
    let run = setup.backup();
    assert_ok(&run);
    assert!(stderr_of(&run).contains("oplog gap"), "the gap is said: {}", stderr_of(&run));
    let second = setup.state();
    assert_eq!(second.seq, 0, "a full backup");
    assert_ne!(second.cycle, first.cycle, "in a new cycle");

    let target = Mongod::shared_standalone();
    let (_, restored) = restore_fresh(&setup, target, db, &[]);
    let (_, expected) = source.db_hash_at(db, second.to);
    assert_eq!(restored, expected);
}

#[test]
fn incremental_mode_needs_a_replica_set() {
    let standalone = Mongod::shared_standalone();
    let dir = crate::support::temp_dir();
    let output = stage("mb-oplog-range")
        .args(["--uri", &standalone.uri(), "--state"])
        .arg(dir.path().join("state.json"))
        .output()
        .unwrap();
    assert_fails_with(&output, 1, "not a replica set member");
}
