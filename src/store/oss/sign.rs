//! OSS V1 request signing (HMAC-SHA1), shared by the client and the test server.
//!
//! StringToSign = `VERB\nContent-MD5\nContent-Type\nDate\n` + the `x-oss-*`
//! headers (lower-case, sorted, `name:value\n`) + the canonicalized resource
//! `/bucket/key?signed-subresources`. Listing parameters are not signed.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

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

/// Access key pair and optional STS token. The secret never leaves this
/// struct except into the HMAC: `Debug` redacts it and nothing prints it.
#[derive(Clone)]
pub struct Credentials {
    /// The AccessKeyId (not secret; shown in messages).
    pub access_key_id: String,
    access_key_secret: String,
    /// STS security token, sent as `x-oss-security-token`.
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("security_token", &self.security_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// A key pair, with an STS token if there is one.
    pub fn new(
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<String>,
        security_token: Option<String>,
    ) -> Self {
        Self { access_key_id: access_key_id.into(), access_key_secret: access_key_secret.into(), security_token }
    }

    /// `OSS <AccessKeyId>:<signature>` for a StringToSign.
    pub fn authorization(&self, string_to_sign: &str) -> String {
        format!("OSS {}:{}", self.access_key_id, signature(&self.access_key_secret, string_to_sign))
    }

    /// Whether `text` contains the secret (tests and a last guard on messages).
    pub fn leaks_into(&self, text: &str) -> bool {
        !self.access_key_secret.is_empty() && text.contains(&self.access_key_secret)
    }
}

/// base64(HMAC-SHA1(secret, string_to_sign)).
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
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
        let creds = Credentials::new("ak", "sk", None);
        assert_eq!(creds.authorization(&sts), "OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M=");
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

    #[test]
    fn debug_redacts_the_secret() {
        let creds = Credentials::new("id", "very-secret", Some("tok".into()));
        let text = format!("{creds:?}");
        assert!(!text.contains("very-secret") && !text.contains("tok\""));
        assert!(creds.leaks_into("x very-secret y"));
    }
}
