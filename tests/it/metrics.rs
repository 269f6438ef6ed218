//! `metrics_file`: the Prometheus textfile `mb-backup` writes after a good
//! and after a failed run; its labels (two stores, one file); a file that
//! cannot be written; the README's alert rules (promtool).

use std::collections::BTreeMap;

use crate::support::assert_ok;
use crate::support::mongod::Mongod;
use crate::support::setup::{bin_dir_with, Setup};

/// `name{labels}` → value, from a textfile.
fn read_metrics(path: &std::path::Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("# TYPE mb_backup_last_run_success gauge"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_after_good_and_failed_runs() {
    let source = Mongod::shared_replica_set();
    let db = "metrics_runs";
    crate::support::data::populate(&source.client(), db, 20);
    let mut setup = Setup::new(source, db, true);
    let file = setup.root.parent().unwrap().join("textfile/mb.prom");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{config}metrics_file = {}\n", file.display())).unwrap();
    let store = setup.root.join("store/backups");
    let series = |name: &str, kind: &str| {
        format!("mb_backup_{name}{{kind=\"{kind}\",prefix=\"{db}\",store=\"{}\",databases=\"{db}\"}}", store.display())
    };

    assert_ok(&setup.backup());
    let full = setup.state();
    assert_ok(&setup.backup());
    let slice = setup.state();
    let good = read_metrics(&file);
    assert_eq!(good[&series("last_run_success", "full")], 1.0);
    assert_eq!(good[&series("last_run_success", "oplog")], 1.0);
    assert_eq!(good[&series("bytes", "full")], full.size as f64);
    assert_eq!(good[&series("bytes", "oplog")], slice.size as f64);
    assert_eq!(good[&series("restorable_until_timestamp_seconds", "oplog")], f64::from(slice.to.t));
    assert_eq!(good[&series("restorable_until_timestamp_seconds", "full")], f64::from(full.to.t));
    assert_eq!(
        good[&series("last_success_timestamp_seconds", "oplog")],
        good[&series("last_run_timestamp_seconds", "oplog")]
    );
    assert!(good.contains_key(&series("duration_seconds", "oplog")));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "node_exporter must read it");

    // A run that fails in mb-dump: failure metrics move, the last success stays.
    let failing = bin_dir_with("mb-dump", "echo 'mb-dump: injected failure' >&2; exit 1");
    setup.bin_dir = failing.path().to_path_buf();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(!setup.backup().status.success());
    let failed = read_metrics(&file);
    assert_eq!(failed[&series("last_run_success", "oplog")], 0.0);
    assert!(
        failed[&series("last_run_timestamp_seconds", "oplog")] > good[&series("last_run_timestamp_seconds", "oplog")]
    );
    for kept in ["last_success_timestamp_seconds", "bytes", "restorable_until_timestamp_seconds"] {
        assert_eq!(failed[&series(kept, "oplog")], good[&series(kept, "oplog")], "{kept}");
    }
    assert_eq!(failed[&series("last_run_success", "full")], 1.0, "the full backup's series stay");

    // --metrics-file wins over the config key.
    let other = file.with_file_name("other.prom");
    let run = setup
        .script_with("mb-backup", &setup.config)
        .args(["--metrics-file", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert_eq!(read_metrics(&other)[&series("last_run_success", "oplog")], 0.0);
}

/// Two configs back up the same database to two stores into one metrics
/// file: two series each, told apart by `store`.
#[test]
fn two_stores_write_two_series() {
    let source = Mongod::shared_replica_set();
    let db = "metrics_stores";
    crate::support::data::populate(&source.client(), db, 10);
    let first = Setup::new(source, db, false);
    let second = Setup::new(source, db, false);
    let file = first.root.parent().unwrap().join("mb.prom");
    for setup in [&first, &second] {
        let mut run = setup.script_with("mb-backup", &setup.config);
        assert_ok(&run.args(["--metrics-file", file.to_str().unwrap()]).output().unwrap());
    }
    let metrics = read_metrics(&file);
    for setup in [&first, &second] {
        let store = setup.root.join("store/backups");
        let name = format!(
            "mb_backup_last_run_success{{kind=\"full\",prefix=\"{db}\",store=\"{}\",databases=\"{db}\"}}",
            store.display()
        );
        assert_eq!(metrics.get(&name), Some(&1.0), "{name} in {metrics:?}");
    }
    assert_eq!(metrics.keys().filter(|k| k.starts_with("mb_backup_last_run_success")).count(), 2);
}

/// A metrics file that cannot be written: the backup is stored and
/// committed, and the run exits 6 with one line naming the file.
#[test]
fn an_unwritable_metrics_file_fails_the_run_after_the_backup() {
    let source = Mongod::shared_replica_set();
    let db = "metrics_unwritable";
    crate::support::data::populate(&source.client(), db, 10);
    let setup = Setup::new(source, db, true);
    let not_a_dir = setup.root.parent().unwrap().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let file = not_a_dir.join("mb.prom");
    let mut run = setup.script_with("mb-backup", &setup.config);
    let output = run.args(["--metrics-file", file.to_str().unwrap()]).output().unwrap();
    let stderr = crate::support::stderr_of(&output);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("mb-config: ") && last.contains("the metrics file ") && last.contains("mb.prom"),
        "{stderr}"
    );
    assert!(setup.state_bytes().is_some(), "the backup was committed before the metrics failed");
    assert!(stderr.contains("mb-backup: stored "), "{stderr}");
}

/// The alert rules the README shows are valid Prometheus rules.
#[test]
fn the_readme_alert_rules_pass_promtool() {
    let Ok(version) = std::process::Command::new("promtool").arg("--version").output() else {
        eprintln!(
            "!! SKIPPED: promtool is not installed (Debian package prometheus; scripts/test installs it as root)"
        );
        return;
    };
    assert!(version.status.success());
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```yaml\ngroups:").expect("README has the alert rules") + "```yaml\n".len();
    let rules = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = crate::support::temp_dir();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, rules).unwrap();
    let check = std::process::Command::new("promtool").args(["check", "rules"]).arg(&path).output().unwrap();
    assert_ok(&check);
    assert!(String::from_utf8_lossy(&check.stdout).contains("SUCCESS: 2 rules found"), "{check:?}");
}
