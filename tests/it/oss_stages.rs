//! mb-oss-put and mb-oss-get, the real binaries, against the suite's OSS
//! server: round trips, every fault, credentials, conflicts, listing.
//! Every run also asserts the secret never shows up in stdout or stderr.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::oss_server::{self, Fault, Op, OssServer};
use crate::support::{assert_fails_with, assert_ok, run_with_input, stage, stderr_of, temp_dir};

pub(crate) const BUCKET: &str = "backups";

pub(crate) fn server() -> OssServer {
    let server = oss_server::start();
    server.create_bucket(BUCKET);
    server
}

pub(crate) fn data(len: usize, seed: u32) -> Vec<u8> {
    crate::support::pseudo_random(len, seed)
}

/// A stage pointed at the server, credentials in env (as users pass them).
pub(crate) fn cmd(server: &OssServer, name: &str, args: &[&str]) -> Command {
    let mut cmd = stage(name);
    cmd.env("OSS_ACCESS_KEY_ID", server.access_key_id())
        .env("OSS_ACCESS_KEY_SECRET", server.secret())
        .env("OSS_BUCKET", BUCKET)
        .env("OSS_REGION", "cn-hangzhou")
        .args(["--endpoint", &server.endpoint()])
        .args(args);
    cmd
}

#[track_caller]
pub(crate) fn no_secret(output: &Output) {
    for text in [String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)] {
        assert!(!text.contains(oss_server::ACCESS_KEY_SECRET), "the secret leaked: {text}");
    }
}

pub(crate) fn put(server: &OssServer, key: &str, input: &[u8], args: &[&str]) -> Output {
    let mut all = vec!["--key", key];
    all.extend_from_slice(args);
    let output = run_with_input(&mut cmd(server, "mb-oss-put", &all), input);
    no_secret(&output);
    output
}

pub(crate) fn get(server: &OssServer, args: &[&str]) -> Output {
    let output = run_with_input(&mut cmd(server, "mb-oss-get", args), b"");
    no_secret(&output);
    output
}

pub(crate) fn record(output: &Output) -> serde_json::Value {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one record: {text}");
    serde_json::from_str(&text).unwrap()
}

#[track_caller]
pub(crate) fn assert_nothing_left(server: &OssServer, key: &str) {
    assert!(server.object(BUCKET, key).is_none(), "an object was left under {key}");
    assert!(server.uploads().is_empty(), "multipart uploads left: {:?}", server.uploads());
}

#[test]
fn small_stream_is_one_put_and_round_trips() {
    let server = server();
    let input = b"a small backup\n\x00\xff binary".to_vec();
    let output = put(&server, "b/small", &input, &[]);
    assert_ok(&output);
    let rec = record(&output);
    assert_eq!(rec["format"], "mb-put/1");
    assert_eq!(rec["bucket"], BUCKET);
    assert_eq!(rec["key"], "b/small");
    assert_eq!(rec["size"], input.len() as u64);
    assert_eq!(rec["crc64"], mb::crc64::checksum(&input));
    assert_eq!(rec["parts"], 1);
    assert_eq!(rec["etag"], server.object(BUCKET, "b/small").unwrap().etag.as_str());
    assert!(server.requests().iter().any(|r| r.starts_with("PUT /backups/b/small")));
    assert!(!server.requests().iter().any(|r| r.contains("uploads")));
    let output = get(&server, &["--key", "b/small"]);
    assert_ok(&output);
    assert_eq!(output.stdout, input);
}

