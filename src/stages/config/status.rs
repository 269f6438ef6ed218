//! `mb-config status ...` (behind `scripts/mb-status`) and `mb-config
//! run-record ...` (written by `scripts/mb-backup` after every run that got
//! the lock): is the backup healthy? The last success and its age, the last
//! failure and its reason, the restorable window, the checkpoint, when the
//! next full backup is due, objects and bytes per cycle.
//!
//! The runs' outcomes live in `db_backup_root_path/runs.json` (`mb-runs/1`,
//! docs/FORMAT.md), the rest comes from the checkpoint and the catalog (one
//! listing and the markers, never the objects).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::chain::catalog::Catalog;
use crate::chain::checkpoint;
use crate::chain::report::{self, CycleRecord};
use crate::cli::{usage, Failure, EXIT_FAILURE};
use crate::format::time::{format_rfc3339, now_secs, parse_rfc3339};
use crate::settings::store::StoreArgs;
use crate::store::OssTuning;

/// Version tag of the runs record.
pub(crate) const RUNS_FORMAT: &str = "mb-runs/1";

/// One backup run's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Run {
    /// When it started and ended (RFC 3339 UTC).
    pub(crate) started: String,
    pub(crate) finished: String,
    /// Its exit status.
    pub(crate) exit: i32,
    /// The object it stored or meant to store, if it got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// A failed run's first cause: the last line it printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// `runs.json`: the last run, the last success, the last failure.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Runs {
    pub(crate) format: String,
    pub(crate) last_run: Option<Run>,
    pub(crate) last_success: Option<Run>,
    pub(crate) last_failure: Option<Run>,
}

/// `mb-config run-record`'s flags.
#[derive(clap::Args, Debug)]
pub(crate) struct RunRecordArgs {
    /// The runs record to update (db_backup_root_path/runs.json).
    file: PathBuf,
    /// When the run started, seconds since the epoch.
    #[arg(long, value_name = "SECS")]
    started: i64,
    /// Its exit status.
    #[arg(long)]
    exit: i32,
    /// The object's key, if known.
    #[arg(long)]
    key: Option<String>,
    /// The run's log: a failed run's reason is its last line.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
}

/// `mb-config status`' flags.
#[derive(clap::Args, Debug)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The chain's prefix.
    #[arg(long)]
    prefix: String,
    /// db_backup_root_path: the checkpoint and the runs record.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Days per cycle (full_backup_period); with --incremental.
    #[arg(long, value_name = "DAYS", default_value_t = 7.0)]
    period: f64,
    /// is_inc_backup = 1: cycles of a full backup and slices.
    #[arg(long)]
    incremental: bool,
    /// One JSON record (`mb-status/1`) instead of text.
    #[arg(long)]
    json: bool,
    /// Exit 1 when the last success is older than this (`26h`, `90m`, `2d`, seconds), or there is none.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_age: Option<i64>,
}

/// `26h`, `90m`, `2d`, `45s` or plain seconds.
fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} is not a duration (e.g. 26h, 90m, 2d, 3600)")),
    };
    let number: i64 = number.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 26h, 90m, 2d, 3600)"))?;
    number.checked_mul(scale).ok_or_else(|| format!("{text:?} is too long"))
}

/// Records a run's outcome in the runs record (written atomically).
pub(crate) fn record_run(args: &RunRecordArgs) -> Result<Vec<String>> {
    let mut runs = read_runs(&args.file)?.unwrap_or_default();
    let reason = match (&args.log, args.exit) {
        (Some(log), exit) if exit != 0 => std::fs::read_to_string(log)
            .ok()
            .and_then(|text| text.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string)),
        _ => None,
    };
    let run = Run {
        started: format_rfc3339(args.started),
        finished: crate::format::time::now_rfc3339(),
        exit: args.exit,
        key: args.key.clone().filter(|k| !k.is_empty()),
        reason: reason.or_else(|| (args.exit != 0).then(|| format!("exit {}", args.exit))),
    };
    if args.exit == 0 {
        runs.last_success = Some(run.clone());
    } else {
        runs.last_failure = Some(run.clone());
    }
    runs.last_run = Some(run);
    runs.format = RUNS_FORMAT.into();
    crate::cli::io::write_json_atomic(&args.file, &runs)?;
    Ok(Vec::new())
}

fn read_runs(path: &Path) -> Result<Option<Runs>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// The status record (`mb-status/1`).
#[derive(Debug, Serialize)]
struct Status {
    format: &'static str,
    prefix: String,
    healthy: bool,
    last_success: Option<Run>,
    last_success_age_seconds: Option<i64>,
    last_failure: Option<Run>,
    last_run_failed: bool,
    checkpoint: Option<crate::format::records::State>,
    next_full_backup_due: Option<String>,
    cycles: Vec<CycleRecord>,
}

