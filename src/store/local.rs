//! The local-directory backend: objects are files at `root/<bucket>/<key>`.
//!
//! A put writes a hidden temp file next to the target, fsyncs it, then
//! renames it into place (or hard-links it, which fails atomically if the key
//! exists, when overwriting is refused), so a failed put leaves nothing under
//! the key. `head` computes the CRC-64 by reading the file: nothing to keep
//! in sync, and it checks what is really on disk.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use anyhow::{bail, Context, Result};

use super::{
    exists_error, not_found, read_full, validate_key, ByteRange, GetObject, ListPage, ObjectMeta, PutOptions,
    PutResult, Store, StoreError,
};
use crate::crc64::Crc64;

const TMP_MARK: &str = ".mb-tmp-";
const BUF: usize = 1 << 20;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A bucket directory under a root directory.
pub struct LocalStore {
    dir: PathBuf,
    bucket: String,
}

impl LocalStore {
    /// The store for `root/<bucket>`; `root` must exist, the bucket directory
    /// is created by the first put.
    pub fn new(root: &Path, bucket: &str) -> Result<LocalStore> {
        if !root.is_dir() {
            bail!("store directory {} does not exist", root.display());
        }
        Ok(LocalStore { dir: root.join(bucket), bucket: bucket.to_string() })
    }

    /// The file of `key`. Keys that are legal on OSS but would alias another
    /// path or leave the directory here (empty, `.` or `..` segments, a
    /// trailing `/`, NUL) are refused with the reason (exit 2).
    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        if key.contains('\0') || key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(StoreError::InvalidKey {
                key: key.to_string(),
                reason: "a local directory store cannot hold keys with empty, '.' or '..' segments, a trailing '/' or NUL (they would alias another file or leave its directory); OSS can".into(),
            }
            .into_error());
        }
        Ok(self.dir.join(key))
    }

    fn meta(&self, key: &str, file: &File) -> Result<ObjectMeta> {
        let stat = file.metadata()?;
        let mtime = stat.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
        Ok(ObjectMeta {
            key: key.to_string(),
            size: stat.len(),
            crc64: None,
            etag: Some(format!("{:x}-{:x}", mtime.as_nanos(), stat.len())),
            last_modified: Some(crate::format::time::format_rfc3339(mtime.as_secs() as i64)),
        })
    }

    fn write_temp(&self, tmp: &Path, reader: &mut dyn Read) -> Result<(u64, u64)> {
        // Backups hold the database: owner-only, whatever the umask.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let mut crc = Crc64::new();
        let mut buf = vec![0u8; BUF];
        loop {
            let n = read_full(reader, &mut buf).context("reading the input")?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
            file.write_all(&buf[..n]).with_context(|| format!("writing {}", tmp.display()))?;
        }
        file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        Ok((crc.len(), crc.finish()))
    }
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; some file systems refuse, which is harmless.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Store for LocalStore {
    fn location(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn put(&self, key: &str, reader: &mut dyn Read, options: &PutOptions) -> Result<PutResult> {
        let path = self.path(key)?;
        if !options.overwrite && path.exists() {
            return Err(exists_error(&self.location(), key));
        }
        let parent = path.parent().context("key has no parent directory")?.to_path_buf();
        fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let name = path.file_name().context("key has no file name")?.to_string_lossy().into_owned();
        let tmp = parent.join(format!(
            ".{name}{TMP_MARK}{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let (size, crc64) = self.write_temp(&tmp, reader)?;
            if options.overwrite {
                fs::rename(&tmp, &path).with_context(|| format!("renaming into {}", path.display()))?;
            } else {
                match fs::hard_link(&tmp, &path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(exists_error(&self.location(), key))
                    }
                    Err(e) => return Err(e).with_context(|| format!("linking into {}", path.display())),
                }
                let _ = fs::remove_file(&tmp);
            }
            sync_dir(&parent);
            let file = File::open(&path)?;
            let etag = self.meta(key, &file)?.etag;
            // No stored CRC: the caller re-reads the file (HEAD) to check what is on disk.
            Ok(PutResult { size, crc64, etag, parts: 1, stored_crc64: None })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        let path = self.path(key)?;
        let mut file = match File::open(&path) {
            Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => file,
            Ok(_) => return Err(not_found(&self.location(), key)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(&self.location(), key)),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let meta = self.meta(key, &file)?;
        let (start, len) = ByteRange::resolve(range, meta.size)?;
        file.seek(SeekFrom::Start(start))?;
        let reader = BufReader::with_capacity(BUF, file).take(len);
        Ok(GetObject { meta, start, len, reader: Box::new(reader) })
    }

    fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key)?;
        let mut file = match File::open(&path) {
            Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => file,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let mut meta = self.meta(key, &file)?;
        let mut crc = Crc64::new();
        let mut buf = vec![0u8; BUF];
        loop {
            let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
        }
        meta.crc64 = Some(crc.finish());
        Ok(Some(meta))
    }

    fn list_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        let mut keys = Vec::new();
        if self.dir.is_dir() {
            walk(&self.dir, "", &mut keys)?;
        }
        keys.retain(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a));
        keys.sort();
        let more = keys.len() > limit.max(1);
        keys.truncate(limit.max(1));
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            if let Ok(file) = File::open(self.dir.join(&key)) {
                entries.push(self.meta(&key, &file)?);
            }
        }
        let next = if more { entries.last().map(|e| e.key.clone()) } else { None };
        Ok(ListPage { entries, next })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

fn walk(dir: &Path, prefix: &str, keys: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(TMP_MARK) {
            continue;
        }
        let key = format!("{prefix}{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{key}/"), keys)?;
        } else if kind.is_file() {
            keys.push(key);
        }
    }
    Ok(())
}
