//! The catalog as people and programs read it: one text line per cycle (and
//! one per gap between cycles), or one `mb-cycle/1` JSON record per cycle
//! (`docs/FORMAT.md`).

use std::collections::BTreeSet;

use serde::Serialize;

use super::catalog::{Catalog, Cycle};
use super::plan::describe_window;
use crate::format::records::Ts;

/// Version tag of a catalog record.
pub const CYCLE_FORMAT: &str = "mb-cycle/1";

/// A point as a record gives it: the oplog point and its UTC time.
#[derive(Debug, Serialize)]
pub struct Point {
    /// The oplog point.
    pub ts: Ts,
    /// Its second as RFC 3339 UTC.
    pub time: String,
}

impl From<Ts> for Point {
    fn from(ts: Ts) -> Point {
        Point { ts, time: crate::format::time::format_rfc3339(i64::from(ts.t)) }
    }
}

/// A restorable window in a record.
#[derive(Debug, Serialize)]
pub struct WindowRecord {
    /// The full backup's consistency point.
    pub from: Point,
    /// The last point the chain reaches.
    pub to: Point,
}

/// One cycle of `mb-config chain list --json` (`mb-restore --list --json`).
#[derive(Debug, Serialize)]
pub struct CycleRecord {
    /// Always [`CYCLE_FORMAT`].
    pub format: &'static str,
    /// The chain's prefix.
    pub prefix: String,
    /// The cycle's name.
    pub cycle: String,
    /// The full backup's key, if committed.
    pub full_backup: Option<String>,
    /// When its dump started (RFC 3339 UTC), if its marker says.
    pub created: Option<String>,
    /// The restorable window; null when unknown.
    pub window: Option<WindowRecord>,
    /// Objects in the restorable chain.
    pub objects: usize,
    /// Their bytes in the store.
    pub bytes: u64,
    /// Their codecs (`zstd`, `gzip`).
    pub codecs: Vec<String>,
    /// How many of them are encrypted (age).
    pub encrypted: usize,
    /// Their storage classes (`Standard` where none was asked for).
    pub storage_classes: Vec<String>,
    /// No hole, every marker with its object, the head record reached.
    pub complete: bool,
    /// What makes it incomplete.
    pub problems: Vec<String>,
    /// Committed objects past a hole (stored, not restorable).
    pub stranded: usize,
    /// The span between the previous cycle's end and this one's start that
    /// no cycle covers, if any.
    pub gap_before: Option<WindowRecord>,
}

/// The records of every cycle, oldest first.
pub fn records(catalog: &Catalog) -> Vec<CycleRecord> {
    let mut previous_end: Option<Ts> = None;
    catalog
        .cycles
        .iter()
        .map(|cycle| {
            let gap_before = gap(previous_end, cycle);
            if let Some(window) = cycle.window {
                previous_end = Some(previous_end.map_or(window.to, |end| end.max(window.to)));
            }
            record(catalog, cycle, gap_before)
        })
        .collect()
}

fn gap(previous_end: Option<Ts>, cycle: &Cycle) -> Option<WindowRecord> {
    let (end, window) = (previous_end?, cycle.window?);
    (window.from > end).then(|| WindowRecord { from: end.into(), to: window.from.into() })
}

fn record(catalog: &Catalog, cycle: &Cycle, gap_before: Option<WindowRecord>) -> CycleRecord {
    let full = cycle.chain.first().filter(|c| c.key.seq == 0);
    let codecs: BTreeSet<String> = cycle.chain.iter().map(|c| codec_name(&c.key.ext)).collect();
    let classes: BTreeSet<String> =
        cycle.chain.iter().map(|c| c.marker.put.storage_class.clone().unwrap_or_else(|| "Standard".into())).collect();
    CycleRecord {
        format: CYCLE_FORMAT,
        prefix: catalog.prefix.clone(),
        cycle: cycle.name.clone(),
        full_backup: full.map(|c| c.key.key()),
        created: full.and_then(|c| c.marker.created.clone()),
        window: cycle.window.map(|w| WindowRecord { from: w.from.into(), to: w.to.into() }),
        objects: cycle.chain.len(),
        bytes: cycle.bytes(),
        codecs: codecs.into_iter().collect(),
        encrypted: cycle.chain.iter().filter(|c| c.marker.put.encryption.is_some()).count(),
        storage_classes: classes.into_iter().collect(),
        complete: cycle.complete(),
        problems: cycle.problems.clone(),
        stranded: cycle.stranded,
        gap_before,
    }
}

fn codec_name(ext: &str) -> String {
    match ext {
        "zst" => "zstd".into(),
        "gz" => "gzip".into(),
        other => format!("unknown (.tar.{other})"),
    }
}

/// The text lines: a gap line before a cycle that does not touch the one
/// before it, then the cycle's line.
pub fn lines(records: &[CycleRecord]) -> Vec<String> {
    let mut lines = Vec::new();
    for r in records {
        if let Some(gap) = &r.gap_before {
            lines.push(format!("gap: {} is in no cycle's window", describe_window(gap.from.ts, gap.to.ts)));
        }
        let window = r
            .window
            .as_ref()
            .map_or("window unknown".to_string(), |w| format!("window {}", describe_window(w.from.ts, w.to.ts)));
        let encryption = match r.encrypted {
            0 => "none".to_string(),
            n if n == r.objects => "age".to_string(),
            n => format!("age on {n} of {}", r.objects),
        };
        let state = if r.complete { "complete".to_string() } else { format!("INCOMPLETE: {}", r.problems.join("; ")) };
        lines.push(format!(
            "{}  full {}  {window}  objects {}  bytes {}  codec {}  encryption {encryption}  class {}  {state}",
            r.cycle,
            r.created.as_deref().unwrap_or("unknown"),
            r.objects,
            r.bytes,
            r.codecs.join("+"),
            r.storage_classes.join("+"),
        ));
    }
    lines
}
