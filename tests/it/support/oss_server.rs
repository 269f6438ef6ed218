//! The suite's OSS-compatible server: real HTTP/1.1 on 127.0.0.1, V4 and V1
//! signatures checked ([`oss_auth`], region `cn-hangzhou` by default, V1 off
//! with [`OssServer::set_v4_only`]), STS keys, objects in memory, and fault
//! switches for tests.
//!
//! Hand-written HTTP (not a framework) so tests can break things exactly:
//! reset a connection mid-body, truncate a download, answer 5xx, stall, send
//! a wrong CRC header, or run with a skewed clock. It runs on its own thread
//! and runtime, so plain sync tests (and `examples/oss-server.rs`) use it.
//! Path-style addressing only (`http://127.0.0.1:PORT/bucket/key`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine;
#[path = "oss_auth.rs"]
pub mod oss_auth;
use md5::{Digest, Md5};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Default credentials of a started server.
pub const ACCESS_KEY_ID: &str = "LTAItestkeyid0001";
/// Default secret (tests assert it never shows up in a stage's output).
pub const ACCESS_KEY_SECRET: &str = "s3cr3t-Do-Not-Print-4f9a2b";

/// Smallest non-last part, as OSS checks at Complete.
const MIN_PART: u64 = 100 << 10;

/// Which requests a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Every request.
    Any,
    /// PutObject.
    PutObject,
    /// InitiateMultipartUpload.
    Initiate,
    /// UploadPart.
    UploadPart,
    /// CompleteMultipartUpload.
    Complete,
    /// AbortMultipartUpload.
    Abort,
    /// GetObject.
    GetObject,
    /// HeadObject.
    HeadObject,
    /// DeleteObject.
    DeleteObject,
    /// ListObjects.
    ListObjects,
    /// ListMultipartUploads.
    ListUploads,
    /// RestoreObject.
    Restore,
}

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this HTTP status (an `InternalError`-style XML body).
    Status(u16),
    /// Upload: read half the body, then reset the connection. Download:
    /// send the headers and half the body, then reset.
    Reset,
    /// Download: announce the full length, send half, close cleanly.
    Truncate,
    /// Wait this long before answering.
    Delay(Duration),
    /// Answer with a wrong `x-oss-hash-crc64ecma`.
    WrongCrc,
    /// GetObject: ignore the Range header and send the whole object (200).
    IgnoreRange,
    /// Carry out the request, then reset the connection instead of
    /// answering (the answer is lost, the work is done).
    LoseAnswer,
}

#[derive(Clone, Debug)]
struct Injection {
    op: Op,
    fault: Fault,
    skip: usize,
    times: usize,
}

/// An object as stored (data empty in a discard bucket).
#[derive(Clone, Debug)]
pub struct Object {
    /// The bytes (empty in discard buckets).
    pub data: Arc<Vec<u8>>,
    /// Size in bytes.
    pub size: u64,
    /// CRC-64/XZ.
    pub crc64: u64,
    /// ETag without quotes.
    pub etag: String,
    modified: SystemTime,
    /// Storage class, SSE and KMS key id given at upload.
    pub options: StorageOptions,
    /// Restore state of an archived object: `None` never asked, `Some(n)`
    /// ready after `n` more HEADs (0: restored).
    pub restore: Option<u32>,
}

/// Storage class and server-side encryption of an object, as uploaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageOptions {
    /// `x-oss-storage-class` (None: Standard).
    pub storage_class: Option<String>,
    /// `x-oss-server-side-encryption`.
    pub sse: Option<String>,
    /// `x-oss-server-side-encryption-key-id`.
    pub sse_key_id: Option<String>,
}

impl StorageOptions {
    fn of(request: &Request) -> StorageOptions {
        StorageOptions {
            storage_class: request.header("x-oss-storage-class").map(str::to_string),
            sse: request.header("x-oss-server-side-encryption").map(str::to_string),
            sse_key_id: request.header("x-oss-server-side-encryption-key-id").map(str::to_string),
        }
    }
    fn archived(&self) -> bool {
        matches!(self.storage_class.as_deref(), Some("Archive" | "ColdArchive" | "DeepColdArchive"))
    }
}

#[derive(Default)]
struct Bucket {
    objects: BTreeMap<String, Object>,
    discard: bool,
}

struct Part {
    data: Vec<u8>,
    size: u64,
    crc64: u64,
    etag: String,
}

