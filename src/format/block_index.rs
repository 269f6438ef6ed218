//! The block index, `mb-index/1`: where each part of a stream lies inside a
//! seekable object, so a restore of some collections reads only their bytes.
//!
//! `mb-pack --seekable` writes it in the object's trailer (`src/pack/seekable`
//! frames it); `mb-oss-get --ns-include` reads it back. `docs/FORMAT.md`
//! specifies both.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::cli::integrity;

/// Version tag of the block index.
pub const INDEX_FORMAT: &str = "mb-index/1";

/// What part of the tar stream a block holds. A block never holds two parts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "lowercase")]
pub enum Part {
    /// `mb-header.json` (and the zero blocks of an earlier stream's end).
    Header,
    /// One collection's entries: its metadata and chunks.
    Collection {
        /// The database, as a name (not percent-encoded).
        db: String,
        /// The collection (a timeseries under its own name, as in the stream).
        coll: String,
    },
    /// Oplog chunks.
    Oplog,
    /// `mb-manifest.json` and the end-of-archive zero blocks.
    Manifest,
}

/// One independently decodable block: a zstd frame or gzip member of whole tar entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Offset of its first compressed byte in the object.
    pub offset: u64,
    /// Its compressed length.
    pub len: u64,
    /// Its decompressed length: whole tar entries, from a header on.
    pub raw: u64,
    /// CRC-64 of its compressed bytes, checked after a ranged read.
    pub crc64: u64,
    /// What it holds.
    #[serde(flatten)]
    pub part: Part,
}

/// The index of a seekable object: its blocks in object order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockIndex {
    /// Always [`INDEX_FORMAT`].
    pub format: String,
    /// `zstd`: each block is one zstd frame; `gzip`: one gzip member.
    pub codec: String,
    /// Every block of the object, contiguous from offset 0.
    pub blocks: Vec<Block>,
}

impl BlockIndex {
    /// Parses an index and checks that its blocks tile the object's data
    /// from offset 0 up to `data_end` (where the trailer starts).
    pub fn parse(bytes: &[u8], data_end: u64) -> Result<BlockIndex> {
        let index: BlockIndex =
            serde_json::from_slice(bytes).map_err(|e| integrity(format!("bad block index: {e}")))?;
        if index.format != INDEX_FORMAT {
            return Err(integrity(format!("block index of unknown format {:?}", index.format)));
        }
        if index.codec != "zstd" && index.codec != "gzip" {
            return Err(integrity(format!("block index of unknown codec {:?}", index.codec)));
        }
        let mut next = 0u64;
        for block in &index.blocks {
            if block.offset != next || block.len == 0 {
                return Err(integrity(format!(
                    "block index: a block at {} does not follow the one before",
                    block.offset
                )));
            }
            next = block.offset.checked_add(block.len).ok_or_else(|| integrity("block index: offsets overflow"))?;
        }
        if next != data_end {
            return Err(integrity(format!("block index: its blocks end at {next}, the data at {data_end}")));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(offset: u64, len: u64, part: Part) -> Block {
        Block { offset, len, raw: len * 3, crc64: 7, part }
    }

    #[test]
    fn an_index_round_trips_and_its_blocks_must_tile_the_data() {
        let index = BlockIndex {
            format: INDEX_FORMAT.into(),
            codec: "zstd".into(),
            blocks: vec![
                block(0, 10, Part::Header),
                block(10, 5, Part::Collection { db: "shop".into(), coll: "orders".into() }),
                block(15, 5, Part::Oplog),
                block(20, 4, Part::Manifest),
            ],
        };
        let json = serde_json::to_vec(&index).unwrap();
        assert!(String::from_utf8_lossy(&json).contains(r#""part":"collection","db":"shop","coll":"orders""#));
        assert_eq!(BlockIndex::parse(&json, 24).unwrap(), index);
        assert!(BlockIndex::parse(&json, 25).is_err(), "the data goes on past the last block");
        let mut gap = index.clone();
        gap.blocks[2].offset = 16;
        assert!(BlockIndex::parse(&serde_json::to_vec(&gap).unwrap(), 24).is_err());
        assert!(BlockIndex::parse(b"{", 0).is_err());
    }
}
