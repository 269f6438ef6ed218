//! Strict gzip and zstd decompression: every member, and nothing else.
//!
//! We parse the members ourselves around a raw inflater instead of using
//! flate2's `MultiGzDecoder`, which reports trailing garbage and non-gzip
//! input alike as "invalid gzip header" and a cut stream as a bare
//! `UnexpectedEof`; a backup restore needs to say which it was, and must
//! never treat any of them as success. A member may also be a zstd frame
//! (`zstd_frame`), told apart by its magic, so chains that mix codecs restore.
//!
//! Inflating is inherently serial. When threaded, one thread reads the input
//! in chunks and one writes the output while this thread inflates, all joined
//! by small bounded channels (so memory stays bounded too).

use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};

use anyhow::{anyhow, Context, Result};
use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::seekable::is_skippable_magic;
use super::{read_full, WriterGone};
use crate::cli::integrity;

mod zstd_frame;

/// How to decompress.
#[derive(Debug, Clone)]
pub struct DecompressOptions {
    /// Read and write on their own threads, overlapping with inflating.
    pub threaded: bool,
    /// The input's name in error messages (`stdin` or a path).
    pub input_name: String,
    /// The output's name in error messages (`stdout` or a path).
    pub output_name: String,
}

/// What went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecompressSummary {
    /// Gzip bytes read.
    pub bytes_in: u64,
    /// Decompressed bytes written.
    pub bytes_out: u64,
    /// Gzip members and zstd frames decompressed.
    pub members: u64,
}

const READ_CHUNK: usize = 256 << 10;
const WRITE_CHUNK: usize = 1 << 20;
/// Chunks queued between threads, each way.
const QUEUE: usize = 4;

const TRUNCATED: &str = "input is truncated (gzip stream ended early)";

/// Decompresses every gzip member of `input` to `output`.
pub fn decompress(
    input: Box<dyn Read + Send>,
    output: &mut (dyn Write + Send),
    opts: &DecompressOptions,
) -> Result<DecompressSummary> {
    if !opts.threaded {
        let mut source = Source::direct(input, &opts.input_name);
        let mut sink = Sink::new(To::Direct { out: output, name: &opts.output_name });
        let summary = inflate_all(&mut source, &mut sink)?;
        sink.finish()?;
        return Ok(summary);
    }
    // The reader is detached, not scoped: after an error here it may sit in a
    // read that never returns (an idle pipe), and we must not wait for it.
    let mut source = Source::threaded(input, &opts.input_name);
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(QUEUE);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        let name = opts.output_name.as_str();
        let writer = scope.spawn(move || write_chunks(full_rx, output, name, free_tx));
        let mut sink = Sink::new(To::Thread { full: full_tx, free: free_rx });
        let result = inflate_all(&mut source, &mut sink).and_then(|s| sink.finish().map(|()| s));
        drop(sink);
        let write_result = writer.join().unwrap_or_else(|_| Err(anyhow!("writer thread panicked")));
        match result {
            // The writer stopped first: its error is the real one.
            Err(e) if e.is::<WriterGone>() => write_result.and(Err(e)),
            Err(e) => Err(e),
            Ok(summary) => write_result.map(|()| summary),
        }
    })
}

fn write_chunks(
    chunks: Receiver<(Vec<u8>, usize)>,
    out: &mut (dyn Write + Send),
    name: &str,
    free: mpsc::Sender<Vec<u8>>,
) -> Result<()> {
    for (buf, len) in chunks {
        out.write_all(&buf[..len]).with_context(|| format!("writing {name}"))?;
        let _ = free.send(buf);
    }
    out.flush().with_context(|| format!("writing {name}"))
}

/// Decompresses members (gzip members and zstd frames, told apart by their
/// magic) until the input ends; the heart of `decompress`.
fn inflate_all(source: &mut Source, sink: &mut Sink<'_>) -> Result<DecompressSummary> {
    let mut z = Decompress::new(false);
    let mut members = 0u64;
    let mut bytes_out = 0u64;
    let mut last = "gzip member";
    loop {
        let start = source.position();
        let Some(first) = source.byte()? else {
            if members == 0 {
                return Err(integrity("input is empty (not a gzip or zstd stream)"));
            }
            break;
        };
        let mut magic = vec![Some(first), source.byte()?];
        let skippable_start = first & 0xf0 == 0x50 && magic[1] == Some(0x2a);
        if magic[..2] == [Some(zstd_frame::MAGIC[0]), Some(zstd_frame::MAGIC[1])] || skippable_start {
            magic.extend([source.byte()?, source.byte()?]);
        }
        if let [Some(a), Some(b), Some(c), Some(d)] = magic[..] {
            if is_skippable_magic([a, b, c, d]) {
                // A seekable object's block index: no data, skipped as zstd -d does.
                skip_frame(source)?;
                continue;
            }
        }
        let is_prefix = |of: &[u8]| magic.iter().flatten().eq(of.iter().take(magic.iter().flatten().count()));
        if magic.iter().flatten().eq(zstd_frame::MAGIC.iter()) {
            members += 1;
            bytes_out += zstd_frame::decode_frame(source, sink, members)?;
            last = "zstd frame";
            continue;
        }
        if magic[..2] != [Some(0x1f), Some(0x8b)] {
            if magic.contains(&None) && (is_prefix(&[0x1f, 0x8b]) || is_prefix(&zstd_frame::MAGIC)) {
                return Err(integrity(if first == 0x1f { TRUNCATED } else { zstd_frame::TRUNCATED }));
            }
            if members == 0 {
                return Err(integrity(format!("input is not gzip or zstd (it starts with bytes {})", hex(&magic))));
            }
            // Every member before it was whole and checked: pass all of their
            // output on first, so the next stage sees the complete stream and
            // this error stays the only one (as `gzip -d` does).
            sink.finish()?;
            return Err(integrity(format!("input has trailing data after the last {last} (at byte {start})")));
        }
        members += 1;
        last = "gzip member";
        read_header(source, members)?;
        bytes_out += inflate_member(&mut z, source, sink, members)?;
    }
    Ok(DecompressSummary { bytes_in: source.position(), bytes_out, members })
}

