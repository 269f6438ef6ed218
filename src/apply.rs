//! `mb-apply`: a tar stream (or several, one after another) into a MongoDB.
//!
//! ```text
//! Usage: mb-apply [--uri URI | --config FILE] [--drop | --keep-existing] [--until TS] [INPUT]
//!        mb-apply --dry-run [INPUT]          check everything, write nothing
//!        mb-apply --to-dir DIR [INPUT]       a directory for mongorestore
//!
//! Reads a full dump and then any oplog slices of its cycle, concatenated
//! (`cat full.tar slice1.tar ... | mb-apply`): creates the collections with
//! their options, inserts the documents in batches (--parallel collections at
//! once), builds the indexes, then replays the oplog in order, up to --until
//! (inclusive; `2026-11-24T03:15:00Z` means up to the end of that second, or
//! give `seconds,ordinal`). Every chunk's CRC-64 and document count is checked
//! before it is written; the stream's manifest is checked at its end. A chain
//! whose slices do not follow each other exactly is refused, naming the hole.
//! Only the backup's databases are written (the rest of a cross-database
//! transaction is counted, not applied). --drop first drops what the backup
//! covers on the target; without it, documents that conflict with the
//! target's are counted and exit 4, unless --keep-existing.
//!
//! --to-dir writes mongodump's directory layout (`<db>/<coll>.bson`,
//! `<db>/<coll>.metadata.json`, `oplog.bson`) that the official
//! `mongorestore --oplogReplay DIR` accepts.
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use mongodb::bson::{doc, Bson, Document};
use mongodb::Client;
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::cli::{conflict, integrity};
use crate::mongo::ConnectArgs;
use crate::ns::NsMap;
use crate::oplog::{Flow, ReplayOptions, ReplayStats, Replayer};
use crate::record::{Header, Kind, Manifest, Ts, TAR_FORMAT};
use crate::restore::{create_collection, insert_chunk, merge_users_and_roles, Inserted, PendingIndexes};
use crate::stream::{split_documents, validate_document, EntryName, PAX_CRC64, PAX_DOCS};
use crate::{info, warn};

/// `mb-apply`'s flags.
#[derive(clap::Parser, Debug)]
#[command(name = "mb-apply", version, about = "Restore mb tar streams from stdin into MongoDB")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The stream to read (`-` or nothing: stdin).
    input: Option<PathBuf>,
    /// Drop what the backup covers on the target before restoring: every
    /// collection of its databases (as --ns-* filters map them).
    #[arg(long)]
    drop: bool,
    /// Keep the target's documents that conflict with the backup's (same
    /// `_id` or another unique key) and exit 0; without it they exit 4.
    #[arg(long, conflicts_with = "drop")]
    keep_existing: bool,
    /// Replay the oplog only up to this point, inclusive: `seconds,ordinal`
    /// or an RFC 3339 time (which includes that whole second).
    #[arg(long, value_name = "TS")]
    until: Option<String>,
    /// Restore only namespaces matching PATTERN (`shop.*`); repeatable.
    #[arg(long, value_name = "PATTERN")]
    ns_include: Vec<String>,
    /// Skip namespaces matching PATTERN; repeatable.
    #[arg(long, value_name = "PATTERN")]
    ns_exclude: Vec<String>,
    /// Rename namespaces matching PATTERN (`shop.$c$`), paired with --ns-to.
    #[arg(long, value_name = "PATTERN")]
    ns_from: Vec<String>,
    /// The new name for the --ns-from at the same position (`copy.$c$`).
    #[arg(long, value_name = "PATTERN")]
    ns_to: Vec<String>,
    /// Read and check the whole stream (CRC-64, counts, BSON, chain), write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write a mongodump-layout directory instead of restoring to a server.
    #[arg(long, value_name = "DIR", conflicts_with = "dry_run")]
    to_dir: Option<PathBuf>,
    /// Chunks inserted at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    parallel: usize,
    /// Do not build the indexes.
    #[arg(long)]
    no_indexes: bool,
    /// Most oplog operations in one applyOps command.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    oplog_batch: usize,
    #[command(flatten)]
    log: crate::cli::LogArgs,
}

