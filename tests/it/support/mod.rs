//! Helpers every test shares: paths of the built binaries, running a stage
//! with stdin bytes, the servers (`mongod`, OSS) tests start and stop, and
//! the backup setup the script tests share (`setup`).

#![allow(dead_code)]

pub mod cred_servers;
pub mod data;
pub mod mongod;
pub mod oss_server;
pub mod sdk;
pub mod setup;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Every `mb-*` binary.
pub const BINARIES: [&str; 9] = [
    "mb-apply",
    "mb-config",
    "mb-crypt",
    "mb-dump",
    "mb-oplog-range",
    "mb-oss-get",
    "mb-oss-put",
    "mb-oss-rm",
    "mb-pack",
];

/// The operator's scripts: each takes a CONFIG first.
pub const SCRIPTS: [&str; 5] = ["mb-backup", "mb-restore", "mb-verify", "mb-prune", "mb-status"];

/// Path of a built `mb-*` binary.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "mb-apply" => PathBuf::from(env!("CARGO_BIN_EXE_mb-apply")),
        "mb-config" => PathBuf::from(env!("CARGO_BIN_EXE_mb-config")),
        "mb-oss-rm" => PathBuf::from(env!("CARGO_BIN_EXE_mb-oss-rm")),
        "mb-crypt" => PathBuf::from(env!("CARGO_BIN_EXE_mb-crypt")),
        "mb-dump" => PathBuf::from(env!("CARGO_BIN_EXE_mb-dump")),
        "mb-oplog-range" => PathBuf::from(env!("CARGO_BIN_EXE_mb-oplog-range")),
        "mb-oss-get" => PathBuf::from(env!("CARGO_BIN_EXE_mb-oss-get")),
        "mb-oss-put" => PathBuf::from(env!("CARGO_BIN_EXE_mb-oss-put")),
        "mb-pack" => PathBuf::from(env!("CARGO_BIN_EXE_mb-pack")),
        other => panic!("no binary {other}"),
    }
}

/// The directory holding the built binaries (for scripts that call them by name).
pub fn bin_dir() -> PathBuf {
    bin("mb-pack").parent().unwrap().to_path_buf()
}

/// A command for a stage, with a clean environment for `MB_*`/`OSS_*` variables.
pub fn stage(name: &str) -> Command {
    let mut cmd = Command::new(bin(name));
    for (key, _) in std::env::vars() {
        if key.starts_with("MB_") || key.starts_with("OSS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs a command with `input` on stdin and returns its output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn stage");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The stage may fail before reading everything; a broken pipe is fine then.
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for stage");
    writer.join().unwrap();
    output
}

/// Runs a stage that writes a stream and holds it open (its pipe full) after
/// the first 256 KiB while `while_held` runs, so that what `while_held` does
/// lands during the stage's reads; returns its output with all of stdout.
/// Stderr is drained meanwhile, so a verbose stage never blocks on it.
pub fn run_held(cmd: &mut Command, while_held: impl FnOnce()) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn stage");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = Vec::new();
        stderr_pipe.read_to_end(&mut text).map(|_| text)
    });
    let mut data = vec![0; 256 << 10];
    stdout.read_exact(&mut data).unwrap();
    while_held();
    stdout.read_to_end(&mut data).unwrap();
    let status = child.wait().expect("wait for stage");
    let stderr = stderr.join().expect("stderr reader").expect("read stage stderr");
    Output { status, stdout: data, stderr }
}

/// Waits until `counter` (a writer thread's operations) has grown by `more`.
pub fn wait_for_more(counter: &AtomicU64, more: u64) {
    let before = counter.load(Ordering::Relaxed);
    while counter.load(Ordering::Relaxed) < before + more {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Stderr as text.
pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a stage succeeded, showing its stderr if not.
#[track_caller]
pub fn assert_ok(output: &Output) {
    assert!(output.status.success(), "stage failed ({:?}): {}", output.status.code(), stderr_of(output));
}

/// Asserts a stage failed with `code` and printed one line on stderr that contains `needle`.
#[track_caller]
pub fn assert_fails_with(output: &Output, code: i32, needle: &str) {
    let stderr = stderr_of(output);
    assert_eq!(output.status.code(), Some(code), "exit code; stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.contains(needle), "stderr's last line {last:?} lacks {needle:?}; all: {stderr}");
    assert!(last.starts_with("mb-"), "error line should name the program: {last:?}");
}

/// `tests/fixtures/<tool>/<name>`.
pub fn fixture(tool: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(tool).join(name)
}

/// A fresh temp dir that is removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("mb-test-").tempdir().expect("temp dir")
}

/// Deterministic pseudo-random bytes (xorshift), different for each seed.
pub fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