struct Upload {
    bucket: String,
    key: String,
    parts: BTreeMap<u32, Part>,
    options: StorageOptions,
    initiated: SystemTime,
}

struct State {
    auth: oss_auth::Auth,
    buckets: BTreeMap<String, Bucket>,
    uploads: BTreeMap<String, Upload>,
    faults: Vec<Injection>,
    max_keys: usize,
    clock_offset: i64,
    requests: Vec<String>,
    bytes_served: u64,
    next_id: u64,
    expired_refusals: usize,
    restore_polls: u32,
}

/// A running server; stops when dropped.
pub struct OssServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts a server with the default credentials.
pub fn start() -> OssServer {
    OssServer::start_with(ACCESS_KEY_ID, ACCESS_KEY_SECRET, 0)
}

impl OssServer {
    /// Starts a server on 127.0.0.1:`port` (0 picks one) with these credentials.
    pub fn start_with(access_key_id: &str, secret: &str, port: u16) -> OssServer {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let key = oss_auth::Key { id: access_key_id.into(), secret: secret.into(), token: None, expires: None };
        let auth = oss_auth::Auth { keys: vec![key], region: "cn-hangzhou".into(), accept_v1: true };
        let state = Arc::new(Mutex::new(State {
            auth,
            buckets: BTreeMap::new(),
            uploads: BTreeMap::new(),
            faults: Vec::new(),
            max_keys: 1000,
            clock_offset: 0,
            requests: Vec::new(),
            bytes_served: 0,
            next_id: 1,
            expired_refusals: 0,
            restore_polls: 2,
        }));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("oss-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    tokio::pin!(stop_rx);
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => break,
                            accepted = listener.accept() => {
                                if let Ok((stream, _)) = accepted {
                                    let _ = stream.set_nodelay(true);
                                    tokio::spawn(serve_connection(stream, shared.clone()));
                                }
                            }
                        }
                    }
                });
                rt.shutdown_background();
            })
            .unwrap();
        OssServer { addr, state, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The AccessKeyId it accepts.
    pub fn access_key_id(&self) -> String {
        self.lock().auth.keys[0].id.clone()
    }

    /// The secret it accepts.
    pub fn secret(&self) -> String {
        self.lock().auth.keys[0].secret.clone()
    }

    /// The region V4 signatures must name (default `cn-hangzhou`).
    pub fn set_region(&self, region: &str) {
        self.lock().auth.region = region.to_string();
    }

    /// Refuse V1 signatures (403 AccessDenied), as new buckets do.
    pub fn set_v4_only(&self, v4_only: bool) {
        self.lock().auth.accept_v1 = !v4_only;
    }

    /// A handle that adds accepted keys (STS issuers use it).
    pub fn key_ring(&self) -> KeyRing {
        KeyRing { state: self.state.clone() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates an empty bucket.
    pub fn create_bucket(&self, name: &str) {
        self.lock().buckets.entry(name.to_string()).or_default();
    }

    /// Creates a bucket that keeps only size, CRC and ETag of objects (for
    /// multi-GiB uploads); its objects cannot be read back.
    pub fn create_discard_bucket(&self, name: &str) {
        self.lock().buckets.insert(name.to_string(), Bucket { objects: BTreeMap::new(), discard: true });
    }

    /// An object, if stored.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Object> {
        self.lock().buckets.get(bucket)?.objects.get(key).cloned()
    }

    /// Keys in a bucket.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.lock().buckets.get(bucket).map(|b| b.objects.keys().cloned().collect()).unwrap_or_default()
    }

    /// Stores an object directly (no request).
    pub fn put_object(&self, bucket: &str, key: &str, data: &[u8]) {
        let object = make_object(data.to_vec(), false);
        self.lock().buckets.entry(bucket.to_string()).or_default().objects.insert(key.to_string(), object);
    }

    /// Multipart uploads in progress, as `(bucket, key, upload id)`.
    pub fn uploads(&self) -> Vec<(String, String, String)> {
        self.lock().uploads.iter().map(|(id, u)| (u.bucket.clone(), u.key.clone(), id.clone())).collect()
    }

    /// Makes `fault` happen to `times` requests of kind `op`, after letting
    /// `skip` of them through.
    pub fn inject(&self, op: Op, fault: Fault, skip: usize, times: usize) {
        self.lock().faults.push(Injection { op, fault, skip, times });
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Caps keys per ListObjects page (OSS: 1000).
    pub fn set_max_keys(&self, n: usize) {
        self.lock().max_keys = n.max(1);
    }

    /// HEADs of a restoring object before its restore completes (default 2).
    pub fn set_restore_polls(&self, n: u32) {
        self.lock().restore_polls = n;
    }

    /// Stores an object directly with a storage class (no request).
    pub fn put_object_with_class(&self, bucket: &str, key: &str, data: &[u8], class: &str) {
        let mut object = make_object(data.to_vec(), false);
        object.options.storage_class = Some(class.to_string());
        self.lock().buckets.entry(bucket.to_string()).or_default().objects.insert(key.to_string(), object);
    }

    /// Begins a multipart upload of `key` (as a killed run leaves one); returns its id.
    pub fn begin_upload(&self, bucket: &str, key: &str) -> String {
        let mut state = self.lock();
        let id = format!("UPLOAD{:08X}", state.next_id);
        state.next_id += 1;
        let upload = Upload {
            bucket: bucket.into(),
            key: key.into(),
            parts: BTreeMap::new(),
            options: StorageOptions::default(),
            initiated: SystemTime::now(),
        };
        state.uploads.insert(id.clone(), upload);
        id
    }

    /// Makes every object and upload there is now `secs` older (tests of
    /// rules about age, such as retention's "older than a day").
    pub fn backdate(&self, secs: u64) {
        let mut state = self.lock();
        let by = Duration::from_secs(secs);
        for bucket in state.buckets.values_mut() {
            bucket.objects.values_mut().for_each(|o| o.modified -= by);
        }
        state.uploads.values_mut().for_each(|u| u.initiated -= by);
    }

    /// Runs the server's clock `secs` ahead (negative: behind).
    pub fn set_clock_offset(&self, secs: i64) {
        self.lock().clock_offset = secs;
    }

    /// Requests seen, as `METHOD /bucket/key?query`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Forgets the request log and the bytes served.
    pub fn clear_requests(&self) {
        let mut state = self.lock();
        state.requests.clear();
        state.bytes_served = 0;
    }

    /// Object bytes sent in GET answers since the start or `clear_requests`.
    pub fn bytes_served(&self) -> u64 {
        self.lock().bytes_served
    }
}

/// Adds keys to a running server (held by the loopback STS/metadata servers).
#[derive(Clone)]
pub struct KeyRing {
    state: Arc<Mutex<State>>,
}

impl KeyRing {
    /// Accept `key` from now on (until it expires, for STS keys).
    pub fn add(&self, key: oss_auth::Key) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).auth.keys.push(key);
    }

    /// Requests refused because their STS token had expired.
    pub fn expired_refusals(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).expired_refusals
    }
}

