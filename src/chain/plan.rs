//! The restore plan: which cycle and which of its objects restore the point
//! asked for, and every check that can refuse a restore before anything is
//! read from the objects or written to a target.
//!
//! Without `--until`: the newest cycle (by its oplog times), whole; it must be
//! complete. With `--until T`: the newest cycle whose window holds T, up to
//! the first slice that reaches T. A T that no window holds is refused with
//! the windows listed (exit 2). Then, for the objects chosen: each codec is
//! one this `mb` reads, each encrypted object opens with the identity given
//! (its age header is read with a ranged GET), and archived objects are made
//! readable (OSS RestoreObject) before the first byte of data is used.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::catalog::{Catalog, Committed, Cycle};
use crate::cli::{usage, Failure, EXIT_INTEGRITY};
use crate::format::records::Ts;
use crate::store::{ByteRange, Store};

/// An age header is a few hundred bytes per recipient: this covers any backup's.
const AGE_HEADER_MAX: u64 = 64 * 1024;

/// What the restore asks for.
#[derive(Debug, Default)]
pub struct Asked {
    /// `--cycle NAME`.
    pub cycle: Option<String>,
    /// `--until T`, exact (a time was turned into the end of its second).
    pub until: Option<Ts>,
    /// Identity files that decrypt encrypted objects.
    pub identities: Vec<PathBuf>,
}

/// The objects to restore, in order, and the point they restore to.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The cycle chosen.
    pub cycle: &'a Cycle,
    /// Its objects that are needed, in chain order.
    pub objects: &'a [Committed],
    /// The point asked for, if any.
    pub until: Option<Ts>,
}

/// Chooses the cycle and objects for `asked` (no store access: the catalog
/// holds everything this needs).
pub fn choose<'a>(catalog: &'a Catalog, asked: &Asked) -> Result<Plan<'a>> {
    if catalog.cycles.is_empty() {
        anyhow::bail!("no backups under {}/ in the store", catalog.prefix);
    }
    let cycle = match (&asked.cycle, asked.until) {
        (Some(name), _) => catalog.cycle(name).ok_or_else(|| {
            let names: Vec<&str> = catalog.cycles.iter().map(|c| c.name.as_str()).collect();
            usage(format!("no cycle {name} under {}/ (cycles: {})", catalog.prefix, names.join(", ")))
        })?,
        (None, Some(until)) => catalog
            .cycles
            .iter()
            .rev()
            .find(|c| c.window.is_some_and(|w| w.holds(until)))
            .ok_or_else(|| outside(catalog, until, None))?,
        (None, None) => catalog.cycles.last().expect("not empty"),
    };
    let Some(until) = asked.until else {
        if !cycle.complete() {
            return Err(Failure {
                code: EXIT_INTEGRITY,
                message: format!(
                    "cycle {} is incomplete, so its latest point cannot be restored: {}{}",
                    cycle.name,
                    cycle.problems.join("; "),
                    cycle
                        .window
                        .map(|w| format!(" (give --until within its window {})", describe_window(w.from, w.to)))
                        .unwrap_or_default()
                ),
            }
            .into());
        }
        return Ok(Plan { cycle, objects: &cycle.chain, until: None });
    };
    if !cycle.window.is_some_and(|w| w.holds(until)) {
        return Err(outside(catalog, until, Some(cycle)));
    }
    // The full backup, then each slice while the chain before it ends short of T.
    let needed = 1 + cycle
        .chain
        .iter()
        .skip(1)
        .take_while(|object| object.key.span.is_some_and(|(from, _)| from < until))
        .count();
    Ok(Plan { cycle, objects: &cycle.chain[..needed], until: Some(until) })
}

/// The refusal of a point no window holds (exit 2), listing the windows.
fn outside(catalog: &Catalog, until: Ts, cycle: Option<&Cycle>) -> anyhow::Error {
    let shown: Vec<&Cycle> = match cycle {
        Some(cycle) => vec![cycle],
        None => catalog.cycles.iter().collect(),
    };
    let windows: Vec<String> = shown
        .iter()
        .map(|c| match c.window {
            Some(w) => format!("{}: {}", c.name, describe_window(w.from, w.to)),
            None => format!("{}: no known window", c.name),
        })
        .collect();
    let whose = cycle.map(|c| format!("cycle {}'s window", c.name)).unwrap_or_else(|| "any stored window".into());
    usage(format!(
        "--until {} is outside {whose}: nothing was restored; restorable: {}",
        describe_point(until),
        windows.join("; ")
    ))
}

/// `2026-11-24T03:15:00Z (1795490100,3)`; the end of a second reads as the time alone.
pub fn describe_point(ts: Ts) -> String {
    let time = crate::format::time::format_rfc3339(i64::from(ts.t));
    if ts.i == u32::MAX {
        format!("{time} (the end of that second)")
    } else {
        format!("{time} ({ts})")
    }
}

/// `FROM .. TO`, each as [`describe_point`].
pub fn describe_window(from: Ts, to: Ts) -> String {
    format!("{} .. {}", describe_point(from), describe_point(to))
}

impl Plan<'_> {
    /// The checks that need the store: codecs, identities, archived objects.
    /// `progress` hears about archive restores, which can take hours.
    pub fn check(&self, store: &dyn Store, asked: &Asked, progress: &mut dyn FnMut(&str)) -> Result<()> {
        for object in self.objects {
            let key = object.key.key();
            if !matches!(object.key.ext.as_str(), "zst" | "gz") {
                return Err(usage(format!(
                    "{key}: .tar.{} is not a codec this mb reads; nothing was restored",
                    object.key.ext
                )));
            }
            if object.marker.put.encryption.as_deref() == Some("age") {
                self.check_identity(store, &key, &asked.identities)?;
            }
            if object.marker.put.storage_class.as_deref().is_some_and(|c| c.to_ascii_lowercase().contains("archive")) {
                store.restore(&key, progress).with_context(|| format!("making the archived object {key} readable"))?;
            }
        }
        Ok(())
    }

    fn check_identity(&self, store: &dyn Store, key: &str, identities: &[PathBuf]) -> Result<()> {
        if identities.is_empty() {
            return Err(usage(format!(
                "{key} is encrypted (age): give --identity FILE (or identity_file in the config); nothing was restored"
            )));
        }
        let range = ByteRange { start: 0, end: Some(AGE_HEADER_MAX - 1) };
        let object = store.get(key, Some(range)).with_context(|| format!("reading the age header of {key}"))?;
        let mut head = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(object.reader, AGE_HEADER_MAX), &mut head)
            .with_context(|| format!("reading the age header of {key}"))?;
        crate::pack::age::opens(identities, &head).with_context(|| format!("{key}: nothing was restored"))
    }

    /// The point the restore reaches: `--until`, else the chain's end.
    pub fn reaches(&self) -> Option<Ts> {
        self.until.or_else(|| self.cycle.window.map(|w| w.to))
    }
}