#[test]
fn large_stream_goes_multipart_and_round_trips() {
    let server = server();
    let input = data(3 << 20, 1);
    let output = put(&server, "b/large", &input, &["--part-size", "100KiB", "--parallel", "3"]);
    assert_ok(&output);
    let rec = record(&output);
    assert_eq!(rec["parts"], 31, "3 MiB in 100 KiB parts: {rec}");
    assert_eq!(rec["crc64"], mb::crc64::checksum(&input));
    assert_eq!(server.object(BUCKET, "b/large").unwrap().data.as_slice(), input.as_slice());
    assert!(server.uploads().is_empty());
    let output = get(&server, &["--key", "b/large"]);
    assert_ok(&output);
    assert!(output.stdout == input, "downloaded bytes differ");

    // --output: verified, then renamed into place.
    let dir = temp_dir();
    let file = dir.path().join("large.out");
    let output = get(&server, &["--key", "b/large", "--output", file.to_str().unwrap()]);
    assert_ok(&output);
    assert!(std::fs::read(&file).unwrap() == input);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");

    // --head and --range.
    let output = get(&server, &["--key", "b/large", "--head"]);
    assert_ok(&output);
    let head: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(head["size"], input.len() as u64);
    assert_eq!(head["crc64"], mb::crc64::checksum(&input));
    let output = get(&server, &["--key", "b/large", "--range", "1000-1999"]);
    assert_ok(&output);
    assert_eq!(output.stdout, &input[1000..2000]);
    let output = get(&server, &["--key", "b/large", "--range", "99999999-"]);
    assert_fails_with(&output, 1, "InvalidRange");
}

#[test]
fn parts_are_retried_after_5xx_and_resets() {
    let server = server();
    server.inject(Op::UploadPart, Fault::Status(503), 2, 2);
    server.inject(Op::UploadPart, Fault::Reset, 5, 1);
    server.inject(Op::Initiate, Fault::Status(500), 0, 1);
    server.inject(Op::Complete, Fault::Status(502), 0, 1);
    let input = data(1 << 20, 2);
    let output = put(&server, "b/retried", &input, &["--part-size", "100KiB"]);
    assert_ok(&output);
    assert_eq!(server.object(BUCKET, "b/retried").unwrap().data.as_slice(), input.as_slice());
    assert!(server.uploads().is_empty());
    let parts = server.requests().iter().filter(|r| r.contains("partNumber=")).count();
    assert_eq!(parts, 11 + 3, "11 parts and 3 retries");
}

#[test]
fn simple_put_is_retried_after_a_reset() {
    let server = server();
    server.inject(Op::PutObject, Fault::Reset, 0, 1);
    server.inject(Op::PutObject, Fault::Status(500), 0, 1);
    let input = data(50_000, 3);
    let output = put(&server, "b/simple", &input, &[]);
    assert_ok(&output);
    assert_eq!(server.object(BUCKET, "b/simple").unwrap().data.as_slice(), input.as_slice());
}

#[test]
fn a_part_that_keeps_failing_aborts_the_upload() {
    let server = server();
    server.inject(Op::UploadPart, Fault::Status(500), 3, 1000);
    let output = put(&server, "b/failed", &data(1 << 20, 4), &["--part-size", "100KiB", "--attempts", "2"]);
    assert_fails_with(&output, 1, "after 2 attempts");
    assert!(stderr_of(&output).contains("HTTP 500"), "{}", stderr_of(&output));
    assert_nothing_left(&server, "b/failed");
    assert!(server.requests().iter().any(|r| r.starts_with("DELETE /backups/b/failed?uploadId=")));
}

#[test]
fn a_complete_that_keeps_failing_aborts_the_upload() {
    let server = server();
    server.inject(Op::Complete, Fault::Reset, 0, 1000);
    let output = put(&server, "b/nocomplete", &data(500_000, 5), &["--part-size", "100KiB", "--attempts", "2"]);
    assert_fails_with(&output, 1, "POST /backups/b/nocomplete");
    assert_nothing_left(&server, "b/nocomplete");
}

#[test]
fn a_simple_put_that_keeps_failing_leaves_nothing() {
    let server = server();
    server.inject(Op::PutObject, Fault::Reset, 0, 1000);
    let output = put(&server, "b/nosimple", b"small", &["--attempts", "3"]);
    assert_fails_with(&output, 1, "after 3 attempts");
    assert_nothing_left(&server, "b/nosimple");
}

#[test]
fn a_slow_server_is_retried_after_the_timeout() {
    let server = server();
    server.inject(Op::UploadPart, Fault::Delay(Duration::from_millis(2500)), 1, 1);
    let input = data(400_000, 6);
    let output = put(&server, "b/slow", &input, &["--part-size", "100KiB", "--timeout", "1"]);
    assert_ok(&output);
    assert_eq!(server.object(BUCKET, "b/slow").unwrap().data.as_slice(), input.as_slice());

    // Always too slow: a clear failure, nothing left.
    server.inject(Op::UploadPart, Fault::Delay(Duration::from_millis(2500)), 0, 1000);
    let output = put(&server, "b/slower", &input, &["--part-size", "100KiB", "--timeout", "1", "--attempts", "2"]);
    assert_fails_with(&output, 1, "timed out");
    assert_nothing_left(&server, "b/slower");
}

