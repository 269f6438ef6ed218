//! The checkpoint of an incremental chain (`state.json`): read it, and move
//! it once an object is stored and committed.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::marker::{Marker, MARKER_FORMAT};
use crate::format::records::{Kind, RangeRecord, State, Ts, STATE_FORMAT};

/// Reads the state file; a missing file is no checkpoint.
pub fn read(path: &Path) -> Result<Option<State>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading state file {}", path.display())),
    };
    let state: State = serde_json::from_str(&text)
        .with_context(|| format!("state file {} is damaged; move it away to start a new cycle", path.display()))?;
    if state.format != STATE_FORMAT {
        bail!("state file {} has format {:?}, expected {STATE_FORMAT:?}", path.display(), state.format);
    }
    Ok(Some(state))
}

/// The checkpoint after `range`'s object was stored and committed with
/// `marker`, given the checkpoint before it. The marker is also what a run
/// killed between the marker and this commit left: the next run, deciding
/// the same range again, commits from it instead of storing again.
pub fn after(previous: Option<&State>, range: &RangeRecord, marker: &Marker) -> Result<State> {
    let put = &marker.put;
    if put.key != range.key {
        bail!("the stored object {} is not the range's key {}", put.key, range.key);
    }
    if marker.kind != Some(range.kind) {
        bail!("the marker of {} is not of a {} backup (is it older than {MARKER_FORMAT}?)", put.key, range.kind);
    }
    let to: Ts = match range.kind {
        Kind::Oplog => {
            let (Some(from), Some(to)) = (marker.from, marker.to) else {
                bail!("the marker of the oplog slice {} has no from and to", put.key)
            };
            if Some(from) != range.from || Some(to) != range.to {
                bail!("the slice covers ({from}, {to}] but the range was ({:?}, {:?}]", range.from, range.to);
            }
            let previous = previous.context("an oplog slice with no checkpoint before it")?;
            if previous.to != from || previous.cycle != range.cycle {
                bail!(
                    "the checkpoint moved since the range was decided (another run?): it is at {} of cycle {}",
                    previous.to,
                    previous.cycle
                );
            }
            to
        }
        Kind::Full => marker.consistent_at.context(
            "a full backup without an oplog position cannot start an incremental cycle (is the source a replica set?)",
        )?,
    };
    let cycle_started = match (previous, range.kind) {
        (Some(previous), Kind::Oplog) => previous.cycle_started.clone(),
        _ => marker.created.clone().unwrap_or_else(crate::format::time::now_rfc3339),
    };
    Ok(State {
        format: STATE_FORMAT.into(),
        cycle: range.cycle.clone(),
        cycle_started,
        seq: range.seq,
        to,
        databases: range.databases.clone(),
        // The key is PREFIX/CYCLE/FILE; the prefix may itself hold slashes.
        prefix: range.key.rsplitn(3, '/').nth(2).unwrap_or_default().to_string(),
        key: put.key.clone(),
        size: put.size,
        crc64: put.crc64,
        updated: crate::format::time::now_rfc3339(),
    })
}
