//! The OSS HTTP client: signing, retries, and one method per API
//! call the store needs (objects, multipart, listing). Addressing is in
//! `endpoint.rs`.
//!
//! Async on reqwest; [`super::OssStore`] drives it from sync code
//! on its own runtime. Requests that are safe to repeat are retried per
//! [`RetryPolicy`], all attempts within one overall deadline; bodies are
//! [`PartData`] (in memory or in a staged file) so a retry resends the same
//! bytes. CompleteMultipartUpload is not repeated blindly: a lost answer is
//! resolved by checking the object (see [`Client::complete_multipart`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use base64::Engine;
use reqwest::{Method, StatusCode};

use super::body::PartData;
pub use super::calls::{multipart_etag, HeadAnswer, ListAnswer, ObjectOptions, PutAnswer};
use super::credentials::{Credentials, NoCredentials};
pub use super::endpoint::{decode_component, encode_component, encode_path, Endpoint};
use super::error::OssError;
use super::retry::RetryPolicy;
use super::sign::{sign, SignatureVersion, Unsigned};

/// Parses an `x-oss-hash-crc64ecma` value (a decimal u64).
pub fn parse_crc64_header(value: &str) -> Result<u64> {
    value
        .trim()
        .parse::<u64>()
        .with_context(|| format!("bad x-oss-hash-crc64ecma header {value:?}: expected a decimal 64-bit number"))
}

pub(super) fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn crc_of(headers: &reqwest::header::HeaderMap) -> Result<Option<u64>> {
    header(headers, "x-oss-hash-crc64ecma").map(parse_crc64_header).transpose()
}

pub(super) fn etag_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    header(headers, "etag").map(|e| e.trim_matches('"').to_string())
}

/// One request, before signing. Kept whole so a retry can resend it.
pub(super) struct Call<'a> {
    pub(super) method: Method,
    pub(super) bucket: &'a str,
    pub(super) key: &'a str,
    pub(super) query: Vec<(String, Option<String>)>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: PartData,
    pub(super) content_md5: bool,
    pub(super) content_type: &'a str,
    /// Safe to send again after a lost answer (false: CompleteMultipartUpload).
    pub(super) idempotent: bool,
}

impl<'a> Call<'a> {
    pub(super) fn new(method: Method, bucket: &'a str, key: &'a str) -> Self {
        Call {
            method,
            bucket,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: PartData::empty(),
            content_md5: false,
            content_type: "",
            idempotent: true,
        }
    }
    pub(super) fn query(mut self, name: &str, value: Option<&str>) -> Self {
        self.query.push((name.to_string(), value.map(str::to_string)));
        self
    }
    pub(super) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub(super) fn body(mut self, body: PartData) -> Self {
        self.body = body;
        self.content_md5 = true;
        self
    }
}

/// An OSS client for one endpoint and key pair.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    creds: Credentials,
    retry: RetryPolicy,
    /// Whether the endpoint has answered once (any status): until then a
    /// request gets [`RetryPolicy::budget`]'s short deadlines.
    answered: Arc<AtomicBool>,
}

