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

use super::dump_dir::DirTarget;
use super::ns::NsMap;
use super::oplog::{Flow, ReplayOptions, Replayer};
use super::restore::{create_collection, insert_chunk, merge_users_and_roles, Inserted, PendingIndexes};
use crate::cli::{conflict, integrity};
use crate::format::check::{check_chain, check_manifest, Tally};
use crate::format::records::{ApplyRecord, Header, Kind, Ts, APPLY_FORMAT, TAR_FORMAT};
use crate::format::tar::read::{read_stream, Event};
use crate::format::tar::split_documents;
use crate::{info, warn};

/// How `mb-apply` restores (its flags, past parsing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApplyOptions {
    /// Drop the backup's scope on the target before a full backup.
    pub drop: bool,
    /// Conflicting documents exit 0 (the target's stay).
    pub keep_existing: bool,
    /// Chunks inserted at once.
    pub parallel: usize,
    /// Do not build indexes.
    pub no_indexes: bool,
    /// Most operations in one applyOps.
    pub oplog_batch: usize,
}

/// Where `mb-apply` writes: a server, nowhere (--dry-run), or a directory (--to-dir).
pub(crate) enum Target {
    Server(Client),
    DryRun,
    Dir(DirTarget),
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

/// Reads `input` (one or more concatenated streams) into `target`.
pub(crate) async fn apply(
    options: &ApplyOptions,
    mut target: Target,
    input: Box<dyn Read + Send>,
    until: Option<Ts>,
    ns_map: NsMap,
) -> Result<ApplyRecord> {
    let (tx, mut rx) = mpsc::channel::<Result<Event>>(2);
    let reader = tokio::task::spawn_blocking(move || read_stream(input, tx));
    let mut record =
        ApplyRecord { format: APPLY_FORMAT.into(), dry_run: matches!(target, Target::DryRun), ..Default::default() };
    let mut replayer = match &target {
        Target::Server(client) => Some(Replayer::new(
            client.clone(),
            ReplayOptions {
                until,
                ns_map: ns_map.clone(),
                batch_ops: options.oplog_batch.max(1),
                dropped: options.drop,
                ..Default::default()
            },
        )),
        _ => None,
    };
    let mut archive: Option<Archive> = None;
    let mut chain_end: Option<Ts> = None;
    let mut stopped = false;
    let inserts = Arc::new(Semaphore::new(options.parallel));
    let mut tasks: JoinSet<Result<Inserted>> = JoinSet::new();

    while let Some(event) = rx.recv().await {
        let event = event?;
        // Collect finished inserts as we go, so an error stops us early.
        while let Some(done) = tasks.try_join_next() {
            count(&mut record, done.context("an insert task panicked")??);
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
                    crate::mongo::privileges::check_restore(client, &header.databases, map, options.drop).await?;
                }
                if let Some(replayer) = &mut replayer {
                    replayer.set_scope(&header.databases);
                }
                // Only before a full backup: a slice alone replays onto what is there.
                if let (Target::Server(client), true, Kind::Full) = (&target, options.drop, header.kind) {
                    let dropped = crate::mongo::restore::drop_scope(client, &header.databases, &ns_map).await?;
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
                        if let Some(pending) = create_collection(client, &mapped, &metadata, options.drop).await? {
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
                            count(&mut record, task.await?);
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
                    finish_data(&mut tasks, &mut record, current, &target, options).await?;
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
                            let ts = crate::mongo::oplog::entry_ts(raw)?;
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
                    finish_data(&mut tasks, &mut record, &mut current, &target, options).await?;
                }
                check_manifest(current.header.kind, &current.tallies, &current.oplog, &manifest)?;
                if let Some(replayer) = &mut replayer {
                    replayer.flush().await?;
                }
                chain_end = manifest.oplog.as_ref().map(|o| o.to).or(manifest.consistent_at).or(chain_end);
                record.archives += 1;
                if let Target::Server(client) = &target {
                    merge_users_and_roles(client, &current.header, options.drop).await?;
                }
            }
        }
    }
    reader.await.context("the stream reader panicked")?;
    while let Some(done) = tasks.join_next().await {
        count(&mut record, done.context("an insert task panicked")??);
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
        check_conflicts(&record, options.keep_existing)?;
    }
    Ok(record)
}

/// Adds one chunk's insert counts to the record.
fn count(record: &mut ApplyRecord, inserted: Inserted) {
    record.documents += inserted.documents;
    record.duplicates += inserted.identical;
    record.id_conflicts += inserted.id_conflicts;
    record.unique_conflicts += inserted.unique_conflicts;
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

/// Waits for every insert of the archive, then builds its indexes.
async fn finish_data(
    tasks: &mut JoinSet<Result<Inserted>>,
    record: &mut ApplyRecord,
    archive: &mut Archive,
    target: &Target,
    options: &ApplyOptions,
) -> Result<()> {
    archive.data_done = true;
    while let Some(done) = tasks.join_next().await {
        count(record, done.context("an insert task panicked")??);
    }
    let Target::Server(client) = target else { return Ok(()) };
    if options.no_indexes || archive.indexes.is_empty() {
        return Ok(());
    }
    crate::mongo::restore::build_indexes(client, std::mem::take(&mut archive.indexes), options.parallel).await
}
