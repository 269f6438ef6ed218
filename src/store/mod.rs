//! Object storage behind one trait: OSS, a local directory, or memory.
//!
//! The stages talk to a [`Store`] bound to one bucket. It is synchronous on
//! purpose: stdin and stdout are blocking, and the OSS backend runs its own
//! tokio runtime inside (parts upload in parallel there while the caller's
//! thread reads the next part). Every backend passes the one conformance
//! suite in `tests/it/oss_conformance.rs`.

pub mod local;
pub mod memory;
pub mod oss;
mod pending;

pub use oss::OssTuning;
pub use pending::PendingUpload;

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::Serialize;

/// What a store knows about one object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ObjectMeta {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-64/XZ of the whole object (OSS's `x-oss-hash-crc64ecma`), when known.
    pub crc64: Option<u64>,
    /// ETag (without quotes), when the backend has one.
    pub etag: Option<String>,
    /// Last modification, RFC 3339 UTC (OSS listings give milliseconds).
    pub last_modified: Option<String>,
}

/// How to put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Replace an existing object; without it an existing key is a conflict (exit 4).
    pub overwrite: bool,
    /// OSS storage class (Standard, IA, Archive, ColdArchive); other backends ignore it.
    pub storage_class: Option<String>,
    /// OSS server-side encryption (AES256, KMS, SM4); other backends ignore it.
    pub sse: Option<String>,
    /// The KMS key id with `sse` KMS.
    pub sse_key_id: Option<String>,
}

/// What a put stored, as computed while streaming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    /// Bytes read and stored.
    pub size: u64,
    /// CRC-64/XZ of those bytes.
    pub crc64: u64,
    /// The stored object's ETag, if the backend gave one.
    pub etag: Option<String>,
    /// Requests that carried data: 1 for a simple put, else the part count.
    pub parts: u32,
    /// The CRC-64 the store reported for the object this put wrote (OSS:
    /// the PutObject/Complete answer's header), `None` if it gave none.
    pub stored_crc64: Option<u64>,
}

/// An inclusive byte range `START-END`, or `START-` to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive); `None` means the end of the object.
    pub end: Option<u64>,
}

impl FromStr for ByteRange {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || anyhow::anyhow!("bad range {s:?}: expected START-END (inclusive) or START-");
        let (start, end) = s.trim().trim_start_matches("bytes=").split_once('-').ok_or_else(bad)?;
        let start = start.trim().parse().map_err(|_| bad())?;
        let end = match end.trim() {
            "" => None,
            end => Some(end.parse().map_err(|_| bad())?),
        };
        if end.is_some_and(|end| end < start) {
            return Err(bad());
        }
        Ok(ByteRange { start, end })
    }
}

impl ByteRange {
    /// The `(start, length)` this range selects from an object of `size`
    /// bytes, or an error if it starts past the end.
    pub fn resolve(range: Option<ByteRange>, size: u64) -> Result<(u64, u64)> {
        let Some(range) = range else {
            return Ok((0, size));
        };
        if range.start >= size && !(size == 0 && range.start == 0) {
            bail!(
                "range {}-{} starts past the end of the object ({size} bytes) (InvalidRange)",
                range.start,
                range.end.map(|e| e.to_string()).unwrap_or_default()
            );
        }
        let end = range.end.map_or(size, |end| (end + 1).min(size));
        Ok((range.start, end.saturating_sub(range.start)))
    }
}

/// An object being read.
pub struct GetObject {
    /// The whole object's size, CRC-64 (when the backend sends it) and ETag.
    pub meta: ObjectMeta,
    /// Offset of the first byte the reader yields.
    pub start: u64,
    /// How many bytes the reader should yield.
    pub len: u64,
    /// The bytes. For OSS it resumes by itself after a broken connection.
    pub reader: Box<dyn Read + Send>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    /// Objects in key order.
    pub entries: Vec<ObjectMeta>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A bucket of objects.
pub trait Store: Send + Sync {
    /// Where the objects are, for messages (`oss://bucket`, `dir:/srv/b`).
    fn location(&self) -> String;

    /// The bucket.
    fn bucket(&self) -> &str;

    /// Stores everything `reader` yields under `key`. Either the whole stream
    /// ends up under the key, or nothing does.
    fn put(&self, key: &str, reader: &mut dyn Read, options: &PutOptions) -> Result<PutResult>;

    /// Reads an object, or a byte range of it. A missing key is
    /// [`StoreError::NotFound`]; every backend reports an existing key on a
    /// put without overwrite as [`StoreError::AlreadyExists`].
    fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject>;

    /// Size, CRC-64 and ETag of an object; `None` if it does not exist.
    fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;

    /// Up to `limit` objects whose keys start with `prefix` and sort after `after`.
    fn list_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage>;

    /// Removes an object; removing a missing key succeeds (as on OSS).
    fn delete(&self, key: &str) -> Result<()>;

    /// Makes an archived object readable (OSS: RestoreObject, then waits,
    /// reporting progress). Backends without archive classes have nothing to do.
    fn restore(&self, key: &str, progress: &mut dyn FnMut(&str)) -> Result<()> {
        let _ = (key, progress);
        Ok(())
    }

    /// Multipart uploads under `prefix` begun and not completed nor aborted
    /// (OSS's ListMultipartUploads); backends without multipart uploads have none.
    fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let _ = prefix;
        Ok(Vec::new())
    }

    /// Aborts a multipart upload, freeing its parts (one already gone counts as aborted).
    fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()> {
        let _ = (key, upload_id);
        Ok(())
    }

