//! Replaying oplog entries into a server, as `mb-apply` does after the
//! collections are in.
//!
//! Replay goes through the server's own `applyOps`, as mongorestore does,
//! because update entries since MongoDB 5.0 use the `$v: 2` diff format that
//! only the server understands. Before that, each entry is filtered and
//! rewritten: internal namespaces, databases outside the backup's scope and
//! index-build bookkeeping are skipped, `commitIndexBuild` becomes
//! `createIndexes`, collection UUIDs are dropped (the restored collections
//! have new ones), namespaces are renamed, and transactions split over
//! several entries are applied only once their commit is in range, their
//! in-scope operations together. DDL that `applyOps` does not apply without
//! the source's UUIDs runs as the command itself.
//!
//! CRUD operations are applied as a secondary applies them: in parallel on
//! `workers` connections, partitioned by document (`replay/partition.rs`,
//! `replay/workers.rs`), each document's operations in order. Every command
//! and every transaction is a barrier: all workers finish what they were
//! given, then it is applied alone, in order. One worker is strictly in order.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{bail, Context, Result};
use mongodb::bson::{doc, Bson, Document, RawDocument, RawDocumentBuf};
use mongodb::Client;

use super::{entry_ts, server_code};
use crate::debug;
use crate::format::records::ReplayStats;
use crate::format::records::Ts;
use crate::mongo::ns::NsMap;
use partition::Partitioner;
use rewrite::Rewritten;
use workers::Workers;

mod partition;
mod rewrite;
mod workers;

/// How `mb-apply` replays oplog entries.
#[derive(Debug, Clone)]
pub(crate) struct ReplayOptions {
    /// Apply entries up to and including this timestamp, no further.
    pub until: Option<Ts>,
    /// Namespace filter and renames.
    pub ns_map: NsMap,
    /// Most CRUD operations in one `applyOps` command.
    pub batch_ops: usize,
    /// Most bytes of operations in one `applyOps` command (the limit is 16 MiB).
    pub batch_bytes: usize,
    /// `--drop`: the target's part in the backup's scope was emptied first,
    /// so a collection that already exists was made by this restore.
    pub dropped: bool,
    /// Connections applying CRUD operations in parallel (1: strictly in order).
    pub workers: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            until: None,
            ns_map: NsMap::default(),
            batch_ops: 1000,
            batch_bytes: 8 << 20,
            dropped: false,
            workers: 1,
        }
    }
}

/// Whether to keep reading entries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep going.
    Continue,
    /// The entry is past `--until`; stop reading.
    Stop,
}

/// Replays oplog entries through `applyOps`, each document's in order.
pub(crate) struct Replayer {
    client: Client,
    options: ReplayOptions,
    /// Which worker applies a CRUD operation.
    partition: Partitioner,
    workers: Workers,
    /// Inside a transaction: its CRUD operations go to one worker, in order.
    ordered: bool,
    /// Operations of transactions whose commit has not been read yet, by (lsid, txnNumber).
    open_transactions: HashMap<String, Vec<Document>>,
    /// The databases the backup holds (its header's); empty: the whole instance.
    scope: Vec<String>,
    /// Operations left out because their database is not in `scope`, by database.
    out_of_scope: BTreeMap<String, u64>,
    /// Namespaces this restore created (from the full backup, or replayed).
    created: HashSet<String>,
    stats: ReplayStats,
}

/// Most bytes of a transaction's operations applied in one `applyOps`: a
/// command may hold 16 MiB, less what wraps the operations.
const TRANSACTION_BYTES: usize = 15 << 20;

/// Server error codes that mean a DDL entry was already applied: replaying a
/// slice twice must not fail on them.
const ALREADY_APPLIED: &[i32] = &[
    26, // NamespaceNotFound
    27, // IndexNotFound
    48, // NamespaceExists
    85, // IndexOptionsConflict
    86, // IndexKeySpecsConflict
];

impl Replayer {
    /// A replayer writing to `client`.
    pub(crate) fn new(client: Client, options: ReplayOptions) -> Self {
        let workers = options.workers.max(1);
        Replayer {
            partition: Partitioner::new(workers),
            // The byte budget is shared: with N workers, N times as many batches are in flight.
            workers: Workers::new(
                client.clone(),
                workers,
                options.batch_ops,
                (options.batch_bytes / workers).max(1 << 20),
            ),
            ordered: false,
            client,
            options,
            open_transactions: HashMap::new(),
            scope: Vec::new(),
            out_of_scope: BTreeMap::new(),
            created: HashSet::new(),
            stats: ReplayStats::default(),
        }
    }

