//! Parallel gzip compression, as pigz does it: one gzip member whose deflate
//! stream is cut into blocks that threads compress independently.
//!
//! Each block is raw deflate primed with the last 32 KiB of the previous block
//! as a preset dictionary (so matches reach across the cut and the ratio stays
//! within a fraction of a percent of serial gzip), and ends with a sync flush
//! (an empty stored block) so it ends on a byte boundary and the blocks simply
//! concatenate. The stream closes with an empty final block; the CRC-32s of
//! the blocks are combined for the trailer.
//!
//! Pipeline: this thread reads blocks and queues them to `threads` workers;
//! for every block it also passes a one-shot reply channel, in input order,
//! to a writer thread that waits on each in turn. That order queue is bounded,
//! which bounds the blocks in memory to about 2 x `threads`.

use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use flate2::{Compress, Compression, Crc, FlushCompress};

use super::{read_full, WriterGone};

/// How to compress.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    /// Deflate level, 1..=9.
    pub level: u32,
    /// Deflating threads; 1 compresses on the calling thread alone.
    pub threads: usize,
    /// Bytes per block (at least the 32 KiB window is sensible).
    pub block_size: usize,
    /// The input's name in error messages (`stdin` or a path).
    pub input_name: String,
    /// The output's name in error messages (`stdout` or a path).
    pub output_name: String,
}

/// What went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressSummary {
    /// Uncompressed bytes read.
    pub bytes_in: u64,
    /// Gzip bytes written.
    pub bytes_out: u64,
}

/// The deflate window: how much of the previous block primes the next.
pub const WINDOW: usize = 32 * 1024;

/// An empty final fixed-Huffman block (BFINAL=1, BTYPE=01, end-of-block): the
/// two bytes zlib and pigz end a flushed stream with.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// Compresses all of `input` to `output` as one gzip member.
pub fn compress(
    mut input: Box<dyn Read + Send>,
    output: &mut (dyn Write + Send),
    opts: &CompressOptions,
) -> Result<CompressSummary> {
    let mut sink = Sink::new(output, &opts.output_name);
    sink.write(&header(opts.level))?;
    if opts.threads <= 1 {
        serial(&mut *input, &mut sink, opts)?;
    } else {
        parallel(&mut *input, &mut sink, opts)?;
    }
    sink.finish()
}

/// One block read from the input, with what primes it.
struct Job {
    data: Vec<u8>,
    len: usize,
    dictionary: Vec<u8>,
    reply: SyncSender<Result<Done>>,
}

/// One block compressed; `data` goes back to the reader for reuse.
struct Done {
    data: Vec<u8>,
    deflated: Vec<u8>,
    crc: Crc,
}

/// What the writer thread gets, in input order.
enum Slot {
    Block(Receiver<Result<Done>>),
    End,
}

fn serial(input: &mut dyn Read, sink: &mut Sink<'_>, opts: &CompressOptions) -> Result<()> {
    let mut data = vec![0u8; opts.block_size];
    let mut deflated = Vec::new();
    let mut dictionary = Vec::with_capacity(WINDOW);
    loop {
        let len = read_full(input, &mut data).with_context(|| format!("reading {}", opts.input_name))?;
        if len == 0 {
            return Ok(());
        }
        let block = &data[..len];
        // Fresh per block, as the workers do: the same bytes whatever the threads.
        let mut z = Compress::new(Compression::new(opts.level), false);
        deflate_block(&mut z, &dictionary, block, &mut deflated)?;
        let mut crc = Crc::new();
        crc.update(block);
        sink.block(&deflated, &crc)?;
        set_dictionary_from(&mut dictionary, block);
    }
}

