//! Where OSS credentials come from, and keeping temporary ones fresh.
//!
//! The sources, tried in this order (Alibaba's credentials SDKs' default
//! chain, with the explicit and OSS-specific ones first): the config file's
//! `accessKeyId`/`accessKeySecret`/`securityToken`; env `OSS_ACCESS_KEY_ID`/
//! `OSS_ACCESS_KEY_SECRET`/`OSS_SESSION_TOKEN`; env `ALIBABA_CLOUD_ACCESS_KEY_ID`/
//! `ALIBABA_CLOUD_ACCESS_KEY_SECRET`/`ALIBABA_CLOUD_SECURITY_TOKEN`; RRSA/OIDC
//! (STS AssumeRoleWithOIDC); `~/.alibabacloud/credentials`; `~/.aliyun/config.json`;
//! `ALIBABA_CLOUD_CREDENTIALS_URI`; the ECS RAM role from the metadata service.
//! The network and file sources are `reqsign-aliyun-oss`'s providers, driven
//! through our reqwest client. Every request asks [`Credentials::current`],
//! which reloads temporary credentials two minutes before they expire, so an
//! upload that outlives its STS token signs its later parts with fresh ones.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use reqsign_aliyun_oss::{
    AssumeRoleWithOidcCredentialProvider, ConfigFileCredentialProvider, Credential, CredentialsFileCredentialProvider,
    CredentialsUriCredentialProvider, EcsRamRoleCredentialProvider,
};
use reqsign_core::{Context, OsEnv, ProvideCredentialDyn, SigningCredential};

use super::sign::SignatureVersion;

/// For tests only: the ECS metadata service's base URL instead of
/// `http://100.100.100.200` (the suite plays that service on loopback).
pub const TEST_ECS_METADATA_ENDPOINT_ENV: &str = "MB_TEST_ONLY_ECS_METADATA_ENDPOINT";

enum Source {
    /// Keys known up front (`None`: this source is not set).
    Fixed(Option<Credential>),
    Provider(Box<dyn ProvideCredentialDyn<Credential = Credential>>),
}

struct Inner {
    ctx: Context,
    sources: Vec<(&'static str, Source)>,
    version: SignatureVersion,
    cache: tokio::sync::Mutex<Option<(Credential, &'static str)>>,
}

/// The credential chain and the signature version: what signs requests.
/// Clones share the cache. The secret never leaves it except into an HMAC.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.inner.sources.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Credentials").field("sources", &names).field("version", &self.inner.version).finish()
    }
}

/// Keys given explicitly (config file, or `--access-key-id` with a secret).
#[derive(Clone, Default)]
pub struct ExplicitKeys {
    /// AccessKeyId from `--access-key-id` or the config file.
    pub id: Option<String>,
    /// `accessKeySecret` from the config file.
    pub secret: Option<String>,
    /// `securityToken` from the config file.
    pub token: Option<String>,
}