    /// Sets the backup's scope (its header's `databases`; empty: the whole
    /// instance). Operations on other databases are counted, never applied.
    pub(crate) fn set_scope(&mut self, databases: &[String]) {
        self.scope = databases.to_vec();
    }

    /// Operations left out as outside the backup's scope, by database.
    pub(crate) fn out_of_scope(&self) -> &BTreeMap<String, u64> {
        &self.out_of_scope
    }

    /// Notes a namespace the restore created from the full backup.
    pub(crate) fn created(&mut self, ns: &str) {
        self.created.insert(ns.to_string());
    }

    fn in_scope(&self, db: &str) -> bool {
        self.scope.is_empty() || self.scope.iter().any(|d| d == db)
    }

    fn note_out_of_scope(&mut self, db: &str) {
        *self.out_of_scope.entry(db.to_string()).or_default() += 1;
        self.stats.out_of_scope += 1;
    }

    /// Counts so far.
    pub(crate) fn stats(&self) -> ReplayStats {
        self.stats
    }

    /// Transactions begun but not committed within what was replayed.
    pub(crate) fn open_transactions(&self) -> usize {
        self.open_transactions.len()
    }

    /// Replays one entry (entries must come in timestamp order).
    pub(crate) async fn push(&mut self, raw: &RawDocument) -> Result<Flow> {
        let ts = entry_ts(raw)?;
        if self.options.until.is_some_and(|until| ts > until) {
            return Ok(Flow::Stop);
        }
        if self.stats.last.is_some_and(|last| ts <= last) {
            bail!("oplog entry {ts} is not newer than the one before it ({})", self.stats.last.unwrap());
        }
        self.stats.entries += 1;
        self.stats.last = Some(ts);
        if let Some(crud) = self.rewrite_crud(raw, ts)? {
            // Most entries: one insert, update or delete, rewritten without decoding.
            match crud {
                Some(op) => self.queue_raw(op, ts).await?,
                None => self.stats.skipped += 1,
            }
            return Ok(Flow::Continue);
        }
        let entry: Document = raw.try_into().with_context(|| format!("decoding oplog entry {ts}"))?;
        let Rewritten { ops, transaction } = self.rewrite(entry, ts)?;
        if ops.is_empty() {
            self.stats.skipped += 1;
        }
        if transaction {
            self.flush().await?;
            return self.apply_transaction(ops, ts).await.map(|()| Flow::Continue);
        }
        self.apply_in_order(ops, ts).await?;
        Ok(Flow::Continue)
    }

    /// Queues the writes and runs the commands as themselves, in order: a
    /// command waits for the writes before it.
    async fn apply_in_order(&mut self, ops: Vec<Document>, ts: Ts) -> Result<()> {
        for op in ops {
            if op.get_str("op") == Ok("c") {
                self.flush().await?;
                self.apply_command(op, ts).await?;
            } else {
                self.queue(op, ts).await?;
            }
        }
        Ok(())
    }

