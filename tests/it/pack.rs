//! mb-pack: round trips through the real binary, interoperability with the
//! system `gzip`, and exit 3 on every kind of bad gzip input (fixtures in
//! `tests/fixtures/mb-pack/`, made with `gzip -n` and then cut or altered).
//! The zstd codec's cases are in `pack_zstd.rs`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{assert_fails_with, assert_ok, fixture, run_with_input, stage, stderr_of, temp_dir};

/// Small blocks keep multi-block cases fast to test.
const BLOCK: usize = 64 << 10;

/// Deterministic data alternating JSON-ish text and noise, so blocks differ
/// in how well they compress.
pub(crate) fn mixed(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let text = b"{\"_id\": {\"$oid\": \"65f0c0ffee\"}, \"shop\": \"orders\", \"qty\": 3}\n";
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if (i / 7000) % 3 == 2 {
                state as u8
            } else {
                text[i % text.len()]
            }
        })
        .collect()
}

pub(crate) fn pack(args: &[&str], input: &[u8]) -> Vec<u8> {
    let output = run_with_input(stage("mb-pack").args(args), input);
    assert_ok(&output);
    output.stdout
}

/// Compresses as gzip (`--codec gzip` before `args`).
fn pack_gzip(args: &[&str], input: &[u8]) -> Vec<u8> {
    pack(&[&["--codec", "gzip"][..], args].concat(), input)
}

pub(crate) fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn system_gunzip(gz: &[u8]) -> Vec<u8> {
    let output = run_with_input(Command::new("gzip").arg("-dc"), gz);
    assert!(output.status.success(), "gzip -d failed: {}", stderr_of(&output));
    output.stdout
}

#[test]
fn round_trips_sizes_and_thread_counts() {
    let block = BLOCK.to_string();
    let gzip = have("gzip");
    for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 123] {
        let data = mixed(len);
        let mut first: Option<Vec<u8>> = None;
        for threads in ["1", "2", "4"] {
            let gz = pack_gzip(&["-j", threads, "--block-size", &block], &data);
            // The bytes depend on level and block size only, not on threads.
            if let Some(first) = &first {
                assert!(first == &gz, "len {len}: -j {threads} output differs from -j 1");
            }
            first = Some(gz.clone());
            assert!(pack(&["-d", "-j", threads], &gz) == data, "len {len}, -j {threads}");
        }
        if gzip {
            assert!(system_gunzip(first.as_ref().unwrap()) == data, "gzip -d on len {len}");
        }
    }
}

#[test]
fn round_trips_several_mib_with_default_blocks() {
    let mb = 1 << 20;
    let gzip = have("gzip");
    for len in [mb - 1, mb, mb + 1, 5 * mb + 4321] {
        let data = mixed(len);
        for args in [&["-1"][..], &[], &["-9", "-j", "3"], &["-l", "4", "-j", "1"]] {
            let gz = pack_gzip(args, &data);
            assert!(gz.len() < data.len(), "{args:?} did not compress");
            assert!(pack(&["-d"], &gz) == data, "len {len}, {args:?}");
            if gzip {
                assert!(system_gunzip(&gz) == data, "gzip -d on len {len}, {args:?}");
            }
        }
    }
}

#[test]
fn empty_input_compresses_to_a_valid_empty_gzip() {
    let gz = pack_gzip(&[], b"");
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert_eq!(gz.len(), 20);
    assert!(pack(&["-d"], &gz).is_empty());
    if have("gzip") {
        assert!(system_gunzip(&gz).is_empty());
    }
}

#[test]
fn reads_system_gzip_output() {
    let want = std::fs::read(fixture("mb-pack", "good.txt")).unwrap();
    for threads in ["1", "2"] {
        let output =
            run_with_input(stage("mb-pack").args(["-d", "-j", threads]).arg(fixture("mb-pack", "good.gz")), b"");
        assert_ok(&output);
        assert!(output.stdout == want, "-j {threads}");
    }
    if have("gzip") {
        // And a fresh one, bigger than one read chunk, from stdin.
        let data = mixed(3 << 20);
        let gz = run_with_input(Command::new("gzip").arg("-c"), &data);
        assert!(gz.status.success());
        assert!(pack(&["-d"], &gz.stdout) == data);
    }
}

#[test]
fn reads_every_member_of_concatenated_gzip() {
    let gz = std::fs::read(fixture("mb-pack", "two.gz")).unwrap();
    let want = std::fs::read(fixture("mb-pack", "two.txt")).unwrap();
    assert!(pack(&["-d"], &gz) == want);
    // Our own output concatenated, as `cat a.gz b.gz` would make it.
    let (a, b) = (mixed(200_000), mixed(70_000));
    let mut both = pack_gzip(&["--block-size", "64K"], &a);
    both.extend(pack_gzip(&[], &b));
    let mut want = a;
    want.extend(b);
    assert!(pack(&["-d", "-j", "1"], &both) == want);
    assert!(pack(&["-d"], &both) == want);
}

