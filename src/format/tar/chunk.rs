//! Chunking: a stream of BSON documents cut into chunk entries of bounded
//! size, each with its CRC-64 and document count; buffers reused through a pool.

use super::Entry;

/// Whole BSON documents, concatenated: a chunk before it is numbered.
pub(crate) struct Piece {
    data: Vec<u8>,
    docs: u64,
    crc: u64,
}

/// Cuts a stream of BSON documents into pieces of bounded size, each with
/// its CRC-64 (computed by whoever cuts: readers on several threads share
/// that work).
pub(crate) struct PieceCutter {
    limit: usize,
    pool: BufferPool,
    buffer: Vec<u8>,
    docs_in_buffer: u64,
}

impl PieceCutter {
    /// A cutter of pieces of at most `limit` bytes, taking buffers from `pool`.
    pub(crate) fn new(limit: u64, pool: BufferPool) -> Self {
        PieceCutter { limit: limit.max(1) as usize, pool, buffer: Vec::new(), docs_in_buffer: 0 }
    }

    /// Adds a document; returns a full piece when the limit would be passed.
    pub(crate) fn push(&mut self, document: &[u8]) -> Option<Piece> {
        let full = self.make_room(document.len());
        self.buffer.extend_from_slice(document);
        self.docs_in_buffer += 1;
        full
    }

    /// Adds the document whose bytes before its terminating NUL are `head`,
    /// but for its length (the first four bytes), which is rewritten: a
    /// document read with elements cut off its end. `head` must hold at
    /// least the four length bytes.
    pub(crate) fn push_head(&mut self, head: &[u8]) -> Option<Piece> {
        let length = head.len() + 1;
        let full = self.make_room(length);
        self.buffer.extend_from_slice(&(length as i32).to_le_bytes());
        self.buffer.extend_from_slice(&head[4..]);
        self.buffer.push(0);
        self.docs_in_buffer += 1;
        full
    }

    /// Takes the full piece out if `length` more bytes would pass the limit,
    /// and makes sure there is a buffer.
    fn make_room(&mut self, length: usize) -> Option<Piece> {
        let full = if !self.buffer.is_empty() && self.buffer.len() + length > self.limit { self.take() } else { None };
        if self.buffer.capacity() == 0 {
            // The whole chunk at once (growing by doubling copied each chunk
            // almost twice), reusing a written one when there is one.
            self.buffer = self.pool.take(self.limit);
        }
        full
    }

    /// The last, partial piece, if any.
    pub(crate) fn finish(&mut self) -> Option<Piece> {
        self.take()
    }

    fn take(&mut self) -> Option<Piece> {
        if self.buffer.is_empty() {
            return None;
        }
        let data = std::mem::take(&mut self.buffer);
        let crc = crate::crc64::checksum(&data);
        Some(Piece { data, docs: std::mem::take(&mut self.docs_in_buffer), crc })
    }
}

/// Numbers pieces as chunk entries `name(1)`, `name(2)`, ... in the order
/// they come, and keeps the totals: the CRC-64 of all chunks in that order.
pub(crate) struct ChunkNumbering<F: Fn(u64) -> String> {
    name: F,
    seq: u64,
    docs: u64,
    bytes: u64,
    crc: u64,
}

impl<F: Fn(u64) -> String> ChunkNumbering<F> {
    /// Numbering that names chunk `seq` with `name(seq)`.
    pub(crate) fn new(name: F) -> Self {
        ChunkNumbering { name, seq: 0, docs: 0, bytes: 0, crc: 0 }
    }

    /// The next chunk entry, made of `piece`.
    pub(crate) fn entry(&mut self, piece: Piece) -> Entry {
        self.seq += 1;
        // One pass over the bytes: the collection's CRC is combined from its chunks'.
        self.crc = crate::crc64::combine(self.crc, piece.crc, piece.data.len() as u64);
        self.docs += piece.docs;
        self.bytes += piece.data.len() as u64;
        Entry::chunk((self.name)(self.seq), piece.data, piece.docs, piece.crc)
    }

    /// (documents, bytes, CRC-64 of all chunks, chunks) numbered so far.
    pub(crate) fn totals(&self) -> (u64, u64, u64, u64) {
        (self.docs, self.bytes, self.crc, self.seq)
    }
}

/// Cuts a stream of BSON documents into numbered chunk entries of bounded size.
pub(crate) struct ChunkBuilder<F: Fn(u64) -> String> {
    cutter: PieceCutter,
    numbering: ChunkNumbering<F>,
}

impl<F: Fn(u64) -> String> ChunkBuilder<F> {
    /// A builder naming chunk `seq` with `name(seq)`, taking buffers from `pool`.
    pub(crate) fn new(limit: u64, pool: BufferPool, name: F) -> Self {
        ChunkBuilder { cutter: PieceCutter::new(limit, pool), numbering: ChunkNumbering::new(name) }
    }

    /// Adds a document; returns a full chunk when the limit would be passed.
    pub(crate) fn push(&mut self, document: &[u8]) -> Option<Entry> {
        self.cutter.push(document).map(|piece| self.numbering.entry(piece))
    }

    /// The last, partial chunk, if any.
    pub(crate) fn finish(&mut self) -> Option<Entry> {
        self.cutter.finish().map(|piece| self.numbering.entry(piece))
    }

    /// (documents, bytes, CRC-64 of all chunks, chunks) written so far.
    pub(crate) fn totals(&self) -> (u64, u64, u64, u64) {
        self.numbering.totals()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pushed_head_becomes_a_whole_document_with_its_length_rewritten() {
        let whole = bson::rawdoc! {"_id": 1, "a": "x"}.into_bytes();
        let longer = bson::rawdoc! {"_id": 1, "a": "x", "$recordId": 7_i64}.into_bytes();
        let mut cutter = PieceCutter::new(1 << 20, BufferPool::default());
        assert!(cutter.push_head(&longer[..whole.len() - 1]).is_none());
        assert!(cutter.push(&whole).is_none());
        let piece = cutter.finish().unwrap();
        assert_eq!(piece.docs, 2);
        assert_eq!(piece.data, [whole.clone(), whole].concat());
    }

    #[test]
    fn a_piece_is_cut_before_the_document_that_would_pass_the_limit() {
        let document = bson::rawdoc! {"_id": 1}.into_bytes();
        let mut cutter = PieceCutter::new(document.len() as u64 * 2, BufferPool::default());
        assert!(cutter.push(&document).is_none());
        assert!(cutter.push_head(&document[..document.len() - 1]).is_none());
        let full = cutter.push(&document).expect("the third passes the limit");
        assert_eq!((full.docs, full.data.len()), (2, document.len() * 2));
        assert_eq!(cutter.finish().map(|p| p.docs), Some(1));
    }
}
