//! The reader of an OSS object: streams a GetObject answer and resumes with
//! a Range request (pinned to the ETag) from the byte it reached when the
//! connection breaks.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use tokio::runtime::Runtime;

use super::client::{response_meta, Client, ResponseMeta};

/// Streams an object, resuming from the byte it reached after a break.
pub(crate) struct OssReader {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) client: Client,
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) etag: Option<String>,
    /// Absolute offset of the next byte to hand out.
    pub(crate) next: u64,
    /// Absolute end (exclusive).
    pub(crate) end: u64,
    pub(crate) response: Option<reqwest::Response>,
    pub(crate) chunk: Bytes,
    /// Bytes of the current response to drop before `next`.
    pub(crate) skip: u64,
    /// Breaks in a row without progress.
    pub(crate) failures: u32,
    pub(crate) last_error: String,
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
