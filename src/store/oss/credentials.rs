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
//!
//! A walk of the chain ends within [`FETCH_DEADLINE`]: each network source
//! gets a few attempts (connect and request timeouts in `credential_http.rs`),
//! and a service that does not answer is named with its host and port. Its
//! answer bodies are never printed (they may hold a key pair).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use reqsign_aliyun_oss::{
    AssumeRoleWithOidcCredentialProvider, ConfigFileCredentialProvider, Credential, CredentialsFileCredentialProvider,
    CredentialsUriCredentialProvider, EcsRamRoleCredentialProvider,
};
use reqsign_core::{Context, OsEnv, ProvideCredentialDyn, SigningCredential};

use super::credential_http::{Outcome, ReqwestSend};
use super::sign::SignatureVersion;

/// All sources of one walk of the chain, retries included, end within this.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(20);
/// Attempts per network source when its failure may pass (no answer, 5xx).
const SOURCE_ATTEMPTS: u32 = 3;

/// For tests only: the ECS metadata service's base URL instead of
/// `http://100.100.100.200` (the suite plays that service on loopback).
pub const TEST_ECS_METADATA_ENDPOINT_ENV: &str = "MB_TEST_ONLY_ECS_METADATA_ENDPOINT";

enum Source {
    /// Keys known up front (`None`: this source is not set).
    Fixed(Option<Credential>),
    Provider {
        /// What it talks to, for errors: "credentials URI", "ECS metadata service".
        service: &'static str,
        provider: Box<dyn ProvideCredentialDyn<Credential = Credential>>,
        /// Why it found nothing, when it skipped something silently.
        explain: Option<fn() -> Option<String>>,
    },
}

/// No credentials: the chain found none, or a source failed. Final: the
/// chain already retried within its deadline.
#[derive(Debug)]
pub struct NoCredentials(String);

impl std::fmt::Display for NoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoCredentials {}

