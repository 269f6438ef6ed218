//! ListMultipartUploads: the uploads under a prefix that were begun and
//! neither completed nor aborted (a killed run's parts, still billed).
//! Aborting one is [`Client::abort_multipart`] (`calls.rs`).

use anyhow::{Context, Result};
use reqwest::Method;

use super::client::{decode_component, Call, Client};
use super::error::{xml_blocks, xml_text};
use crate::store::PendingUpload;

impl Client {
    /// Every upload in progress under `prefix`, all pages (`key-marker`,
    /// `upload-id-marker`), oldest key first.
    pub async fn list_multipart_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<PendingUpload>> {
        let mut all = Vec::new();
        let (mut key_marker, mut id_marker) = (String::new(), String::new());
        loop {
            let mut call = Call::new(Method::GET, bucket, "")
                .query("uploads", None)
                .query("encoding-type", Some("url"))
                .query("max-uploads", Some("1000"));
            if !prefix.is_empty() {
                call = call.query("prefix", Some(prefix));
            }
            if !key_marker.is_empty() {
                call = call.query("key-marker", Some(&key_marker));
                call = call.query("upload-id-marker", Some(&id_marker));
            }
            let text = self.send(&call).await?.text().await.context("reading ListMultipartUploads answer")?;
            let url_encoded = xml_text(&text, "EncodingType").is_some_and(|e| e.eq_ignore_ascii_case("url"));
            let decode = |s: String| if url_encoded { decode_component(&s) } else { s };
            for block in xml_blocks(&text, "Upload") {
                all.push(PendingUpload {
                    key: decode(xml_text(block, "Key").context("ListMultipartUploads entry without Key")?),
                    upload_id: xml_text(block, "UploadId").context("ListMultipartUploads entry without UploadId")?,
                    initiated: xml_text(block, "Initiated"),
                });
            }
            let truncated = xml_text(&text, "IsTruncated").is_some_and(|t| t == "true");
            let next_key = xml_text(&text, "NextKeyMarker").map(decode).unwrap_or_default();
            let next_id = xml_text(&text, "NextUploadIdMarker").unwrap_or_default();
            if !truncated || next_key.is_empty() || (next_key == key_marker && next_id == id_marker) {
                return Ok(all);
            }
            (key_marker, id_marker) = (next_key, next_id);
        }
    }
}
