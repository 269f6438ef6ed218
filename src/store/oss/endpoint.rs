//! Where OSS is ([`Endpoint`]: scheme, host, virtual-host or path style) and
//! the percent-encoding of keys and query values in its URLs.

use anyhow::{bail, Result};

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

/// Percent-encodes every byte but `A-Za-z0-9-_.~` (and `/` when `keep_slash`),
/// upper-case hex: what OSS's URLs and V4's canonical URI and query want.
pub(crate) fn percent_encode(text: &str, keep_slash: bool) -> String {
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
    percent_encode(key, true)
}

/// Percent-encodes a query name or value.
pub fn encode_component(text: &str) -> String {
    percent_encode(text, false)
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
