//! `mb-oss-put`: store stdin as one object on Alibaba Cloud OSS (or a
//! directory), verified by CRC-64. Its help text is on `Args`.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::progress::{Counted, Layout, ProgressArgs, Reporter};
use crate::cli::usage;
use crate::format::records::{PutRecord, PUT_FORMAT};
use crate::settings::config::load_optional;
use crate::settings::store::{storage_options, StoreArgs};
use crate::store::oss::parts::MIN_PART;
use crate::store::{OssTuning, PutOptions, PutResult, Store};

/// Store stdin as one object on Alibaba Cloud OSS, verified by CRC-64.
///
/// Reads stdin to its end, of any size, and stores it under --key. A stream
/// that fits in one part is one PutObject; a longer one is a multipart upload
/// with a few parts in flight. Every request carries Content-MD5 and is
/// retried with backoff on 5xx answers, timeouts and broken connections. If
/// the upload fails for good, it is aborted: nothing appears under the key.
/// A lost CompleteMultipartUpload answer is settled by HEAD (size and
/// CRC-64). The stored object's x-oss-hash-crc64ecma must equal the CRC-64 of
/// what was read, else exit 3 and the object is deleted if its ETag is still
/// the one this run wrote. An existing key is never replaced without
/// --overwrite (checked with HEAD, then enforced with x-oss-forbid-overwrite).
///
/// Part n is --part-size x 2^((n-1)/k), at most 5GiB, where k (108 for 8MiB,
/// 61 for 100KiB) is the largest step that still lets 10,000 parts hold
/// 48.8TiB. Parts are held in memory while (parts in flight + 1) x part size
/// fits 128MiB; larger parts are staged in an unlinked temporary file in
/// --temp-dir, so peak memory stays under 256MiB for any stream.
/// SIGTERM, SIGINT or SIGHUP during a multipart upload aborts it, then exits
/// 128 + the signal.
///
/// Prints one JSON record on stdout:
/// {"format":"mb-put/1","bucket":"b","key":"k","size":123,"crc64":456,"etag":"...","parts":1}
/// (crc64: decimal CRC-64/XZ; storage_class, sse, sse_key_id only when set).
///
/// Where (a flag wins over env, env over the --config file): the credentials
/// come from the config file (accessKeyId, accessKeySecret, securityToken),
/// else OSS_ACCESS_KEY_*, ALIBABA_CLOUD_*, RRSA/OIDC,
/// ~/.alibabacloud/credentials, ~/.aliyun/config.json,
/// ALIBABA_CLOUD_CREDENTIALS_URI, the ECS RAM role; a secret is never a flag.
///
/// Exit status: 0 stored and verified; 1 failure (network, credentials,
/// missing bucket, empty stdin); 2 usage (bad flag, key or bucket name); 3 the
/// stored object's CRC-64 differs from what was read; 4 the key exists; 128 +
/// signal when interrupted (the upload aborted).
#[derive(Parser, Debug)]
#[command(name = "mb-oss-put", after_help = EXAMPLES)]
pub(crate) struct Args {
    /// Object key
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// Replace an existing object
    #[arg(long)]
    pub overwrite: bool,
    /// Store an empty stdin instead of failing
    #[arg(long)]
    pub allow_empty: bool,
    /// First part size (grows with the stream), at least 100KiB
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = crate::cli::parse_size)]
    pub part_size: u64,
    /// Parts uploading at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub parallel: u64,
    /// The stream's approximate size: sizes parts up front
    #[arg(long, value_name = "SIZE", value_parser = crate::cli::parse_size)]
    pub expected_size: Option<u64>,
    /// Where parts too large for memory are staged [default: $TMPDIR]
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
    /// Storage class: Standard, IA, Archive or ColdArchive
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Server-side encryption: AES256, KMS or SM4
    #[arg(long, value_name = "ALG")]
    pub sse: Option<String>,
    /// KMS key id for --sse KMS
    #[arg(long, value_name = "ID")]
    pub sse_key_id: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub log: crate::cli::LogArgs,
}

