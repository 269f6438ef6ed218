//! The upload path under stress: Content-Length on bodiless requests,
//! concurrent writers, signals, lost answers, deadlines, staged parts,
//! storage options and archived objects, odd keys and usage errors.

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::oss_stages::{assert_nothing_left, cmd, data, get, put, record, server, BUCKET};
use crate::support::oss_server::{Fault, Op, OssServer};
use crate::support::{assert_fails_with, assert_ok, run_with_input, stderr_of, temp_dir};

/// Starts a stage whose stdin is fed `input` by a thread (errors ignored:
/// the stage may be killed or fail first).
fn spawn_put(server: &OssServer, args: &[&str], input: Vec<u8>) -> Child {
    let mut c = cmd(server, "mb-oss-put", args);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    child
}

#[track_caller]
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(60), "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bodiless_puts_and_posts_carry_content_length() {
    let server = server();
    // The suite's server answers 411 like OSS when the length is missing.
    let mut tcp = std::net::TcpStream::connect(server.endpoint().trim_start_matches("http://")).unwrap();
    tcp.write_all(b"PUT /backups/raw HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 411") && answer.contains("MissingContentLength"), "{answer}");
    // An empty object (PutObject with an empty body) and a multipart upload
    // (InitiateMultipartUpload has no body) both go through.
    let output = put(&server, "b/empty", b"", &["--allow-empty"]);
    assert_ok(&output);
    assert_eq!(server.object(BUCKET, "b/empty").unwrap().size, 0);
    let input = data(300_000, 20);
    assert_ok(&put(&server, "b/multi", &input, &["--part-size", "100KiB"]));
    assert_eq!(server.object(BUCKET, "b/multi").unwrap().data.as_slice(), input.as_slice());
}

#[test]
fn concurrent_overwriters_never_delete_each_others_object() {
    let server = server();
    let (first, second) = (data(50_000, 21), data(60_000, 22));
    // The first writer's HEAD, if it makes one, answers late, after the
    // second writer replaced the object.
    server.inject(Op::HeadObject, Fault::Delay(Duration::from_millis(1500)), 0, 1);
    let a = spawn_put(&server, &["--key", "b/shared", "--overwrite"], first.clone());
    wait_for("the first object", || server.object(BUCKET, "b/shared").is_some());
    let b = run_with_input(&mut cmd(&server, "mb-oss-put", &["--key", "b/shared", "--overwrite"]), &second);
    let a = a.wait_with_output().unwrap();
    assert_ok(&b);
    let stored = server.object(BUCKET, "b/shared").expect("the last writer's object is still there");
    assert_eq!(stored.data.as_slice(), second.as_slice());
    assert_eq!(record(&b)["etag"], stored.etag.as_str());
    if a.status.success() {
        // Its record describes what it wrote (since replaced by the second).
        assert_eq!(record(&a)["crc64"], mb::crc64::checksum(&first));
    }
}

#[test]
fn signals_abort_a_multipart_upload() {
    for (signal, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let server = server();
        server.inject(Op::UploadPart, Fault::Delay(Duration::from_secs(20)), 0, 1000);
        let child = spawn_put(&server, &["--key", "b/killed", "--part-size", "100KiB"], data(2 << 20, 23));
        wait_for("a part upload", || server.requests().iter().any(|r| r.contains("partNumber=")));
        assert_eq!(server.uploads().len(), 1);
        let killed = std::process::Command::new("kill").args(["-s", signal, &child.id().to_string()]).status();
        assert!(killed.unwrap().success());
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(code), "SIG{signal}: {}", stderr_of(&output));
        assert!(stderr_of(&output).contains("aborted multipart upload"), "{}", stderr_of(&output));
        assert_nothing_left(&server, "b/killed");
    }
}

#[test]
fn lost_answers_are_settled_by_checking_the_object() {
    let server = server();
    // CompleteMultipartUpload done, answer lost: HEAD shows our object.
    server.inject(Op::Complete, Fault::LoseAnswer, 0, 1);
    let input = data(500_000, 24);
    let output = put(&server, "b/lost", &input, &["--part-size", "100KiB"]);
    assert_ok(&output);
    let stored = server.object(BUCKET, "b/lost").unwrap();
    assert_eq!(stored.data.as_slice(), input.as_slice());
    assert_eq!(record(&output)["etag"], stored.etag.as_str());
    assert!(server.uploads().is_empty());
    // PutObject with x-oss-forbid-overwrite done, answer lost: the retry's
    // FileAlreadyExists is our own object, not a conflict.
    server.inject(Op::PutObject, Fault::LoseAnswer, 0, 1);
    let output = put(&server, "b/lost-simple", b"small object", &[]);
    assert_ok(&output);
    assert_eq!(server.object(BUCKET, "b/lost-simple").unwrap().data.as_slice(), b"small object");
}

#[test]
fn all_attempts_end_by_the_deadline() {
    let server = server();
    server.inject(Op::UploadPart, Fault::Delay(Duration::from_secs(3)), 0, 1000);
    let args = ["--part-size", "100KiB", "--timeout", "1", "--attempts", "100", "--deadline", "2"];
    let output = put(&server, "b/deadline", &data(300_000, 25), &args);
    assert_fails_with(&output, 1, "overall deadline");
    assert_nothing_left(&server, "b/deadline");
}

