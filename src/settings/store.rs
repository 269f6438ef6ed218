//! The store flags both OSS stages take, and opening the store they name.
//!
//! Precedence: flag > env > config file. The secret is never a flag; the
//! credential chain is in [`crate::store::oss::credentials`].

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::usage;
use crate::settings::config::{Config, STORAGE_CLASSES};
use crate::store::oss::credentials::ExplicitKeys;
use crate::store::oss::{Credentials, Endpoint, OssStore, OssTuning, RetryPolicy, SignatureVersion};
use crate::store::{local, validate_bucket, Store};

/// Where to store, as both OSS stages take it. Precedence: flag > env > config.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct StoreArgs {
    /// OSS endpoint, e.g. oss-cn-hangzhou.aliyuncs.com (https unless http:// is given)
    #[arg(long, env = "OSS_ENDPOINT", value_name = "HOST")]
    pub endpoint: Option<String>,
    /// Bucket (a subdirectory with --store-dir)
    #[arg(long, env = "OSS_BUCKET", value_name = "NAME")]
    pub bucket: Option<String>,
    /// AccessKeyId (the secret only from env or --config; see the credential chain)
    #[arg(long, value_name = "ID")]
    pub access_key_id: Option<String>,
    /// Region of the bucket for V4 signatures, e.g. cn-hangzhou (derived from standard endpoints)
    #[arg(long, env = "OSS_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// Signature version: 4 (default) or 1 (old accounts, OSS-compatible stores)
    #[arg(long, value_name = "1|4", value_parser = ["1", "4"])]
    pub signature_version: Option<String>,
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
    /// Opens the store these arguments name, reading --config if given.
    pub(crate) fn open(&self, tuning: OssTuning) -> Result<Box<dyn Store>> {
        let config = crate::settings::config::load_optional(self.config.as_deref())?;
        self.open_with(tuning, config.as_ref())
    }

    /// Opens the store these arguments name, with the config the stage read.
    pub(crate) fn open_with(&self, tuning: OssTuning, config: Option<&Config>) -> Result<Box<dyn Store>> {
        let from_config = |key: &str| config.and_then(|c: &Config| c.get(key)).map(str::to_string);
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
        let version = self.signature_version(&endpoint, &from_config)?;
        let explicit = ExplicitKeys {
            id: self.access_key_id.clone().or_else(|| from_config("accessKeyId")),
            secret: from_config("accessKeySecret"),
            token: from_config("securityToken"),
        };
        let creds = Credentials::chain(explicit, version);
        let retry = RetryPolicy {
            max_attempts: self.attempts,
            idle_timeout: std::time::Duration::from_secs(self.timeout),
            max_elapsed: std::time::Duration::from_secs(self.deadline),
            ..RetryPolicy::default()
        };
        let store = OssStore::new(endpoint, creds, &bucket, retry, tuning)?;
        Ok(Box::new(store))
    }
}

impl StoreArgs {
    /// V4 with the region from --region / env / config, or from a standard
    /// endpoint; V1 if asked for. No region for V4 is a usage error.
    fn signature_version(
        &self,
        endpoint: &Endpoint,
        from_config: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SignatureVersion> {
        let asked = self.signature_version.clone().or_else(|| from_config("signature_version"));
        match asked.as_deref().map(str::trim) {
            None | Some("4") | Some("v4") | Some("V4") => {}
            Some("1") | Some("v1") | Some("V1") => return Ok(SignatureVersion::V1),
            Some(other) => return Err(usage(format!("signature_version {other:?}: expected 1 or 4"))),
        }
        let region = self.region.clone().or_else(|| from_config("region")).filter(|r| !r.trim().is_empty());
        let region = match region {
            Some(region) => region.trim().trim_start_matches("oss-").to_string(),
            None => region_of_endpoint(&endpoint.host).ok_or_else(|| {
                usage(format!(
                    "no region for V4 signatures at endpoint {}: give --region (e.g. cn-hangzhou), env OSS_REGION, or `region` in --config (or --signature-version 1)",
                    endpoint.host
                ))
            })?,
        };
        Ok(SignatureVersion::V4 { region })
    }
}

const SSE_ALGORITHMS: [&str; 3] = ["AES256", "KMS", "SM4"];

/// `mb-oss-put`'s storage class and encryption from flags, else the config
/// file; checked and spelled as OSS spells them.
pub(crate) fn storage_options(
    storage_class: &Option<String>,
    sse: &Option<String>,
    sse_key_id: &Option<String>,
    config: Option<&Config>,
) -> Result<(Option<String>, Option<String>, Option<String>)> {
    let pick = |flag: &Option<String>, key: &str| {
        flag.clone().or_else(|| config.and_then(|c| c.get(key)).map(str::to_string)).filter(|v| !v.is_empty())
    };
    let canonical = |value: Option<String>, allowed: &[&str], what: &str| -> Result<Option<String>> {
        let Some(value) = value else { return Ok(None) };
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(&value)) {
            Some(a) => Ok(Some(a.to_string())),
            None => Err(usage(format!("{what} {value:?}: expected one of {}", allowed.join(", ")))),
        }
    };
    let class = canonical(pick(storage_class, "storage_class"), &STORAGE_CLASSES, "storage class")?;
    let sse = canonical(pick(sse, "sse"), &SSE_ALGORITHMS, "server-side encryption")?;
    let key_id = pick(sse_key_id, "sse_key_id");
    if key_id.is_some() && sse.as_deref() != Some("KMS") {
        return Err(usage("--sse-key-id (sse_key_id) needs --sse KMS (sse = KMS)"));
    }
    Ok((class, sse, key_id))
}

/// `cn-hangzhou` from `oss-cn-hangzhou.aliyuncs.com` or
/// `oss-cn-hangzhou-internal.aliyuncs.com`; `None` for other hosts
/// (`oss-accelerate.aliyuncs.com` serves every region).
pub(crate) fn region_of_endpoint(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let name = host.strip_suffix(".aliyuncs.com")?;
    let name = name.rsplit('.').next()?;
    let region = name.strip_prefix("oss-")?;
    let region = region.strip_suffix("-internal").unwrap_or(region);
    if region.is_empty() || region.starts_with("accelerate") || !region.contains('-') {
        return None;
    }
    Some(region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_from_standard_endpoints() {
        assert_eq!(region_of_endpoint("oss-cn-hangzhou.aliyuncs.com").as_deref(), Some("cn-hangzhou"));
        assert_eq!(region_of_endpoint("oss-cn-hangzhou-internal.aliyuncs.com").as_deref(), Some("cn-hangzhou"));
        assert_eq!(region_of_endpoint("bucket.oss-ap-southeast-1.aliyuncs.com").as_deref(), Some("ap-southeast-1"));
        assert_eq!(region_of_endpoint("OSS-US-WEST-1.ALIYUNCS.COM").as_deref(), Some("us-west-1"));
        assert_eq!(region_of_endpoint("oss-accelerate.aliyuncs.com"), None);
        assert_eq!(region_of_endpoint("oss-accelerate-overseas.aliyuncs.com"), None);
        assert_eq!(region_of_endpoint("127.0.0.1:9000"), None);
        assert_eq!(region_of_endpoint("minio.example.com"), None);
    }
}
