//! The mongodump directory writer (`mb-apply --to-dir`): `<db>/<coll>.bson`,
//! `<db>/<coll>.metadata.json` and `oplog.bson`, as `mongorestore
//! --oplogReplay DIR` reads them. Users and roles of a backup of named
//! databases go where mongodump `--dumpDbUsersAndRoles` puts them,
//! `<db>/$admin.system.users.bson` and `$admin.system.roles.bson` (which
//! mongorestore `--restoreDbUsersAndRoles` reads); the oplog holds the part
//! of each transaction in the backup's scope.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bson::{Bson, Document, RawDocument};

/// `mb-apply --to-dir`: mongodump's directory layout.
pub(crate) struct DirTarget {
    root: PathBuf,
    files: HashMap<String, std::io::BufWriter<std::fs::File>>,
    oplog: Option<std::io::BufWriter<std::fs::File>>,
}

impl DirTarget {
    pub(crate) fn new(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        Ok(DirTarget { root: root.to_path_buf(), files: HashMap::new(), oplog: None })
    }

    pub(crate) fn path(&self, ns: &str, suffix: &str) -> Result<PathBuf> {
        let (db, coll) = ns.split_once('.').context("bad namespace")?;
        let dir = self.root.join(crate::format::tar::escape(db));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir.join(format!("{}{suffix}", crate::format::tar::escape(coll))))
    }

    pub(crate) fn metadata(&mut self, ns: &str, data_ns: &str, metadata: &Document) -> Result<()> {
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

    pub(crate) fn append(&mut self, ns: &str, data: &[u8]) -> Result<()> {
        use std::io::Write;
        let file = self.files.get_mut(ns).with_context(|| format!("{ns}: data before its metadata"))?;
        file.write_all(data).with_context(|| format!("writing {ns}"))
    }

    /// Creates `<db>/$admin.<collection>.bson` (`system.users` or
    /// `system.roles`) for each of `databases`, empty until [`DirTarget::append_authz`].
    pub(crate) fn authz_files(&mut self, collection: &str, databases: &[String]) -> Result<()> {
        for db in databases {
            let key = format!("{db}.$admin.{collection}");
            if !self.files.contains_key(&key) {
                let file = std::fs::File::create(self.path(&key, ".bson")?)?;
                self.files.insert(key, std::io::BufWriter::new(file));
            }
        }
        Ok(())
    }

    /// Users or roles (`collection`): each into its database's file.
    pub(crate) fn append_authz(&mut self, collection: &str, data: &[u8]) -> Result<()> {
        for document in crate::format::tar::split_documents(data)? {
            let db = RawDocument::from_bytes(document)?.get_str("db").context("a user or role without its db")?;
            self.append(&format!("{db}.$admin.{collection}"), document)?;
        }
        Ok(())
    }

    /// Appends an oplog entry, only its part in `scope` (the backup's
    /// databases; empty: all): a transaction's operations on other databases
    /// are left out, as `mb-apply` leaves them out.
    pub(crate) fn append_oplog(&mut self, document: &[u8], scope: &[String]) -> Result<()> {
        match in_scope_part(document, scope)? {
            Part::Whole => self.write_oplog(document),
            Part::Rewritten(part) => self.write_oplog(&part),
            Part::Nothing => Ok(()),
        }
    }

    fn write_oplog(&mut self, document: &[u8]) -> Result<()> {
        use std::io::Write;
        if self.oplog.is_none() {
            self.oplog = Some(std::io::BufWriter::new(std::fs::File::create(self.root.join("oplog.bson"))?));
        }
        self.oplog.as_mut().unwrap().write_all(document).context("writing oplog.bson")
    }

    pub(crate) fn finish(&mut self) -> Result<()> {
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

/// What of an oplog entry goes into `oplog.bson`.
enum Part {
    Whole,
    Rewritten(Vec<u8>),
    Nothing,
}

/// The part of an oplog entry in `scope`: the entry itself, a transaction
/// (`applyOps` on `admin.$cmd`) with only its operations on `scope`, or
/// nothing when a transaction that is one entry has none left. The entries
/// of a transaction written in several (`partialTxn`, linked by
/// `prevOpTime`) stay, emptied if need be, so the chain holds.
fn in_scope_part(entry: &[u8], scope: &[String]) -> Result<Part> {
    let raw = RawDocument::from_bytes(entry)?;
    let transaction = raw.get_str("ns") == Ok("admin.$cmd")
        && raw.get_document("o").is_ok_and(|o| o.get("applyOps").ok().flatten().is_some());
    if scope.is_empty() || !transaction {
        return Ok(Part::Whole);
    }
    let in_scope = |op: &Bson| {
        let db = op.as_document().and_then(|op| op.get_str("ns").ok()).and_then(|ns| ns.split_once('.'));
        db.is_some_and(|(db, _)| scope.iter().any(|s| s == db))
    };
    let mut entry: Document = raw.try_into()?;
    let o = entry.get_document("o")?;
    let ops = o.get_array("applyOps")?;
    if ops.iter().all(in_scope) {
        return Ok(Part::Whole);
    }
    let kept: Vec<Bson> = ops.iter().filter(|op| in_scope(op)).cloned().collect();
    let first = entry.get_document("prevOpTime").ok().and_then(|p| p.get_timestamp("ts").ok());
    let chained = o.get_bool("partialTxn").unwrap_or(false)
        || entry.get_bool("partialTxn").unwrap_or(false)
        || first.is_some_and(|ts| ts.time != 0 || ts.increment != 0);
    if kept.is_empty() && !chained {
        return Ok(Part::Nothing);
    }
    entry.get_document_mut("o")?.insert("applyOps", kept);
    Ok(Part::Rewritten(bson::to_vec(&entry)?))
}
