//! The catalog: what a prefix of the store can restore, built from one
//! listing and the small records beside the objects (commit markers and
//! head records), never from the objects themselves, so it costs the same
//! for a 10 GB and a 10 TB cycle.
//!
//! For each cycle: its committed chain (the full backup, then slices SEQ 1,
//! 2, ... each starting where the one before ended), its restorable window
//! (the full backup's consistency point to the end of the last slice that
//! follows without a hole), and everything that makes it incomplete: a hole,
//! a marker whose object is gone, an object whose size is not its marker's,
//! a head record naming objects the chain no longer has.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};

use super::layout::{classify, head_key, Entry, ObjectKey};
use super::marker::{Head, Marker};
use crate::format::records::{Kind, Ts};
use crate::store::{ObjectMeta, Store};

/// Markers and head records are a few hundred bytes; anything larger is not one.
const MAX_RECORD: u64 = 1 << 20;
/// Small records fetched at once.
const FETCHERS: usize = 16;

/// One committed object of a chain.
#[derive(Debug)]
pub struct Committed {
    /// What its key says.
    pub key: ObjectKey,
    /// Its size as the store lists it.
    pub stored_size: u64,
    /// Its marker.
    pub marker: Marker,
}

impl Committed {
    /// Where the chain ends after this object: a slice's end, a full backup's consistency point.
    pub fn end(&self) -> Option<Ts> {
        match self.key.span {
            Some((_, to)) => Some(to),
            None => self.marker.consistent_at,
        }
    }
}

/// An inclusive span of oplog points the chain can restore to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The full backup's consistency point.
    pub from: Ts,
    /// The end of the last slice reached without a hole.
    pub to: Ts,
}

impl Window {
    /// Whether `point` lies in the window.
    pub fn holds(&self, point: Ts) -> bool {
        self.from <= point && point <= self.to
    }
}

/// One cycle as the catalog sees it.
#[derive(Debug)]
pub struct Cycle {
    /// Its name (from the clock of the host that started it: never used to order).
    pub name: String,
    /// The objects that restore, in order: the full backup, then slices up
    /// to the first hole or damaged object.
    pub chain: Vec<Committed>,
    /// Committed objects past a hole: stored, not restorable.
    pub stranded: usize,
    /// Its restorable window; `None` when unknown (a standalone's backup, or
    /// a full backup whose marker is older than `mb-marker/2` with no slice).
    pub window: Option<Window>,
    /// What keeps it from being complete, one sentence each.
    pub problems: Vec<String>,
    /// When the store last modified its full backup (orders cycles without a window).
    pub stored: Option<String>,
}

impl Cycle {
    /// Complete: a committed full backup, no hole, no missing or damaged object.
    pub fn complete(&self) -> bool {
        self.problems.is_empty() && self.chain.first().is_some_and(|c| c.key.kind == Kind::Full)
    }

    /// Bytes of the chain's objects.
    pub fn bytes(&self) -> u64 {
        self.chain.iter().map(|c| c.stored_size).sum()
    }

    /// What orders cycles: the window's start (the chain's own oplog time),
    /// else the time its full backup was stored.
    fn order(&self) -> (i64, &str) {
        let secs = match (&self.window, &self.stored) {
            (Some(window), _) => i64::from(window.from.t),
            (None, Some(stored)) => crate::format::time::parse_rfc3339(stored).unwrap_or(0),
            (None, None) => 0,
        };
        (secs, &self.name)
    }
}

/// Every cycle under a prefix, oldest first by their oplog times.
#[derive(Debug)]
pub struct Catalog {
    /// The chain's prefix.
    pub prefix: String,
    /// The cycles, oldest first.
    pub cycles: Vec<Cycle>,
    /// Objects under the prefix that the chain does not own, and unmarked ones.
    pub uncommitted: usize,
}

