//! The restore driver behind `mb-apply`: reads checked events from the tar
//! stream and sends them to a server, a mongodump directory, or nowhere
//! (--dry-run), checking each archive against its manifest and the chain.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, Result};
use mongodb::bson::Document;
use mongodb::Client;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

mod data_target;
mod finish;

use self::data_target::DataTarget;
use self::finish::finish_data;
use super::dump_dir::DirTarget;
use super::ns::NsMap;
use super::oplog::{Flow, ReplayOptions, Replayer};
use super::restore::{
    create_collection, insert_chunk, probe_empty_timestamps, Authz, EmptyTimestamps, Inserted, PendingIndexes,
};
use crate::cli::integrity;
use crate::format::check::{check_chain, check_manifest, Tally};
use crate::format::records::{ApplyRecord, Header, Kind, Manifest, Ts, APPLY_FORMAT, TAR_FORMAT};
use crate::format::tar::chunk::BufferPool;
use crate::format::tar::read::{read_stream, Chunk, Event};
use crate::format::tar::split_documents;
use crate::info;

/// How `mb-apply` restores (its flags, past parsing).
#[derive(Debug, Clone)]
pub(crate) struct ApplyOptions {
    /// Drop the backup's scope on the target before a full backup.
    pub drop: bool,
    /// Conflicting documents exit 0 (the target's stay).
    pub keep_existing: bool,
    /// The input is slices only, replayed onto the target as it is.
    pub oplog_only: bool,
    /// Chunks inserted at once.
    pub parallel: usize,
    /// Do not build indexes.
    pub no_indexes: bool,
    /// Most operations in one applyOps.
    pub oplog_batch: usize,
    /// Documents per collection and oplog entries, as they are done.
    pub progress: crate::cli::progress::Progress,
}

/// Where `mb-apply` writes: a server, nowhere (--dry-run), or a directory (--to-dir).
pub(crate) enum Target {
    Server(Client),
    DryRun,
    Dir(DirTarget),
}

/// The state of one archive (header to manifest).
struct Archive {
    header: Header,
    tallies: BTreeMap<String, Tally>,
    oplog: Tally,
    indexes: Vec<PendingIndexes>,
    /// Source namespace to where its data goes (None: filtered out).
    targets: HashMap<String, Option<DataTarget>>,
    /// The users and roles it carries.
    authz: Authz,
    data_done: bool,
}

/// Reads `input` (one or more concatenated streams) into `target`.
pub(crate) async fn apply(
    options: &ApplyOptions,
    target: Target,
    input: Box<dyn Read + Send>,
    until: Option<Ts>,
    ns_map: NsMap,
) -> Result<ApplyRecord> {
    let (tx, mut rx) = mpsc::channel::<Result<Event>>(2);
    let mut restore = Restore::new(options, target, until, ns_map);
    let pool = restore.buffers.clone();
    let reader = tokio::task::spawn_blocking(move || read_stream(input, tx, pool));
    while let Some(event) = rx.recv().await {
        let event = event?;
        // Collect finished inserts as we go, so an error stops us early.
        while let Some(done) = restore.tasks.try_join_next() {
            count(&mut restore.record, done.context("an insert task panicked")??);
        }
        match event {
            Event::Header(header) => restore.header(header).await?,
            Event::Metadata { db, coll, metadata, crc } => restore.metadata(db, coll, metadata, crc).await?,
            Event::Chunk(chunk) => restore.chunk(chunk).await?,
            Event::Oplog { seq, data, docs, crc } => restore.oplog(seq, data, docs, crc).await?,
            Event::Manifest(manifest) => restore.manifest(manifest).await?,
        }
    }
    restore.finish(reader).await
}

/// The state of a restore across the events of the stream.
struct Restore<'a> {
    options: &'a ApplyOptions,
    target: Target,
    until: Option<Ts>,
    ns_map: NsMap,
    record: ApplyRecord,
    /// Replays the oplog on a server (None for --dry-run and --to-dir).
    replayer: Option<Replayer>,
    /// The archive being read (header read, manifest not yet).
    archive: Option<Archive>,
    /// Where the archives read so far end (the next slice starts there).
    chain_end: Option<Ts>,
    /// Past --until: the rest of the oplog is checked, not applied.
    stopped: bool,
    inserts: Arc<Semaphore>,
    tasks: JoinSet<Result<Inserted>>,
    /// How the target keeps zero timestamps of inserted documents.
    empty_ts: EmptyTimestamps,
    /// Chunk buffers, back from the inserts for the reader.
    buffers: BufferPool,
}

