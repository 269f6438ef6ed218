//! Reading one collection on several connections: a collection larger than
//! `--split-above` is cut into ranges of its `_id` index at sampled `_id`s,
//! and each range is read by its own cursor.
//!
//! A range is given to the server as index bounds (`find`'s `min`/`max`
//! with `hint: {_id: 1}`), not as a `$gte`/`$lt` query: index bounds order
//! every BSON type (numbers, strings, ObjectIds, documents, ... one after the
//! other), where a query only matches its bound's type. So the ranges
//! `[-inf, p1) [p1, p2) ... [pn, +inf)` hold every document exactly once
//! whatever the mix of `_id` types, including documents inserted during the
//! dump. Ranges read at different times are made consistent by the oplog
//! the dump carries, as collections read at different times are.
//!
//! Chunks are numbered as they are finished, whichever range they come
//! from: the stream format is unchanged (numbers without gaps, the manifest's
//! CRC-64 over the chunks in that order); only the order of the documents in
//! the collection's `.bson` differs, which no reader relies on. Each range's
//! reader holds at most one chunk being filled and one being handed to the
//! writer, so memory stays bounded whatever the collection's size.

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};
use mongodb::options::Hint;
use mongodb::{Collection, Database};
use tokio::sync::{mpsc, Mutex, Semaphore};

use super::send;
use crate::cli::progress::Meter;
use crate::format::tar::chunk::{BufferPool, ChunkNumbering, Piece, PieceCutter};
use crate::format::tar::Entry;

/// Ranges per reader: a range that the sample made too large then delays
/// the end by a small share of the whole only.
const RANGES_PER_READER: u64 = 4;
/// Sampled `_id`s per range.
const SAMPLES_PER_RANGE: u64 = 16;

/// What one cursor of a collection reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IdRange {
    /// The whole collection, in natural order.
    Whole,
    /// A range of the `_id` index, as `find`'s `min` and `max` (`{_id: v}`):
    /// from `min` (included; None: the start) to `max` (excluded; None: the
    /// end, but for a MaxKey `_id`).
    Between { min: Option<Document>, max: Option<Document> },
    /// The document whose `_id` is MaxKey, if any: index bounds without
    /// `max` stop before it (they end at MaxKey, excluded).
    MaxKey,
}

/// The ranges to read `name` in: one (the whole collection, in natural
/// order) unless it is a plain collection larger than `split_above` and
/// `parallel` allows more than one reader.
pub(crate) async fn plan_ranges(
    db: &Database,
    name: &str,
    options: &Document,
    dump: &super::DumpOptions,
) -> Result<Vec<IdRange>> {
    let whole = vec![IdRange::Whole];
    // Capped collections are read in insertion order, clustered ones have no
    // separate `_id` index, and a collation changes the `_id` index's order
    // of strings: those stay on one reader.
    let plain = !["capped", "clusteredIndex", "collation"].iter().any(|key| options.contains_key(key));
    if dump.parallel < 2 || !plain || name.starts_with("system.") {
        return Ok(whole);
    }
    let collection = db.collection::<Document>(name);
    let Some((size, count)) = data_size(&collection).await else { return Ok(whole) };
    if size <= dump.split_above {
        return Ok(whole);
    }
    let wanted = (size / dump.chunk_size.max(1)).clamp(2, dump.parallel as u64 * RANGES_PER_READER);
    // Under 5% of the documents, $sample picks them at random from the
    // storage engine instead of sorting the whole collection.
    let sample = (wanted * SAMPLES_PER_RANGE).min(count / 25);
    if sample < wanted {
        return Ok(whole);
    }
    let ns = format!("{}.{name}", db.name());
    let pipeline =
        vec![doc! {"$sample": {"size": sample as i64}}, doc! {"$project": {"_id": 1}}, doc! {"$sort": {"_id": 1}}];
    let sampled: mongodb::error::Result<Vec<Document>> = match collection.aggregate(pipeline).await {
        Ok(cursor) => cursor.try_collect().await,
        Err(err) => Err(err),
    };
    // Splitting only speeds the dump up: without a sample, one reader.
    let ids: Vec<Bson> = match sampled {
        Ok(docs) => docs.into_iter().filter_map(|mut d| d.remove("_id")).collect(),
        Err(err) => {
            crate::warn!("reading {ns} on one connection: sampling its _id values failed: {err}");
            return Ok(whole);
        }
    };
    let ranges = ranges_at(split_points(&ids, wanted as usize));
    crate::info!("reading {ns} ({size} bytes) in {} _id ranges", ranges.len() - 1);
    Ok(ranges)
}

/// `wanted - 1` points evenly spaced in the sorted sample, without repeats
/// ($sample may return a document twice; two distinct `_id`s never compare equal).
fn split_points(sorted: &[Bson], wanted: usize) -> Vec<Bson> {
    let mut points: Vec<Bson> = Vec::new();
    for i in 1..wanted {
        let Some(id) = sorted.get(sorted.len() * i / wanted) else { break };
        if !points.last().is_some_and(|last| same(last, id)) {
            points.push(id.clone());
        }
    }
    points
}

