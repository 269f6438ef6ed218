//! Retention (`keep_cycles`, `scripts/mb-prune`, `mb-oss-rm --prune`) on the
//! suite's OSS server: what stays after several cycles, a killed run's
//! leftovers and an abandoned multipart upload; a prune cut short.

use std::collections::BTreeSet;

use crate::support::mongod::Mongod;
use crate::support::oss_server::{self, Fault, Op, OssServer};
use crate::support::setup::{restore_fresh, Setup};
use crate::support::{assert_ok, stderr_of};

const BUCKET: &str = "db-backup";
const DAY: u64 = 86_400;

/// Full backups only (`is_inc_backup = 0`: every run is a cycle) of `db` to `oss`, with extra config lines.
fn full_only(source: &Mongod, db: &str, oss: &OssServer, extra: &str) -> Setup {
    let setup = Setup::with_oss(source, db, oss, BUCKET, &oss.secret());
    let config = std::fs::read_to_string(&setup.config).unwrap().replace("is_inc_backup = 1", "is_inc_backup = 0");
    std::fs::write(&setup.config, format!("{config}{extra}")).unwrap();
    setup
}

/// Cycle names of the committed full backups, oldest first.
fn cycles(oss: &OssServer, db: &str) -> Vec<String> {
    let cycles: BTreeSet<String> = oss
        .keys(BUCKET)
        .iter()
        .filter(|k| k.starts_with(&format!("{db}/")) && k.ends_with(".done"))
        .map(|k| k.split('/').nth(1).unwrap().to_string())
        .collect();
    cycles.into_iter().collect()
}

fn insert(source: &Mongod, db: &str, n: i32) {
    let client = source.client();
    crate::support::mongod::block_on(async {
        client.database(db).collection("later").insert_one(mongodb::bson::doc! {"n": n}).await
    })
    .unwrap();
}

/// A cycle name `micros` microseconds after `cycle` (a run that began after
/// it and was killed). Not by replacing the last digit: when that was 9, the
/// name came out earlier than `cycle` (about one run in ten failed).
fn later_cycle(cycle: &str, micros: u32) -> String {
    let (seconds, fraction) = cycle.trim_end_matches('Z').split_once('.').unwrap();
    let later = fraction.parse::<u32>().unwrap() + micros;
    assert!(later < 1_000_000, "{cycle} is within {micros} µs of a second: run again");
    format!("{seconds}.{later:06}Z")
}

#[test]
fn keep_cycles_keeps_the_newest_cycles_and_removes_old_leftovers() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let oss = oss_server::start();
    oss.create_bucket(BUCKET);
    let db = "retention_keep";
    crate::support::data::populate(&source.client(), db, 20);
    let setup = full_only(source, db, &oss, "keep_cycles = 2\n");

    let mut hashes = Vec::new();
    for run in 0..2 {
        assert_ok(&setup.backup());
        hashes.push(source.db_hash(db).1);
        insert(source, db, run);
    }
    let [c1, c2] = <[String; 2]>::try_from(cycles(&oss, db)).unwrap();
    // A killed run's object (no marker) and its abandoned upload, two days
    // ago; another's inside c2; another run's, an hour ago; an object of
    // another chain.
    let old_leftover = format!("{db}/{}/000000-full.tar.gz", later_cycle(&c2, 2));
    let young_leftover = format!("{db}/{}/000000-full.tar.gz", later_cycle(&c2, 1));
    let leftover_in_c2 = format!("{db}/{c2}/000001-oplog-0000000001_0000000001-0000000002_0000000001.tar.zst");
    oss.put_object(BUCKET, &old_leftover, b"cut stream");
    oss.put_object(BUCKET, &leftover_in_c2, b"cut stream");
    oss.begin_upload(BUCKET, &old_leftover);
    oss.put_object(BUCKET, &format!("{db}_other/{c1}/000000-full.tar.gz"), b"not ours");
    oss.backdate(2 * DAY);
    oss.put_object(BUCKET, &young_leftover, b"cut stream");
    let young_upload = oss.begin_upload(BUCKET, &young_leftover);
    let before: BTreeSet<String> = oss.keys(BUCKET).into_iter().collect();

    // mb-prune --dry-run says what would go and deletes nothing.
    let dry = setup.script_with("mb-prune", &setup.config).arg("--dry-run").output().unwrap();
    assert_ok(&dry);
    let printed = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(printed.contains(&old_leftover) && printed.contains("\"deleted\":false"), "{printed}");
    assert!(printed.contains(&leftover_in_c2), "mb-prune by hand lists whole: {printed}");
    assert!(!printed.contains(&c1), "two complete cycles: none is old enough yet: {printed}");
    assert_eq!(oss.keys(BUCKET).into_iter().collect::<BTreeSet<_>>(), before);

    assert_ok(&setup.backup());
    hashes.push(source.db_hash(db).1);
    let c3 = cycles(&oss, db).last().unwrap().clone();
    let full = |c: &str| format!("{db}/{c}/000000-full.tar.zst");
    let cycle_keys = |c: &str| [full(c), full(c) + ".done", format!("{db}/{c}/head.json")];
    let keys = || oss.keys(BUCKET).into_iter().collect::<BTreeSet<_>>();
    let mut expected: BTreeSet<String> = [cycle_keys(&c2), cycle_keys(&c3)].concat().into_iter().collect();
    expected.extend([young_leftover.clone(), format!("{db}_other/{c1}/000000-full.tar.gz")]);
    // The runs before listed the prefix whole less than a day ago: this one
    // lists each cycle's first keys (the old leftover's own cycle is older
    // than c2, so it went whole), and the leftover inside c2 waits for the
    // next whole listing, at most a day; uploads are listed on every run.
    assert_eq!(keys(), expected.iter().cloned().chain([leftover_in_c2.clone()]).collect());
    let uploads: Vec<String> = oss.uploads().into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(uploads, vec![young_upload], "only the young upload stays");

    // The kept cycles restore to what the source held at each.
    let (_, restored) = restore_fresh(&setup, target, db, &["--cycle", &c2]);
    assert_eq!(restored, hashes[1], "cycle {c2}");
    let (_, restored) = restore_fresh(&setup, target, db, &[]);
    assert_eq!(restored, hashes[2], "the latest cycle");

    // A day later the run lists whole again: the leftover in c2 goes (three
    // cycles kept now, so c2 stays).
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, config.replace("keep_cycles = 2", "keep_cycles = 3")).unwrap();
    let record = setup.root.join("prune-scan.json");
    let text = std::fs::read_to_string(&record).expect("mb-backup keeps a scan record");
    let mut scan: serde_json::Value = serde_json::from_str(&text).unwrap();
    scan["listed_at"] = (scan["listed_at"].as_i64().unwrap() - DAY as i64).into();
    std::fs::write(&record, scan.to_string()).unwrap();
    insert(source, db, 3);
    assert_ok(&setup.backup());
    let c4 = cycles(&oss, db).last().unwrap().clone();
    expected.extend(cycle_keys(&c4));
    assert_eq!(keys(), expected);
}

