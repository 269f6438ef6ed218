//! Seekable objects: an `mb-tar/1` stream compressed as independent blocks
//! (zstd frames, or gzip members), a new one wherever another part of the
//! stream begins (the header, a collection's entries, the oplog, the
//! manifest) and at most about [`BLOCK_TARGET`] of input per block, followed
//! by a trailer holding the block index (`mb-index/1`): in zstd skippable
//! frames, or in the comment and extra field of empty gzip members.
//!
//! Concatenated frames (members) are one valid zstd (gzip) stream, and
//! decoders skip what the trailer is, so `zstd -d`, `gzip -d`, `tar` and older
//! `mb-pack -d` (gzip) read the object as before; a restore of a few
//! collections reads the trailer, then only their blocks (see `mb-oss-get
//! --ns-include`).
//!
//! Blocks are compressed on `threads` workers, each block on one, and written
//! in input order, so the bytes depend only on the input and level. At most
//! threads + 3 blocks are in memory.

use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};

use super::compress::CompressSummary;
use super::{Codec, WriterGone};
use crate::crc64::checksum;
use crate::format::block_index::{Block, BlockIndex, Part, INDEX_FORMAT};
use crate::format::tar::parts::PartReader;

mod trailer;

pub(crate) use trailer::is_skippable_magic;
pub use trailer::{read_index, Footer, MAX_FOOTER_LEN};

/// How to compress a seekable object.
#[derive(Debug, Clone)]
pub struct SeekableOptions {
    /// zstd frames or gzip members.
    pub codec: Codec,
    /// The codec's level: zstd 1..=19, gzip 1..=9.
    pub level: u32,
    /// Compressing threads, at least 1.
    pub threads: usize,
    /// The input's name in error messages (`stdin` or a path).
    pub input_name: String,
    /// The output's name in error messages (`stdout` or a path).
    pub output_name: String,
}

/// Input bytes per frame: a part longer than this gets several frames. Large
/// enough that the ratio is within a fraction of a percent of one frame, small
/// enough that a restore skips what it does not need at a fine grain.
pub const BLOCK_TARGET: usize = 8 << 20;

/// A block's input, and where its frame goes.
type Job = (Vec<u8>, SyncSender<Result<Vec<u8>>>);

/// A block on its way to the writer: what it holds, and its frame to come.
struct Slot {
    part: Part,
    raw: u64,
    frame: Receiver<Result<Vec<u8>>>,
}

/// Compresses an `mb-tar/1` stream to a seekable object.
pub fn compress_seekable(
    input: Box<dyn Read + Send>,
    output: &mut (dyn Write + Send),
    opts: &SeekableOptions,
) -> Result<CompressSummary> {
    let threads = opts.threads.clamp(1, 256);
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
    let job_rx = Mutex::new(job_rx);
    // Blocks in memory: these queued, one being written, one being read.
    let (slot_tx, slot_rx) = mpsc::sync_channel::<Option<Slot>>(threads + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| compress_jobs(&job_rx, opts.codec, opts.level));
        }
        let writer = scope.spawn(move || write_frames(slot_rx, output, opts.codec, &opts.output_name));
        let read = cut_blocks(input, &job_tx, &slot_tx, &opts.input_name);
        drop(job_tx);
        // Only a stream read to its end gets a trailer: `None` says so.
        let read = read.and_then(|bytes_in| slot_tx.send(None).map(|()| bytes_in).map_err(|_| WriterGone.into()));
        drop(slot_tx);
        let written = writer.join().unwrap_or_else(|_| Err(anyhow!("writer thread panicked")));
        match read {
            Err(e) if e.is::<WriterGone>() => written.and(Err(e)),
            Err(e) => Err(e),
            Ok(bytes_in) => written.map(|bytes_out| CompressSummary { bytes_in, bytes_out }),
        }
    })
}