/// Skips a zstd skippable frame whose magic was read: a 4-byte length, then that many bytes.
fn skip_frame(source: &mut Source) -> Result<()> {
    let mut len = [0u8; 4];
    for byte in &mut len {
        *byte = source.byte()?.ok_or_else(|| integrity(zstd_frame::TRUNCATED))?;
    }
    let mut left = u64::from(u32::from_le_bytes(len));
    while left > 0 {
        source.fill()?;
        let available = source.available().len() as u64;
        if available == 0 {
            return Err(integrity(zstd_frame::TRUNCATED));
        }
        let n = available.min(left);
        source.consume(n as usize);
        left -= n;
    }
    Ok(())
}

/// Reads the rest of a member header (after the magic), checking what it can.
fn read_header(source: &mut Source, member: u64) -> Result<()> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    // Kept for the optional header CRC, which covers every byte before it.
    let mut seen = vec![0x1f, 0x8b];
    fn take(source: &mut Source, seen: &mut Vec<u8>) -> Result<u8> {
        let b = source.byte()?.ok_or_else(|| integrity(TRUNCATED))?;
        seen.push(b);
        Ok(b)
    }
    let mut next = |source: &mut Source| take(source, &mut seen);
    let method = next(source)?;
    if method != 8 {
        return Err(integrity(format!(
            "input is corrupt (gzip member {member} uses compression method {method}, not deflate)"
        )));
    }
    let flags = next(source)?;
    if flags & 0xe0 != 0 {
        return Err(integrity(format!("input is corrupt (gzip member {member} sets reserved header flags)")));
    }
    for _ in 0..6 {
        next(source)?; // MTIME, XFL, OS: informational.
    }
    if flags & FEXTRA != 0 {
        let len = u16::from_le_bytes([next(source)?, next(source)?]);
        for _ in 0..len {
            next(source)?;
        }
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            while next(source)? != 0 {}
        }
    }
    if flags & FHCRC != 0 {
        let mut crc = Crc::new();
        crc.update(&seen);
        let stored = u16::from_le_bytes([take(source, &mut seen)?, take(source, &mut seen)?]);
        if u32::from(stored) != crc.sum() & 0xffff {
            return Err(integrity(format!("input is corrupt (header CRC mismatch in gzip member {member})")));
        }
    }
    Ok(())
}

/// Inflates one member's deflate data and checks its trailer; returns its length.
fn inflate_member(z: &mut Decompress, source: &mut Source, sink: &mut Sink<'_>, member: u64) -> Result<u64> {
    z.reset(false);
    let mut crc = Crc::new();
    let mut len = 0u64;
    loop {
        if source.available().is_empty() {
            source.fill()?;
        }
        let input = source.available();
        let input_gone = input.is_empty();
        let space = sink.space()?;
        let (in_before, out_before) = (z.total_in(), z.total_out());
        let status = z.decompress(input, space, FlushDecompress::None).map_err(|e| {
            let detail = e.to_string();
            let detail = match detail.strip_prefix("deflate decompression error: ").unwrap_or(&detail) {
                // zlib-rs can report its own follow-up state instead of the first fault.
                "repeated call with bad state" => "invalid compressed data",
                other => other,
            };
            integrity(format!("input is corrupt (bad deflate data in gzip member {member}: {detail})"))
        })?;
        let consumed = (z.total_in() - in_before) as usize;
        let produced = (z.total_out() - out_before) as usize;
        crc.update(&space[..produced]);
        sink.advance(produced);
        source.consume(consumed);
        len += produced as u64;
        if status == Status::StreamEnd {
            break;
        }
        // With all input gone, inflate may still drain output it held back for
        // lack of space; only when it can do nothing more has the stream been cut.
        if consumed == 0 && produced == 0 {
            if input_gone {
                return Err(integrity(TRUNCATED));
            }
            return Err(integrity(format!("input is corrupt (inflate stalled in gzip member {member})")));
        }
    }
    let mut trailer = [0u8; 8];
    for b in &mut trailer {
        *b = source.byte()?.ok_or_else(|| integrity(TRUNCATED))?;
    }
    let stored_crc = u32::from_le_bytes(trailer[..4].try_into().unwrap());
    let stored_len = u32::from_le_bytes(trailer[4..].try_into().unwrap());
    if stored_crc != crc.sum() {
        return Err(integrity(format!(
            "input is corrupt (CRC-32 mismatch in gzip member {member}: stored {stored_crc:08x}, computed {:08x})",
            crc.sum()
        )));
    }
    if stored_len != len as u32 {
        return Err(integrity(format!(
            "input is corrupt (length mismatch in gzip member {member}: stored {stored_len}, decompressed {len} mod 2^32)"
        )));
    }
    Ok(len)
}

