//! The tar stream layout of `docs/FORMAT.md`: entry names, chunk entries with
//! their PAX checksums, and a writer thread that owns stdout.
//!
//! A collection is carried as numbered chunk entries (`<db>/<coll>.bson.000001`,
//! ...), each at most the chunk size, because a tar entry needs its size up
//! front and a collection may be larger than memory. Each chunk carries its
//! CRC-64 and document count in PAX records, so a reader can check it before
//! it writes a single document of it.

pub(crate) mod bson_check;
pub(crate) mod chunk;
pub(crate) mod parts;
pub(crate) mod read;

use std::io::Write;

use anyhow::{bail, Context, Result};

use crate::format::records::{HEADER_ENTRY, MANIFEST_ENTRY};

/// PAX record with a chunk's CRC-64/XZ, in decimal.
pub(crate) const PAX_CRC64: &str = "MB.crc64";
/// PAX record with the number of BSON documents in a chunk.
pub(crate) const PAX_DOCS: &str = "MB.docs";

/// The file name suffix of data chunks, before the sequence number.
const BSON_SUFFIX: &str = ".bson.";
/// The file name suffix of collection metadata.
const METADATA_SUFFIX: &str = ".metadata.json";
/// The name stem of the oplog's chunks.
pub(crate) const OPLOG_STEM: &str = "oplog";

/// What an entry name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryName {
    /// `mb-header.json`
    Header,
    /// `mb-manifest.json`
    Manifest,
    /// `<db>/<coll>.metadata.json`
    Metadata { db: String, coll: String },
    /// `<db>/<coll>.bson.<seq>`
    Chunk { db: String, coll: String, seq: u64 },
    /// `oplog.bson.<seq>`
    Oplog { seq: u64 },
}

impl EntryName {
    /// Parses an entry path, or fails naming it.
    pub(crate) fn parse(path: &str) -> Result<EntryName> {
        match path {
            HEADER_ENTRY => return Ok(EntryName::Header),
            MANIFEST_ENTRY => return Ok(EntryName::Manifest),
            _ => {}
        }
        if let Some(seq) = path.strip_prefix("oplog.bson.") {
            return Ok(EntryName::Oplog { seq: parse_seq(seq, path)? });
        }
        let Some((db, file)) = path.split_once('/') else {
            bail!("unexpected entry {path:?} in the stream");
        };
        if file.contains('/') || db.is_empty() {
            bail!("unexpected entry {path:?} in the stream");
        }
        let db = unescape(db).with_context(|| format!("bad entry name {path:?}"))?;
        if let Some(coll) = file.strip_suffix(METADATA_SUFFIX) {
            return Ok(EntryName::Metadata {
                db,
                coll: unescape(coll).with_context(|| format!("bad entry name {path:?}"))?,
            });
        }
        if let Some(at) = file.rfind(BSON_SUFFIX) {
            let seq = parse_seq(&file[at + BSON_SUFFIX.len()..], path)?;
            let coll = unescape(&file[..at]).with_context(|| format!("bad entry name {path:?}"))?;
            return Ok(EntryName::Chunk { db, coll, seq });
        }
        bail!("unexpected entry {path:?} in the stream")
    }

    /// The path of this entry in the tar stream.
    pub(crate) fn path(&self) -> String {
        match self {
            EntryName::Header => HEADER_ENTRY.to_string(),
            EntryName::Manifest => MANIFEST_ENTRY.to_string(),
            EntryName::Metadata { db, coll } => format!("{}/{}{METADATA_SUFFIX}", escape(db), escape(coll)),
            EntryName::Chunk { db, coll, seq } => format!("{}/{}{BSON_SUFFIX}{seq:06}", escape(db), escape(coll)),
            EntryName::Oplog { seq } => format!("{OPLOG_STEM}{BSON_SUFFIX}{seq:06}"),
        }
    }
}

fn parse_seq(text: &str, path: &str) -> Result<u64> {
    if text.len() < 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        bail!("bad chunk number in entry {path:?}");
    }
    Ok(text.parse()?)
}

/// Percent-encodes a database or collection name for a file name: every byte
/// except `A-Z a-z 0-9 - _ . ~ $ @ + = ,` becomes `%XX`, as does a leading `.`.
pub(crate) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (index, byte) in name.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric() || b"-_~$@+=,".contains(&byte) || (byte == b'.' && index > 0);
        if plain {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Reverses [`escape`].
pub(crate) fn unescape(name: &str) -> Result<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3).context("truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).context("bad %-escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("name is not UTF-8")
}

/// One entry to write: its name, bytes, and PAX records.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Path in the archive.
    pub path: String,
    /// The entry's bytes.
    pub data: Vec<u8>,
    /// PAX extended records written before it.
    pub pax: Vec<(&'static str, String)>,
}

impl Entry {
    /// A JSON record entry.
    pub(crate) fn json(path: String, value: &impl serde::Serialize) -> Result<Entry> {
        let mut data = serde_json::to_vec_pretty(value)?;
        data.push(b'\n');
        Ok(Entry { path, data, pax: Vec::new() })
    }

    /// A data chunk with its CRC-64 (computed by the caller, who also needs
    /// it for the collection's total) and document count.
    pub(crate) fn chunk(path: String, data: Vec<u8>, docs: u64, crc: u64) -> Entry {
        Entry { path, data, pax: vec![(PAX_CRC64, crc.to_string()), (PAX_DOCS, docs.to_string())] }
    }
}

const BLOCK: usize = 512;
/// The ustar name field's size; longer paths go in a PAX `path` record.
const NAME_FIELD: usize = 100;

