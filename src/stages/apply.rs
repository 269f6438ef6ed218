//! `mb-apply`: a tar stream (or several, one after another) into a MongoDB,
//! a mongodump directory, or nowhere (`--dry-run`). Its help text is on
//! `Args`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::progress::{Layout, ProgressArgs, Reporter};
use crate::cli::usage;
use crate::format::records::Ts;
use crate::mongo::apply::{apply, ApplyOptions, Target};
use crate::mongo::dump_dir::DirTarget;
use crate::mongo::ns::NsMap;
use crate::settings::mongo::WriteArgs;

/// Restore mb tar streams from stdin into MongoDB.
///
/// Reads a full dump and then any oplog slices of its cycle, concatenated
/// (`cat full.tar slice1.tar ... | mb-apply`): creates the collections with
/// their options, inserts the documents in batches (--parallel chunks at
/// once), builds the indexes, then replays the oplog up to --until. The
/// oplog's writes go on --parallel connections, each document's in order (as
/// a secondary applies them); commands and transactions wait for all before
/// them; --parallel 1 is strictly in order. Every chunk's CRC-64 and document
/// count is checked before it is written; the stream's manifest is checked at
/// its end. A chain whose slices do not follow each other exactly is refused,
/// naming the hole. Only the backup's databases are written (the rest of a
/// cross-database transaction is counted, not applied).
///
/// --drop first drops what the backup covers on the target; without it,
/// documents that conflict with the target's are counted and exit 4, unless
/// --keep-existing. --to-dir writes mongodump's directory layout
/// (`<db>/<coll>.bson`, `<db>/<coll>.metadata.json`, `oplog.bson`) that the
/// official `mongorestore --oplogReplay DIR` accepts.
///
/// mongorestore's names work too: --nsInclude, --nsExclude, --nsFrom, --nsTo,
/// --numParallelCollections (-j), --dryRun and --oplogLimit (exclusive, as in
/// mongorestore).
///
/// Exit status: 0 done; 1 failure; 2 usage; 3 the stream failed a check
/// (CRC-64, count, BSON, a hole in the chain); 4 conflicting documents.
#[derive(clap::Parser, Debug)]
#[command(name = "mb-apply", after_help = EXAMPLES)]
pub(crate) struct Args {
    #[command(flatten)]
    connect: WriteArgs,
    /// The stream to read (`-` or nothing: stdin).
    input: Option<PathBuf>,
    /// Drop what the backup covers on the target before restoring: every
    /// collection of its databases (as --ns-* filters map them).
    #[arg(long)]
    drop: bool,
    /// Keep the target's documents that conflict with the backup's (same
    /// `_id` or another unique key) and exit 0; without it they exit 4.
    #[arg(long, conflicts_with = "drop")]
    keep_existing: bool,
    /// Replay the oplog only up to this point, inclusive: `seconds,ordinal`
    /// or an RFC 3339 time (which includes that whole second).
    #[arg(long, value_name = "TS")]
    until: Option<String>,
    /// Replay the oplog only up to this point, exclusive (mongorestore's
    /// --oplogLimit): `seconds[:ordinal]` or an RFC 3339 time.
    #[arg(long = "oplogLimit", value_name = "TS", conflicts_with = "until")]
    oplog_limit: Option<String>,
    /// Restore only namespaces matching PATTERN (`shop.*`); repeatable.
    #[arg(long, value_name = "PATTERN", visible_alias = "nsInclude")]
    ns_include: Vec<String>,
    /// Skip namespaces matching PATTERN; repeatable.
    #[arg(long, value_name = "PATTERN", visible_alias = "nsExclude")]
    ns_exclude: Vec<String>,
    /// Rename namespaces matching PATTERN (`shop.$c$`), paired with --ns-to.
    #[arg(long, value_name = "PATTERN", visible_alias = "nsFrom")]
    ns_from: Vec<String>,
    /// The new name for the --ns-from at the same position (`copy.$c$`).
    #[arg(long, value_name = "PATTERN", visible_alias = "nsTo")]
    ns_to: Vec<String>,
    /// The input is oplog slices only, replayed onto what the target holds
    /// (catching up a restore by hand); without it the input must start
    /// with a full backup.
    #[arg(long)]
    oplog_only: bool,
    /// Read and check the whole stream (CRC-64, counts, BSON, chain), write nothing.
    #[arg(long, visible_alias = "dryRun")]
    dry_run: bool,
    /// Write a mongodump-layout directory instead of restoring to a server.
    #[arg(long, value_name = "DIR", conflicts_with = "dry_run")]
    to_dir: Option<PathBuf>,
    /// Chunks inserted at once, indexes built at once, and connections
    /// replaying the oplog (each document's operations in order; 1: all in order).
    #[arg(short = 'j', long, default_value_t = 4, value_name = "N", value_parser = crate::cli::parse_count,
          visible_alias = "numParallelCollections")]
    parallel: usize,
    /// Do not build the indexes.
    #[arg(long)]
    no_indexes: bool,
    /// Most oplog operations in one applyOps command.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = crate::cli::parse_count)]
    oplog_batch: usize,
    #[command(flatten)]
    progress: ProgressArgs,
    #[command(flatten)]
    log: crate::cli::LogArgs,
}

