//! `metrics_file`: the Prometheus textfile `mb-backup` writes after a good
//! and after a failed run.

use std::collections::BTreeMap;

use crate::scripts::{bin_dir_with, Setup};
use crate::support::assert_ok;
use crate::support::mongod::Mongod;

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
    let series = |name: &str, kind: &str| format!("mb_backup_{name}{{kind=\"{kind}\",prefix=\"{db}\"}}");

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
