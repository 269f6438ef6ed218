//! The OSS HTTP client: addressing, signing, retries, and one method per API
//! call the store needs (objects, multipart, listing).
//!
//! Async on reqwest; [`super::OssStore`] drives it from sync code
//! on its own runtime. Requests that are safe to repeat are retried per
//! [`RetryPolicy`], all attempts within one overall deadline; bodies are
//! [`PartData`] (in memory or in a staged file) so a retry resends the same
//! bytes. CompleteMultipartUpload is not repeated blindly: a lost answer is
//! resolved by checking the object (see [`Client::complete_multipart`]).

use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use md5::{Digest, Md5};
use reqwest::{Method, StatusCode};

use super::body::PartData;
use super::error::{escape, xml_blocks, xml_text, OssError};
use super::retry::RetryPolicy;
use super::sign::{canonical_resource, string_to_sign, Credentials};
use crate::store::ObjectMeta;

/// Where OSS is: scheme, host (with port) and the addressing style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` unless the endpoint said `http://`.
    pub scheme: String,
    /// Host and optional port, e.g. `oss-cn-hangzhou.aliyuncs.com`.
    pub host: String,
    /// `scheme://host/bucket/key` instead of `scheme://bucket.host/key`.
    pub path_style: bool,
}

impl Endpoint {
    /// Parses `oss-cn-hangzhou.aliyuncs.com`, `https://...` or
    /// `http://127.0.0.1:9000`. Path-style addressing is used for IP
    /// addresses and `localhost` (they cannot take a bucket sub-domain) or
    /// when `force_path_style` is set.
    pub fn parse(text: &str, force_path_style: bool) -> Result<Endpoint> {
        let text = text.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("https".to_string(), text),
        };
        if scheme != "https" && scheme != "http" {
            bail!("endpoint {text:?}: scheme must be http or https");
        }
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') || host.contains('@') || host.contains(char::is_whitespace) {
            bail!("endpoint {text:?} is not a host name such as oss-cn-hangzhou.aliyuncs.com");
        }
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => {
                host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
            }
        };
        let is_ip = name.parse::<std::net::IpAddr>().is_ok();
        let path_style = force_path_style || is_ip || name.eq_ignore_ascii_case("localhost");
        Ok(Endpoint { scheme, host: host.to_string(), path_style })
    }

    /// The URL of an object (or of the bucket when `key` is empty).
    pub fn url(&self, bucket: &str, key: &str, query: &[(String, Option<String>)]) -> String {
        let mut url = if self.path_style {
            format!("{}://{}/{}/{}", self.scheme, self.host, bucket, encode_path(key))
        } else {
            format!("{}://{}.{}/{}", self.scheme, bucket, self.host, encode_path(key))
        };
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode_component(name));
            if let Some(value) = value {
                url.push('=');
                url.push_str(&encode_component(value));
            }
        }
        url
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)
    }
}

fn encode_bytes(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a key for the URL path (`/` kept).
pub fn encode_path(key: &str) -> String {
    encode_bytes(key, true)
}

/// Percent-encodes a query name or value.
pub fn encode_component(text: &str) -> String {
    encode_bytes(text, false)
}

/// Decodes `%XX` (and `+` as a space, as form encoding does) back to text.
pub fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a put or complete answered.
#[derive(Clone, Debug, Default)]
pub struct PutAnswer {
    /// The object's ETag, quotes removed.
    pub etag: Option<String>,
    /// `x-oss-hash-crc64ecma`, if sent.
    pub crc64: Option<u64>,
}

/// Storage options sent with PutObject and InitiateMultipartUpload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectOptions {
    /// `x-oss-forbid-overwrite: true`.
    pub forbid_overwrite: bool,
    /// `x-oss-storage-class` (Standard, IA, Archive, ColdArchive).
    pub storage_class: Option<String>,
    /// `x-oss-server-side-encryption` (AES256, KMS, SM4).
    pub sse: Option<String>,
    /// `x-oss-server-side-encryption-key-id` (KMS only).
    pub sse_key_id: Option<String>,
}

