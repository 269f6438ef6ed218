//! mb-pack's zstd codec: the default, round trips, interoperability with the
//! system `zstd`, streams that mix gzip and zstd members, and exit 3 on every
//! kind of bad zstd input (fixtures in `tests/fixtures/mb-pack/*.zst`, made
//! with `zstd -19` from `good.txt`, then cut or altered; `window-too-large.zst`
//! with `zstd --long=30` from a pipe, so its header asks for a 1 GiB window).

use std::process::Command;

use crate::pack::{have, mixed, pack};
use crate::support::{assert_fails_with, assert_ok, fixture, run_with_input, stage, stderr_of};

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[test]
fn zstd_is_the_default_and_round_trips() {
    let zstd = have("zstd");
    for len in [0, 1, 1 << 20, 3 * (1 << 20) + 4321] {
        let data = mixed(len);
        let default = pack(&[], &data);
        assert_eq!(default[..4], ZSTD_MAGIC, "len {len}: the default codec is zstd");
        for args in [&["-j", "1"][..], &["-j", "3"], &["--codec", "zstd", "-l", "3"]] {
            // The bytes depend on the level only, not on the thread count.
            assert!(pack(args, &data) == default, "len {len}: {args:?} differs from the default");
        }
        for threads in ["1", "2"] {
            assert!(pack(&["-d", "-j", threads], &default) == data, "len {len}, -d -j {threads}");
        }
        let small = pack(&["-l", "19"], &data);
        assert!(pack(&["-d"], &small) == data, "len {len}, level 19");
        if zstd && len > 0 {
            let output = run_with_input(Command::new("zstd").args(["-d", "-c"]), &default);
            assert!(output.status.success(), "zstd -d: {}", stderr_of(&output));
            assert!(output.stdout == data, "zstd -d on len {len}");
        }
    }
}

#[test]
fn reads_system_zstd_output() {
    let want = std::fs::read(fixture("mb-pack", "good.txt")).unwrap();
    let output = run_with_input(stage("mb-pack").arg("-d").arg(fixture("mb-pack", "good.zst")), b"");
    assert_ok(&output);
    assert!(output.stdout == want);
    if have("zstd") {
        // Several frames, as `zstd -c a b` or `cat a.zst b.zst` make them.
        let data = mixed(2 << 20);
        let mut frames = run_with_input(Command::new("zstd").args(["-c", "-3"]), &data).stdout;
        frames.extend(run_with_input(Command::new("zstd").args(["-c", "-1", "--no-check"]), &data).stdout);
        assert!(pack(&["-d"], &frames) == [data.clone(), data].concat());
    }
}

#[test]
fn mixed_gzip_and_zstd_members_decompress_in_order() {
    let good = std::fs::read(fixture("mb-pack", "good.txt")).unwrap();
    let fixture_bytes = std::fs::read(fixture("mb-pack", "mixed.gz-zst-gz")).unwrap();
    assert!(pack(&["-d"], &fixture_bytes) == [&good[..], &good, &good].concat());
    // Our own objects of both codecs, as `cat a.tar.zst b.tar.gz c.tar.zst`.
    let (a, b, c) = (mixed(300_000), mixed(70_000), mixed(1));
    let mut stream = pack(&["--codec", "zstd"], &a);
    stream.extend(pack(&["--codec", "gzip", "--block-size", "64K"], &b));
    stream.extend(pack(&[], &c));
    let want = [a, b, c].concat();
    for threads in ["1", "2"] {
        assert!(pack(&["-d", "-j", threads], &stream) == want, "-j {threads}");
    }
    // Cut inside the second member or the third: never a success.
    let first = pack(&[], &mixed(300_000)).len();
    for cut in [first + 1, first + 30, stream.len() - 3] {
        let output = run_with_input(stage("mb-pack").arg("-d"), &stream[..cut]);
        assert_fails_with(&output, 3, "input is truncated");
    }
}

#[test]
fn bad_zstd_inputs_exit_3() {
    let cases = [
        ("truncated.zst", "input is truncated (zstd stream ended early)"),
        ("corrupt-checksum.zst", "input is corrupt (bad zstd data in member 1: Restored data doesn't match checksum)"),
        ("corrupt-data.zst", "input is corrupt (bad zstd data in member 1"),
        ("trailing-garbage.zst", "input has trailing data after the last zstd frame (at byte 3378)"),
        (
            "window-too-large.zst",
            "input is corrupt (bad zstd data in member 1: Frame requires too much memory for decoding)",
        ),
    ];
    for (name, needle) in cases {
        let bytes = std::fs::read(fixture("mb-pack", name)).unwrap();
        for threads in ["1", "2"] {
            let output = run_with_input(stage("mb-pack").args(["-d", "-j", threads]), &bytes);
            assert_fails_with(&output, 3, &format!("mb-pack: decompressing stdin: {needle}"));
        }
    }
    for magic_cut in 1..4 {
        let output = run_with_input(stage("mb-pack").arg("-d"), &ZSTD_MAGIC[..magic_cut]);
        assert_fails_with(&output, 3, "input is truncated (zstd stream ended early)");
    }
}

#[test]
fn cut_anywhere_is_never_success() {
    let zst = pack(&[], &mixed(300_000));
    for cut in [4, 5, 6, zst.len() / 3, zst.len() / 2, zst.len() - 4, zst.len() - 1] {
        let output = run_with_input(stage("mb-pack").arg("-d"), &zst[..cut]);
        assert_fails_with(&output, 3, "input is truncated (zstd stream ended early)");
    }
}
