//! Planning to read one collection on several connections: a collection
//! larger than `--split-above` is cut into ranges of its record ids at
//! sampled documents, each read by its own cursor (see [`super::read`]).
//!
//! Record ids, not `_id`s: each range is then a collection scan, so the
//! source reads its record store in order as for a whole collection; ranges
//! of the `_id` index would make it fetch each document by its record id,
//! ~1.5-2x the CPU on cached data and random reads on cold data whose `_id`s
//! are not in insertion order.
//!
//! A document keeps its record id for life (WiredTiger updates in place; a
//! collection with its own record ids, clustered, is not split), so the
//! ranges hold every document that exists throughout the dump exactly
//! once, and the last range reads to the end, taking in documents inserted
//! meanwhile. Ranges read at different times are made consistent by the
//! oplog the dump carries, as collections read at different times are.
//! Record ids are one server's: a split needs every read on one `mongod`
//! (the connection is pinned to one member; never through a `mongos`).

use std::sync::Arc;

use anyhow::Result;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::{Collection, Database};

/// Ranges per reader: a range that the sample made too large then delays
/// the end by a small share of the whole only.
const RANGES_PER_READER: u64 = 4;
/// Sampled documents per range.
const SAMPLES_PER_RANGE: u64 = 16;
/// Bytes a range's cursor asks for per batch: the batch that passes the
/// range's end is read twice. (Smaller batches cost the server no more CPU.)
const RANGE_BATCH_BYTES: u64 = 256 << 10;

/// What one cursor of a collection reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReadRange {
    /// The whole collection, in natural order.
    Whole,
    /// Records between two record ids.
    Records(RecordRange),
}

/// Range `index` of those that `points` (ascending record ids) cut a
/// collection into: the records after `points[index - 1]` (from the first
/// for range 0) through `points[index]` (to the end for the last range).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordRange {
    points: Arc<[i64]>,
    index: usize,
    /// Documents per batch (about [`RANGE_BATCH_BYTES`]).
    pub(super) batch_size: u32,
}

impl RecordRange {
    /// The record id the range starts after.
    pub(super) fn after(&self) -> Option<i64> {
        self.index.checked_sub(1).map(|i| self.points[i])
    }

    /// The last record id of the range.
    pub(super) fn through(&self) -> Option<i64> {
        self.points.get(self.index).copied()
    }

    /// Where a cursor may resume to read on after record `taken`, best
    /// first: after `taken`; if that record was deleted, after an earlier
    /// range's start (the records through `taken` are then skipped); else
    /// from the first record.
    pub(super) fn resume_points(&self, taken: Option<i64>) -> impl Iterator<Item = Option<i64>> + '_ {
        let earlier = self.points[..self.index].iter().rev().copied().filter(move |&p| Some(p) < taken);
        taken.into_iter().chain(earlier).map(Some).chain(std::iter::once(None))
    }
}

