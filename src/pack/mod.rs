//! The codecs: parallel gzip compression and checked decompression behind
//! `mb-pack`, and the age format behind `mb-crypt`.
//!
//! The stage (`src/stages/pack.rs`) parses flags and opens the files; this
//! room only turns bytes into bytes.

pub mod age;
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

pub(crate) use crate::cli::io::read_full;
