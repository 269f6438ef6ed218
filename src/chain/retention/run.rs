//! Running a prune: the listing it plans from, then the deletions in order.
//!
//! A whole listing of the prefix costs as much as the chain is long (cron
//! every minute and weekly cycles make 10,080 slices a cycle), and only
//! unmarked leftovers need one: which cycles go is decided from each cycle's
//! first two keys (its full backup and that one's marker), and a cycle that
//! goes is then listed whole. With `--scan-record` (as `mb-backup` runs it
//! after every run) the whole listing runs at most once per `--min-age`: a
//! leftover only becomes deletable at that age, so it goes at most one
//! `--min-age` later than it would with a whole listing every run. Without
//! it (`mb-prune` by hand) every prune lists the prefix whole.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::{parse, plan, PruneArgs, Rules, Step};
use crate::chain::layout::{classify, Entry};
use crate::format::records::{Kind, Ts};
use crate::store::{ObjectMeta, Store};

/// The scan record: when the chain under `prefix` was last listed whole.
#[derive(Serialize, Deserialize)]
struct ScanRecord {
    prefix: String,
    /// Seconds since the epoch, when that listing began.
    listed_at: i64,
}

/// Whether the record at `path` says `prefix` was listed whole less than
/// `min_age` seconds before `now`. A missing, unreadable or foreign record,
/// or one from the future (a clock set back), says no: a whole listing is
/// never wrong, only slower.
fn listed_recently(path: &Path, prefix: &str, now: i64, min_age: i64) -> bool {
    let Ok(text) = std::fs::read(path) else { return false };
    let Ok(record) = serde_json::from_slice::<ScanRecord>(&text) else { return false };
    record.prefix == prefix && (0..min_age).contains(&now.saturating_sub(record.listed_at))
}

/// The first two keys under each directory of `under` (`PREFIX/`): for a
/// cycle, its full backup and that one's marker when it has them. One request
/// per cycle, however many slices the cycles hold.
fn cycle_heads(store: &dyn Store, under: &str) -> Result<Vec<ObjectMeta>> {
    let mut heads = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_page(under, after.as_deref(), 2)?;
        let Some(first) = page.entries.first().map(|o| o.key.clone()) else { return Ok(heads) };
        // A store that ignored `after` would have this loop run forever.
        ensure!(after.as_deref() < Some(first.as_str()), "the store listed {first:?} again");
        let name = first.strip_prefix(under).with_context(|| format!("the store listed {first:?}"))?;
        after = Some(match name.split_once('/') {
            Some((cycle, _)) => {
                let dir = format!("{under}{cycle}/");
                heads.extend(page.entries.into_iter().filter(|o| o.key.starts_with(&dir)));
                // '0' sorts right after '/': past every key under the directory.
                format!("{under}{cycle}0")
            }
            // A key directly under the prefix: not the chain's.
            None => first.clone(),
        });
    }
}

/// Each cycle's start, from its full backup's marker (one small read per
/// cycle; a marker older than `mb-marker/2` gives none).
fn cycle_starts(store: &dyn Store, prefix: &str, listing: &[ObjectMeta]) -> Result<BTreeMap<String, Ts>> {
    let fulls: Vec<(String, String)> = listing
        .iter()
        .filter_map(|o| match classify(prefix, &o.key)? {
            Entry::Marker(object) if object.kind == Kind::Full => Some((object.cycle, o.key.clone())),
            _ => None,
        })
        .collect();
    let keys: Vec<String> = fulls.iter().map(|(_, key)| key.clone()).collect();
    let records = crate::chain::catalog::fetch_all(store, &keys)?;
    Ok(fulls
        .into_iter()
        .zip(records)
        .filter_map(|((cycle, _), record)| {
            let marker: crate::chain::marker::Marker = serde_json::from_slice(record.as_deref()?).ok()?;
            Some((cycle, marker.consistent_at?))
        })
        .collect())
}

/// The cycle the checkpoint at `path` is in, if it is of this prefix.
fn checkpoint_cycle(path: Option<&Path>, prefix: &str) -> Result<Option<String>> {
    let Some(path) = path.filter(|p| p.exists()) else { return Ok(None) };
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let state: crate::format::records::State = crate::format::records::read_json(file, "the checkpoint")?;
    Ok((state.prefix == prefix).then_some(state.cycle))
}