impl Client {
    /// A client; no request is made yet.
    pub fn new(endpoint: Endpoint, creds: Credentials, retry: RetryPolicy) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(retry.connect_timeout)
            .read_timeout(retry.idle_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .http1_only()
            .user_agent(concat!("mb/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Client { http, endpoint, creds, retry, answered: Arc::default() })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The retry settings.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Sends a call, retrying per the policy. Returns a 2xx response, or an
    /// error that holds an [`OssError`] (for error answers) or the transport error.
    ///
    /// Error answers that say "try again" (5xx, 408, 429) are retried; a
    /// broken connection or timeout only when the call is idempotent. All
    /// attempts end by the policy's overall deadline.
    pub(super) async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response> {
        let md5 = call.content_md5.then(|| call.body.content_md5());
        let url = self.endpoint.url(call.bucket, call.key, &call.query);
        let mut clock: Option<Instant> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Credentials come first, outside the attempt's clock: the chain has
            // its own deadline and retries, so its failure is final.
            let cred = match self.creds.current().await {
                Ok(cred) => cred,
                Err(err) => return Err(err).with_context(|| self.what(call)),
            };
            // The clock starts once the first credentials are in hand.
            let started = *clock.get_or_insert_with(Instant::now);
            let answered = self.answered.load(Ordering::Relaxed);
            let (per_attempt, all) = self.retry.budget(call.body.len(), answered);
            let deadline = started + all;
            let left = deadline.saturating_duration_since(Instant::now());
            let limit = per_attempt.min(left);
            let result = if left.is_zero() {
                Err(anyhow::anyhow!("gave up: the request's overall deadline passed"))
            } else {
                match tokio::time::timeout(limit, self.send_once(call, &url, md5.as_deref(), &cred)).await {
                    Ok(result) => result,
                    Err(_) if !self.answered.load(Ordering::Relaxed) => {
                        // Cut by the request's budget rather than the attempt's: no figure.
                        let within =
                            if limit == per_attempt { format!(" within {} s", limit.as_secs()) } else { String::new() };
                        Err(anyhow::anyhow!("the OSS endpoint {} did not answer{within}", self.endpoint.host))
                    }
                    Err(_) => Err(anyhow::anyhow!("gave up: the request's overall deadline ({all:?}) passed")),
                }
            };
            let retryable = match &result {
                Ok(_) => false,
                Err(err) => match err.downcast_ref::<OssError>() {
                    Some(oss) => oss.is_retryable(),
                    None => call.idempotent && !err.is::<NoCredentials>(),
                },
            };
            let wait = self.retry.backoff(attempt);
            let out_of_time = Instant::now() + wait >= deadline;
            if !retryable || attempt >= self.retry.max_attempts || out_of_time {
                return result.with_context(|| {
                    let mut what = self.what(call);
                    if attempt > 1 {
                        what.push_str(&format!(" (after {attempt} attempts)"));
                    }
                    if retryable && out_of_time && attempt < self.retry.max_attempts {
                        if self.answered.load(Ordering::Relaxed) {
                            what.push_str(&format!(
                                "; gave up at the overall deadline of {} s (--deadline)",
                                all.as_secs()
                            ));
                        } else {
                            what.push_str(&format!(
                                "; gave up after {} s without any answer from the OSS endpoint",
                                started.elapsed().as_secs()
                            ));
                        }
                    }
                    what
                });
            }
            if let Err(err) = &result {
                crate::debug!("{} {}: {}; retrying in {:?}", call.method, call.key, crate::cli::one_line(err), wait);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// `GET /bucket/key at https://endpoint`: what a failed call was.
    fn what(&self, call: &Call<'_>) -> String {
        if call.key.is_empty() {
            format!("{} /{}/ at {}", call.method, call.bucket, self.endpoint)
        } else {
            format!("{} /{}/{} at {}", call.method, call.bucket, call.key, self.endpoint)
        }
    }

    async fn send_once(
        &self,
        call: &Call<'_>,
        url: &str,
        md5: Option<&str>,
        cred: &reqsign_aliyun_oss::Credential,
    ) -> Result<reqwest::Response> {
        let mut headers = call.headers.clone();
        if let Some(md5) = md5 {
            headers.push(("Content-MD5".into(), md5.to_string()));
        }
        if !call.content_type.is_empty() {
            headers.push(("Content-Type".into(), call.content_type.to_string()));
        }
        let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let unsigned =
            Unsigned { method: call.method.as_str(), bucket: call.bucket, key: call.key, query: &call.query };
        let sts = sign(self.creds.version(), cred, now, &unsigned, &mut headers);
        let mut request = self.http.request(call.method.clone(), url);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if call.method == Method::PUT || call.method == Method::POST {
            // Always a Content-Length, 0 included: OSS answers 411 without one,
            // and a staged body would otherwise go chunked.
            request = request
                .timeout(self.retry.request_timeout(call.body.len()))
                .header(reqwest::header::CONTENT_LENGTH, call.body.len())
                .body(call.body.to_body());
        }
        let response = if super::raw_path::has_dot_segment(call.key) {
            super::raw_path::send(request, url, self.retry.connect_timeout).await?
        } else {
            request.send().await.map_err(|e| transport_error(e, &self.endpoint.host))?
        };
        self.answered.store(true, Ordering::Relaxed);
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let request_id = header(response.headers(), "x-oss-request-id").map(str::to_string);
        // HEAD answers have no body; OSS repeats the error XML, base64, in x-oss-err.
        let header_err = header(response.headers(), "x-oss-err")
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let body = if call.method == Method::HEAD { String::new() } else { response.text().await.unwrap_or_default() };
        let body = if body.trim().is_empty() { header_err.unwrap_or_default() } else { body };
        let err = OssError::from_response(status.as_u16(), &body, request_id.as_deref(), call.bucket, call.key);
        if let Some(server_sts) = &err.string_to_sign {
            // Never holds the secret; useful to debug a signer, noise otherwise.
            crate::debug!("server StringToSign: {server_sts:?}; ours: {sts:?}");
        }
        if let (SignatureVersion::V4 { region }, true) = (self.creds.version(), err.message.contains("signing region"))
        {
            let hint =
                format!("signed for region {region}: give the bucket's region with --region, OSS_REGION or `region`");
            return Err(anyhow::Error::from(err).context(hint));
        }
        if err.code == "AccessDenied" && *self.creds.version() == SignatureVersion::V1 {
            // New accounts and buckets refuse V1 with a bare AccessDenied.
            return Err(anyhow::Error::from(err)
                .context("signed with V1, which new OSS accounts and buckets refuse: drop --signature-version 1"));
        }
        Err(err.into())
    }
}

fn transport_error(err: reqwest::Error, host: &str) -> anyhow::Error {
    // reqwest's Display names the URL; the chain names the cause (reset, timeout).
    let kind = if err.is_timeout() {
        format!("the OSS endpoint {host} timed out")
    } else if err.is_connect() {
        format!("could not connect to the OSS endpoint {host}")
    } else {
        format!("the connection to the OSS endpoint {host} failed")
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        anyhow::anyhow!("{kind}")
    } else {
        anyhow::anyhow!("{kind}: {cause}")
    }
}

/// `Last-Modified` (HTTP date) as RFC 3339.
pub fn http_date_to_rfc3339(text: &str) -> Option<String> {
    let time = httpdate::parse_http_date(text).ok()?;
    let secs = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(crate::format::time::format_rfc3339(secs))
}

/// The `Content-Range` total (`bytes 0-9/100` -> 100).
pub fn content_range_total(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    header(headers, "content-range")?.rsplit('/').next()?.parse().ok()
}

/// What a GetObject answer says about the object, for readers.
#[derive(Clone, Debug)]
pub struct ResponseMeta {
    /// `x-oss-hash-crc64ecma` (of the whole object).
    pub crc64: Option<u64>,
    /// ETag without quotes.
    pub etag: Option<String>,
    /// Content-Length of this answer.
    pub length: Option<u64>,
    /// 206: the answer holds the requested range; 200: the whole object.
    pub partial: bool,
}

/// The response's CRC-64 header, ETag and length.
pub fn response_meta(response: &reqwest::Response) -> Result<ResponseMeta> {
    let headers = response.headers();
    Ok(ResponseMeta {
        crc64: crc_of(headers)?,
        etag: etag_of(headers),
        length: response.content_length(),
        partial: response.status() == StatusCode::PARTIAL_CONTENT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_pick_addressing() {
        let e = Endpoint::parse("oss-cn-hangzhou.aliyuncs.com", false).unwrap();
        assert_eq!((e.scheme.as_str(), e.path_style), ("https", false));
        assert_eq!(e.url("b", "a b/c+d", &[]), "https://b.oss-cn-hangzhou.aliyuncs.com/a%20b/c%2Bd");
        let e = Endpoint::parse("http://127.0.0.1:9000/", false).unwrap();
        assert!(e.path_style);
        assert_eq!(
            e.url("b", "", &[("uploads".into(), None), ("x".into(), Some("1/2".into()))]),
            "http://127.0.0.1:9000/b/?uploads&x=1%2F2"
        );
        assert!(Endpoint::parse("localhost:8080", false).unwrap().path_style);
        assert!(Endpoint::parse("minio.internal", true).unwrap().path_style);
        assert!(Endpoint::parse("ftp://x", false).is_err());
        assert!(Endpoint::parse("https://x/y", false).is_err());
    }

    #[test]
    fn crc_headers_parse_as_decimal() {
        assert_eq!(parse_crc64_header("11051210869376104954").unwrap(), 11_051_210_869_376_104_954);
        assert_eq!(parse_crc64_header(" 0 ").unwrap(), 0);
        assert!(parse_crc64_header("0x99").is_err());
        assert!(parse_crc64_header("-1").is_err());
        assert!(parse_crc64_header("18446744073709551616").is_err());
    }

    #[test]
    fn url_decoding() {
        assert_eq!(decode_component("a%2Fb%20c%E4%B8%AD"), "a/b c中");
        assert_eq!(decode_component("100%"), "100%");
    }
}