#[test]
fn bad_inputs_exit_3() {
    let cases = [
        ("truncated.gz", "input is truncated (gzip stream ended early)"),
        ("truncated-trailer.gz", "input is truncated (gzip stream ended early)"),
        ("corrupt-crc.gz", "input is corrupt (CRC-32 mismatch in gzip member 1"),
        ("corrupt-data.gz", "input is corrupt"),
        ("not-gzip.txt", "input is not gzip"),
        ("trailing-garbage.gz", "input has trailing data after the last gzip member (at byte 5003)"),
        ("empty", "input is empty"),
    ];
    for (name, needle) in cases {
        let bytes = std::fs::read(fixture("mb-pack", name)).unwrap();
        for threads in ["1", "2"] {
            let output = run_with_input(stage("mb-pack").args(["-d", "-j", threads]), &bytes);
            assert_fails_with(&output, 3, &format!("mb-pack: decompressing stdin: {needle}"));
        }
        let output = run_with_input(stage("mb-pack").arg("-d").arg(fixture("mb-pack", name)), b"");
        assert_fails_with(&output, 3, needle);
    }
}

#[test]
fn cut_anywhere_is_never_success() {
    let gz = pack_gzip(&["--block-size", "64K"], &mixed(300_000));
    for cut in [1, 2, 9, 10, 11, gz.len() / 3, gz.len() / 2, gz.len() - 9, gz.len() - 8, gz.len() - 1] {
        let output = run_with_input(stage("mb-pack").arg("-d"), &gz[..cut]);
        assert_fails_with(&output, 3, "input is truncated");
    }
}

#[test]
fn every_flipped_header_and_trailer_byte_is_caught() {
    let gz = pack_gzip(&[], &mixed(100_000));
    // Byte 3 (FLG) set to FEXTRA/FNAME etc. may parse as a different header;
    // whatever the byte, the result must not be success.
    for at in (0..10).chain(gz.len() - 8..gz.len()) {
        let mut bad = gz.clone();
        bad[at] ^= 0x41;
        let output = run_with_input(stage("mb-pack").arg("-d"), &bad);
        if (4..10).contains(&at) {
            // MTIME, XFL and OS are informational; gzip ignores them too.
            assert_ok(&output);
        } else {
            assert_eq!(output.status.code(), Some(3), "byte {at}: {}", stderr_of(&output));
        }
    }
}

#[test]
fn files_in_and_out() {
    let dir = temp_dir();
    let plain = dir.path().join("plain");
    let gz = dir.path().join("plain.gz");
    let back = dir.path().join("back");
    let data = mixed(150_000);
    std::fs::write(&plain, &data).unwrap();
    assert_ok(&stage("mb-pack").arg(&plain).arg("-o").arg(&gz).output().unwrap());
    assert_ok(
        &stage("mb-pack")
            .args(["-d", "-"])
            .arg("-o")
            .arg(&back)
            .stdin(std::fs::File::open(&gz).unwrap())
            .output()
            .unwrap(),
    );
    assert!(std::fs::read(&back).unwrap() == data);

    // A failed run leaves no output file that could pass for a good one.
    let out = dir.path().join("partial");
    let output =
        stage("mb-pack").arg("-d").arg(fixture("mb-pack", "truncated.gz")).arg("-o").arg(&out).output().unwrap();
    assert_fails_with(&output, 3, "truncated");
    assert!(!out.exists());

    let output = stage("mb-pack").arg(dir.path().join("missing")).output().unwrap();
    assert_fails_with(&output, 1, "opening");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["-l", "0"][..],
        &["--codec", "gzip", "-l", "10"],
        &["-l", "20"],
        &["-d", "--codec", "zstd"],
        &["-0"],
        &["-j", "0"],
        &["--block-size", "1K"],
        &["-d", "-9"],
        &["--bogus"],
    ] {
        let output = stage("mb-pack").args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr_of(&output));
    }
    let output = stage("mb-pack").arg("--help").output().unwrap();
    assert_ok(&output);
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(help.contains("--block-size") && help.contains("--codec"), "{help}");
}

#[test]
fn closed_pipe_is_a_failure() {
    for args in [&["-j", "2"][..], &["-j", "1"], &["-d"]] {
        let input = if args == ["-d"] { pack(&["-1"], &mixed(8 << 20)) } else { mixed(8 << 20) };
        let mut child = stage("mb-pack")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before mb-pack writes anything.
        drop(child.stdout.take());
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr_of(&output));
    }
}

#[test]
fn full_disk_is_a_failure() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // Not Linux.
    };
    for args in [&["-j", "2"][..], &["-j", "1"], &["-d", "-j", "2"], &["-d", "-j", "1"]] {
        let input = if args[0] == "-d" { pack(&[], &mixed(2 << 20)) } else { mixed(2 << 20) };
        let dir = temp_dir();
        let input_path = dir.path().join("input");
        std::fs::write(&input_path, &input).unwrap();
        let output = stage("mb-pack")
            .args(args)
            .stdin(std::fs::File::open(&input_path).unwrap())
            .stdout(full.try_clone().unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_fails_with(&output, 1, "writing stdout: No space left on device");
    }
}
