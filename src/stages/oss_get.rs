//! `mb-oss-get`: read an object from Alibaba Cloud OSS (or a directory) to
//! stdout, verified by CRC-64. Its help text is on `Args`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

use crate::cli::io::AtomicFile;
use crate::cli::progress::{Layout, Progress, ProgressArgs, Reporter};
use crate::cli::usage;
use crate::crc64::Crc64;
use crate::format::records::PutRecord;
use crate::mongo::ns::NsMap;
use crate::settings::store::StoreArgs;
use crate::store::{ByteRange, OssTuning, Store};

mod fetch;
mod ranged;
mod select;

/// Read an object from Alibaba Cloud OSS to stdout, verified by CRC-64.
///
/// Streams the object to stdout (or --output). If the connection breaks, it
/// resumes with a Range request from the byte it reached, pinned to the
/// object's ETag. At the end it checks the length and, for the whole object,
/// the CRC-64 against x-oss-hash-crc64ecma; a mismatch exits 3. Bytes already
/// written to stdout cannot be taken back: trust the exit status, or use
/// --output, which writes a temp file and renames it only once verified. A
/// --range is checked by length only (the CRC-64 is the whole object's),
/// unless it covers the whole object.
///
/// With --ns-include/--ns-exclude (mongorestore's patterns, as mb-apply
/// takes them), of a seekable object only the blocks a restore of those
/// namespaces reads: the header, those collections, the oplog and the
/// manifest, with one ranged GET per run of adjacent blocks. Each block is
/// checked against the CRC-64 its block index gives before any of it is
/// written, and the object's size against --check-put; the output is a valid
/// zstd stream that mb-pack -d and mb-apply read. An encrypted object is
/// decrypted with --identity on the way (age's 64 KiB chunks around the
/// blocks are read), and the blocks go out decrypted. It says how many
/// bytes it read. An object without a block index is read whole (as stored),
/// with a warning.
///
/// --head prints {"key","size","crc64","etag","last_modified"}; --list prints
/// one {"key","size","etag","last_modified"} line per object under PREFIX,
/// every page. --restore issues RestoreObject for an Archive/ColdArchive
/// object, waits for it (polled every $MB_RESTORE_POLL_SECS, default 30), then
/// reads it; without it such an object fails with one line saying how to
/// restore it.
///
/// The store flags and their env variables are as for mb-oss-put (a flag wins
/// over env, env over the config file; the secret comes only from the config
/// file, the environment or the credential chain).
///
/// Exit status: 0 success; 1 failure (network, credentials, missing bucket or
/// key, archived object not restored); 2 usage (bad flag, key or bucket name);
/// 3 the bytes read fail the length or CRC-64 check.
#[derive(Parser, Debug)]
#[command(name = "mb-oss-get", after_help = EXAMPLES)]
pub(crate) struct Args {
    /// Object key
    #[arg(long, value_name = "KEY", required_unless_present = "list")]
    pub key: Option<String>,
    /// Only these bytes: START-END (inclusive) or START-
    #[arg(long, value_name = "START-END", conflicts_with_all = ["head", "list"])]
    pub range: Option<ByteRange>,
    /// Write to FILE (verified before it appears) instead of stdout
    #[arg(short, long, value_name = "FILE", conflicts_with_all = ["head", "list"])]
    pub output: Option<PathBuf>,
    /// Print the object's size, CRC-64 and ETag as one JSON line
    #[arg(long, conflicts_with = "list")]
    pub head: bool,
    /// List objects under PREFIX as JSON lines
    #[arg(long, value_name = "PREFIX", conflicts_with = "key")]
    pub list: Option<String>,
    /// Check the bytes against this put record (key, size, CRC-64)
    #[arg(long, value_name = "RECORD", conflicts_with_all = ["head", "list", "range"])]
    pub check_put: Option<PathBuf>,
    /// Only the blocks a restore of namespaces matching PATTERN reads (a
    /// seekable object: mb-pack --seekable); repeatable
    #[arg(long, value_name = "PATTERN", visible_alias = "nsInclude", conflicts_with_all = ["head", "list", "range"])]
    pub ns_include: Vec<String>,
    /// Leave out the blocks of namespaces matching PATTERN; repeatable
    #[arg(long, value_name = "PATTERN", visible_alias = "nsExclude", conflicts_with_all = ["head", "list", "range"])]
    pub ns_exclude: Vec<String>,
    /// With --ns-include/--ns-exclude: decrypt an encrypted object with this
    /// age identity file, to read only its blocks; repeatable
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Restore an Archive/ColdArchive object first and wait for it
    #[arg(long, conflicts_with_all = ["head", "list"])]
    pub restore: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub log: crate::cli::LogArgs,
}

#[derive(Serialize)]
struct ListLine<'a> {
    key: &'a str,
    size: u64,
    etag: Option<&'a str>,
    last_modified: Option<&'a str>,
}

#[derive(Serialize)]
struct HeadLine<'a> {
    key: &'a str,
    size: u64,
    crc64: Option<u64>,
    etag: Option<&'a str>,
    last_modified: Option<&'a str>,
}

const EXAMPLES: &str = "Examples:
  # An object to a file, renamed into place only once its CRC-64 matched:
  mb-oss-get --config /etc/mb/shop.conf --key shop/20261124T031500.000000Z/000000-full.tar.zst -o full.tar.zst
  # Every object under a prefix, as JSON lines:
  mb-oss-get --config /etc/mb/shop.conf --list shop/
  # Of a seekable full backup, only what restoring shop.orders needs:
  mb-oss-get --config /etc/mb/shop.conf --key shop/20261124T031500.000000Z/000000-full.tar.zst --ns-include shop.orders
  # Size, CRC-64 and ETag of one object, from a local directory store:
  mb-oss-get --store-dir /var/backups/mb/store --bucket backups --key shop/x.tar.zst --head";