impl Drop for OssServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// CRC-64 and MD5 of a request body, computed before taking the state lock
/// so parallel parts hash in parallel.
struct Digests {
    crc64: u64,
    md5: [u8; 16],
}

impl Digests {
    fn of(data: &[u8]) -> Digests {
        Digests { crc64: mb::crc64::checksum(data), md5: Md5::digest(data).into() }
    }
}

fn make_object(data: Vec<u8>, discard: bool) -> Object {
    let digests = Digests::of(&data);
    make_object_with(data, discard, &digests)
}

fn make_object_with(data: Vec<u8>, discard: bool, digests: &Digests) -> Object {
    let crc64 = digests.crc64;
    let etag = hex_upper(&digests.md5);
    let size = data.len() as u64;
    Object {
        data: Arc::new(if discard { Vec::new() } else { data }),
        size,
        crc64,
        etag,
        modified: SystemTime::now(),
        options: StorageOptions::default(),
        restore: None,
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A parsed request head.
struct Request {
    method: String,
    bucket: String,
    key: String,
    query: Vec<(String, Option<String>)>,
    raw_target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_deref().unwrap_or(""))
    }
    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }
    fn op(&self) -> Op {
        match self.method.as_str() {
            "PUT" if self.has("partNumber") => Op::UploadPart,
            "PUT" => Op::PutObject,
            "POST" if self.has("uploads") => Op::Initiate,
            "POST" if self.has("restore") => Op::Restore,
            "POST" => Op::Complete,
            "DELETE" if self.has("uploadId") => Op::Abort,
            "DELETE" => Op::DeleteObject,
            "GET" if self.key.is_empty() && self.has("uploads") => Op::ListUploads,
            "GET" if self.key.is_empty() => Op::ListObjects,
            "GET" => Op::GetObject,
            "HEAD" => Op::HeadObject,
            _ => Op::Any,
        }
    }
}

