//! Issue 9's restore and leftover cases, each as a user meets it: several
//! databases in `db_name`, an explicit restore target, a misspelled database,
//! damaged metadata, failed and killed runs, the counts `--dry-run` and
//! `--to-dir` report, and the scripts' messages. Stage-level cases are in
//! `stage_cases.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use mongodb::bson::{doc, Document};

use crate::support::mongod::{block_on, Mongod};
use crate::support::setup::{bin_dir_with, Setup};
use crate::support::{assert_fails_with, assert_ok, run_with_input, stage, stderr_of, temp_dir};

/// The last line of stderr.
fn last_line(output: &Output) -> String {
    stderr_of(output).lines().last().unwrap_or("").to_string()
}

/// Writes a config file (mode 0600) beside the setup's.
fn write_config(setup: &Setup, name: &str, text: &str) -> std::path::PathBuf {
    let path = setup.config.with_file_name(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Replaces `db_name` in the setup's config.
fn set_db_name(setup: &Setup, db_name: &str) {
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text: String = text
        .lines()
        .map(|l| if l.starts_with("db_name") { format!("db_name = {db_name}\n") } else { format!("{l}\n") })
        .collect();
    std::fs::write(&setup.config, text).unwrap();
}

fn drop_db(mongod: &Mongod, db: &str) {
    let client = mongod.client();
    block_on(async { client.database(db).drop().await }).unwrap();
}

fn insert(mongod: &Mongod, db: &str, coll: &str, count: i64) {
    let client = mongod.client();
    block_on(async {
        client.database(db).drop().await.unwrap();
        let docs: Vec<Document> = (0..count).map(|i| doc! {"_id": i, "sku": format!("s{i}")}).collect();
        client.database(db).collection::<Document>(coll).insert_many(docs).await.unwrap();
    });
}

/// Item 1: `db_name = a,b` and a database named `a+b` back up, list and restore.
#[test]
fn several_databases_and_a_plus_in_a_name_list_and_restore() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    for (db_name, dbs) in [("rc_che, rc_other", vec!["rc_che", "rc_other"]), ("rc_a+b", vec!["rc_a+b"])] {
        for db in &dbs {
            insert(source, db, "items", 40);
            drop_db(target, db);
        }
        let setup = Setup::new(source, "placeholder", true);
        set_db_name(&setup, db_name);
        assert_ok(&setup.backup());
        let list = setup.restore(&["--list", "--json"]);
        assert_ok(&list);
        let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        let prefix = dbs.join("+");
        assert_eq!(listed["prefix"], prefix.as_str(), "{db_name}: {listed}");
        assert!(listed["full_backup"].as_str().unwrap().ends_with("-full.tar.zst"), "{db_name}: {listed}");
        let uri = target.uri();
        assert_ok(&setup.restore(&["--uri", &uri, "--drop"]));
        for db in &dbs {
            assert_eq!(target.db_hash(db).1, source.db_hash(db).1, "{db_name}: {db} restored");
        }
    }
    // The same through OSS, where the prefix goes into a listing query.
    let oss = crate::support::oss_server::start();
    oss.create_bucket("db-backup");
    let setup = Setup::with_oss(source, "rc_a+b", &oss, "db-backup", &oss.secret());
    assert_ok(&setup.backup());
    let list = setup.restore(&["--list", "--json"]);
    assert_ok(&list);
    assert!(String::from_utf8_lossy(&list.stdout).contains(r#""prefix":"rc_a+b""#), "{}", stderr_of(&list));
}

/// Item 5: a backup config is never a silent target; dropping on the source
/// needs a confirmation; restore_db_host and the seed's restore config work.
#[test]
fn restore_target_is_explicit_and_dropping_the_source_is_confirmed() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "rc_target";
    insert(source, db, "items", 30);
    let setup = Setup::new(source, db, true);
    assert_ok(&setup.backup());
    let source_hash = source.db_hash(db);

    let silent = setup.restore(&["--drop"]);
    assert_fails_with(&silent, 2, "no restore target");
    let on_source = setup.restore(&["--uri", &source.uri(), "--drop"]);
    assert_fails_with(&on_source, 2, "--yes-drop-the-source");
    let passed_through = setup.restore(&["--uri", &source.uri(), "--", "--drop"]);
    assert_fails_with(&passed_through, 2, "--yes-drop-the-source");
    assert_eq!(source.db_hash(db), source_hash, "the source is untouched");
    assert_ok(&setup.restore(&["--uri", &source.uri(), "--drop", "--yes-drop-the-source"]));
    assert_eq!(source.db_hash(db).1, source_hash.1);

    // restore_db_host / restore_db_port in the backup config.
    drop_db(target, db);
    let backup_config = std::fs::read_to_string(&setup.config).unwrap();
    let keyed = write_config(
        &setup,
        "keyed.conf",
        &format!("{backup_config}restore_db_host = 127.0.0.1\nrestore_db_port = {}\n", target.port),
    );
    assert_ok(&setup.script_with("mb-restore", &keyed).arg("--drop").output().unwrap());
    assert_eq!(target.db_hash(db).1, source_hash.1, "restored through restore_db_host");

    // The seed's restore config: db_host is the target; its keys act as
    // --cycle, --drop and --download-dir.
    let client = target.client();
    block_on(async { client.database(db).collection::<Document>("items").insert_one(doc! {"_id": 999}).await })
        .unwrap();
    let cycle = setup.state().cycle;
    let download = setup.root.with_file_name("seed-download");
    let seed = write_config(
        &setup,
        "restore.conf",
        &format!(
            "db_host = 127.0.0.1\ndb_port = {}\ndb_name = {db}\ndb_backup_root_path = {}\nis_upload_to_oss = 0\n\
             bucket = backups\nlast_circle_backup_dir_name = {cycle}\nis_drop_old_restore = 1\n\
             has_download_to_local = 1\nrestore_local_temp_path = {}\n",
            target.port,
            setup.root.display(),
            download.display()
        ),
    );
    assert_ok(&setup.script_with("mb-restore", &seed).output().unwrap());
    assert_eq!(target.db_hash(db).1, source_hash.1, "the seed's restore config dropped and restored");
    assert_eq!(std::fs::read_dir(&download).unwrap().count(), 1, "it downloaded first");
}

/// Item 6: a misspelled db_name fails clearly and stores nothing.
#[test]
fn a_missing_database_fails_the_backup_and_stores_nothing() {
    let source = Mongod::shared_replica_set();
    for incremental in [true, false] {
        let setup = Setup::new(source, "rc_no_such_database", incremental);
        let run = setup.backup();
        assert!(!run.status.success(), "{}", stderr_of(&run));
        assert!(last_line(&run).contains("no database rc_no_such_database"), "{}", stderr_of(&run));
        assert!(setup.stored_keys().is_empty(), "nothing stored: {:?}", setup.stored_keys());
        assert!(setup.state_bytes().is_none());
    }
}

/// Item 7: a flipped byte in an index name fails mb-apply in every mode.
#[test]
fn a_flipped_byte_in_metadata_fails_every_mode() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "rc_metadata";
    insert(source, db, "items", 10);
    source.command(db, doc! {"createIndexes": "items", "indexes": [{"key": {"sku": 1}, "name": "by_sku_index"}]});
    let dump = stage("mb-dump").args(["-q", "--uri", &source.uri(), "--db", db]).output().unwrap();
    assert_ok(&dump);
    let mut stream = dump.stdout;
    let at = stream.windows(12).position(|w| w == b"by_sku_index").expect("the index name in the stream");
    stream[at + 11] = b'y';
    let dir = temp_dir();
    let out = dir.path().join("out");
    let uri = target.uri();
    for args in [vec!["--dry-run"], vec!["--to-dir", out.to_str().unwrap()], vec!["--uri", &uri, "--drop"]] {
        let output = run_with_input(stage("mb-apply").arg("-q").args(&args), &stream);
        assert_fails_with(&output, 3, "rc_metadata/items.metadata.json: CRC-64 mismatch");
    }
    let client = target.client();
    let names: Vec<String> = block_on(async { client.database(db).list_collection_names().await }).unwrap();
    assert!(names.is_empty(), "nothing restored: {names:?}");
}

/// Item 9: a failed run (wrong password) leaves no stored object.
#[test]
fn a_failed_run_removes_what_it_stored() {
    let source = Mongod::shared_replica_set();
    let db = "rc_failed";
    insert(source, db, "items", 5);
    let setup = Setup::new(source, db, false);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{text}db_user = nobody\ndb_passwd = wrong\n")).unwrap();
    let run = setup.backup();
    assert!(!run.status.success());
    assert!(last_line(&run).contains("mb-dump"), "{}", stderr_of(&run));
    assert!(setup.stored_keys().is_empty(), "a failed run leaves nothing: {:?}", setup.stored_keys());
}

/// Item 10: a rerun replaces the object a killed run left without its marker,
/// and full backups never share a key.
#[test]
fn a_rerun_replaces_an_uncommitted_object_and_full_keys_are_unique() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "rc_rerun";
    insert(source, db, "items", 20);
    let mut setup = Setup::new(source, db, true);
    assert_ok(&setup.backup());
    insert(source, db, "more", 5);

    // The range is decided once and replayed, as when nothing was written
    // between the killed run and the rerun: the same key.
    let saved = setup.root.with_file_name("range.json");
    let range = format!(
        r#"if [[ " $* " == *" --commit "* ]]; then exec "$real" "$@"; fi
           if [[ -s {0} ]]; then cat {0}; else "$real" "$@" | tee {0}; fi"#,
        saved.display()
    );
    let replaying = bin_dir_with("mb-oplog-range", &range);
    let killer = bin_dir_with("mb-oss-put", r#"if [[ " $* " == *".done "* ]]; then kill -9 $$; fi; exec "$real" "$@""#);
    // The killing dir needs the replaying mb-oplog-range too.
    std::fs::remove_file(killer.path().join("mb-oplog-range")).unwrap();
    std::os::unix::fs::symlink(replaying.path().join("mb-oplog-range"), killer.path().join("mb-oplog-range")).unwrap();
    setup.bin_dir = killer.path().to_path_buf();
    let killed = setup.backup();
    assert!(!killed.status.success());
    setup.bin_dir = replaying.path().to_path_buf();
    let rerun = setup.backup();
    assert_ok(&rerun);
    assert_eq!(setup.state().seq, 1);
    let uri = target.uri();
    drop_db(target, db);
    assert_ok(&setup.restore(&["--uri", &uri, "--drop"]));
    assert_eq!(target.db_hash(db).1, source.db_hash(db).1);

    // Two full backups in one second: different keys.
    let mut keys = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let output = stage("mb-oplog-range").args(["-q", "--full", "--db", db]).output().unwrap();
        assert_ok(&output);
        let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let key = record["key"].as_str().unwrap().to_string();
        assert!(key.starts_with("rc_rerun/") && key.ends_with("/000000-full.tar.zst"), "{key}");
        assert!(keys.insert(key.clone()), "two full backups share {key}");
    }
}