impl Catalog {
    /// Reads the catalog of `prefix` (no trailing `/`) from `store`.
    pub fn read(store: &dyn Store, prefix: &str) -> Result<Catalog> {
        let prefix = prefix.trim_end_matches('/');
        let under = format!("{prefix}/");
        let listing = store.list(&under).with_context(|| format!("listing {under} in {}", store.location()))?;
        Catalog::from_listing(store, prefix, &listing)
    }

    /// The catalog from a listing already made; reads the markers and head records.
    pub fn from_listing(store: &dyn Store, prefix: &str, listing: &[ObjectMeta]) -> Result<Catalog> {
        let mut objects: BTreeMap<String, &ObjectMeta> = BTreeMap::new();
        let mut markers: Vec<ObjectKey> = Vec::new();
        let mut heads: Vec<String> = Vec::new();
        let mut uncommitted = 0;
        for meta in listing {
            match classify(prefix, &meta.key) {
                Some(Entry::Object(_)) => {
                    objects.insert(meta.key.clone(), meta);
                }
                Some(Entry::Marker(key)) => markers.push(key),
                Some(Entry::Head { cycle }) => heads.push(cycle),
                None => uncommitted += 1,
            }
        }
        let marker_keys: Vec<String> = markers.iter().map(ObjectKey::marker).collect();
        let head_keys: Vec<String> = heads.iter().map(|c| head_key(prefix, c)).collect();
        let records = fetch_all(store, &[marker_keys, head_keys].concat())?;
        let (marker_texts, head_texts) = records.split_at(markers.len());

        let mut cycles: BTreeMap<String, Cycle> = BTreeMap::new();
        let mut committed: BTreeMap<String, Vec<Committed>> = BTreeMap::new();
        for (key, text) in markers.into_iter().zip(marker_texts) {
            let entry = cycle_entry(&mut cycles, &key.cycle);
            let object_key = key.key();
            let Some(meta) = objects.get(&object_key) else {
                entry.problems.push(format!("{object_key}: its marker is there, the object is gone"));
                continue;
            };
            let Some(Ok(marker)) = text.as_deref().map(serde_json::from_slice::<Marker>) else {
                entry.problems.push(format!("{object_key}: its marker cannot be read"));
                continue;
            };
            if key.kind == Kind::Full {
                entry.stored = meta.last_modified.clone();
            }
            committed.entry(key.cycle.clone()).or_default().push(Committed { key, stored_size: meta.size, marker });
        }
        uncommitted += objects.len() - committed.values().map(Vec::len).sum::<usize>();
        for (name, mut objects) in committed {
            objects.sort_by_cached_key(|object| object.key.key());
            link(cycle_entry(&mut cycles, &name), objects);
        }
        for (name, text) in heads.iter().zip(head_texts) {
            check_head(cycle_entry(&mut cycles, name), text.as_deref());
        }
        let mut cycles: Vec<Cycle> = cycles.into_values().collect();
        cycles.sort_by(|a, b| a.order().cmp(&b.order()));
        Ok(Catalog { prefix: prefix.to_string(), cycles, uncommitted })
    }

    /// The cycle named `name`.
    pub fn cycle(&self, name: &str) -> Option<&Cycle> {
        self.cycles.iter().find(|c| c.name == name)
    }
}

/// The cycle named `name`, made empty if it is not there yet.
fn cycle_entry<'a>(cycles: &'a mut BTreeMap<String, Cycle>, name: &str) -> &'a mut Cycle {
    cycles.entry(name.to_string()).or_insert_with(|| Cycle {
        name: name.to_string(),
        chain: Vec::new(),
        stranded: 0,
        window: None,
        problems: Vec::new(),
        stored: None,
    })
}