/// A response to write.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// HEAD: send Content-Length of this, but no body.
    head_len: Option<u64>,
    data: Option<(Arc<Vec<u8>>, usize, usize)>,
}

impl Response {
    fn new(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new(), head_len: None, data: None }
    }
    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    fn xml(mut self, xml: String) -> Self {
        self.body = xml.into_bytes();
        self.header("Content-Type", "application/xml")
    }
}

fn error(status: u16, code: &str, message: &str, extra: &str) -> Response {
    Response::new(status).xml(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{}</Message>\n  <RequestId>TEST-REQUEST</RequestId>\n  <HostId>127.0.0.1</HostId>{extra}\n</Error>\n",
        escape(message)
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn read_head(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if !line.trim().is_empty() {
            break; // tolerate stray CRLFs between requests
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut total = line.len();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        total += line.len();
        if total > 64 << 10 {
            return None;
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let (path, query_text) = target.split_once('?').unwrap_or((&target, ""));
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let query = query_text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), Some(decode(v))),
            None => (decode(p), None),
        })
        .collect();
    Some(Request { method, bucket: decode(bucket), key: decode(key), query, raw_target: target.clone(), headers })
}

async fn read_body(
    reader: &mut BufReader<TcpStream>,
    request: &Request,
    limit: Option<usize>,
) -> std::io::Result<Vec<u8>> {
    if request.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(std::io::Error::other)?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    line.clear();
                    reader.read_line(&mut line).await?;
                    if line.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).await?;
            if limit.is_some_and(|l| body.len() >= l) {
                return Ok(body);
            }
        }
    }
    let len: usize = request.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let len = limit.map_or(len, |l| l.min(len));
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    Ok(body)
}

/// Finds the fault for this request, counting it down.
fn take_fault(state: &mut State, op: Op) -> Option<Fault> {
    for injection in state.faults.iter_mut() {
        if injection.times == 0 || !(injection.op == Op::Any || injection.op == op) {
            continue;
        }
        if injection.skip > 0 {
            injection.skip -= 1;
            continue;
        }
        injection.times -= 1;
        return Some(injection.fault);
    }
    None
}

