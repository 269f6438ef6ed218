//! The codecs behind `mb-pack`: parallel gzip compression and checked decompression.
//!
//! The stage (`src/stages/pack.rs`) parses flags and opens the files; this
//! room only turns bytes into bytes.

mod compress;
mod decompress;

pub use compress::{compress, CompressOptions};
pub use decompress::{decompress, DecompressOptions};

/// Marks "the writer thread hung up" in both directions; its own error says why.
#[derive(Debug)]
pub(crate) struct WriterGone;

impl std::fmt::Display for WriterGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("writer stopped")
    }
}

impl std::error::Error for WriterGone {}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
