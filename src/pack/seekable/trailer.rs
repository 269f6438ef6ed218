//! The trailer of a seekable object: the block index in one zstd skippable
//! frame, then a fixed-size footer frame that says where the index starts.
//! A reader fetches the last [`FOOTER_LEN`] bytes, then the index.

use anyhow::Result;

use crate::cli::integrity;
use crate::crc64::checksum;
use crate::format::block_index::BlockIndex;

/// The skippable frame magic mb uses (zstd reserves 0x184D2A50..=0x184D2A5F).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// What a footer's payload starts with.
const FOOTER_TAG: &[u8; 8] = b"mb-index";
/// Footer payload: the tag, the index frame's offset, the index's CRC-64.
const FOOTER_PAYLOAD: usize = 24;
/// The footer frame's length: magic, size, payload.
pub const FOOTER_LEN: u64 = 8 + FOOTER_PAYLOAD as u64;

/// Where the index of a seekable object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the index's skippable frame; the blocks end there.
    pub index_offset: u64,
    /// CRC-64 of the index's JSON.
    pub index_crc64: u64,
}

impl Footer {
    /// The footer in an object's last [`FOOTER_LEN`] bytes, or `None` when
    /// the object has none (written without `--seekable`, by an older mb, or
    /// encrypted after packing).
    pub fn parse(tail: &[u8]) -> Option<Footer> {
        let tail: &[u8; FOOTER_LEN as usize] = tail.try_into().ok()?;
        let u32_at = |at: usize| u32::from_le_bytes(tail[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(tail[at..at + 8].try_into().expect("8 bytes"));
        if u32_at(0) != SKIPPABLE_MAGIC || u32_at(4) as usize != FOOTER_PAYLOAD || &tail[8..16] != FOOTER_TAG {
            return None;
        }
        Some(Footer { index_offset: u64_at(16), index_crc64: u64_at(24) })
    }
}

/// The trailer for `index`, whose blocks end at `data_end`.
pub(super) fn encode(index: &BlockIndex, data_end: u64) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(index)?;
    let len = u32::try_from(json.len()).map_err(|_| anyhow::anyhow!("the block index is over 4 GiB"))?;
    let mut out = Vec::with_capacity(json.len() + 8 + FOOTER_LEN as usize);
    out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&(FOOTER_PAYLOAD as u32).to_le_bytes());
    out.extend_from_slice(FOOTER_TAG);
    out.extend_from_slice(&data_end.to_le_bytes());
    out.extend_from_slice(&checksum(&json).to_le_bytes());
    Ok(out)
}

/// The block index from its frame (the object's bytes from the footer's
/// `index_offset` up to the footer), checked against the footer.
pub fn read_index(frame: &[u8], footer: &Footer) -> Result<BlockIndex> {
    let bad = |why: &str| integrity(format!("bad block index: {why}"));
    if frame.len() < 8 || frame[..4] != SKIPPABLE_MAGIC.to_le_bytes() {
        return Err(bad("no skippable frame where the footer points"));
    }
    let len = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes")) as usize;
    let json = &frame[8..];
    if json.len() != len {
        return Err(bad(&format!("its frame says {len} bytes, {} are there", json.len())));
    }
    if checksum(json) != footer.index_crc64 {
        return Err(bad("its CRC-64 differs from the footer's"));
    }
    BlockIndex::parse(json, footer.index_offset)
}

/// Whether four bytes are a zstd skippable frame's magic (any of the sixteen).
pub(crate) fn is_skippable_magic(bytes: [u8; 4]) -> bool {
    u32::from_le_bytes(bytes) & 0xFFFF_FFF0 == 0x184D_2A50
}
