//! Retention: what `mb-oss-rm --prune` deletes under one chain's prefix,
//! decided from a listing and the full backups' markers (a pure `plan`,
//! unit-tested here), then done in that order (`run`).
//!
//! - With `--keep-cycles N`: every cycle older than the newest N complete
//!   cycles (a cycle is complete once its full backup has a commit marker),
//!   except the cycle the checkpoint is in. Cycles are ordered by their own
//!   oplog times (the full backup's consistency point), not by their names,
//!   which come from the clock of the host that started them. A cycle's head
//!   record and markers go first, then its objects: a prune cut short leaves
//!   unmarked objects (never restored, removed by the next prune), never a
//!   marker without its object.
//! - Objects without a commit marker last modified more than `--min-age`
//!   seconds ago (a killed run's leftovers; a run in progress stores its
//!   marker seconds after its object).
//! - Multipart uploads initiated more than `--min-age` seconds ago.
//!
//! Only the chain's keys (`super::layout`: objects, their `.done` markers,
//! head records) are candidates; anything else under the prefix is left
//! alone. The stream's suffix (`.tar.gz`, `.tar.zst`) does not matter.
//! What the plan is made from (the whole prefix, or each cycle's first keys
//! with `--scan-record`) is `run.rs`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::Args as ClapArgs;

use super::layout::{classify, Entry};
use crate::format::records::{Kind, Ts, MARKER_SUFFIX};
use crate::store::{ObjectMeta, PendingUpload};

mod run;

pub(crate) use run::run;

/// The flags of `mb-oss-rm --prune` (flattened into its Args).
#[derive(ClapArgs, Debug, Default)]
pub struct PruneArgs {
    /// Delete what retention says instead of --key: old cycles, old unmarked objects, old uploads
    #[arg(long, conflicts_with_all = ["key", "if_unmarked"])]
    pub prune: bool,
    /// With --prune: keep the newest N complete cycles (and anything newer); unset: no cycle is deleted
    #[arg(long, value_name = "N", requires = "prune", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_cycles: Option<u64>,
    /// With --prune: the checkpoint (state.json); its cycle is never deleted
    #[arg(long, value_name = "FILE", requires = "prune")]
    pub state: Option<PathBuf>,
    /// With --prune: unmarked objects and uploads younger than this many seconds stay
    #[arg(long, value_name = "SECS", default_value_t = 86_400, requires = "prune")]
    pub min_age: u64,
    /// With --prune: print what would be deleted, delete nothing
    #[arg(long, requires = "prune")]
    pub dry_run: bool,
    /// With --prune: a file noting when the prefix was last listed whole; with it, the whole listing
    /// (which finds unmarked leftovers) runs at most once per --min-age, other prunes list each cycle's first keys
    #[arg(long, value_name = "FILE", requires = "prune")]
    pub scan_record: Option<PathBuf>,
}

/// What decides the plan besides the listing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rules {
    /// Keep the newest N complete cycles; `None`: delete no cycle.
    pub(crate) keep_cycles: Option<usize>,
    /// The cycle the checkpoint is in (never deleted).
    pub(crate) checkpoint_cycle: Option<String>,
    /// Each complete cycle's start (its full backup's consistency point),
    /// where its marker gives one: what orders cycles.
    pub(crate) starts: BTreeMap<String, Ts>,
    /// Now, seconds since the epoch.
    pub(crate) now: i64,
    /// Leftovers younger than this (seconds) stay.
    pub(crate) min_age: i64,
    /// Whether unmarked leftovers are looked for: only a whole listing shows them.
    pub(crate) leftovers: bool,
}

/// One thing to delete, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Delete an object.
    Delete { key: String, reason: String },
    /// Abort a multipart upload.
    Abort { key: String, upload_id: String, reason: String },
}

/// A chain key's place: its cycle, which pass of a cycle's deletion takes
/// it (0 the head record, 1 markers, 2 objects), and whether it is (the
/// marker of) a full backup.
struct Parsed {
    cycle: String,
    pass: u8,
    full: bool,
}

fn parse(prefix: &str, key: &str) -> Option<Parsed> {
    Some(match classify(prefix, key)? {
        Entry::Head { cycle } => Parsed { cycle, pass: 0, full: false },
        Entry::Marker(object) => Parsed { full: object.kind == Kind::Full, cycle: object.cycle, pass: 1 },
        Entry::Object(object) => Parsed { full: object.kind == Kind::Full, cycle: object.cycle, pass: 2 },
    })
}

/// Whether a listing's `last_modified` (or an upload's `initiated`) is older than the rules' minimum age.
/// An unknown or unreadable time counts as young: nothing is deleted on a guess.
fn old_enough(time: Option<&str>, rules: &Rules) -> bool {
    time.and_then(|t| crate::format::time::parse_rfc3339(t).ok()).is_some_and(|t| rules.now - t > rules.min_age)
}

