//! The store flags both OSS stages take, and opening the store they name.
//!
//! Precedence: flag > env > config file. The secret is never a flag.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::oss::{Credentials, Endpoint, OssStore, OssTuning, RetryPolicy};
use super::{local, validate_bucket, Store};
use crate::config::Config;

/// Where to store, as both OSS stages take it. Precedence: flag > env > config.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StoreArgs {
    /// OSS endpoint, e.g. oss-cn-hangzhou.aliyuncs.com (https unless http:// is given)
    #[arg(long, env = "OSS_ENDPOINT", value_name = "HOST")]
    pub endpoint: Option<String>,
    /// Bucket (a subdirectory with --store-dir)
    #[arg(long, env = "OSS_BUCKET", value_name = "NAME")]
    pub bucket: Option<String>,
    /// AccessKeyId (the secret only from env OSS_ACCESS_KEY_SECRET or --config)
    #[arg(long, env = "OSS_ACCESS_KEY_ID", value_name = "ID")]
    pub access_key_id: Option<String>,
    /// Config file with endpoint, accessKeyId, accessKeySecret, bucket
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store in `DIR/<bucket>/<key>` instead of OSS (no credentials needed)
    #[arg(long, env = "MB_STORE_DIR", value_name = "DIR")]
    pub store_dir: Option<PathBuf>,
    /// Address buckets as http(s)://endpoint/bucket/key (automatic for IPs and localhost)
    #[arg(long)]
    pub path_style: bool,
    /// Attempts per OSS request before giving up
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    /// Seconds without progress before an OSS request counts as failed
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Seconds all attempts of one OSS request may take together (plus 1 s per MiB sent)
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline: u64,
}

impl StoreArgs {
    /// Opens the store these arguments name.
    pub fn open(&self, tuning: OssTuning) -> Result<Box<dyn Store>> {
        let config = crate::config::load_optional(self.config.as_deref())?;
        let from_config = |key: &str| config.as_ref().and_then(|c: &Config| c.get(key)).map(str::to_string);
        let bucket = self
            .bucket
            .clone()
            .or_else(|| from_config("bucket"))
            .context("no bucket: give --bucket, env OSS_BUCKET, or `bucket` in --config")?;
        validate_bucket(&bucket)?;
        if let Some(dir) = &self.store_dir {
            return Ok(Box::new(local::LocalStore::new(dir, &bucket)?));
        }
        let endpoint = self.endpoint.clone().or_else(|| from_config("endpoint")).context("no endpoint: give --endpoint, env OSS_ENDPOINT, or `endpoint` in --config (or --store-dir for a local directory)")?;
        let endpoint = Endpoint::parse(&endpoint, self.path_style)?;
        let id = self
            .access_key_id
            .clone()
            .or_else(|| from_config("accessKeyId"))
            .context("no AccessKeyId: set env OSS_ACCESS_KEY_ID or `accessKeyId` in --config")?;
        let secret = non_empty_env("OSS_ACCESS_KEY_SECRET").or_else(|| from_config("accessKeySecret")).context(
            "no AccessKeySecret: set env OSS_ACCESS_KEY_SECRET or `accessKeySecret` in --config (never a flag)",
        )?;
        let token = non_empty_env("OSS_SESSION_TOKEN").or_else(|| from_config("securityToken"));
        let retry = RetryPolicy {
            max_attempts: self.attempts,
            idle_timeout: std::time::Duration::from_secs(self.timeout),
            max_elapsed: std::time::Duration::from_secs(self.deadline),
            ..RetryPolicy::default()
        };
        let store = OssStore::new(endpoint, Credentials::new(id, secret, token), &bucket, retry, tuning)?;
        Ok(Box::new(store))
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
