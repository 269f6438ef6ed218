//! `mb-dump`: a database, several, the whole instance, or an oplog slice, as a
//! tar stream on stdout (layout: `docs/FORMAT.md`).
//!
//! ```text
//! Usage: mb-dump [--uri URI | --config FILE] [--db NAME]... [-o FILE]
//!        mb-dump --range RECORD [--db NAME]...      (an oplog slice, or full)
//!
//! Full dump: collections are read in parallel (--parallel), each cut into
//! chunks of at most --chunk-size bytes, so memory stays bounded whatever the
//! size of the database. On a replica set the oplog position is taken before
//! the first read and the oplog written during the dump is carried too, so a
//! restore is consistent at the dump's end point (like `mongodump --oplog`,
//! also for single databases). If the oplog rolls past that start during the
//! dump, the dump fails (exit 5) rather than produce an inconsistent backup.
//!
//! With --range, reads a range record from `mb-oplog-range` (a file or `-`):
//! kind "full" makes a full dump; kind "oplog" dumps the oplog entries in
//! (from, to] for the databases, and fails (exit 5) if `from` is no longer in
//! the oplog.
//!
//! Every read of a run goes to one replica set member, chosen once by the
//! read preference (--read-preference, config read_preference): with
//! --range, the member that decided the range, or one that has applied the
//! oplog through `to`; a member behind `to` is waited for up to --max-lag,
//! then the run fails naming it.
//! ```

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};
use mongodb::{Client, Database};
use tokio::sync::mpsc;

use crate::format::records::{self, CollectionEntry, Header, Kind, Manifest, OplogEntry, RangeRecord, Ts, TAR_FORMAT};
use crate::format::tar::{Entry, EntryName, TarWriter};
use crate::mongo::oplog;
use crate::mongo::{self, ConnectArgs};
use crate::{info, warn};

/// `mb-dump`'s flags.
#[derive(clap::Parser, Debug)]
#[command(name = "mb-dump", version, about = "Dump MongoDB databases or an oplog slice as a tar stream on stdout")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Database to dump (repeat or comma-separate); default: the config's
    /// db_name, else every database but local and config (admin included).
    #[arg(long = "db", value_delimiter = ',', value_name = "NAME")]
    databases: Vec<String>,
    /// Also dump the users and roles defined on the dumped databases.
    #[arg(long)]
    users_and_roles: bool,
    /// Range record from mb-oplog-range (a file, or - for stdin).
    #[arg(long, value_name = "RECORD")]
    range: Option<PathBuf>,
    /// Do not carry the oplog written during a full dump (replica sets).
    #[arg(long)]
    no_oplog: bool,
    /// Collections read at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    parallel: usize,
    /// Largest chunk entry, in bytes (a document larger than this gets a chunk of its own).
    #[arg(long, default_value = "8MiB", value_parser = crate::cli::parse_size, value_name = "SIZE")]
    chunk_size: u64,
    /// Also write the manifest record to FILE (the scripts' checkpoint source).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Write the stream to FILE instead of stdout (`-` is stdout).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    log: crate::cli::LogArgs,
}

/// Runs `mb-dump`.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    args.log.apply();
    if args.parallel == 0 {
        return Err(crate::cli::Failure {
            code: crate::cli::EXIT_USAGE,
            message: "--parallel must be at least 1".into(),
        }
        .into());
    }
    // -o FILE: a temp file beside it, renamed into place only once the dump
    // is complete; a failing dump leaves no partial FILE (the temp goes on drop).
    let (out, temp): (Box<dyn Write + Send>, _) = match args.output.as_deref().filter(|p| !crate::cli::is_std(Some(p)))
    {
        None => (crate::cli::create_output(None)?, None),
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let temp = tempfile::Builder::new()
                .prefix(".mb-dump-")
                .tempfile_in(dir)
                .with_context(|| format!("creating a temp file beside {}", path.display()))?;
            (Box::new(temp.reopen().with_context(|| format!("opening {}", temp.path().display()))?), Some((temp, path)))
        }
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let manifest = runtime.block_on(dump(&args, out))?;
    if let Some((temp, path)) = temp {
        temp.as_file().sync_all().with_context(|| format!("syncing {}", temp.path().display()))?;
        temp.persist(path).with_context(|| format!("renaming into {}", path.display()))?;
    }
    if let Some(path) = &args.manifest {
        write_record_file(path, &manifest)?;
    }
    Ok(())
}