/// What to delete under `prefix` (no trailing `/`), in order.
pub(crate) fn plan(prefix: &str, listing: &[ObjectMeta], uploads: &[PendingUpload], rules: &Rules) -> Vec<Step> {
    let present: BTreeSet<&str> = listing.iter().map(|o| o.key.as_str()).collect();
    let mut cycles: BTreeMap<String, Vec<(&ObjectMeta, u8)>> = BTreeMap::new();
    let mut complete = BTreeSet::new();
    for object in listing {
        let Some(parsed) = parse(prefix, &object.key) else { continue };
        let data = object.key.strip_suffix(MARKER_SUFFIX).unwrap_or(&object.key);
        if parsed.pass == 1 && parsed.full && present.contains(data) {
            complete.insert(parsed.cycle.clone());
        }
        cycles.entry(parsed.cycle).or_default().push((object, parsed.pass));
    }
    // Cycles in time order: by their start where a marker gives it, else by
    // when the store first got one of their objects; the name breaks ties.
    // Computed once per cycle: a cycle of 10,000 slices has as many times to read.
    let order: BTreeMap<&String, (i64, &String)> = cycles
        .iter()
        .map(|(cycle, objects)| {
            let secs = rules.starts.get(cycle).map(|ts| i64::from(ts.t)).unwrap_or_else(|| {
                objects
                    .iter()
                    .filter_map(|(o, _)| {
                        o.last_modified.as_deref().and_then(|t| crate::format::time::parse_rfc3339(t).ok())
                    })
                    .min()
                    .unwrap_or(0)
            });
            (cycle, (secs, cycle))
        })
        .collect();
    let mut by_time: Vec<&String> = complete.iter().collect();
    by_time.sort_by_key(|c| order[c]);
    // Cycles older than the oldest of the newest N complete ones go.
    let cutoff = rules.keep_cycles.and_then(|n| by_time.iter().rev().nth(n.max(1) - 1)).map(|c| order[c]);
    let doomed: Vec<&String> = match cutoff {
        Some(cutoff) => cycles
            .keys()
            .filter(|c| order[c] < cutoff && Some(c.as_str()) != rules.checkpoint_cycle.as_deref())
            .collect(),
        None => Vec::new(),
    };
    let kept = rules.keep_cycles.map_or(0, |n| n.max(1));
    let why = format!("cycle older than the newest {kept} complete cycle(s)");
    let mut steps = Vec::new();
    for pass in 0..3 {
        for cycle in &doomed {
            for (object, object_pass) in &cycles[*cycle] {
                if *object_pass == pass {
                    steps.push(Step::Delete { key: object.key.clone(), reason: why.clone() });
                }
            }
        }
    }
    for (cycle, objects) in cycles.iter().filter(|_| rules.leftovers) {
        if doomed.contains(&cycle) {
            continue;
        }
        for (object, pass) in objects {
            let unmarked = *pass == 2 && !present.contains(format!("{}{MARKER_SUFFIX}", object.key).as_str());
            if unmarked && old_enough(object.last_modified.as_deref(), rules) {
                let reason = format!("no commit marker, older than {} s", rules.min_age);
                steps.push(Step::Delete { key: object.key.clone(), reason });
            }
        }
    }
    let under = format!("{prefix}/");
    for upload in uploads {
        if upload.key.starts_with(&under) && old_enough(upload.initiated.as_deref(), rules) {
            steps.push(Step::Abort {
                key: upload.key.clone(),
                upload_id: upload.upload_id.clone(),
                reason: format!("multipart upload initiated more than {} s ago", rules.min_age),
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    fn object(key: &str, age: i64) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            last_modified: Some(crate::format::time::format_rfc3339(NOW - age)),
            ..Default::default()
        }
    }

    /// A committed cycle: a full backup and `slices` oplog slices, each with its marker, all old.
    fn cycle(name: &str, slices: usize, ext: &str) -> Vec<ObjectMeta> {
        let mut keys = vec![format!("shop/{name}/000000-full.tar.{ext}")];
        keys.extend(
            (1..=slices)
                .map(|s| format!("shop/{name}/{s:06}-oplog-0000000001_0000000001-0000000002_0000000001.tar.{ext}")),
        );
        keys.iter().flat_map(|k| [object(k, 10 * DAY), object(&format!("{k}.done"), 10 * DAY)]).collect()
    }

    fn rules(keep: Option<usize>, checkpoint: Option<&str>) -> Rules {
        Rules {
            keep_cycles: keep,
            checkpoint_cycle: checkpoint.map(str::to_string),
            starts: BTreeMap::new(),
            now: NOW,
            min_age: DAY,
            leftovers: true,
        }
    }

    fn deleted(steps: &[Step]) -> Vec<&str> {
        steps
            .iter()
            .map(|s| match s {
                Step::Delete { key, .. } | Step::Abort { key, .. } => key.as_str(),
            })
            .collect()
    }

    const C1: &str = "20261101T030000.000001Z";
    const C2: &str = "20261108T030000.000001Z";
    const C3: &str = "20261115T030000.000001Z";

    #[test]
    fn old_cycles_go_markers_first_and_the_newest_stay() {
        let listing: Vec<_> = [cycle(C1, 2, "gz"), cycle(C2, 1, "zst"), cycle(C3, 1, "gz")].concat();
        let steps = plan("shop", &listing, &[], &rules(Some(2), None));
        let keys = deleted(&steps);
        assert_eq!(keys.len(), 6, "{keys:?}");
        assert!(keys.iter().all(|k| k.contains(C1)));
        assert!(keys[..3].iter().all(|k| k.ends_with(".done")) && keys[3..].iter().all(|k| !k.ends_with(".done")));
        // keep 1: C1 and C2 go, the newest complete cycle stays.
        let keys = plan("shop", &listing, &[], &rules(Some(1), None));
        assert!(deleted(&keys).iter().all(|k| !k.contains(C3)) && deleted(&keys).iter().any(|k| k.contains(C2)));
        // No keep_cycles: no cycle goes.
        assert!(plan("shop", &listing, &[], &rules(None, None)).is_empty());
    }

    #[test]
    fn the_checkpoint_cycle_and_incomplete_newer_cycles_stay() {
        let mut listing: Vec<_> = [cycle(C1, 1, "gz"), cycle(C2, 1, "gz")].concat();
        // C3's full backup is stored but not yet marked (a run in progress): C3 is not complete.
        listing.push(object(&format!("shop/{C3}/000000-full.tar.gz"), 60));
        let steps = plan("shop", &listing, &[], &rules(Some(1), Some(C1)));
        assert!(steps.is_empty(), "{steps:?}");
        let steps = plan("shop", &listing, &[], &rules(Some(1), None));
        assert_eq!(deleted(&steps).len(), 4);
        assert!(deleted(&steps).iter().all(|k| k.contains(C1)));
    }

    #[test]
    fn a_marker_without_its_full_backup_does_not_make_a_cycle_complete() {
        let mut listing = cycle(C1, 0, "gz");
        listing.push(object(&format!("shop/{C2}/000000-full.tar.gz.done"), DAY * 2));
        let steps = plan("shop", &listing, &[], &rules(Some(1), None));
        assert!(steps.is_empty(), "{steps:?}");
    }

    #[test]
    fn old_unmarked_objects_and_uploads_go_young_ones_stay() {
        let mut listing = cycle(C2, 0, "gz");
        listing.push(object(&format!("shop/{C2}/000001-oplog-1_1-2_2.tar.gz"), 2 * DAY));
        listing.push(object(&format!("shop/{C3}/000000-full.tar.gz"), 3600));
        listing.push(ObjectMeta { key: format!("shop/{C3}/000001-oplog-x.tar.gz"), ..Default::default() });
        listing.push(object("shop/notes.txt", 10 * DAY));
        listing.push(object(&format!("shop/{C1}/sub/000000-full.tar.gz"), 10 * DAY));
        let uploads = [
            PendingUpload {
                key: format!("shop/{C1}/000000-full.tar.gz"),
                upload_id: "A".into(),
                initiated: Some(crate::format::time::format_rfc3339(NOW - 2 * DAY)),
            },
            PendingUpload {
                key: format!("shop/{C3}/000000-full.tar.gz"),
                upload_id: "B".into(),
                initiated: Some(crate::format::time::format_rfc3339(NOW - 60)),
            },
            PendingUpload {
                key: "shopx/old".into(),
                upload_id: "C".into(),
                initiated: Some(crate::format::time::format_rfc3339(NOW - 9 * DAY)),
            },
        ];
        let steps = plan("shop", &listing, &uploads, &rules(Some(1), None));
        assert_eq!(
            steps,
            vec![
                Step::Delete {
                    key: format!("shop/{C2}/000001-oplog-1_1-2_2.tar.gz"),
                    reason: "no commit marker, older than 86400 s".into()
                },
                Step::Abort {
                    key: format!("shop/{C1}/000000-full.tar.gz"),
                    upload_id: "A".into(),
                    reason: "multipart upload initiated more than 86400 s ago".into()
                },
            ]
        );
    }

    #[test]
    fn cycles_are_kept_by_their_oplog_times_not_their_names() {
        // C1 is the newest cycle, named by a clock a day behind.
        let listing: Vec<_> = [cycle(C1, 1, "zst"), cycle(C2, 1, "zst")].concat();
        let mut rules = rules(Some(1), None);
        rules.starts = [(C1.to_string(), Ts::new(2_000, 1)), (C2.to_string(), Ts::new(1_000, 1))].into();
        let steps = plan("shop", &listing, &[], &rules);
        let keys = deleted(&steps);
        assert!(!keys.is_empty() && keys.iter().all(|k| k.contains(C2)), "{keys:?}");
    }

    #[test]
    fn full_backups_only_keep_the_last_n_runs() {
        // is_inc_backup = 0: every run is a cycle with only its full backup.
        let names =
            ["20261101T030000.000001Z", "20261102T030000.000001Z", "20261103T030000.000001Z", "20261104T030000Z"];
        let listing: Vec<_> = names.iter().flat_map(|n| cycle(n, 0, "gz")).collect();
        let keys = deleted(&plan("shop", &listing, &[], &rules(Some(2), None))).join(" ");
        assert!(
            keys.contains(names[0]) && keys.contains(names[1]) && !keys.contains(names[2]) && !keys.contains(names[3])
        );
    }
}
