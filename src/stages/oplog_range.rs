//! `mb-oplog-range`: decides what the next backup run stores, and moves the
//! checkpoint once it is stored.
//!
//! ```text
//! Usage: mb-oplog-range [--uri URI | --config FILE] --state FILE [--period DAYS] [--db NAME]... [--codec zstd|gzip]
//!        mb-oplog-range --full [--db NAME]... [--codec zstd|gzip]              (a new cycle, no server asked)
//!        mb-oplog-range --commit --state FILE --range R (--marker M | --manifest M --put P)
//!        mb-oplog-range --close-cycle --state FILE --marker M [--codec zstd|gzip]
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
//! The record names the object key (`src/chain/layout.rs`): a listing sorts
//! into the chain, and two full backups never share a key.
//!
//! --close-cycle, after a new cycle's full backup (marker M) was stored:
//! the old cycle's last slice, from the checkpoint up to the new full
//! backup's consistency point, so the two cycles' windows touch. Prints
//! nothing when there is no old cycle of the same databases to close.
//!
//! --commit writes the new checkpoint after the object and its commit marker
//! (M, `mb-config chain marker`) were stored: it checks that the marker covers
//! exactly the range, then replaces the state file atomically (temp, fsync,
//! rename). A run that dies before --commit leaves the state as it was; the
//! next run covers the same range again (or commits the marker it finds).
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::chain::checkpoint;
use crate::chain::layout::{cycle_name, ObjectKey};
use crate::chain::marker::Marker;
use crate::cli::usage;
use crate::format::records::{self, Kind, Manifest, PutRecord, RangeRecord, State, RANGE_FORMAT};
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
    /// Move the checkpoint: needs --state, --range, and --marker (or --manifest and --put).
    #[arg(long)]
    commit: bool,
    /// Print the range that closes the checkpoint's cycle up to the new full
    /// backup whose marker is --marker (nothing if there is none to close).
    #[arg(long, conflicts_with_all = ["commit", "full"])]
    close_cycle: bool,
    /// With --commit: the range record the run used.
    #[arg(long, value_name = "FILE", requires = "commit")]
    range: Option<PathBuf>,
    /// With --commit: the commit marker stored for the object; with
    /// --close-cycle: the new full backup's.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["put"])]
    marker: Option<PathBuf>,
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
    if args.close_cycle {
        return close_cycle(&args, &databases, &prefix);
    }
    if args.period.is_nan() || args.period < 0.0 {
        return Err(usage(format!("--period must be a number of days, not {}", args.period)));
    }
    let mut record = if args.full {
        full_record(&databases, &prefix, "asked for a full backup")
    } else {
        let state_path = args.state.as_deref().ok_or_else(|| usage("--state FILE is needed (or --full)"))?;
        let state = checkpoint::read(state_path)?;
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
    let cycle = cycle_name(std::time::SystemTime::now());
    RangeRecord {
        format: RANGE_FORMAT.into(),
        kind: Kind::Full,
        from: None,
        to: None,
        databases: databases.to_vec(),
        key: ObjectKey::full(prefix, &cycle),
        cycle,
        seq: 0,
        reason: reason.into(),
        member: None,
    }
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
        key: ObjectKey::slice(&prefix, &state.cycle, seq, state.to, newest),
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

fn read_file<T: serde::de::DeserializeOwned>(path: Option<&Path>, flag: &str) -> Result<T> {
    let path = path.ok_or_else(|| usage(format!("needs {flag}")))?;
    records::read_json_file(path, &path.display().to_string())
}

fn commit(args: &Args) -> Result<()> {
    let state_path = args.state.as_deref().ok_or_else(|| usage("--commit needs --state"))?;
    let range: RangeRecord = read_file(args.range.as_deref(), "--range")?;
    let marker: Marker = match &args.marker {
        Some(path) => read_file(Some(path), "--marker")?,
        None => {
            let manifest: Manifest = read_file(args.manifest.as_deref(), "--marker (or --manifest and --put)")?;
            let put: PutRecord = read_file(args.put.as_deref(), "--put")?;
            Marker::new(&range, &manifest, put)?
        }
    };
    let previous = checkpoint::read(state_path)?;
    let state = checkpoint::after(previous.as_ref(), &range, &marker)?;
    crate::cli::io::write_json_atomic(state_path, &state)?;
    info!("checkpoint moved to {} (cycle {}, backup {})", state.to, state.cycle, state.seq);
    Ok(())
}

/// The range of the checkpoint cycle's last slice: up to the consistency
/// point of the new cycle's full backup, so their windows touch.
fn close_cycle(args: &Args, databases: &[String], prefix: &str) -> Result<()> {
    let state_path = args.state.as_deref().ok_or_else(|| usage("--close-cycle needs --state"))?;
    let full: Marker = read_file(args.marker.as_deref(), "--marker")?;
    let Some(state) = checkpoint::read(state_path)? else { return Ok(()) };
    let Some(to) = full.consistent_at else { return Ok(()) };
    let same_scope = full.databases.as_deref() == Some(databases) && state.databases == databases;
    if !same_scope || state.prefix != prefix || full.cycle.as_deref() == Some(state.cycle.as_str()) || to <= state.to {
        return Ok(());
    }
    let seq = state.seq + 1;
    let mut key = ObjectKey::slice(prefix, &state.cycle, seq, state.to, to);
    key.push_str(args.codec.extension());
    let record = RangeRecord {
        format: RANGE_FORMAT.into(),
        kind: Kind::Oplog,
        from: Some(state.to),
        to: Some(to),
        databases: databases.to_vec(),
        key,
        reason: format!("closing cycle {} up to the next cycle's full backup", state.cycle),
        cycle: state.cycle,
        seq,
        member: None,
    };
    info!("next: the last slice of cycle {}: ({}, {}]", record.cycle, state.to, to);
    println!("{}", serde_json::to_string(&record)?);
    Ok(())
}