fn parallel(input: &mut dyn Read, sink: &mut Sink<'_>, opts: &CompressOptions) -> Result<()> {
    let threads = opts.threads;
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    // Blocks in flight: up to 2 x threads queued here, plus the one being written.
    let (slot_tx, slot_rx) = mpsc::sync_channel::<Slot>(2 * threads);
    // Input buffers come back here once written, so steady state allocates nothing.
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();

    std::thread::scope(|scope| {
        for _ in 0..threads {
            let job_rx = &job_rx;
            scope.spawn(move || worker(job_rx, opts.level));
        }
        let writer = scope.spawn(move || write_in_order(slot_rx, sink, free_tx));

        let read_result = (|| -> Result<()> {
            let mut dictionary = Vec::with_capacity(WINDOW);
            loop {
                let mut data = free_rx.try_recv().unwrap_or_else(|_| vec![0u8; opts.block_size]);
                let len = read_full(input, &mut data).with_context(|| format!("reading {}", opts.input_name))?;
                if len == 0 {
                    return slot_tx.send(Slot::End).map_err(|_| WriterGone.into());
                }
                let (reply_tx, reply_rx) = mpsc::sync_channel(1);
                // Queue the slot first: a full order queue is what holds the reader back.
                slot_tx.send(Slot::Block(reply_rx)).map_err(|_| WriterGone)?;
                let next_dictionary = tail(&data[..len]).to_vec();
                let job =
                    Job { data, len, dictionary: std::mem::replace(&mut dictionary, next_dictionary), reply: reply_tx };
                job_tx.send(job).map_err(|_| anyhow!("compression workers stopped"))?;
            }
        })();
        // Closing the queues lets the workers and the writer end.
        drop(job_tx);
        drop(slot_tx);
        let write_result = writer.join().unwrap_or_else(|_| Err(anyhow!("writer thread panicked")));
        match read_result {
            // The writer stopped first: its error is the real one.
            Err(e) if e.is::<WriterGone>() => write_result,
            Err(e) => Err(e),
            Ok(()) => write_result,
        }
    })
}

fn worker(jobs: &Mutex<Receiver<Job>>, level: u32) {
    loop {
        // Hold the lock only to take a job, never while compressing.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let block = &job.data[..job.len];
        // A fresh compressor per block: one reset after another block's use
        // still deflates a little differently (zlib-rs), so which worker took
        // which block would show in the output.
        let mut z = Compress::new(Compression::new(level), false);
        let mut deflated = Vec::with_capacity(block.len() / 2);
        let result = deflate_block(&mut z, &job.dictionary, block, &mut deflated).map(|()| {
            let mut crc = Crc::new();
            crc.update(block);
            crc
        });
        // A closed reply channel means the writer gave up; nothing to do then.
        let _ = job.reply.send(result.map(|crc| Done { data: job.data, deflated, crc }));
    }
}

fn write_in_order(slots: Receiver<Slot>, sink: &mut Sink<'_>, free: mpsc::Sender<Vec<u8>>) -> Result<()> {
    // Without `End` (the reader failed) the trailer is never written, so a
    // failed run can't leave a stream that checks out.
    while let Ok(Slot::Block(reply)) = slots.recv() {
        let done = reply.recv().map_err(|_| anyhow!("a compression worker stopped"))??;
        sink.block(&done.deflated, &done.crc)?;
        let _ = free.send(done.data);
    }
    Ok(())
}

/// Deflates one block as raw deflate primed with `dictionary`, ending with a
/// sync flush so the next block can follow on a byte boundary.
fn deflate_block(z: &mut Compress, dictionary: &[u8], block: &[u8], out: &mut Vec<u8>) -> Result<()> {
    z.reset();
    if !dictionary.is_empty() {
        z.set_dictionary(dictionary).context("setting the deflate dictionary")?;
    }
    out.clear();
    // Incompressible data grows a little (stored-block headers); one pass usually fits.
    out.reserve(block.len() + block.len() / 64 + 1024);
    let mut consumed = 0;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity() / 4 + 4096);
        }
        let before = z.total_in();
        z.compress_vec(&block[consumed..], out, FlushCompress::Sync).context("deflating a block")?;
        consumed += (z.total_in() - before) as usize;
        // The flush is complete once deflate leaves output space unused.
        if consumed == block.len() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

fn tail(block: &[u8]) -> &[u8] {
    &block[block.len().saturating_sub(WINDOW)..]
}

fn set_dictionary_from(dictionary: &mut Vec<u8>, block: &[u8]) {
    dictionary.clear();
    dictionary.extend_from_slice(tail(block));
}

/// The gzip header: no name, no mtime (the output depends on the bytes only).
fn header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    // Magic, CM=8 (deflate), FLG=0, MTIME=0, XFL, OS=3 (Unix).
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]
}

/// The output side: counts bytes, combines CRCs, writes the trailer.
struct Sink<'a> {
    out: &'a mut (dyn Write + Send),
    name: &'a str,
    crc: Crc,
    bytes_in: u64,
    bytes_out: u64,
}

