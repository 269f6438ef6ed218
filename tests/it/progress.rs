//! Progress on stderr: the long stages print a line per interval with the
//! numbers a user checks (documents per collection, bytes in and out), a
//! last line at the end; `-q` and runs shorter than the interval print none;
//! on a terminal, a live line redrawn in place by one stage at a time, and
//! the terminal left on a fresh line. The inputs are fed slowly (throttled),
//! not made big, so each run lasts a few intervals of 100 ms.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mongodb::bson::{doc, Document};

use crate::oss_stages::{cmd, record, server};
use crate::support::mongod::{block_on, Mongod};
use crate::support::{assert_ok, bin, pseudo_random, stage, stderr_of, temp_dir};

/// Runs `cmd` with `input` written `piece` bytes at a time, `pause` apart.
fn run_throttled(cmd: &mut Command, input: &[u8], piece: usize, pause: Duration) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn stage");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        for block in input.chunks(piece) {
            if stdin.write_all(block).is_err() {
                return;
            }
            std::thread::sleep(pause);
        }
    });
    let output = child.wait_with_output().expect("wait for stage");
    writer.join().unwrap();
    output
}

/// Runs `cmd`, reading its stdout `piece` bytes at a time, `pause` apart.
fn read_slowly(cmd: &mut Command, piece: usize, pause: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        stderr.read_to_end(&mut text).unwrap();
        text
    });
    let mut stdout = child.stdout.take().unwrap();
    let (mut out, mut buf) = (Vec::new(), vec![0u8; piece]);
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        std::thread::sleep(pause);
    }
    Output { status: child.wait().unwrap(), stdout: out, stderr: errors.join().unwrap() }
}

/// The stage's progress lines (`prog: <elapsed>: ...` and its last line).
fn progress_lines(stderr: &str, prog: &str) -> Vec<String> {
    let prefix = format!("{prog}: ");
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter(|rest| {
            rest.starts_with("done in ")
                || rest.split_once(": ").is_some_and(|(clock, _)| clock.ends_with('s') && !clock.contains(' '))
        })
        .map(str::to_string)
        .collect()
}

/// The progress lines' way of writing a size.
fn size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < 3 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", ["KiB", "MiB", "GiB", "TiB"][unit])
}

/// What the last line that names `ns` says of it: `N documents[ SIZE]`.
fn last_mention(lines: &[String], ns: &str) -> String {
    let needle = format!("; {ns} ");
    let line =
        lines.iter().rev().find(|l| l.contains(&needle)).unwrap_or_else(|| panic!("{ns} never named: {lines:#?}"));
    let rest = &line[line.find(&needle).unwrap() + needle.len()..];
    rest.split(';').next().unwrap().trim_end_matches(" done").to_string()
}

#[test]
fn pack_reports_bytes_in_and_out_then_a_last_line_both_ways() {
    // 1 MiB fed over about a second: several 100 ms intervals.
    let plain: Vec<u8> = pseudo_random(512 << 10, 7).iter().flat_map(|b| [*b, b'a']).collect();
    let packed =
        run_throttled(stage("mb-pack").args(["--progress", "100ms"]), &plain, 64 << 10, Duration::from_millis(60));
    assert_ok(&packed);
    let lines = progress_lines(&stderr_of(&packed), "mb-pack");
    assert!(lines.len() >= 3, "a line per interval, then a last one: {lines:#?}");
    assert!(lines[0].contains(" in, ") && lines[0].ends_with("/s"), "{lines:#?}");
    let last = lines.last().unwrap();
    let expect = format!("{} in, {} out (", size(plain.len() as u64), size(packed.stdout.len() as u64));
    assert!(last.starts_with("done in ") && last.contains(&expect), "{last:?} lacks {expect:?}");

    let unpacked = run_throttled(
        stage("mb-pack").args(["-d", "--progress", "100ms"]),
        &packed.stdout,
        8 << 10,
        Duration::from_millis(50),
    );
    assert_ok(&unpacked);
    assert_eq!(unpacked.stdout, plain);
    let lines = progress_lines(&stderr_of(&unpacked), "mb-pack");
    let last = lines.last().unwrap_or_else(|| panic!("no progress from mb-pack -d: {}", stderr_of(&unpacked)));
    let expect = format!("{} in, {} out (", size(packed.stdout.len() as u64), size(plain.len() as u64));
    assert!(last.starts_with("done in ") && last.contains(&expect), "{last:?} lacks {expect:?}");
}