fn abort_connection(stream: TcpStream) {
    // SO_LINGER 0: close with RST, like a crashed peer or a middlebox reset.
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve_connection(stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::with_capacity(256 << 10, stream);
    while let Some(mut request) = read_head(&mut reader).await {
        let op = request.op();
        let fault = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.requests.push(format!("{} {}", request.method, request.raw_target));
            take_fault(&mut s, op)
        };
        let upload = matches!(request.method.as_str(), "PUT" | "POST");
        if fault == Some(Fault::Reset) && upload {
            let len: usize = request.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let _ = read_body(&mut reader, &request, Some(len / 2)).await;
            abort_connection(reader.into_inner());
            return;
        }
        let chunked = request.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        if upload && request.header("content-length").is_none() && !chunked {
            // Like OSS: every PUT and POST needs a length, 0 included.
            let response = error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.", "");
            let _ = write_response(reader.get_mut(), &request, &response, false).await;
            return;
        }
        let body = match read_body(&mut reader, &request, None).await {
            Ok(body) => body,
            Err(_) => return,
        };
        if fault == Some(Fault::IgnoreRange) {
            request.headers.retain(|(name, _)| name != "range");
        }
        if let Some(Fault::Delay(wait)) = fault {
            tokio::time::sleep(wait).await;
        }
        let mut response = match fault {
            Some(Fault::Status(code)) => {
                let name = match code {
                    404 => "NoSuchKey",
                    503 => "ServiceUnavailable",
                    _ => "InternalError",
                };
                error(code, name, "injected fault", "")
            }
            _ => {
                let digests = Digests::of(&body);
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                handle(&mut s, &request, body, &digests)
            }
        };
        if fault == Some(Fault::LoseAnswer) {
            abort_connection(reader.into_inner());
            return;
        }
        if request.method == "HEAD" && !response.body.is_empty() {
            // HEAD answers have no body: OSS repeats the error XML, base64, in x-oss-err.
            let err = base64::engine::general_purpose::STANDARD.encode(&response.body);
            response.body.clear();
            response = response.header("x-oss-err", err);
        }
        if fault == Some(Fault::WrongCrc) {
            for (name, value) in response.headers.iter_mut() {
                if name == "x-oss-hash-crc64ecma" {
                    *value = value.parse::<u64>().map(|v| (v ^ 0x5555).to_string()).unwrap_or_default();
                }
            }
        }
        if let Some((_, start, end)) = &response.data {
            state.lock().unwrap_or_else(|e| e.into_inner()).bytes_served += (end - start) as u64;
        }
        let close = request.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let cut = matches!(fault, Some(Fault::Reset) | Some(Fault::Truncate)) && request.method == "GET";
        let stream = reader.get_mut();
        if write_response(stream, &request, &response, cut).await.is_err() {
            return;
        }
        if cut {
            let stream = reader.into_inner();
            if fault == Some(Fault::Reset) {
                abort_connection(stream);
            } else {
                let mut stream = stream;
                let _ = stream.shutdown().await;
            }
            return;
        }
        if close {
            return;
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    request: &Request,
    response: &Response,
    cut: bool,
) -> std::io::Result<()> {
    let (payload, len): (&[u8], u64) = match &response.data {
        Some((data, start, end)) => (&data[*start..*end], (*end - *start) as u64),
        None => (&response.body, response.body.len() as u64),
    };
    let content_len = response.head_len.unwrap_or(len);
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    head.push_str(&format!("Content-Length: {content_len}\r\n"));
    head.push_str(&format!("Date: {}\r\n", httpdate::fmt_http_date(SystemTime::now())));
    head.push_str("Server: AliyunOSS-mb-test\r\nx-oss-request-id: TEST-REQUEST\r\n");
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if request.method != "HEAD" {
        let send = if cut { &payload[..payload.len() / 2] } else { payload };
        stream.write_all(send).await?;
    }
    stream.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        411 => "Length Required",
        202 => "Accepted",
        412 => "Precondition Failed",
        416 => "Requested Range Not Satisfiable",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn authenticate(state: &mut State, request: &Request) -> Result<(), Response> {
    let now = SystemTime::now();
    let now = if state.clock_offset >= 0 {
        now + Duration::from_secs(state.clock_offset as u64)
    } else {
        now - Duration::from_secs((-state.clock_offset) as u64)
    };
    let signed = oss_auth::Signed {
        method: &request.method,
        bucket: &request.bucket,
        key: &request.key,
        query: &request.query,
        headers: &request.headers,
    };
    oss_auth::check(&state.auth, now, &signed).map_err(|denied| {
        if denied.message.contains("expired") {
            state.expired_refusals += 1;
        }
        let extra: String =
            denied.extra.iter().map(|(name, value)| format!("\n  <{name}>{}</{name}>", escape(value))).collect();
        error(denied.status, denied.code, &denied.message, &extra)
    })
}

fn check_md5(request: &Request, digests: &Digests) -> Result<(), Response> {
    if let Some(given) = request.header("content-md5") {
        let actual = base64::engine::general_purpose::STANDARD.encode(digests.md5);
        if given != actual {
            return Err(error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.", ""));
        }
    }
    Ok(())
}

fn object_headers(response: Response, object: &Object) -> Response {
    let mut response = response
        .header("ETag", format!("\"{}\"", object.etag))
        .header("x-oss-hash-crc64ecma", object.crc64.to_string())
        .header("Last-Modified", httpdate::fmt_http_date(object.modified))
        .header("x-oss-storage-class", object.options.storage_class.as_deref().unwrap_or("Standard"));
    if let Some(sse) = &object.options.sse {
        response = response.header("x-oss-server-side-encryption", sse.as_str());
    }
    if let Some(id) = &object.options.sse_key_id {
        response = response.header("x-oss-server-side-encryption-key-id", id.as_str());
    }
    match object.restore {
        Some(0) => {
            response.header("x-oss-restore", "ongoing-request=\"false\", expiry-date=\"Sun, 16 Apr 2034 08:12:33 GMT\"")
        }
        Some(_) => response.header("x-oss-restore", "ongoing-request=\"true\""),
        None => response,
    }
}

fn handle(state: &mut State, request: &Request, body: Vec<u8>, digests: &Digests) -> Response {
    if let Err(response) = authenticate(state, request) {
        return response;
    }
    if request.bucket.is_empty() {
        return error(400, "InvalidArgument", "no bucket in the path (path-style addressing only)", "");
    }
    if !state.buckets.contains_key(&request.bucket) {
        let response = error(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist.",
            &format!("\n  <BucketName>{}</BucketName>", escape(&request.bucket)),
        );
        return response;
    }
    let forbid = request.header("x-oss-forbid-overwrite").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let op = request.op();
    let bucket_name = request.bucket.clone();
    let key = request.key.clone();
    match op {
        Op::PutObject => {
            if let Err(r) = check_md5(request, digests) {
                return r;
            }
            let bucket = state.buckets.get_mut(&bucket_name).unwrap();
            if forbid && bucket.objects.contains_key(&key) {
                return error(
                    409,
                    "FileAlreadyExists",
                    "The object you specified already exists and can not be overwritten.",
                    "",
                );
            }
            let mut object = make_object_with(body, bucket.discard, digests);
            object.options = StorageOptions::of(request);
            let response = Response::new(200)
                .header("ETag", format!("\"{}\"", object.etag))
                .header("x-oss-hash-crc64ecma", object.crc64.to_string());
            bucket.objects.insert(key, object);
            response
        }
        Op::Initiate => {
            let id = format!("UPLOAD{:08X}", state.next_id);
            state.next_id += 1;
            state.uploads.insert(
                id.clone(),
                Upload {
                    bucket: bucket_name.clone(),
                    key: key.clone(),
                    parts: BTreeMap::new(),
                    options: StorageOptions::of(request),
                    initiated: SystemTime::now(),
                },
            );
            Response::new(200).xml(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
                escape(&bucket_name),
                escape(&key)
            ))
        }
        Op::UploadPart => {
            let discard = state.buckets[&bucket_name].discard;
            let id = request.param("uploadId").unwrap_or("").to_string();
            let number: u32 = request.param("partNumber").and_then(|n| n.parse().ok()).unwrap_or(0);
            if !(1..=10_000).contains(&number) {
                return error(
                    400,
                    "InvalidArgument",
                    "Part number must be an integer between 1 and 10000, inclusive.",
                    "",
                );
            }
            if let Err(r) = check_md5(request, digests) {
                return r;
            }
            let Some(upload) = state.uploads.get_mut(&id).filter(|u| u.bucket == bucket_name && u.key == key) else {
                return error(404, "NoSuchUpload", "The specified upload does not exist.", "");
            };
            let crc64 = digests.crc64;
            let etag = hex_upper(&digests.md5);
            let size = body.len() as u64;
            upload.parts.insert(
                number,
                Part { data: if discard { Vec::new() } else { body }, size, crc64, etag: etag.clone() },
            );
            Response::new(200).header("ETag", format!("\"{etag}\"")).header("x-oss-hash-crc64ecma", crc64.to_string())
        }
        Op::Complete => complete(state, request, &body, digests, forbid),
        Op::Abort => {
            let id = request.param("uploadId").unwrap_or("");
            match state.uploads.remove(id) {
                Some(_) => Response::new(204),
                None => error(404, "NoSuchUpload", "The specified upload does not exist.", ""),
            }
        }
        Op::DeleteObject => {
            state.buckets.get_mut(&bucket_name).unwrap().objects.remove(&key);
            Response::new(204)
        }
        Op::HeadObject => match state.buckets.get_mut(&bucket_name).unwrap().objects.get_mut(&key) {
            Some(object) => {
                if let Some(left) = object.restore.as_mut() {
                    *left = left.saturating_sub(1);
                }
                let mut r = object_headers(Response::new(200), object);
                r.head_len = Some(object.size);
                r
            }
            None => error(404, "NoSuchKey", "The specified key does not exist.", ""),
        },
        Op::Restore => {
            let polls = state.restore_polls;
            let Some(object) = state.buckets.get_mut(&bucket_name).unwrap().objects.get_mut(&key) else {
                return error(404, "NoSuchKey", "The specified key does not exist.", "");
            };
            if !object.options.archived() {
                return error(400, "OperationNotSupported", "The operation is not supported for this resource.", "");
            }
            match object.restore {
                Some(left) if left > 0 => {
                    error(409, "RestoreAlreadyInProgress", "The restore operation is in progress.", "")
                }
                Some(_) => Response::new(200),
                None => {
                    object.restore = Some(polls);
                    Response::new(202)
                }
            }
        }
        Op::GetObject => get(state, request),
        Op::ListObjects => list(state, request),
        Op::ListUploads => list_uploads(state, request),
        Op::Any => error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.", ""),
    }
}

fn complete(state: &mut State, request: &Request, body: &[u8], digests: &Digests, forbid: bool) -> Response {
    let id = request.param("uploadId").unwrap_or("").to_string();
    if let Err(r) = check_md5(request, digests) {
        return r;
    }
    let Some(upload) = state.uploads.get(&id).filter(|u| u.bucket == request.bucket && u.key == request.key) else {
        return error(404, "NoSuchUpload", "The specified upload does not exist.", "");
    };
    let text = String::from_utf8_lossy(body);
    let mut listed = Vec::new();
    for block in text.split("<Part>").skip(1) {
        let field = |tag: &str| {
            block
                .split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|r| r.split(&format!("</{tag}>")).next())
                .map(str::to_string)
        };
        let number: u32 = field("PartNumber").and_then(|n| n.trim().parse().ok()).unwrap_or(0);
        let etag = field("ETag").unwrap_or_default().replace("&quot;", "\"").trim_matches('"').to_string();
        listed.push((number, etag));
    }
    if listed.is_empty() {
        return error(400, "MalformedXML", "The XML you provided was not well-formed.", "");
    }
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return error(400, "InvalidPartOrder", "The list of parts was not in ascending order.", "");
    }
    for (i, (number, etag)) in listed.iter().enumerate() {
        let Some(part) = upload.parts.get(number).filter(|p| &p.etag == etag) else {
            return error(400, "InvalidPart", "One or more of the specified parts could not be found.", "");
        };
        if i + 1 < listed.len() && part.size < MIN_PART {
            return error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size.", "");
        }
    }
    let discard = state.buckets[&request.bucket].discard;
    if forbid && state.buckets[&request.bucket].objects.contains_key(&request.key) {
        return error(
            409,
            "FileAlreadyExists",
            "The object you specified already exists and can not be overwritten.",
            "",
        );
    }
    let upload = state.uploads.remove(&id).unwrap();
    let mut data = Vec::new();
    let (mut crc, mut size) = (0u64, 0u64);
    let mut md5s = Vec::new();
    for (number, _) in &listed {
        let part = &upload.parts[number];
        crc = mb::crc64::combine(crc, part.crc64, part.size);
        size += part.size;
        md5s.extend_from_slice(
            &(0..16).map(|i| u8::from_str_radix(&part.etag[2 * i..2 * i + 2], 16).unwrap_or(0)).collect::<Vec<u8>>(),
        );
        if !discard {
            data.extend_from_slice(&part.data);
        }
    }
    let etag = format!("{}-{}", hex_upper(&Md5::digest(&md5s)), listed.len());
    let object = Object {
        data: Arc::new(data),
        size,
        crc64: crc,
        etag: etag.clone(),
        modified: SystemTime::now(),
        options: upload.options.clone(),
        restore: None,
    };
    state.buckets.get_mut(&request.bucket).unwrap().objects.insert(request.key.clone(), object);
    Response::new(200).header("x-oss-hash-crc64ecma", crc.to_string()).header("ETag", format!("\"{etag}\"")).xml(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><ETag>\"{etag}\"</ETag></CompleteMultipartUploadResult>",
        escape(&request.bucket),
        escape(&request.key)
    ))
}

