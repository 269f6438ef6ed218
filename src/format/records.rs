//! The JSON records the stages pass to each other and write to the tar stream.
//!
//! `docs/FORMAT.md` is the spec of every record here; keep the two in step.
//! Oplog timestamps are written as `{"t": seconds, "i": ordinal}`.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::time::parse_rfc3339;

/// Version tag of the tar stream layout (`docs/FORMAT.md`).
pub const TAR_FORMAT: &str = "mb-tar/1";
/// Version tag of the range record that `mb-oplog-range` prints.
pub const RANGE_FORMAT: &str = "mb-range/1";
/// Version tag of the state (checkpoint) file.
pub const STATE_FORMAT: &str = "mb-state/1";
/// Version tag of the record `mb-oss-put` prints.
pub const PUT_FORMAT: &str = "mb-put/1";
/// Version tag of the record `mb-apply` prints.
pub const APPLY_FORMAT: &str = "mb-apply/1";

/// Name of the first tar entry.
pub const HEADER_ENTRY: &str = "mb-header.json";
/// Name of the last tar entry.
pub const MANIFEST_ENTRY: &str = "mb-manifest.json";

/// An oplog timestamp: seconds since the epoch and an ordinal within the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Ts {
    /// Seconds since the Unix epoch.
    pub t: u32,
    /// Ordinal of the operation within that second.
    pub i: u32,
}

impl Ts {
    /// A timestamp from its parts.
    pub const fn new(t: u32, i: u32) -> Self {
        Self { t, i }
    }
}

impl From<bson::Timestamp> for Ts {
    fn from(ts: bson::Timestamp) -> Self {
        Ts { t: ts.time, i: ts.increment }
    }
}

impl From<Ts> for bson::Timestamp {
    fn from(ts: Ts) -> Self {
        bson::Timestamp { time: ts.t, increment: ts.i }
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.t, self.i)
    }
}

impl FromStr for Ts {
    type Err = anyhow::Error;

    /// Accepts `seconds,ordinal`, `seconds:ordinal`, plain `seconds`, an
    /// RFC 3339 time (`2026-11-24T03:15:00Z`), or a `{"t":..,"i":..}` record.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.starts_with('{') {
            return serde_json::from_str(s).with_context(|| format!("bad timestamp record {s:?}"));
        }
        if let Some((t, i)) = s.split_once([',', ':']).filter(|_| !s.contains('T')) {
            let t = t.trim().parse().with_context(|| format!("bad seconds in timestamp {s:?}"))?;
            let i = i.trim().parse().with_context(|| format!("bad ordinal in timestamp {s:?}"))?;
            return Ok(Ts { t, i });
        }
        if let Ok(t) = s.parse::<u32>() {
            return Ok(Ts { t, i: 0 });
        }
        let secs = parse_rfc3339(s)?;
        let t = u32::try_from(secs).with_context(|| format!("time {s:?} is out of range"))?;
        Ok(Ts { t, i: 0 })
    }
}

/// What a tar stream holds: a full dump, or an oplog slice.
/// `--until`: `t,i` is exact; a time means the end of that second (its
/// ordinal is `u32::MAX`), so every write of that second is included. A bad
/// value (February 31 included) is a usage error.
pub fn parse_until(text: &str) -> Result<Ts> {
    let ts: Ts = text.parse().map_err(|e: anyhow::Error| crate::cli::usage(format!("bad --until: {e:#}")))?;
    let exact = text.contains(',') || text.contains(':') && !text.contains('T') || text.trim_start().starts_with('{');
    Ok(if exact { ts } else { Ts::new(ts.t, u32::MAX) })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Collections (and the oplog written while they were read).
    Full,
    /// Only oplog entries in a range `(from, to]`.
    Oplog,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Full => "full",
            Kind::Oplog => "oplog",
        })
    }
}

/// The first entry of every tar stream (`mb-header.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Header {
    /// Always [`TAR_FORMAT`].
    pub format: String,
    /// Full dump or oplog slice.
    pub kind: Kind,
    /// When the dump started (RFC 3339 UTC).
    pub created: String,
    /// `mb` version that wrote the stream.
    pub tool: String,
    /// Host(s) of the source, without credentials.
    pub source: String,
    /// The databases dumped; empty means the whole instance.
    pub databases: Vec<String>,
    /// Full: where the oplog capture starts (inclusive). Oplog: the exclusive start.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub oplog_from: Option<Ts>,
    /// Oplog slices only: the inclusive end.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub oplog_to: Option<Ts>,
}