const EXAMPLES: &str = "Examples:
  # A file to a bucket, keys from the config file (0600):
  mb-oss-put --config /etc/mb/shop.conf --key shop/manual/full.tar.zst < full.tar.zst
  # A pipeline of unknown size to an Infrequent Access object, sizing parts for about 200GiB:
  mb-dump --db shop | mb-pack | mb-oss-put --config /etc/mb/shop.conf --key shop/big.tar.zst --storage-class IA --expected-size 200GiB
  # A local directory store instead of OSS (no credentials):
  mb-oss-put --store-dir /var/backups/mb/store --bucket backups --key test/hello.txt < hello.txt";

/// Runs mb-oss-put.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    args.log.apply();
    if args.part_size < MIN_PART {
        return Err(usage(format!(
            "--part-size must be at least 100KiB (OSS's smallest part), not {} bytes",
            args.part_size
        )));
    }
    crate::store::validate_key(&args.key)?;
    let config = load_optional(args.store.config.as_deref())?;
    let (storage_class, sse, sse_key_id) =
        storage_options(&args.storage_class, &args.sse, &args.sse_key_id, config.as_ref())?;
    let reporter = Reporter::start(&args.progress, Layout::Put { parts: args.store.store_dir.is_none() })?;
    let tuning = OssTuning {
        part_size: args.part_size,
        parallel: args.parallel as usize,
        expected_size: args.expected_size,
        temp_dir: args.temp_dir.clone().unwrap_or_else(std::env::temp_dir),
        progress: reporter.progress(),
    };
    let store = args.store.open_with(tuning, config.as_ref())?;
    let stdin = Counted::new(std::io::stdin().lock(), reporter.progress().input());
    let mut stdin = BufReader::with_capacity(1 << 20, stdin);
    if stdin.fill_buf().context("reading stdin")?.is_empty() && !args.allow_empty {
        anyhow::bail!("stdin is empty; refusing to store an empty object as {:?} (use --allow-empty)", args.key);
    }
    let encryption = crate::pack::age::is_age(stdin.buffer()).then(|| "age".to_string());
    let key = &args.key;
    let options = PutOptions {
        overwrite: args.overwrite,
        storage_class: storage_class.clone(),
        sse: sse.clone(),
        sse_key_id: sse_key_id.clone(),
    };
    let put = store
        .put(key, &mut stdin as &mut dyn Read, &options)
        .with_context(|| format!("storing {key:?} in {}", store.location()))?;
    if put.stored_crc64.is_none() {
        verify_by_head(&*store, key, &put)?;
    }
    reporter.finish();
    let record = PutRecord {
        format: PUT_FORMAT.into(),
        bucket: store.bucket().to_string(),
        key: key.clone(),
        size: put.size,
        crc64: put.crc64,
        etag: put.etag,
        parts: put.parts,
        storage_class,
        sse,
        sse_key_id,
        encryption,
    };
    crate::info!(
        "stored {} bytes as {}/{} in {} part(s), CRC-64 {}",
        record.size,
        store.location(),
        key,
        record.parts,
        record.crc64
    );
    println!("{}", serde_json::to_string(&record)?);
    Ok(())
}

/// For a store whose put answer had no CRC-64: HEAD the object. Another
/// writer's object (a different ETag) is neither trusted nor deleted.
fn verify_by_head(store: &dyn Store, key: &str, put: &PutResult) -> Result<()> {
    let head = store.head(key).with_context(|| format!("checking {key:?} in {}", store.location()))?;
    let head = match head {
        Some(head) if put.etag.is_none() || head.etag == put.etag => head,
        _ => {
            anyhow::bail!(
                "stored object {key:?} could not be verified: another writer replaced or removed it meanwhile"
            )
        }
    };
    let problem = if head.size != put.size {
        format!("it holds {} bytes but {} were read", head.size, put.size)
    } else {
        match head.crc64 {
            None => "the store did not report its CRC-64 (x-oss-hash-crc64ecma)".to_string(),
            Some(crc) if crc != put.crc64 => format!("its CRC-64 is {crc} but the bytes read have {}", put.crc64),
            Some(_) => return Ok(()),
        }
    };
    // Ours (same ETag) and wrong: remove it so nobody trusts it later.
    let removed = match store.delete(key) {
        Ok(()) => "it was deleted".to_string(),
        Err(err) => format!("deleting it failed too: {}", crate::cli::one_line(&err)),
    };
    Err(crate::cli::integrity(format!("stored object {key:?} failed verification: {problem}; {removed}")))
}