/// The ranges to read `name` in: one (the whole collection, in natural
/// order) unless it is a plain collection larger than `split_above`,
/// `parallel` allows more than one reader and `record_ids` says that the
/// reads all go to one `mongod` that resumes scans (4.4 or later).
pub(crate) async fn plan_ranges(
    db: &Database,
    name: &str,
    options: &Document,
    dump: &super::DumpOptions,
    record_ids: bool,
) -> Result<Vec<ReadRange>> {
    let whole = vec![ReadRange::Whole];
    // Capped collections are read in insertion order and clustered ones
    // have their `_id`s as record ids: those stay on one reader.
    let plain = !["capped", "clusteredIndex"].iter().any(|key| options.contains_key(key));
    if dump.parallel < 2 || !plain || !record_ids || name.starts_with("system.") {
        return Ok(whole);
    }
    let collection = db.collection::<Document>(name);
    let Some((size, count)) = data_size(&collection).await else { return Ok(whole) };
    if size <= dump.split_above || count == 0 {
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
    // Splitting only speeds the dump up: without a sample, one reader.
    let sampled = match sample_record_ids(&collection, sample).await {
        Ok(ids) => ids,
        Err(err) => {
            crate::warn!("reading {ns} on one connection: sampling its record ids failed: {err}");
            return Ok(whole);
        }
    };
    let points: Arc<[i64]> = split_points(&sampled, wanted as usize).into();
    if points.is_empty() {
        return Ok(whole);
    }
    let batch_size = (RANGE_BATCH_BYTES / (size / count).max(1)).clamp(1, u64::from(u32::MAX)) as u32;
    let ranges: Vec<ReadRange> = (0..=points.len())
        .map(|index| ReadRange::Records(RecordRange { points: points.clone(), index, batch_size }))
        .collect();
    crate::info!("reading {ns} ({size} bytes) in {} ranges of its record ids", ranges.len());
    Ok(ranges)
}

/// Record ids of about `size` documents picked at random, ascending:
/// `$sample` gives their `_id`s (it cannot give record ids), a `find` on
/// those gives their record ids.
async fn sample_record_ids(collection: &Collection<Document>, size: u64) -> mongodb::error::Result<Vec<i64>> {
    let pipeline = vec![doc! {"$sample": {"size": size as i64}}, doc! {"$project": {"_id": 1}}];
    let sampled: Vec<Document> = collection.aggregate(pipeline).await?.try_collect().await?;
    // `_id` is never an array, a regex or undefined: `$in` matches each by equality.
    let ids: Vec<Bson> = sampled.into_iter().filter_map(|mut d| d.remove("_id")).collect();
    let found: Vec<Document> = collection
        .find(doc! {"_id": {"$in": ids}})
        .projection(doc! {"_id": 1})
        .show_record_id(true)
        .await?
        .try_collect()
        .await?;
    let mut record_ids: Vec<i64> = found.iter().filter_map(|d| d.get_i64("$recordId").ok()).collect();
    record_ids.sort_unstable();
    Ok(record_ids)
}

/// `wanted - 1` points evenly spaced in the sorted sample, without repeats.
fn split_points(sorted: &[i64], wanted: usize) -> Vec<i64> {
    let mut points: Vec<i64> = Vec::new();
    for i in 1..wanted {
        let Some(&id) = sorted.get(sorted.len() * i / wanted) else { break };
        if points.last() != Some(&id) {
            points.push(id);
        }
    }
    points
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_are_evenly_spaced_and_distinct() {
        assert_eq!(split_points(&[1, 1, 2, 3, 4, 5, 6, 7], 4), vec![2, 4, 6]);
        assert_eq!(split_points(&[7; 8], 4), vec![7]);
        assert_eq!(split_points(&[], 4), Vec::<i64>::new());
    }

    #[test]
    fn ranges_cover_the_record_ids_from_first_to_last() {
        let points: Arc<[i64]> = vec![10, 20].into();
        let range = |index| RecordRange { points: points.clone(), index, batch_size: 1 };
        let bounds: Vec<_> = (0..3).map(|i| (range(i).after(), range(i).through())).collect();
        assert_eq!(bounds, vec![(None, Some(10)), (Some(10), Some(20)), (Some(20), None)]);
        assert_eq!(range(2).resume_points(Some(20)).collect::<Vec<_>>(), vec![Some(20), Some(10), None]);
        assert_eq!(range(2).resume_points(Some(25)).collect::<Vec<_>>(), vec![Some(25), Some(20), Some(10), None]);
        assert_eq!(range(1).resume_points(Some(15)).collect::<Vec<_>>(), vec![Some(15), Some(10), None]);
        assert_eq!(range(0).resume_points(None).collect::<Vec<_>>(), vec![None]);
        assert_eq!(range(0).resume_points(Some(5)).collect::<Vec<_>>(), vec![Some(5), None]);
    }
}