fn get(state: &State, request: &Request) -> Response {
    let bucket = &state.buckets[&request.bucket];
    let Some(object) = bucket.objects.get(&request.key) else {
        return error(
            404,
            "NoSuchKey",
            "The specified key does not exist.",
            &format!("\n  <Key>{}</Key>", escape(&request.key)),
        );
    };
    if bucket.discard {
        return error(400, "InvalidRequest", "objects of a discard bucket cannot be read", "");
    }
    if object.options.archived() && object.restore != Some(0) {
        return error(403, "InvalidObjectState", "The operation is not valid for the object's state", "");
    }
    if let Some(want) = request.header("if-match") {
        if want.trim_matches('"') != object.etag {
            return error(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
                "",
            );
        }
    }
    let size = object.data.len();
    let standard = request.header("x-oss-range-behavior").is_some_and(|v| v.eq_ignore_ascii_case("standard"));
    let range = request.header("range").and_then(|r| r.strip_prefix("bytes=")).and_then(|r| {
        let (a, b) = r.split_once('-')?;
        let start: usize = a.trim().parse().ok()?;
        let end: Option<usize> = if b.trim().is_empty() { None } else { Some(b.trim().parse().ok()?) };
        Some((start, end))
    });
    let mut response = object_headers(Response::new(200), object);
    match range {
        Some((start, end)) if start < size && end.is_none_or(|e| e >= start) => {
            let end = end.map_or(size, |e| (e + 1).min(size));
            response.status = 206;
            response = response.header("Content-Range", format!("bytes {start}-{}/{size}", end - 1));
            response.data = Some((object.data.clone(), start, end));
        }
        Some(_) if standard => {
            return error(416, "InvalidRange", "The requested range cannot be satisfied.", "");
        }
        // Like OSS without the standard behaviour: a bad range gets it all.
        _ => response.data = Some((object.data.clone(), 0, size)),
    }
    response
}

