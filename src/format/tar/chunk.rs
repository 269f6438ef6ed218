//! Chunking: a stream of BSON documents cut into chunk entries of bounded
//! size, each with its CRC-64 and document count; buffers reused through a pool.

use super::Entry;

/// Cuts a stream of BSON documents into chunk entries of bounded size.
pub(crate) struct ChunkBuilder<F: Fn(u64) -> String> {
    limit: usize,
    name: F,
    pool: BufferPool,
    buffer: Vec<u8>,
    docs_in_buffer: u64,
    seq: u64,
    docs: u64,
    bytes: u64,
    crc: u64,
}

impl<F: Fn(u64) -> String> ChunkBuilder<F> {
    /// A builder naming chunk `seq` with `name(seq)`, taking buffers from `pool`.
    pub(crate) fn new(limit: u64, pool: BufferPool, name: F) -> Self {
        let limit = limit.max(1) as usize;
        ChunkBuilder {
            limit,
            name,
            pool,
            buffer: Vec::new(),
            docs_in_buffer: 0,
            seq: 0,
            docs: 0,
            bytes: 0,
            crc: Default::default(),
        }
    }

    /// Adds a document; returns a full chunk when the limit would be passed.
    pub(crate) fn push(&mut self, document: &[u8]) -> Option<Entry> {
        let full =
            if !self.buffer.is_empty() && self.buffer.len() + document.len() > self.limit { self.take() } else { None };
        if self.buffer.capacity() == 0 {
            // The whole chunk at once (growing by doubling copied each chunk
            // almost twice), reusing a written one when there is one.
            self.buffer = self.pool.take(self.limit);
        }
        self.buffer.extend_from_slice(document);
        self.docs_in_buffer += 1;
        full
    }

    /// The last, partial chunk, if any.
    pub(crate) fn finish(&mut self) -> Option<Entry> {
        self.take()
    }

    fn take(&mut self) -> Option<Entry> {
        if self.buffer.is_empty() {
            return None;
        }
        self.seq += 1;
        let data = std::mem::take(&mut self.buffer);
        // One pass over the bytes: the collection's CRC is combined from its chunks'.
        let crc = crate::crc64::checksum(&data);
        self.crc = crate::crc64::combine(self.crc, crc, data.len() as u64);
        self.docs += self.docs_in_buffer;
        self.bytes += data.len() as u64;
        let entry = Entry::chunk((self.name)(self.seq), data, self.docs_in_buffer, crc);
        self.docs_in_buffer = 0;
        Some(entry)
    }

    /// (documents, bytes, CRC-64 of all chunks, chunks) written so far.
    pub(crate) fn totals(&self) -> (u64, u64, u64, u64) {
        (self.docs, self.bytes, self.crc, self.seq)
    }
}

/// Chunk buffers the writer is done with, for the next chunks: a fresh
/// multi-MiB allocation is mapped anew by the allocator and faults in every
/// page on first touch, which cost more than the CRC. It never holds more
/// buffers than were in flight at once, so the memory bound is unchanged.
#[derive(Clone, Default)]
pub(crate) struct BufferPool(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    /// Most idle buffers kept.
    const KEEP: usize = 16;

    /// An empty buffer of at least `capacity` bytes.
    pub(crate) fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut idle| idle.pop());
        match reused {
            Some(mut buffer) => {
                buffer.reserve(capacity);
                buffer
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Returns a written buffer (small ones, JSON records, are not worth keeping).
    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() < 1 << 20 {
            return;
        }
        buffer.clear();
        if let Ok(mut idle) = self.0.lock() {
            if idle.len() < Self::KEEP {
                idle.push(buffer);
            }
        }
    }
}
