//! The suite OSS server's signature check: V4 (`OSS4-HMAC-SHA256`) and the
//! legacy V1, written from Alibaba's documentation and independent of the
//! library's signer (its own encoding, canonical forms and HMACs), so a test
//! that passes proves the client signs as OSS verifies.
//!
//! Like OSS: a wrong region answers 400 InvalidArgument; a bad signature 403
//! SignatureDoesNotMatch with the StringToSign (and V4 CanonicalRequest);
//! dates more than 15 minutes off 403 RequestTimeTooSkewed; STS keys need
//! their `x-oss-security-token` and stop working when they expire; a V4-only
//! server refuses V1 with 403 AccessDenied, as new buckets do.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// A key pair the server accepts; STS ones carry a token and an expiry.
#[derive(Clone, Debug)]
pub struct Key {
    /// AccessKeyId.
    pub id: String,
    /// AccessKeySecret.
    pub secret: String,
    /// Required `x-oss-security-token` (STS keys).
    pub token: Option<String>,
    /// When an STS key stops working.
    pub expires: Option<SystemTime>,
}

/// What the server accepts.
#[derive(Clone, Debug)]
pub struct Auth {
    /// Accepted keys.
    pub keys: Vec<Key>,
    /// The bucket's region, checked in V4 scopes.
    pub region: String,
    /// Whether V1 signatures are accepted (new buckets: no).
    pub accept_v1: bool,
}

/// A refusal: HTTP status, error code, message and extra XML elements.
#[derive(Debug)]
pub struct Denied {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub extra: Vec<(&'static str, String)>,
}

/// OSS's SignatureDoesNotMatch answer: what it computed, for the client to compare.
fn signature_mismatch(given: &str, id: &str, string_to_sign: String, canonical: Option<String>) -> Denied {
    let mut extra = vec![("SignatureProvided", given.to_string()), ("StringToSign", string_to_sign)];
    extra.extend(canonical.map(|c| ("CanonicalRequest", c)));
    extra.push(("OSSAccessKeyId", id.to_string()));
    Denied {
        status: 403,
        code: "SignatureDoesNotMatch",
        message: "The request signature we calculated does not match the signature you provided. Check your key and signing method.".into(),
        extra,
    }
}

fn denied(status: u16, code: &'static str, message: &str) -> Denied {
    Denied { status, code, message: message.to_string(), extra: Vec::new() }
}

/// The parts of a request the check reads. `query` is decoded.
pub struct Signed<'a> {
    pub method: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub query: &'a [(String, Option<String>)],
    pub headers: &'a [(String, String)],
}

impl Signed<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Checks a request's signature at server time `now`.
pub fn check(auth: &Auth, now: SystemTime, request: &Signed<'_>) -> Result<(), Denied> {
    let Some(authorization) = request.header("authorization") else {
        return Err(denied(403, "AccessDenied", "You are forbidden to access this resource (anonymous)."));
    };
    if let Some(rest) = authorization.strip_prefix("OSS4-HMAC-SHA256 ") {
        check_v4(auth, now, request, rest)
    } else if let Some(rest) = authorization.strip_prefix("OSS ") {
        if !auth.accept_v1 {
            return Err(denied(403, "AccessDenied", "The bucket does not accept V1 signatures; use OSS4-HMAC-SHA256."));
        }
        check_v1(auth, now, request, rest)
    } else {
        Err(denied(400, "InvalidArgument", "Authorization header is invalid."))
    }
}

fn find_key<'a>(auth: &'a Auth, id: &str, request: &Signed<'_>, now: SystemTime) -> Result<&'a Key, Denied> {
    let Some(key) = auth.keys.iter().find(|k| k.id == id) else {
        return Err(denied(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
        ));
    };
    if let Some(token) = &key.token {
        if request.header("x-oss-security-token") != Some(token.as_str()) {
            return Err(denied(403, "InvalidSecurityToken", "The security token you provided is invalid."));
        }
        if key.expires.is_some_and(|e| now >= e) {
            return Err(denied(403, "InvalidSecurityToken", "The security token you provided has expired."));
        }
    }
    Ok(key)
}

