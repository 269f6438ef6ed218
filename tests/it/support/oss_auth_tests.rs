//! The suite server's signature check against Alibaba's published examples.

use super::*;

/// The server's own check accepts Alibaba's published V4 requests (Go SDK
/// v2 signer_test.go / Python SDK v2 test_v4.py) and refuses them altered.
#[test]
fn published_v4_vectors_verify() {
    let auth = Auth {
        keys: vec![Key { id: "ak".into(), secret: "sk".into(), token: None, expires: None }],
        region: "cn-hangzhou".into(),
        accept_v1: false,
    };
    let query: Vec<(String, Option<String>)> = [
        ("param1", "value1"),
        ("+param1", "value3"),
        ("|param1", "value4"),
        ("+param2", ""),
        ("|param2", ""),
        ("param2", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), Some(v.to_string())))
    .collect();
    let cases = [
        (1702743657, "20231216T162057Z", "Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"),
        (1702747512, "20231216T172512Z", "Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,AdditionalHeaders=abc;zabc,Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f"),
    ];
    for (unix, date, fields) in cases {
        let mut headers: Vec<(String, String)> = [
            ("x-oss-head1", "value"),
            ("abc", "value"),
            ("ZAbc", "value"),
            ("XYZ", "value"),
            ("content-type", "text/plain"),
            ("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
            ("x-oss-date", date),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        headers.push(("Authorization".into(), format!("OSS4-HMAC-SHA256 {fields}")));
        let now = UNIX_EPOCH + Duration::from_secs(unix);
        let request =
            Signed { method: "PUT", bucket: "bucket", key: "1234+-/123/1.txt", query: &query, headers: &headers };
        assert!(check(&auth, now, &request).is_ok(), "{fields}");
        let other = Signed { key: "1234+-/123/2.txt", ..request };
        assert_eq!(check(&auth, now, &other).unwrap_err().code, "SignatureDoesNotMatch");
        let late = now + Duration::from_secs(16 * 60);
        assert_eq!(check(&auth, late, &request).unwrap_err().code, "RequestTimeTooSkewed");
        let elsewhere = Auth { region: "cn-beijing".into(), ..auth.clone() };
        let err = check(&elsewhere, now, &request).unwrap_err();
        assert_eq!((err.status, err.message.as_str()), (400, "Invalid signing region in Authorization header."));
    }
}

/// And the published V1 example (Python SDK v2 test_v1.py / Go SDK v2 TestV1AuthHeader).
#[test]
fn published_v1_vector_verifies_unless_v4_only() {
    let date = "Wed, 28 Dec 2022 10:27:41 GMT";
    let headers: Vec<(String, String)> = [
        ("Content-MD5", "eB5eJF1ptWaXm4bijSPyxw=="),
        ("Content-Type", "text/html"),
        ("x-oss-meta-author", "alice"),
        ("x-oss-meta-magic", "abracadabra"),
        ("x-oss-date", date),
        ("Date", date),
        ("Authorization", "OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M="),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let now = httpdate::parse_http_date(date).unwrap();
    let request = Signed { method: "PUT", bucket: "examplebucket", key: "nelson", query: &[], headers: &headers };
    let mut auth = Auth {
        keys: vec![Key { id: "ak".into(), secret: "sk".into(), token: None, expires: None }],
        region: "cn-hangzhou".into(),
        accept_v1: true,
    };
    assert!(check(&auth, now, &request).is_ok());
    auth.accept_v1 = false;
    let err = check(&auth, now, &request).unwrap_err();
    assert_eq!((err.status, err.code), (403, "AccessDenied"));
}

#[test]
fn dates_parse() {
    let t = parse_iso8601("20231216T162057Z").unwrap();
    assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1702743657);
    assert!(parse_iso8601("2023-12-16").is_none());
}