/// Largest chunk entry accepted: a bound on memory whatever the stream claims.
const MAX_CHUNK: u64 = 256 << 20;

/// What the reader thread hands the applier, in stream order.
#[derive(Debug)]
enum Event {
    Header(Header),
    Metadata { db: String, coll: String, metadata: Document, crc: u64 },
    Chunk { db: String, coll: String, seq: u64, data: Vec<u8>, docs: u64, crc: u64 },
    Oplog { seq: u64, data: Vec<u8>, docs: u64, crc: u64 },
    Manifest(Manifest),
}

/// The record `mb-apply` prints on stdout when it is done.
#[derive(Debug, Serialize, Default)]
pub struct ApplyRecord {
    /// Always `mb-apply/1`.
    pub format: String,
    /// Whether anything was written.
    pub dry_run: bool,
    /// Tar streams read (a full dump and its slices).
    pub archives: u64,
    /// Collections and views restored.
    pub collections: u64,
    /// Documents inserted.
    pub documents: u64,
    /// Documents that were already there, identical (a restore run again).
    pub duplicates: u64,
    /// Documents not restored: the target holds another document with the
    /// same `_id` (kept). Exit 4 unless --keep-existing.
    pub id_conflicts: u64,
    /// Documents not restored: another unique index of the target refused
    /// them. Exit 4 unless --keep-existing.
    pub unique_conflicts: u64,
    /// Oplog replay counts.
    pub oplog: ReplayStats,
    /// The restored data is consistent at this point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_at: Option<Ts>,
    /// The full backup's consistency point: the earliest point the chain restores to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restorable_from: Option<Ts>,
}

impl ApplyRecord {
    fn count(&mut self, inserted: Inserted) {
        self.documents += inserted.documents;
        self.duplicates += inserted.identical;
        self.id_conflicts += inserted.id_conflicts;
        self.unique_conflicts += inserted.unique_conflicts;
    }
}

/// Runs `mb-apply`.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    args.log.apply();
    if args.parallel == 0 {
        return Err(usage("--parallel must be at least 1"));
    }
    if args.oplog_batch == 0 {
        return Err(usage("--oplog-batch must be at least 1"));
    }
    if args.ns_from.len() != args.ns_to.len() {
        return Err(usage(format!(
            "--ns-from and --ns-to go in pairs: {} --ns-from, {} --ns-to",
            args.ns_from.len(),
            args.ns_to.len()
        )));
    }
    let until = args.until.as_deref().map(parse_until).transpose().map_err(|e| usage(crate::cli::one_line(&e)))?;
    let ns_map = NsMap::new(&args.ns_include, &args.ns_exclude, &args.ns_from, &args.ns_to)
        .map_err(|e| usage(crate::cli::one_line(&e)))?;
    let input = crate::cli::open_input(args.input.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let record = runtime.block_on(async {
        let mut conn = None;
        let target = if let Some(dir) = &args.to_dir {
            Target::Dir(DirTarget::new(dir)?)
        } else if args.dry_run {
            Target::DryRun
        } else {
            let server = conn.insert(args.connect.connect_to_write("mb-apply").await?);
            Target::Server(server.client.clone())
        };
        let result = apply(&args, target, input, until, ns_map).await;
        if let Some(conn) = conn {
            conn.shutdown().await;
        }
        result
    })?;
    println!("{}", serde_json::to_string(&record)?);
    Ok(())
}

/// A usage error (exit 2).
fn usage(message: impl Into<String>) -> anyhow::Error {
    crate::cli::Failure { code: crate::cli::EXIT_USAGE, message: message.into() }.into()
}

