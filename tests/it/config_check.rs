//! `mb-config check CONFIG` on broken configs, the example config, and the
//! scripts running it first (no silent default bucket).

use std::process::Command;

use crate::support::{bin, stage, stderr_of, temp_dir};

const GOOD: &str =
    "db_host = 127.0.0.1\ndb_backup_root_path = /tmp/mb\nbucket = b\nendpoint = oss-cn-hangzhou.aliyuncs.com\n";

fn check(text: &str) -> (Option<i32>, Vec<String>) {
    let dir = temp_dir();
    let path = dir.path().join("mb.conf");
    std::fs::write(&path, text).unwrap();
    let output = stage("mb-config").arg("check").arg(&path).output().unwrap();
    assert!(output.stdout.is_empty());
    let lines = stderr_of(&output).lines().map(|l| l.replace(&path.display().to_string(), "CONFIG")).collect();
    (output.status.code(), lines)
}

#[test]
fn five_broken_configs_get_one_line_per_problem() {
    assert_eq!(check(GOOD), (Some(0), vec![]));
    let cases: [(String, &[&str]); 5] = [
        (format!("{GOOD}bukcet = other\n"), &["mb-config: CONFIG: unknown key `bukcet`: did you mean `bucket`?"]),
        (
            GOOD.replace("bucket = b\n", ""),
            &["mb-config: CONFIG: missing key `bucket`: the OSS bucket (a directory under db_backup_root_path/store \
               with is_upload_to_oss=0)"],
        ),
        (
            format!("{GOOD}is_inc_backup = maybe\ndb_port = 0\n"),
            &[
                "mb-config: CONFIG: bad value for `db_port`: \"0\" is not a port (1 to 65535)",
                "mb-config: CONFIG: bad value for `is_inc_backup`: \"maybe\" is not 1 or 0",
            ],
        ),
        (
            GOOD.replace("endpoint = oss-cn-hangzhou.aliyuncs.com\n", "compression = lz4\n"),
            &[
                "mb-config: CONFIG: missing key `endpoint`: is_upload_to_oss = 1 stores in OSS",
                "mb-config: CONFIG: bad value for `compression`: \"lz4\" is not one of zstd, gzip",
            ],
        ),
        (
            "db_hots = h\nkeep_cycle = 3\nis_upload_to_oss = 0\n".to_string(),
            &[
                "mb-config: CONFIG: unknown key `db_hots`: did you mean `db_host`?",
                "mb-config: CONFIG: unknown key `keep_cycle`: did you mean `keep_cycles`?",
                "mb-config: CONFIG: missing key `db_host`: MongoDB host(s) to back up, comma-separated for a replica set",
                "mb-config: CONFIG: missing key `db_backup_root_path`: where the checkpoint, the lock and a local store \
                 live",
                "mb-config: CONFIG: missing key `bucket`: the OSS bucket (a directory under db_backup_root_path/store \
                 with is_upload_to_oss=0)",
            ],
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(check(&text), (Some(2), expected.iter().map(|s| s.to_string()).collect()), "{text}");
    }
}

#[test]
fn the_example_config_passes_and_oss_bucket_stands_in_for_bucket() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mb.conf");
    let output = stage("mb-config").args(["check", example]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let dir = temp_dir();
    let path = dir.path().join("mb.conf");
    std::fs::write(&path, GOOD.replace("bucket = b\n", "")).unwrap();
    let output = stage("mb-config").arg("check").arg(&path).env("OSS_BUCKET", "b").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
}

/// A backup config without `bucket` is refused before anything runs, naming the key.
#[test]
fn mb_backup_refuses_a_config_without_bucket() {
    let dir = temp_dir();
    let root = dir.path().join("backups");
    let path = dir.path().join("mb.conf");
    let text =
        format!("db_host = 127.0.0.1\ndb_port = 1\ndb_backup_root_path = {}\nis_upload_to_oss = 0\n", root.display());
    std::fs::write(&path, text).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mb-backup");
    let output =
        Command::new(script).arg(&path).env("MB_BIN_DIR", bin("mb-config").parent().unwrap()).output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("missing key `bucket`"), "{stderr}");
    assert!(!root.exists(), "nothing was created: {}", root.display());
}
