//! `mb-dump`: a database, several, the whole instance, or an oplog slice, as a
//! tar stream on stdout (layout: `docs/FORMAT.md`). Its help text is on `Args`.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::io::{create_output, is_std, write_json_atomic, AtomicFile};
use crate::cli::progress::{Layout, Progress, ProgressArgs, Reporter};
use crate::format::records::{read_range, Kind, RangeRecord};
use crate::mongo::dump::{dump_from, DumpOptions};
use crate::mongo::Need;
use crate::settings::config;
use crate::settings::mongo::ConnectArgs;

/// Dump MongoDB databases or an oplog slice as a tar stream on stdout.
///
/// Full dump: collections are read in parallel (--parallel), each cut into
/// chunks of at most --chunk-size bytes, so memory stays bounded whatever the
/// size of the database. A collection holding more than --split-above bytes
/// is read in ranges of its record ids on up to --parallel connections (its
/// chunks then hold its documents in the order the ranges were read). On a
/// replica set the oplog position is taken before
/// the first read and the oplog written during the dump is carried too, so a
/// restore is consistent at the dump's end point (like `mongodump --oplog`,
/// also for single databases). If the oplog rolls past that start during the
/// dump, the dump fails (exit 5) rather than produce an inconsistent backup.
///
/// With --range, reads a range record from mb-oplog-range (a file or `-`):
/// kind "full" makes a full dump; kind "oplog" dumps the oplog entries in
/// (from, to] for the databases, and fails (exit 5) if `from` is no longer in
/// the oplog.
///
/// Every read of a run goes to one replica set member, chosen once by the
/// read preference: with --range, the member that decided the range, or one
/// that has applied the oplog through `to`; a member behind `to` is waited for
/// up to --max-lag, then the run fails naming it. --numParallelCollections
/// (-j) is mongodump's name for --parallel.
///
/// Exit status: 0 done; 1 failure (connection, server, I/O); 2 usage; 5 the
/// oplog rolled past the point the dump needed.
#[derive(clap::Parser, Debug)]
#[command(name = "mb-dump", after_help = EXAMPLES)]
pub(crate) struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Database to dump (repeat or comma-separate); default: the config's
    /// db_name, else every database but local and config (admin included).
    #[arg(long = "db", value_delimiter = ',', value_name = "NAME")]
    databases: Vec<String>,
    /// Also dump the users and roles defined on the dumped databases.
    #[arg(long)]
    users_and_roles: bool,
    /// Range record from mb-oplog-range (a file, or - for stdin).
    #[arg(long, value_name = "RECORD")]
    range: Option<PathBuf>,
    /// Do not carry the oplog written during a full dump (replica sets).
    #[arg(long)]
    no_oplog: bool,
    /// Cursors open at once: collections, or ranges of a big collection.
    #[arg(short = 'j', long, default_value_t = 4, value_name = "N", value_parser = crate::cli::parse_count,
          visible_alias = "numParallelCollections")]
    parallel: usize,
    /// Read a collection holding more data than SIZE in ranges of its record ids on
    /// up to --parallel connections (capped and clustered collections stay on one).
    #[arg(long, default_value = "64MiB", value_parser = crate::cli::parse_size, value_name = "SIZE")]
    split_above: u64,
    /// Largest chunk entry, in bytes (a document larger than this gets a chunk of its own).
    #[arg(long, default_value = "8MiB", value_parser = crate::cli::parse_size, value_name = "SIZE")]
    chunk_size: u64,
    /// Also write the manifest record to FILE (the scripts' checkpoint source).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Write the stream to FILE instead of stdout (`-` is stdout).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    progress: ProgressArgs,
    #[command(flatten)]
    log: crate::cli::LogArgs,
}

const EXAMPLES: &str = "Examples:
  # One database to a file, from the server a config names (password in the 0600 config):
  mb-dump --config /etc/mb/shop.conf --db shop -o shop.tar
  # Every database but local and config, from a secondary, compressed:
  mb-dump --uri 'mongodb://db1,db2,db3/?replicaSet=rs0' --read-preference secondary | mb-pack > all.tar.zst
  # What the next run of a chain stores (full or oplog slice), as mb-backup does:
  mb-oplog-range --config shop.conf --state state.json | mb-dump --config shop.conf --range - --manifest manifest.json";

/// Runs `mb-dump`.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    args.log.apply();
    // -o FILE: a temp file beside it, renamed into place only once the dump
    // is complete; a failing dump leaves no partial FILE (the temp goes on drop).
    let temp = match args.output.as_deref().filter(|p| !is_std(Some(p))) {
        Some(path) => Some(AtomicFile::create(path, ".mb-dump-")?),
        None => None,
    };
    let out: Box<dyn std::io::Write + Send> = match &temp {
        Some(temp) => Box::new(temp.reopen()?),
        None => create_output(None)?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let reporter = Reporter::start(&args.progress, Layout::Dump)?;
    let manifest = runtime.block_on(dump(&args, out, reporter.progress()))?;
    reporter.finish();
    if let Some(temp) = temp {
        temp.commit()?;
    }
    if let Some(path) = &args.manifest {
        write_json_atomic(path, &manifest)?;
    }
    Ok(())
}

/// Connects to the member the range needs, then dumps. The databases: --db,
/// else the range record's, else the config's db_name, else all.
async fn dump(
    args: &Args,
    out: Box<dyn std::io::Write + Send>,
    progress: Progress,
) -> Result<crate::format::records::Manifest> {
    let range = args.range.as_deref().map(read_range).transpose()?;
    let config = config::load_optional(args.connect.config.as_deref())?;
    let conn = args.connect.connect_for("mb-dump", need_of(range.as_ref()), config.as_ref()).await?;
    let databases = match &range {
        Some(range) if crate::settings::databases(&args.databases, None).is_empty() => range.databases.clone(),
        _ => crate::settings::databases(&args.databases, config.as_ref()),
    };
    let options = DumpOptions {
        databases,
        users_and_roles: args.users_and_roles
            || config
                .as_ref()
                .and_then(|c| c.get("users_and_roles"))
                .is_some_and(|v| matches!(v, "1" | "true" | "yes")),
        users_and_roles_flag: args.users_and_roles,
        no_oplog: args.no_oplog,
        parallel: args.parallel,
        split_above: args.split_above,
        chunk_size: args.chunk_size,
        progress,
    };
    conn.run(async |conn| dump_from(conn, &options, range, out).await).await
}

/// A slice is read from the member that decided its range, or from one
/// proven to have applied through the range's end, never from one behind it.
fn need_of(range: Option<&RangeRecord>) -> Need {
    Need {
        ahead_of: range.filter(|r| r.kind == Kind::Oplog).and_then(|r| r.to),
        prefer: range.and_then(|r| r.member.clone()),
        ..Need::default()
    }
}
