//! `mb-config chain ...`: what the scripts need from the chain (`src/chain/`),
//! so that no script builds or matches an object key itself.
//!
//! - `marker`: the commit marker of a stored object (from the run's range,
//!   manifest and put records);
//! - `head`: a cycle's head record after a marker, and its key;
//! - `committed`: whether an object has its marker (and the marker);
//! - `list`: the catalog, a line (or an `mb-cycle/1` record) per cycle;
//! - `plan`: the objects that restore a point, after every check that can
//!   refuse before a write.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::chain::catalog::Catalog;
use crate::chain::layout::{head_key, marker_key};
use crate::chain::marker::{Head, Marker};
use crate::chain::plan::{self, describe_point, describe_window, Asked};
use crate::chain::report;
use crate::format::records::{self, Manifest, PutRecord, RangeRecord};
use crate::settings::store::StoreArgs;
use crate::store::OssTuning;

/// `mb-config chain`'s verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ChainCommand {
    /// Print the commit marker of a stored object (one JSON line), checking
    /// that the three records agree.
    Marker {
        /// The range record the run used.
        #[arg(long, value_name = "FILE")]
        range: PathBuf,
        /// The manifest mb-dump wrote.
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The record mb-oss-put printed.
        #[arg(long, value_name = "FILE")]
        put: PathBuf,
    },
    /// Write the cycle's head record after MARKER to --write FILE; print its key.
    Head {
        /// The marker just stored.
        marker: PathBuf,
        /// The chain's prefix.
        #[arg(long)]
        prefix: String,
        /// Where to write the record.
        #[arg(long, value_name = "FILE")]
        write: PathBuf,
    },
    /// Whether KEY is committed (it has a marker): prints 1 and writes the
    /// marker to --write FILE, else prints 0. A run killed after storing a
    /// marker and before moving the checkpoint left one: the next run, which
    /// decides the same range, commits it instead of storing it again.
    Committed {
        #[command(flatten)]
        store: StoreArgs,
        /// The object's key.
        #[arg(long)]
        key: String,
        /// Where to write its marker.
        #[arg(long, value_name = "FILE")]
        write: PathBuf,
    },
    /// The catalog: one line per cycle (windows, objects, bytes, codec,
    /// encryption, storage class, completeness), from the markers alone.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// The chain's prefix.
        #[arg(long)]
        prefix: String,
        /// One `mb-cycle/1` JSON record per cycle instead.
        #[arg(long)]
        json: bool,
    },
    /// The objects that restore --until (or the latest point), one key a
    /// line after three lines: the cycle, mb-apply's --until (`t,i`, or
    /// empty), and what is restored. Refuses (nothing printed) what cannot
    /// be restored: exit 2 for a point no window holds, 3 for a damaged chain.
    Plan {
        #[command(flatten)]
        store: StoreArgs,
        /// The chain's prefix.
        #[arg(long)]
        prefix: String,
        /// The cycle (default: the newest whose window holds --until, or the newest).
        #[arg(long, value_name = "NAME")]
        cycle: Option<String>,
        /// The point to restore: an RFC 3339 time (the end of that second) or `t,i`.
        #[arg(long, value_name = "TS")]
        until: Option<String>,
        /// An age identity file for encrypted objects; repeatable.
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
        /// Write each planned object's marker here as `<name>.done` (for `mb-oss-get --check-put`).
        #[arg(long, value_name = "DIR")]
        markers_dir: Option<PathBuf>,
    },
}

/// Runs one verb; returns the lines to print.
pub(crate) fn run(command: ChainCommand) -> Result<Vec<String>> {
    match command {
        ChainCommand::Marker { range, manifest, put } => {
            let range: RangeRecord = read(&range, "the range record")?;
            let manifest: Manifest = read(&manifest, "the manifest")?;
            let put: PutRecord = read(&put, "the put record")?;
            Ok(vec![serde_json::to_string(&Marker::new(&range, &manifest, put)?)?])
        }
        ChainCommand::Head { marker, prefix, write } => {
            let marker: Marker = read(&marker, "the marker")?;
            let head = Head::after(&marker);
            anyhow::ensure!(!head.cycle.is_empty(), "the marker names no cycle (is it older than mb-marker/2?)");
            crate::cli::io::write_json_atomic(&write, &head)?;
            Ok(vec![head_key(prefix.trim_end_matches('/'), &head.cycle)])
        }
        ChainCommand::Committed { store, key, write } => {
            let store = store.open(OssTuning::default())?;
            let marker = match store.get(&marker_key(&key), None) {
                Ok(object) => object,
                Err(err) if crate::store::is_not_found(&err) => return Ok(vec!["0".into()]),
                Err(err) => return Err(err),
            };
            let marker: Marker = records::read_json(marker.reader, &format!("the marker of {key}"))?;
            crate::cli::io::write_json_atomic(&write, &marker)?;
            Ok(vec!["1".into()])
        }
        ChainCommand::List { store, prefix, json } => {
            let store = store.open(OssTuning::default())?;
            let records = report::records(&Catalog::read(store.as_ref(), &prefix)?);
            if json {
                return records.iter().map(|r| Ok(serde_json::to_string(r)?)).collect();
            }
            Ok(report::lines(&records))
        }
        ChainCommand::Plan { store, prefix, cycle, until, identity, markers_dir } => {
            let until = until.as_deref().map(records::parse_until).transpose()?;
            let asked = Asked { cycle, until, identities: identity };
            let store = store.open(OssTuning::default())?;
            let catalog = Catalog::read(store.as_ref(), &prefix)?;
            let plan = plan::choose(&catalog, &asked)?;
            plan.check(store.as_ref(), &asked, &mut |line| crate::info!("{line}"))?;
            if let Some(dir) = &markers_dir {
                write_markers(dir, &plan)?;
            }
            Ok(plan_lines(&plan))
        }
    }
}

fn plan_lines(plan: &plan::Plan<'_>) -> Vec<String> {
    let window = plan.cycle.window.map_or("unknown".to_string(), |w| describe_window(w.from, w.to));
    let target = match (plan.until, plan.reaches()) {
        (Some(until), _) => format!("to {}", describe_point(until)),
        (None, Some(end)) => format!("to its end, {}", describe_point(end)),
        (None, None) => "whole (a backup with no oplog position)".to_string(),
    };
    let summary = format!(
        "cycle {}: {} object(s), {} bytes, window {window}; restoring {target}",
        plan.cycle.name,
        plan.objects.len(),
        plan.objects.iter().map(|o| o.stored_size).sum::<u64>(),
    );
    let mut lines = vec![plan.cycle.name.clone(), plan.until.map(|t| t.to_string()).unwrap_or_default(), summary];
    lines.extend(plan.objects.iter().map(|o| o.key.key()));
    lines
}

fn write_markers(dir: &Path, plan: &plan::Plan<'_>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for object in plan.objects {
        let key = object.key.key();
        let name = key.rsplit('/').next().unwrap_or(&key);
        crate::cli::io::write_json_atomic(&dir.join(format!("{name}.done")), &object.marker)?;
    }
    Ok(())
}

fn read<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    records::read_json_file(path, &format!("{what} {}", path.display()))
}