/// `--until`: `t,i` is exact; a time means the end of that second.
fn parse_until(text: &str) -> Result<Ts> {
    let ts: Ts = text.parse().context("bad --until")?;
    let exact = text.contains(',') || text.contains(':') && !text.contains('T') || text.trim_start().starts_with('{');
    Ok(if exact { ts } else { Ts::new(ts.t, u32::MAX) })
}

enum Target {
    Server(Client),
    DryRun,
    Dir(DirTarget),
}

/// Reads tar entries on a blocking thread; checks each chunk before sending it.
fn read_stream(input: Box<dyn Read + Send>, tx: mpsc::Sender<Result<Event>>) {
    let result = (|| -> Result<()> {
        let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, input));
        // Concatenated tar streams (a full dump, then its slices) read as one.
        archive.set_ignore_zeros(true);
        let entries = archive.entries().context("reading the tar stream")?;
        for entry in entries {
            let mut entry = entry.map_err(|e| integrity(format!("corrupt tar stream: {e}")))?;
            let path =
                entry.path().map_err(|e| integrity(format!("bad entry name: {e}")))?.to_string_lossy().into_owned();
            let event = read_entry(&mut entry, &path).with_context(|| format!("in entry {path}"))?;
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

fn read_entry<R: Read>(entry: &mut tar::Entry<R>, path: &str) -> Result<Event> {
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
    let mut data = Vec::with_capacity(size as usize);
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
            for (index, document) in documents.iter().enumerate() {
                validate_document(document).map_err(|e| integrity(format!("document {index}: {e:#}")))?;
            }
            match name {
                EntryName::Oplog { seq } => Event::Oplog { seq, data, docs: expected_docs, crc: actual },
                EntryName::Chunk { db, coll, seq } => {
                    Event::Chunk { db, coll, seq, data, docs: expected_docs, crc: actual }
                }
                _ => unreachable!(),
            }
        }
    })
}

/// What was read of one namespace in one archive, to check against its manifest.
#[derive(Default)]
struct Tally {
    docs: u64,
    bytes: u64,
    /// Combined from the chunks' CRCs, which the reader already computed.
    crc: u64,
    chunks: u64,
    /// CRC-64 of the collection's metadata entry.
    metadata_crc: Option<u64>,
}

