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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::catalog::Window;
    use crate::chain::layout::{head_key, ObjectKey};
    use crate::chain::marker::{Head, Marker, MARKER_FORMAT};
    use crate::format::records::{Kind, PutRecord};
    use crate::store::memory::MemoryStore;
    use crate::store::PutOptions;

    /// Stores a committed object (and its marker, and the head) of `cycle`.
    fn commit(store: &MemoryStore, cycle: &str, seq: u64, span: (Ts, Ts)) -> String {
        let kind = if seq == 0 { Kind::Full } else { Kind::Oplog };
        let key = match kind {
            Kind::Full => format!("{}.zst", ObjectKey::full("shop", cycle)),
            Kind::Oplog => format!("{}.zst", ObjectKey::slice("shop", cycle, seq, span.0, span.1)),
        };
        let data = format!("object {key}").into_bytes();
        let put = PutRecord {
            format: MARKER_FORMAT.into(),
            bucket: "b".into(),
            key: key.clone(),
            size: data.len() as u64,
            crc64: 0,
            etag: None,
            parts: 1,
            storage_class: None,
            sse: None,
            sse_key_id: None,
            encryption: None,
        };
        let marker = Marker {
            put,
            kind: Some(kind),
            cycle: Some(cycle.into()),
            seq: Some(seq),
            databases: Some(vec!["shop".into()]),
            created: None,
            from: (kind == Kind::Oplog).then_some(span.0),
            to: (kind == Kind::Oplog).then_some(span.1),
            consistent_at: (kind == Kind::Full).then_some(span.1),
        };
        let options = PutOptions { overwrite: true, ..Default::default() };
        store.put(&key, &mut &data[..], &options).unwrap();
        store.put(&format!("{key}.done"), &mut &serde_json::to_vec(&marker).unwrap()[..], &options).unwrap();
        let head = serde_json::to_vec(&Head::after(&marker)).unwrap();
        store.put(&head_key("shop", cycle), &mut &head[..], &options).unwrap();
        key
    }

    fn ts(t: u32) -> Ts {
        Ts::new(t, 1)
    }

    #[test]
    fn cycles_are_ordered_by_their_oplog_times_not_their_names() {
        let store = MemoryStore::new("b");
        // The later cycle was named by a clock a day behind: its name sorts first.
        let (early, late) = ("20261202T030000.000001Z", "20261201T030000.000001Z");
        commit(&store, early, 0, (ts(100), ts(100)));
        commit(&store, early, 1, (ts(100), ts(200)));
        commit(&store, late, 0, (ts(200), ts(200)));
        commit(&store, late, 1, (ts(200), ts(300)));
        let catalog = Catalog::read(&store, "shop").unwrap();
        let names: Vec<&str> = catalog.cycles.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, [early, late]);
        let asked = |until| Asked { until, ..Default::default() };
        assert_eq!(choose(&catalog, &asked(None)).unwrap().cycle.name, late);
        // Where the windows touch, the newer cycle restores the point; before it, the older one.
        assert_eq!(choose(&catalog, &asked(Some(ts(200)))).unwrap().cycle.name, late);
        let plan = choose(&catalog, &asked(Some(Ts::new(150, 0)))).unwrap();
        assert_eq!((plan.cycle.name.as_str(), plan.objects.len()), (early, 2));
        let plan = choose(&catalog, &asked(Some(ts(100)))).unwrap();
        assert_eq!(plan.objects.len(), 1, "the full backup alone reaches its own point");
        for outside in [Ts::new(99, 0), Ts::new(300, 2)] {
            let err = choose(&catalog, &asked(Some(outside))).unwrap_err();
            assert_eq!(crate::cli::exit_code_of(&err), crate::cli::EXIT_USAGE, "{err}");
        }
    }

    #[test]
    fn a_hole_a_replaced_object_and_a_lost_head_make_a_cycle_incomplete() {
        let store = MemoryStore::new("b");
        let cycle = "20261202T030000.000001Z";
        commit(&store, cycle, 0, (ts(100), ts(100)));
        let second = commit(&store, cycle, 1, (ts(100), ts(200)));
        commit(&store, cycle, 2, (ts(200), ts(300)));
        let complete = Catalog::read(&store, "shop").unwrap();
        assert!(
            complete.cycles[0].complete() && complete.cycles[0].window == Some(Window { from: ts(100), to: ts(300) })
        );

        store.put(&second, &mut &b"short"[..], &PutOptions { overwrite: true, ..Default::default() }).unwrap();
        let catalog = Catalog::read(&store, "shop").unwrap();
        let damaged = &catalog.cycles[0];
        assert!(!damaged.complete() && damaged.problems[0].contains("its marker says"), "{:?}", damaged.problems);
        assert_eq!((damaged.chain.len(), damaged.stranded), (1, 2));
        let err = choose(&catalog, &Asked::default()).unwrap_err();
        assert_eq!(crate::cli::exit_code_of(&err), crate::cli::EXIT_INTEGRITY);

        store.delete(&second).unwrap();
        store.delete(&format!("{second}.done")).unwrap();
        let catalog = Catalog::read(&store, "shop").unwrap();
        assert!(catalog.cycles[0].problems.iter().any(|p| p.contains("no committed object with SEQ 000001")));

        let store = MemoryStore::new("b");
        commit(&store, cycle, 0, (ts(100), ts(100)));
        commit(&store, cycle, 1, (ts(100), ts(200)));
        let third = commit(&store, cycle, 2, (ts(200), ts(300)));
        store.delete(&third).unwrap();
        store.delete(&format!("{third}.done")).unwrap();
        let catalog = Catalog::read(&store, "shop").unwrap();
        let short = &catalog.cycles[0];
        assert!(short.problems.iter().any(|p| p.contains("head record says")), "{:?}", short.problems);
        assert_eq!(short.window, Some(Window { from: ts(100), to: ts(200) }));
    }
}
