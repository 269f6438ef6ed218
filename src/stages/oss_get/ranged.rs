//! An object's plaintext read by position: ranged GETs, through age's 64 KiB
//! chunks when the object is encrypted (age maps a plaintext position to its
//! chunk and authenticates each chunk it reads).
//!
//! Each GET covers the span announced with [`Plaintext::read_span`] (rounded
//! out to whole age chunks), never the rest of the object, so the bytes
//! asked of the store are the bytes used.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Result;

use crate::cli::integrity;
use crate::store::{ByteRange, Store};

/// age: plaintext bytes per chunk, and the ciphertext each takes (with its tag).
const AGE_CHUNK: u64 = 64 << 10;
const AGE_SEALED_CHUNK: u64 = AGE_CHUNK + 16;

/// The object's bytes by position, each GET as long as the span announced.
struct RangedObject<'a> {
    store: &'a dyn Store,
    key: &'a str,
    size: u64,
    etag: Option<String>,
    pos: u64,
    /// The open GET: the position it is at, where it ends, its bytes.
    body: Option<(u64, u64, Box<dyn Read + Send>)>,
    /// The span the next GET should cover when it starts inside it.
    span: Arc<Mutex<Option<(u64, u64)>>>,
    /// Bytes asked of the store.
    requested: Arc<Mutex<u64>>,
}

impl Read for RangedObject<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        if !matches!(self.body, Some((at, end, _)) if at == self.pos && at < end) {
            let span = *self.span.lock().unwrap_or_else(|e| e.into_inner());
            // Outside an announced span (age's header, its last chunk): one chunk's worth.
            let end = match span {
                Some((start, end)) if (start..end).contains(&self.pos) => end.min(self.size),
                _ => (self.pos + AGE_SEALED_CHUNK).min(self.size),
            };
            let range = ByteRange { start: self.pos, end: Some(end - 1) };
            let object = self.store.get(self.key, Some(range)).map_err(io::Error::other)?;
            if let (Some(want), Some(got)) = (&self.etag, &object.meta.etag) {
                if want != got {
                    return Err(io::Error::other(format!("{:?} changed while it was read", self.key)));
                }
            }
            *self.requested.lock().unwrap_or_else(|e| e.into_inner()) += end - self.pos;
            self.body = Some((self.pos, end, object.reader));
        }
        let Some((at, end, reader)) = &mut self.body else { unreachable!("opened above") };
        let want = buf.len().min((*end - *at) as usize);
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the store's answer ended early"));
        }
        *at += n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangedObject<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(pos) => Some(pos),
            SeekFrom::End(delta) => self.size.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// An object's plaintext: the bytes themselves, or what age decrypts.
pub(super) struct Plaintext<'a> {
    reader: Box<dyn ReadSeek + 'a>,
    span: Arc<Mutex<Option<(u64, u64)>>>,
    requested: Arc<Mutex<u64>>,
    /// Where age's payload starts; `None` when not encrypted.
    payload_start: Option<u64>,
    size: u64,
    len: u64,
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

impl<'a> Plaintext<'a> {
    /// Opens `key` (`size` bytes, this ETag); decrypts it with `identities`
    /// when it starts as an age file. `None`: it is encrypted and no identity
    /// was given.
    pub(super) fn open(
        store: &'a dyn Store,
        key: &'a str,
        size: u64,
        etag: Option<String>,
        identities: &[PathBuf],
    ) -> Result<Option<Plaintext<'a>>> {
        let span = Arc::new(Mutex::new(None));
        let requested = Arc::new(Mutex::new(0));
        let mut object = RangedObject {
            store,
            key,
            size,
            etag,
            pos: 0,
            body: None,
            span: span.clone(),
            requested: requested.clone(),
        };
        let mut head = vec![0u8; crate::pack::age::AGE_MAGIC.len().min(size as usize)];
        *span.lock().unwrap_or_else(|e| e.into_inner()) = Some((0, head.len() as u64));
        object.read_exact(&mut head)?;
        object.seek(SeekFrom::Start(0))?;
        if !crate::pack::age::is_age(&head) {
            let plain = Plaintext { reader: Box::new(object), span, requested, payload_start: None, size, len: size };
            return Ok(Some(plain));
        }
        if identities.is_empty() {
            return Ok(None);
        }
        let mut reader = crate::pack::age::open_seekable(identities, object)?;
        let len = reader.seek(SeekFrom::End(0)).map_err(|e| integrity(format!("{key:?}: {e}")))?;
        // The payload (chunks of 64 KiB, each sealed with a 16-byte tag) ends the object.
        let payload_start = size
            .checked_sub(sealed_len(len))
            .ok_or_else(|| integrity(format!("{key:?}: shorter than its age payload")))?;
        Ok(Some(Plaintext { reader: Box::new(reader), span, requested, payload_start: Some(payload_start), size, len }))
    }

    /// Whether the object is an age file, read through age.
    pub(super) fn is_encrypted(&self) -> bool {
        self.payload_start.is_some()
    }

    /// The plaintext's length.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes asked of the store so far.
    pub(super) fn requested(&self) -> u64 {
        *self.requested.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Announces that the plaintext `start..end` is read next, in order: its
    /// bytes come with one GET. Then seeks to `start`.
    pub(super) fn read_span(&mut self, start: u64, end: u64) -> Result<()> {
        let stored = match self.payload_start {
            None => (start, end),
            Some(payload) => {
                let first = payload + start / AGE_CHUNK * AGE_SEALED_CHUNK;
                let last = payload + end.saturating_sub(1) / AGE_CHUNK * AGE_SEALED_CHUNK + AGE_SEALED_CHUNK;
                (first, last.min(self.size))
            }
        };
        *self.span.lock().unwrap_or_else(|e| e.into_inner()) = Some(stored);
        self.reader.seek(SeekFrom::Start(start))?;
        Ok(())
    }

    /// Fills `buf` from the current position.
    pub(super) fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.reader.read_exact(buf)
    }
}

/// The ciphertext length of `len` plaintext bytes (a last chunk always exists).
fn sealed_len(len: u64) -> u64 {
    let chunks = len.div_ceil(AGE_CHUNK).max(1);
    len + chunks * (AGE_SEALED_CHUNK - AGE_CHUNK)
}