impl Tally {
    fn add(&mut self, seq: u64, data: &[u8], docs: u64, crc: u64, what: &str) -> Result<()> {
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

    fn check(&self, what: &str, docs: u64, bytes: u64, crc: u64, chunks: u64) -> Result<()> {
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

/// Where one collection's chunks go.
#[derive(Clone, Debug)]
struct DataTarget {
    /// The namespace the documents are inserted into (a timeseries' buckets,
    /// the temp collections of users and roles).
    data_ns: String,
    /// Capped collections keep insertion order: one chunk at a time.
    capped: bool,
}

impl DataTarget {
    fn new(source_db: &str, source_coll: &str, target_ns: &str, metadata: &Document) -> DataTarget {
        let (db, coll) = target_ns.split_once('.').unwrap_or((target_ns, ""));
        let data_ns = match (source_db, source_coll, metadata.get_str("type").unwrap_or("collection")) {
            ("admin", "system.users", _) => "admin.mbtempusers".to_string(),
            ("admin", "system.roles", _) => "admin.mbtemproles".to_string(),
            (_, _, "timeseries") => format!("{db}.system.buckets.{coll}"),
            _ => target_ns.to_string(),
        };
        let capped = metadata.get_document("options").ok().and_then(|o| o.get_bool("capped").ok()).unwrap_or(false);
        DataTarget { data_ns, capped }
    }
}

/// The state of one archive (header to manifest).
struct Archive {
    header: Header,
    tallies: BTreeMap<String, Tally>,
    oplog: Tally,
    indexes: Vec<PendingIndexes>,
    /// Source namespace to where its data goes (None: filtered out).
    targets: HashMap<String, Option<DataTarget>>,
    data_done: bool,
}

async fn apply(
    args: &Args,
    mut target: Target,
    input: Box<dyn Read + Send>,
    until: Option<Ts>,
    ns_map: NsMap,
) -> Result<ApplyRecord> {
    let (tx, mut rx) = mpsc::channel::<Result<Event>>(2);
    let reader = tokio::task::spawn_blocking(move || read_stream(input, tx));
    let mut record =
        ApplyRecord { format: "mb-apply/1".into(), dry_run: matches!(target, Target::DryRun), ..Default::default() };
    let mut replayer = match &target {
        Target::Server(client) => Some(Replayer::new(
            client.clone(),
            ReplayOptions {
                until,
                ns_map: ns_map.clone(),
                batch_ops: args.oplog_batch.max(1),
                dropped: args.drop,
                ..Default::default()
            },
        )),
        _ => None,
    };
    let mut archive: Option<Archive> = None;
    let mut chain_end: Option<Ts> = None;
    let mut stopped = false;
    let inserts = Arc::new(Semaphore::new(args.parallel));
    let mut tasks: JoinSet<Result<Inserted>> = JoinSet::new();

    while let Some(event) = rx.recv().await {
        let event = event?;
        // Collect finished inserts as we go, so an error stops us early.
        while let Some(done) = tasks.try_join_next() {
            record.count(done.context("an insert task panicked")??);
        }
        match event {
            Event::Header(header) => {
                if let Some(open) = &archive {
                    return Err(integrity(format!(
                        "the {} stream that began {} has no manifest: it was cut short",
                        open.header.kind, open.header.created
                    )));
                }
                if header.format != TAR_FORMAT {
                    return Err(integrity(format!(
                        "stream format {:?} is not {TAR_FORMAT:?}; this mb cannot read it",
                        header.format
                    )));
                }
                check_chain(&header, chain_end, record.archives)?;
                if let (Target::Server(client), 0) = (&target, record.archives) {
                    let map = |db: &str| ns_map.map_db(db);
                    crate::mongo::privileges::check_restore(client, &header.databases, map, args.drop).await?;
                }
                if let Some(replayer) = &mut replayer {
                    replayer.set_scope(&header.databases);
                }
                // Only before a full backup: a slice alone replays onto what is there.
                if let (Target::Server(client), true, Kind::Full) = (&target, args.drop, header.kind) {
                    let dropped = crate::restore::drop_scope(client, &header.databases, &ns_map).await?;
                    info!("--drop: dropped {dropped} collection(s) of the target in the backup's scope");
                }
                info!("reading {} backup from {} ({})", header.kind, header.source, header.created);
                archive = Some(Archive {
                    header,
                    tallies: BTreeMap::new(),
                    oplog: Tally::default(),
                    indexes: Vec::new(),
                    targets: HashMap::new(),
                    data_done: false,
                });
            }
            Event::Metadata { db, coll, metadata, crc } => {
                let current =
                    archive.as_mut().ok_or_else(|| integrity("the stream does not start with mb-header.json"))?;
                let source = format!("{db}.{coll}");
                // admin.system.version holds the server's feature compatibility
                // version: never carried to another server (mongorestore skips it too).
                let mapped = if (db.as_str(), coll.as_str()) == ("admin", "system.version") {
                    None
                } else {
                    ns_map.map(&db, &coll)
                };
                current
                    .targets
                    .insert(source.clone(), mapped.as_deref().map(|t| DataTarget::new(&db, &coll, t, &metadata)));
                current.tallies.entry(source).or_default().metadata_crc = Some(crc);
                let Some(mapped) = mapped else { continue };
                record.collections += 1;
                match &mut target {
                    Target::Server(client) => {
                        if let Some(replayer) = &mut replayer {
                            replayer.created(&mapped);
                        }
                        if let Some(pending) = create_collection(client, &mapped, &metadata, args.drop).await? {
                            current.indexes.push(pending);
                        }
                    }
                    Target::Dir(dir) => {
                        let data_ns = current.targets[&format!("{db}.{coll}")]
                            .as_ref()
                            .map(|t| t.data_ns.clone())
                            .unwrap_or_default();
                        dir.metadata(&mapped, &data_ns, &metadata)?
                    }
                    Target::DryRun => {}
                }
            }
            Event::Chunk { db, coll, seq, data, docs, crc } => {
                let current =
                    archive.as_mut().ok_or_else(|| integrity("the stream does not start with mb-header.json"))?;
                let source = format!("{db}.{coll}");
                current.tallies.entry(source.clone()).or_default().add(seq, &data, docs, crc, &source)?;
                let mapped = match current.targets.get(&source) {
                    Some(mapped) => mapped.clone(),
                    None => return Err(integrity(format!("{source}: data before its metadata"))),
                };
                let Some(DataTarget { data_ns, capped }) = mapped else { continue };
                match &mut target {
                    Target::Server(client) => {
                        let permit = inserts.clone().acquire_owned().await?;
                        let (db, coll) = data_ns.split_once('.').unwrap();
                        let collection = client.database(db).collection(coll);
                        let task = async move {
                            let result =
                                insert_chunk(collection, data).await.with_context(|| format!("restoring {data_ns}"));
                            drop(permit);
                            result
                        };
                        if capped {
                            // A capped collection keeps insertion order: one chunk at a time.
                            record.count(task.await?);
                        } else {
                            tasks.spawn(task);
                        }
                    }
                    Target::Dir(dir) => {
                        dir.append(&data_ns, &data)?;
                        record.documents += docs;
                    }
                    Target::DryRun => record.documents += docs,
                }
            }
            Event::Oplog { seq, data, docs, crc } => {
                let current =
                    archive.as_mut().ok_or_else(|| integrity("the stream does not start with mb-header.json"))?;
                current.oplog.add(seq, &data, docs, crc, "oplog")?;
                if !current.data_done {
                    finish_data(&mut tasks, &mut record, current, &target, args).await?;
                }
                if stopped {
                    continue;
                }
                for document in split_documents(&data)? {
                    let raw = bson::RawDocument::from_bytes(document)
                        .map_err(|e| integrity(format!("bad oplog entry: {e}")))?;
                    match (&mut replayer, &mut target) {
                        (Some(replayer), _) => {
                            if replayer.push(raw).await? == Flow::Stop {
                                stopped = true;
                                break;
                            }
                        }
                        (None, target) => {
                            // --to-dir and --dry-run: count what a restore would apply.
                            let ts = crate::oplog::entry_ts(raw)?;
                            if until.is_some_and(|u| ts > u) {
                                stopped = true;
                                break;
                            }
                            if let Target::Dir(dir) = target {
                                dir.append_oplog(document)?;
                            }
                            record.oplog.entries += 1;
                            record.oplog.last = Some(ts);
                        }
                    }
                }
            }
            Event::Manifest(manifest) => {
                let mut current = archive.take().ok_or_else(|| integrity("a manifest without a header"))?;
                if !current.data_done {
                    finish_data(&mut tasks, &mut record, &mut current, &target, args).await?;
                }
                check_manifest(&current, &manifest)?;
                if let Some(replayer) = &mut replayer {
                    replayer.flush().await?;
                }
                chain_end = manifest.oplog.as_ref().map(|o| o.to).or(manifest.consistent_at).or(chain_end);
                if record.archives == 0 {
                    record.restorable_from = manifest.consistent_at;
                }
                record.archives += 1;
                if let Target::Server(client) = &target {
                    merge_users_and_roles(client, &current.header, args.drop).await?;
                }
            }
        }
    }
    reader.await.context("the stream reader panicked")?;
    while let Some(done) = tasks.join_next().await {
        record.count(done.context("an insert task panicked")??);
    }
    if let Some(open) = archive {
        return Err(integrity(format!(
            "the stream ended before the manifest of the {} backup of {}: it was cut short",
            open.header.kind, open.header.created
        )));
    }
    if record.archives == 0 {
        return Err(integrity("the input holds no mb stream (it is empty)"));
    }
    if let Some(replayer) = &replayer {
        record.oplog = replayer.stats();
        if !replayer.out_of_scope().is_empty() {
            let by_db: Vec<String> = replayer.out_of_scope().iter().map(|(db, n)| format!("{db}: {n}")).collect();
            warn!(
                "skipped {} oplog operation(s) outside the backup's scope (databases not backed up; {})",
                record.oplog.out_of_scope,
                by_db.join(", ")
            );
        }
        if replayer.open_transactions() > 0 {
            warn!(
                "{} transaction(s) had not committed by the end point; they are not applied",
                replayer.open_transactions()
            );
        }
    }
    if let Target::Dir(dir) = &mut target {
        dir.finish()?;
    }
    record.consistent_at = match (until, chain_end) {
        (Some(until), Some(end)) if until < end => record.oplog.last.or(Some(until)),
        _ => chain_end,
    };
    if record.dry_run {
        info!(
            "checked {} stream(s): {} collections, {} documents; nothing written",
            record.archives, record.collections, record.documents
        );
    } else {
        info!(
            "restored {} collections, {} documents, {} oplog operations{}",
            record.collections,
            record.documents,
            record.oplog.applied,
            record
                .consistent_at
                .map(|t| format!("; consistent at {}", crate::mongo::describe_ts(t)))
                .unwrap_or_default()
        );
        check_conflicts(&record, args.keep_existing)?;
    }
    Ok(record)
}

/// Documents the target refused are loud: counted on stderr, and exit 4
/// unless the user asked to keep the target's documents.
fn check_conflicts(record: &ApplyRecord, keep_existing: bool) -> Result<()> {
    if record.duplicates > 0 {
        info!("{} document(s) were already there, identical", record.duplicates);
    }
    let conflicts = record.id_conflicts + record.unique_conflicts;
    if conflicts == 0 {
        return Ok(());
    }
    let what = format!(
        "{conflicts} document(s) of the backup were not restored: {} conflict with another document with the same _id, \
         {} with another unique index of the target",
        record.id_conflicts, record.unique_conflicts
    );
    if keep_existing {
        warn!("{what}; --keep-existing: the target's documents stay");
        return Ok(());
    }
    Err(conflict(format!(
        "{what}: the target differs from the backup (restore with --drop, or --keep-existing to keep the target's documents)"
    )))
}

/// A stream after the first must be an oplog slice starting where the one
/// before ended.
fn check_chain(header: &Header, chain_end: Option<Ts>, archives_read: u64) -> Result<()> {
    if archives_read == 0 {
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

fn check_manifest(archive: &Archive, manifest: &Manifest) -> Result<()> {
    if manifest.kind != archive.header.kind {
        return Err(integrity("the manifest's kind differs from the header's"));
    }
    let listed: BTreeMap<String, _> =
        manifest.collections.iter().map(|c| (format!("{}.{}", c.db, c.name), c)).collect();
    for (ns, tally) in &archive.tallies {
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
    for ns in listed.keys() {
        if !archive.tallies.contains_key(ns) {
            return Err(integrity(format!("{ns} is in the manifest but missing from the stream")));
        }
    }
    match &manifest.oplog {
        Some(oplog) => archive.oplog.check("the oplog", oplog.count, oplog.bytes, oplog.crc64, oplog.chunks)?,
        None if archive.oplog.chunks > 0 => {
            return Err(integrity("the stream has oplog entries its manifest does not list"))
        }
        None => {}
    }
    Ok(())
}

/// Waits for every insert of the archive, then builds its indexes.
async fn finish_data(
    tasks: &mut JoinSet<Result<Inserted>>,
    record: &mut ApplyRecord,
    archive: &mut Archive,
    target: &Target,
    args: &Args,
) -> Result<()> {
    archive.data_done = true;
    while let Some(done) = tasks.join_next().await {
        record.count(done.context("an insert task panicked")??);
    }
    let Target::Server(client) = target else { return Ok(()) };
    if args.no_indexes || archive.indexes.is_empty() {
        return Ok(());
    }
    crate::restore::build_indexes(client, std::mem::take(&mut archive.indexes), args.parallel).await
}

/// `--to-dir`: mongodump's directory layout.
struct DirTarget {
    root: PathBuf,
    files: HashMap<String, std::io::BufWriter<std::fs::File>>,
    oplog: Option<std::io::BufWriter<std::fs::File>>,
}

impl DirTarget {
    fn new(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        Ok(DirTarget { root: root.to_path_buf(), files: HashMap::new(), oplog: None })
    }

    fn path(&self, ns: &str, suffix: &str) -> Result<PathBuf> {
        let (db, coll) = ns.split_once('.').context("bad namespace")?;
        let dir = self.root.join(crate::stream::escape(db));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir.join(format!("{}{suffix}", crate::stream::escape(coll))))
    }

    fn metadata(&mut self, ns: &str, data_ns: &str, metadata: &Document) -> Result<()> {
        let path = self.path(ns, ".metadata.json")?;
        let mut metadata = metadata.clone();
        if let Some((_, coll)) = ns.split_once('.') {
            metadata.insert("collectionName", coll);
        }
        let is_view = metadata.get_str("type") == Ok("view");
        let json = serde_json::to_vec(&Bson::Document(metadata).into_canonical_extjson())?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
        if is_view {
            return Ok(());
        }
        // mongorestore expects a .bson file even for an empty collection.
        if !self.files.contains_key(data_ns) {
            let file = std::fs::File::create(self.path(data_ns, ".bson")?)?;
            self.files.insert(data_ns.to_string(), std::io::BufWriter::new(file));
        }
        Ok(())
    }

    fn append(&mut self, ns: &str, data: &[u8]) -> Result<()> {
        use std::io::Write;
        let file = self.files.get_mut(ns).with_context(|| format!("{ns}: data before its metadata"))?;
        file.write_all(data).with_context(|| format!("writing {ns}"))
    }

    fn append_oplog(&mut self, document: &[u8]) -> Result<()> {
        use std::io::Write;
        if self.oplog.is_none() {
            self.oplog = Some(std::io::BufWriter::new(std::fs::File::create(self.root.join("oplog.bson"))?));
        }
        self.oplog.as_mut().unwrap().write_all(document).context("writing oplog.bson")
    }

    fn finish(&mut self) -> Result<()> {
        use std::io::Write;
        for (ns, file) in self.files.iter_mut() {
            file.flush().with_context(|| format!("writing {ns}"))?;
            file.get_ref().sync_all()?;
        }
        if let Some(oplog) = &mut self.oplog {
            oplog.flush().context("writing oplog.bson")?;
            oplog.get_ref().sync_all().context("syncing oplog.bson")?;
        }
        // The new entries' names are durable only once their directories are.
        let mut dirs: Vec<PathBuf> = vec![self.root.clone()];
        if let Ok(listing) = std::fs::read_dir(&self.root) {
            dirs.extend(listing.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        for dir in dirs {
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("syncing {}", dir.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_time_covers_its_whole_second() {
        assert_eq!(parse_until("1700000000,5").unwrap(), Ts::new(1_700_000_000, 5));
        assert_eq!(parse_until("2026-11-24T03:15:00Z").unwrap(), Ts::new(1_795_490_100, u32::MAX));
    }
}
