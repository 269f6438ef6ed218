//! Rewriting oplog entries before they are applied: what is skipped
//! (no-ops, internal namespaces, index-build bookkeeping, databases outside
//! the backup's scope, namespaces the filters drop), renames, transactions
//! gathered until their commit, `commitIndexBuild` as `createIndexes`.
//!
//! Entries marked `fromMigrate` are applied like any other: on a replica set
//! they are the copies `convertToCapped` and `cloneCollectionAsCapped` make
//! (chunk migrations of sharded clusters are not replayed by mb). Writes to
//! `system.views` (view and time-series definitions) are filtered and renamed
//! as the view they define; writes to `admin.system.users` / `system.roles`
//! of a backup of named databases as the database of the user or role.

use anyhow::{bail, Context, Result};
use mongodb::bson::{doc, Bson, Document, RawDocument, RawDocumentBuf};

use super::Replayer;
use crate::debug;
use crate::format::records::Ts;
use crate::mongo::oplog;

/// What one oplog entry becomes.
#[derive(Default)]
pub(super) struct Rewritten {
    pub(super) ops: Vec<Document>,
    /// The operations of one committed transaction: applied all at once.
    pub(super) transaction: bool,
}

impl Replayer {
    /// An insert, update or delete entry rewritten without decoding it
    /// (`ui` dropped, `ns` mapped; None inside: skipped); None for any other
    /// entry, which [`Replayer::rewrite`] takes.
    pub(super) fn rewrite_crud(&mut self, raw: &RawDocument, ts: Ts) -> Result<Option<Option<RawDocumentBuf>>> {
        if !matches!(raw.get_str("op"), Ok("i" | "u" | "d")) {
            return Ok(None);
        }
        let ns = raw.get_str("ns").unwrap_or("");
        if ns.ends_with(".system.views") || oplog::is_authz(ns) {
            return Ok(None); // Filtered by the document they write, decoded.
        }
        let Some(target) = self.crud_namespace(raw.get_str("ns").unwrap_or("")) else { return Ok(Some(None)) };
        let mut op = RawDocumentBuf::new();
        for element in raw {
            let (key, value) = element.with_context(|| format!("decoding oplog entry {ts}"))?;
            match key {
                "ui" | "fromMigrate" => {}
                "ns" => op.append("ns", target.as_str()),
                _ => op.append_ref(key, value),
            }
        }
        Ok(Some(Some(op)))
    }

    /// Where a CRUD operation on `ns` goes (None: skipped, counted when out of scope).
    fn crud_namespace(&mut self, ns: &str) -> Option<String> {
        let (db, coll) = ns.split_once('.')?;
        if is_internal(db, coll) {
            return None;
        }
        if !self.in_scope(db) {
            self.note_out_of_scope(db);
            return None;
        }
        self.options.ns_map.map(db, coll)
    }

    /// Turns one oplog entry into the operations to apply (none to skip it).
    pub(super) fn rewrite(&mut self, mut entry: Document, ts: Ts) -> Result<Rewritten> {
        let op = entry.get_str("op").unwrap_or("").to_string();
        let ns = entry.get_str("ns").unwrap_or("").to_string();
        if op == "n" {
            return Ok(Rewritten::default());
        }
        entry.remove("fromMigrate");
        if op == "c" && ns == "admin.$cmd" {
            let o = entry.get_document("o").cloned().unwrap_or_default();
            if o.contains_key("applyOps") {
                return self.rewrite_transaction(&entry, o, ts);
            }
            if o.contains_key("commitTransaction") || o.contains_key("abortTransaction") {
                crate::warn!(
                    "skipping {} at {ts}: prepared transactions (sharded clusters) are not replayed",
                    o.keys().next().unwrap()
                );
                return Ok(Rewritten::default());
            }
        }
        entry.remove("ui");
        Ok(Rewritten { ops: self.rewrite_op(entry)?.into_iter().collect(), transaction: false })
    }

