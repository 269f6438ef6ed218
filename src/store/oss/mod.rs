//! The OSS backend: a [`Store`] over [`Client`], on its own runtime.
//!
//! Everything OSS-specific lives in this room: the HTTP [`client`], request
//! [`sign`]ing, error answers ([`error`]), the [`retry`] policy, the
//! multipart [`parts`] schedule and memory plan, request [`body`]s (memory
//! or staged file), the put path (`upload.rs`), the resuming reader and the
//! signal handler that aborts an upload. The store trait above knows none
//! of it; OSS error answers become [`crate::store::StoreError`]s here.
//!
//! Put: see `upload.rs`. Get: a reader that resumes with a Range request
//! (pinned to the ETag) when the connection breaks. An Archive or
//! ColdArchive object that is not restored is one clear error that says how
//! to restore it ([`OssStore::restore`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::runtime::Runtime;

pub mod body;
mod calls;
pub mod client;
mod credential_http;
pub mod credentials;
mod endpoint;
pub mod error;
pub mod parts;
mod profiles;
mod raw_path;
mod reader;
pub mod retry;
pub mod sign;
pub mod sign_v4;
mod signals;
mod upload;
mod uploads;

pub use client::{Client, Endpoint};
pub use credentials::Credentials;
pub use error::OssError;
pub use parts::PartSchedule;
pub use retry::RetryPolicy;
pub use sign::SignatureVersion;

use self::client::{content_range_total, response_meta, ResponseMeta};
use self::reader::OssReader;
use super::{
    exists_error, not_found, validate_key, ByteRange, GetObject, ListPage, ObjectMeta, PutOptions, PutResult, Store,
};

/// Multipart tuning of the OSS backend.
#[derive(Clone, Debug)]
pub struct OssTuning {
    /// First part size (grows per [`PartSchedule`]).
    pub part_size: u64,
    /// Parts in flight (fewer once parts get large; see [`parts::plan`]).
    pub parallel: usize,
    /// The stream's expected size, if known: sizes parts up front.
    pub expected_size: Option<u64>,
    /// Where parts too large to hold in memory are staged (`$TMPDIR` by default).
    pub temp_dir: PathBuf,
    /// Counts the parts and bytes sent (mb-oss-put's progress).
    pub progress: crate::cli::progress::Progress,
}

impl Default for OssTuning {
    fn default() -> Self {
        Self {
            part_size: parts::DEFAULT_PART,
            parallel: 4,
            expected_size: None,
            temp_dir: std::env::temp_dir(),
            progress: Default::default(),
        }
    }
}

/// One bucket on OSS.
pub struct OssStore {
    rt: Arc<Runtime>,
    client: Client,
    bucket: String,
    tuning: OssTuning,
    list_page_size: usize,
}

impl OssStore {
    /// A store for `bucket` at `endpoint`.
    pub fn new(
        endpoint: Endpoint,
        creds: Credentials,
        bucket: &str,
        retry: RetryPolicy,
        tuning: OssTuning,
    ) -> Result<OssStore> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(tuning.parallel.clamp(2, 16))
            .thread_name("mb-oss")
            .enable_all()
            .build()
            .context("starting the OSS runtime")?;
        let client = Client::new(endpoint, creds, retry)?;
        Ok(OssStore { rt: Arc::new(rt), client, bucket: bucket.to_string(), tuning, list_page_size: 1000 })
    }

    /// Keys per ListObjects request (OSS's maximum and the default is 1000).
    pub fn with_list_page_size(mut self, size: usize) -> Self {
        self.list_page_size = size.clamp(1, 1000);
        self
    }

    /// The client, for calls the trait does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// OSS errors that mean "the key exists" become [`crate::store::StoreError::AlreadyExists`].
    fn map_exists(&self, err: anyhow::Error, key: &str) -> anyhow::Error {
        if err.chain().any(|c| c.downcast_ref::<OssError>().is_some_and(OssError::is_already_exists)) {
            exists_error(&self.location(), key)
        } else {
            err
        }
    }

    /// How often a restore is polled (`MB_RESTORE_POLL_SECS`, default 30 s).
    fn restore_poll() -> Duration {
        let secs = std::env::var("MB_RESTORE_POLL_SECS").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(30.0);
        Duration::from_secs_f64(secs.clamp(0.01, 3600.0))
    }

    /// Restores an Archive/ColdArchive object (RestoreObject) and waits
    /// until it can be read, polling HEAD's `x-oss-restore` every `poll`
    /// and reporting progress through `progress`. Other objects: nothing to do.
    pub fn restore_with(&self, key: &str, poll: Duration, progress: &mut dyn FnMut(&str)) -> Result<()> {
        validate_key(key)?;
        let head = self.rt.block_on(self.client.head_object_full(&self.bucket, key))?;
        let head = head.ok_or_else(|| not_found(&self.location(), key))?;
        if !needs_restore(head.storage_class.as_deref()) {
            return Ok(());
        }
        if restored(head.restore.as_deref()) {
            return Ok(());
        }
        if head.restore.is_none() {
            self.rt.block_on(self.client.restore_object(&self.bucket, key))?;
            progress(&format!(
                "restore of {key:?} ({} object) requested; waiting (OSS takes minutes to hours)",
                head.storage_class.as_deref().unwrap_or("Archive")
            ));
        }
        let started = std::time::Instant::now();
        loop {
            std::thread::sleep(poll);
            let head = self.rt.block_on(self.client.head_object_full(&self.bucket, key))?;
            let head = head.ok_or_else(|| not_found(&self.location(), key))?;
            if restored(head.restore.as_deref()) {
                progress(&format!("{key:?} is restored after {} s", started.elapsed().as_secs()));
                return Ok(());
            }
            progress(&format!("still restoring {key:?} ({} s)", started.elapsed().as_secs()));
        }
    }

    /// The error for reading an Archive object that is not restored.
    fn not_restored(&self, key: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "object {key:?} in {} is in an archive storage class and not restored (InvalidObjectState): run `mb-oss-get --restore --key {key}` (issues RestoreObject and waits), or restore it in the OSS console, then read it",
            self.location()
        )
    }
}

