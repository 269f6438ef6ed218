//! The credential chain's HTTP calls (STS, the ECS metadata service, a
//! credentials URI) on our reqwest, with short timeouts, and what the last
//! call came to, told without its answer body.
//!
//! A failing credential service may put a key pair in its error answer, and
//! reqsign quotes error bodies verbatim in its messages. So an error answer
//! never reaches reqsign (or a log line) whole: reqsign gets only a sanitized
//! reason (the JSON/XML `Code` and `Message` when they are short, printable
//! and hold no secret), and every string found under a secret- or
//! token-like field of any answer is redacted from the final message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

/// TCP connect timeout of a credential service (off ECS, 100.100.100.200
/// does not answer at all).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One request to a credential service, answer included.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// What the last request of a fetch came to.
#[derive(Clone, Debug)]
pub(super) enum Outcome {
    /// Sent, no answer yet: what a fetch cut by its deadline leaves.
    Pending { host: String },
    /// No answer within [`REQUEST_TIMEOUT`].
    NoAnswer { host: String },
    /// No connection (refused, unreachable, connect timeout).
    NoConnection { host: String, cause: String },
    /// The connection broke.
    Broken { host: String, cause: String },
    /// A non-2xx answer: its status and sanitized reason.
    Refused { host: String, status: http::StatusCode, reason: String },
    /// A 2xx answer (reqsign's own error then says what was wrong with it).
    Answered,
}

impl Outcome {
    /// The outcome as a clause naming `service` and its host, or `None`
    /// when the service answered and reqsign's error says more.
    pub(super) fn describe(&self, service: &str) -> Option<String> {
        Some(match self {
            Outcome::Pending { host } => format!("the {service} at {host} did not answer"),
            Outcome::NoAnswer { host } => {
                format!("the {service} at {host} did not answer within {} s", REQUEST_TIMEOUT.as_secs())
            }
            Outcome::NoConnection { host, cause } => format!("could not connect to the {service} at {host}: {cause}"),
            Outcome::Broken { host, cause } => format!("the connection to the {service} at {host} failed: {cause}"),
            Outcome::Refused { host, status, reason } => {
                format!("the {service} at {host} answered {status} ({reason})")
            }
            Outcome::Answered => return None,
        })
    }
}

#[derive(Debug, Default)]
struct State {
    last: Option<Outcome>,
    /// Secret-like values seen in any answer: never printed.
    secrets: Vec<String>,
}

/// reqsign's HTTP calls on our reqwest; clones share their record.
#[derive(Debug, Clone)]
pub(super) struct ReqwestSend {
    client: reqwest::Client,
    state: Arc<Mutex<State>>,
}

