//! The trailer of a seekable object: the block index, then a fixed-size
//! footer that says where the index starts. zstd objects carry both in zstd
//! skippable frames; gzip objects in empty gzip members, the index as the
//! member's comment and the footer in its extra field, which every gzip
//! reader skips. A reader fetches the last [`MAX_FOOTER_LEN`] bytes, then the
//! index.

use anyhow::Result;

use super::codec_name;
use crate::cli::integrity;
use crate::crc64::checksum;
use crate::format::block_index::BlockIndex;
use crate::pack::Codec;

/// The skippable frame magic mb uses (zstd reserves 0x184D2A50..=0x184D2A5F).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// What a footer's payload starts with.
const FOOTER_TAG: &[u8; 8] = b"mb-index";
/// Footer payload: the tag, the index's offset, the index's CRC-64.
const FOOTER_PAYLOAD: usize = 24;
/// zstd footer: skippable frame magic, size, payload.
const ZSTD_FOOTER_LEN: usize = 8 + FOOTER_PAYLOAD;
/// gzip footer: header with FEXTRA (10 + XLEN 2 + subfield 4 + payload), an
/// empty deflate block (2), CRC-32 and length (8).
const GZIP_FOOTER_LEN: usize = 10 + 2 + 4 + FOOTER_PAYLOAD + 2 + 8;
/// The longest footer: what a reader fetches from the end of an object.
pub const MAX_FOOTER_LEN: u64 = GZIP_FOOTER_LEN as u64;

/// A gzip member header's first bytes: magic, deflate; then FLG.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
const FEXTRA: u8 = 0x04;
const FCOMMENT: u8 = 0x10;
/// MTIME 0, XFL 0, OS 255 (unknown): nothing that varies between runs.
const GZIP_HEADER_REST: [u8; 6] = [0, 0, 0, 0, 0, 0xff];
/// An empty final deflate block, then CRC-32 0 and length 0: an empty member's end.
const EMPTY_MEMBER_END: [u8; 10] = [0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
/// The extra field's subfield ID for mb's footer.
const SUBFIELD_ID: [u8; 2] = *b"MB";

/// Where the index of a seekable object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// The blocks' codec.
    pub codec: Codec,
    /// Offset of the index's frame (member); the blocks end there.
    pub index_offset: u64,
    /// CRC-64 of the index's JSON.
    pub index_crc64: u64,
    /// The footer's own length: the index ends this far from the object's end.
    pub len: u64,
}

impl Footer {
    /// The footer at the end of `tail` (an object's last bytes, up to
    /// [`MAX_FOOTER_LEN`]), or `None` when the object has none (written
    /// without `--seekable`, or by an older mb).
    pub fn parse(tail: &[u8]) -> Option<Footer> {
        let payload = |p: &[u8]| -> Option<(u64, u64)> {
            if &p[..8] != FOOTER_TAG {
                return None;
            }
            Some((u64::from_le_bytes(p[8..16].try_into().ok()?), u64::from_le_bytes(p[16..24].try_into().ok()?)))
        };
        if tail.len() >= GZIP_FOOTER_LEN {
            let g = &tail[tail.len() - GZIP_FOOTER_LEN..];
            let xlen = (4 + FOOTER_PAYLOAD) as u16;
            if g[..3] == GZIP_MAGIC
                && g[3] == FEXTRA
                && g[4..10] == GZIP_HEADER_REST
                && g[10..12] == xlen.to_le_bytes()
                && g[12..14] == SUBFIELD_ID
                && g[14..16] == (FOOTER_PAYLOAD as u16).to_le_bytes()
                && g[16 + FOOTER_PAYLOAD..] == EMPTY_MEMBER_END
            {
                let (index_offset, index_crc64) = payload(&g[16..16 + FOOTER_PAYLOAD])?;
                return Some(Footer { codec: Codec::Gzip, index_offset, index_crc64, len: GZIP_FOOTER_LEN as u64 });
            }
        }
        let z = tail.get(tail.len().checked_sub(ZSTD_FOOTER_LEN)?..)?;
        if z[..4] != SKIPPABLE_MAGIC.to_le_bytes() || z[4..8] != (FOOTER_PAYLOAD as u32).to_le_bytes() {
            return None;
        }
        let (index_offset, index_crc64) = payload(&z[8..])?;
        Some(Footer { codec: Codec::Zstd, index_offset, index_crc64, len: ZSTD_FOOTER_LEN as u64 })
    }
}

