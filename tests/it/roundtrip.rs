//! Full backup round trip against real mongods: dump a database while a
//! writer changes it, restore it elsewhere, and compare what a user would:
//! `dbHash` at the dump's consistency point, collection options, indexes.

use mb::format::records::Manifest;

use crate::support::data::{populate, shape, Writer};
use crate::support::mongod::Mongod;
use crate::support::{assert_ok, run_held, run_with_input, stage, temp_dir, wait_for_more};

#[test]
fn full_dump_during_writes_restores_to_the_consistency_point() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "rt_full";
    // ~3 MiB in `big`, dumped in 64 KiB chunks: far more than the memory bound set.
    populate(&source.client(), db, 3000);
    let dir = temp_dir();
    let manifest_path = dir.path().join("manifest.json");

    let writer = Writer::start(source.client(), db);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Held open (its pipe full) while the writer goes on: without it a
    // loaded machine could finish the dump between two writes, and there
    // would be nothing during it to carry.
    let dump = run_held(
        stage("mb-dump")
            .args(["--uri", &source.uri(), "--db", db, "--chunk-size", "64KiB", "--parallel", "3", "--manifest"])
            .arg(&manifest_path),
        || wait_for_more(&writer.ops, 40),
    );
    let ops = writer.stop();
    assert_ok(&dump);
    assert!(ops > 0, "the writer never ran");

    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let consistent_at = manifest.consistent_at.expect("a replica-set dump has a consistency point");
    let oplog = manifest.oplog.as_ref().expect("the oplog written during the dump is carried");
    assert!(oplog.count > 0, "the writer's changes during the dump should be in the oplog");
    let big = manifest.collections.iter().find(|c| c.name == "big").unwrap();
    assert!(big.chunks > 10, "big should span many chunks, got {}", big.chunks);

    let apply = run_with_input(stage("mb-apply").args(["--uri", &target.uri(), "--drop"]), &dump.stdout);
    assert_ok(&apply);
    let record: serde_json::Value = serde_json::from_slice(&apply.stdout).unwrap();
    assert_eq!(record["consistent_at"], serde_json::to_value(consistent_at).unwrap());

    let (source_md5, source_collections) = source.db_hash_at(db, consistent_at);
    let (target_md5, target_collections) = target.db_hash(db);
    assert_eq!(source_collections, target_collections, "per-collection hashes differ");
    assert_eq!(source_md5, target_md5);
    assert_eq!(shape(&source.client(), db), shape(&target.client(), db), "collection options or indexes differ");
}

#[test]
fn restore_twice_with_drop_is_the_same() {
    let source = Mongod::shared_replica_set();
    let db = "rt_twice";
    populate(&source.client(), db, 100);
    let dump = stage("mb-dump").args(["--uri", &source.uri(), "--db", db, "-q"]).output().unwrap();
    assert_ok(&dump);
    let renamed = ["--ns-from", "rt_twice.$c$", "--ns-to", "rt_twice_copy.$c$"];
    for _ in 0..2 {
        let apply = run_with_input(
            stage("mb-apply").args(["--uri", &source.uri(), "--drop", "-q"]).args(renamed),
            &dump.stdout,
        );
        assert_ok(&apply);
    }
    let (_, source_collections) = source.db_hash(db);
    let (_, copy_collections) = source.db_hash("rt_twice_copy");
    // system.views names its database, so it differs by design after a rename.
    let without_views = |mut d: mongodb::bson::Document| {
        d.remove("system.views");
        d
    };
    assert_eq!(without_views(source_collections), without_views(copy_collections));
}

#[test]
fn to_dir_writes_mongodump_layout() {
    let source = Mongod::shared_replica_set();
    let db = "rt_dir";
    populate(&source.client(), db, 50);
    let dump = stage("mb-dump").args(["--uri", &source.uri(), "--db", db, "-q"]).output().unwrap();
    assert_ok(&dump);
    let dir = temp_dir();
    let out = dir.path().join("dump");
    let apply = run_with_input(stage("mb-apply").arg("--to-dir").arg(&out), &dump.stdout);
    assert_ok(&apply);
    let big = std::fs::metadata(out.join("rt_dir/big.bson")).unwrap();
    assert!(big.len() > 50 * 1000);
    assert!(out.join("rt_dir/big.metadata.json").exists());
    assert!(out.join("rt_dir/active_users.metadata.json").exists());
    assert!(out.join("rt_dir/system.buckets.metrics.bson").exists(), "timeseries data goes where mongorestore looks");
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("rt_dir/indexed.metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["collectionName"], "indexed");
    assert_eq!(metadata["indexes"].as_array().unwrap().len(), 7, "_id and the six test indexes");
}