/// Writes a JSON record to a file atomically (temp file, fsync, rename).
pub fn write_record_file(path: &std::path::Path, value: &impl serde::Serialize) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing {}", path.display()))?;
    serde_json::to_writer_pretty(&mut tmp, value)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// What one collection task dumps.
#[derive(Debug, Clone)]
struct CollectionPlan {
    db: String,
    /// The name in listCollections (the view's name for timeseries).
    name: String,
    /// `collection`, `view` or `timeseries`.
    kind: String,
    /// listCollections' `options`.
    options: Document,
    /// listCollections' `info.uuid`, as hex.
    uuid: Option<String>,
    /// A filter on the documents read (users and roles of some databases).
    filter: Document,
}

async fn dump(args: &Args, out: Box<dyn Write + Send>) -> Result<Manifest> {
    let range = match &args.range {
        Some(path) => Some(read_range(path)?),
        None => None,
    };
    let conn = args.connect.connect_for("mb-dump", need_of(range.as_ref())).await?;
    conn.run(async |conn| dump_from(conn, args, range, out).await).await
}

/// A slice is read from the member that decided its range, or from one
/// proven to have applied through the range's end, never from one behind it.
fn need_of(range: Option<&RangeRecord>) -> mongo::Need {
    mongo::Need {
        ahead_of: range.filter(|r| r.kind == Kind::Oplog).and_then(|r| r.to),
        prefer: range.and_then(|r| r.member.clone()),
        ..mongo::Need::default()
    }
}

