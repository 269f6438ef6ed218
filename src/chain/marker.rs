//! Commit markers (`KEY.done`) and head records (`CYCLE/head.json`): the
//! small records a catalog reads instead of the objects.
//!
//! A marker is the object's put record (what the store confirmed: key,
//! size, CRC-64, storage class, encryption) plus what the chain needs to know
//! without opening the object: its kind, cycle, SEQ and oplog points. Its
//! format is `mb-marker/2`; a marker written before it is a plain put record
//! (`mb-put/1`), which still reads, with the chain's points taken from the
//! keys as before.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::format::records::{Kind, Manifest, PutRecord, RangeRecord, Ts};

/// Version tag of a commit marker.
pub const MARKER_FORMAT: &str = "mb-marker/2";
/// Version tag of a cycle's head record.
pub const HEAD_FORMAT: &str = "mb-head/1";

/// A commit marker's record.
#[derive(Debug, Serialize, Deserialize)]
pub struct Marker {
    /// What the store confirmed (its `format` is [`MARKER_FORMAT`], or
    /// `mb-put/1` in markers written before it).
    #[serde(flatten)]
    pub put: PutRecord,
    /// Full backup or oplog slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// The cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<String>,
    /// Position in the cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The databases backed up; empty means the whole instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<String>>,
    /// When the dump started (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Oplog slices: the exclusive start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Ts>,
    /// Oplog slices: the inclusive end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Ts>,
    /// Full backups on a replica set: the point the restored data is
    /// consistent at, the start of the cycle's restorable window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_at: Option<Ts>,
}

impl Marker {
    /// The marker of a stored object, from the run's three records; they
    /// must agree (the put names the range's key, the manifest covers the
    /// range exactly).
    pub fn new(range: &RangeRecord, manifest: &Manifest, put: PutRecord) -> Result<Marker> {
        if put.key != range.key {
            bail!("the stored object {} is not the range's key {}", put.key, range.key);
        }
        if manifest.kind != range.kind {
            bail!("the manifest is a {} backup, the range a {} one", manifest.kind, range.kind);
        }
        let (from, to) = match range.kind {
            Kind::Oplog => {
                let Some(oplog) = &manifest.oplog else { bail!("an oplog manifest without its oplog section") };
                if Some(oplog.from) != range.from || Some(oplog.to) != range.to {
                    bail!(
                        "the manifest covers ({}, {}] but the range was ({:?}, {:?}]",
                        oplog.from,
                        oplog.to,
                        range.from,
                        range.to
                    );
                }
                (Some(oplog.from), Some(oplog.to))
            }
            Kind::Full => (None, None),
        };
        Ok(Marker {
            put: PutRecord { format: MARKER_FORMAT.into(), ..put },
            kind: Some(range.kind),
            cycle: Some(range.cycle.clone()),
            seq: Some(range.seq),
            databases: Some(range.databases.clone()),
            created: Some(manifest.created.clone()),
            from,
            to,
            consistent_at: match range.kind {
                Kind::Full => manifest.consistent_at,
                Kind::Oplog => None,
            },
        })
    }

    /// Whether it is an `mb-marker/2` (else a put record of an older run).
    pub fn is_current(&self) -> bool {
        self.put.format == MARKER_FORMAT
    }
}

/// A cycle's head record: how far its chain reached at the last commit.
/// Rewritten after each marker, so deleting the newest objects of a cycle
/// (object and marker) shows: the head names a SEQ the chain lacks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    /// Always [`HEAD_FORMAT`].
    pub format: String,
    /// The cycle.
    pub cycle: String,
    /// The newest committed object's SEQ.
    pub seq: u64,
    /// Its key.
    pub key: String,
    /// Where the chain then ended (the full backup's consistency point, or
    /// the slice's end); absent for a standalone's full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Ts>,
    /// When it was written (RFC 3339 UTC).
    pub updated: String,
}

impl Head {
    /// The head after `marker`'s object was committed.
    pub fn after(marker: &Marker) -> Head {
        Head {
            format: HEAD_FORMAT.into(),
            cycle: marker.cycle.clone().unwrap_or_default(),
            seq: marker.seq.unwrap_or_default(),
            key: marker.put.key.clone(),
            to: marker.to.or(marker.consistent_at),
            updated: crate::format::time::now_rfc3339(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_put_record_reads_as_a_marker() {
        let old = r#"{"format":"mb-put/1","bucket":"b","key":"shop/C/000000-full.tar.gz","size":5,"crc64":7,"etag":null,"parts":1}"#;
        let marker: Marker = serde_json::from_str(old).unwrap();
        assert!(!marker.is_current());
        assert_eq!((marker.put.size, marker.kind, marker.consistent_at), (5, None, None));
        let again =
            serde_json::to_string(&Marker { put: PutRecord { format: MARKER_FORMAT.into(), ..marker.put }, ..marker })
                .unwrap();
        let put: PutRecord = serde_json::from_str(&again).unwrap();
        assert_eq!((put.key.as_str(), put.size, put.crc64), ("shop/C/000000-full.tar.gz", 5, 7));
    }
}
