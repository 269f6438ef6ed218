//! Loopback stand-ins for the services that only exist inside Alibaba Cloud:
//! the ECS instance metadata service (RAM role credentials, hardened mode
//! with `PUT /latest/api/token`), STS `AssumeRoleWithOIDC`, and a
//! credentials URI. Each answer is a fresh STS-style temporary key that the
//! suite's OSS server is told to accept until it expires.
//!
//! One small blocking HTTP/1.1 server on 127.0.0.1 serves all three paths;
//! tests point `MB_TEST_ONLY_ECS_METADATA_ENDPOINT`, `ALIBABA_CLOUD_STS_ENDPOINT`
//! or `ALIBABA_CLOUD_CREDENTIALS_URI` at it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::oss_server::oss_auth::Key;
use super::oss_server::KeyRing;

/// The RAM role name the metadata service reports.
pub const ROLE: &str = "mb-backup-role";
/// The metadata token handed out in hardened mode.
const METADATA_TOKEN: &str = "metadata-token-7f3a";

#[derive(Default)]
struct Log {
    issued: Vec<Key>,
    requests: Vec<String>,
}

/// A running credential server; stops when dropped.
pub struct CredServer {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
}

struct Config {
    ring: KeyRing,
    ttl: Duration,
    oidc_token: String,
    log: Arc<Mutex<Log>>,
}

impl CredServer {
    /// Starts a server whose keys live `ttl` and are accepted by `ring`'s
    /// OSS server; STS requires the OIDC token `oidc_token`.
    pub fn start(ring: KeyRing, ttl: Duration, oidc_token: &str) -> CredServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let config = Arc::new(Config { ring, ttl, oidc_token: oidc_token.to_string(), log: log.clone() });
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let config = config.clone();
                        std::thread::spawn(move || serve(stream, &config));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CredServer { addr, log, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Keys issued so far.
    pub fn issued(&self) -> Vec<Key> {
        self.log.lock().unwrap().issued.clone()
    }

    /// Requests seen, as `METHOD path` plus `token` when a metadata token came.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().requests.clone()
    }
}

impl Drop for CredServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, config: &Config) {
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let has_token = header("x-aliyun-ecs-metadata-token") == Some(METADATA_TOKEN);
    config.log.lock().unwrap().requests.push(format!("{method} {target}{}", if has_token { " token" } else { "" }));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (status, body) = match (method.as_str(), path) {
        ("PUT", "/latest/api/token") if header("x-aliyun-ecs-metadata-token-ttl-seconds").is_some() => {
            (200, METADATA_TOKEN.to_string())
        }
        // Hardened mode: the metadata paths need the token.
        ("GET", p) if p.starts_with("/latest/meta-data/") && !has_token => (401, "token required".to_string()),
        ("GET", "/latest/meta-data/ram/security-credentials/") => (200, ROLE.to_string()),
        ("GET", p) if p == format!("/latest/meta-data/ram/security-credentials/{ROLE}") => {
            (200, key_json(&issue(config), true))
        }
        ("GET", "/") if query.contains("Action=AssumeRoleWithOIDC") => {
            if query.contains(&format!("OIDCToken={}", config.oidc_token)) && query.contains("RoleArn=") {
                (200, format!("{{\"RequestId\":\"R1\",\"Credentials\":{}}}", key_json(&issue(config), false)))
            } else {
                (400, "{\"Code\":\"InvalidParameter.OIDCToken\"}".to_string())
            }
        }
        ("GET", "/credentials") => (200, key_json(&issue(config), true)),
        _ => (404, "not found".to_string()),
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

fn issue(config: &Config) -> Key {
    let mut log = config.log.lock().unwrap();
    let n = log.issued.len() + 1;
    let key = Key {
        id: format!("STS.tmpkey{n:04}"),
        secret: format!("tmp-secret-{n:04}-Do-Not-Print"),
        token: Some(format!("CAIS-tmp-token-{n:04}-Do-Not-Print")),
        expires: Some(SystemTime::now() + config.ttl),
    };
    log.issued.push(key.clone());
    config.ring.add(key.clone());
    key
}

fn key_json(key: &Key, with_code: bool) -> String {
    let expires = key.expires.unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    format!(
        "{{{}\"AccessKeyId\":\"{}\",\"AccessKeySecret\":\"{}\",\"SecurityToken\":\"{}\",\"Expiration\":\"{}\"}}",
        if with_code { "\"Code\":\"Success\"," } else { "" },
        key.id,
        key.secret,
        key.token.as_deref().unwrap_or(""),
        mb::format::time::format_rfc3339(expires)
    )
}

/// What a [`Scripted`] server answers to `(method, path)`: status and body.
pub type Script = dyn Fn(&str, &str) -> (u16, String) + Send + Sync;

/// A loopback server that answers each request as its script says: a
/// credential service that fails (403, 500, ...) with the body it chooses.
pub struct Scripted {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    /// Starts a server answering by `script`.
    pub fn start(script: impl Fn(&str, &str) -> (u16, String) + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let (stopping, log) = (stop.clone(), hits.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (script, log) = (script.clone(), log.clone());
                        std::thread::spawn(move || answer(stream, &*script, &log));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Scripted { addr, stop, hits }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen, as `METHOD path`.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(stream: TcpStream, script: &Script, log: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    log.lock().unwrap().push(format!("{method} {path}"));
    let (status, body) = script(method, path);
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// A loopback listener that accepts connections and never answers: a hung
/// service. Connections stay open until it is dropped.
pub struct Silent {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Silent {
    /// Starts the listener.
    pub fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Silent { addr, stop }
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `127.0.0.1:PORT` where nothing listens (a port just freed).
pub fn refused_host_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}