    fn rewrite_transaction(&mut self, entry: &Document, o: Document, ts: Ts) -> Result<Rewritten> {
        let key = format!(
            "{:?}/{:?}",
            entry.get("lsid").cloned().unwrap_or(Bson::Null),
            entry.get("txnNumber").cloned().unwrap_or(Bson::Null)
        );
        let mut ops = Vec::new();
        for inner in o.get_array("applyOps").context("bad applyOps entry")? {
            let Bson::Document(inner) = inner else { bail!("bad operation in the transaction at {ts}") };
            let mut inner = inner.clone();
            inner.remove("ui");
            inner.insert("ts", bson::Timestamp::from(ts));
            if let Some(op) = self.rewrite_op(inner)? {
                ops.push(op);
            }
        }
        if entry.get_bool("partialTxn").unwrap_or(false) || o.get_bool("partialTxn").unwrap_or(false) {
            self.open_transactions.entry(key).or_default().extend(ops);
            return Ok(Rewritten::default());
        }
        let mut all = self.open_transactions.remove(&key).unwrap_or_default();
        all.extend(ops);
        Ok(Rewritten { ops: all, transaction: true })
    }

    /// Filters, renames and converts one CRUD or command operation.
    fn rewrite_op(&mut self, mut op: Document) -> Result<Option<Document>> {
        let kind = op.get_str("op").unwrap_or("").to_string();
        let ns = op.get_str("ns").unwrap_or("").to_string();
        if kind != "c" {
            if oplog::is_authz(&ns) && !self.scope.is_empty() {
                return Ok(self.rewrite_authz(op));
            }
            if let Some(db) = ns.strip_suffix(".system.views") {
                return Ok(self.rewrite_view_definition(op, db));
            }
            let Some(target) = self.crud_namespace(&ns) else { return Ok(None) };
            op.insert("ns", target);
            return Ok(Some(op));
        }
        let Some((db, coll)) = ns.split_once('.') else { return Ok(None) };
        if is_internal(db, coll) {
            return Ok(None);
        }
        let mut o = op.get_document("o").cloned().unwrap_or_default();
        if db == "admin" && !self.scope.is_empty() && self.keeps_authz() && is_authz_setup(&o) {
            return Ok(Some(op)); // The first user or role: its collection, for the writes after.
        }
        if !self.in_scope(db) {
            self.note_out_of_scope(db);
            return Ok(None);
        }
        let Some(command) = o.keys().next().cloned() else { return Ok(None) };
        match command.as_str() {
            "startIndexBuild" | "abortIndexBuild" | "setMultikeyMetadata" | "dropIdent" => return Ok(None),
            "renameCollection" => {
                let source = o.get_str("renameCollection").unwrap_or("").to_string();
                let target = o.get_str("to").unwrap_or("").to_string();
                let target_db = target.split_once('.').map_or("", |(db, _)| db);
                if !self.in_scope(target_db) {
                    // Renamed out of the backup's databases: here, it is gone.
                    self.note_out_of_scope(target_db);
                    let Some(new_source) = self.options.ns_map.map_ns(&source) else { return Ok(None) };
                    let Some((new_db, new_coll)) = new_source.split_once('.') else { return Ok(None) };
                    op.insert("ns", format!("{new_db}.$cmd"));
                    op.insert("o", doc! {"drop": new_coll});
                    return Ok(Some(op));
                }
                let (Some(new_source), Some(new_target)) =
                    (self.options.ns_map.map_ns(&source), self.options.ns_map.map_ns(&target))
                else {
                    return Ok(None);
                };
                o.insert("renameCollection", new_source);
                o.insert("to", new_target);
                op.insert("ns", "admin.$cmd");
            }
            "dropDatabase" => {
                let Some(new_db) = self.options.ns_map.map_db(db) else { return Ok(None) };
                op.insert("ns", format!("{new_db}.$cmd"));
            }
            _ => {
                let Ok(target_coll) = o.get_str(&command).map(str::to_string) else {
                    debug!("skipping command {command} on {ns}: no collection");
                    return Ok(None);
                };
                // The views' catalog holds what the filters keep: it goes where the database goes.
                let target = if target_coll == "system.views" {
                    Some(format!("{}.system.views", self.options.ns_map.map_db(db).unwrap_or_else(|| db.to_string())))
                } else {
                    self.options.ns_map.map(db, &target_coll)
                };
                let Some(target) = target else { return Ok(None) };
                let (new_db, new_coll) = target.split_once('.').context("a renamed namespace without a dot")?;
                op.insert("ns", format!("{new_db}.$cmd"));
                if command == "commitIndexBuild" {
                    // mongorestore's conversion: the finished build becomes createIndexes.
                    let indexes = o.get_array("indexes").cloned().unwrap_or_default();
                    o = doc! {"createIndexes": new_coll, "indexes": indexes};
                } else {
                    o.insert(command.clone(), new_coll);
                }
            }
        }
        op.insert("o", o);
        Ok(Some(op))
    }
}

