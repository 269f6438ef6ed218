//! The OSS backend: a [`Store`] over [`Client`], on its own runtime.
//!
//! Everything OSS-specific lives in this room: the HTTP [`client`], request
//! [`sign`]ing, error answers ([`error`]), the [`retry`] policy and the
//! multipart [`parts`] schedule. The store trait above knows none of it.
//!
//! Put: the caller's thread reads stdin one part at a time (computing the
//! CRC-64 as it goes) while up to `parallel` parts upload on the runtime; a
//! stream that fits in the first part is one PutObject. On any failure the
//! multipart upload is aborted, so nothing appears under the key. Get: a
//! reader that resumes with a Range request (pinned to the ETag) when the
//! connection breaks.

use std::io::{self, Read};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

pub mod client;
pub mod credentials;
pub mod error;
pub mod parts;
pub mod retry;
pub mod sign;
pub mod sign_v4;

pub use client::{Client, Endpoint};
pub use credentials::Credentials;
pub use error::OssError;
pub use parts::PartSchedule;
pub use retry::RetryPolicy;
pub use sign::SignatureVersion;

use self::client::{content_range_total, response_meta, ResponseMeta};
use self::parts::MAX_PARTS;
use super::{
    exists_error, read_full, validate_key, ByteRange, GetObject, ListPage, NotFound, ObjectMeta, PutOptions, PutResult,
    Store,
};
use crate::crc64::Crc64;

/// Multipart tuning of the OSS backend.
#[derive(Clone, Debug)]
pub struct OssTuning {
    /// First part size (grows per [`PartSchedule`]).
    pub part_size: u64,
    /// Parts in flight.
    pub parallel: usize,
}

impl Default for OssTuning {
    fn default() -> Self {
        Self { part_size: parts::DEFAULT_PART, parallel: 4 }
    }
}

/// At most this many bytes of parts in flight: with big parts (late in a
/// huge stream) fewer upload at once, so memory stays near this bound.
const IN_FLIGHT_BYTES: u64 = 1 << 30;

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

    fn simple_put(&self, key: &str, data: Vec<u8>, crc: &Crc64, forbid: bool) -> Result<PutResult> {
        let answer = self
            .rt
            .block_on(self.client.put_object(&self.bucket, key, Bytes::from(data), forbid))
            .map_err(|e| self.map_exists(e, key))?;
        Ok(PutResult { size: crc.len(), crc64: crc.finish(), etag: answer.etag, parts: 1 })
    }

    fn map_exists(&self, err: anyhow::Error, key: &str) -> anyhow::Error {
        if err.chain().any(|c| c.downcast_ref::<OssError>().is_some_and(OssError::is_already_exists)) {
            exists_error(&self.location(), key)
        } else {
            err
        }
    }

    /// Uploads parts `first` (already read) and the rest of `reader`.
    fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<Vec<u8>>,
        reader: &mut dyn Read,
        crc: &mut Crc64,
    ) -> Result<Vec<(u32, String)>> {
        let schedule = PartSchedule::new(self.tuning.part_size);
        let mut tasks: JoinSet<Result<(u32, String)>> = JoinSet::new();
        let mut done: Vec<(u32, String)> = Vec::new();
        let mut queued = first.into_iter();
        let mut number: u32 = 0;
        let harvest = |done: &mut Vec<(u32, String)>,
                       joined: Option<Result<Result<(u32, String)>, tokio::task::JoinError>>|
         -> Result<()> {
            if let Some(joined) = joined {
                done.push(joined.context("a part upload task failed")??);
            }
            Ok(())
        };
        let result = (|| -> Result<()> {
            loop {
                let next_size = schedule.part_size(number + 1);
                let buf = match queued.next() {
                    Some(buf) => buf,
                    None => read_part(reader, next_size, crc)?,
                };
                if buf.is_empty() {
                    break;
                }
                number += 1;
                if number > MAX_PARTS {
                    bail!("the stream needs more than {MAX_PARTS} parts; use a larger --part-size");
                }
                let cap = (IN_FLIGHT_BYTES / next_size).clamp(1, self.tuning.parallel.max(1) as u64) as usize;
                while let Some(joined) = tasks.try_join_next() {
                    harvest(&mut done, Some(joined))?;
                }
                while tasks.len() >= cap {
                    let joined = self.rt.block_on(tasks.join_next());
                    harvest(&mut done, joined)?;
                }
                let client = self.client.clone();
                let (bucket, key, upload_id) = (self.bucket.clone(), key.to_string(), upload_id.to_string());
                let body = Bytes::from(buf);
                crate::debug!("part {number}: {} bytes", body.len());
                tasks.spawn_on(
                    async move {
                        let answer = client.upload_part(&bucket, &key, &upload_id, number, body).await?;
                        let etag = answer.etag.with_context(|| format!("UploadPart {number} answer has no ETag"))?;
                        Ok((number, etag))
                    },
                    self.rt.handle(),
                );
            }
            while !tasks.is_empty() {
                let joined = self.rt.block_on(tasks.join_next());
                harvest(&mut done, joined)?;
            }
            Ok(())
        })();
        if let Err(err) = result {
            tasks.abort_all();
            // Let aborted tasks finish before the upload is aborted, so no
            // part lands after the abort.
            self.rt.block_on(async { while tasks.join_next().await.is_some() {} });
            return Err(err);
        }
        done.sort_by_key(|(n, _)| *n);
        Ok(done)
    }
}

/// Reads up to `size` bytes into a fresh buffer (empty at the end of input).
fn read_part(reader: &mut dyn Read, size: u64, crc: &mut Crc64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    let n = read_full(reader, &mut buf).context("reading the input")?;
    buf.truncate(n);
    crc.update(&buf);
    Ok(buf)
}

