//! `mb-oplog-range`: decides what the next backup run stores, and moves the
//! checkpoint once it is stored.
//!
//! ```text
//! Usage: mb-oplog-range [--uri URI | --config FILE] --state FILE [--period DAYS] [--db NAME]... [--codec zstd|gzip]
//!        mb-oplog-range --full [--db NAME]... [--codec zstd|gzip]              (a new cycle, no server asked)
//!        mb-oplog-range --commit --state FILE --range R --manifest M --put P
//!
//! Reads the last checkpoint from the state file (missing: none) and asks the
//! server for its oldest and newest oplog entries. Prints one range record:
//!   kind "full" (a new cycle) when there is no checkpoint, the cycle is
//!   --period days old, the databases changed, or the oplog no longer reaches
//!   back to the checkpoint (an oplog gap: said on stderr and in `reason`);
//!   kind "oplog" otherwise, for (checkpoint, newest entry].
//! The server is one replica set member, chosen by the read preference among
//! those that have applied the oplog through the checkpoint (waiting up to
//! --max-lag); the record names it (`member`) for mb-dump.
//! The record names the object key: PREFIX/CYCLE/SEQ-full.tar.zst or
//! PREFIX/CYCLE/SEQ-oplog-FROM-TO.tar.zst (timestamps as zero-padded `t_i`;
//! `.tar.gz` with --codec gzip), so a listing sorts into the chain. CYCLE is
//! the cycle's start time to the microsecond (`20261124T031500.123456Z`): two
//! full backups never share a key.
//!
//! --commit writes the new checkpoint after mb-oss-put confirmed the object:
//! it checks that the manifest covers exactly the range and the put record
//! names its key, then replaces the state file atomically (temp, fsync, rename).
//! A run that dies before --commit leaves the state as it was; the next run
//! covers the same range again.
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::usage;
use crate::format::records::{self, Kind, Manifest, PutRecord, RangeRecord, State, Ts, RANGE_FORMAT, STATE_FORMAT};
use crate::mongo::oplog;
use crate::mongo::{Connection, Need};
use crate::settings::config::Config;
use crate::settings::mongo::ConnectArgs;
use crate::{info, warn};

/// `mb-oplog-range`'s flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "mb-oplog-range",
    version,
    about = "Decide the next backup range (full or oplog slice); move the checkpoint"
)]
pub(crate) struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The state (checkpoint) file; a missing file means no checkpoint.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Start a new cycle with a full backup when the cycle is this many days old.
    #[arg(long, default_value_t = 7.0, value_name = "DAYS")]
    period: f64,
    /// Databases backed up (repeat or comma-separate); default: the config's db_name, else all.
    #[arg(long = "db", value_delimiter = ',', value_name = "NAME")]
    databases: Vec<String>,
    /// Key prefix of the chain's objects; default: the databases joined by `+`, or `all`.
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// The codec mb-pack compresses with: the key's extension (`.tar.zst`, `.tar.gz`).
    #[arg(long, value_enum, default_value_t = crate::pack::Codec::Zstd)]
    codec: crate::pack::Codec,
    /// Print a full-backup record for a new cycle without asking the server.
    #[arg(long, conflicts_with = "commit")]
    full: bool,
    /// Move the checkpoint: needs --state, --range, --manifest and --put.
    #[arg(long)]
    commit: bool,
    /// With --commit: the range record the run used.
    #[arg(long, value_name = "FILE", requires = "commit")]
    range: Option<PathBuf>,
    /// With --commit: the manifest mb-dump wrote.
    #[arg(long, value_name = "FILE", requires = "commit")]
    manifest: Option<PathBuf>,
    /// With --commit: the record mb-oss-put printed.
    #[arg(long, value_name = "FILE", requires = "commit")]
    put: Option<PathBuf>,
    #[command(flatten)]
    log: crate::cli::LogArgs,
}