impl ObjectOptions {
    fn apply<'a>(&self, mut call: Call<'a>) -> Call<'a> {
        if self.forbid_overwrite {
            call = call.header("x-oss-forbid-overwrite", "true");
        }
        if let Some(class) = &self.storage_class {
            call = call.header("x-oss-storage-class", class);
        }
        if let Some(sse) = &self.sse {
            call = call.header("x-oss-server-side-encryption", sse);
        }
        if let Some(id) = &self.sse_key_id {
            call = call.header("x-oss-server-side-encryption-key-id", id);
        }
        call
    }
}

/// What HeadObject says beyond [`ObjectMeta`].
#[derive(Clone, Debug, Default)]
pub struct HeadAnswer {
    /// Size, CRC-64, ETag, modification time.
    pub meta: ObjectMeta,
    /// `x-oss-storage-class`.
    pub storage_class: Option<String>,
    /// `x-oss-restore` (`ongoing-request="true"`, or `"false"` with an expiry).
    pub restore: Option<String>,
}

/// The ETag OSS gives a multipart object: MD5 of the parts' binary MD5s,
/// upper-case hex, `-<parts>`; `None` if a part ETag is not an MD5.
pub fn multipart_etag(parts: &[(u32, String)]) -> Option<String> {
    let mut md5s = Vec::with_capacity(parts.len() * 16);
    for (_, etag) in parts {
        if etag.len() != 32 {
            return None;
        }
        for i in 0..16 {
            md5s.push(u8::from_str_radix(etag.get(2 * i..2 * i + 2)?, 16).ok()?);
        }
    }
    let digest: [u8; 16] = Md5::digest(&md5s).into();
    Some(format!("{}-{}", digest.iter().map(|b| format!("{b:02X}")).collect::<String>(), parts.len()))
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct ListAnswer {
    /// The objects, in key order.
    pub entries: Vec<ObjectMeta>,
    /// The marker of the next page, if the listing was truncated.
    pub next_marker: Option<String>,
}

/// Parses an `x-oss-hash-crc64ecma` value (a decimal u64).
pub fn parse_crc64_header(value: &str) -> Result<u64> {
    value
        .trim()
        .parse::<u64>()
        .with_context(|| format!("bad x-oss-hash-crc64ecma header {value:?}: expected a decimal 64-bit number"))
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn crc_of(headers: &reqwest::header::HeaderMap) -> Result<Option<u64>> {
    header(headers, "x-oss-hash-crc64ecma").map(parse_crc64_header).transpose()
}

fn etag_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    header(headers, "etag").map(|e| e.trim_matches('"').to_string())
}

/// One request, before signing. Kept whole so a retry can resend it.
struct Call<'a> {
    method: Method,
    bucket: &'a str,
    key: &'a str,
    query: Vec<(String, Option<String>)>,
    headers: Vec<(String, String)>,
    body: PartData,
    content_md5: bool,
    content_type: &'a str,
    /// Safe to send again after a lost answer (false: CompleteMultipartUpload).
    idempotent: bool,
}

