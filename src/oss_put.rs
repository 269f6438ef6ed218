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
//! At the end the stored object is checked with HEAD: its size and
//! x-oss-hash-crc64ecma must equal what was read, else it is deleted and the
//! exit status is 3. An existing key is never replaced without --overwrite
//! (checked first with HEAD, then enforced with x-oss-forbid-overwrite).
//!
//! Part sizes: part n is <part-size> x 2^((n-1)/k), at most 5 GiB, where k
//! (108 for 8 MiB, 61 for 100 KiB) is the largest step that still lets
//! 10,000 parts hold 48.8 TB. Memory: about (parallel + 1) x the current part
//! size, and parts in flight are limited to 1 GiB once parts get large.
//!
//! Prints one JSON record on stdout:
//!     {"format":"mb-put/1","bucket":"b","key":"k","size":123,"crc64":456,"etag":"...","parts":1}
//! (crc64: decimal CRC-64/XZ of the bytes; parts: 1 for a simple put).
//!
//! Options:
//!         --key <key>            Object key, e.g. backups/2026-11-24/full.tar.gz.
//!         --overwrite            Replace an existing object.
//!         --allow-empty          Store an empty stdin (an error otherwise).
//!         --part-size <size>     First part size, >= 100KiB [default: 8MiB].
//!         --parallel <n>         Parts uploading at once [default: 4].
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
//!                                accessKeyId, accessKeySecret, securityToken.
//!         --store-dir <dir>      [env: MB_STORE_DIR] Store in <dir>/<bucket>/<key>
//!                                instead (temp file, fsync, rename).
//!         --path-style           http(s)://endpoint/bucket/key addressing (automatic
//!                                for IP addresses and localhost).
//!         --attempts <n>         Attempts per request [default: 5].
//!         --timeout <secs>       Seconds without progress before a request is
//!                                retried [default: 60].
//!     -q, --quiet / -v, --verbose
//!
//! Exit status: 0 stored and verified; 1 failure (network, credentials,
//! missing bucket, empty stdin); 2 usage; 3 the stored object's size or
//! CRC-64 differs from what was read (it was deleted); 4 the key exists.
//! ```

use std::io::{BufRead, BufReader, Read};

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

use crate::store::oss::parts::MIN_PART;
use crate::store::{OssTuning, PutOptions, StoreArgs};

/// Command-line arguments (see the module docs for the usage text).
#[derive(Parser, Debug)]
#[command(name = "mb-oss-put", about = "Store stdin as one object on Alibaba Cloud OSS, verified by CRC-64")]
pub struct Args {
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
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = crate::parse_size)]
    pub part_size: u64,
    /// Parts uploading at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub parallel: u64,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub log: crate::cli::LogArgs,
}

/// The record printed on success (`docs/FORMAT.md`, `mb-put/1`).
#[derive(Serialize, Debug)]
pub struct PutRecord {
    /// Always [`crate::record::PUT_FORMAT`].
    pub format: &'static str,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Bytes stored.
    pub size: u64,
    /// CRC-64/XZ (= x-oss-hash-crc64ecma), decimal.
    pub crc64: u64,
    /// ETag of the stored object (null if the backend has none).
    pub etag: Option<String>,
    /// 1 for a simple put, else the number of parts.
    pub parts: u32,
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
    let tuning = OssTuning { part_size: args.part_size, parallel: args.parallel as usize };
    let store = args.store.open(tuning)?;
    let mut stdin = BufReader::with_capacity(1 << 20, std::io::stdin().lock());
    if stdin.fill_buf().context("reading stdin")?.is_empty() && !args.allow_empty {
        anyhow::bail!("stdin is empty; refusing to store an empty object as {:?} (use --allow-empty)", args.key);
    }
    let key = &args.key;
    let put = store
        .put(key, &mut stdin as &mut dyn Read, &PutOptions { overwrite: args.overwrite })
        .with_context(|| format!("storing {key:?} in {}", store.location()))?;
    let head = store.head(key).with_context(|| format!("checking {key:?} in {}", store.location()))?;
    let problem = match &head {
        None => Some("it is missing after the upload".to_string()),
        Some(head) if head.size != put.size => Some(format!("it holds {} bytes but {} were read", head.size, put.size)),
        Some(head) => match head.crc64 {
            None => Some("the store did not report its CRC-64 (x-oss-hash-crc64ecma)".to_string()),
            Some(crc) if crc != put.crc64 => Some(format!("its CRC-64 is {crc} but the bytes read have {}", put.crc64)),
            Some(_) => None,
        },
    };
    if let Some(problem) = problem {
        // This run created the object; a copy that fails its check must not
        // be trusted later, so remove it.
        let removed = match store.delete(key) {
            Ok(()) => "it was deleted".to_string(),
            Err(err) => format!("deleting it failed too: {}", crate::cli::one_line(&err)),
        };
        return Err(crate::cli::integrity(format!("stored object {key:?} failed verification: {problem}; {removed}")));
    }
    let record = PutRecord {
        format: crate::record::PUT_FORMAT,
        bucket: store.bucket().to_string(),
        key: key.clone(),
        size: put.size,
        crc64: put.crc64,
        etag: head.and_then(|h| h.etag).or(put.etag),
        parts: put.parts,
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

fn usage(message: String) -> anyhow::Error {
    crate::cli::Failure { code: crate::cli::EXIT_USAGE, message }.into()
}
