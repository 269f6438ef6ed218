//! Reading a collection's ranges into chunks: a whole collection with one
//! cursor, in raw batches; a range of record ids (planned in [`super::split`]) as a
//! collection scan resumed after the record id it starts after (`find`
//! with `hint: {$natural: 1}` and `$_resumeAfter`, which `mongod` accepts
//! since 4.4) and stopped after its last: each batch's resume token names
//! the record id it ends at, and the one batch that passes the range's end
//! is read again with `showRecordId` (which costs the server a copy of each
//! document, so only there). A range whose start was deleted meanwhile
//! resumes further back and skips what it has no claim to.
//!
//! Chunks are numbered as they are finished, whichever range they come
//! from: the stream format is unchanged (numbers without gaps, the manifest's
//! CRC-64 over the chunks in that order); only the order of the documents in
//! the collection's `.bson` differs, which no reader relies on. Each range's
//! reader holds at most one chunk being filled and one being handed to the
//! writer, so memory stays bounded whatever the collection's size.

use anyhow::{bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Document, RawArray};
use mongodb::raw_batch_cursor::{RawBatch, RawBatchCursor};
use mongodb::Database;
use tokio::sync::{mpsc, Mutex, Semaphore};

use super::send;
use super::split::{ReadRange, RecordRange};
use crate::cli::progress::Meter;
use crate::format::tar::chunk::{BufferPool, ChunkNumbering, Piece, PieceCutter};
use crate::format::tar::Entry;
use crate::mongo::oplog::server_code;

/// `$_resumeAfter` a record id that no longer exists.
const KEY_NOT_FOUND: i32 = 211;

/// Where the readers of one collection put their chunks.
pub(crate) struct ChunkSink<'a, F: Fn(u64) -> String> {
    /// Numbering and sending under one lock: chunks reach the writer in
    /// their numbers' order.
    pub numbering: Mutex<ChunkNumbering<F>>,
    pub tx: &'a mpsc::Sender<Entry>,
    pub pool: &'a BufferPool,
    pub meter: &'a Meter,
    pub chunk_size: u64,
    /// Cursors open at once, across all collections (`--parallel`).
    pub readers: &'a Semaphore,
}

impl<F: Fn(u64) -> String> ChunkSink<'_, F> {
    async fn emit(&self, piece: Piece) -> Result<()> {
        let mut numbering = self.numbering.lock().await;
        let entry = numbering.entry(piece);
        send(self.tx, entry).await
    }
}

/// Reads `ranges` of collection `name` of `db` (documents matching
/// `filter`), at most `parallel` at once, into `sink`.
pub(crate) async fn read_ranges<F: Fn(u64) -> String>(
    db: &Database,
    name: &str,
    filter: &Document,
    ranges: Vec<ReadRange>,
    parallel: usize,
    sink: &ChunkSink<'_, F>,
) -> Result<()> {
    futures_util::stream::iter(ranges)
        .map(|range| read_range(db, name, filter, range, sink))
        .buffer_unordered(parallel.max(1))
        .try_collect::<()>()
        .await
}

async fn read_range<F: Fn(u64) -> String>(
    db: &Database,
    name: &str,
    filter: &Document,
    range: ReadRange,
    sink: &ChunkSink<'_, F>,
) -> Result<()> {
    let _reader = sink.readers.acquire().await.context("the dump's readers were closed")?;
    let ns = format!("{}.{name}", db.name());
    let mut cutter = PieceCutter::new(sink.chunk_size, sink.pool.clone());
    match range {
        ReadRange::Whole => {
            // Raw batches: the documents are copied once, from the reply into
            // the chunk (a plain cursor copies each into its own buffer first).
            let collection = db.collection::<Document>(name);
            let mut batches = collection.find(filter.clone()).batch().await.with_context(|| format!("reading {ns}"))?;
            while let Some(batch) = batches.next().await {
                let batch = batch.with_context(|| format!("reading {ns}"))?;
                push_all(batch.doc_slices()?, &mut cutter, sink).await?;
            }
        }
        ReadRange::Records(range) => {
            let scanned = read_batches_inside(db, name, &range, &mut cutter, sink)
                .await
                .with_context(|| format!("reading {ns}"))?;
            if let Scanned::Through(taken) = scanned {
                read_with_record_ids(db, name, &range, taken, &mut cutter, sink)
                    .await
                    .with_context(|| format!("reading {ns}"))?;
            }
        }
    }
    if let Some(last) = cutter.finish() {
        sink.emit(last).await?;
    }
    Ok(())
}

/// How far the scan of a range without record ids got.
enum Scanned {
    /// Through the range's end.
    All,
    /// Through this record id (None: no record yet); the rest is to be
    /// read with record ids.
    Through(Option<i64>),
}

/// Reads `range` in batches as long as each ends inside it: until a batch
/// passes the range's end, or at once if the record to resume after was deleted.
async fn read_batches_inside<F: Fn(u64) -> String>(
    db: &Database,
    name: &str,
    range: &RecordRange,
    cutter: &mut PieceCutter,
    sink: &ChunkSink<'_, F>,
) -> Result<Scanned> {
    let mut taken = range.after();
    let Some(mut batches) = open_scan(db, name, range.batch_size, taken, false).await? else {
        return Ok(Scanned::Through(taken));
    };
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let documents = batch.doc_slices()?;
        if documents.is_empty() {
            continue;
        }
        let Some(last) = batch_end(&batch) else { return Ok(Scanned::Through(taken)) };
        if range.through().is_some_and(|through| last > through) {
            return Ok(Scanned::Through(taken));
        }
        push_all(documents, cutter, sink).await?;
        taken = Some(last);
    }
    Ok(Scanned::All)
}

