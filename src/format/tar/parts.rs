//! Cuts an `mb-tar/1` stream into its raw entries, each with the part of the
//! stream it belongs to, without changing a byte: what `mb-pack --seekable`
//! needs to start a new block where a collection's entries begin.
//!
//! Only the framing is read here (headers, sizes, PAX paths, names); the
//! chunks' checksums and documents are `read.rs`'s business when restoring.

use std::io::Read;

use anyhow::Result;

use super::EntryName;
use crate::cli::{integrity, io::read_full};
use crate::format::block_index::Part;

/// Largest entry accepted (as `read.rs`): a bound on memory whatever the input says.
const MAX_ENTRY: u64 = 256 << 20;
const BLOCK: usize = 512;

/// One entry's raw bytes: its PAX header if any, its header, its data and padding.
pub(crate) struct RawEntry {
    /// The bytes, exactly as read.
    pub(crate) bytes: Vec<u8>,
    /// Its part; `None` for a zero block (an archive's end), which belongs to
    /// whatever part came before.
    pub(crate) part: Option<Part>,
}

/// Reads raw entries from a tar stream of mb's layout.
pub(crate) struct PartReader<R> {
    input: R,
    cut_short: bool,
}

impl<R: Read> PartReader<R> {
    pub(crate) fn new(input: R) -> Self {
        PartReader { input, cut_short: false }
    }

    /// Whether the input ended inside an entry: its last bytes came back
    /// as an entry of no part. The stage that wrote it says why; a reader
    /// of the stream refuses it.
    pub(crate) fn cut_short(&self) -> bool {
        self.cut_short
    }

    /// The next entry, or `None` at the end of the input.
    pub(crate) fn next_entry(&mut self) -> Result<Option<RawEntry>> {
        if self.cut_short {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        let mut pax_path = None;
        loop {
            let start = bytes.len();
            bytes.resize(start + BLOCK, 0);
            let n = read_full(&mut self.input, &mut bytes[start..]).map_err(not_mb_tar_io)?;
            if n == 0 && start == 0 {
                return Ok(None);
            }
            if n < BLOCK {
                return Ok(Some(self.rest(bytes, start + n)));
            }
            let header: [u8; BLOCK] = bytes[start..].try_into().expect("one block");
            if header.iter().all(|&b| b == 0) {
                if start > 0 {
                    return Err(not_mb_tar("a PAX header is followed by the end of the archive"));
                }
                return Ok(Some(RawEntry { bytes, part: None }));
            }
            check_header_sum(&header)?;
            let size = parse_size(&header[124..136])?;
            if size > MAX_ENTRY {
                return Err(not_mb_tar(&format!("an entry of {size} bytes is more than any mb stream writes")));
            }
            let data_start = bytes.len();
            bytes.resize(data_start + (size as usize).div_ceil(BLOCK) * BLOCK, 0);
            let got = read_full(&mut self.input, &mut bytes[data_start..]).map_err(not_mb_tar_io)?;
            if got < bytes.len() - data_start {
                return Ok(Some(self.rest(bytes, data_start + got)));
            }
            match header[156] {
                b'x' => pax_path = pax_record(&bytes[data_start..data_start + size as usize], "path"),
                b'0' | 0 => {
                    let name = pax_path.take().unwrap_or_else(|| ustar_name(&header));
                    let entry = EntryName::parse(&name).map_err(|e| integrity(format!("not an mb-tar stream: {e}")))?;
                    return Ok(Some(RawEntry { bytes, part: Some(part_of(entry)) }));
                }
                other => return Err(not_mb_tar(&format!("it holds a tar entry of type {:?}", other as char))),
            }
        }
    }
}

impl<R> PartReader<R> {
    /// The bytes of an entry the input ended inside, as read.
    fn rest(&mut self, mut bytes: Vec<u8>, len: usize) -> RawEntry {
        self.cut_short = true;
        bytes.truncate(len);
        RawEntry { bytes, part: None }
    }
}

/// The part an entry belongs to.
fn part_of(entry: EntryName) -> Part {
    match entry {
        EntryName::Header => Part::Header,
        EntryName::Manifest => Part::Manifest,
        EntryName::Metadata { db, coll } | EntryName::Chunk { db, coll, .. } => Part::Collection { db, coll },
        EntryName::Oplog { .. } => Part::Oplog,
    }
}

fn not_mb_tar(why: &str) -> anyhow::Error {
    integrity(format!("not an mb-tar stream: {why}"))
}

fn not_mb_tar_io(err: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(err).context("reading the tar stream")
}

/// The header checksum: the sum of its bytes, the checksum field counted as spaces.
fn check_header_sum(header: &[u8; BLOCK]) -> Result<()> {
    let stored = parse_octal(&header[148..156]).ok_or_else(|| not_mb_tar("a tar header has no checksum"))?;
    let sum: u64 =
        header.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) }).sum();
    if sum != stored {
        return Err(not_mb_tar("a tar header's checksum does not match"));
    }
    Ok(())
}

