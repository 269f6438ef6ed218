//! Chains that must not restore, refused before the first write (a
//! sentinel document on the target survives): an empty object under a
//! committed key, an encrypted object without its identity, a newest slice
//! deleted with its marker. And what killed runs leave: a slice committed
//! before the checkpoint moved, `.run.*` directories, plaintext on disk.

use mongodb::bson::{doc, Document};

use crate::support::mongod::{block_on, Mongod};
use crate::support::setup::{bin_dir_with, Setup};
use crate::support::{assert_ok, stderr_of, temp_dir};

fn write(source: &Mongod, db: &str, n: i64) {
    let client = source.client();
    block_on(async { client.database(db).collection::<Document>("items").insert_one(doc! {"_id": n}).await }).unwrap();
}

/// A full backup and two slices of `db`; returns the objects' keys in chain order.
fn chain_of_three(setup: &Setup, source: &Mongod, db: &str) -> Vec<String> {
    for n in 0..3 {
        write(source, db, n);
        assert_ok(&setup.backup());
    }
    let keys: Vec<String> = setup
        .stored_keys()
        .into_iter()
        .filter(|k| k.starts_with(&format!("{db}/")) && !k.ends_with(".done") && !k.ends_with("/head.json"))
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    keys
}

/// A target database holding one sentinel document; returns a check that it is still there.
fn sentinel<'a>(target: &'a Mongod, db: &str) -> impl Fn() -> bool + 'a {
    let client = target.client();
    block_on(async {
        client.database(db).drop().await.unwrap();
        client.database(db).collection::<Document>("items").insert_one(doc! {"_id": "sentinel"}).await.unwrap();
    });
    let db = db.to_string();
    move || {
        let client = target.client();
        block_on(async { client.database(&db).collection::<Document>("items").count_documents(doc! {}).await }).unwrap()
            == 1
    }
}

#[test]
fn an_empty_object_under_a_committed_key_fails_the_restore_before_any_write() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "damage_empty";
    let setup = Setup::new(source, db, true);
    let keys = chain_of_three(&setup, source, db);
    let untouched = sentinel(target, db);
    let uri = target.uri();
    let empty_zstd = zstd::encode_all(&b""[..], 3).unwrap();
    for (key, replacement) in [(&keys[0], Vec::new()), (&keys[0], empty_zstd.clone()), (&keys[2], empty_zstd)] {
        let path = setup.object_path(key);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &replacement).unwrap();
        for dry_run in [false, true] {
            let mut args = vec!["--uri", uri.as_str(), "--drop"];
            if dry_run {
                args.push("--dry-run");
            }
            let output = setup.restore(&args);
            assert_eq!(output.status.code(), Some(3), "{key} emptied, dry-run {dry_run}: {}", stderr_of(&output));
            let last = stderr_of(&output).lines().last().unwrap_or_default().to_string();
            assert!(last.contains(key.as_str()) && last.contains("its marker says"), "{last}");
            assert!(output.stdout.is_empty(), "no record from a refused restore");
            assert!(untouched(), "{key} emptied: the target was written");
        }
        std::fs::write(&path, good).unwrap();
    }
    let verify = setup.script_with("mb-verify", &setup.config).output().unwrap();
    assert_ok(&verify);
}

#[test]
fn a_mixed_encrypted_chain_without_its_identity_writes_nothing() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "damage_encrypted";
    let setup = Setup::new(source, db, true);
    write(source, db, 0);
    assert_ok(&setup.backup());
    setup.set_key("encrypt_to", &age::x25519::Identity::generate().to_public().to_string());
    write(source, db, 1);
    assert_ok(&setup.backup());
    let first_encrypted =
        setup.stored_keys().into_iter().find(|k| k.contains("/000001-oplog-") && !k.ends_with(".done")).unwrap();
    let untouched = sentinel(target, db);
    let uri = target.uri();
    let output = setup.restore(&["--uri", &uri, "--drop"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&first_encrypted) && stderr.contains("encrypted (age)"), "{stderr}");
    assert!(output.stdout.is_empty() && untouched(), "nothing written, no record");
}

