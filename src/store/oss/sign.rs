//! OSS request signing: [`sign`] picks V4 ([`super::sign_v4`]) or the legacy
//! V1 (HMAC-SHA1, below).
//!
//! V1
//! StringToSign = `VERB\nContent-MD5\nContent-Type\nDate\n` + the `x-oss-*`
//! headers (lower-case, sorted, `name:value\n`) + the canonicalized resource
//! `/bucket/key?signed-subresources`. Listing parameters are not signed.

use reqsign_core::hash::base64_hmac_sha1;

use super::sign_v4 as v4;

/// Query parameters that are part of the canonicalized resource (sorted when
/// signing). Anything else in the query (`prefix`, `marker`, `max-keys`,
/// `encoding-type`, ...) is not signed, as OSS does.
pub const SIGNED_SUBRESOURCES: &[&str] = &[
    "acl",
    "append",
    "bucketInfo",
    "cname",
    "comp",
    "continuation-token",
    "cors",
    "delete",
    "encryption",
    "endTime",
    "img",
    "inventory",
    "inventoryId",
    "lifecycle",
    "link",
    "live",
    "location",
    "logging",
    "objectMeta",
    "partNumber",
    "policy",
    "position",
    "qos",
    "referer",
    "replication",
    "replicationLocation",
    "replicationProgress",
    "requestPayment",
    "resourceGroup",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "security-token",
    "sequential",
    "startTime",
    "stat",
    "status",
    "storageCapacity",
    "storageInfo",
    "symlink",
    "tagging",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
    "worm",
    "wormExtend",
    "wormId",
    "x-oss-process",
];

/// Which signature scheme requests use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureVersion {
    /// Legacy HMAC-SHA1 (`OSS <id>:<sig>`): old accounts and OSS-compatible stores.
    V1,
    /// `OSS4-HMAC-SHA256`, scoped to a region such as `cn-hangzhou`.
    V4 {
        /// The region of the bucket (`cn-hangzhou`, not `oss-cn-hangzhou`).
        region: String,
    },
}

impl std::fmt::Display for SignatureVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureVersion::V1 => write!(f, "V1"),
            SignatureVersion::V4 { region } => write!(f, "V4 (region {region})"),
        }
    }
}

/// One request to sign: what it addresses and the headers it will carry.
pub struct Unsigned<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Bucket (empty for service calls).
    pub bucket: &'a str,
    /// Object key (empty for bucket calls).
    pub key: &'a str,
    /// Decoded query parameters.
    pub query: &'a [(String, Option<String>)],
}

/// Signs a request at Unix time `now`: adds the date, `x-oss-content-sha256`
/// (V4), the STS token and `Authorization` to `headers`. Returns the
/// StringToSign (never holds a secret), to compare with the server's.
pub fn sign(
    version: &SignatureVersion,
    cred: &reqsign_aliyun_oss::Credential,
    now: i64,
    request: &Unsigned<'_>,
    headers: &mut Vec<(String, String)>,
) -> String {
    if let Some(token) = cred.security_token.as_deref().filter(|t| !t.is_empty()) {
        headers.push(("x-oss-security-token".into(), token.to_string()));
    }
    let find = |headers: &[(String, String)], name: &str| {
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    match version {
        SignatureVersion::V1 => {
            let date =
                httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.max(0) as u64));
            headers.push(("Date".into(), date.clone()));
            let resource = canonical_resource(request.bucket, request.key, request.query);
            let sts = string_to_sign(
                request.method,
                &find(headers, "content-md5"),
                &find(headers, "content-type"),
                &date,
                headers,
                &resource,
            );
            headers.push((
                "Authorization".into(),
                format!("OSS {}:{}", cred.access_key_id, signature(&cred.access_key_secret, &sts)),
            ));
            sts
        }
        SignatureVersion::V4 { region } => {
            let datetime = v4::iso8601(now);
            let date = &datetime[..8];
            headers.push(("x-oss-date".into(), datetime.clone()));
            headers.push(("x-oss-content-sha256".into(), v4::UNSIGNED_PAYLOAD.into()));
            let canonical =
                v4::canonical_request(request.method, request.bucket, request.key, request.query, headers, &[]);
            let sts = v4::string_to_sign(&datetime, region, &canonical);
            let sig = v4::signature(&cred.access_key_secret, date, region, &sts);
            headers.push(("Authorization".into(), v4::authorization(&cred.access_key_id, date, region, &[], &sig)));
            sts
        }
    }
}

