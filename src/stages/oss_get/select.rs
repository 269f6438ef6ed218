//! `mb-oss-get --ns-include/--ns-exclude`: of a seekable object, only the
//! blocks a restore of those namespaces reads (the header, their collections,
//! the oplog, the manifest), fetched with ranged GETs (several at once,
//! `fetch.rs`) and each checked against its CRC-64 in the block index before
//! a byte of it is written.
//! An encrypted object is decrypted on the way (age's 64 KiB chunks are read
//! by position). An object without a block index is read whole, saying so.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::integrity;
use crate::cli::progress::{human_size, Progress};
use crate::format::block_index::{Block, BlockIndex, Part};
use crate::format::records::PutRecord;
use crate::mongo::ns::NsMap;
use crate::pack::seekable::{read_index, Footer, MAX_FOOTER_LEN};
use crate::store::Store;

use super::fetch::{check_block, copy_pieces, PIECE_MAX};
use super::ranged::Plaintext;

/// The largest block index read: a bound on memory whatever the object says
/// (an 8 MiB block per entry of about 100 bytes: some 20 TB of data).
const MAX_INDEX: u64 = 256 << 20;

/// Writes the blocks of `key` that `wanted` needs to `out`; an encrypted
/// object is decrypted with `identities` (its blocks go out as plaintext).
pub(super) fn download_selected(
    store: &dyn Store,
    key: &str,
    wanted: &NsMap,
    identities: &[PathBuf],
    out: &mut dyn Write,
    expected: Option<&PutRecord>,
    progress: &Progress,
) -> Result<()> {
    let reading = || format!("reading {key:?} from {}", store.location());
    let meta = store.head(key).with_context(reading)?.ok_or_else(|| crate::store::not_found(&store.location(), key))?;
    if let Some(put) = expected {
        if put.key != key || put.size != meta.size {
            return Err(integrity(format!(
                "{key:?} is {} bytes but its put record says {} bytes of {:?}",
                meta.size, put.size, put.key
            )));
        }
    }
    let Some(mut plain) =
        Plaintext::open(store, key, meta.size, meta.etag.clone(), identities).with_context(reading)?
    else {
        crate::warn!("{key}: encrypted, and no --identity to read its block index: reading all of it");
        return super::download(store, key, None, out, expected, progress);
    };
    let Some(index) = read_block_index(&mut plain, key).with_context(reading)? else {
        crate::warn!("{key}: no block index (written without mb-pack --seekable): reading all of it");
        return super::download(store, key, None, out, expected, progress);
    };
    let needed: Vec<&Block> = index.blocks.iter().filter(|b| needs(wanted, &b.part)).collect();
    let collections = needed.iter().filter(|b| matches!(b.part, Part::Collection { .. })).count();
    if collections == 0 {
        crate::warn!("{key}: no collection in it matches the namespaces asked for");
    }
    progress.set_total(needed.iter().map(|b| b.len).sum());
    let pieces = pieces(&needed);
    let read = if plain.is_encrypted() {
        for piece in pieces {
            copy_piece(&mut plain, key, piece, out, progress).with_context(reading)?;
        }
        plain.requested()
    } else {
        let etag = meta.etag.as_deref();
        plain.requested() + copy_pieces(store, key, etag, pieces, out, progress).with_context(reading)?
    };
    crate::info!(
        "{key}: read {read} of {} bytes ({} of {}): {} of {} blocks ({collections} of the collections asked for)",
        meta.size,
        human_size(read),
        human_size(meta.size),
        needed.len(),
        index.blocks.len()
    );
    Ok(())
}

/// Whether a restore filtered by `wanted` reads this part: every part but
/// the collections it filters out.
fn needs(wanted: &NsMap, part: &Part) -> bool {
    match part {
        Part::Collection { db, coll } => wanted.map(db, coll).is_some(),
        Part::Header | Part::Oplog | Part::Manifest => true,
    }
}

/// The block index at the end of the plaintext; `None` when it has none.
fn read_block_index(plain: &mut Plaintext<'_>, key: &str) -> Result<Option<BlockIndex>> {
    let len = plain.len();
    let mut tail = vec![0u8; len.min(MAX_FOOTER_LEN) as usize];
    plain.read_span(len - tail.len() as u64, len)?;
    plain.read_exact(&mut tail)?;
    let Some(footer) = Footer::parse(&tail) else { return Ok(None) };
    let index_end = len - footer.len;
    if footer.index_offset >= index_end || index_end - footer.index_offset > MAX_INDEX {
        return Err(integrity(format!(
            "{key:?}: its footer points to no block index (offset {})",
            footer.index_offset
        )));
    }
    let mut frame = vec![0u8; (index_end - footer.index_offset) as usize];
    plain.read_span(footer.index_offset, index_end)?;
    plain.read_exact(&mut frame)?;
    read_index(&frame, &footer).with_context(|| format!("in {key:?}")).map(Some)
}

/// Adjacent blocks, up to [`PIECE_MAX`] bytes (or one larger block): one GET each.
fn pieces<'a>(blocks: &[&'a Block]) -> Vec<Vec<&'a Block>> {
    let mut pieces: Vec<Vec<&Block>> = Vec::new();
    for &block in blocks {
        match pieces.last_mut() {
            Some(piece)
                if piece.last().is_some_and(|last| last.offset + last.len == block.offset)
                    && block.offset + block.len - piece[0].offset <= PIECE_MAX =>
            {
                piece.push(block)
            }
            _ => pieces.push(vec![block]),
        }
    }
    pieces
}

/// One piece of an encrypted object, through age; each block is checked whole before it is written.
fn copy_piece(
    plain: &mut Plaintext<'_>,
    key: &str,
    piece: Vec<&Block>,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<()> {
    let (first, last) = (piece[0], piece[piece.len() - 1]);
    plain.read_span(first.offset, last.offset + last.len)?;
    let received = progress.input();
    let mut buf = Vec::new();
    for block in piece {
        buf.resize(block.len as usize, 0);
        plain
            .read_exact(&mut buf)
            .map_err(|e| integrity(format!("{key:?}: the block at {} could not be read whole: {e}", block.offset)))?;
        check_block(key, block, &buf)?;
        received.add(1, block.len);
        out.write_all(&buf).context("writing the output")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_adjacent_blocks_up_to_a_bound() {
        let block = |offset: u64, len: u64| Block { offset, len, raw: len, crc64: 0, part: Part::Oplog };
        let blocks = [block(0, 10), block(10, 5), block(20, 5), block(25, PIECE_MAX - 5), block(PIECE_MAX + 20, 1)];
        let refs: Vec<&Block> = blocks.iter().collect();
        let offsets: Vec<Vec<u64>> = pieces(&refs).iter().map(|p| p.iter().map(|b| b.offset).collect()).collect();
        assert_eq!(offsets, [vec![0, 10], vec![20, 25], vec![PIECE_MAX + 20]], "a gap and the bound split them");
    }
}