/// ListMultipartUploads: every upload of the bucket under `prefix`, one page.
fn list_uploads(state: &State, request: &Request) -> Response {
    let prefix = request.param("prefix").unwrap_or("");
    let url = request.param("encoding-type") == Some("url");
    let enc = |s: &str| if url { encode(s) } else { escape(s) };
    let mut uploads: Vec<_> =
        state.uploads.iter().filter(|(_, u)| u.bucket == request.bucket && u.key.starts_with(prefix)).collect();
    uploads.sort_by(|a, b| (&a.1.key, a.0).cmp(&(&b.1.key, b.0)));
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult>");
    xml.push_str(&format!("<Bucket>{}</Bucket><Prefix>{}</Prefix>", escape(&request.bucket), enc(prefix)));
    if url {
        xml.push_str("<EncodingType>url</EncodingType>");
    }
    xml.push_str("<IsTruncated>false</IsTruncated>");
    for (id, upload) in uploads {
        let secs = upload.initiated.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        let initiated = mb::format::time::format_rfc3339(secs).replace('Z', ".000Z");
        xml.push_str(&format!(
            "<Upload><Key>{}</Key><UploadId>{id}</UploadId><StorageClass>Standard</StorageClass><Initiated>{initiated}</Initiated></Upload>",
            enc(&upload.key)
        ));
    }
    xml.push_str("</ListMultipartUploadsResult>");
    Response::new(200).xml(xml)
}