    /// Applies what is queued: the barrier before a command or a
    /// transaction, and at the end of each stream.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        self.stats.applied += self.workers.drain().await?;
        Ok(())
    }

    /// The in-scope operations of one transaction in one `applyOps`, which
    /// the server applies atomically; one too large for a command (over
    /// [`TRANSACTION_BYTES`]) goes in several, in order.
    async fn apply_transaction(&mut self, ops: Vec<Document>, ts: Ts) -> Result<()> {
        if ops.iter().any(|op| op.get_str("op") == Ok("c")) {
            // Collections and indexes created inside the transaction: the
            // commands run as themselves, in order, between the writes.
            self.ordered = true;
            let applied = self.apply_in_order(ops, ts).await;
            self.ordered = false;
            applied?;
            return self.flush().await;
        }
        let mut batches: Vec<Vec<Document>> = vec![Vec::new()];
        let mut bytes = 0;
        for op in ops {
            let size = bson::to_vec(&op).map(|v| v.len()).unwrap_or(0);
            if bytes + size > TRANSACTION_BYTES && !batches.last().unwrap().is_empty() {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            batches.last_mut().unwrap().push(op);
        }
        if batches.len() > 1 {
            debug!("the transaction committed at {ts} is too large for one command: {} applyOps", batches.len());
        }
        for batch in batches.into_iter().filter(|b| !b.is_empty()) {
            let count = batch.len() as u64;
            self.client
                .database("admin")
                .run_command(doc! {"applyOps": batch, "bypassDocumentValidation": true})
                .await
                .with_context(|| format!("applying the transaction committed at {ts}"))?;
            self.stats.applied += count;
        }
        Ok(())
    }

    /// Hands a CRUD operation to its document's worker; one that names no
    /// single document is applied alone, between barriers.
    async fn queue(&mut self, op: Document, ts: Ts) -> Result<()> {
        let op = RawDocumentBuf::from_document(&op).with_context(|| format!("encoding oplog entry {ts}"))?;
        self.queue_raw(op, ts).await
    }

    async fn queue_raw(&mut self, op: RawDocumentBuf, ts: Ts) -> Result<()> {
        let worker = if self.ordered { Some(0) } else { self.partition.worker_for(&self.client, &op).await };
        match worker {
            Some(worker) => self.workers.queue(worker, op, ts).await,
            None => {
                self.flush().await?;
                self.workers.queue(0, op, ts).await?;
                self.flush().await
            }
        }
    }

    async fn apply_command(&mut self, op: Document, ts: Ts) -> Result<()> {
        // Any command may create, drop, rename or re-index a collection.
        self.partition.forget();
        let ns = op.get_str("ns").unwrap_or("?").to_string();
        let name = op.get_document("o").ok().and_then(|o| o.keys().next().cloned()).unwrap_or_default();
        let db = ns.split_once('.').map_or(ns.as_str(), |(db, _)| db);
        let created = match (name.as_str(), op.get_document("o").ok().and_then(|o| o.get_str("create").ok())) {
            ("create", Some(coll)) => Some(format!("{db}.{coll}")),
            _ => None,
        };
        if let Some(ns) = created.as_ref().filter(|ns| !self.options.dropped && !self.created.contains(*ns)) {
            self.warn_if_exists(ns).await?;
        }
        let result = match as_command(&name, op.get_document("o")?) {
            Some(command) => self.client.database(db).run_command(command).await,
            None => {
                self.client
                    .database("admin")
                    .run_command(doc! {"applyOps": [op], "bypassDocumentValidation": true})
                    .await
            }
        };
        match result {
            Ok(_) => {
                self.stats.applied += 1;
                if let Some(ns) = created {
                    self.created.insert(ns);
                }
                Ok(())
            }
            Err(err) if server_code(&err).is_some_and(|c| ALREADY_APPLIED.contains(&c)) => {
                debug!("oplog entry {ts} ({name} on {ns}) was already applied: {err}");
                self.stats.skipped += 1;
                Ok(())
            }
            Err(err) => Err(err).with_context(|| format!("applying oplog entry {ts} ({name} on {ns})")),
        }
    }

    /// A collection the chain creates that the target already has (and this
    /// restore did not make) holds documents the backup may not have: the
    /// oplog is replayed onto them. Said, since only --drop gives an exact copy.
    async fn warn_if_exists(&mut self, ns: &str) -> Result<()> {
        let (db, coll) = ns.split_once('.').unwrap_or((ns, ""));
        let names = self
            .client
            .database(db)
            .list_collection_names()
            .filter(doc! {"name": coll})
            .await
            .with_context(|| format!("looking for {ns}"))?;
        if !names.is_empty() {
            crate::warn!(
                "{ns} already exists on the target, with documents the backup may not have: the oplog is \
                 replayed onto what it holds (restore with --drop for an exact copy)"
            );
        }
        Ok(())
    }
}

/// The command that replays a DDL entry, for the commands `applyOps` does
/// not apply or not faithfully: index builds are refused, and without the
/// source's collection UUIDs (the restored collections have new ones)
/// `dropIndexes` and `collMod` entries are accepted but change nothing.
/// None: apply the entry through `applyOps`.
fn as_command(name: &str, o: &Document) -> Option<Document> {
    match name {
        "createIndexes" => Some(create_indexes_command(o)),
        "dropIndexes" | "deleteIndexes" | "collMod" | "drop" | "dropDatabase" => Some(o.clone()),
        "renameCollection" => {
            let mut command = o.clone();
            // The oplog names the dropped target by its UUID; the command takes a flag.
            if let Some(target) = command.get("dropTarget") {
                let drop_target = !matches!(target, Bson::Boolean(false) | Bson::Null);
                command.insert("dropTarget", drop_target);
            }
            Some(command)
        }
        _ => None,
    }
}

/// The `createIndexes` command for an oplog `createIndexes` entry (one
/// index spec inline) or a converted `commitIndexBuild` (an `indexes` list).
fn create_indexes_command(o: &Document) -> Document {
    let coll = o.get_str("createIndexes").unwrap_or_default();
    let indexes = match o.get_array("indexes") {
        Ok(indexes) => indexes.clone(),
        Err(_) => {
            let mut spec = o.clone();
            spec.remove("createIndexes");
            vec![Bson::Document(spec)]
        }
    };
    doc! {"createIndexes": coll, "indexes": indexes}
}