/// Cuts the documents of a batch into chunks.
async fn push_all<F: Fn(u64) -> String>(
    documents: &RawArray,
    cutter: &mut PieceCutter,
    sink: &ChunkSink<'_, F>,
) -> Result<()> {
    for document in documents {
        let document = document?.as_document().context("the server sent a batch of non-documents")?.as_bytes();
        sink.meter.add(1, document.len() as u64);
        if let Some(full) = cutter.push(document) {
            sink.emit(full).await?;
        }
    }
    Ok(())
}

/// Reads the records of `range` after `taken` one by one, told by their
/// record ids where the range ends.
async fn read_with_record_ids<F: Fn(u64) -> String>(
    db: &Database,
    name: &str,
    range: &RecordRange,
    taken: Option<i64>,
    cutter: &mut PieceCutter,
    sink: &ChunkSink<'_, F>,
) -> Result<()> {
    let mut batches = None;
    for resume_point in range.resume_points(taken) {
        batches = open_scan(db, name, range.batch_size, resume_point, true).await?;
        if batches.is_some() {
            break;
        }
    }
    let mut batches = batches.context("no record to resume the collection scan at")?;
    while let Some(batch) = batches.next().await {
        for document in batch?.doc_slices()? {
            let document = document?.as_document().context("the server sent a batch of non-documents")?.as_bytes();
            let Some((head, record_id)) = split_record_id(document) else {
                bail!("the server sent a document without the record id it was asked for");
            };
            if taken.is_some_and(|taken| record_id <= taken) {
                continue; // Resumed further back.
            }
            if range.through().is_some_and(|through| record_id > through) {
                return Ok(());
            }
            sink.meter.add(1, head.len() as u64 + 1);
            if let Some(full) = cutter.push_head(head) {
                sink.emit(full).await?;
            }
        }
    }
    Ok(())
}

/// A collection scan after record `after` (None: from the first), in
/// batches that tell the record id they end at, each document ending with
/// its `$recordId` if `show_record_id`; None if record `after` was deleted.
async fn open_scan(
    db: &Database,
    name: &str,
    batch_size: u32,
    after: Option<i64>,
    show_record_id: bool,
) -> Result<Option<RawBatchCursor>> {
    let mut find = doc! {
        "find": name,
        "hint": {"$natural": 1},
        "batchSize": i64::from(batch_size),
        "$_requestResumeToken": true,
    };
    if show_record_id {
        find.insert("showRecordId", true);
    }
    if let Some(after) = after {
        find.insert("$_resumeAfter", doc! {"$recordId": after});
    }
    match db.run_cursor_command(find).batch_size(batch_size).batch().await {
        Ok(batches) => Ok(Some(batches)),
        Err(err) => match after {
            Some(after) if server_code(&err) == Some(KEY_NOT_FOUND) => {
                crate::debug!(
                    "{}.{name}: record {after} was deleted during the dump; resuming further back",
                    db.name()
                );
                Ok(None)
            }
            _ => Err(err.into()),
        },
    }
}

/// The record id a batch ends at: its `postBatchResumeToken`.
fn batch_end(batch: &RawBatch) -> Option<i64> {
    let cursor = batch.as_raw_document().get_document("cursor").ok()?;
    cursor.get_document("postBatchResumeToken").ok()?.get_i64("$recordId").ok()
}

/// What `showRecordId` adds at the end of a document: an Int64 element
/// named `$recordId`.
const RECORD_ID_ELEMENT: &[u8] = b"\x12$recordId\0";

/// A document read with `showRecordId`, split into its bytes before the
/// record id (the length in its first four bytes still counting it) and
/// the record id; None if it does not end with one.
fn split_record_id(document: &[u8]) -> Option<(&[u8], i64)> {
    let start = document.len().checked_sub(RECORD_ID_ELEMENT.len() + 9)?;
    let (head, element) = document.split_at(start);
    let value = element.strip_prefix(RECORD_ID_ELEMENT)?;
    if head.len() < 4 || value[8] != 0 {
        return None;
    }
    Some((head, i64::from_le_bytes(value[..8].try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_id_is_split_off_a_document_that_ends_with_it() {
        let plain = bson::rawdoc! {"_id": 1, "$recordId": "not one"}.into_bytes();
        let shown = bson::rawdoc! {"_id": 1, "$recordId": "not one", "$recordId": -5_i64}.into_bytes();
        let (head, id) = split_record_id(&shown).expect("ends with a record id");
        assert_eq!((id, head.len()), (-5, plain.len() - 1));
        assert_eq!(head[4..], plain[4..plain.len() - 1]);
        assert_eq!(split_record_id(&plain), None);
        assert_eq!(split_record_id(&bson::rawdoc! {"r": 5_i64}.into_bytes()), None);
        assert_eq!(split_record_id(&[0; 3]), None);
    }
}