fn needs_restore(class: Option<&str>) -> bool {
    class.is_some_and(|c| {
        c.eq_ignore_ascii_case("Archive")
            || c.eq_ignore_ascii_case("ColdArchive")
            || c.eq_ignore_ascii_case("DeepColdArchive")
    })
}

/// `x-oss-restore: ongoing-request="false", expiry-date="..."` means readable.
fn restored(restore: Option<&str>) -> bool {
    restore.is_some_and(|r| r.replace(' ', "").contains("ongoing-request=\"false\""))
}

impl Store for OssStore {
    fn location(&self) -> String {
        format!("oss://{}", self.bucket)
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn put(&self, key: &str, reader: &mut dyn std::io::Read, options: &PutOptions) -> Result<PutResult> {
        validate_key(key)?;
        self.put_stream(key, reader, options)
    }

    fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        validate_key(key)?;
        let response =
            self.rt.block_on(self.client.get_object(&self.bucket, key, range.map(|r| (r.start, r.end)), None));
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                let oss = err.downcast_ref::<OssError>();
                if oss.is_some_and(OssError::is_not_found) {
                    return Err(not_found(&self.location(), key));
                }
                if oss.is_some_and(|e| e.code == "InvalidObjectState") {
                    return Err(self.not_restored(key));
                }
                return Err(err);
            }
        };
        let ResponseMeta { crc64, etag, length, partial } = response_meta(&response)?;
        let size = if partial { content_range_total(response.headers()) } else { length }
            .context("GetObject answer without a length")?;
        let (start, len) = ByteRange::resolve(range, size)?;
        // A 200 to a range request carries the whole object: skip to `start`.
        let skip = if partial { 0 } else { start };
        let meta = ObjectMeta {
            key: key.to_string(),
            size,
            crc64,
            etag: etag.clone(),
            last_modified: response
                .headers()
                .get("last-modified")
                .and_then(|v| v.to_str().ok())
                .and_then(client::http_date_to_rfc3339),
        };
        let reader = OssReader {
            rt: self.rt.clone(),
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
            etag,
            next: start,
            end: start + len,
            response: Some(response),
            chunk: Bytes::new(),
            skip,
            failures: 0,
            last_error: String::new(),
        };
        Ok(GetObject { meta, start, len, reader: Box::new(reader) })
    }

    fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        validate_key(key)?;
        self.rt.block_on(self.client.head_object(&self.bucket, key))
    }

    fn list_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        let answer = self.rt.block_on(self.client.list_objects(&self.bucket, prefix, after, limit.clamp(1, 1000)))?;
        Ok(ListPage { entries: answer.entries, next: answer.next_marker })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_page(prefix, after.as_deref(), self.list_page_size)?;
            all.extend(page.entries);
            match page.next {
                Some(next) if Some(&next) != after.as_ref() => after = Some(next),
                _ => return Ok(all),
            }
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.rt.block_on(self.client.delete_object(&self.bucket, key))
    }

    fn restore(&self, key: &str, progress: &mut dyn FnMut(&str)) -> Result<()> {
        self.restore_with(key, Self::restore_poll(), progress)
    }

    fn pending_uploads(&self, prefix: &str) -> Result<Vec<crate::store::PendingUpload>> {
        self.rt.block_on(self.client.list_multipart_uploads(&self.bucket, prefix))
    }

    fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()> {
        validate_key(key)?;
        self.rt.block_on(self.client.abort_multipart(&self.bucket, key, upload_id))
    }
}
