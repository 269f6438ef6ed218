//! One zstd frame, decoded between the same `Source` and `Sink` as gzip
//! members, so a stream may mix gzip members and zstd frames in any order
//! (`cat a.tar.gz b.tar.zst | mb-pack -d`).
//!
//! libzstd stops at the end of a frame (its streaming decoder reports 0 once a
//! frame is decoded and flushed, without reading past it), so the caller
//! looks at the next magic itself. A frame that declares a window above
//! 2^[`WINDOW_LOG_MAX`] bytes is refused before anything is allocated for it,
//! which bounds memory whatever the input says.

use anyhow::Result;
use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};

use super::{Sink, Source};
use crate::cli::integrity;

/// The four bytes every zstd frame starts with (0xFD2FB528, little-endian).
pub(super) const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The largest window accepted: 128 MiB, what `zstd -d` accepts without
/// `--long` or `--memory`; mb-pack's own frames use 8 MiB at most (level 19).
pub(super) const WINDOW_LOG_MAX: u32 = 27;

pub(super) const TRUNCATED: &str = "input is truncated (zstd stream ended early)";

/// Decodes one zstd frame whose magic the caller has already read from
/// `source`; returns the bytes it decompressed.
pub(super) fn decode_frame(source: &mut Source, sink: &mut Sink<'_>, member: u64) -> Result<u64> {
    let corrupt = |e: std::io::Error| integrity(format!("input is corrupt (bad zstd data in member {member}: {e})"));
    let mut decoder = Decoder::new().map_err(|e| anyhow::anyhow!("starting zstd: {e}"))?;
    decoder.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX)).map_err(corrupt)?;
    // The magic goes in first, then the source's bytes.
    let mut magic_left: &[u8] = &MAGIC;
    let mut len = 0u64;
    loop {
        let from_magic = !magic_left.is_empty();
        if !from_magic && source.available().is_empty() {
            source.fill()?;
        }
        let input = if from_magic { magic_left } else { source.available() };
        let input_gone = input.is_empty();
        let mut input = InBuffer::around(input);
        let mut output = OutBuffer::around(sink.space()?);
        let hint = decoder.run(&mut input, &mut output).map_err(corrupt)?;
        let (consumed, produced) = (input.pos(), output.pos());
        sink.advance(produced);
        if from_magic {
            magic_left = &magic_left[consumed..];
        } else {
            source.consume(consumed);
        }
        len += produced as u64;
        if hint == 0 {
            // The frame is decoded, its checksum (if any) checked, and all flushed.
            return Ok(len);
        }
        if consumed == 0 && produced == 0 {
            if input_gone {
                return Err(integrity(TRUNCATED));
            }
            return Err(integrity(format!("input is corrupt (zstd stalled in member {member})")));
        }
    }
}
