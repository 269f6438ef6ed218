//! The dump driver behind `mb-dump`: a full dump (collections in parallel,
//! then the oplog written meanwhile) or an oplog slice, as a tar stream.

mod collections;
mod read;
mod slice;
mod split;

use std::io::Write;

use anyhow::{bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use mongodb::Client;
use tokio::sync::mpsc;

use self::collections::{defines_users_or_roles, dump_collection, plan_database, plan_users_and_roles};
use self::slice::{dump_oplog, Bound};
use crate::format::records::{CollectionEntry, Header, Kind, Manifest, RangeRecord, TAR_FORMAT};
use crate::format::tar::chunk::BufferPool;
use crate::format::tar::{Entry, EntryName, TarWriter};
use crate::mongo;
use crate::mongo::oplog;
use crate::{info, warn};

/// What `mb-dump` dumps and how (its flags and config, resolved).
#[derive(Debug, Clone)]
pub(crate) struct DumpOptions {
    /// Databases to dump (empty: the whole instance).
    pub databases: Vec<String>,
    /// Also dump the users and roles of the databases (flag or config).
    pub users_and_roles: bool,
    /// `--users-and-roles` as given: a database defining only users counts as existing.
    pub users_and_roles_flag: bool,
    /// Do not carry the oplog written during a full dump.
    pub no_oplog: bool,
    /// Cursors open at once (collections, or ranges of a big one).
    pub parallel: usize,
    /// A collection with more data than this is read in ranges of its record ids.
    pub split_above: u64,
    /// Largest chunk entry, in bytes.
    pub chunk_size: u64,
    /// Documents and bytes per collection, and oplog entries, as they are read.
    pub progress: crate::cli::progress::Progress,
}

/// Dumps what `options` and `range` say from `conn` to `out` as a tar stream;
/// returns its manifest.
pub(crate) async fn dump_from(
    conn: &mongo::Connection,
    options: &DumpOptions,
    range: Option<RangeRecord>,
    out: Box<dyn Write + Send>,
) -> Result<Manifest> {
    let client = &conn.client;
    let server = mongo::server_info(client).await?;
    let databases = options.databases.clone();
    let kind = range.as_ref().map_or(Kind::Full, |r| r.kind);
    if kind == Kind::Full {
        check_databases_exist(client, &databases, &conn.hosts, options.users_and_roles_flag).await?;
    }
    let created = crate::format::time::now_rfc3339();

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
    let mtime = crate::format::time::now_secs().max(0) as u64;
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
            let oplog = dump_oplog(client, &databases, Bound::After(from), to, options, &pool, &tx).await?;
            return Ok((Vec::new(), Some(oplog), Some(to)));
        }

        let capture_oplog = server.set_name.is_some() && !options.no_oplog;
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
        if options.users_and_roles && !whole_instance {
            plans.extend(plan_users_and_roles(&db_names));
        }
        info!("dumping {} collections of {}", plans.len(), describe(&db_names));
        let readers = tokio::sync::Semaphore::new(options.parallel.max(1));
        let collections: Vec<CollectionEntry> = futures_util::stream::iter(plans)
            .map(|plan| dump_collection(client, plan, options, &pool, &tx, &readers, server.resumable_scans))
            .buffer_unordered(options.parallel)
            .try_collect()
            .await?;

        let (oplog, consistent_at) = match start {
            Some(start) => {
                let to = oplog::newest(client).await?;
                let entry = dump_oplog(client, &databases, Bound::From(start), to, options, &pool, &tx).await?;
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
        finished: crate::format::time::now_rfc3339(),
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

/// The databases for a log line.
fn describe(databases: &[String]) -> String {
    if databases.is_empty() {
        "the whole instance".into()
    } else {
        databases.join(", ")
    }
}

/// Sends an entry to the writer; fails if it has stopped.
pub(crate) async fn send(tx: &mpsc::Sender<Entry>, entry: Entry) -> Result<()> {
    tx.send(entry).await.map_err(|_| anyhow::anyhow!("the output closed early"))
}

/// Writes the entries to the output as tar, on a blocking thread; gives
/// written chunk buffers back to the pool.
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