impl<'a> Restore<'a> {
    fn new(options: &'a ApplyOptions, target: Target, until: Option<Ts>, ns_map: NsMap) -> Self {
        let record = ApplyRecord {
            format: APPLY_FORMAT.into(),
            dry_run: matches!(target, Target::DryRun),
            ..Default::default()
        };
        let replayer = match &target {
            Target::Server(client) => Some(Replayer::new(
                client.clone(),
                ReplayOptions {
                    until,
                    ns_map: ns_map.clone(),
                    batch_ops: options.oplog_batch.max(1),
                    dropped: options.drop,
                    workers: options.parallel,
                    ..Default::default()
                },
            )),
            _ => None,
        };
        Restore {
            options,
            target,
            until,
            ns_map,
            record,
            replayer,
            archive: None,
            chain_end: None,
            stopped: false,
            inserts: Arc::new(Semaphore::new(options.parallel)),
            tasks: JoinSet::new(),
            empty_ts: EmptyTimestamps::SetBack,
            buffers: BufferPool::default(),
        }
    }

    /// A stream begins: checked against the chain; on a server, privileges
    /// are checked first and --drop drops the backup's scope.
    async fn header(&mut self, header: Header) -> Result<()> {
        if let Some(open) = &self.archive {
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
        check_chain(&header, self.chain_end, self.record.archives, self.options.oplog_only)?;
        // A point before the full backup's oplog begins cannot be reached
        // from it: refused before anything is written.
        if let (Some(until), Some(from), 0) = (self.until, header.oplog_from, self.record.archives) {
            if until < from {
                return Err(crate::cli::usage(format!(
                    "--until {until} is before this full backup's oplog starts ({from}): it cannot restore that point"
                )));
            }
        }
        if let (Target::Server(client), 0) = (&self.target, self.record.archives) {
            let map = |db: &str| self.ns_map.map_db(db);
            crate::mongo::privileges::check_restore(client, &header.databases, map, self.options.drop).await?;
            self.empty_ts = probe_empty_timestamps(client, "admin").await;
        }
        if let Some(replayer) = &mut self.replayer {
            replayer.set_scope(&header.databases);
        }
        // Only before a full backup: a slice alone replays onto what is there.
        if let (Target::Server(client), true, Kind::Full) = (&self.target, self.options.drop, header.kind) {
            let dropped = crate::mongo::restore::drop_scope(client, &header.databases, &self.ns_map).await?;
            info!("--drop: dropped {dropped} collection(s) of the target in the backup's scope");
        }
        info!("reading {} backup from {} ({})", header.kind, header.source, header.created);
        self.archive = Some(Archive {
            header,
            tallies: BTreeMap::new(),
            oplog: Tally::default(),
            indexes: Vec::new(),
            targets: HashMap::new(),
            authz: Authz::default(),
            data_done: false,
        });
        Ok(())
    }

    /// A collection's metadata: it is created (or its file written).
    async fn metadata(&mut self, db: String, coll: String, metadata: Document, crc: u64) -> Result<()> {
        let current =
            self.archive.as_mut().ok_or_else(|| integrity("the stream does not start with mb-header.json"))?;
        let source = format!("{db}.{coll}");
        // admin.system.version holds the server's feature compatibility
        // version: never carried to another server (mongorestore skips it too).
        let mapped = if (db.as_str(), coll.as_str()) == ("admin", "system.version") {
            None
        } else {
            self.ns_map.map(&db, &coll)
        };
        let target = mapped.as_deref().map(|t| DataTarget::new(&db, &coll, t, &metadata));
        let authz = target.as_ref().and_then(|t| t.authz);
        current.targets.insert(source.clone(), target);
        current.tallies.entry(source).or_default().metadata_crc = Some(crc);
        let Some(mapped) = mapped else { return Ok(()) };
        match authz {
            Some("system.users") => current.authz.users = true,
            Some(_) => current.authz.roles = true,
            None => {}
        }
        self.record.collections += 1;
        match &mut self.target {
            Target::Server(client) => {
                if let Some(replayer) = &mut self.replayer {
                    replayer.created(&mapped);
                }
                if let Some(pending) = create_collection(client, &mapped, &metadata, self.options.drop).await? {
                    current.indexes.push(pending);
                }
            }
            Target::Dir(dir) => match authz {
                // mongodump --dumpDbUsersAndRoles: no metadata, one file per database.
                Some(authz) if !current.header.databases.is_empty() => {
                    dir.authz_files(authz, &current.header.databases)?
                }
                Some(_) => dir.metadata(&mapped, &mapped, &metadata)?,
                None => {
                    let data_ns = current.targets[&format!("{db}.{coll}")]
                        .as_ref()
                        .map(|t| t.data_ns.clone())
                        .unwrap_or_default();
                    dir.metadata(&mapped, &data_ns, &metadata)?
                }
            },
            Target::DryRun => {}
        }
        Ok(())
    }

    /// A chunk of documents: inserted (--parallel at once), written or counted.
    async fn chunk(&mut self, chunk: Chunk) -> Result<()> {
        let Chunk { db, coll, seq, data, docs, crc, zero_timestamps } = chunk;
        // Zero timestamps need keeping only where the chunk has some.
        let empty_ts = if zero_timestamps { self.empty_ts } else { EmptyTimestamps::None };
        let current =
            self.archive.as_mut().ok_or_else(|| integrity("the stream does not start with mb-header.json"))?;
        let source = format!("{db}.{coll}");
        current.tallies.entry(source.clone()).or_default().add(seq, &data, docs, crc, &source)?;
        let mapped = match current.targets.get(&source) {
            Some(mapped) => mapped.clone(),
            None => return Err(integrity(format!("{source}: data before its metadata"))),
        };
        let Some(DataTarget { data_ns, capped, authz }) = mapped else { return Ok(()) };
        let (meter, bytes) = (self.options.progress.collection(&source), data.len() as u64);
        match &mut self.target {
            Target::Server(client) => {
                let permit = self.inserts.clone().acquire_owned().await?;
                let (db, coll) = data_ns.split_once('.').unwrap();
                let collection = client.database(db).collection(coll);
                let buffers = self.buffers.clone();
                let task = async move {
                    let result =
                        insert_chunk(collection, &data, empty_ts).await.with_context(|| format!("restoring {data_ns}"));
                    buffers.give(data);
                    drop(permit);
                    if result.is_ok() {
                        meter.add(docs, bytes);
                    }
                    result
                };
                if capped {
                    // A capped collection keeps insertion order: one chunk at a time.
                    count(&mut self.record, task.await?);
                } else {
                    self.tasks.spawn(task);
                }
            }
            Target::Dir(dir) => {
                match authz {
                    Some(authz) if !current.header.databases.is_empty() => dir.append_authz(authz, &data)?,
                    Some(authz) => dir.append(&format!("admin.{authz}"), &data)?,
                    None => dir.append(&data_ns, &data)?,
                }
                self.record.documents += docs;
                meter.add(docs, bytes);
            }
            Target::DryRun => {
                self.record.documents += docs;
                meter.add(docs, bytes);
            }
        }
        Ok(())
    }

    /// A chunk of oplog entries: the data is complete, so its indexes are
    /// built first; then the entries are replayed up to --until.
    async fn oplog(&mut self, seq: u64, data: Vec<u8>, docs: u64, crc: u64) -> Result<()> {
        let current =
            self.archive.as_mut().ok_or_else(|| integrity("the stream does not start with mb-header.json"))?;
        current.oplog.add(seq, &data, docs, crc, "oplog")?;
        if !current.data_done {
            finish_data(&mut self.tasks, &mut self.record, current, &self.target, self.options).await?;
        }
        if self.stopped {
            return Ok(());
        }
        let meter = self.options.progress.oplog();
        for document in split_documents(&data)? {
            let raw =
                bson::RawDocument::from_bytes(document).map_err(|e| integrity(format!("bad oplog entry: {e}")))?;
            match (&mut self.replayer, &mut self.target) {
                (Some(replayer), _) => {
                    if replayer.push(raw).await? == Flow::Stop {
                        self.stopped = true;
                        break;
                    }
                    meter.add(1, document.len() as u64);
                }
                (None, target) => {
                    // --to-dir and --dry-run: count what a restore would apply.
                    let ts = crate::mongo::oplog::entry_ts(raw)?;
                    if self.until.is_some_and(|u| ts > u) {
                        self.stopped = true;
                        break;
                    }
                    if let Target::Dir(dir) = target {
                        dir.append_oplog(document, &current.header.databases)?;
                    }
                    self.record.oplog.entries += 1;
                    self.record.oplog.last = Some(ts);
                    meter.add(1, document.len() as u64);
                }
            }
        }
        Ok(())
    }

    /// A stream ends: everything read is checked against its manifest.
    async fn manifest(&mut self, manifest: Manifest) -> Result<()> {
        let mut current = self.archive.take().ok_or_else(|| integrity("a manifest without a header"))?;
        if !current.data_done {
            finish_data(&mut self.tasks, &mut self.record, &mut current, &self.target, self.options).await?;
        }
        let wanted = |db: &str, coll: &str| self.ns_map.map(db, coll).is_some();
        check_manifest(current.header.kind, &current.tallies, &current.oplog, &manifest, &wanted)?;
        if let Some(replayer) = &mut self.replayer {
            replayer.flush().await?;
        }
        self.chain_end = manifest.oplog.as_ref().map(|o| o.to).or(manifest.consistent_at).or(self.chain_end);
        if self.record.archives == 0 {
            self.record.restorable_from = manifest.consistent_at;
            if let (Some(until), Some(from)) = (self.until, manifest.consistent_at) {
                if until < from {
                    return Err(anyhow::anyhow!(
                        "--until {until} is before the full backup's consistency point {from}: the data cannot be \
                         the source's at {until} (restore from an older cycle)"
                    ));
                }
            }
        }
        self.record.archives += 1;
        Ok(())
    }
}

/// Adds one chunk's insert counts to the record.
fn count(record: &mut ApplyRecord, inserted: Inserted) {
    record.documents += inserted.documents;
    record.duplicates += inserted.identical;
    record.id_conflicts += inserted.id_conflicts;
    record.unique_conflicts += inserted.unique_conflicts;
}
