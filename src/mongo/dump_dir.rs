//! The mongodump directory writer (`mb-apply --to-dir`): `<db>/<coll>.bson`,
//! `<db>/<coll>.metadata.json` and `oplog.bson`, as `mongorestore
//! --oplogReplay DIR` reads them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bson::{Bson, Document};

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

    pub(crate) fn append_oplog(&mut self, document: &[u8]) -> Result<()> {
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
