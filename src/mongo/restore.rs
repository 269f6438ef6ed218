//! Restoring into a server: creating collections from their metadata,
//! inserting chunks (zero timestamps kept: `restore/empty_ts.rs`), building
//! indexes; `--drop` and users and roles in `restore/scope.rs`. The restore
//! driver (`super::apply`, behind `mb-apply`) reads the checked stream and calls these.

mod empty_ts;
mod scope;

pub(crate) use empty_ts::{probe as probe_empty_timestamps, EmptyTimestamps};
pub(crate) use scope::{drop_scope, merge_users_and_roles, Authz};

use std::sync::Arc;

use anyhow::{Context, Result};
use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};
use mongodb::Client;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::format::tar::split_documents;
use crate::info;

/// A collection that was created and whose indexes wait for its data.
pub(crate) struct PendingIndexes {
    pub(crate) target: String,
    pub(crate) indexes: Vec<Document>,
}

/// Builds the indexes of collections whose data is in, `parallel` collections at once.
pub(crate) async fn build_indexes(client: &Client, indexes: Vec<PendingIndexes>, parallel: usize) -> Result<()> {
    if indexes.is_empty() {
        return Ok(());
    }
    info!("building indexes of {} collections", indexes.len());
    let mut builds = JoinSet::new();
    let limit = Arc::new(Semaphore::new(parallel));
    for pending in indexes {
        let client = client.clone();
        let permit = limit.clone().acquire_owned().await?;
        builds.spawn(async move {
            let (db, coll) = pending.target.split_once('.').unwrap();
            let result = client
                .database(db)
                .run_command(doc! {"createIndexes": coll, "indexes": pending.indexes})
                .await
                .with_context(|| format!("building the indexes of {}", pending.target));
            drop(permit);
            result.map(|_| ())
        });
    }
    while let Some(done) = builds.join_next().await {
        done.context("an index build panicked")??;
    }
    Ok(())
}

/// Creates a collection or view from its metadata; returns its indexes to build later.
pub(crate) async fn create_collection(
    client: &Client,
    target_ns: &str,
    metadata: &Document,
    drop: bool,
) -> Result<Option<PendingIndexes>> {
    let (db_name, coll) = target_ns.split_once('.').context("bad namespace")?;
    let db = client.database(db_name);
    let kind = metadata.get_str("type").unwrap_or("collection");
    if db_name == "admin" && matches!(coll, "system.users" | "system.roles" | "system.version") {
        if coll != "system.version" {
            let temp = if coll == "system.users" { "mbtempusers" } else { "mbtemproles" };
            db.collection::<Document>(temp).drop().await.ok();
        }
        return Ok(None);
    }
    if drop {
        scope::drop_collection(&db, coll).await?;
    }
    let exists = !db
        .list_collection_names()
        .filter(doc! {"name": coll})
        .await
        .with_context(|| format!("looking for {target_ns}"))?
        .is_empty();
    if exists {
        if !drop {
            crate::debug!("{target_ns} exists: restoring into it with its current options");
        }
    } else {
        let mut create = doc! {"create": coll};
        create.extend(metadata.get_document("options").cloned().unwrap_or_default());
        db.run_command(create).await.with_context(|| format!("creating {kind} {target_ns}"))?;
    }
    if kind == "view" {
        return Ok(None);
    }
    let indexes: Vec<Document> = metadata
        .get_array("indexes")
        .map(|list| list.iter().filter_map(|i| i.as_document().cloned()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|index| index.get_str("name") != Ok("_id_") && !index.get_bool("clustered").unwrap_or(false))
        .map(|mut index| {
            index.remove("ns");
            index
        })
        .collect();
    Ok((!indexes.is_empty()).then(|| PendingIndexes { target: target_ns.to_string(), indexes }))
}

/// What inserting one chunk did to its documents.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Inserted {
    /// Inserted.
    pub(crate) documents: u64,
    /// Already there, byte for byte the same (a restore run again).
    pub(crate) identical: u64,
    /// Refused: the target has a different document with the same `_id`.
    pub(crate) id_conflicts: u64,
    /// Refused by another unique index of the target.
    pub(crate) unique_conflicts: u64,
}

