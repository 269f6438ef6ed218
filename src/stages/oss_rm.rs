//! `mb-oss-rm`: delete objects under one prefix from Alibaba Cloud OSS (or a
//! directory store). Its help text is on `Args`.

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

use crate::cli::usage;
use crate::format::records::MARKER_SUFFIX;
use crate::settings::store::StoreArgs;
use crate::store::OssTuning;

/// Delete objects under a prefix from Alibaba Cloud OSS.
///
/// Deletes each --key. A key that does not start with --prefix (or is the
/// prefix itself) is refused before anything is deleted (exit 2): a script's
/// mistake cannot reach another chain's objects. Deleting a missing key is
/// not an error. Prints one line per key: {"key":"...","deleted":true|false}.
///
/// --if-unmarked deletes a key only if it exists and has no commit marker
/// (KEY.done): an object without one was never committed (a failed or killed
/// run stored it), so it is never restored and may go; a committed object is
/// kept. mb-backup uses this to remove what a failing run stored.
///
/// --prune deletes what retention says, in this order: with --keep-cycles N,
/// every cycle older than the newest N complete cycles (markers first, then
/// objects), except the checkpoint's cycle (--state); then objects without a
/// commit marker and multipart uploads older than --min-age seconds. With
/// --scan-record FILE (as mb-backup runs it), the whole listing that finds
/// objects without a marker runs at most once per --min-age; other prunes
/// list each cycle's first keys. --dry-run deletes nothing. One line per step:
/// {"key":"...","deleted":true|false,"reason":"..."}.
///
/// The store flags are as for mb-oss-put (same env variables).
///
/// Exit status: 0 done; 1 failure (network, credentials); 2 usage (a key
/// outside the prefix).
#[derive(Parser, Debug)]
#[command(name = "mb-oss-rm", after_help = EXAMPLES)]
pub(crate) struct Args {
    /// Only keys under this prefix may be deleted
    #[arg(long, value_name = "PREFIX")]
    pub prefix: String,
    /// Object key to delete (repeatable)
    #[arg(long, value_name = "KEY", required_unless_present = "prune")]
    pub key: Vec<String>,
    /// Delete a key only if it has no commit marker (`KEY.done`)
    #[arg(long)]
    pub if_unmarked: bool,
    #[command(flatten)]
    pub prune: crate::chain::retention::PruneArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub log: crate::cli::LogArgs,
}

#[derive(Serialize)]
struct RmLine<'a> {
    key: &'a str,
    deleted: bool,
}

const EXAMPLES: &str = "Examples:
  # Delete two objects of a chain (and nothing outside shop/):
  mb-oss-rm --config /etc/mb/shop.conf --prefix shop/ --key shop/a.tar.zst --key shop/a.tar.zst.done
  # What retention would delete, keeping the newest 4 complete cycles:
  mb-oss-rm --config /etc/mb/shop.conf --prefix shop/ --prune --keep-cycles 4 --state /var/backups/mb/state.json --dry-run";

/// Runs mb-oss-rm.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    args.log.apply();
    if args.prefix.is_empty() {
        return Err(usage("--prefix must not be empty"));
    }
    if let Some(outside) = args.key.iter().find(|k| !k.starts_with(&args.prefix) || k.len() == args.prefix.len()) {
        return Err(usage(format!("key {outside:?} is not under --prefix {:?}; nothing deleted", args.prefix)));
    }
    let store = args.store.open(OssTuning::default())?;
    if args.prune.prune {
        return crate::chain::retention::run(store.as_ref(), &args.prefix, &args.prune);
    }
    for key in &args.key {
        let head = |key: &str| {
            store.head(key).with_context(|| format!("looking for {key:?} in {}", store.location())).map(|m| m.is_some())
        };
        // --if-unmarked runs before every backup's put: a missing key costs
        // one HEAD and no DELETE (a put-only credential still works).
        let keep = if !args.if_unmarked {
            None
        } else if !head(key)? {
            Some("it does not exist")
        } else if head(&format!("{key}{MARKER_SUFFIX}"))? {
            Some("it has a commit marker")
        } else {
            None
        };
        match keep {
            Some(why) => crate::debug!("kept {key}: {why}"),
            None => {
                store.delete(key).with_context(|| format!("deleting {key:?} from {}", store.location()))?;
                crate::info!("deleted {key} from {}", store.location());
            }
        }
        println!("{}", serde_json::to_string(&RmLine { key, deleted: keep.is_none() })?);
    }
    Ok(())
}