impl Store for OssStore {
    fn location(&self) -> String {
        format!("oss://{}", self.bucket)
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn put(&self, key: &str, reader: &mut dyn Read, options: &PutOptions) -> Result<PutResult> {
        validate_key(key)?;
        let forbid = !options.overwrite;
        // Fails fast before reading the stream; x-oss-forbid-overwrite on the
        // final request closes the race with another writer.
        if forbid && self.head(key)?.is_some() {
            return Err(exists_error(&self.location(), key));
        }
        let schedule = PartSchedule::new(self.tuning.part_size);
        let mut crc = Crc64::new();
        let first = read_part(reader, schedule.part_size(1), &mut crc)?;
        if (first.len() as u64) < schedule.part_size(1) {
            return self.simple_put(key, first, &crc, forbid);
        }
        let second = read_part(reader, schedule.part_size(2), &mut crc)?;
        if second.is_empty() {
            return self.simple_put(key, first, &crc, forbid);
        }
        let upload_id = self
            .rt
            .block_on(self.client.initiate_multipart(&self.bucket, key, forbid))
            .map_err(|e| self.map_exists(e, key))?;
        crate::debug!("multipart upload {upload_id} of {key}");
        let parts = self.upload_parts(key, &upload_id, vec![first, second], reader, &mut crc).and_then(|parts| {
            let answer = self
                .rt
                .block_on(self.client.complete_multipart(&self.bucket, key, &upload_id, &parts, forbid))
                .map_err(|e| self.map_exists(e, key))?;
            Ok((parts.len() as u32, answer))
        });
        match parts {
            Ok((count, answer)) => {
                Ok(PutResult { size: crc.len(), crc64: crc.finish(), etag: answer.etag, parts: count })
            }
            Err(err) => {
                if let Err(abort_err) = self.rt.block_on(self.client.abort_multipart(&self.bucket, key, &upload_id)) {
                    crate::warn!(
                        "could not abort multipart upload {upload_id} of {key}: {}",
                        crate::cli::one_line(&abort_err)
                    );
                }
                Err(err)
            }
        }
    }

    fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        validate_key(key)?;
        let response =
            self.rt.block_on(self.client.get_object(&self.bucket, key, range.map(|r| (r.start, r.end)), None));
        let response = match response {
            Ok(response) => response,
            Err(err) if super::is_not_found(&err) => {
                return Err(NotFound { location: self.location(), key: key.to_string() }.into())
            }
            Err(err) => return Err(err),
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
}

/// Streams an object, resuming from the byte it reached after a break.
struct OssReader {
    rt: Arc<Runtime>,
    client: Client,
    bucket: String,
    key: String,
    etag: Option<String>,
    /// Absolute offset of the next byte to hand out.
    next: u64,
    /// Absolute end (exclusive).
    end: u64,
    response: Option<reqwest::Response>,
    chunk: Bytes,
    /// Bytes of the current response to drop before `next`.
    skip: u64,
    /// Breaks in a row without progress.
    failures: u32,
    last_error: String,
}

impl OssReader {
    fn reconnect(&mut self) -> io::Result<()> {
        self.failures += 1;
        let retry = self.client.retry().clone();
        if self.failures >= retry.max_attempts {
            return Err(io::Error::other(format!(
                "download of {:?} broke at byte {} of {} {} times in a row: {}",
                self.key, self.next, self.end, self.failures, self.last_error
            )));
        }
        crate::info!("download of {:?} broke at byte {} ({}); resuming", self.key, self.next, self.last_error);
        std::thread::sleep(retry.backoff(self.failures));
        let range = Some((self.next, Some(self.end - 1)));
        let response = self
            .rt
            .block_on(self.client.get_object(&self.bucket, &self.key, range, self.etag.as_deref()))
            .map_err(|e| {
            io::Error::other(format!(
                "resuming download of {:?} at byte {}: {}",
                self.key,
                self.next,
                crate::cli::one_line(&e)
            ))
        })?;
        let ResponseMeta { etag, partial, .. } =
            response_meta(&response).map_err(|e| io::Error::other(e.to_string()))?;
        if etag.is_some() && self.etag.is_some() && etag != self.etag {
            return Err(io::Error::other(format!(
                "object {:?} changed while it was being read (ETag differs)",
                self.key
            )));
        }
        self.skip = if partial { 0 } else { self.next };
        self.response = Some(response);
        Ok(())
    }
}

impl Read for OssReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.next >= self.end || buf.is_empty() {
                return Ok(0);
            }
            if !self.chunk.is_empty() {
                let n = buf.len().min(self.chunk.len()).min((self.end - self.next) as usize);
                buf[..n].copy_from_slice(&self.chunk[..n]);
                let _ = self.chunk.split_to(n);
                self.next += n as u64;
                self.failures = 0;
                return Ok(n);
            }
            let Some(response) = self.response.as_mut() else {
                self.reconnect()?;
                continue;
            };
            match self.rt.block_on(response.chunk()) {
                Ok(Some(mut bytes)) => {
                    let drop = self.skip.min(bytes.len() as u64) as usize;
                    let _ = bytes.split_to(drop);
                    self.skip -= drop as u64;
                    self.chunk = bytes;
                }
                Ok(None) => {
                    self.response = None;
                    self.last_error = "the connection closed early".into();
                }
                Err(err) => {
                    self.response = None;
                    let mut text = err.to_string();
                    let mut source = std::error::Error::source(&err);
                    while let Some(s) = source {
                        text = s.to_string();
                        source = s.source();
                    }
                    self.last_error = text;
                }
            }
        }
    }
}
