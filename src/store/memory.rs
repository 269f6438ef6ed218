//! The in-memory backend, for tests and dry runs: a sorted map per store.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::{
    exists_error, not_found, validate_key, ByteRange, GetObject, ListPage, ObjectMeta, PutOptions, PutResult, Store,
};

struct Object {
    data: Arc<Vec<u8>>,
    crc64: u64,
    etag: String,
    modified: String,
}

/// Objects in a `BTreeMap`, shared between clones of nothing: one per bucket.
pub struct MemoryStore {
    bucket: String,
    objects: Mutex<BTreeMap<String, Object>>,
    counter: Mutex<u64>,
}

impl MemoryStore {
    /// An empty bucket.
    pub fn new(bucket: &str) -> MemoryStore {
        MemoryStore { bucket: bucket.to_string(), objects: Mutex::new(BTreeMap::new()), counter: Mutex::new(0) }
    }

    fn meta(key: &str, object: &Object) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size: object.data.len() as u64,
            crc64: Some(object.crc64),
            etag: Some(object.etag.clone()),
            last_modified: Some(object.modified.clone()),
        }
    }
}

/// A reader over a shared buffer.
struct SharedReader(Cursor<Arc<Vec<u8>>>, u64);

impl Read for SharedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let max = buf.len().min(self.1 as usize);
        let n = {
            let pos = self.0.position() as usize;
            let data = self.0.get_ref();
            let n = max.min(data.len().saturating_sub(pos));
            buf[..n].copy_from_slice(&data[pos..pos + n]);
            n
        };
        self.0.set_position(self.0.position() + n as u64);
        self.1 -= n as u64;
        Ok(n)
    }
}

impl Store for MemoryStore {
    fn location(&self) -> String {
        format!("memory:{}", self.bucket)
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn put(&self, key: &str, reader: &mut dyn Read, options: &PutOptions) -> Result<PutResult> {
        validate_key(key)?;
        if !options.overwrite && self.objects.lock().unwrap().contains_key(key) {
            return Err(exists_error(&self.location(), key));
        }
        let mut data = Vec::new();
        reader.read_to_end(&mut data).context("reading the input")?;
        let crc64 = crate::crc64::checksum(&data);
        let etag = {
            let mut counter = self.counter.lock().unwrap();
            *counter += 1;
            format!("{crc64:016X}-{counter}")
        };
        let mut objects = self.objects.lock().unwrap();
        // Checked again under the lock: another put may have won meanwhile.
        if !options.overwrite && objects.contains_key(key) {
            return Err(exists_error(&self.location(), key));
        }
        let size = data.len() as u64;
        objects.insert(
            key.to_string(),
            Object { data: Arc::new(data), crc64, etag: etag.clone(), modified: crate::format::time::now_rfc3339() },
        );
        Ok(PutResult { size, crc64, etag: Some(etag), parts: 1, stored_crc64: Some(crc64) })
    }

    fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        validate_key(key)?;
        let objects = self.objects.lock().unwrap();
        let object = objects.get(key).ok_or_else(|| not_found(&self.location(), key))?;
        let meta = Self::meta(key, object);
        let (start, len) = ByteRange::resolve(range, meta.size)?;
        let mut cursor = Cursor::new(object.data.clone());
        cursor.set_position(start);
        Ok(GetObject { meta, start, len, reader: Box::new(SharedReader(cursor, len)) })
    }

    fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        validate_key(key)?;
        Ok(self.objects.lock().unwrap().get(key).map(|o| Self::meta(key, o)))
    }

    fn list_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        let objects = self.objects.lock().unwrap();
        let mut entries: Vec<ObjectMeta> = objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
            .take(limit.max(1) + 1)
            .map(|(k, o)| Self::meta(k, o))
            .collect();
        let more = entries.len() > limit.max(1);
        entries.truncate(limit.max(1));
        let next = if more { entries.last().map(|e| e.key.clone()) } else { None };
        Ok(ListPage { entries, next })
    }

    fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
}
