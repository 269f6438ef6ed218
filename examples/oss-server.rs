//! A local OSS-compatible server for demos and benchmarks (the test suite's).
//!
//! Usage: `cargo run --example oss-server -- [--port N] [--bucket NAME]...
//! [--discard-bucket NAME]... [--region REGION] [--v4-only]`. Prints `http://127.0.0.1:PORT` on stdout, then
//! serves until killed. Credentials: env `OSS_ACCESS_KEY_ID` and
//! `OSS_ACCESS_KEY_SECRET` (demo defaults otherwise). Path-style only, so
//! point the stages at it with `--endpoint http://127.0.0.1:PORT`. A discard
//! bucket keeps only each object's size and CRC-64 (for multi-GiB benchmarks).
//! V4 signatures must name `--region` (default cn-hangzhou); `--v4-only`
//! refuses V1 signatures as new OSS buckets do. `--fill-chain
//! BUCKET/PREFIX:CYCLES:OBJECTS` stores a synthetic chain first: CYCLES
//! cycles of OBJECTS small committed objects each (a full backup and
//! slices), with their `mb-marker/2` markers and head records, for timing
//! the catalog (`scripts/bench-catalog`). `--log-bytes FILE` keeps the
//! object bytes sent in GET answers so far in FILE (`scripts/bench-selective`).

#[path = "../tests/it/support/oss_server.rs"]
mod oss_server;

use std::io::Write;

fn main() {
    let mut port: u16 = 0;
    let mut buckets = Vec::new();
    let mut discard = Vec::new();
    let mut region = String::from("cn-hangzhou");
    let mut v4_only = false;
    let mut fills = Vec::new();
    let mut log_bytes = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().unwrap_or_else(|| usage(&format!("{name} needs a value")));
        match arg.as_str() {
            "--port" => port = value("--port").parse().unwrap_or_else(|_| usage("--port needs a number")),
            "--bucket" => buckets.push(value("--bucket")),
            "--discard-bucket" => discard.push(value("--discard-bucket")),
            "--region" => region = value("--region"),
            "--v4-only" => v4_only = true,
            "--fill-chain" => fills.push(value("--fill-chain")),
            "--log-bytes" => log_bytes = Some(value("--log-bytes")),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let id = std::env::var("OSS_ACCESS_KEY_ID").unwrap_or_else(|_| oss_server::ACCESS_KEY_ID.to_string());
    let secret = std::env::var("OSS_ACCESS_KEY_SECRET").unwrap_or_else(|_| oss_server::ACCESS_KEY_SECRET.to_string());
    let server = oss_server::OssServer::start_with(&id, &secret, port);
    server.set_region(&region);
    server.set_v4_only(v4_only);
    for bucket in &buckets {
        server.create_bucket(bucket);
    }
    for bucket in &discard {
        server.create_discard_bucket(bucket);
    }
    for spec in &fills {
        fill_chain(&server, spec);
    }
    println!("{}", server.endpoint());
    let _ = std::io::stdout().flush();
    let mut logged = None;
    loop {
        let Some(path) = &log_bytes else {
            std::thread::park();
            continue;
        };
        let served = server.bytes_served();
        if logged != Some(served) {
            std::fs::write(path, format!("{served}\n")).unwrap_or_else(|e| usage(&format!("--log-bytes {path}: {e}")));
            logged = Some(served);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Stores `CYCLES` cycles of `OBJECTS` committed objects under `BUCKET/PREFIX`.
fn fill_chain(server: &oss_server::OssServer, spec: &str) {
    use mb::chain::layout::{head_key, ObjectKey};
    use mb::chain::marker::{Head, Marker, MARKER_FORMAT};
    use mb::format::records::{Kind, PutRecord, Ts};
    let parsed = spec.split_once('/').and_then(|(bucket, rest)| {
        let mut parts = rest.rsplitn(3, ':');
        let objects: u64 = parts.next()?.parse().ok()?;
        let cycles: u32 = parts.next()?.parse().ok()?;
        Some((bucket, parts.next()?, cycles, objects))
    });
    let Some((bucket, prefix, cycles, objects)) = parsed else {
        usage("--fill-chain needs BUCKET/PREFIX:CYCLES:OBJECTS")
    };
    server.create_bucket(bucket);
    let mut point = Ts::new(1_795_489_200, 1);
    for c in 0..cycles {
        let cycle = format!("202611{:02}T030000.000001Z", c + 1);
        let mut marker = None;
        for seq in 0..objects {
            let (kind, from) = (if seq == 0 { Kind::Full } else { Kind::Oplog }, point);
            let to = Ts::new(point.t + 60, 1);
            let key = match kind {
                Kind::Full => format!("{}.zst", ObjectKey::full(prefix, &cycle)),
                Kind::Oplog => {
                    point = to;
                    format!("{}.zst", ObjectKey::slice(prefix, &cycle, seq, from, to))
                }
            };
            let data = format!("object {key}").into_bytes();
            let put = PutRecord {
                format: MARKER_FORMAT.into(),
                bucket: bucket.into(),
                key: key.clone(),
                size: data.len() as u64,
                crc64: mb::crc64::checksum(&data),
                etag: None,
                parts: 1,
                storage_class: None,
                sse: None,
                sse_key_id: None,
                encryption: None,
            };
            let record = Marker {
                put,
                kind: Some(kind),
                cycle: Some(cycle.clone()),
                seq: Some(seq),
                databases: Some(vec![prefix.to_string()]),
                created: Some("2026-11-24T03:00:00Z".into()),
                from: (kind == Kind::Oplog).then_some(from),
                to: (kind == Kind::Oplog).then_some(to),
                consistent_at: (kind == Kind::Full).then_some(from),
            };
            server.put_object(bucket, &key, &data);
            server.put_object(bucket, &format!("{key}.done"), &serde_json::to_vec(&record).unwrap());
            marker = Some(record);
        }
        if let Some(marker) = marker {
            server.put_object(bucket, &head_key(prefix, &cycle), &serde_json::to_vec(&Head::after(&marker)).unwrap());
        }
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("oss-server: {problem}");
    }
    eprintln!(
        "usage: oss-server [--port N] [--bucket NAME]... [--discard-bucket NAME]... [--region REGION] [--v4-only] [--fill-chain BUCKET/PREFIX:CYCLES:OBJECTS]..."
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 });
}