/// Most bytes of documents in one insert command (a command may hold 16 MiB).
/// The driver copies each command into fresh buffers as it sends it; 2 MiB
/// ones keep those copies small enough for the allocator to reuse, where
/// 16 MiB ones made mb-apply's RSS grow with the restore (219 MiB at 1 GB,
/// 314 MiB at 4 GB), and cost no more CPU or wall time (docs/BENCHMARKS.md).
const INSERT_BYTES: usize = 2 << 20;
/// Most documents in one insert command (the server's maxWriteBatchSize).
const INSERT_DOCUMENTS: usize = 100_000;
/// The most an insert's reply may need, kept under the 16 MiB the server can
/// send: when every document is refused (a restore run again), each refusal
/// names the duplicate key (up to the document's size) twice, with the
/// namespace and index. Past 16 MiB the server drops the connection instead
/// (100,000 small documents: an 18.8 MB reply, "I/O error: unexpected end of file").
const REPLY_BYTES: usize = 12 << 20;

/// The most the reply's refusal of `document` can take.
fn refusal_bytes(document: &[u8]) -> usize {
    512 + 2 * document.len()
}

/// Inserts one chunk; documents the target refuses as duplicates are
/// sorted into identical ones (harmless) and conflicts (counted).
///
/// The chunk's documents go out as they are, in `insert` commands built
/// here, not through the driver's `insert_many`, which copies each document
/// again and collects every `_id` into a map the restore never reads.
pub(crate) async fn insert_chunk(
    collection: mongodb::Collection<RawDocumentBuf>,
    data: &[u8],
    empty_ts: EmptyTimestamps,
) -> Result<Inserted> {
    let documents = split_documents(data)?;
    let total = documents.len() as u64;
    let db = collection.client().database(&collection.namespace().db);
    let mut refused = Vec::new();
    let mut start = 0;
    let bypass = empty_ts == EmptyTimestamps::Bypass;
    while start < documents.len() {
        let (command, end) = insert_command(collection.name(), &documents, start, bypass)?;
        let reply = db.run_raw_command(command).await?;
        duplicates_refused(&reply, start, &mut refused)?;
        start = end;
    }
    if empty_ts == EmptyTimestamps::SetBack {
        empty_ts::set_back(&db, collection.name(), &documents, &refused).await?;
    }
    if refused.is_empty() {
        return Ok(Inserted { documents: total, ..Inserted::default() });
    }
    let mut counts = sort_duplicates(&collection, data, &refused).await?;
    counts.documents = total - refused.len() as u64;
    Ok(counts)
}

/// An unordered `insert` of `documents[start..end]`, as many as one command
/// holds; returns it and `end`. Written as bytes: the documents are copied
/// once, and the bson crate cannot take them into an array without a copy each.
fn insert_command(
    collection: &str,
    documents: &[&[u8]],
    start: usize,
    bypass_empty_ts: bool,
) -> Result<(RawDocumentBuf, usize)> {
    use std::io::Write;
    // Sized once: grown by doubling, an 8 MiB chunk's command was copied about twice over.
    let mut documents_bytes = 0;
    for document in &documents[start..] {
        documents_bytes += document.len() + 8; // its index and type before it
        if documents_bytes >= INSERT_BYTES {
            break;
        }
    }
    let mut command = Vec::with_capacity(documents_bytes.min(INSERT_BYTES) + collection.len() + 128);
    command.extend_from_slice(&[0; 4]);
    command.push(0x02);
    command.extend_from_slice(b"insert\0");
    command.extend_from_slice(&(collection.len() as i32 + 1).to_le_bytes());
    command.extend_from_slice(collection.as_bytes());
    command.push(0);
    command.push(0x04);
    command.extend_from_slice(b"documents\0");
    let array_at = command.len();
    command.extend_from_slice(&[0; 4]);
    let (mut end, mut reply) = (start, 0);
    while let Some(document) = documents.get(end) {
        reply += refusal_bytes(document);
        let full =
            command.len() + document.len() > INSERT_BYTES || reply > REPLY_BYTES || end - start == INSERT_DOCUMENTS;
        if end > start && full {
            break;
        }
        command.push(0x03);
        write!(command, "{}\0", end - start)?;
        command.extend_from_slice(document);
        end += 1;
    }
    command.push(0);
    let array_length = i32::try_from(command.len() - array_at).context("an insert command over 2 GiB")?;
    command[array_at..array_at + 4].copy_from_slice(&array_length.to_le_bytes());
    command.extend_from_slice(b"\x08ordered\0\x00\x08bypassDocumentValidation\0\x01");
    if bypass_empty_ts {
        command.extend_from_slice(b"\x08bypassEmptyTsReplacement\0\x01");
    }
    command.push(0);
    let length = i32::try_from(command.len()).context("an insert command over 2 GiB")?;
    command[..4].copy_from_slice(&length.to_le_bytes());
    Ok((RawDocumentBuf::from_bytes(command).context("building an insert command")?, end))
}