/// Runs mb-oss-get.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    args.log.apply();
    if let Some(key) = &args.key {
        crate::store::validate_key(key)?;
    }
    let store = args.store.open(OssTuning::default())?;
    let stdout = io::stdout();
    if let Some(prefix) = &args.list {
        let entries = store.list(prefix).with_context(|| format!("listing {prefix:?} in {}", store.location()))?;
        let mut out = io::BufWriter::new(stdout.lock());
        for e in &entries {
            let line = ListLine {
                key: &e.key,
                size: e.size,
                etag: e.etag.as_deref(),
                last_modified: e.last_modified.as_deref(),
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        }
        return out.flush().context("writing stdout");
    }
    let key = args.key.as_deref().context("--key is required")?;
    if args.restore {
        store.restore(key, &mut |line| crate::info!("{line}"))?;
    }
    if args.head {
        let meta = store.head(key)?.ok_or_else(|| crate::store::not_found(&store.location(), key))?;
        let line = HeadLine {
            key,
            size: meta.size,
            crc64: meta.crc64,
            etag: meta.etag.as_deref(),
            last_modified: meta.last_modified.as_deref(),
        };
        println!("{}", serde_json::to_string(&line)?);
        return Ok(());
    }
    let expected = args.check_put.as_deref().map(read_put_record).transpose()?;
    let expected = expected.as_ref();
    let selection = if args.ns_include.is_empty() && args.ns_exclude.is_empty() {
        if !args.identity.is_empty() {
            return Err(usage(
                "--identity decrypts what --ns-include/--ns-exclude select; mb-crypt -d decrypts a whole object",
            ));
        }
        None
    } else {
        Some(NsMap::new(&args.ns_include, &args.ns_exclude, &[], &[]).map_err(|e| usage(crate::cli::one_line(&e)))?)
    };
    let reporter = Reporter::start(&args.progress, Layout::Get)?;
    let progress = reporter.progress();
    let fetch = |out: &mut dyn Write| match &selection {
        Some(wanted) => select::download_selected(&*store, key, wanted, &args.identity, out, expected, &progress),
        None => download(&*store, key, args.range, out, expected, &progress),
    };
    match &args.output {
        Some(path) if path.as_os_str() != "-" => to_file(path, fetch)?,
        _ => {
            let mut out = stdout.lock();
            fetch(&mut out)?;
            out.flush().context("writing stdout")?
        }
    }
    reporter.finish();
    Ok(())
}

fn read_put_record(path: &Path) -> Result<PutRecord> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    crate::format::records::read_json(file, "the put record")
}

/// Copies the object (or range) to `out`, then checks length and CRC-64
/// (and against the put record, if given).
fn download(
    store: &dyn Store,
    key: &str,
    range: Option<ByteRange>,
    out: &mut dyn Write,
    expected: Option<&PutRecord>,
    progress: &Progress,
) -> Result<()> {
    if let Some(put) = expected.filter(|put| put.key != key) {
        return Err(crate::cli::integrity(format!("{key:?}: its put record names another object, {:?}", put.key)));
    }
    let mut object = store.get(key, range).with_context(|| format!("reading {key:?} from {}", store.location()))?;
    let whole = object.start == 0 && object.len == object.meta.size;
    progress.set_total(object.len);
    let received = progress.input();
    let mut crc = Crc64::new();
    let mut count: u64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match object.reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {key:?} from {}", store.location())),
        };
        if whole {
            crc.update(&buf[..n]);
        }
        count += n as u64;
        received.add(1, n as u64);
        out.write_all(&buf[..n]).context("writing the output")?;
    }
    if count != object.len {
        return Err(crate::cli::integrity(format!("{key:?}: got {count} bytes, expected {}", object.len)));
    }
    if whole {
        let expected = match object.meta.crc64 {
            Some(crc) => Some(crc),
            None => store.head(key)?.and_then(|m| m.crc64),
        };
        match expected {
            Some(expected) if expected != crc.finish() => {
                return Err(crate::cli::integrity(format!(
                    "{key:?}: CRC-64 of the bytes read is {} but the object's x-oss-hash-crc64ecma is {expected}",
                    crc.finish()
                )));
            }
            Some(_) => {}
            None => {
                crate::warn!("{key:?}: the store gave no CRC-64; only the length was checked");
            }
        }
    }
    if let Some(put) = expected {
        if (count, crc.finish()) != (put.size, put.crc64) {
            return Err(crate::cli::integrity(format!(
                "{key:?}: read {count} bytes with CRC-64 {} but its put record says {} bytes with CRC-64 {}",
                crc.finish(),
                put.size,
                put.crc64
            )));
        }
    }
    crate::debug!("read {} bytes of {key:?}", object.len);
    Ok(())
}

/// `--output FILE`: what `fetch` writes appears at FILE only once complete and checked.
fn to_file(path: &Path, fetch: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let name = path.file_name().context("--output needs a file name")?.to_string_lossy().into_owned();
    let mut file = AtomicFile::create(path, &format!(".{name}.mb-tmp-"))?;
    let mut out = io::BufWriter::with_capacity(1 << 20, file.file());
    fetch(&mut out)?;
    out.flush().context("writing the output")?;
    drop(out);
    file.commit()
}
