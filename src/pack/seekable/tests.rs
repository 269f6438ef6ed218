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

fn options(codec: Codec, threads: usize) -> SeekableOptions {
    let level = if codec == Codec::Zstd { 3 } else { 6 };
    SeekableOptions { codec, level, threads, input_name: "in".into(), output_name: "out".into() }
}

fn pack_with(codec: Codec, input: &[u8], threads: usize) -> Vec<u8> {
    let mut out = Vec::new();
    compress_seekable(Box::new(std::io::Cursor::new(input.to_vec())), &mut out, &options(codec, threads)).unwrap();
    out
}

fn pack(input: &[u8], threads: usize) -> Vec<u8> {
    pack_with(Codec::Zstd, input, threads)
}

fn unpack(input: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let opts = DecompressOptions { threaded: false, input_name: "in".into(), output_name: "out".into() };
    decompress(Box::new(std::io::Cursor::new(input.to_vec())), &mut out, &opts)?;
    Ok(out)
}

fn footer_of(object: &[u8]) -> Footer {
    Footer::parse(&object[object.len().saturating_sub(MAX_FOOTER_LEN as usize)..]).expect("a footer")
}

fn index_of(object: &[u8]) -> BlockIndex {
    let footer = footer_of(object);
    read_index(&object[footer.index_offset as usize..object.len() - footer.len as usize], &footer).unwrap()
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
fn gzip_readers_read_a_seekable_gzip_object_whole() {
    let input = stream();
    let object = pack_with(Codec::Gzip, &input, 3);
    assert_eq!(object, pack_with(Codec::Gzip, &input, 1), "the bytes do not depend on the threads");
    let mut whole = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&object[..]), &mut whole).unwrap();
    assert_eq!(whole, input, "flate2 reads every member, the trailer's empty ones too");
    assert_eq!(unpack(&object).unwrap(), input, "so does mb-pack -d");
    assert_eq!(footer_of(&object).codec, Codec::Gzip);
    assert_eq!(index_of(&object).codec, "gzip");
}

#[test]
fn one_collections_blocks_decode_to_its_entries_and_nothing_else() {
    for codec in [Codec::Zstd, Codec::Gzip] {
        let input = stream();
        let object = pack_with(codec, &input, 2);
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
}

#[test]
fn a_damaged_index_or_footer_is_refused_or_ignored() {
    for codec in [Codec::Zstd, Codec::Gzip] {
        let object = pack_with(codec, &stream(), 2);
        let footer = footer_of(&object);
        let tail = object.len() - footer.len as usize;
        let mut frame = object[footer.index_offset as usize..tail].to_vec();
        let inside = frame.len() / 2;
        frame[inside] ^= 1;
        assert!(read_index(&frame, &footer).is_err(), "a changed byte fails the CRC-64");
        assert_eq!(Footer::parse(&object[..object.len() - 1]), None);
    }
    assert_eq!(Footer::parse(b"short"), None);
}

#[test]
fn non_ascii_names_stay_in_the_gzip_comment_as_ascii() {
    let mut writer = TarWriter::new(Vec::new(), 0);
    for path in ["mb-header.json", "shop/%E8%AE%A2%E5%8D%95.metadata.json", "mb-manifest.json"] {
        writer.append(&Entry { path: path.into(), data: vec![1; 10], pax: vec![] }).unwrap();
    }
    let object = pack_with(Codec::Gzip, &writer.finish().unwrap(), 1);
    let footer = footer_of(&object);
    let comment = &object[footer.index_offset as usize + 10..object.len() - footer.len as usize - 11];
    assert!(comment.is_ascii(), "{}", String::from_utf8_lossy(comment));
    let parts: Vec<Part> = index_of(&object).blocks.into_iter().map(|b| b.part).collect();
    assert_eq!(parts[1], Part::Collection { db: "shop".into(), coll: "订单".into() });
}

#[test]
fn input_that_is_not_an_mb_tar_stream_is_refused() {
    let mut out = Vec::new();
    let err = compress_seekable(Box::new(&[b'x'; 1024][..]), &mut out, &options(Codec::Zstd, 2)).unwrap_err();
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