    /// All objects under `prefix`, every page.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_page(prefix, after.as_deref(), 1000)?;
            all.extend(page.entries);
            match page.next {
                Some(next) if Some(&next) != after.as_ref() => after = Some(next),
                _ => return Ok(all),
            }
        }
    }
}

/// The errors every backend returns for the same situations, so callers
/// match a type, not a message or an HTTP code. Find one in an error chain
/// with [`StoreError::of`]; build one with [`StoreError::into_error`], which
/// also sets the exit code (4 for an existing key, 2 for a bad key or bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The key has no object.
    NotFound {
        /// Where (`oss://bucket`, `dir:/srv/b`).
        location: String,
        /// The key.
        key: String,
    },
    /// The key has an object and overwriting was not asked for.
    AlreadyExists {
        /// Where.
        location: String,
        /// The key.
        key: String,
    },
    /// The key is not one this backend can store.
    InvalidKey {
        /// The key.
        key: String,
        /// Why not.
        reason: String,
    },
    /// The bucket name is not a legal OSS bucket name.
    InvalidBucket {
        /// The name.
        bucket: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound { location, key } => write!(f, "no object {key:?} in {location} (NoSuchKey)"),
            StoreError::AlreadyExists { location, key } => write!(
                f,
                "object {key:?} already exists in {location}; refusing to overwrite it (use --overwrite to replace it)"
            ),
            StoreError::InvalidKey { key, reason } => write!(f, "bad object key {key:?}: {reason}"),
            StoreError::InvalidBucket { bucket } => {
                write!(
                    f,
                    "bad bucket name {bucket:?}: 3-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
                )
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// The store error in `err`'s chain, if any.
    pub fn of(err: &anyhow::Error) -> Option<&StoreError> {
        err.downcast_ref::<StoreError>().or_else(|| err.chain().find_map(|c| c.downcast_ref::<StoreError>()))
    }

    /// The exit code this error ends a stage with (`src/cli/mod.rs`).
    pub fn exit_code(&self) -> u8 {
        match self {
            StoreError::NotFound { .. } => crate::cli::EXIT_FAILURE,
            StoreError::AlreadyExists { .. } => crate::cli::EXIT_CONFLICT,
            StoreError::InvalidKey { .. } | StoreError::InvalidBucket { .. } => crate::cli::EXIT_USAGE,
        }
    }

    /// As an error whose chain also carries the exit code (a
    /// [`crate::cli::Failure`] with the same text, printed once).
    pub fn into_error(self) -> anyhow::Error {
        let code = self.exit_code();
        let failure = crate::cli::Failure { code, message: self.to_string() };
        anyhow::Error::from(failure).context(self)
    }
}

/// Whether an error means "no such object".
pub fn is_not_found(err: &anyhow::Error) -> bool {
    matches!(StoreError::of(err), Some(StoreError::NotFound { .. }))
}

/// Whether an error means "the key exists and overwriting was refused".
pub fn is_already_exists(err: &anyhow::Error) -> bool {
    matches!(StoreError::of(err), Some(StoreError::AlreadyExists { .. }))
}

/// The not-found error of `key` in `location`.
pub fn not_found(location: &str, key: &str) -> anyhow::Error {
    StoreError::NotFound { location: location.to_string(), key: key.to_string() }.into_error()
}

/// The conflict error (exit 4) of an existing key.
pub fn exists_error(location: &str, key: &str) -> anyhow::Error {
    StoreError::AlreadyExists { location: location.to_string(), key: key.to_string() }.into_error()
}

/// Checks a key as OSS does: 1..1023 bytes of UTF-8, not starting with `/`
/// or `\`. Empty, `.` and `..` segments are legal OSS keys; a backend that
/// cannot store them (the local directory) refuses them itself.
pub fn validate_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "it is empty"
    } else if key.len() > 1023 {
        "it is longer than 1023 bytes"
    } else if key.starts_with('/') || key.starts_with('\\') {
        "it starts with '/' or '\\'"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidKey { key: key.to_string(), reason: reason.to_string() }.into_error())
}

/// Checks a bucket name: 3-63 of `a-z`, `0-9`, `-`, not starting or ending with `-`.
pub fn validate_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-');
    if !ok {
        return Err(StoreError::InvalidBucket { bucket: bucket.to_string() }.into_error());
    }
    Ok(())
}

pub(crate) use crate::cli::io::read_full;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_resolve() {
        assert_eq!("5-9".parse::<ByteRange>().unwrap(), ByteRange { start: 5, end: Some(9) });
        assert_eq!("5-".parse::<ByteRange>().unwrap(), ByteRange { start: 5, end: None });
        assert!("9-5".parse::<ByteRange>().is_err());
        assert!("x".parse::<ByteRange>().is_err());
        assert_eq!(ByteRange::resolve(Some("5-100".parse().unwrap()), 10).unwrap(), (5, 5));
        assert_eq!(ByteRange::resolve(None, 10).unwrap(), (0, 10));
        assert!(ByteRange::resolve(Some("10-".parse().unwrap()), 10).is_err());
    }

    #[test]
    fn keys_and_buckets_are_checked() {
        for good in ["backups/2026/full.tar.gz", "a//b", "dir/", "a/../b", "./a", ".", "k\\x"] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in ["", "/abs", "\\abs", &"k".repeat(1024)] {
            let err = validate_key(bad).unwrap_err();
            assert!(matches!(StoreError::of(&err), Some(StoreError::InvalidKey { .. })), "{bad}");
            assert_eq!(crate::cli::exit_code_of(&err), crate::cli::EXIT_USAGE);
        }
        assert!(validate_bucket("my-bucket-1").is_ok());
        assert!(validate_bucket("My_Bucket").is_err());
    }
}