/// Reports the status; with --max-age, a stale or missing last success exits 1.
pub(crate) fn status(args: &StatusArgs) -> Result<Vec<String>> {
    if args.period.is_nan() || args.period < 0.0 {
        return Err(usage(format!("--period must be a number of days, not {}", args.period)));
    }
    let runs = read_runs(&args.root.join("runs.json"))?.unwrap_or_default();
    let state = checkpoint::read(&args.root.join("state.json"))?;
    // A local store is made by the first backup: before it, there is nothing to list.
    let cycles = if args.store.store_dir.as_ref().is_some_and(|dir| !dir.exists()) {
        Vec::new()
    } else {
        let store = args.store.open(OssTuning::default())?;
        report::records(&Catalog::read(store.as_ref(), &args.prefix)?)
    };
    let now = now_secs();
    let age = runs.last_success.as_ref().and_then(|r| parse_rfc3339(&r.finished).ok()).map(|t| now - t);
    let next_full = match (&state, args.incremental) {
        (Some(state), true) => {
            parse_rfc3339(&state.cycle_started).ok().map(|t| format_rfc3339(t + (args.period * 86_400.0) as i64))
        }
        _ => None,
    };
    let last_run_failed = runs.last_run.as_ref().is_some_and(|r| r.exit != 0);
    let stale = args.max_age.is_some_and(|max| age.is_none_or(|age| age > max));
    let status = Status {
        format: "mb-status/1",
        prefix: args.prefix.clone(),
        healthy: !stale && !last_run_failed && age.is_some() && cycles.last().is_some_and(|c| c.complete),
        last_success: runs.last_success,
        last_success_age_seconds: age,
        last_failure: runs.last_failure,
        last_run_failed,
        checkpoint: state,
        next_full_backup_due: next_full,
        cycles,
    };
    let lines = if args.json { vec![serde_json::to_string(&status)?] } else { text(&status) };
    if stale {
        for line in &lines {
            println!("{line}");
        }
        let max = args.max_age.unwrap_or_default();
        let why = match age {
            Some(age) => {
                format!("the last successful backup ended {} ago, more than --max-age {}", human(age), human(max))
            }
            None => "no backup has succeeded yet".to_string(),
        };
        return Err(Failure { code: EXIT_FAILURE, message: why }.into());
    }
    Ok(lines)
}

fn text(status: &Status) -> Vec<String> {
    let mut lines =
        vec![format!("prefix {}: {}", status.prefix, if status.healthy { "healthy" } else { "NOT healthy" })];
    lines.push(match (&status.last_success, status.last_success_age_seconds) {
        (Some(run), Some(age)) => format!(
            "last success: {} ({} ago){}",
            run.finished,
            human(age),
            run.key.as_ref().map(|k| format!(", {k}")).unwrap_or_default()
        ),
        _ => "last success: none yet".to_string(),
    });
    if let Some(run) = &status.last_failure {
        lines.push(format!(
            "last failure: {} (exit {}): {}{}",
            run.finished,
            run.exit,
            run.reason.as_deref().unwrap_or("no reason recorded"),
            if status.last_run_failed { "" } else { " (a later run succeeded)" }
        ));
    }
    if let Some(state) = &status.checkpoint {
        lines.push(format!(
            "checkpoint: cycle {}, SEQ {:06}, at {}",
            state.cycle,
            state.seq,
            crate::chain::plan::describe_point(state.to)
        ));
    }
    if let Some(due) = &status.next_full_backup_due {
        lines.push(format!("next full backup due: {due}"));
    }
    match (status.cycles.first().and_then(|c| c.window.as_ref()), status.cycles.last().and_then(|c| c.window.as_ref()))
    {
        (Some(first), Some(last)) => lines.push(format!(
            "restorable: {} .. {} ({} cycle(s){})",
            first.from.time,
            last.to.time,
            status.cycles.len(),
            if status.cycles.iter().any(|c| c.gap_before.is_some()) {
                ", with gaps: see mb-restore --list"
            } else {
                ""
            }
        )),
        _ => lines.push("restorable: nothing yet".to_string()),
    }
    lines.extend(report::lines(&status.cycles).into_iter().map(|line| format!("  {line}")));
    lines
}

/// `3d 4h`, `2h 5m`, `40s`.
fn human(secs: i64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_duration("26h"), Ok(93_600));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert!(parse_duration("1w").is_err() && parse_duration("h").is_err() && parse_duration("").is_err());
        assert_eq!(human(93_600 + 120), "1d 2h");
        assert_eq!(human(125), "2m 5s");
    }
}