/// Item 15: --dry-run and --to-dir report the oplog entries they read; a
/// failing `mb-dump -o FILE` leaves no FILE.
#[test]
fn dry_run_and_to_dir_count_the_oplog_and_a_failed_dump_leaves_no_file() {
    let source = Mongod::shared_replica_set();
    let db = "rc_counts";
    insert(source, db, "items", 10);
    let setup = Setup::new(source, db, true);
    assert_ok(&setup.backup());
    let client = source.client();
    block_on(async {
        for i in 0..25 {
            client.database(db).collection::<Document>("items").insert_one(doc! {"_id": 1000 + i}).await.unwrap();
        }
    });
    assert_ok(&setup.backup());
    let objects: Vec<String> = setup.stored_keys().into_iter().filter(|k| k.ends_with(".tar.zst")).collect();
    assert_eq!(objects.len(), 2, "{objects:?}");
    let mut stream = Vec::new();
    for key in &objects {
        let object = std::fs::read(setup.root.join("store/backups").join(key)).unwrap();
        let plain = run_with_input(stage("mb-pack").arg("-d"), &object);
        assert_ok(&plain);
        stream.extend(plain.stdout);
    }
    let dir = temp_dir();
    let out = dir.path().join("out");
    for args in [vec!["--dry-run"], vec!["--to-dir", out.to_str().unwrap()]] {
        let output = run_with_input(stage("mb-apply").arg("-q").args(&args), &stream);
        assert_ok(&output);
        let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let entries = record["oplog"]["entries"].as_u64().unwrap();
        assert!(entries >= 25, "{args:?}: the slice's 25 inserts at least, got {record}");
    }
    let oplog_file = std::fs::metadata(out.join("oplog.bson")).unwrap();
    assert!(oplog_file.len() > 0);

    let file = dir.path().join("dump.tar");
    let failed = stage("mb-dump")
        .args(["-q", "--uri", "mongodb://127.0.0.1:1/?directConnection=true", "--server-timeout", "1", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(!file.exists() && left.len() == 1, "no partial file: {left:?}");
}

/// Item 16: the log line keeps a reason with commas; a corrupt download is
/// removed with one clear error.
#[test]
fn the_log_keeps_the_whole_reason_and_a_corrupt_download_is_removed() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "rc_messages";
    insert(source, db, "items", 200);
    let setup = Setup::new(source, db, true);
    assert_ok(&setup.backup());
    // A checkpoint older than the oplog: an oplog gap, whose reason has commas.
    let state_path = setup.root.join("state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["to"] = serde_json::json!({"t": 1, "i": 1});
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let gap = setup.backup();
    assert_ok(&gap);
    assert!(
        stderr_of(&gap).contains("than the checkpoint 1,1; the entries in between are lost, so a new cycle starts)"),
        "{}",
        stderr_of(&gap)
    );

    let object = setup.stored_keys().into_iter().rfind(|k| k.ends_with("-full.tar.zst")).unwrap();
    let path = setup.root.join("store/backups").join(&object);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let download = setup.root.with_file_name("download");
    let uri = target.uri();
    let output = setup.restore(&["--uri", &uri, "--drop", "--download-dir", download.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    // The plan's line, then the object's bytes fail its marker's CRC-64 as they arrive.
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("mb-restore: cycle ")).collect();
    assert_eq!(errors.len(), 1, "one clear error: {errors:?}");
    assert!(errors[0].contains(&object) && errors[0].contains("CRC-64"), "{errors:?}");
    let name = Path::new(&object).file_name().unwrap();
    assert!(!download.join(name).exists(), "the corrupt download is gone");
}

/// `{_id, s}` with `s` a string whose bytes are not UTF-8: mongod stores
/// such strings as they come (old drivers wrote them).
fn not_utf8(id: i32, s: &[u8]) -> mongodb::bson::RawDocumentBuf {
    let mut bytes = vec![0u8; 4];
    bytes.extend_from_slice(&[0x10, b'_', b'i', b'd', 0]);
    bytes.extend_from_slice(&id.to_le_bytes());
    bytes.extend_from_slice(&[0x02, b's', 0]);
    bytes.extend_from_slice(&(s.len() as i32 + 1).to_le_bytes());
    bytes.extend_from_slice(s);
    bytes.extend_from_slice(&[0, 0]);
    let len = bytes.len() as i32;
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    mongodb::bson::RawDocumentBuf::from_bytes(bytes).unwrap()
}

/// A database holding strings that are not UTF-8 backs up and restores,
/// in the full backup and through an oplog slice. The BSON check once
/// refused them (exit 3): backups that could not be restored.
#[test]
fn a_string_that_is_not_utf8_restores() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "restore_not_utf8";
    drop_db(source, db);
    let insert_raw = |id: i32, s: &[u8]| {
        let mut command = mongodb::bson::RawDocumentBuf::new();
        command.append("insert", "c");
        let mut documents = mongodb::bson::RawArrayBuf::new();
        documents.push(not_utf8(id, s));
        command.append("documents", documents);
        let client = source.client();
        block_on(async { client.database(db).run_raw_command(command).await }).unwrap();
    };
    insert_raw(1, b"caf\xe9 latin-1");
    let setup = Setup::new(source, db, true);
    assert_ok(&setup.backup());
    insert_raw(2, b"\xff\xfe");
    let client = source.client();
    block_on(async {
        let c = client.database(db).collection::<Document>("c");
        c.update_one(doc! {"_id": 1}, doc! {"$set": {"n": 1}}).await
    })
    .unwrap();
    assert_ok(&setup.backup());
    let (_, expected) = source.db_hash(db);
    let (_, restored) = crate::support::setup::restore_fresh(&setup, target, db, &[]);
    assert_eq!(restored, expected, "the strings come back byte for byte");
}