#[test]
fn big_parts_are_staged_in_the_temp_dir() {
    let server = server();
    let dir = temp_dir();
    let tmp = dir.path().to_str().unwrap();
    // 40 MiB parts do not fit the in-memory plan: staged in unlinked files.
    let input = data(41 << 20, 26);
    let output = put(&server, "b/staged", &input, &["--part-size", "40MiB", "--temp-dir", tmp]);
    assert_ok(&output);
    assert_eq!(record(&output)["parts"], 2);
    assert!(server.object(BUCKET, "b/staged").unwrap().data.as_slice() == input.as_slice());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "staged files are unlinked");
    let missing = dir.path().join("none");
    let output = put(&server, "b/staged2", &input, &["--part-size", "40MiB", "--temp-dir", missing.to_str().unwrap()]);
    assert_fails_with(&output, 1, "--temp-dir");
    assert_nothing_left(&server, "b/staged2");
    // --expected-size sizes the parts up front: 3 MiB in one part, not 31.
    let small = data(3 << 20, 27);
    let output = put(&server, "b/hinted", &small, &["--part-size", "100KiB", "--expected-size", "30GiB"]);
    assert_ok(&output);
    assert_eq!(record(&output)["parts"], 1);
}

#[test]
fn storage_class_and_encryption_are_sent_and_recorded() {
    let server = server();
    let input = data(300_000, 28);
    let args = ["--part-size", "100KiB", "--storage-class", "ia", "--sse", "KMS", "--sse-key-id", "key-1"];
    let output = put(&server, "b/ia", &input, &args);
    assert_ok(&output);
    let rec = record(&output);
    assert_eq!((rec["storage_class"].as_str(), rec["sse"].as_str()), (Some("IA"), Some("KMS")));
    assert_eq!(rec["sse_key_id"], "key-1");
    let options = server.object(BUCKET, "b/ia").unwrap().options;
    assert_eq!(options.storage_class.as_deref(), Some("IA"));
    assert_eq!((options.sse.as_deref(), options.sse_key_id.as_deref()), (Some("KMS"), Some("key-1")));
    assert_fails_with(&put(&server, "b/x", b"x", &["--storage-class", "Cold"]), 2, "storage class");
    assert_fails_with(&put(&server, "b/x", b"x", &["--sse-key-id", "k"]), 2, "--sse KMS");

    // Config keys, for a simple put; no options: no fields in the record.
    let dir = temp_dir();
    let config = dir.path().join("mb.conf");
    std::fs::write(&config, "storage_class = Archive\nsse = AES256\n").unwrap();
    let output = put(&server, "b/archived", &input[..1000], &["--config", config.to_str().unwrap()]);
    assert_ok(&output);
    assert_eq!(record(&output)["storage_class"], "Archive");
    let options = server.object(BUCKET, "b/archived").unwrap().options;
    assert_eq!((options.storage_class.as_deref(), options.sse.as_deref()), (Some("Archive"), Some("AES256")));
    assert!(record(&put(&server, "b/plain", b"p", &[]))["storage_class"].is_null());

    // An archived object: one clear line, then --restore waits and reads.
    let output = get(&server, &["--key", "b/archived"]);
    assert_fails_with(&output, 1, "not restored (InvalidObjectState): run `mb-oss-get --restore");
    assert_eq!(stderr_of(&output).lines().count(), 1);
    let mut c = cmd(&server, "mb-oss-get", &["--key", "b/archived", "--restore"]);
    c.env("MB_RESTORE_POLL_SECS", "0.01");
    let output = run_with_input(&mut c, b"");
    assert_ok(&output);
    assert!(output.stdout == input[..1000]);
    assert!(stderr_of(&output).contains("restore of \"b/archived\""), "{}", stderr_of(&output));
    assert!(server.requests().iter().any(|r| r.starts_with("POST /backups/b/archived?restore")));
}

#[test]
fn legal_odd_keys_work_and_usage_errors_exit_2() {
    let server = server();
    for key in ["b/a//b", "b/dir/", "b/x/../y", "b/./z"] {
        assert_ok(&put(&server, key, key.as_bytes(), &[]));
        assert_eq!(server.object(BUCKET, key).unwrap().data.as_slice(), key.as_bytes());
        let output = get(&server, &["--key", key]);
        assert_ok(&output);
        assert_eq!(output.stdout, key.as_bytes());
    }
    assert_fails_with(&put(&server, "/abs", b"x", &[]), 2, "bad object key");
    assert_fails_with(&get(&server, &["--key", "/abs"]), 2, "bad object key");
    // A bad bucket name fails before stdin is read: stdin stays open here.
    let mut c = cmd(&server, "mb-oss-put", &["--key", "b/x", "--bucket", "Bad_Bucket"]);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    wait_for("mb-oss-put to exit without reading stdin", || child.try_wait().unwrap().is_some());
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_fails_with(&output, 2, "bad bucket name");
}
