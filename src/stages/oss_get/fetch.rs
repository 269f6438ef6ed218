//! The blocks of a plain (not encrypted) seekable object, fetched with up to
//! [`PARALLEL_GETS`] ranged GETs at once and written in object order: over a
//! real network a selective restore of an interleaved collection is many
//! short reads, and their round trips overlap instead of adding up. Each
//! block is checked against its CRC-64 before any of it is written.

use std::collections::VecDeque;
use std::io::{Read, Write};

use anyhow::{anyhow, Context, Result};

use crate::cli::integrity;
use crate::cli::progress::Progress;
use crate::format::block_index::Block;
use crate::store::{ByteRange, Store};

/// GETs in flight at once.
const PARALLEL_GETS: usize = 4;
/// A piece (one GET) holds adjacent blocks up to this many bytes, so at most
/// about `PARALLEL_GETS` x this is in memory (a single larger block alone).
pub(super) const PIECE_MAX: u64 = 16 << 20;

/// Writes `pieces` (each adjacent blocks) to `out` in order; returns the bytes asked of the store.
pub(super) fn copy_pieces(
    store: &dyn Store,
    key: &str,
    etag: Option<&str>,
    pieces: Vec<Vec<&Block>>,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<u64> {
    let received = progress.input();
    let mut requested = 0;
    std::thread::scope(|scope| {
        let mut pending = VecDeque::new();
        let mut pieces = pieces.into_iter();
        loop {
            while pending.len() < PARALLEL_GETS {
                let Some(piece) = pieces.next() else { break };
                pending.push_back(scope.spawn(move || fetch_piece(store, key, etag, piece)));
            }
            let Some(fetch) = pending.pop_front() else { return Ok(requested) };
            let (bytes, blocks) = fetch.join().map_err(|_| anyhow!("a fetching thread panicked"))??;
            requested += bytes.len() as u64;
            received.add(blocks, bytes.len() as u64);
            out.write_all(&bytes).context("writing the output")?;
        }
    })
}

/// One GET over a piece; its blocks, each checked.
fn fetch_piece(store: &dyn Store, key: &str, etag: Option<&str>, piece: Vec<&Block>) -> Result<(Vec<u8>, u64)> {
    let (first, last) = (piece[0], piece[piece.len() - 1]);
    let (start, end) = (first.offset, last.offset + last.len);
    let mut object = store.get(key, Some(ByteRange { start, end: Some(end - 1) }))?;
    if let (Some(want), Some(got)) = (etag, object.meta.etag.as_deref()) {
        if want != got {
            return Err(integrity(format!("{key:?} changed while it was read (ETag {want}, then {got})")));
        }
    }
    let mut bytes = Vec::with_capacity((end - start) as usize);
    (&mut object.reader).take(end - start).read_to_end(&mut bytes)?;
    for block in &piece {
        let at = (block.offset - start) as usize;
        let got = bytes.get(at..at + block.len as usize).unwrap_or(&[]);
        check_block(key, block, got)?;
    }
    Ok((bytes, piece.len() as u64))
}

/// A block's bytes as its index gives them: its length and CRC-64.
pub(super) fn check_block(key: &str, block: &Block, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 != block.len {
        return Err(integrity(format!(
            "{key:?}: the block at {} ended after {} of {} bytes",
            block.offset,
            bytes.len(),
            block.len
        )));
    }
    let crc = crate::crc64::checksum(bytes);
    if crc != block.crc64 {
        return Err(integrity(format!(
            "{key:?}: the block at {} has CRC-64 {crc}, its index says {}",
            block.offset, block.crc64
        )));
    }
    Ok(())
}