#[derive(Serialize)]
struct Line<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_id: Option<&'a str>,
    deleted: bool,
    reason: &'a str,
}

/// Runs the prune under `prefix` (as given to `--prefix`, with or without its
/// trailing `/`): plans, then deletes step by step, printing one line per step.
pub(crate) fn run(store: &dyn Store, prefix: &str, args: &PruneArgs) -> Result<()> {
    let prefix = prefix.trim_end_matches('/');
    let under = format!("{prefix}/");
    let now = crate::format::time::now_secs();
    let min_age = i64::try_from(args.min_age).unwrap_or(i64::MAX);
    let whole = !args.scan_record.as_deref().is_some_and(|path| listed_recently(path, prefix, now, min_age));
    let listing_of = |what: &str| format!("listing {what} in {}", store.location());
    let mut listing = if whole {
        store.list(&under).with_context(|| listing_of(&under))?
    } else {
        cycle_heads(store, &under).with_context(|| listing_of(&format!("the cycles under {under}")))?
    };
    let rules = Rules {
        keep_cycles: args.keep_cycles.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        checkpoint_cycle: checkpoint_cycle(args.state.as_deref(), prefix)?,
        starts: if args.keep_cycles.is_some() { cycle_starts(store, prefix, &listing)? } else { BTreeMap::new() },
        now,
        min_age,
        leftovers: whole,
    };
    if !whole {
        // A cycle that goes goes whole: list it all.
        let doomed: BTreeSet<String> = plan(prefix, &listing, &[], &rules)
            .iter()
            .filter_map(|step| match step {
                Step::Delete { key, .. } => parse(prefix, key).map(|parsed| parsed.cycle),
                Step::Abort { .. } => None,
            })
            .collect();
        listing.retain(|o| parse(prefix, &o.key).is_none_or(|parsed| !doomed.contains(&parsed.cycle)));
        for cycle in &doomed {
            let dir = format!("{under}{cycle}/");
            listing.extend(store.list(&dir).with_context(|| listing_of(&dir))?);
        }
    }
    let uploads = store.pending_uploads(&under).with_context(|| format!("listing uploads under {under}"))?;
    for step in plan(prefix, &listing, &uploads, &rules) {
        let (key, upload_id, reason) = match &step {
            Step::Delete { key, reason } => (key, None, reason),
            Step::Abort { key, upload_id, reason } => (key, Some(upload_id.as_str()), reason),
        };
        // The plan only takes listed keys under the prefix; checked again
        // here because deleting is the one thing that cannot be undone.
        ensure!(key.starts_with(&under), "refusing to delete {key:?}: not under {under:?}");
        if !args.dry_run {
            match upload_id {
                None => store.delete(key).with_context(|| format!("deleting {key:?} from {}", store.location()))?,
                Some(id) => store.abort_upload(key, id).with_context(|| format!("aborting the upload of {key:?}"))?,
            }
            crate::info!("deleted {key}: {reason}");
        }
        println!("{}", serde_json::to_string(&Line { key, upload_id, deleted: !args.dry_run, reason })?);
    }
    match &args.scan_record {
        // Only once every step is done: a prune cut short lists whole again next time.
        Some(path) if whole && !args.dry_run => {
            crate::cli::io::write_json_atomic(path, &ScanRecord { prefix: prefix.to_string(), listed_at: now })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::layout::ObjectKey;
    use crate::store::local::LocalStore;
    use crate::store::PutOptions;

    const C1: &str = "20261101T030000.000001Z";
    const C2: &str = "20261108T030000.000001Z";

    /// A store holding cycle C1 (a full backup and 30 slices, all marked),
    /// C2 (a full backup and 2 marked slices, then a killed run's unmarked
    /// slice two days old), and keys that are not the chain's.
    fn store(dir: &Path) -> (LocalStore, String) {
        let store = LocalStore::new(dir, "b").unwrap();
        let put = |key: &str| {
            let options = PutOptions { overwrite: true, ..Default::default() };
            store.put(key, &mut &b"{}"[..], &options).unwrap();
        };
        for (cycle, slices) in [(C1, 30), (C2, 2)] {
            let mut keys = vec![format!("{}.zst", ObjectKey::full("shop", cycle))];
            keys.extend((1..=slices).map(|s| {
                format!("{}.zst", ObjectKey::slice("shop", cycle, s, Ts::new(s as u32, 1), Ts::new(s as u32 + 1, 1)))
            }));
            for key in keys {
                put(&key);
                put(&format!("{key}.done"));
            }
            put(&crate::chain::layout::head_key("shop", cycle));
        }
        let leftover = format!("{}.zst", ObjectKey::slice("shop", C2, 3, Ts::new(3, 1), Ts::new(4, 1)));
        put(&leftover);
        let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
        let file = std::fs::File::options().append(true).open(dir.join("b").join(&leftover)).unwrap();
        file.set_modified(two_days_ago).unwrap();
        put("shop/notes.txt");
        put("shop/archive/000000-full.tar.zst");
        (store, leftover)
    }

    fn keys(store: &LocalStore) -> Vec<String> {
        store.list("shop/").unwrap().into_iter().map(|o| o.key).collect()
    }

    #[test]
    fn cycle_heads_lists_each_cycles_first_two_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(dir.path());
        let heads: Vec<String> = cycle_heads(&store, "shop/").unwrap().into_iter().map(|o| o.key).collect();
        let full = |c: &str| format!("shop/{c}/000000-full.tar.zst");
        let expected =
            [full(C1), full(C1) + ".done", full(C2), full(C2) + ".done", "shop/archive/000000-full.tar.zst".into()];
        assert_eq!(heads, expected);
    }

    #[test]
    fn a_recent_scan_record_deletes_old_cycles_whole_and_leaves_leftovers_to_the_whole_listing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, leftover) = store(dir.path());
        let record = dir.path().join("prune-scan.json");
        let now = crate::format::time::now_secs();
        crate::cli::io::write_json_atomic(&record, &ScanRecord { prefix: "shop".into(), listed_at: now - 60 }).unwrap();
        let args = PruneArgs {
            prune: true,
            keep_cycles: Some(1),
            min_age: 86_400,
            scan_record: Some(record.clone()),
            ..Default::default()
        };
        run(&store, "shop/", &args).unwrap();
        let left = keys(&store);
        assert!(left.iter().all(|k| !k.contains(C1)), "C1 went whole: {left:?}");
        assert_eq!(left.len(), 7 + 3, "C2's 7 keys, its leftover and the 2 foreign keys: {left:?}");
        assert!(left.contains(&leftover), "found only by a whole listing, due once a day");
        let untouched: ScanRecord = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        assert_eq!(untouched.listed_at, now - 60);

        // The record is a day old: this prune lists whole, finds the leftover and notes the time.
        crate::cli::io::write_json_atomic(&record, &ScanRecord { prefix: "shop".into(), listed_at: now - 86_400 })
            .unwrap();
        run(&store, "shop/", &args).unwrap();
        let left = keys(&store);
        assert_eq!(left.len(), 7 + 2, "{left:?}");
        assert!(!left.contains(&leftover));
        let renewed: ScanRecord = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        assert!(renewed.listed_at >= now);
    }

    #[test]
    fn a_scan_record_is_recent_only_for_its_prefix_and_within_min_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prune-scan.json");
        assert!(!listed_recently(&path, "shop", 1_000, 100), "no record");
        std::fs::write(&path, "{not json").unwrap();
        assert!(!listed_recently(&path, "shop", 1_000, 100), "a corrupt record");
        let record = ScanRecord { prefix: "shop".into(), listed_at: 1_000 };
        crate::cli::io::write_json_atomic(&path, &record).unwrap();
        assert!(listed_recently(&path, "shop", 1_050, 100));
        assert!(!listed_recently(&path, "shop", 1_100, 100), "min_age has passed");
        assert!(!listed_recently(&path, "shop", 999, 100), "a clock set back");
        assert!(!listed_recently(&path, "shop2", 1_050, 100), "another chain");
    }
}
