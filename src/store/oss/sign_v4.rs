//! OSS V4 request signing (`OSS4-HMAC-SHA256`), as Alibaba's SDKs do it.
//!
//! Canonical request = `VERB\nURI\nQUERY\nHEADERS\n\nADDITIONAL\nUNSIGNED-PAYLOAD`,
//! with URI `/bucket/key` percent-encoded (`/` kept), every query parameter
//! signed, and the `x-oss-*`, `content-type` and `content-md5` headers plus
//! any listed in AdditionalHeaders. The key is an HMAC-SHA256 chain from
//! `aliyun_v4<secret>` over date, region, `oss`, `aliyun_v4_request`.

use reqsign_core::hash::{hex_hmac_sha256, hex_sha256, hmac_sha256};

use super::endpoint::percent_encode;

/// The algorithm name in the Authorization header and StringToSign.
pub const ALGORITHM: &str = "OSS4-HMAC-SHA256";
/// Sent as `x-oss-content-sha256`: the body is not hashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Whether a header is signed without being listed in AdditionalHeaders.
pub fn is_default_signed(lower_name: &str) -> bool {
    lower_name.starts_with("x-oss-") || lower_name == "content-type" || lower_name == "content-md5"
}

/// The AdditionalHeaders to sign: requested names, lower-cased, sorted,
/// without default-signed ones and without names the request does not carry.
pub fn additional_headers(requested: &[&str], headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = requested
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .filter(|n| !is_default_signed(n) && headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n)))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The canonical request. `query` holds decoded `(name, value)` pairs
/// (`None` or empty: a bare name); `headers` all the request's headers.
pub fn canonical_request(
    method: &str,
    bucket: &str,
    key: &str,
    query: &[(String, Option<String>)],
    headers: &[(String, String)],
    additional: &[String],
) -> String {
    let uri = match (bucket.is_empty(), key.is_empty()) {
        (true, _) => "/".to_string(),
        (false, true) => format!("/{}/", percent_encode(bucket, true)),
        (false, false) => format!("/{}/{}", percent_encode(bucket, true), percent_encode(key, true)),
    };
    let mut params: Vec<(String, String)> = query
        .iter()
        .map(|(name, value)| (percent_encode(name, false), percent_encode(value.as_deref().unwrap_or(""), false)))
        .collect();
    params.sort();
    let query = params
        .iter()
        .map(|(n, v)| if v.is_empty() { n.clone() } else { format!("{n}={v}") })
        .collect::<Vec<_>>()
        .join("&");
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| is_default_signed(n) || additional.contains(n))
        .collect();
    signed.sort();
    let mut text = format!("{method}\n{uri}\n{query}\n");
    for (name, value) in signed {
        text.push_str(&format!("{name}:{value}\n"));
    }
    text.push('\n');
    text.push_str(&additional.join(";"));
    text.push('\n');
    text.push_str(UNSIGNED_PAYLOAD);
    text
}

/// `<yyyymmdd>/<region>/oss/aliyun_v4_request`.
pub fn scope(date: &str, region: &str) -> String {
    format!("{date}/{region}/oss/aliyun_v4_request")
}

/// The StringToSign for a canonical request signed at `datetime`
/// (`yyyymmddThhmmssZ`).
pub fn string_to_sign(datetime: &str, region: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{datetime}\n{}\n{}", scope(&datetime[..8], region), hex_sha256(canonical_request.as_bytes()))
}

/// The hex signature of a StringToSign.
pub fn signature(secret: &str, date: &str, region: &str, string_to_sign: &str) -> String {
    let key = hmac_sha256(format!("aliyun_v4{secret}").as_bytes(), date.as_bytes());
    let key = hmac_sha256(&key, region.as_bytes());
    let key = hmac_sha256(&key, b"oss");
    let key = hmac_sha256(&key, b"aliyun_v4_request");
    hex_hmac_sha256(&key, string_to_sign.as_bytes())
}

/// The Authorization header value.
pub fn authorization(access_key_id: &str, date: &str, region: &str, additional: &[String], signature: &str) -> String {
    let scope = scope(date, region);
    if additional.is_empty() {
        format!("{ALGORITHM} Credential={access_key_id}/{scope},Signature={signature}")
    } else {
        format!(
            "{ALGORITHM} Credential={access_key_id}/{scope},AdditionalHeaders={},Signature={signature}",
            additional.join(";")
        )
    }
}