impl<'a> Call<'a> {
    fn new(method: Method, bucket: &'a str, key: &'a str) -> Self {
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
    fn query(mut self, name: &str, value: Option<&str>) -> Self {
        self.query.push((name.to_string(), value.map(str::to_string)));
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    fn body(mut self, body: PartData) -> Self {
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
        Ok(Client { http, endpoint, creds, retry })
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
    async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response> {
        let md5 = call.content_md5.then(|| call.body.content_md5());
        let url = self.endpoint.url(call.bucket, call.key, &call.query);
        let deadline = Instant::now() + self.retry.overall_deadline(call.body.len());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let result = if left.is_zero() {
                Err(anyhow::anyhow!("gave up: the request's overall deadline passed"))
            } else {
                match tokio::time::timeout(left, self.send_once(call, &url, md5.as_deref())).await {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!(
                        "gave up: the request's overall deadline ({:?}) passed",
                        self.retry.overall_deadline(call.body.len())
                    )),
                }
            };
            let retryable = match &result {
                Ok(_) => false,
                Err(err) => match err.downcast_ref::<OssError>() {
                    Some(oss) => oss.is_retryable(),
                    None => call.idempotent,
                },
            };
            let wait = self.retry.backoff(attempt);
            let out_of_time = Instant::now() + wait >= deadline;
            if !retryable || attempt >= self.retry.max_attempts || out_of_time {
                return result.with_context(|| {
                    let what = if call.key.is_empty() {
                        format!("{} /{}/", call.method, call.bucket)
                    } else {
                        format!("{} /{}/{}", call.method, call.bucket, call.key)
                    };
                    let deadline = if retryable && out_of_time && attempt < self.retry.max_attempts {
                        format!(
                            "; gave up at the overall deadline of {} s (--deadline)",
                            self.retry.overall_deadline(call.body.len()).as_secs()
                        )
                    } else {
                        String::new()
                    };
                    if attempt > 1 {
                        format!("{what} at {} (after {attempt} attempts{deadline})", self.endpoint)
                    } else {
                        format!("{what} at {}{deadline}", self.endpoint)
                    }
                });
            }
            if let Err(err) = &result {
                crate::debug!("{} {}: {}; retrying in {:?}", call.method, call.key, crate::cli::one_line(err), wait);
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(&self, call: &Call<'_>, url: &str, md5: Option<&str>) -> Result<reqwest::Response> {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let mut headers = call.headers.clone();
        if let Some(token) = &self.creds.security_token {
            headers.push(("x-oss-security-token".into(), token.clone()));
        }
        let query: Vec<(String, Option<String>)> = call.query.clone();
        let resource = canonical_resource(call.bucket, call.key, &query);
        let sts =
            string_to_sign(call.method.as_str(), md5.unwrap_or(""), call.content_type, &date, &headers, &resource);
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .header("Date", &date)
            .header("Authorization", self.creds.authorization(&sts));
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(md5) = md5 {
            request = request.header("Content-MD5", md5);
        }
        if !call.content_type.is_empty() {
            request = request.header("Content-Type", call.content_type);
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
            request.send().await.map_err(transport_error)?
        };
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
        Err(err.into())
    }

    /// HeadObject: the object's size, CRC-64 and ETag, or `None` if absent.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>> {
        Ok(self.head_object_full(bucket, key).await?.map(|head| head.meta))
    }

    /// HeadObject with the storage class and restore state.
    pub async fn head_object_full(&self, bucket: &str, key: &str) -> Result<Option<HeadAnswer>> {
        match self.send(&Call::new(Method::HEAD, bucket, key)).await {
            Ok(response) => {
                let headers = response.headers();
                let size = header(headers, "content-length")
                    .and_then(|v| v.parse().ok())
                    .context("HEAD answer without Content-Length")?;
                Ok(Some(HeadAnswer {
                    meta: ObjectMeta {
                        key: key.to_string(),
                        size,
                        crc64: crc_of(headers)?,
                        etag: etag_of(headers),
                        last_modified: header(headers, "last-modified").and_then(http_date_to_rfc3339),
                    },
                    storage_class: header(headers, "x-oss-storage-class").map(str::to_string),
                    restore: header(headers, "x-oss-restore").map(str::to_string),
                }))
            }
            Err(err) if err.downcast_ref::<OssError>().is_some_and(|e| e.code == "NoSuchKey") => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// PutObject with Content-MD5 and the storage options. Safe to repeat:
    /// the same bytes land again.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: PartData,
        options: &ObjectOptions,
    ) -> Result<PutAnswer> {
        let call = options.apply(Call::new(Method::PUT, bucket, key).body(body));
        let response = self.send(&call).await?;
        Ok(PutAnswer { etag: etag_of(response.headers()), crc64: crc_of(response.headers())? })
    }

    /// RestoreObject (`POST ?restore`) of an Archive or ColdArchive object.
    /// A restore already under way (409 RestoreAlreadyInProgress) is fine.
    pub async fn restore_object(&self, bucket: &str, key: &str) -> Result<()> {
        let call = Call::new(Method::POST, bucket, key).query("restore", None);
        match self.send(&call).await {
            Err(err) if err.downcast_ref::<OssError>().is_some_and(|e| e.code == "RestoreAlreadyInProgress") => Ok(()),
            other => other.map(drop),
        }
    }

    /// InitiateMultipartUpload: the upload id. Retried like any request: if
    /// an answer is lost, the upload it created is orphaned (its id never
    /// reached us); the bucket's lifecycle rule for incomplete uploads
    /// removes it. Aborting uploads we did not start could break another
    /// writer's upload of the same key, so we do not hunt for it.
    pub async fn initiate_multipart(&self, bucket: &str, key: &str, options: &ObjectOptions) -> Result<String> {
        let call = options.apply(Call::new(Method::POST, bucket, key).query("uploads", None));
        let text = self.send(&call).await?.text().await.context("reading InitiateMultipartUpload answer")?;
        xml_text(&text, "UploadId")
            .filter(|id| !id.is_empty())
            .context("InitiateMultipartUpload answer has no UploadId")
    }

    /// UploadPart with Content-MD5.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: PartData,
    ) -> Result<PutAnswer> {
        let call = Call::new(Method::PUT, bucket, key)
            .query("partNumber", Some(&number.to_string()))
            .query("uploadId", Some(upload_id))
            .body(body);
        let response = self.send(&call).await?;
        Ok(PutAnswer { etag: etag_of(response.headers()), crc64: crc_of(response.headers())? })
    }

    /// CompleteMultipartUpload from `(part number, etag)` pairs in order,
    /// of an object of `size` bytes with CRC-64 `crc64`.
    ///
    /// Not repeated blindly: if the connection breaks (the server may have
    /// completed it), or a repeat finds the upload gone (NoSuchUpload), the
    /// object is checked with HEAD: the same size, CRC-64 and multipart ETag
    /// mean this upload completed, and that is the answer. Otherwise the
    /// complete is sent again while attempts and the deadline allow.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        forbid_overwrite: bool,
        expect: (u64, u64),
    ) -> Result<PutAnswer> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (number, etag) in parts {
            xml.push_str(&format!("<Part><PartNumber>{number}</PartNumber><ETag>\"{}\"</ETag></Part>", escape(etag)));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let mut call = Call::new(Method::POST, bucket, key)
            .query("uploadId", Some(upload_id))
            .body(PartData::Memory(Bytes::from(xml)));
        call.content_type = "application/xml";
        call.idempotent = false;
        if forbid_overwrite {
            call = call.header("x-oss-forbid-overwrite", "true");
        }
        let expected_etag = multipart_etag(parts);
        let deadline = Instant::now() + self.retry.overall_deadline(0);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.send(&call).await {
                Ok(response) => {
                    let crc = crc_of(response.headers())?;
                    let header_etag = etag_of(response.headers());
                    let text = response.text().await.context("reading CompleteMultipartUpload answer")?;
                    let etag = xml_text(&text, "ETag").map(|e| e.trim_matches('"').to_string()).or(header_etag);
                    return Ok(PutAnswer { etag, crc64: crc });
                }
                Err(err) => err,
            };
            // No answer (the server may have completed it), or the upload is
            // gone (a repeat after a completed attempt whose answer was lost).
            let gone = err.downcast_ref::<OssError>().is_some_and(|oss| oss.code == "NoSuchUpload");
            if err.downcast_ref::<OssError>().is_some() && !gone {
                return Err(err);
            }
            // Did the server complete it before the answer got lost?
            if let Ok(Some(head)) = self.head_object(bucket, key).await {
                let same_etag = match (&expected_etag, &head.etag) {
                    (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                    _ => true,
                };
                if head.size == expect.0 && head.crc64.is_none_or(|c| c == expect.1) && same_etag {
                    crate::debug!("CompleteMultipartUpload of {key}: answer lost, but the object is ours (HEAD)");
                    return Ok(PutAnswer { etag: head.etag, crc64: head.crc64 });
                }
            }
            let wait = self.retry.backoff(attempt);
            if gone || attempt >= self.retry.max_attempts || Instant::now() + wait >= deadline {
                return Err(err.context(format!("CompleteMultipartUpload of {key:?} failed after {attempt} attempts")));
            }
            crate::debug!("CompleteMultipartUpload of {key}: {}; retrying in {wait:?}", crate::cli::one_line(&err));
            tokio::time::sleep(wait).await;
        }
    }

    /// AbortMultipartUpload (an upload that is already gone counts as aborted).
    pub async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let call = Call::new(Method::DELETE, bucket, key).query("uploadId", Some(upload_id));
        match self.send(&call).await {
            Err(err) if err.downcast_ref::<OssError>().is_some_and(|e| e.code == "NoSuchUpload") => Ok(()),
            other => other.map(drop),
        }
    }

    /// DeleteObject (OSS answers 204 for a missing key too).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        self.send(&Call::new(Method::DELETE, bucket, key)).await.map(drop)
    }