/// Runs `mb-oplog-range`.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    args.log.apply();
    let config = crate::settings::config::load_optional(args.connect.config.as_deref())?;
    let databases = crate::settings::databases(&args.databases, config.as_ref());
    let prefix = args.prefix.clone().unwrap_or_else(|| crate::settings::config::key_prefix(&databases));
    if args.commit {
        return commit(&args);
    }
    if args.period.is_nan() || args.period < 0.0 {
        return Err(usage(format!("--period must be a number of days, not {}", args.period)));
    }
    let mut record = if args.full {
        full_record(&databases, &prefix, "asked for a full backup")
    } else {
        let state_path = args.state.as_deref().ok_or_else(|| usage("--state FILE is needed (or --full)"))?;
        let state = read_state(state_path)?;
        tokio::runtime::Runtime::new()?.block_on(decide(&args, config.as_ref(), state, databases, prefix))?
    };
    record.key.push_str(args.codec.extension());
    if record.kind == Kind::Full {
        info!("next: full backup, new cycle {} ({})", record.cycle, record.reason);
    } else {
        info!(
            "next: oplog slice {} of cycle {}: ({}, {}]",
            record.seq,
            record.cycle,
            record.from.unwrap(),
            record.to.unwrap()
        );
    }
    println!("{}", serde_json::to_string(&record)?);
    Ok(())
}

fn full_record(databases: &[String], prefix: &str, reason: &str) -> RangeRecord {
    let cycle = cycle_id(std::time::SystemTime::now());
    RangeRecord {
        format: RANGE_FORMAT.into(),
        kind: Kind::Full,
        from: None,
        to: None,
        databases: databases.to_vec(),
        key: format!("{prefix}/{cycle}/{:06}-full.tar", 0),
        cycle,
        seq: 0,
        reason: reason.into(),
        member: None,
    }
}

/// A cycle's name: its start time to the microsecond, fixed width
/// (`20261124T031500.123456Z`), so names sort in time order and two full
/// backups in one second get different keys.
fn cycle_id(now: std::time::SystemTime) -> String {
    let since = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = crate::format::time::format_rfc3339(since.as_secs() as i64).replace(['-', ':'], "");
    format!("{}.{:06}Z", secs.trim_end_matches('Z'), since.subsec_micros())
}

async fn decide(
    args: &Args,
    config: Option<&Config>,
    state: Option<State>,
    databases: Vec<String>,
    prefix: String,
) -> Result<RangeRecord> {
    // The member read from must have applied through the checkpoint: one
    // behind it is waited for (--max-lag), or another member is chosen.
    let mut need = Need::default();
    if let Some(state) = &state {
        if new_cycle_reason(args, state, &databases, &prefix)?.is_none() {
            need.applied_through = Some((state.to, "the checkpoint".to_string()));
        }
    }
    let conn = args.connect.connect_for("mb-oplog-range", need, config).await?;
    let member = conn.member.clone();
    let mut record = conn.run(async |conn| decide_on(conn, args, state, databases, prefix).await).await?;
    record.member = member;
    Ok(record)
}

async fn decide_on(
    conn: &Connection,
    args: &Args,
    state: Option<State>,
    databases: Vec<String>,
    prefix: String,
) -> Result<RangeRecord> {
    let server = crate::mongo::server_info(&conn.client).await?;
    if server.set_name.is_none() {
        bail!("the server is not a replica set member: incremental backups need its oplog (set is_inc_backup=0 for full backups only)");
    }
    let Some(state) = state else {
        return Ok(full_record(&databases, &prefix, "no checkpoint yet"));
    };
    if let Some(reason) = new_cycle_reason(args, &state, &databases, &prefix)? {
        return Ok(full_record(&databases, &prefix, &reason));
    }
    let oldest = oplog::oldest(&conn.client).await?;
    let newest = oplog::newest(&conn.client).await?;
    if oldest > state.to {
        let reason = format!(
            "oplog gap: the oldest oplog entry {oldest} is newer than the checkpoint {}; the entries in between are lost, so a new cycle starts",
            state.to
        );
        warn!("{reason}");
        return Ok(full_record(&databases, &prefix, &reason));
    }
    if newest < state.to {
        // The member was chosen for having applied through the checkpoint.
        bail!(
            "the newest oplog entry {newest} of {} is older than the checkpoint {}: the member lost writes \
             (a rollback?) or is not the replica set the checkpoint came from",
            conn.member.as_deref().unwrap_or(&conn.hosts),
            state.to
        );
    }
    let seq = state.seq + 1;
    Ok(RangeRecord {
        format: RANGE_FORMAT.into(),
        kind: Kind::Oplog,
        from: Some(state.to),
        to: Some(newest),
        databases,
        // Zero-padded so that keys sort as their timestamps do.
        key: format!(
            "{prefix}/{}/{seq:06}-oplog-{:010}_{:010}-{:010}_{:010}.tar",
            state.cycle, state.to.t, state.to.i, newest.t, newest.i
        ),
        cycle: state.cycle,
        seq,
        reason: "checkpoint is in the oplog".into(),
        member: None,
    })
}