async fn dump_from(
    conn: &mongo::Connection,
    args: &Args,
    range: Option<RangeRecord>,
    out: Box<dyn Write + Send>,
) -> Result<Manifest> {
    let client = &conn.client;
    let server = mongo::server_info(client).await?;
    let config = crate::settings::config::load_optional(args.connect.config.as_deref())?;
    let users_and_roles = args.users_and_roles
        || config.as_ref().and_then(|c| c.get("users_and_roles")).is_some_and(|v| matches!(v, "1" | "true" | "yes"));

    let mut databases = args.databases.clone();
    if databases.is_empty() {
        if let Some(range) = &range {
            databases = range.databases.clone();
        } else if let Some(config) = &config {
            databases = config.databases();
        }
    }
    let kind = range.as_ref().map_or(Kind::Full, |r| r.kind);
    if kind == Kind::Full {
        check_databases_exist(client, &databases, &conn.hosts, args.users_and_roles).await?;
    }
    let created = records::now_rfc3339();

    let mut header = Header {
        format: TAR_FORMAT.into(),
        kind,
        created: created.clone(),
        tool: format!("mb {}", env!("CARGO_PKG_VERSION")),
        source: conn.hosts.clone(),
        databases: databases.clone(),
        oplog_from: None,
        oplog_to: None,
    };

    let (tx, rx) = mpsc::channel::<Entry>(2);
    let mtime = records::now_secs().max(0) as u64;
    let pool = BufferPool::default();
    let writer_pool = pool.clone();
    let writer = tokio::task::spawn_blocking(move || write_entries(rx, out, mtime, writer_pool));

    let result = async {
        if kind == Kind::Oplog {
            let range = range.as_ref().unwrap();
            if server.set_name.is_none() {
                bail!("the server is not a replica set member: it has no oplog to back up incrementally");
            }
            let (from, to) = (
                range.from.context("oplog range record has no `from`")?,
                range.to.context("oplog range record has no `to`")?,
            );
            // A lost start is final (exit 5), a lagging end may pass: check in that order.
            oplog::check_reaches(client, from).await?;
            conn.wait_applied(to, "the range's end").await?;
            // The proof, in the data: this member's oplog reaches the range's end.
            let newest = oplog::newest(client).await?;
            if newest < to {
                bail!(
                    "{} has applied the oplog only through {newest}, {} s before the range's end {to}",
                    conn.member.as_deref().unwrap_or(&conn.hosts),
                    to.t.saturating_sub(newest.t)
                );
            }
            header.oplog_from = Some(from);
            header.oplog_to = Some(to);
            send(&tx, Entry::json(EntryName::Header.path(), &header)?).await?;
            info!("dumping oplog ({from}, {to}] of {}", describe(&databases));
            let oplog = dump_oplog(client, &databases, Bound::After(from), to, args.chunk_size, &pool, &tx).await?;
            return Ok((Vec::new(), Some(oplog), Some(to)));
        }

        let capture_oplog = server.set_name.is_some() && !args.no_oplog;
        let start = if capture_oplog { Some(oplog::capture_start(client).await?) } else { None };
        if server.set_name.is_none() {
            warn!("the server is not a replica set member: the dump is only consistent if nothing writes during it");
        }
        header.oplog_from = start;
        send(&tx, Entry::json(EntryName::Header.path(), &header)?).await?;

        let whole_instance = databases.is_empty();
        let db_names = if whole_instance { mongo::user_databases(client, true).await? } else { databases.clone() };
        let mut plans = Vec::new();
        for db in &db_names {
            plans.extend(plan_database(&client.database(db), whole_instance).await?);
        }
        if users_and_roles && !whole_instance {
            plans.extend(plan_users_and_roles(client, &db_names).await?);
        }
        info!("dumping {} collections of {}", plans.len(), describe(&db_names));
        let collections: Vec<CollectionEntry> = futures_util::stream::iter(plans)
            .map(|plan| dump_collection(client, plan, args.chunk_size, &pool, &tx))
            .buffer_unordered(args.parallel)
            .try_collect()
            .await?;

        let (oplog, consistent_at) = match start {
            Some(start) => {
                let to = oplog::newest(client).await?;
                let entry = dump_oplog(client, &databases, Bound::From(start), to, args.chunk_size, &pool, &tx).await?;
                (Some(entry), Some(to))
            }
            None => (None, None),
        };
        Ok((collections, oplog, consistent_at))
    }
    .await;

    let (mut collections, oplog, consistent_at) = match result {
        Ok(parts) => parts,
        Err(err) => {
            drop(tx);
            // If the writer failed (a closed pipe, a full disk), that is the cause.
            if let Ok(Err(write_err)) = writer.await {
                return Err(write_err);
            }
            return Err(err);
        }
    };
    collections.sort_by(|a, b| (&a.db, &a.name).cmp(&(&b.db, &b.name)));
    let manifest = Manifest {
        format: TAR_FORMAT.into(),
        kind,
        created,
        finished: records::now_rfc3339(),
        source: conn.hosts.clone(),
        databases,
        collections,
        oplog,
        consistent_at,
    };
    send(&tx, Entry::json(EntryName::Manifest.path(), &manifest)?).await?;
    drop(tx);
    writer.await.context("the tar writer panicked")??;
    let docs: u64 = manifest.collections.iter().map(|c| c.docs).sum();
    let bytes: u64 = manifest.collections.iter().map(|c| c.bytes).sum();
    match (&manifest.oplog, manifest.consistent_at) {
        (Some(o), Some(at)) => info!(
            "done: {} collections, {docs} documents, {bytes} bytes, {} oplog entries; consistent at {at}",
            manifest.collections.len(),
            o.count
        ),
        _ => info!("done: {} collections, {docs} documents, {bytes} bytes", manifest.collections.len()),
    }
    Ok(manifest)
}

/// A misspelled db_name would otherwise store an empty backup every run. A
/// database without collections is not listed; with --users-and-roles, one
/// that defines users or roles still counts.
async fn check_databases_exist(client: &Client, databases: &[String], hosts: &str, users: bool) -> Result<()> {
    if databases.is_empty() {
        return Ok(());
    }
    let existing = client.list_database_names().await.context("listing databases")?;
    let mut missing: Vec<&str> = Vec::new();
    for db in databases.iter().filter(|db| !existing.contains(db)) {
        if users && defines_users_or_roles(&client.database(db)).await? {
            continue;
        }
        missing.push(db);
    }
    if !missing.is_empty() {
        bail!(
            "no database {} on {hosts} (check db_name or --db): refusing to store an empty backup",
            missing.join(", ")
        );
    }
    Ok(())
}

