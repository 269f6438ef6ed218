//! Recovery by time: `--until` alone picks the cycle whose window holds it
//! (over several cycles, under a transactional writer, at randomized points
//! and in the span between one cycle's last slice and the next full backup);
//! points outside every window are refused before anything is written; the
//! catalog's windows are the ones `mb-verify` proves.

use mb::format::records::Ts;
use mongodb::bson::{doc, Document};

use crate::support::mongod::{block_on, Mongod};
use crate::support::oss_server;
use crate::support::setup::Setup;
use crate::support::{assert_ok, stderr_of};

/// Transaction `k` of the writer: inserts item k, deletes item k-2 when k
/// is a multiple of 3, and sets the counter to k, atomically. Returns its
/// commit's oplog time.
fn transaction(source: &Mongod, db: &str, k: i64) -> Ts {
    let client = source.client();
    block_on(async {
        let mut session = client.start_session().await.unwrap();
        session.start_transaction().await.unwrap();
        let items = client.database(db).collection::<Document>("items");
        items.insert_one(doc! {"_id": k, "v": format!("item {k}")}).session(&mut session).await.unwrap();
        if k % 3 == 0 {
            items.delete_one(doc! {"_id": k - 2}).session(&mut session).await.unwrap();
        }
        let counter = client.database(db).collection::<Document>("counter");
        counter
            .update_one(doc! {"_id": "n"}, doc! {"$set": {"n": k}})
            .upsert(true)
            .session(&mut session)
            .await
            .unwrap();
        session.commit_transaction().await.unwrap();
        let ts = session.operation_time().expect("a commit's operation time");
        Ts::new(ts.time, ts.increment)
    })
}

/// What the source held after transaction `k`: the items' ids and the counter.
fn state_after(k: i64) -> (Vec<i64>, i64) {
    let ids = (1..=k).filter(|id| !(id % 3 == 1 && id + 2 <= k)).collect();
    (ids, k)
}

/// What `db` holds on `mongod`, as [`state_after`] gives it.
fn state_of(mongod: &Mongod, db: &str) -> (Vec<i64>, i64) {
    let client = mongod.client();
    block_on(async {
        let items = client.database(db).collection::<Document>("items");
        let mut ids: Vec<i64> = Vec::new();
        let mut cursor = items.find(doc! {}).sort(doc! {"_id": 1}).await.unwrap();
        while cursor.advance().await.unwrap() {
            ids.push(cursor.deserialize_current().unwrap().get_i64("_id").unwrap());
        }
        let counter = client.database(db).collection::<Document>("counter");
        let n = counter.find_one(doc! {"_id": "n"}).await.unwrap().map_or(0, |d| d.get_i64("n").unwrap());
        (ids, n)
    })
}