/// Why the checkpoint starts a new cycle whatever the server holds, if it does.
fn new_cycle_reason(args: &Args, state: &State, databases: &[String], prefix: &str) -> Result<Option<String>> {
    let age_days =
        (crate::format::time::now_secs() - crate::format::time::parse_rfc3339(&state.cycle_started)?) as f64 / 86_400.0;
    if age_days >= args.period {
        return Ok(Some(format!("cycle {} is {age_days:.1} days old (period {} days)", state.cycle, args.period)));
    }
    if state.databases != databases {
        return Ok(Some("the databases backed up changed".into()));
    }
    if state.prefix != prefix {
        return Ok(Some("the key prefix changed".into()));
    }
    Ok(None)
}

/// Reads the state file; a missing file is no checkpoint.
pub(crate) fn read_state(path: &Path) -> Result<Option<State>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading state file {}", path.display())),
    };
    let state: State = serde_json::from_str(&text)
        .with_context(|| format!("state file {} is damaged; move it away to start a new cycle", path.display()))?;
    if state.format != STATE_FORMAT {
        bail!("state file {} has format {:?}, expected {STATE_FORMAT:?}", path.display(), state.format);
    }
    Ok(Some(state))
}

fn read_file<T: serde::de::DeserializeOwned>(path: Option<&Path>, flag: &str) -> Result<T> {
    let path = path.ok_or_else(|| usage(format!("--commit needs {flag}")))?;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    records::read_json(file, &path.display().to_string())
}

fn commit(args: &Args) -> Result<()> {
    let state_path = args.state.as_deref().ok_or_else(|| usage("--commit needs --state"))?;
    let range: RangeRecord = read_file(args.range.as_deref(), "--range")?;
    let manifest: Manifest = read_file(args.manifest.as_deref(), "--manifest")?;
    let put: PutRecord = read_file(args.put.as_deref(), "--put")?;
    if put.key != range.key {
        bail!("the stored object {} is not the range's key {}", put.key, range.key);
    }
    if manifest.kind != range.kind {
        bail!("the manifest is a {} backup, the range a {} one", manifest.kind, range.kind);
    }
    let previous = read_state(state_path)?;
    let to: Ts = match range.kind {
        Kind::Oplog => {
            let oplog = manifest.oplog.as_ref().context("an oplog manifest without its oplog section")?;
            if Some(oplog.from) != range.from || Some(oplog.to) != range.to {
                bail!(
                    "the manifest covers ({}, {}] but the range was ({:?}, {:?}]",
                    oplog.from,
                    oplog.to,
                    range.from,
                    range.to
                );
            }
            let previous = previous.as_ref().context("an oplog slice with no checkpoint before it")?;
            if previous.to != oplog.from || previous.cycle != range.cycle {
                bail!(
                    "the checkpoint moved since the range was decided (another run?): it is at {} of cycle {}",
                    previous.to,
                    previous.cycle
                );
            }
            oplog.to
        }
        Kind::Full => manifest.consistent_at.context(
            "a full backup without an oplog position cannot start an incremental cycle (is the source a replica set?)",
        )?,
    };
    let cycle_started = match (&previous, range.kind) {
        (Some(previous), Kind::Oplog) => previous.cycle_started.clone(),
        _ => manifest.created.clone(),
    };
    let state = State {
        format: STATE_FORMAT.into(),
        cycle: range.cycle.clone(),
        cycle_started,
        seq: range.seq,
        to,
        databases: range.databases.clone(),
        // The key is PREFIX/CYCLE/FILE; the prefix may itself hold slashes.
        prefix: range.key.rsplitn(3, '/').nth(2).unwrap_or_default().to_string(),
        key: put.key,
        size: put.size,
        crc64: put.crc64,
        updated: crate::format::time::now_rfc3339(),
    };
    crate::cli::io::write_json_atomic(state_path, &state)?;
    info!("checkpoint moved to {to} (cycle {}, backup {})", state.cycle, state.seq);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_names_are_unique_within_a_second_and_sort_in_time() {
        let base = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_490_100);
        let first = cycle_id(base + std::time::Duration::from_micros(1));
        let second = cycle_id(base + std::time::Duration::from_micros(2));
        let later = cycle_id(base + std::time::Duration::from_secs(1));
        assert_eq!(first, "20261124T031500.000001Z");
        assert!(first < second && second < later, "{first} {second} {later}");
    }
}