async fn defines_users_or_roles(db: &Database) -> Result<bool> {
    for (command, field) in [("usersInfo", "users"), ("rolesInfo", "roles")] {
        let reply =
            db.run_command(doc! {command: 1}).await.with_context(|| format!("asking {command} of {}", db.name()))?;
        if reply.get_array(field).is_ok_and(|list| !list.is_empty()) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn describe(databases: &[String]) -> String {
    if databases.is_empty() {
        "the whole instance".into()
    } else {
        databases.join(", ")
    }
}

fn read_range(path: &std::path::Path) -> Result<RangeRecord> {
    let what = if crate::cli::is_std(Some(path)) {
        "the range record on stdin".into()
    } else {
        format!("range record {}", path.display())
    };
    let record: RangeRecord = records::read_json(crate::cli::open_input(Some(path))?, &what)?;
    if record.format != records::RANGE_FORMAT {
        bail!("range record has format {:?}, expected {:?}", record.format, records::RANGE_FORMAT);
    }
    Ok(record)
}

async fn send(tx: &mpsc::Sender<Entry>, entry: Entry) -> Result<()> {
    tx.send(entry).await.map_err(|_| anyhow::anyhow!("the output closed early"))
}

fn write_entries(
    mut rx: mpsc::Receiver<Entry>,
    out: Box<dyn Write + Send>,
    mtime: u64,
    pool: BufferPool,
) -> Result<()> {
    let mut tar = TarWriter::new(std::io::BufWriter::with_capacity(1 << 20, out), mtime);
    while let Some(entry) = rx.blocking_recv() {
        tar.append(&entry).context("writing the output")?;
        pool.give(entry.data);
    }
    tar.finish()?.flush().context("writing the output")?;
    Ok(())
}

/// Lists what to dump in one database: collections, views, timeseries.
async fn plan_database(db: &Database, whole_instance: bool) -> Result<Vec<CollectionPlan>> {
    let specs = mongo::cursor_command(db, doc! {"listCollections": 1})
        .await
        .with_context(|| format!("listing collections of {}", db.name()))?;
    let mut plans = Vec::new();
    for spec in specs {
        let name = spec.get_str("name").context("listCollections entry without a name")?.to_string();
        let kind = spec.get_str("type").unwrap_or("collection").to_string();
        if name.starts_with("system.") && !keep_system_collection(db.name(), &name, whole_instance) {
            continue;
        }
        let uuid = match spec.get_document("info").ok().and_then(|i| i.get("uuid")) {
            Some(Bson::Binary(b)) => Some(b.bytes.iter().map(|b| format!("{b:02x}")).collect()),
            _ => None,
        };
        plans.push(CollectionPlan {
            db: db.name().to_string(),
            name,
            kind,
            options: spec.get_document("options").cloned().unwrap_or_default(),
            uuid,
            filter: Document::new(),
        });
    }
    Ok(plans)
}

/// System collections that hold user data (as mongodump keeps them); views
/// and timeseries buckets are carried through their owners instead.
fn keep_system_collection(db: &str, name: &str, whole_instance: bool) -> bool {
    name == "system.js"
        || (whole_instance && db == "admin" && matches!(name, "system.users" | "system.roles" | "system.version"))
}

async fn plan_users_and_roles(client: &Client, databases: &[String]) -> Result<Vec<CollectionPlan>> {
    let admin = client.database("admin");
    let names = admin.list_collection_names().await.context("listing admin collections")?;
    Ok(["system.users", "system.roles"]
        .into_iter()
        .filter(|name| names.iter().any(|n| n == name))
        .map(|name| CollectionPlan {
            db: "admin".into(),
            name: name.into(),
            kind: "collection".into(),
            options: Document::new(),
            uuid: None,
            filter: doc! {"db": {"$in": databases}},
        })
        .collect())
}

/// Writes one collection's metadata and chunks; returns its manifest entry.
async fn dump_collection(
    client: &Client,
    plan: CollectionPlan,
    chunk_size: u64,
    pool: &BufferPool,
    tx: &mpsc::Sender<Entry>,
) -> Result<CollectionEntry> {
    let db = client.database(&plan.db);
    let ns = format!("{}.{}", plan.db, plan.name);
    let indexes = if plan.kind == "view" {
        Vec::new()
    } else {
        mongo::cursor_command(&db, doc! {"listIndexes": &plan.name})
            .await
            .with_context(|| format!("listing indexes of {ns}"))?
    };
    let metadata = serde_json::to_vec(&metadata_json(&plan, indexes))?;
    // Covered like the data: a CRC-64 in a PAX record (checked before the
    // metadata is used) and in the manifest.
    let metadata_crc64 = crate::crc64::checksum(&metadata);
    let metadata_entry = Entry {
        path: EntryName::Metadata { db: plan.db.clone(), coll: plan.name.clone() }.path(),
        data: metadata,
        pax: vec![(crate::format::tar::PAX_CRC64, metadata_crc64.to_string())],
    };
    send(tx, metadata_entry).await?;

    let mut entry = CollectionEntry {
        db: plan.db.clone(),
        name: plan.name.clone(),
        kind: plan.kind.clone(),
        docs: 0,
        bytes: 0,
        crc64: 0,
        chunks: 0,
        metadata_crc64: Some(metadata_crc64),
    };
    // Timeseries data lives in its buckets collection; views have none.
    let data_collection = match plan.kind.as_str() {
        "view" => return Ok(entry),
        "timeseries" => format!("system.buckets.{}", plan.name),
        _ => plan.name.clone(),
    };
    let collection = db.collection::<RawDocumentBuf>(&data_collection);
    let mut cursor = collection.find(plan.filter.clone()).await.with_context(|| format!("reading {ns}"))?;
    let mut chunks = ChunkBuilder::new(chunk_size, pool.clone(), |seq| {
        EntryName::Chunk { db: plan.db.clone(), coll: plan.name.clone(), seq }.path()
    });
    while cursor.advance().await.with_context(|| format!("reading {ns}"))? {
        if let Some(full) = chunks.push(cursor.current().as_bytes()) {
            send(tx, full).await?;
        }
    }
    if let Some(last) = chunks.finish() {
        send(tx, last).await?;
    }
    (entry.docs, entry.bytes, entry.crc64, entry.chunks) = chunks.totals();
    crate::debug!("dumped {ns}: {} documents", entry.docs);
    Ok(entry)
}

/// mongodump's `<coll>.metadata.json`, as canonical Extended JSON v2.
fn metadata_json(plan: &CollectionPlan, indexes: Vec<Document>) -> serde_json::Value {
    let indexes: Vec<Bson> = indexes
        .into_iter()
        .map(|mut index| {
            index.remove("ns");
            Bson::Document(index)
        })
        .collect();
    let mut metadata = doc! {
        "options": plan.options.clone(),
        "indexes": indexes,
        "collectionName": &plan.name,
        "type": &plan.kind,
    };
    if let Some(uuid) = &plan.uuid {
        metadata.insert("uuid", uuid);
    }
    Bson::Document(metadata).into_canonical_extjson()
}

/// Cuts a stream of BSON documents into chunk entries of bounded size.
pub struct ChunkBuilder<F: Fn(u64) -> String> {
    limit: usize,
    name: F,
    pool: BufferPool,
    buffer: Vec<u8>,
    docs_in_buffer: u64,
    seq: u64,
    docs: u64,
    bytes: u64,
    crc: u64,
}

impl<F: Fn(u64) -> String> ChunkBuilder<F> {
    /// A builder naming chunk `seq` with `name(seq)`, taking buffers from `pool`.
    pub fn new(limit: u64, pool: BufferPool, name: F) -> Self {
        let limit = limit.max(1) as usize;
        ChunkBuilder {
            limit,
            name,
            pool,
            buffer: Vec::new(),
            docs_in_buffer: 0,
            seq: 0,
            docs: 0,
            bytes: 0,
            crc: Default::default(),
        }
    }

    /// Adds a document; returns a full chunk when the limit would be passed.
    pub fn push(&mut self, document: &[u8]) -> Option<Entry> {
        let full =
            if !self.buffer.is_empty() && self.buffer.len() + document.len() > self.limit { self.take() } else { None };
        if self.buffer.capacity() == 0 {
            // The whole chunk at once (growing by doubling copied each chunk
            // almost twice), reusing a written one when there is one.
            self.buffer = self.pool.take(self.limit);
        }
        self.buffer.extend_from_slice(document);
        self.docs_in_buffer += 1;
        full
    }

    /// The last, partial chunk, if any.
    pub fn finish(&mut self) -> Option<Entry> {
        self.take()
    }

    fn take(&mut self) -> Option<Entry> {
        if self.buffer.is_empty() {
            return None;
        }
        self.seq += 1;
        let data = std::mem::take(&mut self.buffer);
        // One pass over the bytes: the collection's CRC is combined from its chunks'.
        let crc = crate::crc64::checksum(&data);
        self.crc = crate::crc64::combine(self.crc, crc, data.len() as u64);
        self.docs += self.docs_in_buffer;
        self.bytes += data.len() as u64;
        let entry = Entry::chunk((self.name)(self.seq), data, self.docs_in_buffer, crc);
        self.docs_in_buffer = 0;
        Some(entry)
    }

    /// (documents, bytes, CRC-64 of all chunks, chunks) written so far.
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        (self.docs, self.bytes, self.crc, self.seq)
    }
}

/// Chunk buffers the writer is done with, for the next chunks: a fresh
/// multi-MiB allocation is mapped anew by the allocator and faults in every
/// page on first touch, which cost more than the CRC. It never holds more
/// buffers than were in flight at once, so the memory bound is unchanged.
#[derive(Clone, Default)]
pub struct BufferPool(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    /// Most idle buffers kept.
    const KEEP: usize = 16;

    /// An empty buffer of at least `capacity` bytes.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut idle| idle.pop());
        match reused {
            Some(mut buffer) => {
                buffer.reserve(capacity);
                buffer
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Returns a written buffer (small ones, JSON records, are not worth keeping).
    pub fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() < 1 << 20 {
            return;
        }
        buffer.clear();
        if let Ok(mut idle) = self.0.lock() {
            if idle.len() < Self::KEEP {
                idle.push(buffer);
            }
        }
    }
}

/// Where an oplog read starts.
#[derive(Clone, Copy, Debug)]
pub enum Bound {
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
async fn dump_oplog(
    client: &Client,
    databases: &[String],
    bound: Bound,
    to: Ts,
    chunk_size: u64,
    pool: &BufferPool,
    tx: &mpsc::Sender<Entry>,
) -> Result<OplogEntry> {
    oplog::check_reaches(client, bound.ts()).await?;
    let ts_filter = match bound {
        Bound::From(ts) => doc! {"$gte": bson::Timestamp::from(ts), "$lte": bson::Timestamp::from(to)},
        Bound::After(ts) => doc! {"$gt": bson::Timestamp::from(ts), "$lte": bson::Timestamp::from(to)},
    };
    let filter = oplog::dump_filter(databases, ts_filter);
    let oplog_coll = client.database("local").collection::<RawDocumentBuf>("oplog.rs");
    let mut cursor = oplog_coll.find(filter).await.context("reading the oplog")?;
    let mut chunks = ChunkBuilder::new(chunk_size, pool.clone(), |seq| EntryName::Oplog { seq }.path());
    let mut last: Option<Ts> = None;
    while cursor.advance().await.context("reading the oplog")? {
        let entry = cursor.current();
        let ts = oplog::entry_ts(entry)?;
        if last.is_some_and(|prev| ts <= prev) {
            bail!("the oplog came back out of order at {ts}");
        }
        last = Some(ts);
        if !oplog::keep_for_databases(entry, databases)? {
            continue;
        }
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