struct Inner {
    ctx: Context,
    http: ReqwestSend,
    /// Whether a skipped profile was already reported (once per process).
    warned: std::sync::atomic::AtomicBool,
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
        let network = |service, p: Box<dyn ProvideCredentialDyn<Credential = Credential>>| Source::Provider {
            service,
            provider: p,
            explain: None,
        };
        if env("ALIBABA_CLOUD_ROLE_ARN").is_some() || env("ALIBABA_CLOUD_OIDC_TOKEN_FILE").is_some() {
            sources.push((
                "RRSA/OIDC (STS AssumeRoleWithOIDC)",
                network("STS endpoint", Box::new(AssumeRoleWithOidcCredentialProvider::new())),
            ));
        }
        // Alibaba's CLI and Go SDK write ~/.alibabacloud/credentials; the other
        // SDKs read credentials.ini (reqsign's default paths, or
        // ALIBABA_CLOUD_CREDENTIALS_FILE).
        // A skipped profile is explained once, by the source that reads the file named.
        let ini_file = |p: Box<dyn ProvideCredentialDyn<Credential = Credential>>, explain: bool| Source::Provider {
            service: "profile file",
            provider: p,
            explain: explain.then_some(super::profiles::unsupported_credentials_profile as fn() -> Option<String>),
        };
        let named = env("ALIBABA_CLOUD_CREDENTIALS_FILE").is_some();
        if !named {
            let file = CredentialsFileCredentialProvider::new().with_credentials_file("~/.alibabacloud/credentials");
            sources.push(("~/.alibabacloud/credentials", ini_file(Box::new(file), true)));
        }
        sources.push(("credentials.ini", ini_file(Box::new(CredentialsFileCredentialProvider::new()), named)));
        sources.push((
            "~/.aliyun/config.json",
            Source::Provider {
                service: "profile file",
                provider: Box::new(ConfigFileCredentialProvider::new()),
                explain: Some(super::profiles::unsupported_config_profile),
            },
        ));
        if env("ALIBABA_CLOUD_CREDENTIALS_URI").is_some() {
            let uri = network("credentials URI", Box::new(CredentialsUriCredentialProvider::new()));
            sources.push(("ALIBABA_CLOUD_CREDENTIALS_URI", uri));
        }
        let disabled = env("ALIBABA_CLOUD_ECS_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !disabled {
            let mut ecs = EcsRamRoleCredentialProvider::new();
            if let Some(endpoint) = env(TEST_ECS_METADATA_ENDPOINT_ENV) {
                ecs = ecs.with_endpoint(endpoint);
            }
            sources.push(("ECS RAM role (metadata service)", network("ECS metadata service", Box::new(ecs))));
        }
        Self::from_sources(sources, version)
    }

    fn from_sources(sources: Vec<(&'static str, Source)>, version: SignatureVersion) -> Credentials {
        let http = ReqwestSend::new();
        let ctx = Context::new().with_env(OsEnv).with_file_read(TokioFileRead).with_http_send(http.clone());
        let cache = tokio::sync::Mutex::new(None);
        let warned = std::sync::atomic::AtomicBool::new(false);
        Credentials { inner: Arc::new(Inner { ctx, http, warned, sources, version, cache }) }
    }

    /// The signature version requests use.
    pub fn version(&self) -> &SignatureVersion {
        &self.inner.version
    }

    /// Credentials valid for at least two more minutes: the cached ones, or
    /// the first source that has some, within [`FETCH_DEADLINE`]. The error
    /// ([`NoCredentials`]) leads with a source that failed and names every
    /// source tried.
    pub async fn current(&self) -> Result<Credential> {
        let mut cache = self.inner.cache.lock().await;
        if let Some((cred, _)) = cache.as_ref().filter(|(c, _)| c.is_valid()) {
            return Ok(cred.clone());
        }
        let deadline = tokio::time::Instant::now() + FETCH_DEADLINE;
        let (mut tried, mut failed) = (Vec::new(), Vec::new());
        for (name, source) in &self.inner.sources {
            let found = match source {
                Source::Fixed(cred) => Ok(cred.clone()),
                Source::Provider { service, provider, explain } => {
                    match self.fetch(provider.as_ref(), service, deadline).await {
                        Ok(None) => match explain.and_then(|explain| explain()) {
                            Some(why) => {
                                if !self.inner.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                                    crate::warn!("{why}");
                                }
                                tried.push(format!("{name} (its profile was skipped)"));
                                continue;
                            }
                            None => Ok(None),
                        },
                        other => other,
                    }
                }
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
                Err(why) => failed.push(format!("{name}: {why}")),
            }
        }
        let message = match failed.is_empty() {
            true => format!("no OSS credentials found; tried: {}", tried.join(", ")),
            false if tried.is_empty() => format!("no OSS credentials found: {}", failed.join("; ")),
            false => format!("no OSS credentials found: {}; also tried: {}", failed.join("; "), tried.join(", ")),
        };
        Err(NoCredentials(self.inner.http.redact(&message)).into())
    }

    /// One network or file source, a few attempts while its failure may
    /// pass, all before `deadline`. The error names the service and host.
    async fn fetch(
        &self,
        provider: &dyn ProvideCredentialDyn<Credential = Credential>,
        service: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Credential>, String> {
        let http = &self.inner.http;
        let (mut backoff, mut attempt) = (Duration::from_millis(500), 0);
        loop {
            attempt += 1;
            http.take_last();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(format!("not tried: the {} s deadline for credentials passed", FETCH_DEADLINE.as_secs()));
            }
            let err = match tokio::time::timeout(left, provider.provide_credential_dyn(&self.inner.ctx)).await {
                Ok(Ok(found)) => return Ok(found),
                Ok(Err(err)) => err,
                Err(_) => {
                    let what = http.take_last().and_then(|o| o.describe(service));
                    let what = what.unwrap_or_else(|| format!("the {service} did not answer"));
                    return Err(format!(
                        "{what} (gave up after {}, at the {} s deadline for credentials)",
                        attempts(attempt),
                        FETCH_DEADLINE.as_secs()
                    ));
                }
            };
            let last = http.take_last();
            let why = last.as_ref().and_then(|o| o.describe(service)).unwrap_or_else(|| one_line(&err));
            let retry_pays = err.is_retryable()
                || matches!(&last, Some(Outcome::NoAnswer { .. }))
                || matches!(&last, Some(Outcome::Refused { status, .. }) if status.is_server_error());
            let more_time = tokio::time::Instant::now() + backoff < deadline;
            if !retry_pays || !more_time || attempt == SOURCE_ATTEMPTS {
                return Err(if attempt > 1 { format!("{why} (after {})", attempts(attempt)) } else { why });
            }
            crate::debug!("credentials from the {service}: {}; retrying in {backoff:?}", http.redact(&why));
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    /// Whether `text` contains a secret or token this chain has handed out.
    pub fn leaks_into(&self, text: &str) -> bool {
        let cached = self.inner.cache.try_lock().ok().and_then(|c| c.as_ref().map(|(c, _)| c.clone()));
        let fixed = self.inner.sources.iter().filter_map(|(_, s)| match s {
            Source::Fixed(c) => c.clone(),
            Source::Provider { .. } => None,
        });
        cached.into_iter().chain(fixed).any(|c| {
            (!c.access_key_secret.is_empty() && text.contains(&c.access_key_secret))
                || c.security_token.is_some_and(|t| !t.is_empty() && text.contains(&t))
        })
    }
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_string()
    } else {
        format!("{n} attempts")
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
