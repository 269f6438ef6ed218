//! The checks a reader makes across entries: chunks in sequence, counts and
//! CRC-64s against the manifest, slices that follow each other exactly.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::cli::integrity;
use crate::format::records::{Header, Kind, Manifest, Ts};

/// What was read of one namespace in one archive, to check against its manifest.
#[derive(Default)]
pub(crate) struct Tally {
    docs: u64,
    bytes: u64,
    /// Combined from the chunks' CRCs, which the reader already computed.
    crc: u64,
    pub(crate) chunks: u64,
    /// CRC-64 of the collection's metadata entry.
    pub(crate) metadata_crc: Option<u64>,
}

impl Tally {
    pub(crate) fn add(&mut self, seq: u64, data: &[u8], docs: u64, crc: u64, what: &str) -> Result<()> {
        if seq != self.chunks + 1 {
            return Err(integrity(format!(
                "{what}: chunk {seq} follows chunk {} (a chunk is missing or repeated)",
                self.chunks
            )));
        }
        self.chunks = seq;
        self.docs += docs;
        self.bytes += data.len() as u64;
        self.crc = crate::crc64::combine(self.crc, crc, data.len() as u64);
        Ok(())
    }

    pub(crate) fn check(&self, what: &str, docs: u64, bytes: u64, crc: u64, chunks: u64) -> Result<()> {
        if (self.docs, self.bytes, self.crc, self.chunks) != (docs, bytes, crc, chunks) {
            return Err(integrity(format!(
                "{what} does not match the manifest: read {} documents, {} bytes, CRC-64 {}, {} chunks; manifest says {docs}, {bytes}, {crc}, {chunks}",
                self.docs,
                self.bytes,
                self.crc,
                self.chunks
            )));
        }
        Ok(())
    }
}

/// A stream after the first must be an oplog slice starting where the one
/// before ended.
pub(crate) fn check_chain(header: &Header, chain_end: Option<Ts>, archives_read: u64, oplog_only: bool) -> Result<()> {
    if archives_read == 0 {
        if header.kind != Kind::Full && !oplog_only {
            return Err(integrity(format!(
                "the input starts with an oplog slice (after {}), not a full backup: a restore starts from its cycle's \
                 full backup (a missing or empty full backup object?); --oplog-only replays slices onto the target",
                header.oplog_from.map(|t| t.to_string()).unwrap_or_else(|| "?".into())
            )));
        }
        return Ok(());
    }
    if header.kind == Kind::Full {
        return Err(integrity(
            "a second full backup follows in the stream: give one cycle (a full backup and its slices)",
        ));
    }
    let from = header.oplog_from.ok_or_else(|| integrity("oplog slice without oplog_from in its header"))?;
    match chain_end {
        Some(end) if end == from => Ok(()),
        Some(end) => Err(integrity(format!(
            "hole in the chain: a slice starts after {from}, but the backup before it ends at {end}{}",
            if from > end {
                "; the entries in between are missing"
            } else {
                "; the slices overlap or are out of order"
            }
        ))),
        None => Err(integrity("cannot chain a slice after a backup with no oplog position (standalone dump)")),
    }
}

/// The stream as read matches its manifest: every namespace's counts, bytes,
/// CRC-64 and chunks, its metadata, and the oplog's. A collection the restore
/// leaves out (`wanted` says no) may be absent: a selective read of a
/// seekable object skips its blocks; if present, it is checked all the same.
pub(crate) fn check_manifest(
    kind: Kind,
    tallies: &BTreeMap<String, Tally>,
    oplog: &Tally,
    manifest: &Manifest,
    wanted: &dyn Fn(&str, &str) -> bool,
) -> Result<()> {
    if manifest.kind != kind {
        return Err(integrity("the manifest's kind differs from the header's"));
    }
    let listed: BTreeMap<String, _> =
        manifest.collections.iter().map(|c| (format!("{}.{}", c.db, c.name), c)).collect();
    for (ns, tally) in tallies {
        let Some(entry) = listed.get(ns) else {
            return Err(integrity(format!("{ns} is in the stream but not in its manifest")));
        };
        tally.check(ns, entry.docs, entry.bytes, entry.crc64, entry.chunks)?;
        match (entry.metadata_crc64, tally.metadata_crc) {
            (Some(expected), Some(read)) if expected != read => {
                return Err(integrity(format!(
                    "{ns}: its metadata does not match the manifest: CRC-64 {read}, manifest says {expected}"
                )))
            }
            (Some(_), None) => return Err(integrity(format!("{ns}: the manifest lists metadata the stream lacks"))),
            _ => {}
        }
    }
    for (ns, entry) in &listed {
        if !tallies.contains_key(ns) && wanted(&entry.db, &entry.name) {
            return Err(integrity(format!("{ns} is in the manifest but missing from the stream")));
        }
    }
    match &manifest.oplog {
        Some(listed) => oplog.check("the oplog", listed.count, listed.bytes, listed.crc64, listed.chunks)?,
        None if oplog.chunks > 0 => return Err(integrity("the stream has oplog entries its manifest does not list")),
        None => {}
    }
    Ok(())
}
