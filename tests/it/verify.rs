//! `scripts/mb-verify`: a stored cycle proved restorable without a server,
//! and every fault in it named: a flipped byte in any object, a middle
//! slice deleted (with or without its marker).

use crate::support::mongod::Mongod;
use crate::support::oss_server::{self, OssServer};
use crate::support::setup::Setup;
use crate::support::{assert_ok, stage, stderr_of};

const BUCKET: &str = "db-backup";

fn verify(setup: &Setup) -> std::process::Output {
    setup.script_with("mb-verify", &setup.config).output().unwrap()
}

fn remove(setup: &Setup, db: &str, key: &str) {
    let config = setup.config.to_str().unwrap();
    assert_ok(
        &stage("mb-oss-rm")
            .args(["-q", "--config", config, "--prefix", &format!("{db}/"), "--key", key])
            .output()
            .unwrap(),
    );
}

/// A cycle of a full backup and two oplog slices.
fn three_objects(source: &Mongod, oss: &OssServer, db: &str) -> (Setup, Vec<String>) {
    crate::support::data::populate(&source.client(), db, 20);
    let setup = Setup::with_oss(source, db, oss, BUCKET, &oss.secret());
    for n in 0..3 {
        assert_ok(&setup.backup());
        let client = source.client();
        crate::support::mongod::block_on(async {
            client.database(db).collection("later").insert_one(mongodb::bson::doc! {"n": n}).await
        })
        .unwrap();
    }
    let objects: Vec<String> =
        oss.keys(BUCKET).into_iter().filter(|k| !k.ends_with(".done") && !k.ends_with("/head.json")).collect();
    assert_eq!(objects.len(), 3, "{objects:?}");
    (setup, objects)
}

#[test]
fn a_good_cycle_verifies_and_prints_its_window() {
    let source = Mongod::shared_replica_set();
    let oss = oss_server::start();
    oss.create_bucket(BUCKET);
    let db = "verify_good";
    let (setup, _) = three_objects(source, &oss, db);
    let output = verify(&setup);
    assert_ok(&output);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let state = setup.state();
    let end = format!("{},{}", state.to.t, state.to.i);
    let end_time = mb::format::time::format_rfc3339(i64::from(state.to.t));
    assert!(stdout.contains("3 object(s) verified"), "{stdout}");
    assert!(stdout.contains(&format!("to {end_time} ({end})")), "the window ends where the chain does: {stdout}");
    let from = stdout.split("restorable from ").nth(1).expect("a window").split(' ').next().unwrap();
    assert!(from <= end_time.as_str(), "{stdout}");
}

#[test]
fn a_flipped_byte_in_any_object_is_named() {
    let source = Mongod::shared_replica_set();
    let oss = oss_server::start();
    oss.create_bucket(BUCKET);
    let db = "verify_flip";
    let (setup, objects) = three_objects(source, &oss, db);
    for key in &objects {
        let good = oss.object(BUCKET, key).unwrap().data.to_vec();
        let mut bad = good.clone();
        let middle = bad.len() / 2;
        bad[middle] ^= 0x10;
        // Stored as a new object: the store's own CRC-64 matches the bad bytes;
        // only the put record (and the stream's checks) know better.
        oss.put_object(BUCKET, key, &bad);
        let output = verify(&setup);
        assert_eq!(output.status.code(), Some(3), "{key}: {}", stderr_of(&output));
        let last = stderr_of(&output).lines().last().unwrap_or_default().to_string();
        assert!(last.starts_with("mb-verify: ") && last.contains(key.as_str()), "{key}: {}", stderr_of(&output));
        oss.put_object(BUCKET, key, &good);
    }
    assert_ok(&verify(&setup));

    // A whole valid stream under another object's key (a copy gone wrong):
    // every byte is sound, only its put record tells.
    let last = oss.object(BUCKET, &objects[2]).unwrap().data.to_vec();
    oss.put_object(BUCKET, &objects[2], &oss.object(BUCKET, &objects[1]).unwrap().data);
    let output = verify(&setup);
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("its marker says"), "{}", stderr_of(&output));
    assert!(stderr_of(&output).lines().last().unwrap().contains(&objects[2]), "{}", stderr_of(&output));
    oss.put_object(BUCKET, &objects[2], &last);
}

#[test]
fn a_deleted_middle_slice_is_named() {
    let source = Mongod::shared_replica_set();
    let oss = oss_server::start();
    oss.create_bucket(BUCKET);
    let db = "verify_hole";
    let (setup, objects) = three_objects(source, &oss, db);
    let middle = &objects[1];
    assert!(middle.contains("/000001-oplog-"), "{middle}");

    // The object gone, its marker left: the marker's object cannot be read.
    let data = oss.object(BUCKET, middle).unwrap().data.to_vec();
    remove(&setup, db, middle);
    let output = verify(&setup);
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    assert!(stderr_of(&output).lines().last().unwrap().contains(middle.as_str()), "{}", stderr_of(&output));
    oss.put_object(BUCKET, middle, &data);
    assert_ok(&verify(&setup));

    // Both gone: the chain has a hole at SEQ 000001.
    remove(&setup, db, &format!("{middle}.done"));
    remove(&setup, db, middle);
    let output = verify(&setup);
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    let last = stderr_of(&output).lines().last().unwrap().to_string();
    assert!(last.contains("no committed object with SEQ 000001") && last.contains(&objects[2]), "{last}");
}