#[test]
fn a_wrong_crc_after_upload_exits_3_and_deletes_the_object() {
    let server = server();
    // The CompleteMultipartUpload answer reports a CRC-64 that is not the
    // bytes'; the object carries this run's ETag, so it is removed.
    server.inject(Op::Complete, Fault::WrongCrc, 0, 1);
    let output = put(&server, "b/badcrc", &data(300_000, 7), &["--part-size", "100KiB"]);
    assert_fails_with(&output, 3, "failed verification");
    assert!(stderr_of(&output).contains("CRC-64"));
    assert_nothing_left(&server, "b/badcrc");
}

#[test]
fn downloads_resume_after_resets_and_truncation() {
    let server = server();
    let input = data(2 << 20, 8);
    server.put_object(BUCKET, "b/dl", &input);
    server.inject(Op::GetObject, Fault::Reset, 0, 1);
    server.inject(Op::GetObject, Fault::Truncate, 0, 2);
    let output = get(&server, &["--key", "b/dl"]);
    assert_ok(&output);
    assert!(output.stdout == input, "resumed download differs");
    let gets: Vec<_> = server.requests().into_iter().filter(|r| r.starts_with("GET /backups/b/dl")).collect();
    assert_eq!(gets.len(), 4, "{gets:?}");

    // A server that answers a resumed range request with the whole object.
    server.clear_requests();
    server.inject(Op::GetObject, Fault::Truncate, 0, 1);
    server.inject(Op::GetObject, Fault::IgnoreRange, 0, 1);
    let output = get(&server, &["--key", "b/dl"]);
    assert_ok(&output);
    assert!(output.stdout == input, "download after a 200-to-range answer differs");

    // Truncated every time: fails, and --output leaves no file.
    server.inject(Op::GetObject, Fault::Truncate, 0, 1000);
    let dir = temp_dir();
    let file = dir.path().join("dl.out");
    let output = get(&server, &["--key", "b/dl", "--attempts", "3", "--output", file.to_str().unwrap()]);
    assert_fails_with(&output, 1, "broke at byte");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no partial output file");
}

#[test]
fn a_download_with_a_wrong_crc_exits_3() {
    let server = server();
    server.put_object(BUCKET, "b/crc", &data(200_000, 9));
    server.inject(Op::GetObject, Fault::WrongCrc, 0, 1);
    let output = get(&server, &["--key", "b/crc"]);
    assert_fails_with(&output, 3, "x-oss-hash-crc64ecma");
    server.inject(Op::GetObject, Fault::WrongCrc, 0, 1);
    let dir = temp_dir();
    let file = dir.path().join("crc.out");
    let output = get(&server, &["--key", "b/crc", "--output", file.to_str().unwrap()]);
    assert_fails_with(&output, 3, "CRC-64");
    assert!(!file.exists());
}

#[test]
fn a_wrong_secret_is_named_and_never_printed() {
    let server = server();
    let wrong = "Wr0ng-s3cret-value-XYZ";
    for (name, args) in [("mb-oss-put", vec!["--key", "b/x"]), ("mb-oss-get", vec!["--key", "b/x"])] {
        let mut c = cmd(&server, name, &args);
        c.env("OSS_ACCESS_KEY_SECRET", wrong).env("MB_LOG", "debug");
        let output = run_with_input(&mut c, b"data");
        assert_fails_with(&output, 1, "wrong AccessKeyId/AccessKeySecret (SignatureDoesNotMatch)");
        let all = format!("{}{}", String::from_utf8_lossy(&output.stdout), stderr_of(&output));
        assert!(!all.contains(wrong), "the wrong secret was printed: {all}");
        no_secret(&output);
    }
    let mut c = cmd(&server, "mb-oss-get", &["--list", ""]);
    c.env("OSS_ACCESS_KEY_ID", "LTAIunknown");
    assert_fails_with(&run_with_input(&mut c, b""), 1, "InvalidAccessKeyId");
}