/// One collection (or view) in a manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectionEntry {
    /// Database name.
    pub db: String,
    /// Collection name (unescaped).
    pub name: String,
    /// `collection`, `view` or `timeseries`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Documents dumped.
    pub docs: u64,
    /// Bytes of BSON dumped.
    pub bytes: u64,
    /// CRC-64/XZ of all the collection's BSON, chunks in order.
    pub crc64: u64,
    /// How many `.bson.NNNNNN` chunk entries carry it.
    pub chunks: u64,
    /// CRC-64/XZ of its `.metadata.json` entry (options, indexes); absent
    /// only in streams written before it existed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata_crc64: Option<u64>,
}

/// The oplog part of a manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OplogEntry {
    /// Exclusive start: entries are newer than this.
    pub from: Ts,
    /// Inclusive end: the newest entry the stream may hold.
    pub to: Ts,
    /// Entries carried.
    pub count: u64,
    /// Bytes of BSON carried.
    pub bytes: u64,
    /// CRC-64/XZ of all `oplog.bson` chunks in order.
    pub crc64: u64,
    /// How many `oplog.bson.NNNNNN` chunk entries carry it.
    pub chunks: u64,
}

/// The last entry of every tar stream (`mb-manifest.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Always [`TAR_FORMAT`].
    pub format: String,
    /// Full dump or oplog slice.
    pub kind: Kind,
    /// When the dump started (RFC 3339 UTC).
    pub created: String,
    /// When the dump finished (RFC 3339 UTC).
    pub finished: String,
    /// Host(s) of the source, without credentials.
    pub source: String,
    /// The databases dumped; empty means the whole instance.
    pub databases: Vec<String>,
    /// Every collection and view, sorted by namespace.
    pub collections: Vec<CollectionEntry>,
    /// The oplog carried, if any (none on a standalone server).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub oplog: Option<OplogEntry>,
    /// The restore is consistent at this point once the oplog is applied
    /// (none for a standalone: then it is only as consistent as the reads were).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub consistent_at: Option<Ts>,
}

/// What `mb-oplog-range` prints: the next thing to back up.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RangeRecord {
    /// Always [`RANGE_FORMAT`].
    pub format: String,
    /// A full backup (new cycle) or an oplog slice.
    pub kind: Kind,
    /// Oplog: the exclusive start (the last checkpoint).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<Ts>,
    /// Oplog: the inclusive end (the newest entry when asked).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<Ts>,
    /// The databases backed up; empty means the whole instance.
    #[serde(default)]
    pub databases: Vec<String>,
    /// The cycle this backup belongs to.
    #[serde(default)]
    pub cycle: String,
    /// Position in the cycle: 0 for the full backup, then 1, 2, ...
    #[serde(default)]
    pub seq: u64,
    /// Why this kind was chosen (for full: no checkpoint, period elapsed, oplog gap).
    #[serde(default)]
    pub reason: String,
    /// The object key this backup is stored under.
    #[serde(default)]
    pub key: String,
    /// The replica set member (`host:port`) that decided the range; `mb-dump`
    /// reads from it. Absent in older records and for standalones.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub member: Option<String>,
}

/// The checkpoint of an incremental chain: the state file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// The cycle the last stored backup belongs to.
    pub cycle: String,
    /// When that cycle's full backup started (RFC 3339 UTC).
    pub cycle_started: String,
    /// The last stored backup's position in the cycle.
    pub seq: u64,
    /// The oplog position the chain is stored up to (inclusive).
    pub to: Ts,
    /// The databases backed up; empty means the whole instance.
    pub databases: Vec<String>,
    /// The key prefix of the chain's objects.
    pub prefix: String,
    /// The last object stored.
    pub key: String,
    /// Its size and CRC-64 as the store confirmed them.
    pub size: u64,
    /// CRC-64/XZ of the stored object.
    pub crc64: u64,
    /// When the state was written (RFC 3339 UTC).
    pub updated: String,
}

/// Reads one JSON record from a reader that holds exactly one (stdin, a file).
/// The record `mb-oss-put` prints on success (`docs/FORMAT.md`, `mb-put/1`);
/// `mb-oplog-range --commit` reads its key, size and CRC-64 (the other
/// fields default, as that reader never needed them).
#[derive(Serialize, Deserialize, Debug)]
pub struct PutRecord {
    /// Always [`PUT_FORMAT`].
    #[serde(default)]
    pub format: String,
    /// Bucket.
    #[serde(default)]
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Bytes stored.
    pub size: u64,
    /// CRC-64/XZ (= x-oss-hash-crc64ecma), decimal.
    pub crc64: u64,
    /// ETag of the stored object (null if the backend has none).
    #[serde(default)]
    pub etag: Option<String>,
    /// 1 for a simple put, else the number of parts.
    #[serde(default)]
    pub parts: u32,
    /// Storage class asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Server-side encryption asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<String>,
    /// KMS key id, if any (an id, not a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_key_id: Option<String>,
    /// `age` when the object is an age-encrypted stream (mb-crypt), as seen in its first bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
}

