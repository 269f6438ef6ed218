//! Unit tests of the decompressor: headers, trailers and member boundaries.

use super::*;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

fn run(gz: &[u8], threaded: bool) -> Result<Vec<u8>> {
    let opts = DecompressOptions { threaded, input_name: "stdin".into(), output_name: "stdout".into() };
    let mut out = Vec::new();
    decompress(Box::new(std::io::Cursor::new(gz.to_vec())), &mut out, &opts)?;
    Ok(out)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::new(6));
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn error_of(gz: &[u8]) -> (u8, String) {
    let err = run(gz, false).unwrap_err();
    let threaded = run(gz, true).unwrap_err();
    assert_eq!(format!("{err:#}"), format!("{threaded:#}"));
    (crate::cli::exit_code_of(&err), format!("{err:#}"))
}

#[test]
fn optional_header_fields_are_skipped() {
    let mut enc = GzBuilder::new()
        .filename("orders.bson")
        .comment("a comment")
        .extra(vec![1, 2, 3, 4])
        .write(Vec::new(), Compression::new(6));
    enc.write_all(b"hello").unwrap();
    let gz = enc.finish().unwrap();
    assert_eq!(run(&gz, false).unwrap(), b"hello");
    assert_eq!(run(&gz, true).unwrap(), b"hello");
}

#[test]
fn header_crc_is_checked() {
    let plain = gzip(b"hello");
    let mut header = plain[..10].to_vec();
    header[3] = 0x02; // FHCRC
    let mut crc = Crc::new();
    crc.update(&header);
    let mut good = header.clone();
    good.extend_from_slice(&(crc.sum() as u16).to_le_bytes());
    good.extend_from_slice(&plain[10..]);
    assert_eq!(run(&good, false).unwrap(), b"hello");
    let mut bad = header;
    bad.extend_from_slice(&(crc.sum() as u16 ^ 1).to_le_bytes());
    bad.extend_from_slice(&plain[10..]);
    assert_eq!(error_of(&bad), (3, "input is corrupt (header CRC mismatch in gzip member 1)".into()));
}

#[test]
fn odd_headers_are_integrity_errors() {
    let mut gz = gzip(b"hello");
    gz[2] = 7;
    assert_eq!(error_of(&gz), (3, "input is corrupt (gzip member 1 uses compression method 7, not deflate)".into()));
    let mut gz = gzip(b"hello");
    gz[3] = 0x20;
    assert_eq!(error_of(&gz), (3, "input is corrupt (gzip member 1 sets reserved header flags)".into()));
    assert_eq!(error_of(&[0x1f]), (3, TRUNCATED.into()));
    assert_eq!(error_of(&gzip(b"hello")[..5]), (3, TRUNCATED.into()));
}

#[test]
fn output_held_back_for_space_is_drained() {
    // 8 MiB of zeros is about 8 KiB of input, all read long before the
    // 1 MiB output buffer has room for what it holds.
    let data = vec![0u8; 8 << 20];
    let gz = gzip(&data);
    assert!(gz.len() < 20 << 10);
    assert!(run(&gz, false).unwrap() == data);
    assert!(run(&gz, true).unwrap() == data);
}

#[test]
fn second_member_and_garbage_after_it() {
    let mut gz = gzip(b"one ");
    gz.extend(gzip(b"two"));
    assert_eq!(run(&gz, true).unwrap(), b"one two");
    let at = gz.len();
    gz.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(error_of(&gz), (3, format!("input has trailing data after the last gzip member (at byte {at})")));
}
