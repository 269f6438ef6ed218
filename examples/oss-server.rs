//! A local OSS-compatible server for demos and benchmarks (the test suite's).
//!
//! Usage: `cargo run --example oss-server -- [--port N] [--bucket NAME]...
//! [--discard-bucket NAME]... [--region REGION] [--v4-only]`. Prints `http://127.0.0.1:PORT` on stdout, then
//! serves until killed. Credentials: env `OSS_ACCESS_KEY_ID` and
//! `OSS_ACCESS_KEY_SECRET` (demo defaults otherwise). Path-style only, so
//! point the stages at it with `--endpoint http://127.0.0.1:PORT`. A discard
//! bucket keeps only each object's size and CRC-64 (for multi-GiB benchmarks).
//! V4 signatures must name `--region` (default cn-hangzhou); `--v4-only`
//! refuses V1 signatures as new OSS buckets do.

#[path = "../tests/it/support/oss_server.rs"]
mod oss_server;

use std::io::Write;

fn main() {
    let mut port: u16 = 0;
    let mut buckets = Vec::new();
    let mut discard = Vec::new();
    let mut region = String::from("cn-hangzhou");
    let mut v4_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().unwrap_or_else(|| usage(&format!("{name} needs a value")));
        match arg.as_str() {
            "--port" => port = value("--port").parse().unwrap_or_else(|_| usage("--port needs a number")),
            "--bucket" => buckets.push(value("--bucket")),
            "--discard-bucket" => discard.push(value("--discard-bucket")),
            "--region" => region = value("--region"),
            "--v4-only" => v4_only = true,
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
    println!("{}", server.endpoint());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("oss-server: {problem}");
    }
    eprintln!(
        "usage: oss-server [--port N] [--bucket NAME]... [--discard-bucket NAME]... [--region REGION] [--v4-only]"
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 });
}