/// What a commit marker's key adds to its object's key: `KEY.done` holds
/// the object's put record and says the object was verified and committed.
pub const MARKER_SUFFIX: &str = ".done";

/// The record `mb-apply` prints on stdout when it is done.
#[derive(Debug, Serialize, Default)]
pub struct ApplyRecord {
    /// Always [`APPLY_FORMAT`].
    pub format: String,
    /// Whether anything was written.
    pub dry_run: bool,
    /// Tar streams read (a full dump and its slices).
    pub archives: u64,
    /// Collections and views restored.
    pub collections: u64,
    /// Documents inserted.
    pub documents: u64,
    /// Documents that were already there, identical (a restore run again).
    pub duplicates: u64,
    /// Documents not restored: the target holds another document with the
    /// same `_id` (kept). Exit 4 unless --keep-existing.
    pub id_conflicts: u64,
    /// Documents not restored: another unique index of the target refused
    /// them. Exit 4 unless --keep-existing.
    pub unique_conflicts: u64,
    /// Oplog replay counts.
    pub oplog: ReplayStats,
    /// The point asked for with `--until`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Ts>,
    /// The point the restored data is the source's at: the chain's end, or
    /// with `--until` the last oplog point at or before it that the chain
    /// holds (the data is then the source's from there through `until`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_at: Option<Ts>,
    /// The full backup's consistency point: the earliest point the chain restores to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restorable_from: Option<Ts>,
}

/// Counts of a replay.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ReplayStats {
    /// Entries read.
    pub entries: u64,
    /// Operations applied (transactions count their inner operations).
    pub applied: u64,
    /// Entries skipped (internal, filtered out, index-build bookkeeping).
    pub skipped: u64,
    /// Operations on databases outside the backup's scope, not applied
    /// (the other databases of a cross-database transaction).
    pub out_of_scope: u64,
    /// The last entry's timestamp that was applied or skipped.
    pub last: Option<Ts>,
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(reader: impl std::io::Read, what: &str) -> Result<T> {
    let mut text = String::new();
    let mut reader = reader;
    reader.read_to_string(&mut text).with_context(|| format!("reading {what}"))?;
    if text.trim().is_empty() {
        bail!("{what} is empty");
    }
    serde_json::from_str(text.trim()).with_context(|| format!("{what} is not a valid record"))
}

/// Reads one JSON record from a file (`-`: stdin), called `what` in errors.
pub(crate) fn read_json_file<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str) -> Result<T> {
    read_json(crate::cli::io::open_input(Some(path))?, what)
}

/// Reads a range record (a file, or `-` for stdin) and checks its format tag.
pub(crate) fn read_range(path: &std::path::Path) -> Result<RangeRecord> {
    let what = if crate::cli::io::is_std(Some(path)) {
        "the range record on stdin".into()
    } else {
        format!("range record {}", path.display())
    };
    let record: RangeRecord = read_json_file(path, &what)?;
    if record.format != RANGE_FORMAT {
        bail!("range record has format {:?}, expected {:?}", record.format, RANGE_FORMAT);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_parses_every_spelling() {
        assert_eq!("1700000000,3".parse::<Ts>().unwrap(), Ts::new(1_700_000_000, 3));
        assert_eq!("1700000000:3".parse::<Ts>().unwrap(), Ts::new(1_700_000_000, 3));
        assert_eq!("1700000000".parse::<Ts>().unwrap(), Ts::new(1_700_000_000, 0));
        assert_eq!(r#"{"t":5,"i":6}"#.parse::<Ts>().unwrap(), Ts::new(5, 6));
        assert_eq!("2026-11-24T03:15:00Z".parse::<Ts>().unwrap().t, 1_795_490_100);
        assert_eq!("2026-11-24T05:15:00.25+02:00".parse::<Ts>().unwrap().t, 1_795_490_100);
        assert!("yesterday".parse::<Ts>().is_err());
        assert!("2026-13-01T00:00:00Z".parse::<Ts>().is_err());
    }

    #[test]
    fn until_time_covers_its_whole_second_and_is_checked() {
        assert_eq!(parse_until("1700000000,5").unwrap(), Ts::new(1_700_000_000, 5));
        assert_eq!(parse_until("2026-11-24T03:15:00Z").unwrap(), Ts::new(1_795_490_100, u32::MAX));
        for bad in ["2026-02-31T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T12:00:00Z", "soon"] {
            let err = parse_until(bad).unwrap_err();
            assert_eq!(crate::cli::exit_code_of(&err), crate::cli::EXIT_USAGE, "{bad}");
        }
        assert!(parse_until("2028-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn ts_json_shape() {
        assert_eq!(serde_json::to_string(&Ts::new(1, 2)).unwrap(), r#"{"t":1,"i":2}"#);
    }
}
