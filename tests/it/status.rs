//! `scripts/mb-status`: is the backup healthy? On a fresh, a healthy, a
//! failed and a stale setup, as text and as its `mb-status/1` record, and
//! `--max-age` as a ready check.

use std::process::Output;

use crate::support::mongod::Mongod;
use crate::support::setup::{bin_dir_with, Setup};
use crate::support::{assert_ok, stderr_of};

fn status(setup: &Setup, args: &[&str]) -> Output {
    setup.script_with("mb-status", &setup.config).args(args).output().unwrap()
}

fn record(setup: &Setup) -> serde_json::Value {
    let output = status(setup, &["--json"]);
    assert_ok(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn status_on_a_fresh_a_healthy_a_failed_and_a_stale_setup() {
    let source = Mongod::shared_replica_set();
    let db = "status_setup";
    crate::support::data::populate(&source.client(), db, 20);
    let mut setup = Setup::new(source, db, true);

    // Fresh: nothing yet; --max-age fails.
    let fresh = status(&setup, &[]);
    assert_ok(&fresh);
    let text = String::from_utf8_lossy(&fresh.stdout).into_owned();
    assert!(text.contains("NOT healthy") && text.contains("last success: none yet"), "{text}");
    assert!(text.contains("restorable: nothing yet"), "{text}");
    let ready = status(&setup, &["--max-age", "1h"]);
    assert_eq!(ready.status.code(), Some(1), "{}", stderr_of(&ready));
    assert!(stderr_of(&ready).contains("no backup has succeeded yet"), "{}", stderr_of(&ready));

    // Healthy: a full backup and a slice.
    assert_ok(&setup.backup());
    crate::support::mongod::block_on(crate::support::data::insert_big(&source.client(), db, 10_000, 5));
    assert_ok(&setup.backup());
    let healthy = status(&setup, &["--max-age", "1h"]);
    assert_ok(&healthy);
    let text = String::from_utf8_lossy(&healthy.stdout).into_owned();
    for needle in
        ["healthy", "last success: ", "checkpoint: cycle ", "next full backup due: ", "restorable: ", "objects 2"]
    {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    assert!(!text.contains("NOT healthy"), "{text}");
    let json = record(&setup);
    assert_eq!(json["format"], "mb-status/1");
    assert_eq!(json["healthy"], true, "{json}");
    assert!(json["last_success_age_seconds"].as_i64().unwrap() < 600, "{json}");
    assert_eq!(json["cycles"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["checkpoint"]["seq"], 1, "{json}");
    assert!(json["next_full_backup_due"].is_string(), "{json}");

    // Failed: the dump fails; the reason is its last line.
    let real = setup.bin_dir.clone();
    let broken = bin_dir_with("mb-dump", r#"echo "mb-dump: the disk caught fire" >&2; exit 1"#);
    setup.bin_dir = broken.path().to_path_buf();
    assert!(!setup.backup().status.success());
    setup.bin_dir = real;
    let json = record(&setup);
    assert_eq!((json["healthy"].clone(), json["last_run_failed"].clone()), (false.into(), true.into()), "{json}");
    let reason = json["last_failure"]["reason"].as_str().unwrap();
    assert!(reason.contains("the disk caught fire"), "{reason}");
    let text = String::from_utf8_lossy(&status(&setup, &[]).stdout).into_owned();
    assert!(text.contains("NOT healthy") && text.contains("last failure: ") && text.contains("caught fire"), "{text}");

    // Stale: a success older than --max-age exits 1, with one line saying so.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_ok(&setup.backup());
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let stale = status(&setup, &["--max-age", "1s", "--json"]);
    assert_eq!(stale.status.code(), Some(1), "{}", stderr_of(&stale));
    assert_eq!(stderr_of(&stale).lines().count(), 1, "{}", stderr_of(&stale));
    assert!(stderr_of(&stale).contains("more than --max-age"), "{}", stderr_of(&stale));
    let json: serde_json::Value = serde_json::from_slice(&stale.stdout).unwrap();
    assert_eq!(json["healthy"], false, "{json}");
    assert_ok(&status(&setup, &["--max-age", "1h"]));
}