/// Reads an insert's reply: the documents refused as duplicate keys go into
/// `refused` (as indexes into the chunk); any other refusal is the error.
fn duplicates_refused(reply: &Document, start: usize, refused: &mut Vec<usize>) -> Result<()> {
    if let Ok(concern) = reply.get_document("writeConcernError") {
        anyhow::bail!(
            "write concern failed (code {}): {}",
            concern.get_i32("code").unwrap_or_default(),
            concern.get_str("errmsg").unwrap_or_default()
        );
    }
    let errors = reply.get_array("writeErrors").map(Vec::as_slice).unwrap_or_default();
    let errors: Vec<&Document> = errors.iter().filter_map(Bson::as_document).collect();
    if let Some(other) = errors.iter().find(|e| e.get_i32("code") != Ok(11000)) {
        anyhow::bail!(
            "the server refused {} document(s); the first not a duplicate key (code {}): {}",
            errors.len(),
            other.get_i32("code").unwrap_or_default(),
            other.get_str("errmsg").unwrap_or_default()
        );
    }
    for error in errors {
        let index = error.get_i32("index").ok().and_then(|i| usize::try_from(i).ok());
        refused.push(start + index.context("a write error without the document's index")?);
    }
    Ok(())
}

/// Sorts the documents at `refused` (indexes into the chunk) by what the
/// target holds: the same document, another with the same `_id`, or none
/// (then another unique index refused it).
async fn sort_duplicates(
    collection: &mongodb::Collection<RawDocumentBuf>,
    data: &[u8],
    refused: &[usize],
) -> Result<Inserted> {
    use futures_util::TryStreamExt;
    let documents = split_documents(data)?;
    let key = |id: Bson| bson::to_vec(&doc! {"_id": id}).unwrap_or_default();
    let mut wanted = Vec::with_capacity(refused.len());
    for &index in refused {
        let document = documents.get(index).context("the server refused a document the chunk does not hold")?;
        let id = bson::RawDocument::from_bytes(document)?.get("_id")?.context("a document without _id")?;
        wanted.push((index, Bson::try_from(id.to_raw_bson())?));
    }
    let mut existing = std::collections::HashMap::new();
    for batch in wanted.chunks(1000) {
        let ids: Vec<Bson> = batch.iter().map(|(_, id)| id.clone()).collect();
        let found: Vec<RawDocumentBuf> = collection
            .find(doc! {"_id": {"$in": ids}})
            .await
            .context("reading the target's documents with the same _id")?
            .try_collect()
            .await
            .context("reading the target's documents with the same _id")?;
        for document in found {
            if let Some(id) = document.get("_id")? {
                existing.insert(key(Bson::try_from(id.to_raw_bson())?), document);
            }
        }
    }
    let mut counts = Inserted::default();
    for (index, id) in wanted {
        match existing.get(&key(id)) {
            Some(there) if there.as_bytes() == documents[index] => counts.identical += 1,
            Some(_) => counts.id_conflicts += 1,
            None => counts.unique_conflicts += 1,
        }
    }
    Ok(counts)
}