#[test]
fn the_secret_is_not_a_flag() {
    let server = server();
    let output = put(&server, "b/x", b"x", &["--access-key-secret", "s"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let mut c = cmd(&server, "mb-oss-put", &["--key", "b/x"]);
    c.env_remove("OSS_ACCESS_KEY_SECRET");
    assert_fails_with(&run_with_input(&mut c, b"x"), 1, "OSS_ACCESS_KEY_SECRET");
}

#[test]
fn a_missing_bucket_is_one_clear_line() {
    let server = server();
    let mut c = cmd(&server, "mb-oss-put", &["--key", "b/x", "--bucket", "no-such-bucket"]);
    assert_fails_with(&run_with_input(&mut c, b"data"), 1, "bucket \"no-such-bucket\" does not exist (NoSuchBucket)");
    let mut c = cmd(&server, "mb-oss-get", &["--key", "b/x", "--bucket", "no-such-bucket"]);
    assert_fails_with(&run_with_input(&mut c, b""), 1, "NoSuchBucket");
}

#[test]
fn a_missing_key_fails() {
    let server = server();
    assert_fails_with(&get(&server, &["--key", "b/none"]), 1, "no object \"b/none\"");
    assert_fails_with(&get(&server, &["--key", "b/none", "--head"]), 1, "no object \"b/none\"");
}

#[test]
fn existing_keys_are_not_overwritten() {
    let server = server();
    assert_ok(&put(&server, "b/once", b"first", &[]));
    let output = put(&server, "b/once", b"second", &[]);
    assert_fails_with(&output, 4, "already exists");
    assert_eq!(server.object(BUCKET, "b/once").unwrap().data.as_slice(), b"first");
    assert_ok(&put(&server, "b/once", b"second", &["--overwrite"]));
    assert_eq!(server.object(BUCKET, "b/once").unwrap().data.as_slice(), b"second");

    // The HEAD check races with other writers; x-oss-forbid-overwrite closes
    // the race for simple and multipart puts alike.
    server.inject(Op::HeadObject, Fault::Status(404), 0, 2);
    assert_fails_with(&put(&server, "b/once", b"third", &[]), 4, "already exists");
    assert_fails_with(&put(&server, "b/once", &data(300_000, 10), &["--part-size", "100KiB"]), 4, "already exists");
    assert_eq!(server.object(BUCKET, "b/once").unwrap().data.as_slice(), b"second");
    assert!(server.uploads().is_empty());
}

#[test]
fn a_skewed_clock_is_explained() {
    let server = server();
    server.set_clock_offset(20 * 60);
    assert_fails_with(&put(&server, "b/skew", b"x", &[]), 1, "RequestTimeTooSkewed");
    let output = get(&server, &["--key", "b/skew"]);
    assert!(stderr_of(&output).contains("clock"), "{}", stderr_of(&output));
}

#[test]
fn list_reads_every_page() {
    let server = server();
    server.set_max_keys(2);
    for i in 0..5 {
        server.put_object(BUCKET, &format!("list/{i}"), &vec![b'x'; i]);
    }
    server.put_object(BUCKET, "other/a", b"a");
    let output = get(&server, &["--list", "list/"]);
    assert_ok(&output);
    let lines: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["key"], format!("list/{i}"));
        assert_eq!(line["size"], i);
        assert!(line["etag"].is_string() && line["last_modified"].is_string());
    }
    assert!(server.requests().iter().filter(|r| r.starts_with("GET /backups/?")).count() >= 3);
}

#[test]
fn empty_stdin_needs_allow_empty() {
    let server = server();
    assert_fails_with(&put(&server, "b/empty", b"", &[]), 1, "stdin is empty");
    assert!(server.object(BUCKET, "b/empty").is_none());
    let output = put(&server, "b/empty", b"", &["--allow-empty"]);
    assert_ok(&output);
    assert_eq!(record(&output)["size"], 0);
}

