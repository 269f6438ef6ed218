//! Seekable objects: standard readers read them whole, and the blocks of one
//! collection alone decode to exactly its entries.

use super::*;
use crate::format::tar::{Entry, TarWriter};
use crate::pack::{decompress, DecompressOptions};

/// A stream with interleaved collections, one spanning several blocks, and an end.
fn stream() -> Vec<u8> {
    let mut writer = TarWriter::new(Vec::new(), 0);
    let mut add = |path: &str, len: usize, seed: u8| {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed) ^ (i / 97) as u8).collect();
        writer.append(&Entry { path: path.into(), data, pax: vec![] }).unwrap();
    };
    add("mb-header.json", 300, 1);
    add("shop/orders.metadata.json", 200, 3);
    add("shop/users.metadata.json", 200, 5);
    add("shop/orders.bson.000001", 5 << 20, 7);
    add("shop/users.bson.000001", 1000, 11);
    add("shop/orders.bson.000002", 5 << 20, 13);
    add("oplog.bson.000001", 4000, 17);
    add("mb-manifest.json", 500, 19);
    writer.finish().unwrap()
}

fn pack(input: &[u8], threads: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let opts = ZstdOptions { level: 3, threads, input_name: "in".into(), output_name: "out".into() };
    compress_seekable(Box::new(std::io::Cursor::new(input.to_vec())), &mut out, &opts).unwrap();
    out
}

fn unpack(input: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let opts = DecompressOptions { threaded: false, input_name: "in".into(), output_name: "out".into() };
    decompress(Box::new(std::io::Cursor::new(input.to_vec())), &mut out, &opts)?;
    Ok(out)
}

fn index_of(object: &[u8]) -> BlockIndex {
    let tail = &object[object.len() - FOOTER_LEN as usize..];
    let footer = Footer::parse(tail).expect("a footer");
    read_index(&object[footer.index_offset as usize..object.len() - FOOTER_LEN as usize], &footer).unwrap()
}

#[test]
fn standard_readers_read_a_seekable_object_whole() {
    let input = stream();
    let object = pack(&input, 3);
    assert_eq!(object, pack(&input, 1), "the bytes do not depend on the threads");
    assert_eq!(zstd::stream::decode_all(&object[..]).unwrap(), input, "libzstd skips the trailer");
    assert_eq!(unpack(&object).unwrap(), input, "so does mb-pack -d");
}

#[test]
fn one_collections_blocks_decode_to_its_entries_and_nothing_else() {
    let input = stream();
    let object = pack(&input, 2);
    let index = index_of(&object);
    let orders = Part::Collection { db: "shop".into(), coll: "orders".into() };
    let parts: Vec<&Part> = index.blocks.iter().map(|b| &b.part).collect();
    assert_eq!(parts.first(), Some(&&Part::Header));
    assert_eq!(parts.last(), Some(&&Part::Manifest));
    assert_eq!(parts.iter().filter(|p| ***p == orders).count(), 3, "{parts:?}");
    let mut selected = Vec::new();
    let mut raw = Vec::new();
    let mut at = 0u64;
    for block in &index.blocks {
        let frame = &object[block.offset as usize..(block.offset + block.len) as usize];
        assert_eq!(crate::crc64::checksum(frame), block.crc64);
        if block.part == Part::Header || block.part == orders {
            selected.extend_from_slice(frame);
            raw.extend_from_slice(&input[at as usize..(at + block.raw) as usize]);
        }
        at += block.raw;
    }
    assert_eq!(at, input.len() as u64, "the blocks cover the whole stream");
    assert_eq!(unpack(&selected).unwrap(), raw);
    assert!(selected.len() < object.len());
}

#[test]
fn a_damaged_index_or_footer_is_refused_or_ignored() {
    let object = pack(&stream(), 2);
    let tail = object.len() - FOOTER_LEN as usize;
    let footer = Footer::parse(&object[tail..]).unwrap();
    let mut frame = object[footer.index_offset as usize..tail].to_vec();
    let last = frame.len() - 2;
    frame[last] ^= 1;
    assert!(read_index(&frame, &footer).is_err(), "a changed byte fails the CRC-64");
    assert_eq!(Footer::parse(&object[tail - 1..object.len() - 1]), None);
    assert_eq!(Footer::parse(b"short"), None);
}

#[test]
fn input_that_is_not_an_mb_tar_stream_is_refused() {
    let mut out = Vec::new();
    let opts = ZstdOptions { level: 3, threads: 2, input_name: "in".into(), output_name: "out".into() };
    let err = compress_seekable(Box::new(&[b'x'; 1024][..]), &mut out, &opts).unwrap_err();
    assert!(format!("{err:#}").contains("not an mb-tar stream"), "{err:#}");
    assert_eq!(crate::cli::exit_code_of(&err), crate::cli::EXIT_INTEGRITY);
}

#[test]
fn empty_and_cut_short_inputs_are_compressed_as_they_came() {
    let input = stream();
    for cut in [0, 100, 3000, input.len() - 700] {
        let object = pack(&input[..cut], 2);
        assert_eq!(unpack(&object).unwrap(), &input[..cut], "cut at {cut}");
        assert!(index_of(&object).blocks.iter().all(|b| b.len > 0));
    }
}