/// `yyyymmddThhmmssZ` for a Unix time.
pub fn iso8601(unix_secs: i64) -> String {
    let (days, secs) = (unix_secs.div_euclid(86_400), unix_secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The request of Alibaba's published V4 vectors: Go SDK v2
    /// `oss/signer/signer_test.go` (`TestV4AuthHeader*`) and Python SDK v2
    /// `tests/unit/signer/test_v4.py` (`test_auth_header*`) use the same one.
    fn vector_headers(datetime: &str, token: Option<&str>) -> Vec<(String, String)> {
        let mut headers = vector_request_headers();
        headers.push(("x-oss-content-sha256".into(), "UNSIGNED-PAYLOAD".into()));
        headers.push(("x-oss-date".into(), datetime.into()));
        if let Some(token) = token {
            headers.push(("x-oss-security-token".into(), token.into()));
        }
        headers
    }

    /// The headers the published V4 request carries before it is signed
    /// (sign.rs's tests use them too: `sign()` adds the rest).
    pub(in crate::store::oss) fn vector_request_headers() -> Vec<(String, String)> {
        [
            ("x-oss-head1", "value"),
            ("abc", "value"),
            ("ZAbc", "value"),
            ("XYZ", "value"),
            ("content-type", "text/plain"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
    }

    /// The query of Alibaba's published V4 vectors (sign.rs's tests use it too).
    pub(in crate::store::oss) fn vector_query() -> Vec<(String, Option<String>)> {
        [
            ("param1", "value1"),
            ("+param1", "value3"),
            ("|param1", "value4"),
            ("+param2", ""),
            ("|param2", ""),
            ("param2", ""),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), Some(v.to_string())))
        .collect()
    }

    fn sign_vector(unix: i64, token: Option<&str>, requested: &[&str]) -> String {
        let datetime = iso8601(unix);
        let headers = vector_headers(&datetime, token);
        let additional = additional_headers(requested, &headers);
        let canonical = canonical_request("PUT", "bucket", "1234+-/123/1.txt", &vector_query(), &headers, &additional);
        let sts = string_to_sign(&datetime, "cn-hangzhou", &canonical);
        let sig = signature("sk", &datetime[..8], "cn-hangzhou", &sts);
        authorization("ak", &datetime[..8], "cn-hangzhou", &additional, &sig)
    }

    #[test]
    fn published_v4_header_vector() {
        assert_eq!(
            sign_vector(1702743657, None, &[]),
            "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"
        );
    }

    #[test]
    fn published_v4_header_vector_with_token() {
        assert_eq!(
            sign_vector(1702784856, Some("token"), &[]),
            "OSS4-HMAC-SHA256 Credential=ak/20231217/cn-hangzhou/oss/aliyun_v4_request,Signature=b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea"
        );
    }

    #[test]
    fn published_v4_header_vector_with_additional_headers() {
        let expected = "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,AdditionalHeaders=abc;zabc,Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f";
        assert_eq!(sign_vector(1702747512, None, &["ZAbc", "abc"]), expected);
        // Default-signed and absent names drop out of the list.
        assert_eq!(sign_vector(1702747512, None, &["x-oss-no-exist", "ZAbc", "x-oss-head1", "abc"]), expected);
    }

    #[test]
    fn canonical_request_shape() {
        let headers = vec![("X-Oss-Date".to_string(), "20231216T162057Z".to_string())];
        let query =
            vec![("uploadId".to_string(), Some("a/b".to_string())), ("partNumber".to_string(), Some("2".to_string()))];
        let text = canonical_request("PUT", "b", "a b/ü+%?=&", &query, &headers, &[]);
        assert_eq!(
            text,
            "PUT\n/b/a%20b/%C3%BC%2B%25%3F%3D%26\npartNumber=2&uploadId=a%2Fb\nx-oss-date:20231216T162057Z\n\n\nUNSIGNED-PAYLOAD"
        );
        assert!(canonical_request("GET", "b", "", &[], &[], &[]).starts_with("GET\n/b/\n"));
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(1702743657), "20231216T162057Z");
        assert_eq!(iso8601(0), "19700101T000000Z");
        assert_eq!(iso8601(951_782_400), "20000229T000000Z");
    }
}