impl ReqwestSend {
    pub(super) fn new() -> ReqwestSend {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_default();
        ReqwestSend { client, state: Arc::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the last request came to, forgetting it.
    pub(super) fn take_last(&self) -> Option<Outcome> {
        self.state().last.take()
    }

    fn record(&self, outcome: Outcome) {
        self.state().last = Some(outcome);
    }

    /// `text` with every secret-like value seen in an answer replaced.
    pub(super) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.state().secrets {
            out = out.replace(secret.as_str(), "<redacted>");
        }
        out
    }

    fn remember_secrets(&self, body: &[u8]) {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else { return };
        let mut found = Vec::new();
        secret_values(&json, false, &mut found);
        let mut state = self.state();
        for value in found.into_iter().filter(|v| v.len() >= 4) {
            if !state.secrets.contains(&value) {
                state.secrets.push(value);
            }
        }
    }
}

/// Every string under a field whose name says secret, token or password.
fn secret_values(value: &serde_json::Value, secret: bool, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if secret => out.push(s.clone()),
        serde_json::Value::Object(map) => {
            for (name, value) in map {
                let name = name.to_ascii_lowercase();
                let is_secret = ["secret", "token", "password"].iter().any(|w| name.contains(w));
                secret_values(value, secret || is_secret, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| secret_values(v, secret, out)),
        _ => {}
    }
}

/// The error answer's `Code` and `Message` (JSON or XML) when they are
/// short, printable and hold none of `secrets`; never the body itself.
fn sanitized_reason(body: &[u8], secrets: &[String]) -> String {
    let text = String::from_utf8_lossy(body);
    let json = serde_json::from_str::<serde_json::Value>(&text).ok();
    let field = |name: &str| -> Option<String> {
        let value = match &json {
            Some(json) => json.get(name).and_then(|v| v.as_str()).map(str::to_string),
            None => super::error::xml_text(&text, name),
        }?;
        let safe = !value.is_empty()
            && value.chars().count() <= 120
            && !value.chars().any(char::is_control)
            && !secrets.iter().any(|s| value.contains(s.as_str()));
        safe.then_some(value)
    };
    let mut parts = Vec::new();
    if let Some(code) = field("Code") {
        parts.push(format!("Code {code:?}"));
    }
    if let Some(message) = field("Message") {
        parts.push(format!("Message {message:?}"));
    }
    parts.push(if body.is_empty() { "empty body".to_string() } else { format!("{} body bytes not shown", body.len()) });
    parts.join(", ")
}

/// `host:port` of a request, never its path or query (they may hold tokens).
fn host_of(uri: &http::Uri) -> String {
    let host = uri.host().unwrap_or("?");
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    format!("{host}:{port}")
}

/// The innermost cause of a reqwest error (reset, refused), without the URL.
fn cause_of(err: &reqwest::Error) -> String {
    let mut cause = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

impl reqsign_core::HttpSend for ReqwestSend {
    async fn http_send(&self, req: http::Request<Bytes>) -> reqsign_core::Result<http::Response<Bytes>> {
        let host = host_of(req.uri());
        let request = reqwest::Request::try_from(req)
            .map_err(|e| reqsign_core::Error::request_invalid("building a credentials request").with_source(e))?;
        self.record(Outcome::Pending { host: host.clone() });
        let failed = |e: reqwest::Error| {
            let (outcome, what) = if e.is_timeout() {
                (Outcome::NoAnswer { host: host.clone() }, "no answer")
            } else if e.is_connect() {
                (Outcome::NoConnection { host: host.clone(), cause: cause_of(&e) }, "could not connect")
            } else {
                (Outcome::Broken { host: host.clone(), cause: cause_of(&e) }, "request failed")
            };
            self.record(outcome);
            reqsign_core::Error::unexpected(format!("{what} ({host})")).set_retryable(true)
        };
        let response = self.client.execute(request).await.map_err(failed)?;
        let status = response.status();
        let mut builder = http::Response::builder().status(status);
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let body = response.bytes().await.map_err(failed)?;
        self.remember_secrets(&body);
        let body = if status.is_success() {
            self.record(Outcome::Answered);
            body
        } else {
            let reason = sanitized_reason(&body, &self.state().secrets);
            self.record(Outcome::Refused { host, status, reason: reason.clone() });
            Bytes::from(reason)
        };
        builder.body(body).map_err(|e| reqsign_core::Error::unexpected("reading a credentials answer").with_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_give_code_and_message_never_the_body() {
        let body = br#"{"Code":"Forbidden","Message":"no","AccessKeySecret":"sk-123456","Data":{"SecurityToken":"tok-abcdef"}}"#;
        let mut secrets = Vec::new();
        secret_values(&serde_json::from_slice(body).unwrap(), false, &mut secrets);
        assert_eq!(secrets, ["sk-123456", "tok-abcdef"]);
        let reason = sanitized_reason(body, &secrets);
        assert_eq!(reason, format!("Code \"Forbidden\", Message \"no\", {} body bytes not shown", body.len()));
        // A message that quotes a secret is dropped; plain text is never shown.
        let quoting = br#"{"Code":"X","Message":"bad key sk-123456","AccessKeySecret":"sk-123456"}"#;
        assert!(!sanitized_reason(quoting, &secrets).contains("sk-123456"));
        assert_eq!(sanitized_reason(b"AccessKeySecret=sk", &[]), "18 body bytes not shown");
        let xml = b"<Error><Code>InvalidParameter</Code><Message>bad\x1b[2J</Message></Error>";
        assert_eq!(
            sanitized_reason(xml, &[]),
            format!("Code \"InvalidParameter\", {} body bytes not shown", xml.len())
        );
    }

    #[test]
    fn hosts_never_carry_paths_or_queries() {
        let uri: http::Uri = "http://127.0.0.1:9/creds?token=t".parse().unwrap();
        assert_eq!(host_of(&uri), "127.0.0.1:9");
        assert_eq!(host_of(&"https://sts.aliyuncs.com/?OIDCToken=x".parse().unwrap()), "sts.aliyuncs.com:443");
    }
}