#[test]
fn quiet_or_short_runs_print_no_progress() {
    let input = pseudo_random(256 << 10, 3);
    let slow = |cmd: &mut Command| run_throttled(cmd, &input, 32 << 10, Duration::from_millis(60));
    // -q with the interval from the environment: nothing.
    let quiet = slow(stage("mb-pack").arg("-q").env("MB_PROGRESS", "100ms"));
    assert_ok(&quiet);
    assert_eq!(stderr_of(&quiet), "", "-q prints no progress");
    // A run shorter than the interval (the default 30 s): nothing.
    let short = slow(&mut stage("mb-pack"));
    assert_ok(&short);
    assert_eq!(stderr_of(&short), "", "a run shorter than the interval prints nothing");
    // --progress on the command line asks for it even with -q (the scripts do).
    let asked = slow(stage("mb-pack").args(["-q", "--progress", "100ms"]));
    assert_ok(&asked);
    assert!(progress_lines(&stderr_of(&asked), "mb-pack").len() >= 2, "{}", stderr_of(&asked));
    // A bad interval is a usage error.
    let bad = stage("mb-pack").env("MB_PROGRESS", "soon").stdin(Stdio::null()).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr_of(&bad));
    assert!(stderr_of(&bad).starts_with("mb-pack: MB_PROGRESS: bad interval"), "{}", stderr_of(&bad));
}

#[test]
fn dump_and_apply_report_documents_per_collection_then_oplog_entries() {
    let server = Mongod::shared_replica_set();
    let client = server.client();
    let filler = "x".repeat(400);
    block_on(async {
        let db = client.database("progress_dump");
        db.drop().await.unwrap();
        for (name, count) in [("orders", 3000), ("customers", 1200), ("events", 1)] {
            let docs: Vec<Document> = (0..count).map(|i| doc! {"_id": i, "note": &filler}).collect();
            db.collection::<Document>(name).insert_many(docs).await.unwrap();
        }
    });
    // Writes during the dump: the oplog it carries, which mb-apply replays.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, events) = (stop.clone(), client.database("progress_dump").collection::<Document>("events"));
        std::thread::spawn(move || {
            block_on(async {
                let mut n = 1;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    events.insert_one(doc! {"_id": n}).await.unwrap();
                    n += 1;
                }
            })
        })
    };
    let dir = temp_dir();
    let manifest_path = dir.path().join("manifest.json");
    // The dump goes only as fast as its reader: 32 KiB every 20 ms.
    let dump = read_slowly(
        stage("mb-dump")
            .args(["--uri", &server.uri(), "--db", "progress_dump", "--chunk-size", "64KiB", "--progress", "100ms"])
            .arg("--manifest")
            .arg(&manifest_path),
        32 << 10,
        Duration::from_millis(20),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_ok(&dump);
    let (stderr, stream) = (stderr_of(&dump), dump.stdout);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let lines = progress_lines(&stderr, "mb-dump");
    assert!(lines.len() >= 2, "{stderr}");
    let mut total = 0;
    let mut counts = Vec::new();
    for collection in manifest["collections"].as_array().unwrap() {
        let ns = format!("progress_dump.{}", collection["name"].as_str().unwrap());
        let (docs, bytes) = (collection["docs"].as_u64().unwrap(), collection["bytes"].as_u64().unwrap());
        assert_eq!(last_mention(&lines, &ns), format!("{docs} documents {}", size(bytes)), "{stderr}");
        total += docs;
        counts.push((ns, docs));
    }
    assert_eq!(counts.len(), 3);
    let entries = manifest["oplog"]["count"].as_u64().unwrap();
    assert!(entries > 0, "the writer's inserts are in the dump's oplog");
    let last = lines.last().unwrap();
    assert!(last.starts_with("done in ") && last.contains(&format!(" {total} documents, ")), "{stderr}");
    assert!(last.contains(&format!("; oplog {entries} entries ")), "{stderr}");

    // Restored under another name, from a stream fed slowly.
    let apply = run_throttled(
        stage("mb-apply").args(["--uri", &server.uri(), "--drop", "--progress", "100ms"]).args([
            "--ns-from",
            "progress_dump.$c$",
            "--ns-to",
            "progress_copy.$c$",
        ]),
        &stream,
        64 << 10,
        Duration::from_millis(40),
    );
    assert_ok(&apply);
    let stderr = stderr_of(&apply);
    let lines = progress_lines(&stderr, "mb-apply");
    assert!(lines.len() >= 2, "{stderr}");
    for (ns, docs) in &counts {
        assert_eq!(last_mention(&lines, ns), format!("{docs} documents"), "{stderr}");
    }
    let last = lines.last().unwrap();
    assert!(last.contains(&format!(" {total} documents restored; oplog {entries} entries replayed")), "{stderr}");
}

