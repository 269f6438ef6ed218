//! Requests for keys with `.` or `..` segments, sent with the path exactly
//! as written.
//!
//! Such keys are legal on OSS, but reqwest parses every URL with the WHATWG
//! rules, which drop `.` and `..` segments (percent-encoded ones too), so the
//! request would name another key. These requests take the signed reqwest
//! request apart and send it through hyper (which reqwest itself runs on)
//! with the raw path; the answer comes back as a `reqwest::Response`, so the
//! rest of the client does not know the difference.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Whether a key has a segment the URL parser would remove.
pub fn has_dot_segment(key: &str) -> bool {
    key.split('/').any(|seg| seg == "." || seg == "..")
}

fn client(connect_timeout: Duration) -> &'static HyperClient<Https, reqwest::Body> {
    static CLIENT: OnceLock<HyperClient<Https, reqwest::Body>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        HyperClient::builder(TokioExecutor::new()).build(https)
    })
}

/// Sends `request` (built and signed) to `url`, the unparsed URL. The
/// attempt's deadline covers the answer's head; the body of a download is
/// bounded by the request's overall deadline only (these keys are rare).
pub async fn send(request: reqwest::RequestBuilder, url: &str, connect_timeout: Duration) -> Result<reqwest::Response> {
    let request = request.build().context("building the request")?;
    let deadline = request.timeout().copied();
    let mut request: http::Request<reqwest::Body> = request.try_into().context("converting the request")?;
    *request.uri_mut() = url.parse::<http::Uri>().with_context(|| format!("bad request URL {url:?}"))?;
    request
        .headers_mut()
        .insert(http::header::USER_AGENT, http::HeaderValue::from_static(concat!("mb/", env!("CARGO_PKG_VERSION"))));
    let sent = client(connect_timeout).request(request);
    let response = match deadline {
        Some(deadline) => tokio::time::timeout(deadline, sent).await.map_err(|_| anyhow::anyhow!("timed out"))?,
        None => sent.await,
    };
    let response = response.map_err(|err| {
        let mut cause = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        anyhow::anyhow!("connection failed: {cause}")
    })?;
    Ok(reqwest::Response::from(response.map(reqwest::Body::wrap)))
}