/// A size field: octal digits, or base-256 when its first bit is set.
fn parse_size(field: &[u8]) -> Result<u64> {
    if field[0] & 0x80 != 0 {
        let mut value = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value.checked_mul(256).ok_or_else(|| not_mb_tar("a tar size overflows"))? | u64::from(b);
        }
        return Ok(value);
    }
    parse_octal(field).ok_or_else(|| not_mb_tar("a tar header has a bad size"))
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?.trim_matches(|c: char| c == ' ' || c == '\0');
    u64::from_str_radix(text, 8).ok()
}

/// The ustar name: `prefix/name` when a prefix is set.
fn ustar_name(header: &[u8; BLOCK]) -> String {
    let field = |range: std::ops::Range<usize>| {
        let bytes = &header[range];
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    };
    let name = field(0..100);
    let prefix = if &header[257..262] == b"ustar" { field(345..500) } else { String::new() };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// A record's value in a PAX extended header (`LEN key=value\n` records).
fn pax_record(mut data: &[u8], key: &str) -> Option<String> {
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        let record = data.get(space + 1..len)?.strip_suffix(b"\n")?;
        let text = std::str::from_utf8(record).ok()?;
        if let Some(value) = text.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')) {
            return Some(value.to_string());
        }
        data = &data[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tar::{Entry, TarWriter};

    #[test]
    fn entries_come_back_byte_for_byte_with_their_parts() {
        let long = "c".repeat(150);
        let mut writer = TarWriter::new(Vec::new(), 0);
        for (path, pax) in [
            ("mb-header.json", vec![]),
            ("shop/orders.metadata.json", vec![("MB.crc64", "1".to_string())]),
            (&*format!("shop/{long}.bson.000001"), vec![("MB.crc64", "2".into()), ("MB.docs", "0".into())]),
            ("oplog.bson.000001", vec![]),
            ("mb-manifest.json", vec![]),
        ] {
            writer.append(&Entry { path: path.to_string(), data: vec![b'x'; 700], pax }).unwrap();
        }
        let bytes = writer.finish().unwrap();
        let mut reader = PartReader::new(&bytes[..]);
        let mut parts = Vec::new();
        let mut joined = Vec::new();
        while let Some(entry) = reader.next_entry().unwrap() {
            joined.extend_from_slice(&entry.bytes);
            parts.push(entry.part);
        }
        assert_eq!(joined, bytes, "not a byte is changed or lost");
        let coll = |c: &str| Some(Part::Collection { db: "shop".into(), coll: c.into() });
        assert_eq!(
            parts[..5],
            [Some(Part::Header), coll("orders"), coll(&long), Some(Part::Oplog), Some(Part::Manifest)]
        );
        assert!(parts[5..].iter().all(Option::is_none), "the end's zero blocks belong to no part");
    }

    #[test]
    fn an_input_cut_short_comes_back_as_read() {
        let mut writer = TarWriter::new(Vec::new(), 0);
        writer.append(&Entry { path: "mb-header.json".into(), data: vec![b'x'; 700], pax: vec![] }).unwrap();
        let bytes = writer.finish().unwrap();
        for cut in [100, 512, 900] {
            let mut reader = PartReader::new(&bytes[..cut]);
            let entry = reader.next_entry().unwrap().unwrap();
            assert_eq!((entry.bytes.as_slice(), entry.part), (&bytes[..cut], None));
            assert!(reader.cut_short() && reader.next_entry().unwrap().is_none());
        }
    }

    #[test]
    fn other_input_is_refused() {
        for bad in [&[b'h'; 512][..], &[1u8; 512][..]] {
            let err = PartReader::new(bad).next_entry().err().unwrap();
            assert!(err.to_string().starts_with("not an mb-tar stream"), "{err}");
        }
    }
}
