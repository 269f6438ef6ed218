//! The read half of the tar stream: entries in, checked events out.
//!
//! The write half is [`super::TarWriter`]; `docs/FORMAT.md` specifies both.
//! Every chunk's CRC-64, document count and BSON are checked here, before
//! anything downstream sees it.

use std::io::Read;

use anyhow::{Context, Result};
use bson::{Bson, Document};
use tokio::sync::mpsc;

use super::bson_check::check_document;
use super::chunk::BufferPool;
use super::{split_documents, EntryName, PAX_CRC64, PAX_DOCS};
use crate::cli::{integrity, printable};
use crate::format::records::{Header, Manifest};

/// Largest chunk entry accepted: a bound on memory whatever the stream claims.
const MAX_CHUNK: u64 = 256 << 20;

/// What the reader thread hands the applier, in stream order.
#[derive(Debug)]
pub(crate) enum Event {
    Header(Header),
    Metadata { db: String, coll: String, metadata: Document, crc: u64 },
    Chunk(Chunk),
    Oplog { seq: u64, data: Vec<u8>, docs: u64, crc: u64 },
    Manifest(Manifest),
}

/// A collection's chunk of documents, checked.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) db: String,
    pub(crate) coll: String,
    pub(crate) seq: u64,
    pub(crate) data: Vec<u8>,
    pub(crate) docs: u64,
    pub(crate) crc: u64,
    /// Some document has a top-level `Timestamp(0, 0)`.
    pub(crate) zero_timestamps: bool,
}

/// Reads tar entries on a blocking thread; checks each chunk before sending it.
/// Chunks are read into buffers from `pool`: the applier gives them back once
/// inserted, so the same few buffers carry the whole stream (fresh ones each
/// time let the allocator's heaps grow with the length of the restore).
pub(crate) fn read_stream(input: Box<dyn Read + Send>, tx: mpsc::Sender<Result<Event>>, pool: BufferPool) {
    let result = (|| -> Result<()> {
        let mut archive = ::tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, input));
        // Concatenated tar streams (a full dump, then its slices) read as one.
        archive.set_ignore_zeros(true);
        let entries = archive.entries().context("reading the tar stream")?;
        for entry in entries {
            // The tar crate's messages quote header fields and names raw.
            let mut entry =
                entry.map_err(|e| integrity(format!("corrupt tar stream: {}", printable(&e.to_string(), true))))?;
            let path =
                entry.path().map_err(|e| integrity(format!("bad entry name: {e}")))?.to_string_lossy().into_owned();
            let event =
                read_entry(&mut entry, &path, &pool).with_context(|| format!("in entry {}", printable(&path, true)))?;
            if tx.blocking_send(Ok(event)).is_err() {
                return Ok(()); // the applier stopped; it reports why
            }
        }
        Ok(())
    })();
    if let Err(err) = result {
        let _ = tx.blocking_send(Err(err));
    }
}

fn read_entry<R: Read>(entry: &mut ::tar::Entry<R>, path: &str, pool: &BufferPool) -> Result<Event> {
    let name = EntryName::parse(path).map_err(|e| integrity(e.to_string()))?;
    let size = entry.header().size().map_err(|e| integrity(format!("bad tar header: {e}")))?;
    if size > MAX_CHUNK {
        return Err(integrity(format!("entry is {size} bytes, more than any mb stream writes")));
    }
    let (mut crc, mut docs) = (None, None);
    if let Some(pax) = entry.pax_extensions().map_err(|e| integrity(format!("bad PAX header: {e}")))? {
        for ext in pax {
            let ext = ext.map_err(|e| integrity(format!("bad PAX header: {e}")))?;
            match ext.key() {
                Ok(PAX_CRC64) => crc = ext.value().ok().and_then(|v| v.parse::<u64>().ok()),
                Ok(PAX_DOCS) => docs = ext.value().ok().and_then(|v| v.parse::<u64>().ok()),
                _ => {}
            }
        }
    }
    // Small entries (records, metadata, short chunks) would take a pooled multi-MiB buffer for nothing.
    let mut data = if size >= 1 << 20 { pool.take(size as usize) } else { Vec::with_capacity(size as usize) };
    entry.read_to_end(&mut data).map_err(|e| integrity(format!("stream cut short: {e}")))?;
    if data.len() as u64 != size {
        return Err(integrity(format!("stream cut short: {} of {size} bytes", data.len())));
    }
    let json = |data: &[u8]| -> Result<serde_json::Value> {
        serde_json::from_slice(data).map_err(|e| integrity(format!("bad JSON: {e}")))
    };
    Ok(match name {
        EntryName::Header => {
            Event::Header(serde_json::from_value(json(&data)?).map_err(|e| integrity(format!("bad header: {e}")))?)
        }
        EntryName::Manifest => {
            Event::Manifest(serde_json::from_value(json(&data)?).map_err(|e| integrity(format!("bad manifest: {e}")))?)
        }
        EntryName::Metadata { db, coll } => {
            // Checked before it is used: a changed index name or option must
            // not reach the target.
            let actual = crate::crc64::checksum(&data);
            if let Some(expected) = crc.filter(|&expected| expected != actual) {
                return Err(integrity(format!(
                    "CRC-64 mismatch: the metadata says {expected}, its bytes give {actual}"
                )));
            }
            let metadata = match Bson::try_from(json(&data)?) {
                Ok(Bson::Document(d)) => d,
                _ => return Err(integrity("metadata is not an Extended JSON document")),
            };
            Event::Metadata { db, coll, metadata, crc: actual }
        }
        EntryName::Chunk { .. } | EntryName::Oplog { .. } => {
            let (Some(expected_crc), Some(expected_docs)) = (crc, docs) else {
                return Err(integrity("chunk has no MB.crc64/MB.docs PAX records"));
            };
            let actual = crate::crc64::checksum(&data);
            if actual != expected_crc {
                return Err(integrity(format!(
                    "CRC-64 mismatch: the chunk says {expected_crc}, its bytes give {actual}"
                )));
            }
            let documents = split_documents(&data).map_err(|e| integrity(e.to_string()))?;
            if documents.len() as u64 != expected_docs {
                return Err(integrity(format!(
                    "the chunk says {expected_docs} documents, it holds {}",
                    documents.len()
                )));
            }
            let mut zero_timestamps = false;
            for (index, document) in documents.iter().enumerate() {
                let checked = check_document(document).map_err(|e| integrity(format!("document {index}: {e:#}")))?;
                zero_timestamps |= checked.zero_timestamp;
            }
            match name {
                EntryName::Oplog { seq } => Event::Oplog { seq, data, docs: expected_docs, crc: actual },
                EntryName::Chunk { db, coll, seq } => {
                    Event::Chunk(Chunk { db, coll, seq, data, docs: expected_docs, crc: actual, zero_timestamps })
                }
                _ => unreachable!(),
            }
        }
    })
}
