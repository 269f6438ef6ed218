//! The operator's scripts end to end: `scripts/mb-backup` from "cron" and
//! `scripts/mb-restore`, with the real binaries, a real replica set and a
//! local directory store; a run killed at each stage; overlapping runs.

use std::process::Command;

use crate::support::mongod::Mongod;
use crate::support::oss_server;
use crate::support::setup::{bin_dir_with, restore_fresh, Setup};
use crate::support::{assert_ok, stderr_of};

#[test]
fn a_run_killed_at_any_stage_leaves_the_checkpoint_and_the_next_run_completes() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "scripts_kill";
    crate::support::data::populate(&source.client(), db, 2000);
    let mut setup = Setup::new(source, db, true);
    assert_ok(&setup.backup());
    let real_bin_dir = setup.bin_dir.clone();

    // Each stage killed mid-way (SIGKILL, no chance to clean up).
    let kills = [
        ("mb-oplog-range", r#"if [[ " $* " == *" --commit "* ]]; then kill -9 $$; fi; exec "$real" "$@""#),
        ("mb-oplog-range", r#"kill -9 $$"#),
        ("mb-dump", r#""$real" "$@" | head -c 3000; kill -9 $$"#),
        ("mb-pack", r#"head -c 5000 | "$real" "$@"; kill -9 $$"#),
        ("mb-oss-put", r#"head -c 100 >/dev/null; kill -9 $$"#),
    ];
    for (round, (stage, wrapper)) in kills.into_iter().enumerate() {
        let client = source.client();
        crate::support::mongod::block_on(crate::support::data::insert_big(&client, db, 500_000 + round * 1000, 200));
        let before = setup.state_bytes();
        let broken = bin_dir_with(stage, wrapper);
        setup.bin_dir = broken.path().to_path_buf();
        let run = setup.backup();
        assert!(!run.status.success(), "{stage} killed, yet the run succeeded: {}", stderr_of(&run));
        assert_eq!(setup.state_bytes(), before, "{stage} killed: the checkpoint moved");
        setup.bin_dir = real_bin_dir.clone();
    }
    // The first kill stored an object but never moved the checkpoint; the
    // next run covers that range again, further, under the same number.
    let good = setup.backup();
    assert_ok(&good);
    let state = setup.state();
    assert_eq!(state.seq, 1, "the killed runs did not count: {:?}", setup.stored_keys());
    let markers: Vec<String> = setup.stored_keys().into_iter().filter(|k| k.ends_with(".done")).collect();
    assert_eq!(
        markers.len(),
        3,
        "committed: the full, the slice whose checkpoint commit was killed, the good slice: {markers:?}"
    );

    let (_, restored) = restore_fresh(&setup, target, db, &[]);
    let (_, expected) = source.db_hash_at(db, state.to);
    assert_eq!(restored, expected, "the chain restores to the checkpoint despite the orphan slice");
}

#[test]
fn overlapping_runs_do_not_both_write() {
    let source = Mongod::shared_replica_set();
    let setup = Setup::new(source, "scripts_lock", true);
    std::fs::create_dir_all(&setup.root).unwrap();
    let lock = setup.root.join(".mb-backup.lock");
    let mut holder = Command::new("flock").arg(&lock).args(["sleep", "30"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = setup.backup();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(second.status.code(), Some(4), "{}", stderr_of(&second));
    assert!(stderr_of(&second).contains("another run holds"), "{}", stderr_of(&second));
    assert!(setup.state_bytes().is_none(), "the second run wrote nothing");
}

#[test]
fn full_only_backups_each_restore() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "scripts_full";
    crate::support::data::populate(&source.client(), db, 300);
    let setup = Setup::new(source, db, false);
    assert_ok(&setup.backup());
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new cycle name
    assert_ok(&setup.backup());
    let keys = setup.stored_keys();
    assert_eq!(keys.len(), 6, "two backups, their commit markers and head records: {keys:?}");
    assert!(
        keys.iter().all(|k| k.ends_with("/000000-full.tar.zst")
            || k.ends_with("/000000-full.tar.zst.done")
            || k.ends_with("/head.json")),
        "{keys:?}"
    );
    assert!(setup.state_bytes().is_none(), "full-only backups keep no checkpoint");
    let (_, restored) = restore_fresh(&setup, target, db, &[]);
    let (_, source_hash) = source.db_hash(db);
    assert_eq!(restored, source_hash);
}

#[test]
fn restore_of_an_empty_store_says_so() {
    let source = Mongod::shared_replica_set();
    let setup = Setup::new(source, "scripts_empty", true);
    std::fs::create_dir_all(setup.root.join("store/backups")).unwrap();
    let output = setup.restore(&["--dry-run"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains("no backups under scripts_empty/"), "{}", stderr_of(&output));
}

#[test]
fn backups_go_to_oss_and_restore_from_it() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let oss = oss_server::start();
    oss.create_bucket("db-backup");
    let db = "scripts_oss";
    crate::support::data::populate(&source.client(), db, 1500);
    let setup = Setup::with_oss(source, db, &oss, "db-backup", &oss.secret());
    // Backups in IA; their commit markers stay Standard (mb-verify reads them).
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{config}storage_class = IA\n")).unwrap();

    let full = setup.backup();
    assert_ok(&full);
    crate::support::mongod::block_on(crate::support::data::insert_big(&source.client(), db, 100_000, 300));
    let slice = setup.backup();
    assert_ok(&slice);
    let keys = oss.keys("db-backup");
    assert_eq!(keys.len(), 5, "two objects, their commit markers and the head record in OSS: {keys:?}");
    assert!(!setup.root.join("store").exists(), "with OSS, db_backup_root_path holds only the state");
    for key in &keys {
        let class = oss.object("db-backup", key).unwrap().options.storage_class;
        let expected = if key.ends_with(".done") || key.ends_with("/head.json") { "Standard" } else { "IA" };
        assert_eq!(class.as_deref(), Some(expected), "{key}");
    }
    for output in [&full, &slice] {
        assert!(!stderr_of(output).contains(&oss.secret()), "the secret leaked: {}", stderr_of(output));
    }

    let state = setup.state();
    let (_, expected) = source.db_hash_at(db, state.to);
    let (_, streamed) = restore_fresh(&setup, target, db, &[]);
    assert_eq!(streamed, expected, "streamed restore from OSS");
    let download = setup._dir.path().join("download");
    let (_, downloaded) = restore_fresh(&setup, target, db, &["--download-dir", download.to_str().unwrap()]);
    assert_eq!(downloaded, expected, "restore through a local download");
    assert_eq!(std::fs::read_dir(&download).unwrap().count(), 2, "both objects were downloaded");
}

#[test]
fn wrong_oss_secret_fails_the_run_and_keeps_the_checkpoint() {
    let source = Mongod::shared_replica_set();
    let oss = oss_server::start();
    oss.create_bucket("db-backup");
    let db = "scripts_oss_denied";
    crate::support::data::populate(&source.client(), db, 10);
    let setup = Setup::with_oss(source, db, &oss, "db-backup", "not-the-secret");
    let run = setup.backup();
    assert!(!run.status.success());
    let last = stderr_of(&run).lines().last().unwrap_or("").to_string();
    // The first store request fails: the look for a committed object a
    // killed run may have left under the key (mb-config chain committed).
    assert!(
        last.starts_with("mb-config: ") && last.contains("SignatureDoesNotMatch"),
        "one clear line: {}",
        stderr_of(&run)
    );
    assert!(setup.state_bytes().is_none(), "no checkpoint without a stored object");
    assert!(oss.keys("db-backup").is_empty(), "nothing stored");
}