/// base64(HMAC-SHA1(secret, string_to_sign)).
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    base64_hmac_sha1(secret.as_bytes(), string_to_sign.as_bytes())
}

/// The canonicalized resource: `/bucket/key` (key raw, not URL-encoded), or
/// `/bucket/` for bucket-level calls, then the signed sub-resources sorted.
/// `query` holds decoded `(name, value)` pairs; `None` is a bare `name`.
pub fn canonical_resource(bucket: &str, key: &str, query: &[(String, Option<String>)]) -> String {
    let mut resource = if bucket.is_empty() { "/".to_string() } else { format!("/{bucket}/{key}") };
    let mut signed: Vec<&(String, Option<String>)> =
        query.iter().filter(|(name, _)| SIGNED_SUBRESOURCES.contains(&name.as_str())).collect();
    signed.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, value)) in signed.iter().enumerate() {
        resource.push(if i == 0 { '?' } else { '&' });
        resource.push_str(name);
        if let Some(value) = value {
            resource.push('=');
            resource.push_str(value);
        }
    }
    resource
}

/// The full StringToSign. `headers` are all the request's headers (any case);
/// only `x-oss-*` ones are taken, lower-cased, trimmed and sorted.
pub fn string_to_sign(
    verb: &str,
    content_md5: &str,
    content_type: &str,
    date: &str,
    headers: &[(String, String)],
    resource: &str,
) -> String {
    let mut oss: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .filter(|(name, _)| name.starts_with("x-oss-"))
        .collect();
    oss.sort();
    let mut text = format!("{verb}\n{content_md5}\n{content_type}\n{date}\n");
    for (name, value) in oss {
        text.push_str(&name);
        text.push(':');
        text.push_str(&value);
        text.push('\n');
    }
    text.push_str(resource);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> Vec<(String, String)> {
        [
            ("Content-MD5", "eB5eJF1ptWaXm4bijSPyxw=="),
            ("Content-Type", "text/html"),
            ("x-oss-meta-author", "alice"),
            ("x-oss-meta-magic", "abracadabra"),
            ("x-oss-date", "Wed, 28 Dec 2022 10:27:41 GMT"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Alibaba Cloud's published example, from aliyun/alibabacloud-oss-python-sdk-v2,
    /// tests/unit/signer/test_v1.py, `test_auth_header_1` (the request of the
    /// "Include a V1 signature in the header" doc page, with ak/sk credentials).
    #[test]
    fn published_example_put_object() {
        let resource = canonical_resource("examplebucket", "nelson", &[]);
        let sts = string_to_sign(
            "PUT",
            "eB5eJF1ptWaXm4bijSPyxw==",
            "text/html",
            "Wed, 28 Dec 2022 10:27:41 GMT",
            &headers(),
            &resource,
        );
        assert_eq!(
            sts,
            "PUT\neB5eJF1ptWaXm4bijSPyxw==\ntext/html\nWed, 28 Dec 2022 10:27:41 GMT\nx-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\nx-oss-meta-author:alice\nx-oss-meta-magic:abracadabra\n/examplebucket/nelson"
        );
        assert_eq!(signature("sk", &sts), "kSHKmLxlyEAKtZPkJhG9bZb5k7M=");
    }

    /// Same source, `test_auth_header_2`: a signed sub-resource (`?acl`).
    #[test]
    fn published_example_with_subresource() {
        let resource = canonical_resource("examplebucket", "nelson", &[("acl".into(), None)]);
        let sts = string_to_sign(
            "PUT",
            "eB5eJF1ptWaXm4bijSPyxw==",
            "text/html",
            "Wed, 28 Dec 2022 10:27:41 GMT",
            &headers(),
            &resource,
        );
        assert!(sts.ends_with("\n/examplebucket/nelson?acl"));
        assert_eq!(signature("sk", &sts), "/afkugFbmWDQ967j1vr6zygBLQk=");
    }

    /// Same source, `test_auth_header_4`: bucket-level, sub-resources sorted
    /// (`?resourceGroup&acl` signs as `?acl&resourceGroup`).
    #[test]
    fn published_example_sorted_subresources() {
        let date = "Wed, 28 Dec 2022 10:27:41 GMT";
        let hdrs = vec![("x-oss-date".to_string(), date.to_string())];
        let resource = canonical_resource("examplebucket", "", &[("resourceGroup".into(), None), ("acl".into(), None)]);
        assert_eq!(resource, "/examplebucket/?acl&resourceGroup");
        let sts = string_to_sign("GET", "", "", date, &hdrs, &resource);
        assert_eq!(signature("sk", &sts), "x3E5TgOvl/i7PN618s5mEvpJDYk=");
    }

    #[test]
    fn listing_parameters_are_not_signed() {
        let query = [
            ("prefix".to_string(), Some("a/".to_string())),
            ("marker".to_string(), Some("a/b".to_string())),
            ("max-keys".to_string(), Some("2".to_string())),
            ("uploadId".to_string(), Some("U1".to_string())),
            ("partNumber".to_string(), Some("3".to_string())),
        ];
        assert_eq!(canonical_resource("b", "k", &query), "/b/k?partNumber=3&uploadId=U1");
    }

    /// Go SDK v2 `TestV1AuthHeader` case 3: unknown parameters are not signed.
    #[test]
    fn published_example_unsigned_parameter() {
        let date = "Wed, 28 Dec 2022 10:27:41 GMT";
        let hdrs = vec![("x-oss-date".to_string(), date.to_string())];
        let query = [("resourceGroup".to_string(), None), ("non-resousce".to_string(), Some("null".to_string()))];
        let sts = string_to_sign("GET", "", "", date, &hdrs, &canonical_resource("examplebucket", "", &query));
        assert_eq!(signature("sk", &sts), "vkQmfuUDyi1uDi3bKt67oemssIs=");
    }

    /// The published V4 vector through the entry point the client calls.
    #[test]
    fn sign_produces_the_published_v4_authorization() {
        let cred = reqsign_aliyun_oss::Credential {
            access_key_id: "ak".into(),
            access_key_secret: "sk".into(),
            security_token: None,
            expires_in: None,
        };
        let query = crate::store::oss::sign_v4::tests::vector_query();
        let mut headers = crate::store::oss::sign_v4::tests::vector_request_headers();
        let request = Unsigned { method: "PUT", bucket: "bucket", key: "1234+-/123/1.txt", query: &query };
        let v4 = SignatureVersion::V4 { region: "cn-hangzhou".into() };
        sign(&v4, &cred, 1702743657, &request, &mut headers);
        let authorization = headers.iter().find(|(n, _)| n == "Authorization").map(|(_, v)| v.as_str());
        assert_eq!(
            authorization,
            Some("OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe")
        );
    }

    #[test]
    fn sign_adds_what_each_version_needs() {
        let cred = reqsign_aliyun_oss::Credential {
            access_key_id: "ak".into(),
            access_key_secret: "sk".into(),
            security_token: Some("tok".into()),
            expires_in: None,
        };
        let request = Unsigned { method: "GET", bucket: "b", key: "k", query: &[] };
        let mut headers = Vec::new();
        let v4 = SignatureVersion::V4 { region: "cn-hangzhou".into() };
        let sts = sign(&v4, &cred, 1702743657, &request, &mut headers);
        assert!(sts.starts_with("OSS4-HMAC-SHA256\n20231216T162057Z\n20231216/cn-hangzhou/oss/aliyun_v4_request\n"));
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-oss-security-token", "x-oss-date", "x-oss-content-sha256", "Authorization"]);
        let mut headers = Vec::new();
        let sts = sign(&SignatureVersion::V1, &cred, 1702743657, &request, &mut headers);
        assert_eq!(sts, "GET\n\n\nSat, 16 Dec 2023 16:20:57 GMT\nx-oss-security-token:tok\n/b/k");
        assert!(headers.iter().any(|(n, v)| n == "Authorization" && v.starts_with("OSS ak:")));
    }
}
