//! zstd compression with libzstd's own multithreaded mode (`zstdmt`).
//!
//! The whole input becomes one zstd frame with a content checksum (XXH64), so
//! `zstd -d` and `tar --zstd` read it, and `mb-pack -d` notices a corrupt
//! frame. libzstd's worker threads compress jobs of a few window sizes each
//! while this thread reads the input and writes the output, so memory stays
//! bounded by the level's window and job sizes times the workers, whatever the
//! stream size. The workers are always in use (one at `-j 1`): libzstd's
//! multithreaded output does not depend on the worker count, so neither do the
//! bytes written.

use std::io::{Read, Write};

use anyhow::{Context, Result};

use super::compress::CompressSummary;
use super::read_full;

/// How to compress with zstd.
#[derive(Debug, Clone)]
pub struct ZstdOptions {
    /// zstd level, 1..=19.
    pub level: u32,
    /// libzstd worker threads, at least 1.
    pub threads: usize,
    /// The input's name in error messages (`stdin` or a path).
    pub input_name: String,
    /// The output's name in error messages (`stdout` or a path).
    pub output_name: String,
}

/// The highest level offered: above it libzstd's "ultra" levels need windows
/// of up to 128 MiB (and more memory to read back).
pub const MAX_LEVEL: u32 = 19;

/// Bytes read from the input at a time.
const READ_BLOCK: usize = 1 << 20;

/// Compresses all of `input` to `output` as one zstd frame.
pub fn compress_zstd(
    mut input: Box<dyn Read + Send>,
    output: &mut (dyn Write + Send),
    opts: &ZstdOptions,
) -> Result<CompressSummary> {
    let out = Counting { inner: output, bytes: 0 };
    let mut encoder = zstd::stream::write::Encoder::new(out, opts.level as i32).context("starting zstd")?;
    encoder.include_checksum(true).context("asking zstd for a checksum")?;
    // Capped by libzstd too (256 workers); each holds about a job of input.
    let workers = opts.threads.clamp(1, 256) as u32;
    encoder.multithread(workers).context("starting zstd worker threads")?;
    let mut block = vec![0u8; READ_BLOCK];
    let mut bytes_in = 0u64;
    loop {
        let n = read_full(&mut *input, &mut block).with_context(|| format!("reading {}", opts.input_name))?;
        if n == 0 {
            break;
        }
        bytes_in += n as u64;
        encoder.write_all(&block[..n]).with_context(|| format!("writing {}", opts.output_name))?;
    }
    let out = encoder.finish().with_context(|| format!("writing {}", opts.output_name))?;
    out.inner.flush().with_context(|| format!("writing {}", opts.output_name))?;
    Ok(CompressSummary { bytes_in, bytes_out: out.bytes })
}

/// Counts the bytes that pass through to the output.
struct Counting<'a> {
    inner: &'a mut (dyn Write + Send),
    bytes: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