/// Equal as `_id`s: NaN is one `_id` value, though NaN != NaN.
fn same(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits() || x == y,
        _ => a == b,
    }
}

/// The ranges between consecutive points, from the index's start to its
/// end, and the MaxKey `_id` that no range bound takes in.
fn ranges_at(points: Vec<Bson>) -> Vec<IdRange> {
    let mut ranges = Vec::with_capacity(points.len() + 2);
    let mut min = None;
    for point in points {
        let bound = doc! {"_id": point};
        ranges.push(IdRange::Between { min, max: Some(bound.clone()) });
        min = Some(bound);
    }
    ranges.push(IdRange::Between { min, max: None });
    ranges.push(IdRange::MaxKey);
    ranges
}

/// The collection's data size and document count, from `$collStats`; None
/// when the server does not tell (then the collection is read whole).
async fn data_size(collection: &Collection<Document>) -> Option<(u64, u64)> {
    let pipeline = vec![doc! {"$collStats": {"storageStats": {}}}];
    let stats: Vec<Document> = match collection.aggregate(pipeline).await {
        Ok(cursor) => cursor.try_collect().await.ok()?,
        Err(err) => {
            crate::debug!("no $collStats for {}: {err}", collection.name());
            return None;
        }
    };
    let storage = stats.first()?.get_document("storageStats").ok()?;
    Some((number(storage.get("size")?)?, number(storage.get("count")?)?))
}

fn number(value: &Bson) -> Option<u64> {
    match value {
        Bson::Int32(n) => u64::try_from(*n).ok(),
        Bson::Int64(n) => u64::try_from(*n).ok(),
        Bson::Double(n) if *n >= 0.0 => Some(*n as u64),
        _ => None,
    }
}

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

/// Reads `ranges` of `collection` (documents matching `filter`), at most
/// `parallel` at once, into `sink`.
pub(crate) async fn read_ranges<F: Fn(u64) -> String>(
    collection: &Collection<RawDocumentBuf>,
    filter: &Document,
    ranges: Vec<IdRange>,
    parallel: usize,
    sink: &ChunkSink<'_, F>,
) -> Result<()> {
    futures_util::stream::iter(ranges)
        .map(|range| read_range(collection, filter, range, sink))
        .buffer_unordered(parallel.max(1))
        .try_collect::<()>()
        .await
}

async fn read_range<F: Fn(u64) -> String>(
    collection: &Collection<RawDocumentBuf>,
    filter: &Document,
    range: IdRange,
    sink: &ChunkSink<'_, F>,
) -> Result<()> {
    let _reader = sink.readers.acquire().await.context("the dump's readers were closed")?;
    let ns = collection.namespace();
    let find = match range {
        IdRange::Whole => collection.find(filter.clone()),
        IdRange::Between { min, max } => {
            let mut find = collection.find(filter.clone()).hint(Hint::Keys(doc! {"_id": 1}));
            if let Some(min) = min {
                find = find.min(min);
            }
            if let Some(max) = max {
                find = find.max(max);
            }
            find
        }
        IdRange::MaxKey => {
            let mut only = filter.clone();
            only.insert("_id", Bson::MaxKey);
            collection.find(only)
        }
    };
    let mut cursor = find.await.with_context(|| format!("reading {ns}"))?;
    let mut cutter = PieceCutter::new(sink.chunk_size, sink.pool.clone());
    while cursor.advance().await.with_context(|| format!("reading {ns}"))? {
        let document = cursor.current().as_bytes();
        sink.meter.add(1, document.len() as u64);
        if let Some(full) = cutter.push(document) {
            sink.emit(full).await?;
        }
    }
    if let Some(last) = cutter.finish() {
        sink.emit(last).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_are_evenly_spaced_and_distinct() {
        let sorted: Vec<Bson> = [1, 1, 2, 3, 4, 5, 6, 7].into_iter().map(Bson::Int32).collect();
        assert_eq!(split_points(&sorted, 4), vec![Bson::Int32(2), Bson::Int32(4), Bson::Int32(6)]);
        let repeated = vec![Bson::Int32(7); 8];
        assert_eq!(split_points(&repeated, 4), vec![Bson::Int32(7)]);
        let nan = vec![Bson::Double(f64::NAN); 8];
        assert_eq!(split_points(&nan, 4).len(), 1);
    }

    #[test]
    fn ranges_cover_the_index_from_start_to_end() {
        let (two, b) = (doc! {"_id": 2}, doc! {"_id": "b"});
        assert_eq!(
            ranges_at(vec![Bson::Int32(2), Bson::String("b".into())]),
            vec![
                IdRange::Between { min: None, max: Some(two.clone()) },
                IdRange::Between { min: Some(two), max: Some(b.clone()) },
                IdRange::Between { min: Some(b), max: None },
                IdRange::MaxKey,
            ]
        );
    }
}