const EXAMPLES: &str = "Examples:
  # A cycle (full backup, then its oplog slices) into a server, up to a point in time:
  cat full.tar oplog-1.tar oplog-2.tar | mb-apply --uri mongodb://10.0.0.7:27017 --drop --until 2026-11-24T03:15:00Z
  # Check a stored object end to end without writing anything:
  mb-oss-get --config /etc/mb/shop.conf --key shop/20261124T031500.000000Z/000000-full.tar.zst | mb-pack -d | mb-apply --dry-run
  # Restore one database under another name (mongorestore's --nsFrom/--nsTo work too):
  mb-apply --config restore.conf --ns-from 'shop.$c$' --ns-to 'shop_copy.$c$' full.tar
  # A directory that the official mongorestore --oplogReplay accepts:
  mb-apply --to-dir /tmp/dump full.tar";

/// Runs `mb-apply`.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    args.log.apply();
    if args.ns_from.len() != args.ns_to.len() {
        return Err(usage(format!(
            "--ns-from and --ns-to go in pairs: {} --ns-from, {} --ns-to",
            args.ns_from.len(),
            args.ns_to.len()
        )));
    }
    let until = match (&args.until, &args.oplog_limit) {
        (Some(until), _) => Some(crate::format::records::parse_until(until)),
        (None, Some(limit)) => Some(parse_oplog_limit(limit)),
        (None, None) => None,
    };
    let until = until.transpose().map_err(|e| usage(crate::cli::one_line(&e)))?;
    let ns_map = NsMap::new(&args.ns_include, &args.ns_exclude, &args.ns_from, &args.ns_to)
        .map_err(|e| usage(crate::cli::one_line(&e)))?;
    let input = crate::cli::io::open_input(args.input.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (documents, entries) = match (&args.to_dir, args.dry_run) {
        (Some(_), _) => ("written", "written"),
        (None, true) => ("checked", "checked"),
        (None, false) => ("restored", "replayed"),
    };
    let reporter = Reporter::start(&args.progress, Layout::Apply { documents, entries })?;
    let record = runtime.block_on(async {
        let mut conn = None;
        let target = if let Some(dir) = &args.to_dir {
            Target::Dir(DirTarget::new(dir)?)
        } else if args.dry_run {
            Target::DryRun
        } else {
            let config = crate::settings::config::load_optional(args.connect.config.as_deref())?;
            let server = conn.insert(args.connect.connect_to_write("mb-apply", config.as_ref()).await?);
            Target::Server(server.client.clone())
        };
        let options = ApplyOptions {
            drop: args.drop,
            keep_existing: args.keep_existing,
            oplog_only: args.oplog_only,
            parallel: args.parallel,
            no_indexes: args.no_indexes,
            oplog_batch: args.oplog_batch,
            progress: reporter.progress(),
        };
        let result = apply(&options, target, input, until, ns_map).await;
        if let Some(conn) = conn {
            conn.shutdown().await;
        }
        result
    })?;
    reporter.finish();
    println!("{}", serde_json::to_string(&record)?);
    Ok(())
}

/// `--oplogLimit`: the point just before the one given (mongorestore's limit
/// is exclusive; a time or plain seconds means that second's first entry).
fn parse_oplog_limit(text: &str) -> Result<Ts> {
    let limit: Ts = text.parse().context("bad --oplogLimit")?;
    match (limit.t, limit.i) {
        (0, 0) => Err(usage("--oplogLimit 0 leaves nothing to replay")),
        (t, 0) => Ok(Ts::new(t - 1, u32::MAX)),
        (t, i) => Ok(Ts::new(t, i - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oplog_limit_stops_just_before_its_point() {
        assert_eq!(parse_oplog_limit("1700000000:5").unwrap(), Ts::new(1_700_000_000, 4));
        assert_eq!(parse_oplog_limit("1700000000").unwrap(), Ts::new(1_699_999_999, u32::MAX));
        assert_eq!(parse_oplog_limit("2026-11-24T03:15:00Z").unwrap(), Ts::new(1_795_490_099, u32::MAX));
        assert!(parse_oplog_limit("0").is_err());
    }
}
