//! OSS error answers: the XML body (`Code`, `Message`, `RequestId`) turned
//! into one clear line, and the few XML helpers the client needs.
//!
//! The messages name the likely fix (wrong key pair, clock, bucket name); the
//! server's StringToSign is kept for debug output only (it never holds the
//! secret, but it is noise for users).

use std::fmt;

/// An error answer from OSS.
#[derive(Clone, Debug, Default)]
pub struct OssError {
    /// HTTP status.
    pub status: u16,
    /// OSS error code, e.g. `NoSuchKey` (empty if the body was not XML).
    pub code: String,
    /// OSS's message.
    pub message: String,
    /// `x-oss-request-id` / `RequestId`, for support tickets.
    pub request_id: String,
    /// The server's StringToSign on `SignatureDoesNotMatch`.
    pub string_to_sign: Option<String>,
    /// The bucket the request was for.
    pub bucket: String,
    /// The key the request was for (may be empty).
    pub key: String,
}

impl OssError {
    /// Parses an error body (XML, or anything for a HEAD without body).
    pub fn from_response(status: u16, body: &str, request_id: Option<&str>, bucket: &str, key: &str) -> Self {
        let mut code = xml_text(body, "Code").unwrap_or_default();
        if code.is_empty() {
            // HEAD answers have no body: name the usual codes from the status.
            code = match status {
                404 if key.is_empty() => "NoSuchBucket".into(),
                404 => "NoSuchKey".into(),
                403 => "AccessDenied".into(),
                _ => String::new(),
            };
        }
        Self {
            status,
            code,
            message: xml_text(body, "Message").unwrap_or_default(),
            request_id: xml_text(body, "RequestId").or(request_id.map(str::to_string)).unwrap_or_default(),
            string_to_sign: xml_text(body, "StringToSign"),
            bucket: bucket.to_string(),
            key: key.to_string(),
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.status >= 500 || self.status == 408 || self.status == 429
    }

    /// Whether the object (or upload) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.code.as_str(), "NoSuchKey" | "NoSuchUpload")
            || (self.status == 404 && self.code != "NoSuchBucket")
    }

    /// Whether the object exists and overwriting was forbidden.
    pub fn is_already_exists(&self) -> bool {
        self.code == "FileAlreadyExists" || self.status == 409 && self.code.is_empty()
    }
}

impl fmt::Display for OssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code.as_str() {
            "SignatureDoesNotMatch" => write!(f, "wrong AccessKeyId/AccessKeySecret (SignatureDoesNotMatch)")?,
            "InvalidAccessKeyId" => write!(f, "unknown AccessKeyId (InvalidAccessKeyId)")?,
            "RequestTimeTooSkewed" => write!(
                f,
                "this machine's clock is more than 15 minutes off OSS's (RequestTimeTooSkewed): check the clock and its time zone, e.g. enable NTP"
            )?,
            "NoSuchBucket" => write!(f, "bucket {:?} does not exist (NoSuchBucket)", self.bucket)?,
            "NoSuchKey" => write!(f, "no object {:?} in bucket {:?} (NoSuchKey)", self.key, self.bucket)?,
            "AccessDenied" => write!(f, "access denied to bucket {:?} (AccessDenied): check the key pair's permissions", self.bucket)?,
            "FileAlreadyExists" => write!(f, "object {:?} already exists (FileAlreadyExists)", self.key)?,
            "InvalidDigest" => write!(f, "OSS received different bytes than were sent (InvalidDigest)")?,
            "" => write!(f, "OSS answered HTTP {}", self.status)?,
            code if self.message.is_empty() => write!(f, "OSS error {code} (HTTP {})", self.status)?,
            code => write!(f, "OSS error {code} (HTTP {}): {}", self.status, self.message)?,
        }
        if !self.request_id.is_empty() {
            write!(f, " [request id {}]", self.request_id)?;
        }
        Ok(())
    }
}

impl std::error::Error for OssError {}

/// The text of the first `<tag>...</tag>` in `xml`, unescaped.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    xml_all(xml, tag).into_iter().next()
}

/// The texts of every `<tag>...</tag>` in `xml`, unescaped, in order.
pub fn xml_all(xml: &str, tag: &str) -> Vec<String> {
    xml_blocks(xml, tag).into_iter().map(unescape).collect()
}

/// The raw inner XML of every `<tag>...</tag>` in `xml`, in order.
pub fn xml_blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// Undoes XML escaping (`&amp;` and friends, numeric references).
pub fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if entity.starts_with("#x") => u32::from_str_radix(&entity[2..], 16).ok().and_then(char::from_u32),
            _ if entity.starts_with('#') => entity[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=semi]),
        }
        rest = &tail[semi + 1..];
    }
    out.push_str(rest);
    out
}

/// XML-escapes text for a request body.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNATURE_ERROR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>SignatureDoesNotMatch</Code>
  <Message>The request signature we calculated does not match the signature you provided.</Message>
  <RequestId>5C3D9175B6FC201293AD****</RequestId>
  <HostId>oss-example.oss-cn-hangzhou.aliyuncs.com</HostId>
  <StringToSign>GET&#xA;&#xA;&#xA;Sat, 08 Sep 2012 08:47:22 GMT&#xA;/b/k</StringToSign>
</Error>"#;

    #[test]
    fn parses_error_bodies() {
        let err = OssError::from_response(403, SIGNATURE_ERROR, None, "b", "k");
        assert_eq!(err.code, "SignatureDoesNotMatch");
        assert_eq!(err.request_id, "5C3D9175B6FC201293AD****");
        assert_eq!(err.string_to_sign.as_deref(), Some("GET\n\n\nSat, 08 Sep 2012 08:47:22 GMT\n/b/k"));
        assert!(err.to_string().starts_with("wrong AccessKeyId/AccessKeySecret (SignatureDoesNotMatch)"));
        assert!(!err.is_retryable());
    }

    #[test]
    fn head_errors_have_no_body() {
        assert_eq!(OssError::from_response(404, "", Some("R1"), "b", "k").code, "NoSuchKey");
        assert!(OssError::from_response(503, "", None, "b", "k").is_retryable());
        let skew = OssError { code: "RequestTimeTooSkewed".into(), status: 403, ..Default::default() };
        assert!(skew.to_string().contains("clock"));
    }

    #[test]
    fn unescapes_entities() {
        assert_eq!(unescape("a&amp;b&lt;&#65;&#x42;&bogus;"), "a&b<AB&bogus;");
        assert_eq!(xml_all("<K>1</K><K>2</K>", "K"), vec!["1", "2"]);
        assert_eq!(unescape(&escape("<&'\">")), "<&'\">");
    }
}
