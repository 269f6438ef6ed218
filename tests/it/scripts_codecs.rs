//! The config key `compression` end to end: one cycle whose objects mix
//! `.tar.zst` and `.tar.gz` (the key changed between runs) restores to the
//! source's state, and each object opens with the standard tools.

use std::process::Command;

use crate::support::data::{insert_big, populate};
use crate::support::mongod::{block_on, Mongod};
use crate::support::setup::{restore_fresh, Setup};
use crate::support::{assert_ok, stderr_of};

/// Sets `KEY = VALUE` in the setup's config, replacing the key's line.
fn set_key(setup: &Setup, key: &str, value: &str) {
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let other = |line: &&str| line.split('=').next().map(str::trim) != Some(key);
    let mut kept: String = text.lines().filter(other).map(|l| format!("{l}\n")).collect();
    kept.push_str(&format!("{key} = {value}\n"));
    std::fs::write(&setup.config, kept).unwrap();
}

#[test]
fn a_chain_mixing_zstd_and_gzip_objects_restores() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "codecs_mixed";
    populate(&source.client(), db, 300);
    let setup = Setup::new(source, db, true);

    // Full backup on defaults (zstd), a slice as gzip, a slice as zstd again.
    assert_ok(&setup.backup());
    set_key(&setup, "compression", "gzip");
    block_on(insert_big(&source.client(), db, 100_000, 200));
    assert_ok(&setup.backup());
    set_key(&setup, "compression", "ZSTD");
    block_on(insert_big(&source.client(), db, 200_000, 200));
    assert_ok(&setup.backup());

    let objects: Vec<String> =
        setup.stored_keys().into_iter().filter(|k| !k.ends_with(".done") && !k.ends_with("/head.json")).collect();
    assert_eq!(objects.len(), 3, "{objects:?}");
    assert!(objects[0].ends_with("/000000-full.tar.zst"), "{objects:?}");
    assert!(objects[1].contains("/000001-oplog-") && objects[1].ends_with(".tar.gz"), "{objects:?}");
    assert!(objects[2].contains("/000002-oplog-") && objects[2].ends_with(".tar.zst"), "{objects:?}");

    let state = setup.state();
    let (_, expected) = source.db_hash_at(db, state.to);
    let (_, restored) = restore_fresh(&setup, target, db, &[]);
    assert_eq!(restored, expected, "the mixed chain restores to the last checkpoint");

    // What the README promises: standard tools open either object.
    let store = setup.root.join("store/backups");
    for (object, args) in [(&objects[0], &["--zstd", "-tf"][..]), (&objects[1], &["-tzf"][..])] {
        if object.ends_with(".zst") && Command::new("zstd").arg("--version").output().is_err() {
            eprintln!("SKIPPED: `tar --zstd` check of {object}: the zstd program is not installed");
            continue;
        }
        let output = Command::new("tar").args(args).arg(store.join(object)).output().unwrap();
        assert!(output.status.success(), "tar {args:?} {object}: {}", stderr_of(&output));
        assert!(String::from_utf8_lossy(&output.stdout).lines().count() > 1, "{object} lists its members");
    }
}

#[test]
fn a_bad_compression_value_is_a_usage_error_and_stores_nothing() {
    let source = Mongod::shared_replica_set();
    let setup = Setup::new(source, "codecs_bad", true);
    set_key(&setup, "compression", "lz4");
    let output = setup.backup();
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    // mb-config check refuses it before anything runs.
    assert!(stderr_of(&output).contains("bad value for `compression`: \"lz4\" is not one of zstd, gzip"));
    assert!(setup.stored_keys().is_empty() && setup.state_bytes().is_none());
}

/// `compression_level` reaches mb-pack (level 1 for a host bound by
/// compression, 19 for a small bucket); a level the codec has not is a
/// usage error before anything is read or stored.
#[test]
fn compression_level_is_passed_on_and_checked_first() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "codecs_level";
    populate(&source.client(), db, 300);
    let setup = Setup::new(source, db, false);
    for bad in ["0", "20", "fast"] {
        set_key(&setup, "compression_level", bad);
        let output = setup.backup();
        assert_eq!(output.status.code(), Some(2), "compression_level = {bad}: {}", stderr_of(&output));
        assert_eq!(stderr_of(&output).lines().count(), 1, "{}", stderr_of(&output));
        assert!(stderr_of(&output).contains("level"), "{}", stderr_of(&output));
        assert!(setup.stored_keys().is_empty(), "nothing stored for compression_level = {bad}");
    }
    let mut sizes = Vec::new();
    for level in ["1", "19"] {
        set_key(&setup, "compression_level", level);
        assert_ok(&setup.backup());
        let store = setup.root.join("store/backups");
        let newest = setup.stored_keys().into_iter().rfind(|k| k.ends_with(".tar.zst")).unwrap();
        sizes.push(std::fs::metadata(store.join(&newest)).unwrap().len());
    }
    assert!(sizes[1] < sizes[0], "level 19 makes a smaller object than level 1: {sizes:?}");
    let (source_md5, _) = source.db_hash(db);
    let (restored_md5, _) = restore_fresh(&setup, target, db, &[]);
    assert_eq!(restored_md5, source_md5);
}
