//! Alibaba's official Python SDK v2 (`alibabacloud-oss-v2`), driven by
//! `tests/sdk/oss_sdk_check.py` against the suite's OSS server.
//!
//! `scripts/test` installs the SDK into `.cache/python`; without python3 or
//! the SDK a test prints a loud SKIPPED line, except on CI (`CI=true`),
//! where it fails: there the check must run.

use std::path::Path;
use std::process::Command;

use super::oss_server::OssServer;

/// `PYTHONPATH` holding the SDK: the environment's, then `.cache/python`.
fn python_path() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/python");
    match std::env::var("PYTHONPATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", cache.display()),
        _ => cache.display().to_string(),
    }
}

/// Why the SDK cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let probe =
        Command::new("python3").args(["-c", "import alibabacloud_oss_v2"]).env("PYTHONPATH", python_path()).output();
    let why = match probe {
        Err(err) => format!("python3 not runnable: {err}"),
        Ok(out) if !out.status.success() => format!(
            "alibabacloud-oss-v2 not importable (scripts/test installs it into .cache/python): {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        ),
        Ok(_) => return None,
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the official OSS SDK check must run on CI, but {why}");
    }
    eprintln!("\n*** SKIPPED: official Python SDK check not run: {why} ***\n");
    Some(why)
}

/// Runs the SDK check against `server`'s `bucket` (key `cn-hangzhou`), then
/// has it read `objects` as `(key, size, crc64)`. Panics with its output on failure.
pub fn check(server: &OssServer, bucket: &str, objects: &[(String, u64, u64)]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/oss_sdk_check.py");
    let specs: Vec<String> = objects.iter().map(|(k, size, crc)| format!("{k}:{size}:{crc}")).collect();
    let output = Command::new("python3")
        .arg(script)
        .args([&server.endpoint(), bucket, "cn-hangzhou"])
        .args(&specs)
        .env("PYTHONPATH", python_path())
        .env("OSS_ACCESS_KEY_ID", server.access_key_id())
        .env("OSS_ACCESS_KEY_SECRET", server.secret())
        .output()
        .expect("running python3");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the official SDK check failed:\n{text}");
    assert!(text.contains("oss_sdk_check: all checks passed"), "{text}");
}
