//! Request bodies of puts and parts: in memory, or staged in an unlinked
//! temporary file when holding them in memory would break the memory bound.
//!
//! Either way a body can be sent again from its first byte, so every part
//! stays retryable. A staged body is streamed from the file in small chunks
//! (read on the blocking pool), so sending it costs a chunk of memory, not a
//! part.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine;
use bytes::Bytes;
use md5::{Digest, Md5};

use crate::crc64::Crc64;
use crate::store::read_full;

/// Bytes read from the staged file per chunk sent.
const STREAM_CHUNK: usize = 256 << 10;

/// One request body (a simple put or a part).
#[derive(Clone)]
pub enum PartData {
    /// Held in memory.
    Memory(Bytes),
    /// In an unlinked temporary file: its length and MD5 (computed while writing).
    Staged {
        /// The file (already unlinked; gone when the last clone drops).
        file: Arc<File>,
        /// Bytes in it.
        len: u64,
        /// MD5 of those bytes.
        md5: [u8; 16],
    },
}

impl PartData {
    /// An empty body (bodiless PUT/POST).
    pub fn empty() -> Self {
        PartData::Memory(Bytes::new())
    }

    /// Its length.
    pub fn len(&self) -> u64 {
        match self {
            PartData::Memory(bytes) => bytes.len() as u64,
            PartData::Staged { len, .. } => *len,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its MD5.
    pub fn md5(&self) -> [u8; 16] {
        match self {
            PartData::Memory(bytes) => Md5::digest(bytes).into(),
            PartData::Staged { md5, .. } => *md5,
        }
    }

    /// Its MD5, base64, as `Content-MD5` carries it.
    pub fn content_md5(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.md5())
    }

    /// A fresh request body with all of it (for each attempt).
    pub fn to_body(&self) -> reqwest::Body {
        match self {
            PartData::Memory(bytes) => reqwest::Body::from(bytes.clone()),
            PartData::Staged { file, len, .. } => {
                let (file, len) = (file.clone(), *len);
                let chunks = futures_util::stream::try_unfold(0u64, move |offset| {
                    let file = file.clone();
                    async move {
                        if offset >= len {
                            return Ok::<_, io::Error>(None);
                        }
                        let n = STREAM_CHUNK.min((len - offset) as usize);
                        let chunk = tokio::task::spawn_blocking(move || {
                            let mut buf = vec![0u8; n];
                            file.read_exact_at(&mut buf, offset).map(|()| buf)
                        })
                        .await
                        .map_err(io::Error::other)??;
                        Ok(Some((Bytes::from(chunk), offset + n as u64)))
                    }
                });
                reqwest::Body::wrap_stream(chunks)
            }
        }
    }
}

/// Reads up to `size` bytes of `reader` into memory (empty at the end of input).
pub fn read_to_memory(reader: &mut dyn Read, size: u64, crc: &mut Crc64) -> Result<PartData> {
    let mut buf = vec![0u8; size as usize];
    let n = read_full(reader, &mut buf).context("reading the input")?;
    buf.truncate(n);
    crc.update(&buf);
    Ok(PartData::Memory(Bytes::from(buf)))
}

/// Reads up to `size` bytes of `reader` into a new unlinked file in `dir`,
/// through one small buffer.
pub fn read_to_file(reader: &mut dyn Read, size: u64, crc: &mut Crc64, dir: &Path) -> Result<PartData> {
    let mut file = tempfile::tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {} (--temp-dir)", dir.display()))?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    while len < size {
        let want = buf.len().min((size - len) as usize);
        let n = read_full(reader, &mut buf[..want]).context("reading the input")?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        md5.update(&buf[..n]);
        file.write_all(&buf[..n]).with_context(|| format!("writing a temporary file in {}", dir.display()))?;
        len += n as u64;
    }
    Ok(PartData::Staged { file: Arc::new(file), len, md5: md5.finalize().into() })
}