fn fixed(id: String, secret: String, token: Option<String>) -> Credential {
    Credential {
        access_key_id: id,
        access_key_secret: secret,
        security_token: token.filter(|t| !t.is_empty()),
        expires_in: None,
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Credentials {
    /// One fixed key pair (and STS token), signing with `version`.
    pub fn fixed(id: &str, secret: &str, token: Option<String>, version: SignatureVersion) -> Credentials {
        Self::from_sources(vec![("static keys", Source::Fixed(Some(fixed(id.into(), secret.into(), token))))], version)
    }

    /// One fixed key pair signing with V1, as before V4 (kept for callers
    /// that predate [`Credentials::fixed`]).
    pub fn new(id: impl Into<String>, secret: impl Into<String>, token: Option<String>) -> Credentials {
        Self::fixed(&id.into(), &secret.into(), token, SignatureVersion::V1)
    }

    /// The whole chain (see the module doc), signing with `version`.
    pub fn chain(explicit: ExplicitKeys, version: SignatureVersion) -> Credentials {
        let mut sources: Vec<(&'static str, Source)> = Vec::new();
        // A secret in the config may pair with an id from env, as before the chain.
        let config_id = explicit.id.clone().or_else(|| env("OSS_ACCESS_KEY_ID"));
        let config_keys = match (config_id, explicit.secret.filter(|s| !s.is_empty())) {
            (Some(id), Some(secret)) => Some(fixed(id, secret, explicit.token)),
            _ => None,
        };
        sources.push(("config accessKeyId/accessKeySecret", Source::Fixed(config_keys)));
        let oss_id = explicit.id.or_else(|| env("OSS_ACCESS_KEY_ID"));
        let oss_keys = match (oss_id, env("OSS_ACCESS_KEY_SECRET")) {
            (Some(id), Some(secret)) => Some(fixed(id, secret, env("OSS_SESSION_TOKEN"))),
            _ => None,
        };
        sources.push(("env OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET", Source::Fixed(oss_keys)));
        let cloud_keys = match (env("ALIBABA_CLOUD_ACCESS_KEY_ID"), env("ALIBABA_CLOUD_ACCESS_KEY_SECRET")) {
            (Some(id), Some(secret)) => Some(fixed(id, secret, env("ALIBABA_CLOUD_SECURITY_TOKEN"))),
            _ => None,
        };
        sources.push(("env ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET", Source::Fixed(cloud_keys)));
        let provider = |p: Box<dyn ProvideCredentialDyn<Credential = Credential>>| Source::Provider(p);
        if env("ALIBABA_CLOUD_ROLE_ARN").is_some() || env("ALIBABA_CLOUD_OIDC_TOKEN_FILE").is_some() {
            sources.push((
                "RRSA/OIDC (STS AssumeRoleWithOIDC)",
                provider(Box::new(AssumeRoleWithOidcCredentialProvider::new())),
            ));
        }
        // Alibaba's CLI and Go SDK write ~/.alibabacloud/credentials; the other
        // SDKs read credentials.ini (reqsign's default paths, or
        // ALIBABA_CLOUD_CREDENTIALS_FILE).
        if env("ALIBABA_CLOUD_CREDENTIALS_FILE").is_none() {
            let file = CredentialsFileCredentialProvider::new().with_credentials_file("~/.alibabacloud/credentials");
            sources.push(("~/.alibabacloud/credentials", provider(Box::new(file))));
        }
        sources.push(("credentials.ini", provider(Box::new(CredentialsFileCredentialProvider::new()))));
        sources.push(("~/.aliyun/config.json", provider(Box::new(ConfigFileCredentialProvider::new()))));
        if env("ALIBABA_CLOUD_CREDENTIALS_URI").is_some() {
            sources
                .push(("ALIBABA_CLOUD_CREDENTIALS_URI", provider(Box::new(CredentialsUriCredentialProvider::new()))));
        }
        let disabled = env("ALIBABA_CLOUD_ECS_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !disabled {
            let mut ecs = EcsRamRoleCredentialProvider::new();
            if let Some(endpoint) = env(TEST_ECS_METADATA_ENDPOINT_ENV) {
                ecs = ecs.with_endpoint(endpoint);
            }
            sources.push(("ECS RAM role (metadata service)", provider(Box::new(ecs))));
        }
        Self::from_sources(sources, version)
    }

    fn from_sources(sources: Vec<(&'static str, Source)>, version: SignatureVersion) -> Credentials {
        let ctx = Context::new().with_env(OsEnv).with_file_read(TokioFileRead).with_http_send(ReqwestSend::new());
        Credentials { inner: Arc::new(Inner { ctx, sources, version, cache: tokio::sync::Mutex::new(None) }) }
    }

    /// The signature version requests use.
    pub fn version(&self) -> &SignatureVersion {
        &self.inner.version
    }

    /// Credentials valid for at least two more minutes: the cached ones, or
    /// the first source that has some. The error names every source tried.
    pub async fn current(&self) -> Result<Credential> {
        let mut cache = self.inner.cache.lock().await;
        if let Some((cred, _)) = cache.as_ref().filter(|(c, _)| c.is_valid()) {
            return Ok(cred.clone());
        }
        let mut tried = Vec::new();
        for (name, source) in &self.inner.sources {
            let found = match source {
                Source::Fixed(cred) => Ok(cred.clone()),
                Source::Provider(p) => p.provide_credential_dyn(&self.inner.ctx).await,
            };
            match found {
                Ok(Some(cred)) if cred.is_valid_at(reqsign_core::time::Timestamp::now()) => {
                    if cache.as_ref().map(|(_, n)| *n) != Some(*name) {
                        crate::debug!("credentials from {name}; signature {}", self.inner.version);
                    }
                    *cache = Some((cred.clone(), name));
                    return Ok(cred);
                }
                Ok(Some(_)) => tried.push(format!("{name} (expired)")),
                Ok(None) => tried.push(name.to_string()),
                Err(err) => tried.push(format!("{name} ({})", one_line(&err))),
            }
        }
        bail!("no OSS credentials found; tried: {}", tried.join(", "))
    }

    /// Whether `text` contains a secret or token this chain has handed out.
    pub fn leaks_into(&self, text: &str) -> bool {
        let cached = self.inner.cache.try_lock().ok().and_then(|c| c.as_ref().map(|(c, _)| c.clone()));
        let fixed = self.inner.sources.iter().filter_map(|(_, s)| match s {
            Source::Fixed(c) => c.clone(),
            Source::Provider(_) => None,
        });
        cached.into_iter().chain(fixed).any(|c| {
            (!c.access_key_secret.is_empty() && text.contains(&c.access_key_secret))
                || c.security_token.is_some_and(|t| !t.is_empty() && text.contains(&t))
        })
    }
}

/// reqsign's errors, on one line and without their debug noise.
fn one_line(err: &reqsign_core::Error) -> String {
    let mut parts = vec![err.to_string().trim_end_matches([':', ' ']).to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.trim().is_empty() && !parts.iter().any(|p| p.contains(text.trim())) {
            parts.push(text.trim().to_string());
        }
        source = s.source();
    }
    parts.join(": ").replace('\n', " ")
}

/// reqsign's HTTP calls (STS, metadata, credentials URI) on our reqwest.
#[derive(Debug, Clone)]
struct ReqwestSend {
    client: reqwest::Client,
}

impl ReqwestSend {
    fn new() -> ReqwestSend {
        // Short timeouts: off ECS, 100.100.100.200 does not answer at all.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .no_proxy()
            .build()
            .unwrap_or_default();
        ReqwestSend { client }
    }
}

impl reqsign_core::HttpSend for ReqwestSend {
    async fn http_send(&self, req: http::Request<Bytes>) -> reqsign_core::Result<http::Response<Bytes>> {
        let request = reqwest::Request::try_from(req)
            .map_err(|e| reqsign_core::Error::request_invalid("building a credentials request").with_source(e))?;
        let failed = |e: reqwest::Error| {
            let what = if e.is_connect() { "could not connect" } else { "request failed" };
            reqsign_core::Error::unexpected(what).set_retryable(true).with_source(e.without_url())
        };
        let response = self.client.execute(request).await.map_err(failed)?;
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let body = response.bytes().await.map_err(failed)?;
        builder.body(body).map_err(|e| reqsign_core::Error::unexpected("reading a credentials answer").with_source(e))
    }
}

/// reqsign's profile-file reads, on tokio.
#[derive(Debug, Clone, Copy)]
struct TokioFileRead;

impl reqsign_core::FileRead for TokioFileRead {
    async fn file_read(&self, path: &str) -> reqsign_core::Result<Vec<u8>> {
        tokio::fs::read(path)
            .await
            .map_err(|e| reqsign_core::Error::config_invalid(format!("reading {path}")).with_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_hold_no_secret() {
        let creds = Credentials::fixed("id", "very-secret", Some("tok-xyz".into()), SignatureVersion::V1);
        let text = format!("{creds:?}");
        assert!(!text.contains("very-secret") && !text.contains("tok-xyz"), "{text}");
        assert!(creds.leaks_into("x very-secret y"));
        assert!(creds.leaks_into("tok-xyz"));
        assert!(!creds.leaks_into("id"));
    }
}