#[test]
fn store_dir_backend_needs_no_credentials() {
    let dir = temp_dir();
    let root = dir.path().to_str().unwrap();
    let input = data(300_000, 11);
    let mut c = stage("mb-oss-put");
    c.args(["--store-dir", root, "--bucket", "local", "--key", "x/y.bin"]);
    let output = run_with_input(&mut c, &input);
    assert_ok(&output);
    assert_eq!(record(&output)["crc64"], mb::crc64::checksum(&input));
    assert!(std::fs::read(dir.path().join("local/x/y.bin")).unwrap() == input);
    let mut c = stage("mb-oss-put");
    c.env("MB_STORE_DIR", root).args(["--bucket", "local", "--key", "x/y.bin"]);
    assert_fails_with(&run_with_input(&mut c, b"again"), 4, "already exists");
    let mut c = stage("mb-oss-get");
    c.args(["--store-dir", root, "--bucket", "local", "--key", "x/y.bin"]);
    let output = run_with_input(&mut c, b"");
    assert_ok(&output);
    assert!(output.stdout == input);
}

#[test]
fn config_file_supplies_what_flags_and_env_do_not() {
    let server = server();
    let dir = temp_dir();
    let config = dir.path().join("mb.conf");
    std::fs::write(
        &config,
        format!(
            "endpoint = {}\nregion = cn-hangzhou\naccessKeyId = {}\naccessKeySecret = {}\nbucket = not-this-one\n",
            server.endpoint(),
            server.access_key_id(),
            server.secret()
        ),
    )
    .unwrap();
    let mut c = stage("mb-oss-put");
    c.args(["--config", config.to_str().unwrap(), "--bucket", BUCKET, "--key", "b/conf"]);
    let output = run_with_input(&mut c, b"from config");
    assert_ok(&output);
    no_secret(&output);
    assert_eq!(server.object(BUCKET, "b/conf").unwrap().data.as_slice(), b"from config");
    // Keys in the config come first in the credential chain: a wrong secret in env is not used.
    let mut c = stage("mb-oss-get");
    c.env("OSS_ACCESS_KEY_SECRET", "wrong").args([
        "--config",
        config.to_str().unwrap(),
        "--bucket",
        BUCKET,
        "--key",
        "b/conf",
    ]);
    assert_eq!(run_with_input(&mut c, b"").stdout, b"from config");
}

/// Peak RSS of mb-oss-put while it uploads a generated 2 GiB stream to a
/// discard bucket (the server keeps only size and CRC). Run by scripts/bench:
/// `cargo test --release --test it -- --ignored --nocapture two_gib`.
#[test]
#[ignore = "slow: a 2 GiB upload; run it with cargo test --release --test it -- --ignored two_gib"]
fn two_gib_upload_memory_stays_bounded() {
    use std::io::Write;
    use std::process::Stdio;
    let server = oss_server::start();
    server.create_discard_bucket("discard");
    let mut c = stage("mb-oss-put");
    c.env("OSS_ACCESS_KEY_ID", server.access_key_id())
        .env("OSS_ACCESS_KEY_SECRET", server.secret())
        .env("OSS_REGION", "cn-hangzhou")
        .args(["--endpoint", &server.endpoint(), "--bucket", "discard", "--key", "big.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let total: u64 = 2 << 30;
    let started = std::time::Instant::now();
    let writer = std::thread::spawn(move || {
        let block = data(4 << 20, 12);
        let mut crc = mb::crc64::Crc64::new();
        let mut sent = 0u64;
        while sent < total {
            stdin.write_all(&block).unwrap();
            crc.update(&block);
            sent += block.len() as u64;
        }
        crc.finish()
    });
    let mut peak_kib = 0u64;
    while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            peak_kib = peak_kib.max(hwm.split_whitespace().nth(1).unwrap().parse().unwrap());
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let crc = writer.join().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_ok(&output);
    let rec = record(&output);
    assert_eq!(rec["size"], total);
    assert_eq!(rec["crc64"], crc);
    let object = server.object("discard", "big.bin").unwrap();
    assert_eq!((object.size, object.crc64), (total, crc));
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "2 GiB upload: {} parts, peak RSS of mb-oss-put {} MiB, {:.1} s ({:.0} MiB/s)",
        rec["parts"],
        peak_kib / 1024,
        secs,
        2048.0 / secs
    );
    assert!(peak_kib < 256 * 1024, "peak RSS {peak_kib} KiB over the 256 MiB bound");
}