fn hex(bytes: &[Option<u8>]) -> String {
    bytes.iter().flatten().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// The input, a chunk at a time, from this thread or a reader thread.
struct Source {
    from: From,
    name: String,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes consumed in chunks before `buf`.
    offset: u64,
    eof: bool,
}

enum From {
    Direct(Box<dyn Read + Send>),
    Thread { chunks: Receiver<std::io::Result<Vec<u8>>>, free: mpsc::Sender<Vec<u8>> },
}

impl Source {
    fn direct(input: Box<dyn Read + Send>, name: &str) -> Self {
        Self { from: From::Direct(input), name: name.into(), buf: Vec::new(), pos: 0, offset: 0, eof: false }
    }

    fn threaded(mut input: Box<dyn Read + Send>, name: &str) -> Self {
        let (tx, chunks) = mpsc::sync_channel(QUEUE);
        let (free, free_rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || read_chunks(&mut *input, &tx, &free_rx));
        Self { from: From::Thread { chunks, free }, name: name.into(), buf: Vec::new(), pos: 0, offset: 0, eof: false }
    }

    /// Bytes consumed so far.
    fn position(&self) -> u64 {
        self.offset + self.pos as u64
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    /// Replaces a used-up chunk with the next; at the end, leaves it empty.
    fn fill(&mut self) -> Result<()> {
        while self.pos == self.buf.len() && !self.eof {
            self.offset += self.buf.len() as u64;
            self.pos = 0;
            match &mut self.from {
                From::Direct(input) => {
                    self.buf.resize(READ_CHUNK, 0);
                    let n = read_full(&mut **input, &mut self.buf).with_context(|| format!("reading {}", self.name))?;
                    self.buf.truncate(n);
                    self.eof = n == 0;
                }
                From::Thread { chunks, free } => match chunks.recv() {
                    Ok(Ok(chunk)) => {
                        let _ = free.send(std::mem::replace(&mut self.buf, chunk));
                    }
                    Ok(Err(e)) => return Err(anyhow::Error::new(e).context(format!("reading {}", self.name))),
                    Err(_) => {
                        self.buf.clear();
                        self.eof = true;
                    }
                },
            }
        }
        Ok(())
    }

    fn byte(&mut self) -> Result<Option<u8>> {
        self.fill()?;
        let b = self.buf.get(self.pos).copied();
        self.pos += usize::from(b.is_some());
        Ok(b)
    }
}

fn read_chunks(input: &mut dyn Read, chunks: &SyncSender<std::io::Result<Vec<u8>>>, free: &Receiver<Vec<u8>>) {
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        buf.resize(READ_CHUNK, 0);
        match read_full(input, &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if chunks.send(Ok(buf)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = chunks.send(Err(e));
                return;
            }
        }
    }
}

/// The output buffer inflate writes into, drained here or by a writer thread.
struct Sink<'a> {
    to: To<'a>,
    buf: Vec<u8>,
    filled: usize,
}

enum To<'a> {
    Direct { out: &'a mut (dyn Write + Send), name: &'a str },
    Thread { full: SyncSender<(Vec<u8>, usize)>, free: Receiver<Vec<u8>> },
}

impl<'a> Sink<'a> {
    fn new(to: To<'a>) -> Self {
        Self { to, buf: vec![0; WRITE_CHUNK], filled: 0 }
    }

    /// Free space to inflate into, draining the buffer first if it is full.
    fn space(&mut self) -> Result<&mut [u8]> {
        if self.filled == self.buf.len() {
            self.flush()?;
        }
        Ok(&mut self.buf[self.filled..])
    }

    fn advance(&mut self, n: usize) {
        self.filled += n;
    }

    /// Hands the filled part on: written here, or sent to the writer thread.
    fn flush(&mut self) -> Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        match &mut self.to {
            To::Direct { out, name } => {
                out.write_all(&self.buf[..self.filled]).with_context(|| format!("writing {name}"))?;
            }
            To::Thread { full, free } => {
                let next = free.try_recv().unwrap_or_else(|_| vec![0; WRITE_CHUNK]);
                let buf = std::mem::replace(&mut self.buf, next);
                full.send((buf, self.filled)).map_err(|_| WriterGone)?;
            }
        }
        self.filled = 0;
        Ok(())
    }

    /// Flushes the buffer and, when writing here, the output.
    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        if let To::Direct { out, name } = &mut self.to {
            out.flush().with_context(|| format!("writing {name}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