fn within_window(now: SystemTime, when: SystemTime) -> Result<(), Denied> {
    let skew = now.duration_since(when).or_else(|_| when.duration_since(now)).unwrap_or_default();
    if skew > Duration::from_secs(15 * 60) {
        return Err(denied(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        ));
    }
    Ok(())
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// OSS's V4 encoding: unreserved bytes kept, the rest `%XX` upper-case.
fn uri_encode(text: &str, slash: bool) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `yyyymmddThhmmssZ` to a time.
fn parse_iso8601(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(4..6)?, num(6..8)?, num(9..11)?, num(11..13)?, num(13..15)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn check_v4(auth: &Auth, now: SystemTime, request: &Signed<'_>, fields: &str) -> Result<(), Denied> {
    let mut credential = None;
    let mut additional = "";
    let mut given = None;
    for field in fields.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("AdditionalHeaders", v)) => additional = v,
            Some(("Signature", v)) => given = Some(v),
            _ => return Err(denied(400, "InvalidArgument", "Authorization header is invalid.")),
        }
    }
    let (Some(credential), Some(given)) = (credential, given) else {
        return Err(denied(400, "InvalidArgument", "Authorization header is invalid."));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [id, date, region, product, terminator] = parts[..] else {
        return Err(denied(400, "InvalidArgument", "Invalid credential in Authorization header."));
    };
    let key = find_key(auth, id, request, now)?;
    if product != "oss" || terminator != "aliyun_v4_request" {
        return Err(denied(400, "InvalidArgument", "Invalid credential in Authorization header."));
    }
    if region != auth.region {
        return Err(denied(400, "InvalidArgument", "Invalid signing region in Authorization header."));
    }
    let datetime = request.header("x-oss-date").unwrap_or("");
    let Some(when) = parse_iso8601(datetime) else {
        return Err(denied(403, "AccessDenied", "V4 requests need x-oss-date as yyyymmddThhmmssZ."));
    };
    within_window(now, when)?;
    if !datetime.starts_with(date) {
        return Err(denied(400, "InvalidArgument", "Invalid signing date in Authorization header."));
    }
    if request.header("x-oss-content-sha256").is_none() {
        return Err(denied(400, "InvalidArgument", "Missing required header for this request: x-oss-content-sha256."));
    }
    let additional: Vec<String> =
        additional.split(';').filter(|h| !h.is_empty()).map(str::to_ascii_lowercase).collect();
    for name in &additional {
        if request.header(name).is_none() {
            return Err(denied(
                400,
                "InvalidArgument",
                &format!("AdditionalHeaders names {name}, which the request lacks."),
            ));
        }
    }

    let mut uri = String::from("/");
    if !request.bucket.is_empty() {
        uri.push_str(&uri_encode(request.bucket, true));
        uri.push('/');
        uri.push_str(&uri_encode(request.key, true));
    }
    let mut query: Vec<String> = request
        .query
        .iter()
        .map(|(k, v)| match v.as_deref().unwrap_or("") {
            "" => uri_encode(k, false),
            v => format!("{}={}", uri_encode(k, false), uri_encode(v, false)),
        })
        .collect();
    query.sort_by(|a, b| a.split('=').next().cmp(&b.split('=').next()).then(a.cmp(b)));
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| n.starts_with("x-oss-") || n == "content-type" || n == "content-md5" || additional.contains(n))
        .collect();
    headers.sort();
    let header_lines: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{uri}\n{}\n{header_lines}\n{}\n{}",
        request.method,
        query.join("&"),
        additional.join(";"),
        request.header("x-oss-content-sha256").unwrap_or_default()
    );
    let scope = format!("{date}/{region}/oss/aliyun_v4_request");
    let string_to_sign =
        format!("OSS4-HMAC-SHA256\n{datetime}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
    let mut signing_key = hmac256(format!("aliyun_v4{}", key.secret).as_bytes(), date.as_bytes());
    for part in [region, "oss", "aliyun_v4_request"] {
        signing_key = hmac256(&signing_key, part.as_bytes());
    }
    let expected = hex::encode(hmac256(&signing_key, string_to_sign.as_bytes()));
    if expected != given {
        return Err(signature_mismatch(given, id, string_to_sign, Some(canonical)));
    }
    Ok(())
}

/// Sub-resources that V1 signs (from OSS's V1 documentation); every other
/// query parameter is left out of the signature.
const V1_SUBRESOURCES: &[&str] = &[
    "acl",
    "uploads",
    "location",
    "cors",
    "logging",
    "website",
    "referer",
    "lifecycle",
    "delete",
    "append",
    "tagging",
    "objectMeta",
    "uploadId",
    "partNumber",
    "security-token",
    "position",
    "img",
    "style",
    "styleName",
    "replication",
    "replicationProgress",
    "replicationLocation",
    "cname",
    "bucketInfo",
    "comp",
    "qos",
    "live",
    "status",
    "vod",
    "startTime",
    "endTime",
    "symlink",
    "x-oss-process",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "udf",
    "udfName",
    "udfImage",
    "udfId",
    "udfImageDesc",
    "udfApplication",
    "udfApplicationLog",
    "restore",
    "callback",
    "callback-var",
    "policy",
    "stat",
    "encryption",
    "versions",
    "versioning",
    "versionId",
    "requestPayment",
    "x-oss-request-payer",
    "sequential",
    "inventory",
    "inventoryId",
    "continuation-token",
    "worm",
    "wormId",
    "wormExtend",
    "resourceGroup",
];

fn check_v1(auth: &Auth, now: SystemTime, request: &Signed<'_>, rest: &str) -> Result<(), Denied> {
    let Some((id, given)) = rest.split_once(':') else {
        return Err(denied(400, "InvalidArgument", "Authorization header is invalid."));
    };
    let key = find_key(auth, id, request, now)?;
    let date = request.header("date").unwrap_or("");
    let Ok(when) = httpdate::parse_http_date(date) else {
        return Err(denied(403, "AccessDenied", "OSS authentication requires a valid Date."));
    };
    within_window(now, when)?;
    let mut oss: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| n.starts_with("x-oss-"))
        .collect();
    oss.sort();
    let mut resource =
        if request.bucket.is_empty() { "/".to_string() } else { format!("/{}/{}", request.bucket, request.key) };
    let mut sub: Vec<&(String, Option<String>)> =
        request.query.iter().filter(|(k, _)| V1_SUBRESOURCES.contains(&k.as_str())).collect();
    sub.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (k, v)) in sub.iter().enumerate() {
        resource.push_str(if i == 0 { "?" } else { "&" });
        resource.push_str(k);
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            resource.push('=');
            resource.push_str(v);
        }
    }
    let string_to_sign = format!(
        "{}\n{}\n{}\n{date}\n{}{resource}",
        request.method,
        request.header("content-md5").unwrap_or(""),
        request.header("content-type").unwrap_or(""),
        oss.iter().map(|(n, v)| format!("{n}:{v}\n")).collect::<String>()
    );
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key.secret.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if expected != given {
        return Err(signature_mismatch(given, id, string_to_sign, None));
    }
    Ok(())
}

#[cfg(test)]
#[path = "oss_auth_tests.rs"]
mod tests;