/// Writes entries as a POSIX (pax) tar stream; every entry gets the same mtime.
///
/// Headers are built here and data is written straight from the entry's
/// buffer: going through `tar::Builder` copied every byte once more.
pub(crate) struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
}

impl<W: Write> TarWriter<W> {
    /// A writer over `out`.
    pub(crate) fn new(out: W, mtime: u64) -> Self {
        TarWriter { out, mtime }
    }

    /// Appends one entry.
    pub(crate) fn append(&mut self, entry: &Entry) -> Result<()> {
        self.append_inner(entry).with_context(|| format!("writing {}", entry.path))
    }

    fn append_inner(&mut self, entry: &Entry) -> std::io::Result<()> {
        let long = entry.path.len() > NAME_FIELD;
        if !entry.pax.is_empty() || long {
            let mut records = Vec::new();
            if long {
                pax_record(&mut records, "path", &entry.path);
            }
            for (key, value) in &entry.pax {
                pax_record(&mut records, key, value);
            }
            self.write_header("PaxHeader", records.len() as u64, tar::EntryType::XHeader)?;
            self.write_padded(&records)?;
        }
        // A long path is in the PAX record; the name field only has to be valid.
        let name = if long { "mb-long-name" } else { entry.path.as_str() };
        self.write_header(name, entry.data.len() as u64, tar::EntryType::Regular)?;
        self.write_padded(&entry.data)
    }

    fn write_header(&mut self, name: &str, size: u64, kind: tar::EntryType) -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_path(name)?;
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(kind);
        header.set_cksum();
        self.out.write_all(header.as_bytes())
    }

    fn write_padded(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.out.write_all(data)?;
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the output.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK]).context("finishing the tar stream")?;
        Ok(self.out)
    }
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts
/// the whole record including its own digits.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &str) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
}

/// Splits a buffer of concatenated BSON documents into documents, checking
/// every length prefix and terminator; fails naming the offset of a bad one.
pub(crate) fn split_documents(data: &[u8]) -> Result<Vec<&[u8]>> {
    let mut docs = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let Some(len_bytes) = data.get(at..at + 4) else {
            bail!("bad BSON at byte {at}: {} trailing bytes are not a document", data.len() - at);
        };
        let len = i32::from_le_bytes(len_bytes.try_into().unwrap());
        if len < 5 || at + len as usize > data.len() {
            bail!("bad BSON at byte {at}: document length {len} does not fit the {} bytes left", data.len() - at);
        }
        let doc = &data[at..at + len as usize];
        if doc[doc.len() - 1] != 0 {
            bail!("bad BSON at byte {at}: document does not end with a NUL byte");
        }
        docs.push(doc);
        at += len as usize;
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            EntryName::Header,
            EntryName::Manifest,
            EntryName::Metadata { db: "shop".into(), coll: "orders".into() },
            EntryName::Chunk { db: "shop".into(), coll: "a/b c.bson.000001%".into(), seq: 7 },
            EntryName::Chunk { db: "shop".into(), coll: ".hidden".into(), seq: 1_000_000 },
            EntryName::Chunk { db: "shop".into(), coll: "x.metadata".into(), seq: 1 },
            EntryName::Oplog { seq: 3 },
        ] {
            assert_eq!(EntryName::parse(&name.path()).unwrap(), name, "{}", name.path());
        }
        assert_eq!(
            EntryName::Chunk { db: "shop".into(), coll: "orders".into(), seq: 1 }.path(),
            "shop/orders.bson.000001"
        );
    }

    #[test]
    fn rejects_unknown_entries() {
        for path in ["../etc/passwd", "shop/orders.bson", "shop/x/y.bson.000001", "README", "shop/orders.bson.12"] {
            assert!(EntryName::parse(path).is_err(), "{path}");
        }
    }

    #[test]
    fn written_streams_read_back_with_long_names_and_pax_records() {
        let long = EntryName::Chunk { db: "shop".into(), coll: "c".repeat(150), seq: 1 }.path();
        let mut tar = TarWriter::new(Vec::new(), 1_700_000_000);
        tar.append(&Entry::chunk(long.clone(), b"data".to_vec(), 1, crate::crc64::checksum(b"data"))).unwrap();
        tar.append(&Entry { path: "mb-manifest.json".into(), data: vec![b'x'; 700], pax: Vec::new() }).unwrap();
        let bytes = tar.finish().unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut entries = archive.entries().unwrap();
        let mut first = entries.next().unwrap().unwrap();
        assert_eq!(first.path().unwrap().to_str().unwrap(), long);
        let pax: Vec<(String, String)> = first
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.key().unwrap().to_string(), e.value().unwrap().to_string())
            })
            .collect();
        assert!(pax.contains(&(PAX_DOCS.to_string(), "1".to_string())), "{pax:?}");
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut first, &mut data).unwrap();
        assert_eq!(data, b"data");
        let second = entries.next().unwrap().unwrap();
        assert_eq!(second.header().size().unwrap(), 700);
        assert!(entries.next().is_none());
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for value in ["", "x", &"y".repeat(90), &"z".repeat(95)] {
            let mut out = Vec::new();
            pax_record(&mut out, "path", value);
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), out.len(), "{text:?}");
        }
    }

    #[test]
    fn splits_and_checks_documents() {
        let mut data = bson::to_vec(&bson::doc! {"a": 1}).unwrap();
        data.extend(bson::to_vec(&bson::doc! {"b": "x"}).unwrap());
        assert_eq!(split_documents(&data).unwrap().len(), 2);
        assert!(split_documents(&data[..data.len() - 1]).is_err());
        let mut bad = data.clone();
        bad[0] = 200;
        assert!(split_documents(&bad).is_err());
    }
}
