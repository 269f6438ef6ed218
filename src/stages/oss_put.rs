//! mb-oss-put: store stdin as one object on Alibaba Cloud OSS (or a directory).
//!
//! ```text
//! Usage:
//!     mb-oss-put --key <key> [options] < stream
//!     mb-oss-put --help
//!
//! Reads stdin to its end, of any size, and stores it under <key>. A stream
//! that fits in one part is one PutObject; a longer one is a multipart upload
//! with a few parts in flight. Every request carries Content-MD5 and is
//! retried with backoff on 5xx answers, timeouts and broken connections. If
//! the upload fails for good, it is aborted: nothing appears under the key.
//! CompleteMultipartUpload is not repeated blindly: a lost answer is settled
//! by HEAD (size and CRC-64). The stored object is checked from the
//! PutObject/Complete answer: its x-oss-hash-crc64ecma must equal the CRC-64
//! of what was read, else the exit status is 3 and the object is deleted if
//! its ETag is still the one this run wrote (never another writer's). An
//! existing key is never replaced without --overwrite (checked first with
//! HEAD, then enforced with x-oss-forbid-overwrite).
//!
//! Part sizes: part n is <part-size> x 2^((n-1)/k), at most 5 GiB, where k
//! (108 for 8 MiB, 61 for 100 KiB) is the largest step that still lets
//! 10,000 parts hold 48.8 TB. Memory: parts are held in memory while
//! (parts in flight + 1) x part size fits 128 MiB; larger parts are staged in
//! an unlinked temporary file in --temp-dir and sent from there, so peak RSS
//! stays under 256 MiB for any stream (temp space: up to (parallel + 1) x
//! the part size). --expected-size picks larger parts from the start.
//!
//! Signals: SIGTERM, SIGINT or SIGHUP during a multipart upload aborts it,
//! then exits 128 + the signal (143, 130, 129).
//!
//! Prints one JSON record on stdout:
//!     {"format":"mb-put/1","bucket":"b","key":"k","size":123,"crc64":456,"etag":"...","parts":1}
//! (crc64: decimal CRC-64/XZ of the bytes; parts: 1 for a simple put;
//! storage_class, sse, sse_key_id only when set).
//!
//! Options:
//!         --key <key>            Object key, e.g. backups/2026-11-24/full.tar.gz.
//!         --overwrite            Replace an existing object.
//!         --allow-empty          Store an empty stdin (an error otherwise).
//!         --part-size <size>     First part size, >= 100KiB [default: 8MiB].
//!         --parallel <n>         Parts uploading at once [default: 4].
//!         --expected-size <size> The stream's approximate size: sizes parts up
//!                                front (a wrong value still works).
//!         --temp-dir <dir>       [env: TMPDIR] Where parts too large for memory
//!                                are staged (unlinked at once).
//!         --storage-class <c>    Standard, IA, Archive or ColdArchive (config
//!                                key storage_class) [default: the bucket's].
//!         --sse <alg>            Server-side encryption AES256, KMS or SM4
//!                                (config key sse).
//!         --sse-key-id <id>      KMS key id with --sse KMS (config sse_key_id).
//!
//! Where (flag > env > config file):
//!         --endpoint <host>      [env: OSS_ENDPOINT] e.g. oss-cn-hangzhou.aliyuncs.com;
//!                                https unless given as http://...
//!         --bucket <name>        [env: OSS_BUCKET]
//!         --region <region>      [env: OSS_REGION] e.g. cn-hangzhou, for V4 signatures;
//!                                derived from oss-<region>[-internal].aliyuncs.com.
//!         --signature-version <1|4>  4 (default) or 1 (old accounts, OSS-compatible
//!                                stores).
//!         --access-key-id <id>   The id of a key pair whose secret is in --config or
//!                                env OSS_ACCESS_KEY_SECRET, never a flag. Otherwise
//!                                keys come from the chain: config, OSS_ACCESS_KEY_*,
//!                                ALIBABA_CLOUD_*, RRSA/OIDC, ~/.alibabacloud/credentials,
//!                                ~/.aliyun/config.json, ALIBABA_CLOUD_CREDENTIALS_URI,
//!                                the ECS RAM role (README: OSS credentials).
//!         --config <file>        Keys endpoint, region, signature_version, bucket,
//!                                accessKeyId, accessKeySecret, securityToken,
//!                                storage_class, sse, sse_key_id.
//!         --store-dir <dir>      [env: MB_STORE_DIR] Store in <dir>/<bucket>/<key>
//!                                instead (temp file, fsync, rename).
//!         --path-style           http(s)://endpoint/bucket/key addressing (automatic
//!                                for IP addresses and localhost).
//!         --attempts <n>         Attempts per request [default: 5].
//!         --timeout <secs>       Seconds without progress before a request is
//!                                retried [default: 60].
//!         --deadline <secs>      Seconds for all attempts of one request, plus
//!                                1 s per MiB sent [default: 600].
//!         --progress <i>         Bytes read, bytes and parts sent, rate on stderr
//!                                every <i> (30s; `off`), a live line on a terminal
//!                                [default: $MB_PROGRESS, else 30s].
//!     -q, --quiet / -v, --verbose (-q: no progress unless --progress)
//!
//! Exit status: 0 stored and verified; 1 failure (network, credentials,
//! missing bucket, empty stdin); 2 usage (bad flag, key or bucket name);
//! 3 the stored object's CRC-64 differs from what was read; 4 the key
//! exists; 128 + signal when interrupted (the upload aborted).
//! ```

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

/// Command-line arguments (see the module docs for the usage text).
#[derive(Parser, Debug)]
#[command(name = "mb-oss-put", about = "Store stdin as one object on Alibaba Cloud OSS, verified by CRC-64")]
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
