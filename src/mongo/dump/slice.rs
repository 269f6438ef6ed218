//! The oplog part of a dump: entries in a bound, for some databases, as
//! `oplog.bson.NNNNNN` chunks; a bound the oplog no longer reaches is exit 5.

use anyhow::{bail, Context, Result};
use mongodb::bson::{doc, RawDocumentBuf};
use mongodb::Client;
use tokio::sync::mpsc;

use super::send;
use crate::format::records::{OplogEntry, Ts};
use crate::format::tar::chunk::{BufferPool, ChunkBuilder};
use crate::format::tar::{Entry, EntryName};
use crate::mongo::oplog;

/// Where an oplog read starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bound {
    /// Entries at or after this timestamp (a full dump's capture start).
    From(Ts),
    /// Entries strictly after this timestamp (an incremental slice).
    After(Ts),
}

impl Bound {
    fn ts(self) -> Ts {
        match self {
            Bound::From(ts) | Bound::After(ts) => ts,
        }
    }
}

/// Copies oplog entries in the bound up to `to` (inclusive) for `databases`
/// (all if empty) as `oplog.bson.NNNNNN` chunks; fails with exit 5 if the
/// oplog no longer reaches back to the bound, before or after the read.
pub(crate) async fn dump_oplog(
    client: &Client,
    databases: &[String],
    bound: Bound,
    to: Ts,
    options: &super::DumpOptions,
    pool: &BufferPool,
    tx: &mpsc::Sender<Entry>,
) -> Result<OplogEntry> {
    oplog::check_reaches(client, bound.ts()).await?;
    let ts_filter = match bound {
        Bound::From(ts) => doc! {"$gte": bson::Timestamp::from(ts), "$lte": bson::Timestamp::from(to)},
        Bound::After(ts) => doc! {"$gt": bson::Timestamp::from(ts), "$lte": bson::Timestamp::from(to)},
    };
    let filter = oplog::dump_filter(databases, options.users_and_roles, ts_filter);
    let oplog_coll = client.database("local").collection::<RawDocumentBuf>("oplog.rs");
    let mut cursor = oplog_coll.find(filter).await.context("reading the oplog")?;
    let mut chunks = ChunkBuilder::new(options.chunk_size, pool.clone(), |seq| EntryName::Oplog { seq }.path());
    let meter = options.progress.oplog();
    let mut last: Option<Ts> = None;
    while cursor.advance().await.context("reading the oplog")? {
        let entry = cursor.current();
        let ts = oplog::entry_ts(entry)?;
        if last.is_some_and(|prev| ts <= prev) {
            bail!("the oplog came back out of order at {ts}");
        }
        last = Some(ts);
        if !oplog::keep_for_databases(entry, databases, options.users_and_roles)? {
            continue;
        }
        meter.add(1, entry.as_bytes().len() as u64);
        if let Some(full) = chunks.push(entry.as_bytes()) {
            send(tx, full).await?;
        }
    }
    if let Some(chunk) = chunks.finish() {
        send(tx, chunk).await?;
    }
    // Entries are removed oldest first: if the bound is still there, nothing we read past was lost.
    oplog::check_reaches(client, bound.ts()).await?;
    let (count, bytes, crc64, chunk_count) = chunks.totals();
    Ok(OplogEntry { from: bound.ts(), to, count, bytes, crc64, chunks: chunk_count })
}