/// Reads entries, groups them into blocks, hands each to the workers and its
/// slot to the writer; returns the bytes read.
fn cut_blocks(
    input: Box<dyn Read + Send>,
    jobs: &SyncSender<Job>,
    slots: &SyncSender<Option<Slot>>,
    input_name: &str,
) -> Result<u64> {
    let mut reader = PartReader::new(std::io::BufReader::with_capacity(1 << 20, input));
    let mut block: Option<(Part, Vec<u8>)> = None;
    let mut bytes_in = 0u64;
    let send = |part: Part, data: Vec<u8>| -> Result<()> {
        let (reply, frame) = mpsc::sync_channel(1);
        let raw = data.len() as u64;
        slots.send(Some(Slot { part, raw, frame })).map_err(|_| WriterGone)?;
        jobs.send((data, reply)).map_err(|_| WriterGone)?;
        Ok(())
    };
    while let Some(entry) = reader.next_entry().with_context(|| format!("reading {input_name}"))? {
        bytes_in += entry.bytes.len() as u64;
        block = match (block.take(), entry.part) {
            // A zero block ends an archive: it stays with what came before.
            (Some((part, mut data)), None) => {
                data.extend_from_slice(&entry.bytes);
                Some((part, data))
            }
            (None, None) => Some((Part::Header, entry.bytes)),
            (Some((part, mut data)), Some(next)) if part == next && data.len() + entry.bytes.len() <= BLOCK_TARGET => {
                data.extend_from_slice(&entry.bytes);
                Some((part, data))
            }
            (previous, Some(next)) => {
                if let Some((part, data)) = previous {
                    send(part, data)?;
                }
                Some((next, entry.bytes))
            }
        };
    }
    if reader.cut_short() {
        // As any compressor: what came is kept; the stage before says why it stopped.
        crate::debug!("{input_name} ended inside a tar entry; compressed as it is");
    }
    // An empty input (a dump that failed first) is one empty frame, as plain zstd writes.
    let (part, data) = block.unwrap_or((Part::Header, Vec::new()));
    send(part, data)?;
    Ok(bytes_in)
}

/// A worker: compresses blocks into zstd frames with a content checksum, or gzip members.
fn compress_jobs(jobs: &Mutex<Receiver<Job>>, codec: Codec, level: u32) {
    let mut zstd = match codec {
        Codec::Zstd => Some(
            zstd::bulk::Compressor::new(level as i32)
                .and_then(|mut c| c.include_checksum(true).map(|()| c))
                .map_err(|e| anyhow!("starting zstd: {e}")),
        ),
        Codec::Gzip => None,
    };
    loop {
        let job = jobs.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
        let Ok((data, reply)) = job else { return };
        let block = match &mut zstd {
            Some(Ok(c)) => c.compress(&data).map_err(|e| anyhow!("zstd: {e}")),
            Some(Err(e)) => Err(anyhow!("{e}")),
            None => gzip_member(&data, level),
        };
        let _ = reply.send(block);
    }
}

/// One gzip member of `data`, its header without a time or name so the
/// bytes depend only on the input and level.
fn gzip_member(data: &[u8], level: u32) -> Result<Vec<u8>> {
    let mut encoder =
        flate2::GzBuilder::new().write(Vec::with_capacity(data.len() / 2), flate2::Compression::new(level));
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// Writes blocks in input order, then the trailer; returns the bytes written.
fn write_frames(
    slots: Receiver<Option<Slot>>,
    output: &mut (dyn Write + Send),
    codec: Codec,
    name: &str,
) -> Result<u64> {
    let mut blocks = Vec::new();
    let mut offset = 0u64;
    for slot in slots {
        let Some(slot) = slot else {
            let index = BlockIndex { format: INDEX_FORMAT.into(), codec: codec_name(codec).into(), blocks };
            let trailer = trailer::encode(&index, offset, codec)?;
            output.write_all(&trailer).and_then(|()| output.flush()).with_context(|| format!("writing {name}"))?;
            return Ok(offset + trailer.len() as u64);
        };
        let frame = slot.frame.recv().map_err(|_| anyhow!("a compressing worker stopped"))??;
        output.write_all(&frame).with_context(|| format!("writing {name}"))?;
        let len = frame.len() as u64;
        blocks.push(Block { offset, len, raw: slot.raw, crc64: checksum(&frame), part: slot.part });
        offset += len;
    }
    // The reader stopped before the end: its error is the one to report.
    Err(WriterGone.into())
}

/// The codec's name in the index.
fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Zstd => "zstd",
        Codec::Gzip => "gzip",
    }
}

#[cfg(test)]
mod tests;