    /// ListObjects (V1): one page of keys under `prefix` after `marker`.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        marker: Option<&str>,
        max_keys: usize,
    ) -> Result<ListAnswer> {
        let mut call = Call::new(Method::GET, bucket, "")
            .query("encoding-type", Some("url"))
            .query("max-keys", Some(&max_keys.to_string()));
        if !prefix.is_empty() {
            call = call.query("prefix", Some(prefix));
        }
        if let Some(marker) = marker {
            call = call.query("marker", Some(marker));
        }
        let text = self.send(&call).await?.text().await.context("reading ListObjects answer")?;
        let url_encoded = xml_text(&text, "EncodingType").is_some_and(|e| e.eq_ignore_ascii_case("url"));
        let decode = |s: String| if url_encoded { decode_component(&s) } else { s };
        let mut entries = Vec::new();
        for block in xml_blocks(&text, "Contents") {
            let key = decode(xml_text(block, "Key").context("ListObjects entry without Key")?);
            entries.push(ObjectMeta {
                key,
                size: xml_text(block, "Size").and_then(|s| s.parse().ok()).context("ListObjects entry without Size")?,
                crc64: None,
                etag: xml_text(block, "ETag").map(|e| e.trim_matches('"').to_string()),
                last_modified: xml_text(block, "LastModified"),
            });
        }
        let truncated = xml_text(&text, "IsTruncated").is_some_and(|t| t == "true");
        let next_marker = if truncated {
            Some(
                xml_text(&text, "NextMarker")
                    .map(decode)
                    .filter(|m| !m.is_empty())
                    .or_else(|| entries.last().map(|e| e.key.clone()))
                    .context("truncated listing without NextMarker")?,
            )
        } else {
            None
        };
        Ok(ListAnswer { entries, next_marker })
    }

    /// GetObject from `start` (to `end` inclusive, if given), with
    /// `x-oss-range-behavior: standard` so a bad range is an error, not the
    /// whole object. `if_match` pins the ETag when resuming.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<(u64, Option<u64>)>,
        if_match: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut call = Call::new(Method::GET, bucket, key);
        if let Some((start, end)) = range {
            let value = match end {
                Some(end) => format!("bytes={start}-{end}"),
                None => format!("bytes={start}-"),
            };
            call = call.header("Range", &value).header("x-oss-range-behavior", "standard");
        }
        if let Some(etag) = if_match {
            call = call.header("If-Match", &format!("\"{etag}\""));
        }
        self.send(&call).await
    }
}

fn transport_error(err: reqwest::Error) -> anyhow::Error {
    // reqwest's Display names the URL; the chain names the cause (reset, timeout).
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "connection failed"
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
    Some(crate::record::format_rfc3339(secs))
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
