//! The OSS API calls the store makes, one method each (objects, multipart,
//! listing, restore), over [`Client::send`](super::client::Client), and the
//! answers they return. Which calls may be repeated after a lost answer is
//! decided here (see [`Client::complete_multipart`]).

use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use md5::{Digest, Md5};
use reqwest::Method;

use super::body::PartData;
use super::client::{crc_of, decode_component, etag_of, header, http_date_to_rfc3339, Call, Client};
use super::error::{escape, xml_blocks, xml_text, OssError};
use crate::store::ObjectMeta;

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

impl Client {
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
    /// object is checked with HEAD: the same size and CRC-64 (or, without a
    /// CRC, the multipart ETag) mean this upload completed, and that is the
    /// answer. Otherwise the complete is sent again while attempts and the
    /// deadline allow.
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
        let deadline = Instant::now() + self.retry().overall_deadline(0);
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
            // No answer (the server may have completed it), or, on a repeat,
            // the upload is gone or the object exists: an earlier attempt may
            // have completed it before its answer was lost.
            let gone = err
                .downcast_ref::<OssError>()
                .is_some_and(|oss| oss.code == "NoSuchUpload" || (attempt > 1 && oss.is_already_exists()));
            if err.downcast_ref::<OssError>().is_some() && !gone {
                return Err(err);
            }
            // Did the server complete it before the answer got lost?
            if let Ok(Some(head)) = self.head_object(bucket, key).await {
                // The CRC-64 of the whole stream identifies the bytes; OSS does
                // not promise a formula for multipart ETags, so the usual one
                // (MD5 of the parts' MD5s) is the check only without a CRC.
                let same = match head.crc64 {
                    Some(crc) => crc == expect.1,
                    None => {
                        matches!((&expected_etag, &head.etag), (Some(want), Some(got)) if want.eq_ignore_ascii_case(got))
                    }
                };
                if head.size == expect.0 && same {
                    crate::debug!("CompleteMultipartUpload of {key}: answer lost, but the object is ours (HEAD)");
                    return Ok(PutAnswer { etag: head.etag, crc64: head.crc64 });
                }
            }
            let wait = self.retry().backoff(attempt);
            if gone || attempt >= self.retry().max_attempts || Instant::now() + wait >= deadline {
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