#[test]
fn oss_put_and_get_report_bytes_and_parts() {
    let server = server();
    let data = pseudo_random(1 << 20, 5);
    let put = run_throttled(
        &mut cmd(&server, "mb-oss-put", &["--key", "progress/k", "--part-size", "100KiB", "--progress", "100ms"]),
        &data,
        64 << 10,
        Duration::from_millis(60),
    );
    assert_ok(&put);
    let parts = record(&put)["parts"].as_u64().unwrap();
    assert!(parts > 5, "a multipart upload: {parts} part(s)");
    let lines = progress_lines(&stderr_of(&put), "mb-oss-put");
    assert!(lines.len() >= 3, "{}", stderr_of(&put));
    let last = lines.last().unwrap();
    let expect = "1.0 MiB read, ";
    assert!(last.starts_with("done in ") && last.contains(expect), "{last:?} lacks {expect:?}");
    assert!(last.ends_with(&format!("; 1.0 MiB sent in {parts} part(s)")), "{last:?}");

    // Read back as slowly as its reader takes it.
    let get = read_slowly(
        &mut cmd(&server, "mb-oss-get", &["--key", "progress/k", "--progress", "100ms"]),
        32 << 10,
        Duration::from_millis(30),
    );
    assert_ok(&get);
    assert_eq!(get.stdout, data);
    let lines = progress_lines(&stderr_of(&get), "mb-oss-get");
    assert!(lines.len() >= 3, "{}", stderr_of(&get));
    assert!(lines[0].contains(" of 1.0 MiB ("), "{lines:#?}");
    assert!(lines.last().unwrap().contains(": 1.0 MiB of 1.0 MiB (100.0%), "), "{lines:#?}");
}

/// Runs `shell` with stderr on a pseudo-terminal (python3's `pty`), stdin
/// fed slowly; returns what the terminal received. None without python3.
fn on_a_terminal(shell: &str, input: &[u8]) -> Option<Vec<u8>> {
    const DRIVER: &str = r#"
import os, pty, subprocess, sys, threading, time
master, slave = pty.openpty()
env = dict(os.environ, TERM="xterm")
child = subprocess.Popen(["bash", "-c", sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=slave, env=env)
os.close(slave)
seen = bytearray()
def drain():
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            return
        if not data:
            return
        seen.extend(data)
reader = threading.Thread(target=drain)
reader.start()
data = sys.stdin.buffer.read()
for i in range(0, len(data), 32768):
    child.stdin.write(data[i:i + 32768])
    child.stdin.flush()
    time.sleep(0.05)
child.stdin.close()
child.wait()
reader.join()
sys.stdout.buffer.write(bytes(seen))
sys.exit(child.returncode)
"#;
    let Ok(mut python) = Command::new("python3")
        .args(["-c", DRIVER, shell])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return None;
    };
    let mut stdin = python.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let output = python.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the pipeline on a terminal failed: {}{:?}",
        stderr_of(&output),
        String::from_utf8_lossy(&output.stdout)
    );
    Some(output.stdout)
}

#[test]
fn a_terminal_gets_one_live_line_redrawn_in_place_and_left_clean() {
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join("bkt")).unwrap();
    // Two stages share the terminal, as in `mb-dump | mb-pack | mb-oss-put`.
    let shell = format!(
        "'{}' --progress 100ms | '{}' -q --progress 100ms --store-dir '{}' --bucket bkt --key k",
        bin("mb-pack").display(),
        bin("mb-oss-put").display(),
        dir.path().display()
    );
    let input = pseudo_random(640 << 10, 11);
    let Some(seen) = on_a_terminal(&shell, &input) else {
        eprintln!("!! SKIPPED a_terminal_gets_one_live_line...: python3 is not installed (its pty module runs the stages on a terminal)");
        return;
    };
    let text = String::from_utf8_lossy(&seen).into_owned();
    let erase = "\r\x1b[K";
    // Every draw and every erase starts with \r and erase-to-end-of-line.
    let draws: Vec<&str> = text.split(erase).skip(1).collect();
    let drawn: Vec<&&str> = draws.iter().filter(|d| !d.is_empty()).collect();
    assert!(drawn.len() >= 3, "the live line is redrawn in place: {text:?}");
    assert!(drawn.iter().all(|d| !d.contains('\n')), "a live line is never a new line: {text:?}");
    // Whichever stage took the terminal first draws its own line.
    assert!(
        drawn.iter().all(|d| d.starts_with("mb-pack: ") && d.contains(" in, ")
            || d.starts_with("mb-oss-put: ") && d.contains(" read, ")),
        "{text:?}"
    );
    // One stage draws at a time: another takes the line only after an erase.
    for pair in draws.windows(2) {
        let program = |d: &str| d.split(':').next().unwrap_or("").to_string();
        if !pair[0].is_empty() && !pair[1].is_empty() {
            assert_eq!(program(pair[0]), program(pair[1]), "two stages draw over each other: {text:?}");
        }
    }
    // The terminal is left on a fresh line: the last thing written is an erase.
    assert!(text.ends_with(erase), "the live line is not erased at the end: {text:?}");
    assert!(!text.contains("done in"), "a terminal gets no log lines: {text:?}");
}