impl Replayer {
    /// Whether the filters keep users and roles (as they do for a full backup's).
    fn keeps_authz(&self) -> bool {
        self.options.ns_map.map("admin", "system.users").as_deref() == Some("admin.system.users")
    }

    /// A write to `admin.system.users` / `system.roles` in a backup of named
    /// databases: applied when the user or role is of one of them.
    fn rewrite_authz(&mut self, op: Document) -> Option<Document> {
        let kind = op.get_str("op").unwrap_or("");
        let raw = |key: &str| op.get_document(key).ok().and_then(|d| RawDocumentBuf::from_document(d).ok());
        let (o, o2) = (raw("o"), raw("o2"));
        let id = oplog::authz_id(kind, o.as_deref(), o2.as_deref())?;
        let db = oplog::authz_database(id).to_string();
        if !self.in_scope(&db) {
            self.note_out_of_scope(&db);
            return None;
        }
        self.keeps_authz().then_some(op)
    }

    /// A write to `db.system.views`, whose `_id` names the view (or time
    /// series) it defines: kept when the filters keep that view; renamed with
    /// it (`_id`, and the `viewOn` of a definition written whole).
    fn rewrite_view_definition(&mut self, mut op: Document, db: &str) -> Option<Document> {
        if !self.in_scope(db) {
            self.note_out_of_scope(db);
            return None;
        }
        let holder = if op.get_str("op") == Ok("u") { "o2" } else { "o" };
        let view = op.get_document(holder).ok()?.get_str("_id").ok()?.to_string();
        let target = self.options.ns_map.map_ns(&view)?;
        if target == view {
            return Some(op);
        }
        let (new_db, _) = target.split_once('.')?;
        op.insert("ns", format!("{new_db}.system.views"));
        for key in ["o", "o2"] {
            let Ok(document) = op.get_document_mut(key) else { continue };
            if document.contains_key("_id") {
                document.insert("_id", target.as_str());
            }
            let source = document.get_str("viewOn").ok().and_then(|on| self.options.ns_map.map(db, on));
            if let Some((_, on)) = source.as_deref().and_then(|s| s.split_once('.')) {
                document.insert("viewOn", on);
            }
        }
        Some(op)
    }
}

/// Whether a command's `o` creates `system.users` / `system.roles` or an index on them.
fn is_authz_setup(o: &Document) -> bool {
    RawDocumentBuf::from_document(o).is_ok_and(|raw| oplog::is_authz_setup(Some(&raw)))
}

/// Namespaces a restore never writes: the server's own bookkeeping.
fn is_internal(db: &str, coll: &str) -> bool {
    matches!(db, "local" | "config")
        || coll == "system.profile"
        || coll == "system.sessions"
        || (db == "admin" && matches!(coll, "system.keys" | "system.version"))
}