impl<'a> Sink<'a> {
    fn new(out: &'a mut (dyn Write + Send), name: &'a str) -> Self {
        Self { out, name, crc: Crc::new(), bytes_in: 0, bytes_out: 0 }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).with_context(|| format!("writing {}", self.name))?;
        self.bytes_out += bytes.len() as u64;
        Ok(())
    }

    fn block(&mut self, deflated: &[u8], crc: &Crc) -> Result<()> {
        self.write(deflated)?;
        self.crc.combine(crc);
        self.bytes_in += u64::from(crc.amount());
        Ok(())
    }

    fn finish(mut self) -> Result<CompressSummary> {
        let mut trailer = [0u8; 10];
        trailer[..2].copy_from_slice(&FINAL_BLOCK);
        trailer[2..6].copy_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE is the length modulo 2^32, by the gzip spec.
        trailer[6..].copy_from_slice(&(self.bytes_in as u32).to_le_bytes());
        self.write(&trailer)?;
        self.out.flush().with_context(|| format!("writing {}", self.name))?;
        Ok(CompressSummary { bytes_in: self.bytes_in, bytes_out: self.bytes_out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;

    fn gz(data: &[u8], threads: usize, block_size: usize, level: u32) -> Vec<u8> {
        let opts =
            CompressOptions { level, threads, block_size, input_name: "stdin".into(), output_name: "stdout".into() };
        let mut out = Vec::new();
        let summary = compress(Box::new(std::io::Cursor::new(data.to_vec())), &mut out, &opts).unwrap();
        assert_eq!(summary, CompressSummary { bytes_in: data.len() as u64, bytes_out: out.len() as u64 });
        out
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(gz).read_to_end(&mut out).unwrap();
        out
    }

    /// Half text that compresses, half noise that doesn't.
    fn mixed(len: usize) -> Vec<u8> {
        const TEXT: &[u8] = b"{\"_id\": 1, \"name\": \"orders\"}\n";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if (i / 5000) % 2 == 0 {
                    TEXT[i % TEXT.len()]
                } else {
                    state as u8
                }
            })
            .collect()
    }

    #[test]
    fn empty_input_is_a_valid_empty_gzip() {
        let out = gz(b"", 4, 1 << 20, 6);
        assert_eq!(out.len(), 20);
        assert!(gunzip(&out).is_empty());
    }

    #[test]
    fn final_block_constant_is_what_zlib_emits() {
        let mut z = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(64);
        z.compress_vec(b"", &mut out, FlushCompress::Finish).unwrap();
        assert_eq!(out, FINAL_BLOCK);
    }

    #[test]
    fn round_trips_and_output_ignores_thread_count() {
        let block = 64 << 10;
        for len in [1, block - 1, block, block + 1, 5 * block + 17] {
            let data = mixed(len);
            let one = gz(&data, 1, block, 6);
            assert_eq!(gunzip(&one), data, "len {len}");
            for threads in [2, 3, 8] {
                assert_eq!(gz(&data, threads, block, 6), one, "len {len}, {threads} threads");
            }
        }
    }

    #[test]
    fn priming_keeps_matches_across_blocks() {
        // A 16 KiB half-noise chunk repeated (well inside deflate's reach of
        // 32 KiB - 262): without the dictionary every 64 KiB block would start
        // cold and pay for the whole chunk again, about 16 x 9 KiB in all.
        let chunk = mixed(16 << 10);
        let data: Vec<u8> = chunk.iter().copied().cycle().take(1 << 20).collect();
        let out = gz(&data, 2, 64 << 10, 6);
        assert_eq!(gunzip(&out), data);
        assert!(out.len() < 40 << 10, "{} bytes", out.len());
    }

    #[test]
    fn levels_all_round_trip() {
        let data = mixed(300_000);
        for level in 1..=9 {
            assert_eq!(gunzip(&gz(&data, 2, 64 << 10, level)), data, "level {level}");
        }
    }

    #[test]
    fn write_errors_surface() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for threads in [1, 4] {
            let opts = CompressOptions {
                level: 1,
                threads,
                block_size: 64 << 10,
                input_name: "stdin".into(),
                output_name: "stdout".into(),
            };
            let err = compress(Box::new(std::io::Cursor::new(mixed(1 << 20))), &mut Full, &opts).unwrap_err();
            assert!(format!("{err:#}").starts_with("writing stdout: No space left"), "{err:#}");
        }
    }
}