/// The trailer for `index`, whose blocks end at `data_end`.
pub(super) fn encode(index: &BlockIndex, data_end: u64, codec: Codec) -> Result<Vec<u8>> {
    let json = ascii_json(&serde_json::to_vec(index)?);
    let mut payload = Vec::with_capacity(FOOTER_PAYLOAD);
    payload.extend_from_slice(FOOTER_TAG);
    payload.extend_from_slice(&data_end.to_le_bytes());
    payload.extend_from_slice(&checksum(&json).to_le_bytes());
    let mut out = Vec::with_capacity(json.len() + 64);
    match codec {
        Codec::Zstd => {
            let len = u32::try_from(json.len()).map_err(|_| anyhow::anyhow!("the block index is over 4 GiB"))?;
            for (bytes, len) in [(&json, len), (&payload, FOOTER_PAYLOAD as u32)] {
                out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
        Codec::Gzip => {
            // The index as an empty member's comment (JSON in ASCII holds no NUL).
            out.extend_from_slice(&GZIP_MAGIC);
            out.push(FCOMMENT);
            out.extend_from_slice(&GZIP_HEADER_REST);
            out.extend_from_slice(&json);
            out.push(0);
            out.extend_from_slice(&EMPTY_MEMBER_END);
            // The footer as another's extra field, of a fixed size.
            out.extend_from_slice(&GZIP_MAGIC);
            out.push(FEXTRA);
            out.extend_from_slice(&GZIP_HEADER_REST);
            out.extend_from_slice(&((4 + FOOTER_PAYLOAD) as u16).to_le_bytes());
            out.extend_from_slice(&SUBFIELD_ID);
            out.extend_from_slice(&(FOOTER_PAYLOAD as u16).to_le_bytes());
            out.extend_from_slice(&payload);
            out.extend_from_slice(&EMPTY_MEMBER_END);
        }
    }
    Ok(out)
}

/// The block index from its frame or member (the object's bytes from the
/// footer's `index_offset` up to the footer), checked against the footer.
pub fn read_index(frame: &[u8], footer: &Footer) -> Result<BlockIndex> {
    let bad = |why: &str| integrity(format!("bad block index: {why}"));
    let json = match footer.codec {
        Codec::Zstd => {
            if frame.len() < 8 || frame[..4] != SKIPPABLE_MAGIC.to_le_bytes() {
                return Err(bad("no skippable frame where the footer points"));
            }
            let len = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes")) as usize;
            if frame.len() - 8 != len {
                return Err(bad(&format!("its frame says {len} bytes, {} are there", frame.len() - 8)));
            }
            &frame[8..]
        }
        Codec::Gzip => {
            let header = GZIP_MAGIC.len() + 1 + GZIP_HEADER_REST.len();
            let ok = frame.len() >= header + 1 + EMPTY_MEMBER_END.len()
                && frame[..3] == GZIP_MAGIC
                && frame[3] == FCOMMENT
                && frame[frame.len() - EMPTY_MEMBER_END.len()..] == EMPTY_MEMBER_END
                && frame[frame.len() - EMPTY_MEMBER_END.len() - 1] == 0;
            if !ok {
                return Err(bad("no gzip member with a comment where the footer points"));
            }
            &frame[header..frame.len() - EMPTY_MEMBER_END.len() - 1]
        }
    };
    if checksum(json) != footer.index_crc64 {
        return Err(bad("its CRC-64 differs from the footer's"));
    }
    let index = BlockIndex::parse(json, footer.index_offset)?;
    if index.codec != codec_name(footer.codec) {
        return Err(bad(&format!("its codec {:?} is not its trailer's", index.codec)));
    }
    Ok(index)
}

/// JSON with every non-ASCII character escaped (`\uXXXX`, surrogate pairs
/// above U+FFFF): a gzip comment is Latin-1, and names may be any UTF-8.
fn ascii_json(json: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(json) else { return json.to_vec() };
    let mut out = Vec::with_capacity(json.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
            }
        }
    }
    out
}

/// Whether four bytes are a zstd skippable frame's magic (any of the sixteen).
pub(crate) fn is_skippable_magic(bytes: [u8; 4]) -> bool {
    u32::from_le_bytes(bytes) & 0xFFFF_FFF0 == 0x184D_2A50
}