/// Builds a cycle's chain from its committed objects (in key order): of the
/// objects with one SEQ, the last (reaching furthest: a run whose checkpoint
/// move was killed stores its slice again) is the chain's. The chain stops
/// at the first hole or damaged object; what follows is stranded.
fn link(cycle: &mut Cycle, objects: Vec<Committed>) {
    let by_seq: BTreeMap<u64, Committed> = objects.into_iter().map(|object| (object.key.seq, object)).collect();
    let (mut from, mut end): (Option<Ts>, Option<Ts>) = (None, None);
    for (expected, (seq, object)) in (0u64..).zip(by_seq) {
        if cycle.stranded > 0 {
            cycle.stranded += 1;
            continue;
        }
        if let Some(problem) = link_problem(expected, &object, end) {
            cycle.problems.push(problem);
            cycle.stranded += 1;
            continue;
        }
        match object.key.span {
            // A full backup's marker older than mb-marker/2 has no consistency
            // point: its first slice starts there.
            Some((start, to)) => {
                from = from.or(Some(start));
                end = Some(to);
            }
            None => {
                from = object.marker.consistent_at;
                end = from;
            }
        }
        debug_assert_eq!(seq, expected);
        cycle.chain.push(object);
    }
    cycle.window = from.zip(end).map(|(from, to)| Window { from, to });
}

/// Why `object` cannot follow a chain that has `expected` objects ending at `end`.
fn link_problem(expected: u64, object: &Committed, end: Option<Ts>) -> Option<String> {
    let name = object.key.key();
    if object.key.seq != expected {
        return Some(match expected {
            0 => format!("no committed full backup (the first object is {name})"),
            _ => format!("hole: no committed object with SEQ {expected:06}; the chain jumps to {name}"),
        });
    }
    if object.stored_size != object.marker.put.size {
        return Some(format!(
            "{name}: the store holds {} bytes, its marker says {}: the object was replaced or damaged",
            object.stored_size, object.marker.put.size
        ));
    }
    match (object.key.span, end) {
        (Some((from, _)), Some(previous)) if from != previous => {
            Some(format!("hole: {name} starts after {from}, the chain before it ends at {previous}"))
        }
        (Some(_), None) if expected > 1 => Some(format!("{name} follows a backup with no oplog position")),
        _ => None,
    }
}

/// The head record names the newest object committed; the chain must still reach it.
fn check_head(cycle: &mut Cycle, text: Option<&[u8]>) {
    let Some(head) = text.and_then(|t| serde_json::from_slice::<Head>(t).ok()) else {
        cycle.problems.push("its head record cannot be read".into());
        return;
    };
    // Objects stranded past a hole are there: the hole is the problem, already said.
    let reached = cycle.chain.last().map(|c| c.key.seq + cycle.stranded as u64);
    if reached.is_none_or(|seq| seq < head.seq) {
        cycle.problems.push(format!(
            "its head record says the chain reached SEQ {:06} ({}){}, but the newest restorable object is {}: \
             newer objects were deleted",
            head.seq,
            head.key,
            head.to.map(|t| format!(" up to {t}")).unwrap_or_default(),
            reached.map_or("none".to_string(), |s| format!("SEQ {s:06}"))
        ));
    }
}

/// One fetch's outcome: the body, `None` for a missing or oversized object.
type Fetched = Result<Option<Vec<u8>>>;

/// The bodies of small objects, fetched on a few threads; `None` for one
/// that is missing or too large to be a record.
pub(crate) fn fetch_all(store: &dyn Store, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Fetched>>> = keys.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..FETCHERS.min(keys.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(key) = keys.get(index) else { break };
                let result = fetch(store, key);
                let failed = result.is_err();
                *results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                if failed {
                    next.store(keys.len(), std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(keys.len());
    for (key, slot) in keys.iter().zip(results) {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(result) => out.push(result.with_context(|| format!("reading {key:?}"))?),
            None => anyhow::bail!("reading {key:?}: not attempted after an earlier failure"),
        }
    }
    Ok(out)
}

fn fetch(store: &dyn Store, key: &str) -> Fetched {
    let object = match store.get(key, None) {
        Ok(object) => object,
        Err(err) if crate::store::is_not_found(&err) => return Ok(None),
        Err(err) => return Err(err),
    };
    if object.meta.size > MAX_RECORD {
        return Ok(None);
    }
    let mut body = Vec::new();
    object.reader.take(MAX_RECORD).read_to_end(&mut body)?;
    Ok(Some(body))
}