#[test]
fn a_deleted_newest_slice_is_seen_by_the_catalog_verify_and_restore() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "damage_newest";
    let setup = Setup::new(source, db, true);
    let keys = chain_of_three(&setup, source, db);
    for key in [format!("{}.done", keys[2]), keys[2].clone()] {
        std::fs::remove_file(setup.object_path(&key)).unwrap();
    }
    let verify = setup.script_with("mb-verify", &setup.config).output().unwrap();
    assert_eq!(verify.status.code(), Some(3), "{}", stderr_of(&verify));
    assert!(stderr_of(&verify).contains("head record says the chain reached SEQ 000002"), "{}", stderr_of(&verify));
    let untouched = sentinel(target, db);
    let uri = target.uri();
    let output = setup.restore(&["--uri", &uri, "--drop"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    assert!(untouched());
    let list = setup.restore(&["--list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("INCOMPLETE"), "{}", String::from_utf8_lossy(&list.stdout));
    // What is left still restores to a point its window holds.
    let json = setup.restore(&["--list", "--json"]);
    let record: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let to: mb::format::records::Ts = serde_json::from_value(record["window"]["to"]["ts"].clone()).unwrap();
    assert_ok(&setup.restore(&["--uri", &uri, "--drop", "--until", &to.to_string()]));
}

#[test]
fn a_run_killed_after_its_marker_is_committed_by_the_next_run() {
    let source = Mongod::shared_replica_set();
    let db = "damage_adopt";
    let mut setup = Setup::new(source, db, true);
    write(source, db, 0);
    assert_ok(&setup.backup());
    write(source, db, 1);
    // The run is killed when it moves the checkpoint; its range is kept, and
    // the next run decides that same range (an idle source: no newer entry).
    let saved = temp_dir();
    let range = saved.path().join("range.json");
    let real = setup.bin_dir.clone();
    let killer = bin_dir_with(
        "mb-oplog-range",
        &format!(
            r#"if [[ " $* " == *" --commit "* ]]; then
                 while [[ $# -gt 0 ]]; do [[ $1 == --range ]] && cp "$2" {range:?}; shift; done; kill -9 $$
               fi
               exec "$real" "$@""#
        ),
    );
    setup.bin_dir = killer.path().to_path_buf();
    let killed = setup.backup();
    assert!(!killed.status.success());
    let before = setup.state();
    let replay = bin_dir_with(
        "mb-oplog-range",
        &format!(r#"if [[ " $* " != *" --commit "* ]]; then cat {range:?}; exit 0; fi; exec "$real" "$@""#),
    );
    setup.bin_dir = replay.path().to_path_buf();
    let rerun = setup.backup();
    assert_ok(&rerun);
    assert!(stderr_of(&rerun).contains("committing it"), "{}", stderr_of(&rerun));
    let after = setup.state();
    assert_eq!((before.seq, after.seq), (0, 1), "the checkpoint moved past the committed slice");
    setup.bin_dir = real;
    assert_ok(&setup.backup());
}

#[test]
fn killed_runs_leave_no_work_directories_and_verify_writes_no_plaintext() {
    let source = Mongod::shared_replica_set();
    let db = "damage_leftovers";
    let mut setup = Setup::new(source, db, true);
    std::fs::create_dir_all(setup.root.join(".run.AbC123")).unwrap();
    std::fs::write(setup.root.join(".run.AbC123/manifest.json"), "{}").unwrap();
    let identity = age::x25519::Identity::generate();
    setup.set_key("encrypt_to", &identity.to_public().to_string());
    write(source, db, 0);
    assert_ok(&setup.backup());
    assert!(!setup.root.join(".run.AbC123").exists(), "a killed run's work directory is removed by the next run");
    let leftovers: Vec<_> = std::fs::read_dir(&setup.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".run."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // While mb-verify decompresses, nothing under its TMPDIR is compressed plaintext.
    let key = setup.root.parent().unwrap().join("verify.key");
    std::fs::write(&key, age::secrecy::ExposeSecret::expose_secret(&identity.to_string())).unwrap();
    let tmp = temp_dir();
    let report = tmp.path().join("plaintext.txt");
    let spy = bin_dir_with(
        "mb-pack",
        &format!(
            r#"find {dir:?} -type f -name 'object*' | while read -r f; do
                 [[ $(head -c 4 "$f" | od -An -tx1 | tr -d ' \n') == 28b52ffd ]] && echo "$f" >>{report:?}
               done
               exec "$real" "$@""#,
            dir = tmp.path().join("work"),
        ),
    );
    std::fs::create_dir(tmp.path().join("work")).unwrap();
    setup.bin_dir = spy.path().to_path_buf();
    let verify = setup
        .script_with("mb-verify", &setup.config)
        .args(["--identity", key.to_str().unwrap()])
        .env("TMPDIR", tmp.path().join("work"))
        .output()
        .unwrap();
    assert_ok(&verify);
    assert!(!report.exists(), "plaintext on disk: {}", std::fs::read_to_string(&report).unwrap_or_default());
}

#[test]
fn the_restore_password_reaches_mb_apply_through_a_pipe_not_a_file() {
    let source = Mongod::shared_replica_set();
    let db = "damage_password";
    let mut setup = Setup::new(source, db, true);
    write(source, db, 0);
    assert_ok(&setup.backup());
    setup.set_key("restore_db_host", "127.0.0.1");
    setup.set_key("restore_db_user", "restorer");
    setup.set_key("restore_db_passwd", "pw-never-on-disk-7f3a");
    // In place of mb-apply: what a SIGKILL at that moment would leave on
    // disk, and what mb-apply is given.
    let tmp = temp_dir();
    let report = tmp.path().join("report.txt");
    let spy = bin_dir_with(
        "mb-apply",
        &format!(
            r#"grep -rl pw-never-on-disk {work:?} >>{report:?}
               while [[ $# -gt 0 ]]; do [[ $1 == --config ]] && {{ echo "config $2"; cat "$2"; }} >>{report:?}; shift; done
               cat >/dev/null; echo '{{}}'"#,
            work = tmp.path().join("work"),
        ),
    );
    std::fs::create_dir(tmp.path().join("work")).unwrap();
    setup.bin_dir = spy.path().to_path_buf();
    let output =
        setup.script_with("mb-restore", &setup.config).env("TMPDIR", tmp.path().join("work")).output().unwrap();
    assert_ok(&output);
    let report = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert!(lines[0].starts_with("config /dev/fd/"), "no file holds the password, mb-apply reads a pipe: {report}");
    assert!(lines.contains(&"db_passwd = pw-never-on-disk-7f3a") && lines.contains(&"db_user = restorer"), "{report}");
}