#[test]
fn a_prune_cut_short_leaves_every_marked_object_restorable() {
    let source = Mongod::shared_replica_set();
    let oss = oss_server::start();
    oss.create_bucket(BUCKET);
    let db = "retention_cut";
    crate::support::data::populate(&source.client(), db, 5);
    let setup = full_only(source, db, &oss, "");
    for run in 0..3 {
        assert_ok(&setup.backup());
        insert(source, db, run);
    }
    assert_eq!(oss.keys(BUCKET).len(), 9, "no keep_cycles: mb-backup deletes nothing (3 objects, markers, heads)");
    let names = cycles(&oss, db);

    // Deleting works three times, then the store refuses: the two old
    // cycles' head records went, then the first cycle's marker.
    oss.inject(Op::DeleteObject, Fault::Status(403), 3, 100);
    let cut = setup.script_with("mb-prune", &setup.config).args(["--keep-cycles", "1"]).output().unwrap();
    assert!(!cut.status.success(), "the refused delete fails the prune");
    assert!(stderr_of(&cut).starts_with("mb-oss-rm: deleting"), "{}", stderr_of(&cut));
    let keys: BTreeSet<String> = oss.keys(BUCKET).into_iter().collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    for marker in keys.iter().filter(|k| k.ends_with(".done")) {
        let object = marker.strip_suffix(".done").unwrap();
        assert!(keys.contains(object), "{marker} without its object");
    }
    for cycle in cycles(&oss, db) {
        let check = setup.restore(&["--dry-run", "--cycle", &cycle]);
        assert_ok(&check);
    }
    assert_eq!(cycles(&oss, db), names[1..], "the first cycle lost its marker, so is no longer offered");

    oss.clear_faults();
    let rerun = setup.script_with("mb-prune", &setup.config).args(["--keep-cycles", "1"]).output().unwrap();
    assert_ok(&rerun);
    let full = format!("{db}/{}/000000-full.tar.zst", names[2]);
    let head = format!("{db}/{}/head.json", names[2]);
    assert_eq!(oss.keys(BUCKET), vec![full.clone(), full + ".done", head]);
}

#[test]
fn incremental_cycles_go_whole_with_their_slices() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let oss = oss_server::start();
    oss.create_bucket(BUCKET);
    let db = "retention_incremental";
    crate::support::data::populate(&source.client(), db, 5);
    let setup = Setup::with_oss(source, db, &oss, BUCKET, &oss.secret());
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{config}keep_cycles = 1\n")).unwrap();
    let period = |days: u32| {
        let text = std::fs::read_to_string(&setup.config).unwrap();
        let text = text
            .replace("full_backup_period = 7", "full_backup_period = X")
            .replace("full_backup_period = 0", "full_backup_period = X");
        std::fs::write(&setup.config, text.replace("full_backup_period = X", &format!("full_backup_period = {days}")))
            .unwrap();
    };
    assert_ok(&setup.backup());
    insert(source, db, 1);
    assert_ok(&setup.backup());
    let first = cycles(&oss, db);
    assert_eq!(oss.keys(BUCKET).len(), 5, "a full backup and a slice, with markers, and the head record");
    // A new cycle (the period elapsed): once its full backup is committed, the first cycle goes whole.
    period(0);
    insert(source, db, 2);
    assert_ok(&setup.backup());
    period(7);
    insert(source, db, 3);
    assert_ok(&setup.backup());
    let keys = oss.keys(BUCKET);
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains(&first[0])), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("/000001-oplog-")), "the new cycle's slice stays: {keys:?}");
    let (_, expected) = source.db_hash_at(db, setup.state().to);
    let (_, restored) = restore_fresh(&setup, target, db, &[]);
    assert_eq!(restored, expected);
}
