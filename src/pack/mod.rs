//! The codecs: zstd and parallel gzip compression, seekable zstd (blocks per
//! part of an `mb-tar/1` stream, with a block index), and checked
//! decompression of any of them, behind `mb-pack`; the age format behind
//! `mb-crypt`.
//!
//! The stage (`src/stages/pack.rs`) parses flags and opens the files; this
//! room turns bytes into bytes, reading the tar stream's framing (`format`)
//! only to know where its parts begin.

pub mod age;
mod compress;
mod decompress;
pub mod seekable;
mod zstd_compress;

pub use compress::{compress, CompressOptions};
pub use decompress::{decompress, DecompressOptions};
pub use seekable::compress_seekable;
pub use zstd_compress::{compress_zstd, ZstdOptions, MAX_LEVEL as ZSTD_MAX_LEVEL};

/// The compressed formats mb-pack writes (it reads both whatever this says).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// One zstd frame (`.tar.zst`), level 3 by default.
    Zstd,
    /// One gzip member (`.tar.gz`), level 6 by default.
    Gzip,
}

impl Codec {
    /// What a key ends with after `.tar`: `.zst` or `.gz`.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Zstd => ".zst",
            Codec::Gzip => ".gz",
        }
    }
}

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
