//! Issue 9's cases at the stage level: mb-oss-rm's guard, file modes and the
//! config warning, and usage errors (exit 2, never a panic).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{assert_fails_with, assert_ok, bin, run_with_input, stage, stderr_of, temp_dir};

/// Item 11: stored objects are owner-only whatever the umask; a config with a
/// secret that others may read gets a warning.
#[test]
fn stored_objects_are_owner_only_and_an_exposed_secret_warns() {
    let dir = temp_dir();
    let put = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000; exec "$0" -q --store-dir "$1" --bucket bucket-b --key k/x.tar.gz"#)
        .arg(bin("mb-oss-put"))
        .arg(dir.path())
        .stdin(std::fs::File::open(bin("mb-oss-put")).unwrap())
        .output()
        .unwrap();
    assert_ok(&put);
    let mode = std::fs::metadata(dir.path().join("bucket-b/k/x.tar.gz")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a stored object is the database: owner-only");

    let config = dir.path().join("c.conf");
    std::fs::write(&config, "bucket = bucket-b\naccessKeySecret = s3cret\n").unwrap();
    for (mode, warns) in [(0o644, true), (0o640, true), (0o600, false)] {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
        let output = stage("mb-config").arg("get").arg(&config).arg("bucket").output().unwrap();
        assert_ok(&output);
        let stderr = stderr_of(&output);
        assert_eq!(stderr.contains("warning") && stderr.contains("chmod 600"), warns, "mode {mode:o}: {stderr}");
        assert!(!stderr.contains("s3cret"));
    }
}

/// Items 13 and 14: bad flags are usage errors (exit 2), never a panic.
#[test]
fn bad_flags_exit_2_without_a_panic() {
    let cases: [(&str, &[&str], &str); 12] = [
        ("mb-apply", &["--dry-run", "--parallel", "0"], "--parallel <N>': must be at least 1"),
        ("mb-apply", &["--dry-run", "--oplog-batch", "0"], "--oplog-batch <N>': must be at least 1"),
        ("mb-dump", &["--db", "x", "--parallel", "0"], "--parallel <N>': must be at least 1"),
        ("mb-apply", &["--dry-run", "--ns-from", "a.*"], "--ns-from and --ns-to go in pairs"),
        ("mb-apply", &["--dry-run", "--until", "2026-11-24T03:15:00+0é:00"], "bad time"),
        ("mb-apply", &["--dry-run", "--until", "2026-11-24T03:15:00+0😀"], "bad time"),
        ("mb-apply", &[], "no server given"),
        ("mb-dump", &["--db", "x"], "no server given"),
        ("mb-oplog-range", &[], "--state"),
        // The flag parser's own errors: one line too, naming what is wrong.
        ("mb-pack", &["--bogus"], "mb-pack: unexpected argument '--bogus' found; to pass '--bogus' as a value, use '-- --bogus' (see mb-pack --help)"),
        ("mb-pack", &["--level", "0"], "mb-pack: invalid value '0' for '--level <N>': 0 is not in 1..=19"),
        ("mb-oss-put", &["--bucket", "b"], "required arguments were not provided: --key <KEY>"),
    ];
    for (name, args, needle) in cases {
        let output = run_with_input(stage(name).args(args), b"");
        assert!(!stderr_of(&output).contains("panicked"), "{name} {args:?}: {}", stderr_of(&output));
        assert_fails_with(&output, 2, needle);
        assert_eq!(stderr_of(&output).lines().count(), 1, "{name} {args:?}: one line: {}", stderr_of(&output));
    }
}

/// Item 9's stage: mb-oss-rm deletes only under its prefix and, with
/// --if-unmarked, only objects without a commit marker.
#[test]
fn oss_rm_stays_under_its_prefix_and_keeps_committed_objects() {
    let dir = temp_dir();
    let put = |key: &str| {
        let output = run_with_input(
            stage("mb-oss-put").args(["-q", "--bucket", "bucket-b", "--key", key]).arg("--store-dir").arg(dir.path()),
            b"bytes",
        );
        assert_ok(&output);
    };
    for key in ["shop/c/000000-full.tar.gz", "shop/c/000000-full.tar.gz.done", "shop/c/000001-oplog.tar.gz", "other/x"]
    {
        put(key);
    }
    let rm = |args: &[&str]| {
        stage("mb-oss-rm").args(["--bucket", "bucket-b", "--store-dir"]).arg(dir.path()).args(args).output().unwrap()
    };
    let outside = rm(&["--prefix", "shop/", "--key", "shop/c/000001-oplog.tar.gz", "--key", "other/x"]);
    assert_fails_with(&outside, 2, "not under --prefix");
    let object = |key: &str| dir.path().join("bucket-b").join(key);
    assert!(object("shop/c/000001-oplog.tar.gz").exists() && object("other/x").exists(), "nothing deleted");

    let unmarked = rm(&[
        "--prefix",
        "shop/",
        "--if-unmarked",
        "--key",
        "shop/c/000000-full.tar.gz",
        "--key",
        "shop/c/000001-oplog.tar.gz",
        "--key",
        "shop/c/missing",
    ]);
    assert_ok(&unmarked);
    assert!(object("shop/c/000000-full.tar.gz").exists(), "a committed object stays");
    assert!(!object("shop/c/000001-oplog.tar.gz").exists(), "an uncommitted one goes");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&unmarked.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let deleted: Vec<bool> = lines.iter().map(|l| l["deleted"].as_bool().unwrap()).collect();
    assert_eq!(deleted, [false, true, false]);
}