/// A simple xorshift, seeded per run and printed, so a failure can be replayed (MB_TEST_SEED).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("MB_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("recovery: MB_TEST_SEED={seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Restores `db` with `--until until` into `target` (dropping first) and returns the apply record.
fn restore_until(setup: &Setup, target: &Mongod, until: &str) -> serde_json::Value {
    let uri = target.uri();
    let output = setup.restore(&["--uri", &uri, "--drop", "--until", until]);
    assert_ok(&output);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn ts_of(value: &serde_json::Value) -> Ts {
    serde_json::from_value(value.clone()).unwrap()
}

#[test]
fn until_alone_restores_the_source_at_points_spread_over_three_cycles() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "recovery_random";
    let setup = Setup::new(source, db, true);
    let mut rng = Rng::seeded();
    // (commit time, k) of every transaction after the first full backup; and
    // those between a cycle's last slice and the next cycle's full backup.
    let (mut points, mut between) = (Vec::new(), Vec::new());
    let mut k = 0;
    for cycle in 0..3 {
        setup.set_key("full_backup_period", "0");
        for _ in 0..2 + rng.below(3) {
            k += 1;
            let ts = transaction(source, db, k);
            if cycle > 0 {
                points.push((ts, k));
                between.push((ts, k));
            }
        }
        assert_ok(&setup.backup());
        setup.set_key("full_backup_period", "7");
        for _ in 0..2 {
            for _ in 0..1 + rng.below(4) {
                k += 1;
                points.push((transaction(source, db, k), k));
            }
            assert_ok(&setup.backup());
        }
    }
    let catalog = setup.restore(&["--list", "--json"]);
    assert_ok(&catalog);
    let cycles: Vec<serde_json::Value> =
        String::from_utf8_lossy(&catalog.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(cycles.len(), 3, "{cycles:?}");
    for pair in cycles.windows(2) {
        assert_eq!(pair[0]["window"]["to"]["ts"], pair[1]["window"]["from"]["ts"], "windows touch: {pair:?}");
        assert!(pair[1]["gap_before"].is_null(), "{pair:?}");
    }

    // Every point between cycles, then random ones, to at least ten.
    let mut chosen: Vec<(Ts, i64)> = between.clone();
    while chosen.len() < 12 {
        chosen.push(points[rng.below(points.len() as u64) as usize]);
    }
    for (ts, k) in chosen {
        let record = restore_until(&setup, target, &ts.to_string());
        assert_eq!(state_of(target, db), state_after(k), "--until {ts} (transaction {k})");
        assert_eq!(ts_of(&record["until"]), ts, "{record}");
        assert!(ts_of(&record["consistent_at"]) <= ts, "the point reached is at or before the one asked: {record}");
    }
    // A time: the end of that second, so every transaction of that second is in.
    let end = points.last().unwrap().0;
    let (ts, _) = points[points.len() / 2];
    if ts.t < end.t {
        let k = points.iter().filter(|(p, _)| p.t <= ts.t).map(|(_, k)| *k).max().unwrap();
        let time = mb::format::time::format_rfc3339(i64::from(ts.t));
        restore_until(&setup, target, &time);
        assert_eq!(state_of(target, db), state_after(k), "--until {time}");
    }
}

/// A cycle whose checkpoint was lost cannot be closed: the span between it
/// and the next full backup is in no window.
fn two_cycles_with_a_gap(setup: &Setup, source: &Mongod, db: &str) -> Ts {
    for k in 1..=3 {
        transaction(source, db, k);
    }
    assert_ok(&setup.backup());
    transaction(source, db, 4);
    assert_ok(&setup.backup());
    std::fs::remove_file(setup.root.join("state.json")).unwrap();
    // The next full backup is consistent at the newest write before it: a
    // point strictly inside the gap is an earlier one.
    let in_gap = transaction(source, db, 5);
    transaction(source, db, 6);
    assert_ok(&setup.backup());
    transaction(source, db, 7);
    assert_ok(&setup.backup());
    in_gap
}

#[test]
fn points_outside_every_window_are_refused_and_the_target_is_untouched() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "recovery_refused";
    let setup = Setup::new(source, db, true);
    let in_gap = two_cycles_with_a_gap(&setup, source, db);
    let sentinel = || {
        let client = target.client();
        block_on(async {
            let coll = client.database(db).collection::<Document>("items");
            coll.count_documents(doc! {"_id": "sentinel"}).await.unwrap()
        })
    };
    let client = target.client();
    block_on(async {
        client.database(db).drop().await.unwrap();
        client.database(db).collection::<Document>("items").insert_one(doc! {"_id": "sentinel"}).await.unwrap();
    });
    let uri = target.uri();
    for until in ["2020-01-01T00:00:00Z".to_string(), "2030-01-01T00:00:00Z".to_string(), in_gap.to_string()] {
        let output = setup.restore(&["--uri", &uri, "--drop", "--until", &until]);
        assert_eq!(output.status.code(), Some(2), "--until {until}: {}", stderr_of(&output));
        let stderr = stderr_of(&output);
        assert!(stderr.contains("is outside any stored window") && stderr.contains("nothing was restored"), "{stderr}");
        assert!(output.stdout.is_empty(), "no record from a refused restore");
        assert_eq!(sentinel(), 1, "--until {until}: the target was touched");
    }
    let output = setup.restore(&["--uri", &uri, "--drop", "--until", "2026-02-31T00:00:00Z"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("bad --until"), "{}", stderr_of(&output));
    assert!(!stderr_of(&output).contains("mb-restore: cycle"), "refused before any line about restoring");
    assert_eq!(sentinel(), 1);

    // The catalog shows the gap; a --cycle whose window does not hold the point is refused too.
    let list = setup.restore(&["--list"]);
    assert_ok(&list);
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(text.lines().nth(1).is_some_and(|l| l.starts_with("gap: ")), "{text}");
    let json = setup.restore(&["--list", "--json"]);
    let records: Vec<serde_json::Value> =
        String::from_utf8_lossy(&json.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let gap = &records[1]["gap_before"];
    assert!(ts_of(&gap["from"]["ts"]) < in_gap && in_gap < ts_of(&gap["to"]["ts"]), "{gap}");
    let first = records[0]["cycle"].as_str().unwrap();
    let later = ts_of(&records[1]["window"]["to"]["ts"]).to_string();
    let output = setup.restore(&["--uri", &uri, "--drop", "--cycle", first, "--until", &later]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert_eq!(sentinel(), 1);
}

/// The catalog's record for every cycle matches what mb-verify proves by reading the chain.
fn catalog_matches_verify(setup: &Setup, sizes: &dyn Fn(&str) -> u64) {
    let json = setup.restore(&["--list", "--json"]);
    assert_ok(&json);
    let records: Vec<serde_json::Value> =
        String::from_utf8_lossy(&json.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_eq!(record["format"], "mb-cycle/1");
        assert_eq!(record["complete"], true, "{record}");
        assert_eq!(record["codecs"], serde_json::json!(["zstd"]));
        assert_eq!(record["encrypted"], 0);
        assert_eq!(record["storage_classes"], serde_json::json!(["Standard"]));
        let cycle = record["cycle"].as_str().unwrap();
        let verify = setup.script_with("mb-verify", &setup.config).args(["--cycle", cycle]).output().unwrap();
        assert_ok(&verify);
        let window = &record["window"];
        let expected = format!(
            "restorable from {} ({}) to {} ({})",
            window["from"]["time"].as_str().unwrap(),
            ts_of(&window["from"]["ts"]),
            window["to"]["time"].as_str().unwrap(),
            ts_of(&window["to"]["ts"]),
        );
        let printed = String::from_utf8_lossy(&verify.stdout).into_owned();
        assert!(printed.contains(&expected), "catalog: {expected}\nmb-verify: {printed}");
        let objects = record["objects"].as_u64().unwrap();
        assert!(printed.contains(&format!("{objects} object(s) verified")), "{printed}");
        let full = record["full_backup"].as_str().unwrap();
        assert!(full.contains(cycle) && record["bytes"].as_u64().unwrap() > sizes(full), "{record}");
    }
}

/// Two cycles (a full backup and a slice each, the first closed by a last slice).
fn two_cycles(setup: &Setup, source: &Mongod, db: &str) {
    for k in 1..=4 {
        transaction(source, db, k);
        if k == 3 {
            setup.set_key("full_backup_period", "0");
        }
        assert_ok(&setup.backup());
        setup.set_key("full_backup_period", "7");
    }
}

#[test]
fn the_catalog_matches_mb_verify_on_a_local_store_and_on_oss() {
    let source = Mongod::shared_replica_set();
    let db = "recovery_catalog";
    let local = Setup::new(source, db, true);
    two_cycles(&local, source, db);
    catalog_matches_verify(&local, &|key| std::fs::metadata(local.object_path(key)).unwrap().len());

    let oss = oss_server::start();
    oss.create_bucket("db-backup");
    let db = "recovery_catalog_oss";
    let remote = Setup::with_oss(source, db, &oss, "db-backup", &oss.secret());
    two_cycles(&remote, source, db);
    catalog_matches_verify(&remote, &|key| oss.object("db-backup", key).unwrap().data.len() as u64);
}