fn list(state: &State, request: &Request) -> Response {
    let bucket = &state.buckets[&request.bucket];
    let prefix = request.param("prefix").unwrap_or("");
    let marker = request.param("marker").unwrap_or("");
    let max_keys = request.param("max-keys").and_then(|m| m.parse().ok()).unwrap_or(100).min(state.max_keys).min(1000);
    let url = request.param("encoding-type") == Some("url");
    let enc = |s: &str| if url { encode(s) } else { escape(s) };
    let mut matching = bucket.objects.iter().filter(|(k, _)| k.starts_with(prefix) && k.as_str() > marker);
    let page: Vec<_> = matching.by_ref().take(max_keys).collect();
    let truncated = matching.next().is_some();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>");
    xml.push_str(&format!(
        "<Name>{}</Name><Prefix>{}</Prefix><Marker>{}</Marker><MaxKeys>{max_keys}</MaxKeys>",
        escape(&request.bucket),
        enc(prefix),
        enc(marker)
    ));
    if url {
        xml.push_str("<EncodingType>url</EncodingType>");
    }
    xml.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
    if truncated {
        xml.push_str(&format!("<NextMarker>{}</NextMarker>", enc(page.last().map(|(k, _)| k.as_str()).unwrap_or(""))));
    }
    for (key, object) in &page {
        let secs = object.modified.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        let modified = mb::format::time::format_rfc3339(secs).replace('Z', ".000Z");
        xml.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{modified}</LastModified><ETag>\"{}\"</ETag><Type>Normal</Type><Size>{}</Size><StorageClass>Standard</StorageClass></Contents>",
            enc(key),
            object.etag,
            object.size
        ));
    }
    xml.push_str("</ListBucketResult>");
    Response::new(200).xml(xml)
}
